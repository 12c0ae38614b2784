"""Tests of depth_motion.nets: shapes against the reference, parameter counts, behaviour."""

import math
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from depth_motion import nets
from depth_motion.nets import layer_norm

VARS_PATH = os.path.join(os.path.dirname(__file__), 'data', 'reference_nets_vars.txt')


def _reference_activation_shapes():
  """{op name: shape} from the activation section of reference_nets_vars.txt."""
  shapes = {}
  with open(VARS_PATH, encoding='utf-8') as f:
    for line in f:
      match = re.fullmatch(r'(\S+) (\w+) \[([\d, ]*)\]\s*', line)
      if match:
        dims = match.group(3).strip()
        shapes[match.group(1)] = tuple(int(d) for d in dims.split(',')) if dims else ()
  return shapes


def _reference_param_counts():
  counts = {}
  with open(VARS_PATH, encoding='utf-8') as f:
    for line in f:
      match = re.fullmatch(r'# trainable parameters (\S+): (\d+)\s*', line)
      if match:
        counts[match.group(1)] = int(match.group(2))
  return counts


def _count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


@pytest.fixture(scope='module')
def depth_net():
  keras.utils.set_random_seed(1)
  net = nets.DepthNet()
  net.build((None, None, None, 3))
  return net


@pytest.fixture(scope='module')
def motion_net():
  keras.utils.set_random_seed(2)
  net = nets.MotionFieldNet()
  net.build((None, None, None, 8))
  return net


def _rgb(batch, height, width, seed=0):
  return tf.constant(np.random.RandomState(seed).uniform(size=(batch, height, width, 3)),
                     tf.float32)


def _pairs(batch, height, width, seed=0):
  rng = np.random.RandomState(seed)
  rgb = rng.uniform(size=(batch, height, width, 6))
  depth = rng.uniform(1.0, 10.0, size=(batch, height, width, 2))
  x = np.concatenate([rgb[..., :3], depth[..., :1], rgb[..., 3:], depth[..., 1:]], axis=-1)
  return tf.constant(x, tf.float32)


# ---------------------------------------------------------------------------- shapes and sizes


def test_trainable_parameter_counts_match_reference(depth_net, motion_net):
  counts = _reference_param_counts()
  assert _count(depth_net.trainable_variables) == counts['depth_prediction'] == 14325425
  assert _count(motion_net.trainable_variables) == counts['MotionFieldNet'] == 44180049
  assert not depth_net.non_trainable_variables
  assert not motion_net.non_trainable_variables


def _depth_reference_key(op_name):
  """Our endpoint name for a depth activation op of the reference, or None."""
  scope, op = op_name[len('depth_prediction/'):].split('/')
  if scope == 'conv1':
    return {'relu': 'conv1', 'MaxPool': 'pool1'}[op]
  if scope.startswith('conv'):
    return scope if op == 'relu_1' else None  # 'relu' is inside the block
  if op == 'Softplus':
    return 'depth'
  return scope if op in ('Relu', 'conv2d_transpose') else None


def test_depth_stage_shapes_match_reference_at_128x416(depth_net):
  expected = {}
  for op_name, shape in _reference_activation_shapes().items():
    if op_name.startswith('depth_prediction/'):
      key = _depth_reference_key(op_name)
      if key:
        expected[key] = shape
  ends = depth_net.compute_endpoints(_rgb(1, 128, 416))
  assert len(expected) == 21
  assert {k: tuple(ends[k].shape) for k in expected} == expected
  assert tuple(ends['depth'].shape) == (1, 128, 416, 1)
  assert np.all(ends['depth'].numpy() > 0)


def test_depth_stage_shapes_at_64x192(depth_net):
  ends = depth_net.compute_endpoints(_rgb(2, 64, 192))
  widths = {'conv1': 64, 'pool1': 64, 'conv2': 64, 'conv3': 128, 'conv4': 256, 'conv5': 512}
  assert tuple(ends['conv1'].shape) == (2, 32, 96, 64)
  assert tuple(ends['pool1'].shape) == (2, 16, 48, 64)
  for stage in range(2, 6):
    factor = 2 ** stage
    for block in (1, 2):
      assert tuple(ends['conv%d_%d' % (stage, block)].shape) == (
          2, 64 // factor, 192 // factor, widths['conv%d' % stage])
  for level, filters in zip(range(5, 0, -1), (256, 128, 64, 32, 16)):
    factor = 2 ** (level - 1)
    for kind in ('upconv', 'iconv'):
      assert tuple(ends['%s%d' % (kind, level)].shape) == (2, 64 // factor, 192 // factor,
                                                          filters)
  assert tuple(ends['depth'].shape) == (2, 64, 192, 1)


def test_motion_stage_shapes_match_reference_at_128x416(motion_net):
  reference = _reference_activation_shapes()
  ends = motion_net.compute_endpoints(_pairs(2, 128, 416))
  checked = 0
  for op_name, shape in reference.items():
    parts = op_name.split('/')
    if parts[0] != 'MotionFieldNet':
      continue
    if len(parts) == 3 and parts[1].startswith('Conv') and parts[2] == 'Relu':
      assert tuple(ends[parts[1]].shape) == shape, op_name
    elif parts[1:] == ['Mean']:
      assert tuple(ends['bottleneck'].shape) == shape
    elif len(parts) == 3 and parts[1].startswith('Refine') and parts[2] == 'ResizeBilinear':
      # The stage's output has the upsampled field's shape.
      assert tuple(ends[parts[1]].shape) == shape, op_name
    elif len(parts) == 4 and parts[1].startswith('Refine') and parts[3] == 'Relu':
      refine = {r.name: r for r in motion_net.refines}[parts[1]]
      conv = getattr(refine, parts[2].lower())
      features = ends[parts[1]]
      assert (features.shape[0], features.shape[1], features.shape[2],
              conv.filters) == shape, op_name
    else:
      continue
    checked += 1
  assert checked == 7 + 1 + 8 + 8 * 3
  assert tuple(ends['rotation'].shape) == (2, 3)
  assert tuple(ends['background_translation'].shape) == (2, 1, 1, 3)
  assert tuple(ends['residual_translation'].shape) == (2, 128, 416, 3)
  assert tuple(ends['intrinsics_mat'].shape) == (2, 3, 3)
  assert tuple(reference['MotionFieldNet/CameraIntrinsics/foci/Softplus']) == (2, 1, 1, 2)


def test_motion_stage_shapes_at_64x192(motion_net):
  ends = motion_net.compute_endpoints(_pairs(2, 64, 192))
  height, width = 64, 192
  sizes = []
  for i, filters in enumerate((16, 32, 64, 128, 256, 512, 1024)):
    height, width = math.ceil(height / 2), math.ceil(width / 2)
    sizes.append((height, width))
    assert tuple(ends['Conv%d' % (i + 1)].shape) == (2, height, width, filters)
  assert sizes[-1] == (1, 2)
  stages = ['Refine%d' % level for level in range(7, 0, -1)] + ['RefineImages']
  for stage, (h, w) in zip(stages, sizes[::-1] + [(64, 192)]):
    assert tuple(ends[stage].shape) == (2, h, w, 3)
  rotation, background, residual, intrinsics = motion_net(_pairs(2, 64, 192))
  assert tuple(rotation.shape) == (2, 3)
  assert tuple(background.shape) == (2, 1, 1, 3)
  assert tuple(residual.shape) == (2, 64, 192, 3)
  assert tuple(intrinsics.shape) == (2, 3, 3)


def test_refine_widths_follow_max_4_c(motion_net):
  widths = [r.conv.filters for r in motion_net.refines]
  assert widths == [1024, 512, 256, 128, 64, 32, 16, 8]
  narrow = nets.RefineMotionField(name='narrow')
  out = narrow(tf.zeros([1, 2, 2, 3]), tf.zeros([1, 4, 4, 2]))
  assert narrow.conv.filters == 4 and narrow.conv_3.filters == 3
  assert tuple(out.shape) == (1, 4, 4, 3)


# ---------------------------------------------------------------------------- depth net behaviour


def test_depth_input_validation():
  net = nets.DepthNet()
  with pytest.raises(ValueError, match='divisible by 32.*100x416'):
    net(tf.zeros([1, 100, 416, 3]))
  with pytest.raises(ValueError, match=r'\[B, H, W, 3\]'):
    net(tf.zeros([1, 64, 64, 4]))
  with pytest.raises(ValueError, match=r'\[B, H, W, 3\]'):
    net(tf.zeros([64, 64, 3]))
  with pytest.raises(AttributeError, match='weight_decy'):
    nets.DepthNet(params={'weight_decy': 0.1})
  with pytest.raises(TypeError, match='learn_scale'):
    nets.DepthNet(params={'learn_scale': 1})


def test_depth_params_override_defaults():
  net = nets.DepthNet(params={'reflect_padding': True})
  assert net.params == {'layer_norm_noise_rampup_steps': 10000, 'weight_decay': 0.0,
                        'learn_scale': False, 'reflect_padding': True}


def test_depth_inference_is_deterministic(depth_net):
  rgb = _rgb(2, 32, 64)
  first = depth_net(rgb, training=False).numpy()
  second = depth_net(rgb, training=False).numpy()
  np.testing.assert_array_equal(first, second)
  assert first.shape == (2, 32, 64, 1) and np.all(first > 0)


def test_depth_training_noise_follows_the_ramp(depth_net):
  rgb = _rgb(2, 32, 64, seed=3)
  clean = depth_net(rgb, training=False).numpy()
  at_start = depth_net(rgb, training=True, step=tf.constant(0, tf.int64)).numpy()
  np.testing.assert_allclose(at_start, clean, rtol=1e-6, atol=0)
  noisy_1 = depth_net(rgb, training=True, step=tf.constant(20000, tf.int64)).numpy()
  noisy_2 = depth_net(rgb, training=True, step=tf.constant(20001, tf.int64)).numpy()
  assert np.max(np.abs(noisy_1 - noisy_2)) > 1e-3 * np.max(np.abs(clean))
  assert np.max(np.abs(noisy_1 - clean)) > 1e-3 * np.max(np.abs(clean))
  # The noise is a function of the step (resumable): the same step draws the same noise.
  again = depth_net(rgb, training=True, step=tf.constant(20000, tf.int64)).numpy()
  np.testing.assert_array_equal(noisy_1, again)
  # Without a step the noise is at full strength.
  no_step = depth_net(rgb, training=True).numpy()
  assert np.max(np.abs(no_step - clean)) > 1e-3 * np.max(np.abs(clean))


def test_noise_stddev_ramp():
  for step, expected in [(0, 0.0), (5000, 0.125), (10000, 0.5), (15000, 0.5), (30000, 0.5)]:
    value = float(layer_norm.layer_norm_noise_stddev(tf.constant(step, tf.int64), 10000))
    assert value == pytest.approx(expected, abs=1e-7), step
  assert layer_norm.layer_norm_noise_stddev(None, 10000) == 0.5
  assert layer_norm.layer_norm_noise_stddev(tf.constant(3), 0) == 0.5
  assert layer_norm.layer_norm_noise_stddev(tf.constant(3), -1) == 0.5


def test_randomized_layer_norm_inference_matches_numpy():
  rng = np.random.RandomState(4)
  x = rng.normal(2.0, 3.0, size=(2, 5, 7, 4)).astype(np.float32)
  norm = nets.RandomizedLayerNorm()
  norm.build(x.shape)
  beta = rng.normal(size=4).astype(np.float32)
  gamma = rng.normal(size=4).astype(np.float32)
  norm.beta.assign(beta)
  norm.gamma.assign(gamma)
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)
  expected = gamma * (x - mean) / np.sqrt(var + 1e-3) + beta
  np.testing.assert_allclose(norm(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
  # Training with sigma = 0 is the same computation.
  np.testing.assert_allclose(norm(x, training=True, noise_stddev=0.0).numpy(), expected,
                             rtol=1e-5, atol=1e-5)


def test_randomized_layer_norm_noise_is_truncated_multiplicative_per_sample_and_channel():
  # With gamma = 1, beta = 0 the output is a * x + b per (sample, channel) with
  # a = 1 / sqrt(v' + eps), b = -m' * a: recover the noisy moments m', v'.
  sigma = 0.3
  batch, channels = 4, 500
  rng = np.random.RandomState(5)
  base = np.array([[-1.0, 1.0], [1.0, 3.0]], np.float32)  # mean 1, variance 2
  x = np.broadcast_to(base[None, :, :, None], (batch, 2, 2, channels)).copy()
  norm = nets.RandomizedLayerNorm()
  y = norm(x, training=True, noise_stddev=sigma).numpy()
  a = (y[:, 1, 1] - y[:, 0, 0]) / (x[:, 1, 1] - x[:, 0, 0])
  b = y[:, 0, 0] - a * x[:, 0, 0]
  mean_factor = (-b / a) / 1.0
  var_factor = (1.0 / a**2 - 1e-3) / 2.0
  for factor in (mean_factor, var_factor):
    noise = factor - 1.0
    assert np.all(np.abs(noise) <= 2 * sigma + 1e-3)
    # Std of a normal truncated at +-2 sigma is 0.8796 sigma.
    assert np.std(noise) == pytest.approx(0.8796 * sigma, rel=0.1)
    assert abs(np.mean(noise)) < 0.02
    # Independent across samples and channels.
    assert np.std(noise[0] - noise[1]) > 0.5 * sigma
  assert np.corrcoef(mean_factor.ravel(), var_factor.ravel())[0, 1] < 0.1


def test_depth_weight_decay_is_on_decoder_kernels_only():
  assert not nets.DepthNet().losses
  net = nets.DepthNet(params={'weight_decay': 0.01})
  net.build((None, None, None, 3))
  decoder = [v for n, v in net.reference_variables().items()
             if re.search(r'/(upconv|iconv|disp)\d/weights$', n)]
  assert len(decoder) == 11
  expected = sum(0.01 * np.sum(v.numpy().astype(np.float64)**2) / 2 for v in decoder)
  assert len(net.losses) == 11
  assert float(tf.add_n(net.losses)) == pytest.approx(expected, rel=1e-5)


def test_depth_learn_scale_and_reflect_padding(depth_net):
  rgb = _rgb(1, 32, 64, seed=6)
  scaled = nets.DepthNet(params={'learn_scale': True})
  scaled.build((None, None, None, 3))
  names = scaled.reference_variables()
  assert 'depth_prediction/depth_scale' in names
  for name, variable in depth_net.reference_variables().items():
    names[name].assign(variable)
  np.testing.assert_allclose(scaled(rgb).numpy(), depth_net(rgb).numpy(), rtol=1e-6)
  names['depth_prediction/depth_scale'].assign(2.5)
  np.testing.assert_allclose(scaled(rgb).numpy(), 2.5 * depth_net(rgb).numpy(), rtol=1e-5)

  reflect = nets.DepthNet(params={'reflect_padding': True})
  reflect.build((None, None, None, 3))
  reflect.set_weights(depth_net.get_weights())
  x = tf.reshape(tf.range(2 * 3 * 1, dtype=tf.float32), [1, 2, 3, 1])
  np.testing.assert_array_equal(
      reflect._pad(x).numpy()[0, :, :, 0],
      np.pad(np.arange(6.0).reshape(2, 3), 1, mode='reflect'))
  difference = np.abs(reflect(rgb).numpy() - depth_net(rgb).numpy())
  assert difference.max() > 0


# ---------------------------------------------------------------------------- motion net behaviour


def _resize_bilinear_numpy(field, out_h, out_w, align_corners):
  """TF1 resize_bilinear (no half-pixel centres), written from its definition."""
  _, in_h, in_w, _ = field.shape

  def positions(n_out, n_in):
    if align_corners and n_out > 1:
      scale = (n_in - 1) / (n_out - 1)
    else:
      scale = n_in / n_out
    src = np.arange(n_out) * scale
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, src - low

  y0, y1, fy = positions(out_h, in_h)
  x0, x1, fx = positions(out_w, in_w)
  out = np.zeros((field.shape[0], out_h, out_w, field.shape[3]))
  for i in range(out_h):
    for j in range(out_w):
      top = field[:, y0[i], x0[j]] * (1 - fx[j]) + field[:, y0[i], x1[j]] * fx[j]
      bottom = field[:, y1[i], x0[j]] * (1 - fx[j]) + field[:, y1[i], x1[j]] * fx[j]
      out[:, i, j] = top * (1 - fy[i]) + bottom * fy[i]
  return out


@pytest.mark.parametrize('align_corners', [True, False])
def test_resize_bilinear_matches_tf1_semantics(align_corners):
  field = np.random.RandomState(7).normal(size=(2, 2, 3, 3)).astype(np.float32)
  out = nets.resize_bilinear(field, [4, 6], align_corners).numpy()
  np.testing.assert_allclose(out, _resize_bilinear_numpy(field, 4, 6, align_corners),
                             rtol=1e-6, atol=1e-6)
  if align_corners:
    np.testing.assert_allclose(out[:, [0, -1]][:, :, [0, -1]], field[:, [0, -1]][:, :, [0, -1]],
                               rtol=1e-6)


def _conv_same_numpy(x, kernel, bias=None, stride=1):
  """Stride-1 'SAME' convolution with an odd kernel, in NumPy."""
  k = kernel.shape[0]
  pad = k // 2
  xp = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
  out = np.zeros(x.shape[:3] + (kernel.shape[3],))
  for dy in range(k):
    for dx in range(k):
      patch = xp[:, dy:dy + x.shape[1], dx:dx + x.shape[2]]
      out += np.einsum('nhwc,cd->nhwd', patch, kernel[dy, dx])
  return out if bias is None else out + bias


def test_refine_motion_field_matches_numpy():
  rng = np.random.RandomState(8)
  field = rng.normal(size=(2, 2, 3, 3)).astype(np.float32)
  features = rng.normal(size=(2, 4, 6, 5)).astype(np.float32)
  refine = nets.RefineMotionField(align_corners=True, name='Refine')
  refine.build(field.shape, features.shape)
  for variable in refine.trainable_variables:
    variable.assign(rng.normal(scale=0.3, size=variable.shape).astype(np.float32))
  w = {n.split('/', 1)[1]: v.numpy() for n, v in refine.reference_variables('R').items()}
  up = _resize_bilinear_numpy(field, 4, 6, True)
  x = np.concatenate([up, features], axis=-1)
  relu = lambda t: np.maximum(t, 0)  # pylint: disable=unnecessary-lambda-assignment
  branch_a = relu(_conv_same_numpy(x, w['Conv/weights'], w['Conv/biases']))
  branch_b = relu(_conv_same_numpy(x, w['Conv_1/weights'], w['Conv_1/biases']))
  branch_b = relu(_conv_same_numpy(branch_b, w['Conv_2/weights'], w['Conv_2/biases']))
  expected = up + _conv_same_numpy(np.concatenate([branch_a, branch_b], -1),
                                   w['Conv_3/weights'])
  np.testing.assert_allclose(refine(field, features).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_motion_inference_is_deterministic_and_training_changes_nothing(motion_net):
  pairs = _pairs(2, 32, 64, seed=9)
  first = motion_net(pairs, training=False)
  second = motion_net(pairs, training=True)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize('compiled', [False, True])
def test_skipping_the_refinement_zeroes_only_the_residual(motion_net, compiled):
  pairs = _pairs(2, 16, 32, seed=4)
  call = tf.function(motion_net.__call__) if compiled else motion_net.__call__
  full = motion_net(pairs)
  skipped = call(pairs, refine_residual=tf.constant(False))
  kept = call(pairs, refine_residual=tf.constant(True))
  for i in (0, 1, 3):  # rotation, background translation, intrinsics
    np.testing.assert_array_equal(skipped[i].numpy(), full[i].numpy())
  assert np.abs(full[2].numpy()).max() > 0
  np.testing.assert_array_equal(skipped[2].numpy(), np.zeros_like(full[2].numpy()))
  for a, b in zip(kept, full):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)


def test_auto_mask_zeroes_exactly_the_below_mean_pixels(motion_net):
  pairs = _pairs(2, 32, 64, seed=10)
  motion_net.auto_mask = False
  try:
    unmasked = motion_net(pairs)[2].numpy()
  finally:
    motion_net.auto_mask = True
  with tf.GradientTape() as tape:
    ends = motion_net.compute_endpoints(pairs)
    loss = tf.reduce_sum(ends['residual_translation'])
  masked = ends['residual_translation'].numpy()
  norm = np.sqrt(np.sum(unmasked.astype(np.float64)**2, axis=-1, keepdims=True))
  keep = norm > norm.mean()  # One threshold over the whole batch.
  assert 0.05 < keep.mean() < 0.95
  np.testing.assert_allclose(masked, unmasked * keep, rtol=1e-6, atol=0)
  assert np.all(masked[~keep[..., 0]] == 0)
  assert np.all(masked[keep[..., 0]] == unmasked[keep[..., 0]])
  # The mask is a constant for the gradient: d loss / d field = scale * mask.
  grad = tape.gradient(loss, ends['RefineImages']).numpy()
  np.testing.assert_allclose(grad, np.broadcast_to(0.01 * keep, grad.shape), rtol=1e-6)


def test_motion_outputs_are_scaled_by_the_scales(motion_net):
  pairs = _pairs(2, 32, 64, seed=11)
  ends = motion_net.compute_endpoints(pairs)
  background_motion = ends['background_motion'].numpy()
  rot_scale = float(motion_net.scales.rotation.numpy())
  trans_scale = float(motion_net.scales.translation.numpy())
  assert rot_scale == pytest.approx(0.01) and trans_scale == pytest.approx(0.01)
  np.testing.assert_allclose(ends['rotation'].numpy(), background_motion[:, 0, 0, :3] * rot_scale,
                             rtol=1e-6)
  np.testing.assert_allclose(ends['background_translation'].numpy(),
                             background_motion[..., 3:] * trans_scale, rtol=1e-6)
  field = ends['RefineImages'].numpy() * trans_scale
  residual = ends['residual_translation'].numpy()
  kept = residual != 0
  np.testing.assert_allclose(residual[kept], field[kept], rtol=1e-6)


def test_intrinsics_head_matches_numpy(motion_net):
  rng = np.random.RandomState(12)
  bottleneck = rng.normal(size=(3, 1, 1, 1024)).astype(np.float32)
  head = motion_net.intrinsics_head
  w = {n.rsplit('/', 2)[-2] + '/' + n.rsplit('/', 1)[-1]: v.numpy()
       for n, v in head.reference_variables('H').items()}
  k = head(bottleneck, tf.constant(128), tf.constant(416)).numpy()
  foci = np.log1p(np.exp(bottleneck[:, 0, 0] @ w['foci/weights'][0, 0] + w['foci/biases']))
  offsets = bottleneck[:, 0, 0] @ w['offsets/weights'][0, 0]
  expected = np.zeros((3, 3, 3))
  expected[:, 0, 0] = foci[:, 0] * 416
  expected[:, 1, 1] = foci[:, 1] * 128
  expected[:, 0, 2] = (offsets[:, 0] + 0.5) * 416
  expected[:, 1, 2] = (offsets[:, 1] + 0.5) * 128
  expected[:, 2, 2] = 1
  np.testing.assert_allclose(k, expected, rtol=1e-4, atol=1e-3)


def test_motion_weight_reg_covers_all_convs_but_the_intrinsics_head():
  assert not nets.MotionFieldNet().losses
  net = nets.MotionFieldNet(weight_reg=0.01)
  net.build((None, None, None, 8))
  kernels = [v for n, v in net.reference_variables().items()
             if n.endswith('/weights') and 'CameraIntrinsics' not in n]
  assert len(kernels) == 7 + 2 + 8 * 4
  expected = sum(0.01 * np.sum(v.numpy().astype(np.float64)**2) / 2 for v in kernels)
  assert len(net.losses) == len(kernels)
  assert float(tf.add_n(net.losses)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('optimizer', [keras.optimizers.SGD, keras.optimizers.Adam])
def test_scales_constraint_is_applied_by_keras_optimizers(optimizer):
  scales = nets.Scales()
  scales.build()
  opt = optimizer(learning_rate=1.0)
  # A gradient step that would take both scales far below the floor.
  opt.apply_gradients([(tf.constant(5.0), scales.rotation), (tf.constant(5.0),
                                                               scales.translation)])
  assert float(scales.rotation.numpy()) == pytest.approx(0.001)
  assert float(scales.translation.numpy()) == pytest.approx(0.001)
  # Above the floor the constraint leaves the value alone.
  keras.optimizers.SGD(learning_rate=1.0).apply_gradients([(tf.constant(-0.5), scales.rotation)])
  assert float(scales.rotation.numpy()) == pytest.approx(0.501)
  assert isinstance(scales.rotation.constraint, nets.MinimumValue)
  constraint = nets.MinimumValue(0.001)
  np.testing.assert_allclose(constraint(tf.constant([-1.0, 0.0005, 0.001, 0.5])).numpy(),
                             [0.001, 0.001, 0.001, 0.5])
  assert nets.MinimumValue.from_config(constraint.get_config()).minimum == 0.001


def test_motion_net_scale_variables_carry_the_constraint(motion_net):
  for variable in (motion_net.scales.rotation, motion_net.scales.translation):
    assert isinstance(variable.constraint, nets.MinimumValue)
    assert variable.constraint.minimum == 0.001


# ---------------------------------------------------------------------------- per-video intrinsics


def test_per_video_intrinsics():
  layer = nets.PerVideoIntrinsics(max_number_of_videos=10, image_height=128, image_width=416)
  k = layer(tf.constant([0, 7])).numpy()
  expected = np.array([[272.0, 0, 208], [0, 272, 64], [0, 0, 1]])
  np.testing.assert_allclose(k, [expected, expected], rtol=1e-6)
  assert tuple(layer.all_intrin.shape) == (10, 4)
  layer.all_intrin.assign(tf.tensor_scatter_nd_update(layer.all_intrin, [[7]],
                                                      [[0.5, 2.0, 0.25, 0.75]]))
  k = layer(tf.constant([7, 0], tf.int64)).numpy()
  np.testing.assert_allclose(k[0], [[136, 0, 104], [0, 544, 96], [0, 0, 1]], rtol=1e-6)
  np.testing.assert_allclose(k[1], expected, rtol=1e-6)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(tf.constant([3])))
  grad = tf.convert_to_tensor(tape.gradient(loss, layer.all_intrin.value)).numpy()
  np.testing.assert_allclose(grad[3], [272, 272, 416, 128])
  assert np.all(np.delete(grad, 3, axis=0) == 0)


def test_per_video_intrinsics_rejects_bad_indices():
  layer = nets.PerVideoIntrinsics(max_number_of_videos=10)
  with pytest.raises(tf.errors.InvalidArgumentError, match='max_number_of_videos'):
    layer(tf.constant([3, 10]))
  with pytest.raises(tf.errors.InvalidArgumentError, match='below 0'):
    layer(tf.constant([-1]))
  with pytest.raises(ValueError, match='integer'):
    layer(tf.constant([1.0]))


# ---------------------------------------------------------------------------- gradients


def test_gradients_reach_every_variable_of_both_nets(depth_net, motion_net):
  """The model's cascade: depth of both frames feeds the motion net."""
  rgb1, rgb2 = _rgb(1, 32, 64, seed=13), _rgb(1, 32, 64, seed=14)
  variables = depth_net.trainable_variables + motion_net.trainable_variables
  with tf.GradientTape() as tape:
    depth = depth_net(tf.concat([rgb1, rgb2], 0), training=True, step=tf.constant(5000))
    depth1, depth2 = tf.split(depth, 2)
    frame1 = tf.concat([rgb1, depth1], -1)
    frame2 = tf.concat([rgb2, depth2], -1)
    pairs = tf.concat([tf.concat([frame1, frame2], -1), tf.concat([frame2, frame1], -1)], 0)
    rotation, background, residual, intrinsics = motion_net(pairs, training=True)
    loss = (tf.reduce_mean(1.0 / depth) + tf.reduce_sum(tf.square(rotation)) +
            tf.reduce_sum(background) + tf.reduce_mean(tf.abs(residual)) +
            1e-3 * tf.reduce_sum(intrinsics))
  grads = tape.gradient(loss, variables)
  missing = [v.path for v, g in zip(variables, grads) if g is None]
  assert not missing
  not_finite = [v.path for v, g in zip(variables, grads) if not np.all(np.isfinite(g))]
  assert not not_finite
  zero = [v.path for v, g in zip(variables, grads) if not np.any(tf.convert_to_tensor(g))]
  assert not zero


# ---------------------------------------------------------------------------- Keras / TF plumbing


def test_tf_checkpoint_tracks_every_variable(tmp_path, depth_net, motion_net):
  prefix = tf.train.Checkpoint(depth=depth_net, motion=motion_net).save(str(tmp_path / 'ckpt'))
  stored = [n for n, _ in tf.train.list_variables(prefix) if n.endswith('VARIABLE_VALUE')]
  assert len(stored) == len(depth_net.weights) + len(motion_net.weights) + 1  # + save_counter
  restored_depth, restored_motion = nets.DepthNet(), nets.MotionFieldNet()
  restored_depth.build((None, None, None, 3))
  restored_motion.build((None, None, None, 8))
  status = tf.train.Checkpoint(depth=restored_depth, motion=restored_motion).restore(prefix)
  status.assert_consumed()
  for a, b in zip(restored_depth.weights + restored_motion.weights,
                  depth_net.weights + motion_net.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_get_config_round_trip():
  depth = nets.DepthNet(params={'learn_scale': True, 'weight_decay': 0.5})
  copy = nets.DepthNet.from_config(depth.get_config())
  assert copy.params == depth.params and copy.name == depth.name
  motion = nets.MotionFieldNet(weight_reg=0.1, align_corners=False, auto_mask=False)
  copy = nets.MotionFieldNet.from_config(motion.get_config())
  assert (copy.weight_reg, copy.align_corners, copy.auto_mask) == (0.1, False, False)


def test_nets_run_in_tf_function_with_unknown_sizes(depth_net):
  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                tf.TensorSpec([], tf.int64)])
  def predict(rgb, step):
    return depth_net(rgb, training=True, step=step)

  assert tuple(predict(_rgb(1, 32, 64), tf.constant(0, tf.int64)).shape) == (1, 32, 64, 1)
  with pytest.raises(tf.errors.InvalidArgumentError, match='divisible by 32'):
    predict(_rgb(1, 40, 64), tf.constant(0, tf.int64))
