"""Analytic tests of depth_motion.losses (reference parity is in golden_parity_test.py)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from depth_motion import losses
from depth_motion import params as params_lib

B, H, W = 2, 16, 32


def _rng(seed):
  return np.random.default_rng(seed)


def _intrinsics(batch=B):
  k = np.array([[20.0, 0, 15.5], [0, 18.0, 7.5], [0, 0, 1]], np.float32)
  return np.tile(k[None], [batch, 1, 1])


def _endpoints(seed=0, depth=None, residual=None, background=None, rotation=None):
  """Random loss endpoints (pairs) of the shapes the model produces."""
  rng = _rng(seed)

  def pair(make):
    return tuple(tf.constant(make().astype(np.float32)) for _ in range(2))

  endpoints = {
      'rgb': pair(lambda: rng.uniform(size=(B, H, W, 3))),
      'predicted_depth': pair(lambda: rng.uniform(1.0, 10.0, size=(B, H, W, 1))),
      'residual_translation': pair(lambda: rng.uniform(-0.2, 0.2, size=(B, H, W, 3)) *
                                   (rng.uniform(size=(B, H, W, 1)) > 0.8)),
      'background_translation': pair(lambda: rng.uniform(-0.3, 0.3, size=(B, 1, 1, 3))),
      'rotation': pair(lambda: rng.uniform(-0.03, 0.03, size=(B, 3))),
      'intrinsics_mat': (tf.constant(_intrinsics()),) * 2,
  }
  for key, value in (('predicted_depth', depth), ('residual_translation', residual),
                     ('background_translation', background), ('rotation', rotation)):
    if value is not None:
      endpoints[key] = tuple(tf.constant(np.asarray(v, np.float32)) for v in value)
  return endpoints


def _model_weights():
  return params_lib.model_defaults()['loss_weights']


# ----------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize('c1, c2', [(float('inf'), 9e-6), (0.01**2, 0.03**2),
                                    (0.01**2, float('inf'))])
def test_ssim_of_image_with_itself_is_zero_loss(c1, c2):
  x = _rng(1).uniform(size=(B, 8, 10, 3)).astype(np.float32)
  weight = _rng(2).uniform(size=(B, 8, 10)).astype(np.float32)
  ssim, avg_weight = losses.weighted_ssim(x, x, weight, c1=c1, c2=c2)
  assert ssim.shape == (B, 6, 8, 3) and avg_weight.shape == (B, 6, 8, 1)
  np.testing.assert_allclose(ssim.numpy(), 0.0, atol=1e-5)
  pooled = tf.nn.avg_pool2d(weight[..., None], 3, 1, 'VALID').numpy()
  np.testing.assert_allclose(avg_weight.numpy(), pooled, rtol=1e-6)


def test_ssim_luminance_term_on_constant_images():
  # With c2 = inf only (2 mu_x mu_y + c1) / (mu_x² + mu_y² + c1) remains.
  x = np.full((1, 5, 5, 1), 0.2, np.float32)
  y = np.full((1, 5, 5, 1), 0.6, np.float32)
  ssim, _ = losses.weighted_ssim(x, y, np.ones((1, 5, 5), np.float32), c1=1e-4,
                                 c2=float('inf'))
  similarity = (2 * 0.2 * 0.6 + 1e-4) / (0.2**2 + 0.6**2 + 1e-4)
  np.testing.assert_allclose(ssim.numpy(), (1 - similarity) / 2, rtol=1e-5)
  # Anti-correlated contrast gives the maximal loss 1 (clipped range [0, 1]).
  pattern = np.tile(np.array([0.0, 1.0], np.float32), 13)[:25].reshape(1, 5, 5, 1)
  ssim, _ = losses.weighted_ssim(pattern, 1 - pattern, np.ones((1, 5, 5), np.float32),
                                 c1=float('inf'), c2=1e-12)
  np.testing.assert_allclose(ssim.numpy(), 1.0, atol=1e-5)


def test_ssim_rejects_both_constants_infinite_and_bad_shapes():
  x = np.zeros((1, 5, 5, 3), np.float32)
  with pytest.raises(ValueError, match='Both c1 and c2 are infinite'):
    losses.weighted_ssim(x, x, np.ones((1, 5, 5)), c1=float('inf'), c2=float('inf'))
  with pytest.raises(ValueError, match=r'y must have shape'):
    losses.weighted_ssim(x, np.zeros((1, 5, 6, 3)), np.ones((1, 5, 5)))
  with pytest.raises(ValueError, match=r'weight must have rank 3'):
    losses.weighted_ssim(x, x, np.ones((1, 5, 5, 1)))


# ----------------------------------------------------------------------------- RGBD


def _identity_warp(depth):
  # Powers of two in K keep the identity warp exact at row 0 and column 0,
  # where the strict mask bounds would otherwise depend on rounding.
  zeros = np.zeros((depth.shape[0], 3), np.float32)
  k = np.tile(np.array([[16.0, 0, 16.0], [0, 16.0, 8.0], [0, 0, 1]], np.float32)[None],
              [depth.shape[0], 1, 1])
  return geometry.using_motion_vector(depth, zeros, zeros, k)


def test_rgbd_consistency_identity_motion_known_errors():
  depth1 = np.random.default_rng(3).integers(1, 11, size=(B, H, W)).astype(np.float32)
  rgb = _rng(4).uniform(size=(B, H, W, 3)).astype(np.float32)
  # Frame 2 sees everything 10 % farther: frame 1 is closer wherever its
  # warped pixel is valid (all but the last row and column).
  result = losses.rgbd_consistency_loss(_identity_warp(depth1), rgb, depth1 * 1.1, rgb)
  valid = np.zeros((B, H, W), np.float32)
  valid[:, :-1, :-1] = 1.0
  np.testing.assert_array_equal(result['frame1_closer_to_camera'].numpy(), valid)
  np.testing.assert_allclose(result['depth_error'].numpy(), np.mean(0.1 * depth1 * valid),
                             rtol=1e-5)
  np.testing.assert_allclose(result['rgb_error'].numpy(), 0.0, atol=1e-6)
  np.testing.assert_allclose(result['ssim_error'].numpy(), 0.0, atol=1e-5)
  diff2 = (0.1 * depth1)**2
  moment = (diff2 * valid).sum(axis=(1, 2), keepdims=True) / (valid.sum(axis=(1, 2),
                                                                         keepdims=True) + 1)
  moment += 1e-4
  np.testing.assert_allclose(result['depth_proximity_weight'].numpy(),
                             moment / (diff2 + moment) * valid, rtol=1e-4)


def test_rgbd_consistency_occluded_pixels_do_not_count():
  depth1 = np.full((B, H, W), 5.0, np.float32)
  rgb1 = _rng(5).uniform(size=(B, H, W, 3)).astype(np.float32)
  rgb2 = _rng(6).uniform(size=(B, H, W, 3)).astype(np.float32)
  # Frame 2 is closer everywhere: frame 1's points are hidden, nothing counts.
  result = losses.rgbd_consistency_loss(_identity_warp(depth1), rgb1, depth1 * 0.5, rgb2)
  for key in ('depth_error', 'rgb_error'):
    assert result[key].numpy() == 0.0
  assert result['frame1_closer_to_camera'].numpy().sum() == 0.0
  # A validity mask of zeros removes every pixel even when frame 1 is closer.
  masked = losses.rgbd_consistency_loss(_identity_warp(depth1), rgb1, depth1 * 2, rgb2,
                                        validity_mask=np.zeros((B, H, W, 1), np.float32))
  assert masked['depth_error'].numpy() == 0.0 and masked['rgb_error'].numpy() == 0.0
  np.testing.assert_array_equal(masked['depth_proximity_weight'].numpy(), 0.0)


def test_rgbd_consistency_bad_shapes():
  depth = np.ones((B, H, W), np.float32)
  rgb = np.zeros((B, H, W, 3), np.float32)
  with pytest.raises(ValueError, match=r'frame2depth must have rank 3'):
    losses.rgbd_consistency_loss(_identity_warp(depth), rgb, depth[..., None], rgb)
  with pytest.raises(ValueError, match=r'frame2rgb must have shape .*W=32'):
    losses.rgbd_consistency_loss(_identity_warp(depth), rgb, depth, rgb[:, :, :-1])
  with pytest.raises(ValueError, match=r'validity_mask'):
    losses.rgbd_consistency_loss(_identity_warp(depth), rgb, depth, rgb,
                                 validity_mask=np.ones((B, H, W)))


# ----------------------------------------------------------------------------- motion cycle


def test_motion_cycle_of_exact_inverse_motions_is_zero():
  rng = _rng(7)
  rotation1 = rng.uniform(-0.1, 0.1, size=(B, 3)).astype(np.float32)
  translation1 = rng.uniform(-1, 1, size=(B, 3)).astype(np.float32)
  matrix1 = geometry.matrix_from_angles(rotation1)
  rotation2 = geometry.angles_from_matrix(tf.linalg.matrix_transpose(matrix1)).numpy()
  translation2 = -tf.linalg.matvec(tf.linalg.matrix_transpose(matrix1), translation1).numpy()
  field1 = np.broadcast_to(translation1[:, None, None], (B, H, W, 3))
  field2 = np.broadcast_to(translation2[:, None, None], (B, H, W, 3))
  pixel_x = rng.uniform(0, W - 1, size=(B, H, W)).astype(np.float32)
  pixel_y = rng.uniform(0, H - 1, size=(B, H, W)).astype(np.float32)
  result = losses.motion_field_consistency_loss(pixel_x, pixel_y, np.ones((B, H, W)),
                                                rotation1, field1, rotation2, field2)
  assert result['rotation_error'].numpy() < 1e-5
  assert result['translation_error'].numpy() < 1e-10


def test_motion_cycle_known_errors():
  # Same rotation both ways: R² - I against 2 (R - I) gives a ratio of about 2
  # for small angles; same translation both ways: |R t + t|² / (2 |t|²) ~ 2.
  angle = 0.01
  rotation = np.array([[0.0, 0.0, angle]], np.float32)
  matrix = geometry.matrix_from_angles(rotation).numpy()[0].astype(np.float64)
  expected_rotation = np.mean((matrix @ matrix - np.eye(3))**2) / (
      2 * np.mean((matrix - np.eye(3))**2))
  t = np.array([0.3, -0.2, 0.5])
  field = np.broadcast_to(t.astype(np.float32), (1, 4, 5, 3))
  mask = np.zeros((1, 4, 5), np.float32)
  mask[0, :2] = 1.0
  result = losses.motion_field_consistency_loss(
      np.full((1, 4, 5), 1.5, np.float32), np.full((1, 4, 5), 2.0, np.float32), mask,
      rotation, field, rotation, field)
  np.testing.assert_allclose(result['rotation_error'].numpy(), expected_rotation, rtol=1e-3)
  expected_translation = np.sum((matrix @ t + t)**2) / (2 * np.sum(t**2)) * 0.5
  np.testing.assert_allclose(result['translation_error'].numpy(), expected_translation,
                             rtol=1e-5)


def test_motion_cycle_bad_shapes():
  field = np.zeros((B, H, W, 3), np.float32)
  coords = np.zeros((B, H, W), np.float32)
  with pytest.raises(ValueError, match=r'rotation2 must have rank 2 or 4'):
    losses.motion_field_consistency_loss(coords, coords, coords, np.zeros((B, 3)), field,
                                         np.zeros((B, 3, 1)), field)
  with pytest.raises(ValueError, match=r'translation2 must have shape .*H=16'):
    losses.motion_field_consistency_loss(coords, coords, coords, np.zeros((B, 3)), field,
                                         np.zeros((B, 3)), field[:, :-1])


# ----------------------------------------------------------------------------- regularisers


def test_joint_bilateral_smoothing_known_values():
  ramp = np.tile(np.arange(W, dtype=np.float32) * 0.5, (B, H, 1))[..., None]
  flat = np.zeros((B, H, W, 3), np.float32)
  np.testing.assert_allclose(losses.joint_bilateral_smoothing(ramp, flat).numpy(), 0.5,
                             rtol=1e-6)
  edges = np.tile(np.arange(W, dtype=np.float32) * 0.2, (B, H, 1))[..., None] * np.ones(3)
  np.testing.assert_allclose(losses.joint_bilateral_smoothing(ramp, edges).numpy(),
                             0.5 * math.exp(-0.2), rtol=1e-5)
  assert losses.joint_bilateral_smoothing(np.ones((B, H, W, 1)), edges).numpy() == 0.0


def test_normalize_motion_map_divides_by_rms_of_total_field():
  total = np.broadcast_to(np.array([1.0, -2.0, 2.0], np.float32), (B, H, W, 3))
  residual = np.full((B, H, W, 3), 0.6, np.float32)
  # mean(T²) = 3, times 3 = 9 -> divide by 3.
  np.testing.assert_allclose(losses.normalize_motion_map(residual, total).numpy(), 0.2,
                             rtol=1e-5)


def test_l1smoothness_known_values():
  ramp = np.tile(np.arange(3, dtype=np.float32), (1, 3, 1))[..., None]  # [[0, 1, 2]] x 3
  # Wrapping compares column 0 with column 2 (|0 - 2| = 2), else |step| = 1.
  np.testing.assert_allclose(losses.l1smoothness(ramp, wrap_around=True).numpy(), 4 / 3,
                             rtol=1e-6)
  np.testing.assert_allclose(losses.l1smoothness(ramp, wrap_around=False).numpy(), 1.0,
                             rtol=1e-6)
  assert losses.l1smoothness(np.ones((1, 4, 4, 3), np.float32)).numpy() < 1e-11


def test_sqrt_sparsity_values_and_gradient():
  constant = np.full((1, 4, 5, 3), -0.5, np.float32)
  np.testing.assert_allclose(losses.sqrt_sparsity(constant).numpy(), 2 * 0.5 * math.sqrt(2),
                             rtol=1e-6)
  assert losses.sqrt_sparsity(np.zeros((1, 4, 5, 3), np.float32)).numpy() == 0.0
  tensor = tf.constant(constant)
  with tf.GradientTape() as tape:
    tape.watch(tensor)
    loss = losses.sqrt_sparsity(tensor)
  # d/dT of 2ā sqrt(|T|/ā + 1) with ā held fixed: sign(T) / sqrt(2), over 60 elements.
  np.testing.assert_allclose(tape.gradient(loss, tensor).numpy(), -1 / (math.sqrt(2) * 60),
                             rtol=1e-5)
  zeros = tf.zeros((1, 4, 5, 3))
  with tf.GradientTape() as tape:
    tape.watch(zeros)
    loss = losses.sqrt_sparsity(zeros)
  np.testing.assert_array_equal(tape.gradient(loss, zeros).numpy(), 0.0)


def test_regularizers_bad_rank():
  with pytest.raises(ValueError, match=r'tensor must have rank 4'):
    losses.l1smoothness(np.zeros((4, 4, 3)))
  with pytest.raises(ValueError, match=r'motion_map must have shape .*H=4'):
    losses.normalize_motion_map(np.zeros((1, 4, 4, 3)), np.zeros((1, 5, 4, 3)))
  with pytest.raises(ValueError, match=r'reference must have shape .*W=4'):
    losses.joint_bilateral_smoothing(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 5, 3)))


# ----------------------------------------------------------------------------- aggregator


def test_aggregator_keys_defaults_and_strict_overrides():
  aggregator = losses.DepthMotionFieldLossAggregator(_endpoints())
  assert sorted(aggregator.losses) == sorted(_model_weights())
  assert aggregator.weights['depth_smoothing'] == 0.01  # the aggregator's own default
  assert aggregator.weights['motion_drift'] == 0.0
  assert sorted(aggregator.output_endpoints) == [
      'depth_proximity_weight', 'disparity', 'inv_trans', 'trans']
  with pytest.raises(AttributeError, match='rgb_consistancy'):
    losses.DepthMotionFieldLossAggregator(_endpoints(), {'rgb_consistancy': 1.0})
  with pytest.raises(AttributeError, match='scale_normalisation'):
    losses.DepthMotionFieldLossAggregator(_endpoints(), None, {'scale_normalisation': True})


def test_aggregator_weighting_is_twice_the_weight():
  endpoints = _endpoints(seed=1)
  ones = {key: 1.0 for key in _model_weights()}
  base = losses.DepthMotionFieldLossAggregator(endpoints, ones, {
      'skip_zero_weight_depth_variance': False}).losses
  weights = _model_weights()
  weighted = losses.DepthMotionFieldLossAggregator(endpoints, weights).losses
  for key, weight in weights.items():
    np.testing.assert_allclose(weighted[key].numpy(), base[key].numpy() * weight, rtol=1e-5,
                               err_msg=key)
  # The raw photometric error is the mean masked L1 over 2B*H*W*3 values: the
  # weighting applied to it is 2 x weight (and 2 x 0.5 x weight for SSIM).
  def stack(key):
    return tf.concat(endpoints[key], axis=0)

  def flip(key):
    return tf.concat(endpoints[key][::-1], axis=0)

  translation = stack('residual_translation') + stack('background_translation')
  k = stack('intrinsics_mat')
  tdm = geometry.using_motion_vector(stack('predicted_depth')[..., 0], translation,
                                     stack('rotation'), k, geometry.invert_intrinsics_matrix(k))
  raw = losses.rgbd_consistency_loss(tdm, stack('rgb'), flip('predicted_depth')[..., 0],
                                     flip('rgb'))
  np.testing.assert_allclose(base['rgb_consistency'].numpy(), 2 * raw['rgb_error'].numpy(),
                             rtol=1e-5)
  np.testing.assert_allclose(base['ssim'].numpy(), raw['ssim_error'].numpy(), rtol=1e-5)


def test_aggregator_constant_depth_and_zero_motion_is_finite():
  depth = [np.full((B, H, W, 1), 3.0)] * 2
  zero_residual = [np.zeros((B, H, W, 3))] * 2
  zero_background = [np.zeros((B, 1, 1, 3))] * 2
  zero_rotation = [np.zeros((B, 3))] * 2
  endpoints = _endpoints(seed=2, depth=depth, residual=zero_residual,
                         background=zero_background, rotation=zero_rotation)
  aggregator = losses.DepthMotionFieldLossAggregator(endpoints, _model_weights())
  for key, value in aggregator.losses.items():
    assert np.isfinite(value.numpy()), key
  assert aggregator.losses['depth_variance'].numpy() == 0.0
  # The reference behaviour: 0 x (1 / 0) = NaN for a constant depth map.
  faithful = losses.DepthMotionFieldLossAggregator(
      endpoints, _model_weights(), {'skip_zero_weight_depth_variance': False})
  assert np.isnan(faithful.losses['depth_variance'].numpy())


@pytest.mark.parametrize('case', ['random', 'zero_motion', 'constant_depth'])
def test_aggregator_gradients_are_finite(case):
  if case == 'random':
    endpoints = _endpoints(seed=3)
  elif case == 'zero_motion':
    endpoints = _endpoints(seed=3, residual=[np.zeros((B, H, W, 3))] * 2,
                           background=[np.zeros((B, 1, 1, 3))] * 2,
                           rotation=[np.zeros((B, 3))] * 2)
  else:
    endpoints = _endpoints(seed=3, depth=[np.full((B, H, W, 1), 2.0)] * 2)
  sources = [t for key in ('predicted_depth', 'residual_translation', 'background_translation',
                           'rotation') for t in endpoints[key]]
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(sources)
    aggregator = losses.DepthMotionFieldLossAggregator(endpoints, _model_weights())
    total = tf.add_n(list(aggregator.losses.values()))
  assert np.isfinite(total.numpy())
  for key, loss in list(aggregator.losses.items()) + [('total', total)]:
    for gradient in tape.gradient(loss, sources):
      if gradient is not None:
        assert np.isfinite(tf.convert_to_tensor(gradient).numpy()).all(), key


def test_aggregator_scale_normalization_makes_losses_scale_invariant():
  endpoints = _endpoints(seed=4)
  scaled = {key: tuple(t * 3.0 for t in pair) if key in (
      'predicted_depth', 'residual_translation', 'background_translation') else pair
            for key, pair in endpoints.items()}
  params = {'scale_normalization': True}
  weights = dict(_model_weights(), depth_consistency=1.0, depth_variance=1e-3)
  base = losses.DepthMotionFieldLossAggregator(endpoints, weights, params).losses
  other = losses.DepthMotionFieldLossAggregator(scaled, weights, params).losses
  for key in base:
    np.testing.assert_allclose(other[key].numpy(), base[key].numpy(), rtol=2e-4, atol=1e-7,
                               err_msg=key)


def test_aggregator_target_depth_stop_gradient():
  endpoints = _endpoints(seed=9)
  weights = {key: 0.0 for key in _model_weights()}
  weights['depth_consistency'] = 1.0
  gradients = {}
  for stop in (True, False):
    with tf.GradientTape() as tape:
      tape.watch(endpoints['predicted_depth'][1])
      loss = losses.DepthMotionFieldLossAggregator(endpoints, weights, {
          'target_depth_stop_gradient': stop}).losses['depth_consistency']
    gradients[stop] = tape.gradient(loss, endpoints['predicted_depth'][1]).numpy()
  # Frame 2's depth is the target of the first half of the batch: without the
  # stop-gradient it receives the target's gradient as well.
  assert np.abs(gradients[False] - gradients[True]).max() > 1e-6


def test_aggregator_depth_supervision():
  endpoints = _endpoints(seed=5)
  depth = endpoints['predicted_depth']
  # [B,H,W] ground truth (no channel axis) is accepted too.
  supervised = dict(endpoints, groundtruth_depth=tuple(d[..., 0] + 1.0 for d in depth))
  weights = dict(_model_weights(), depth_supervision=0.5)
  result = losses.DepthMotionFieldLossAggregator(supervised, weights).losses
  np.testing.assert_allclose(result['depth_supervision'].numpy(), 2 * 0.5 * 1.0, rtol=1e-5)
  # The filter selects pixels; the loss is averaged over the selected ones.
  selection = np.zeros((B, H, W, 1), bool)
  selection[:, :, :8] = True
  gt = tuple(tf.where(tf.constant(selection), d + 2.0, d + 100.0) for d in depth)
  filtered = dict(endpoints, groundtruth_depth=gt,
                  groundtruth_depth_filter=(selection, selection))
  result = losses.DepthMotionFieldLossAggregator(filtered, weights).losses
  np.testing.assert_allclose(result['depth_supervision'].numpy(), 2 * 0.5 * 2.0, rtol=1e-5)
  # Ground truth below 0.2 (unknown) gets no weight by default.
  unknown = dict(endpoints, groundtruth_depth=tuple(tf.zeros_like(d) for d in depth))
  result = losses.DepthMotionFieldLossAggregator(unknown, weights).losses
  assert result['depth_supervision'].numpy() == 0.0


def test_aggregator_validity_mask_of_ones_changes_nothing():
  endpoints = _endpoints(seed=6)
  ones = (np.ones((B, H, W, 1), np.float32),) * 2
  base = losses.DepthMotionFieldLossAggregator(endpoints, _model_weights()).losses
  masked = losses.DepthMotionFieldLossAggregator(dict(endpoints, validity_mask=ones),
                                                 _model_weights()).losses
  for key in base:
    np.testing.assert_allclose(masked[key].numpy(), base[key].numpy(), rtol=1e-6, err_msg=key)


def test_aggregator_multi_scale_runs_and_is_finite():
  aggregator = losses.DepthMotionFieldLossAggregator(_endpoints(seed=7), _model_weights(),
                                                     {'num_scales': 2})
  single = losses.DepthMotionFieldLossAggregator(_endpoints(seed=7), _model_weights())
  for key, value in aggregator.losses.items():
    assert np.isfinite(value.numpy()), key
  assert aggregator.losses['rgb_consistency'].numpy() > single.losses['rgb_consistency'].numpy()
  assert aggregator.output_endpoints['disparity'].shape == (2 * B, H, W, 1)
  with pytest.raises(ValueError, match='num_scales'):
    losses.DepthMotionFieldLossAggregator(_endpoints(), None, {'num_scales': 0})


def test_aggregator_inside_tf_function_matches_eager():
  endpoints = _endpoints(seed=8)

  @tf.function
  def compute(endpoints):
    return losses.DepthMotionFieldLossAggregator(endpoints, _model_weights()).losses

  graph = compute(endpoints)
  eager = losses.DepthMotionFieldLossAggregator(endpoints, _model_weights()).losses
  for key in eager:
    np.testing.assert_allclose(graph[key].numpy(), eager[key].numpy(), rtol=1e-5, err_msg=key)


@pytest.mark.parametrize('change, message', [
    (lambda e: e.pop('rotation'), r'endpoints lack rotation'),
    (lambda e: e.update(predicted_depth=tuple(d[..., 0] for d in e['predicted_depth'])),
     r"endpoints\['predicted_depth'\]\[0\] must have rank 4 \[B,H,W,1\], got shape "
     r'\(2, 16, 32\)'),
    (lambda e: e.update(rgb=(e['rgb'][0], e['rgb'][1][:, :8])),
     r"endpoints\['rgb'\]\[1\] must have shape \[B,H,W,3\] with H=16"),
    (lambda e: e.update(residual_translation=tuple(
        t[:, :, :16] for t in e['residual_translation'])),
     r"endpoints\['residual_translation'\]\[0\] .*W=32"),
    (lambda e: e.update(rotation=e['rotation'][0]), r"endpoints\['rotation'\] must be a pair"),
    (lambda e: e.update(intrinsics_mat=tuple(k[:, :2] for k in e['intrinsics_mat'])),
     r"endpoints\['intrinsics_mat'\]\[0\] must have shape \[B,3,3\]"),
])
def test_aggregator_bad_endpoints(change, message):
  endpoints = _endpoints()
  change(endpoints)
  with pytest.raises(ValueError, match=message):
    losses.DepthMotionFieldLossAggregator(endpoints)
