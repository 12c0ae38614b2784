"""Tests of depth_motion.checkpoints: the reference's names, TF1 checkpoints, ImageNet init.

The reference checkpoint here is written the way the reference trainer writes
one (tf.compat.v1 variables named by their scopes, saved by a v1 Saver, with
Adam slots and a global step), from random weights whose names and shapes come
from tests/data/reference_nets_vars.txt. A plain-tf.nn re-statement of the
reference networks (`_reference_depth`, `_reference_motion`, written from the
reference's code and reading weights by reference name) checks that each
imported weight lands where the reference used it.
"""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import checkpoints
from depth_motion import nets

VARS_PATH = os.path.join(os.path.dirname(__file__), 'data', 'reference_nets_vars.txt')


def _reference_variable_shapes():
  """{name: shape} of every variable in reference_nets_vars.txt."""
  shapes = {}
  with open(VARS_PATH, encoding='utf-8') as f:
    for line in f:
      match = re.fullmatch(r'(\S+) \[([\d,]*)\] (\w+) (\d+) (trainable|non-trainable)\s*', line)
      if match:
        dims = match.group(2)
        shapes[match.group(1)] = tuple(int(d) for d in dims.split(',')) if dims else ()
  return shapes


def _network_shapes():
  return {n: s for n, s in _reference_variable_shapes().items() if n != 'global_step'}


@pytest.fixture(scope='module')
def reference_weights():
  """Random weights under the reference names, scaled to keep activations moderate."""
  rng = np.random.RandomState(0)
  weights = {}
  for name, shape in sorted(_network_shapes().items()):
    if name.endswith(('/kernel', '/weights')):
      fan_in = int(np.prod(shape[:-1]))
      if '/upconv' in name:  # Transposed-conv kernels are [h, w, out, in].
        fan_in = shape[0] * shape[1] * shape[3]
      value = rng.normal(scale=np.sqrt(1.0 / fan_in), size=shape)
    elif name.endswith('/gamma'):
      value = 1.0 + rng.normal(scale=0.1, size=shape)
    elif name.endswith('/Scales/rotation'):
      value = np.array(0.02)
    elif name.endswith('/Scales/translation'):
      value = np.array(0.03)
    else:  # biases, betas
      value = rng.normal(scale=0.1, size=shape)
    weights[name] = value.astype(np.float32)
  return weights


def _write_tf1_checkpoint(arrays, prefix, extra_optimizer_state=True):
  """Saves `arrays` as tf.compat.v1 variables with a v1 Saver, as the reference trainer did."""
  graph = tf.Graph()
  with graph.as_default():
    assigns = []
    feeds = {}
    for name, value in arrays.items():
      variable = tf.compat.v1.get_variable(name, shape=value.shape, dtype=tf.float32,
                                           initializer=tf.compat.v1.zeros_initializer())
      placeholder = tf.compat.v1.placeholder(tf.float32, value.shape)
      assigns.append(variable.assign(placeholder))
      feeds[placeholder] = value
    if extra_optimizer_state:
      for name in sorted(arrays)[:3]:
        for slot in ('Adam', 'Adam_1'):
          tf.compat.v1.get_variable('%s/%s' % (name, slot), shape=arrays[name].shape,
                                    initializer=tf.compat.v1.ones_initializer())
      tf.compat.v1.get_variable('beta1_power', shape=(),
                                initializer=tf.compat.v1.ones_initializer())
      tf.compat.v1.train.get_or_create_global_step()
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(tf.compat.v1.global_variables_initializer())
      session.run(assigns, feeds)
      return saver.save(session, prefix, write_meta_graph=False)


@pytest.fixture(scope='module')
def reference_checkpoint(tmp_path_factory, reference_weights):
  prefix = str(tmp_path_factory.mktemp('reference') / 'model.ckpt')
  return _write_tf1_checkpoint(reference_weights, prefix)


# ---------------------------------------------------------------------------- reference networks
# A direct, functional statement of the reference graph (depth_prediction_nets.py and
# object_motion_nets.py) on plain tf.nn ops, weights looked up by reference name.


def _layer_norm(w, x, scope):
  mean, variance = tf.nn.moments(x, [1, 2], keepdims=True)
  return tf.nn.batch_normalization(x, mean, variance, w[scope + '/beta'], w[scope + '/gamma'],
                                   1e-3)


def _reference_depth(w, rgb):
  p = 'depth_prediction/'

  def s_conv(x, scope, stride):
    return tf.nn.conv2d(x, w[p + scope + '/kernel'], stride, 'SAME')

  def block(x, scope, out_channels, stride):
    if x.shape[-1] == out_channels:
      shortcut = x
    else:
      shortcut = s_conv(x, scope + '/shortcut', stride)
    x = tf.nn.relu(_layer_norm(w, s_conv(x, scope + '/conv_1', stride), p + scope + '/bn_1'))
    x = _layer_norm(w, s_conv(x, scope + '/conv_2', 1), p + scope + '/bn_2')
    return tf.nn.relu(x + shortcut)

  x = 2 * rgb - 1.0
  econv1 = tf.nn.relu(_layer_norm(w, s_conv(x, 'conv1/conv', 2), p + 'conv1/bn'))
  x = tf.nn.max_pool(econv1, [1, 3, 3, 1], [1, 2, 2, 1], 'SAME')
  econv2 = block(block(x, 'conv2_1', 64, 1), 'conv2_2', 64, 1)
  econv3 = block(block(econv2, 'conv3_1', 128, 2), 'conv3_2', 128, 1)
  econv4 = block(block(econv3, 'conv4_1', 256, 2), 'conv4_2', 256, 1)
  x = block(block(econv4, 'conv5_1', 512, 2), 'conv5_2', 512, 1)

  def upconv(x, scope):
    kernel = w[p + scope + '/weights']
    shape = tf.shape(x)
    out_shape = tf.stack([shape[0], shape[1] * 2, shape[2] * 2, kernel.shape[2]])
    y = tf.nn.conv2d_transpose(x, kernel, out_shape, [1, 2, 2, 1], 'SAME')
    return tf.nn.relu(y + w[p + scope + '/biases'])

  def pad(x):
    return tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])

  def conv_valid(x, scope):
    return tf.nn.conv2d(pad(x), w[p + scope + '/weights'], 1, 'VALID') + w[p + scope + '/biases']

  for level, skip in zip((5, 4, 3, 2), (econv4, econv3, econv2, econv1)):
    x = upconv(x, 'upconv%d' % level)
    x = tf.nn.relu(conv_valid(tf.concat([x, skip], 3), 'iconv%d' % level))
  x = tf.nn.relu(conv_valid(upconv(x, 'upconv1'), 'iconv1'))
  return tf.nn.softplus(conv_valid(x, 'disp1'))


def _reference_motion(w, images, auto_mask=True):
  p = 'MotionFieldNet/'

  def conv(x, scope, stride=1, bias=True, relu=True):
    y = tf.nn.conv2d(x, w[p + scope + '/weights'], stride, 'SAME')
    if bias:
      y += w[p + scope + '/biases']
    return tf.nn.relu(y) if relu else y

  def refine(field, layer, scope):
    size = tf.shape(layer)[1:3]
    up = tf.compat.v1.image.resize_bilinear(field, size, align_corners=True)
    x = tf.concat([up, layer], 3)
    out_a = conv(x, scope + '/Conv')
    out_b = conv(conv(x, scope + '/Conv_1'), scope + '/Conv_2')
    return up + conv(tf.concat([out_a, out_b], -1), scope + '/Conv_3', bias=False, relu=False)

  features = []
  x = images
  for i in range(1, 8):
    x = conv(x, 'Conv%d' % i, stride=2)
    features.append(x)
  bottleneck = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
  background_motion = conv(bottleneck, 'background_motion', bias=False, relu=False)
  rotation = background_motion[:, 0, 0, :3]
  background_translation = background_motion[:, :, :, 3:]
  residual = conv(background_motion, 'unrefined_residual_translation', relu=False)
  for i in range(7, 0, -1):
    residual = refine(residual, features[i - 1], 'Refine%d' % i)
  residual = refine(residual, images, 'RefineImages')
  rot_scale, trans_scale = w[p + 'Scales/rotation'], w[p + 'Scales/translation']
  background_translation *= trans_scale
  residual *= trans_scale
  rotation *= rot_scale
  if auto_mask:
    norm = tf.sqrt(tf.reduce_sum(residual**2, axis=3, keepdims=True))
    residual *= tf.cast(norm > tf.reduce_mean(norm, axis=[0, 1, 2]), tf.float32)
  height, width = tf.unstack(tf.shape(images)[1:3])
  size = tf.cast(tf.convert_to_tensor([[width, height]]), tf.float32)
  foci = tf.squeeze(tf.nn.softplus(conv(bottleneck, 'CameraIntrinsics/foci', relu=False)),
                    axis=(1, 2)) * size
  offsets = (tf.squeeze(conv(bottleneck, 'CameraIntrinsics/offsets', bias=False, relu=False),
                        axis=(1, 2)) + 0.5) * size
  intrinsics = tf.concat([tf.linalg.diag(foci), tf.expand_dims(offsets, -1)], axis=2)
  last_row = tf.tile([[[0.0, 0.0, 1.0]]], [tf.shape(images)[0], 1, 1])
  intrinsics = tf.concat([intrinsics, last_row], axis=1)
  return rotation, background_translation, residual, intrinsics


def _inputs(seed=0):
  rng = np.random.RandomState(seed)
  rgb = tf.constant(rng.uniform(size=(2, 32, 64, 3)), tf.float32)
  pairs = rng.uniform(size=(2, 32, 64, 8))
  pairs[..., [3, 7]] = rng.uniform(1.0, 10.0, size=(2, 32, 64, 2))
  return rgb, tf.constant(pairs, tf.float32)


def _assert_close(actual, expected, rtol=1e-4):
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape
  assert np.max(np.abs(actual - expected)) <= 1e-6 + rtol * np.max(np.abs(expected))


# ---------------------------------------------------------------------------- names


def test_reference_variable_names_match_the_reference_exactly():
  depth_net, motion_net = nets.DepthNet(), nets.MotionFieldNet()
  depth_net.build((None, None, None, 3))
  motion_net.build((None, None, None, 8))
  names = checkpoints.reference_variable_names(depth_net, motion_net)
  ours = {name: tuple(v.shape) for name, v in names.items()}
  assert ours == _network_shapes()
  assert len(ours) == 154
  assert ({id(v) for v in names.values()} ==
          {id(v) for v in depth_net.trainable_variables + motion_net.trainable_variables})
  assert set(checkpoints.reference_variable_names(depth_net)) == {
      n for n in ours if n.startswith('depth_prediction/')}


def test_reference_variable_names_require_built_networks():
  with pytest.raises(ValueError, match='not built'):
    checkpoints.reference_variable_names(nets.DepthNet())


# ---------------------------------------------------------------------------- reference import


def test_import_reproduces_the_reference_computation(reference_checkpoint, reference_weights):
  depth_net, motion_net = nets.DepthNet(), nets.MotionFieldNet()  # Built by the import.
  assigned = checkpoints.import_reference_checkpoint(reference_checkpoint, depth_net, motion_net)
  assert assigned == sorted(_network_shapes())
  assert motion_net.convs[0].kernel.shape == (3, 3, 8, 16)

  # Same as nets whose weights are assigned directly.
  direct_depth, direct_motion = nets.DepthNet(), nets.MotionFieldNet()
  direct_depth.build((None, None, None, 3))
  direct_motion.build((None, None, None, 8))
  for name, variable in checkpoints.reference_variable_names(direct_depth,
                                                             direct_motion).items():
    variable.assign(reference_weights[name])
  rgb, pairs = _inputs()
  np.testing.assert_array_equal(depth_net(rgb).numpy(), direct_depth(rgb).numpy())
  for ours, direct in zip(motion_net(pairs), direct_motion(pairs)):
    np.testing.assert_array_equal(ours.numpy(), direct.numpy())

  # And what the reference graph computes with these weights.
  reader = tf.train.load_checkpoint(reference_checkpoint)
  w = {name: tf.constant(reader.get_tensor(name)) for name in _network_shapes()}
  _assert_close(depth_net(rgb), _reference_depth(w, rgb))
  outputs = motion_net(pairs)
  expected = _reference_motion(w, pairs)
  for name, ours, ref in zip(('rotation', 'background', 'residual', 'intrinsics'), outputs,
                             expected):
    assert np.max(np.abs(ref.numpy())) > 0, name
    _assert_close(ours, ref)
  motion_net.auto_mask = False
  _assert_close(motion_net(pairs)[2], _reference_motion(w, pairs, auto_mask=False)[2])


def test_import_lists_every_missing_and_misshaped_variable(tmp_path, reference_weights):
  arrays = {n: v for n, v in reference_weights.items() if n.startswith('depth_prediction/')}
  del arrays['depth_prediction/conv3_1/shortcut/kernel']
  del arrays['depth_prediction/conv5_2/bn_2/gamma']
  arrays['depth_prediction/iconv2/weights'] = np.zeros([3, 3, 64, 32], np.float32)
  prefix = str(tmp_path / 'broken.ckpt')
  _write_tf1_checkpoint(arrays, prefix, extra_optimizer_state=False)

  depth_net = nets.DepthNet()
  depth_net.build((None, None, None, 3))
  before = [v.numpy() for v in depth_net.trainable_variables]
  with pytest.raises(ValueError) as error:
    checkpoints.import_reference_checkpoint(prefix, depth_net=depth_net)
  message = str(error.value)
  assert '3 problems' in message
  assert 'depth_prediction/conv3_1/shortcut/kernel is not in the checkpoint' in message
  assert 'depth_prediction/conv5_2/bn_2/gamma is not in the checkpoint' in message
  assert ('depth_prediction/iconv2/weights has shape [3,3,64,32] in the checkpoint but '
          '[3,3,96,32] in the network') in message
  # Nothing was assigned.
  for old, variable in zip(before, depth_net.trainable_variables):
    np.testing.assert_array_equal(old, variable.numpy())

  # A checkpoint without the motion net cannot even build it; a built one lists everything.
  with pytest.raises(ValueError, match='MotionFieldNet/Conv1/weights'):
    checkpoints.import_reference_checkpoint(prefix, motion_net=nets.MotionFieldNet())
  motion_net = nets.MotionFieldNet()
  motion_net.build((None, None, None, 8))
  with pytest.raises(ValueError, match='(?s)78 problems.*MotionFieldNet/Scales/rotation is not'):
    checkpoints.import_reference_checkpoint(prefix, motion_net=motion_net)


def test_import_rejects_variables_the_network_lacks(tmp_path, reference_weights):
  arrays = {n: v for n, v in reference_weights.items() if n.startswith('depth_prediction/')}
  arrays['depth_prediction/depth_scale'] = np.array(3.0, np.float32)
  prefix = checkpoints.write_checkpoint(arrays, str(tmp_path / 'scaled.ckpt'))
  with pytest.raises(ValueError, match='(?s)learn_scale.*depth_prediction/depth_scale'):
    checkpoints.import_reference_checkpoint(prefix, depth_net=nets.DepthNet())
  scaled = nets.DepthNet(params={'learn_scale': True})
  assigned = checkpoints.import_reference_checkpoint(prefix, depth_net=scaled)
  assert 'depth_prediction/depth_scale' in assigned
  assert float(scaled.depth_scale.numpy()) == 3.0


def test_import_argument_errors(tmp_path):
  with pytest.raises(ValueError, match='at least one'):
    checkpoints.import_reference_checkpoint(str(tmp_path))
  with pytest.raises(ValueError, match='Cannot read a TensorFlow checkpoint'):
    checkpoints.import_reference_checkpoint(str(tmp_path / 'nothing'), depth_net=nets.DepthNet())


def test_export_round_trip_with_per_video_intrinsics(tmp_path):
  depth_net = nets.DepthNet()
  intrinsics = nets.PerVideoIntrinsics(max_number_of_videos=5)
  depth_net.build((None, None, None, 3))
  intrinsics.build()
  intrinsics.all_intrin.assign(np.random.RandomState(1).uniform(size=(5, 4)))
  prefix = checkpoints.export_reference_checkpoint(str(tmp_path / 'ours.ckpt'), depth_net,
                                                   per_video_intrinsics=intrinsics)
  assert sorted(os.listdir(tmp_path)) == ['ours.ckpt.data-00000-of-00001', 'ours.ckpt.index']
  restored, restored_intrinsics = nets.DepthNet(), nets.PerVideoIntrinsics(max_number_of_videos=5)
  assigned = checkpoints.import_reference_checkpoint(
      prefix, depth_net=restored, per_video_intrinsics=restored_intrinsics)
  assert 'all_intrin' in assigned and len(assigned) == 77
  np.testing.assert_array_equal(restored_intrinsics.all_intrin.numpy(),
                                intrinsics.all_intrin.numpy())
  for a, b in zip(restored.trainable_variables, depth_net.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---------------------------------------------------------------------------- ImageNet init


def _torchvision_resnet18_state_dict(seed=0):
  """Random arrays with the keys and shapes of torchvision's resnet18().state_dict()."""
  rng = np.random.RandomState(seed)
  shapes = {'conv1.weight': (64, 3, 7, 7)}

  def batch_norm(prefix, channels):
    for field in ('weight', 'bias', 'running_mean', 'running_var'):
      shapes['%s.%s' % (prefix, field)] = (channels,)
    shapes[prefix + '.num_batches_tracked'] = ()

  batch_norm('bn1', 64)
  in_channels = 64
  for stage, channels in zip(range(1, 5), (64, 128, 256, 512)):
    for block in (0, 1):
      prefix = 'layer%d.%d' % (stage, block)
      shapes[prefix + '.conv1.weight'] = (channels, in_channels, 3, 3)
      batch_norm(prefix + '.bn1', channels)
      shapes[prefix + '.conv2.weight'] = (channels, channels, 3, 3)
      batch_norm(prefix + '.bn2', channels)
      if block == 0 and stage > 1:
        shapes[prefix + '.downsample.0.weight'] = (channels, in_channels, 1, 1)
        batch_norm(prefix + '.downsample.1', channels)
      in_channels = channels
  shapes['fc.weight'] = (1000, 512)
  shapes['fc.bias'] = (1000,)
  return {k: (rng.normal(size=s).astype(np.float32) if s else np.array(7, np.int64))
          for k, s in shapes.items()}


def test_torchvision_conversion_and_imagenet_import(tmp_path):
  state = _torchvision_resnet18_state_dict()
  prefix = checkpoints.convert_torchvision_resnet18(state, str(tmp_path / 'resnet18'))
  reader = tf.train.load_checkpoint(prefix)
  stored = reader.get_variable_to_shape_map()
  assert 'conv2_1/bn_1/mu' in stored and 'conv5_2/bn_2/sigma' in stored
  assert not any('fc' in n or 'downsample' in n for n in stored)

  depth_net = nets.DepthNet()
  depth_net.build((None, None, None, 3))
  decoder_before = {n: v.numpy() for n, v in depth_net.reference_variables().items()
                    if re.search(r'/(upconv|iconv|disp)\d/', n)}
  assert len(decoder_before) == 22
  assigned = checkpoints.import_imagenet_checkpoint(prefix, depth_net)
  assert len(assigned) == 54
  assert not any(key in n for n in assigned for key in ('iconv', 'upconv', 'disp'))
  ours = depth_net.reference_variables()
  np.testing.assert_array_equal(ours['depth_prediction/conv1/conv/kernel'].numpy(),
                                state['conv1.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(ours['depth_prediction/conv1/bn/gamma'].numpy(),
                                state['bn1.weight'])
  np.testing.assert_array_equal(ours['depth_prediction/conv3_1/shortcut/kernel'].numpy(),
                                state['layer2.0.downsample.0.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(ours['depth_prediction/conv4_2/conv_1/kernel'].numpy(),
                                state['layer3.1.conv1.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(ours['depth_prediction/conv5_2/bn_2/beta'].numpy(),
                                state['layer4.1.bn2.bias'])
  for name, value in decoder_before.items():
    np.testing.assert_array_equal(ours[name].numpy(), value)


def test_imagenet_import_and_conversion_errors(tmp_path):
  state = _torchvision_resnet18_state_dict()
  del state['layer3.0.conv2.weight']
  with pytest.raises(ValueError, match='conv4_1/conv_2/kernel'):
    checkpoints.torchvision_resnet18_to_reference(state)
  with pytest.raises(ValueError, match='layer9'):
    checkpoints.torchvision_resnet18_to_reference({'layer9.0.conv1.weight': np.zeros(1)})

  arrays = {'conv1/conv/kernel': np.zeros([7, 7, 3, 32], np.float32),
            'conv1/bn/beta': np.zeros([64], np.float32)}
  prefix = checkpoints.write_checkpoint(arrays, str(tmp_path / 'partial'))
  with pytest.raises(ValueError) as error:
    checkpoints.import_imagenet_checkpoint(prefix, nets.DepthNet())
  message = str(error.value)
  assert '53 problems' in message
  assert 'conv1/conv/kernel has shape [7,7,3,32] in the checkpoint but [7,7,3,64]' in message
  assert 'conv1/bn/gamma is not in the checkpoint' in message
  assert 'iconv' not in message
