"""The depth network: a ResNet-18 U-Net predicting positive depth (SPEC 2).

Encoder: ResNet-18 as in dalgu90/resnet-18-tensorflow (bias-free convolutions
with TF 'SAME' padding, randomized layer normalisation before every ReLU).
Decoder: transposed convolutions and skip connections up to full resolution,
then a softplus, so the output is an unbounded positive depth at one scale.

Layer and variable names follow the reference's variable scopes
(`depth_prediction/conv2_1/bn_1/gamma`, `depth_prediction/iconv5/weights`, ...);
`DepthNet.reference_variables()` gives the exact mapping that
`depth_motion.checkpoints` uses to import the reference's checkpoints.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from depth_motion import params as params_lib
from depth_motion.nets import layer_norm

ENCODER_FILTERS = (64, 64, 128, 256, 512)
DECODER_FILTERS = (16, 32, 64, 128, 256)

# The encoder halves the resolution five times and the decoder concatenates
# each upsampled map with the encoder map of the same size.
SIZE_DIVISOR = 32

_DECODER_LEVELS = (5, 4, 3, 2, 1)


def _encoder_conv(filters, kernel_size, strides, name):
  """dalgu90's `s_conv`: no bias, 'SAME', He-normal init with fan-out std sqrt(2/(k*k*C_out))."""
  stddev = math.sqrt(2.0 / (kernel_size * kernel_size * filters))
  return keras.layers.Conv2D(
      filters, kernel_size, strides=strides, padding='same', use_bias=False,
      kernel_initializer=keras.initializers.RandomNormal(stddev=stddev), name=name)


def _tf1_l2(scale):
  """TF1's `l2_regularizer(scale)` = scale * sum(w**2) / 2; None (no loss) for scale 0."""
  if not scale:
    return None
  return keras.regularizers.L2(0.5 * scale)


class ResidualBlock(keras.layers.Layer):
  """A ResNet basic block: conv_1 -> bn_1 -> ReLU -> conv_2 -> bn_2 -> + shortcut -> ReLU.

  With `strides=2` or a change of width (the first block of a stage) the
  shortcut is a bias-free 1x1 convolution of that stride (`shortcut`, no
  normalisation); the ResNet-18 layout never needs the reference's other case
  (same width, stride 2: a 2x2 max-pool), so it is not offered.
  """

  def __init__(self, filters, strides=1, name=None, **kwargs):
    super().__init__(name=name, **kwargs)
    self.filters = filters
    self.strides = strides
    self.conv_1 = _encoder_conv(filters, 3, strides, 'conv_1')
    self.bn_1 = layer_norm.RandomizedLayerNorm(name='bn_1')
    self.conv_2 = _encoder_conv(filters, 3, 1, 'conv_2')
    self.bn_2 = layer_norm.RandomizedLayerNorm(name='bn_2')
    self.shortcut = None

  def build(self, input_shape):
    in_channels = input_shape[-1]
    if in_channels != self.filters:
      self.shortcut = _encoder_conv(self.filters, 1, self.strides, 'shortcut')
      self.shortcut.build(input_shape)
    elif self.strides != 1:
      raise ValueError('ResidualBlock %s: a stride-%d block of constant width %d is not part '
                       'of ResNet-18.' % (self.name, self.strides, self.filters))
    out_shape = tuple(input_shape[:-1]) + (self.filters,)
    self.conv_1.build(input_shape)
    self.bn_1.build(out_shape)
    self.conv_2.build(out_shape)
    self.bn_2.build(out_shape)

  def call(self, x, training=False, noise_stddev=layer_norm.MAX_NOISE_STDDEV, noise_seed=None):
    shortcut = x if self.shortcut is None else self.shortcut(x)
    y = self.bn_1(self.conv_1(x), training=training, noise_stddev=noise_stddev,
                  noise_seed=noise_seed)
    y = tf.nn.relu(y)
    y = self.bn_2(self.conv_2(y), training=training, noise_stddev=noise_stddev,
                  noise_seed=noise_seed)
    return tf.nn.relu(y + shortcut)

  def reference_variables(self, prefix):
    names = {
        prefix + '/conv_1/kernel': self.conv_1.kernel,
        prefix + '/bn_1/beta': self.bn_1.beta,
        prefix + '/bn_1/gamma': self.bn_1.gamma,
        prefix + '/conv_2/kernel': self.conv_2.kernel,
        prefix + '/bn_2/beta': self.bn_2.beta,
        prefix + '/bn_2/gamma': self.bn_2.gamma,
    }
    if self.shortcut is not None:
      names[prefix + '/shortcut/kernel'] = self.shortcut.kernel
    return names


class DepthNet(keras.Model):
  """ResNet-18 U-Net depth predictor (the reference's `ResNet18DepthPredictor`).

  Args:
    params: overrides of `DEFAULT_PARAMS['depth_predictor_params']`
      (`layer_norm_noise_rampup_steps`, `weight_decay`, `learn_scale`,
      `reflect_padding`), applied strictly: an unknown key or a value of the
      wrong type raises.

  Call `net(rgb, training=False)` or `net(rgb, training=True, step=step)`:
    rgb: float [B, H, W, 3] in [0, 1], H and W multiples of 32. The network
      sees `2 * rgb - 1`.
    step: the global step (scalar tensor) driving the ramp of the layer-norm
      noise in training (`layer_norm.layer_norm_noise_stddev`); without it the
      noise is at full strength (0.5).
  Returns depth [B, H, W, 1] > 0 (times the learned `depth_scale` if
  `learn_scale`).

  `weight_decay` adds TF1-style L2 terms (weight_decay * sum(w**2) / 2) for
  the decoder kernels only to `net.losses`, as the reference does; the trainer
  adds them to the total loss. The default 0 adds none.
  """

  def __init__(self, params=None, name='depth_prediction', **kwargs):
    super().__init__(name=name, **kwargs)
    merged = params_lib.ParameterContainer.from_defaults_and_overrides(
        params_lib.DEFAULT_PARAMS['depth_predictor_params'], params, is_strict=True)
    self.params = merged.as_dict()
    self._padding_mode = 'REFLECT' if self.params['reflect_padding'] else 'CONSTANT'
    # Drawn from the global NumPy state, so `keras.utils.set_random_seed` fixes it.
    self._noise_base_seed = int(np.random.randint(0, 2**31 - 1))

    self.conv1_conv = _encoder_conv(ENCODER_FILTERS[0], 7, 2, 'conv1_conv')
    self.conv1_bn = layer_norm.RandomizedLayerNorm(name='conv1_bn')
    # Sub-layers are attributes, not lists: TF checkpoints do not track Keras 3
    # lists of layers.
    for stage, filters in zip(range(2, 6), ENCODER_FILTERS[1:]):
      for index in (1, 2):
        strides = 2 if (stage > 2 and index == 1) else 1
        name = 'conv%d_%d' % (stage, index)
        setattr(self, name, ResidualBlock(filters, strides, name=name))

    reg = _tf1_l2(self.params['weight_decay'])
    decoder = dict(kernel_initializer='glorot_uniform', bias_initializer='zeros',
                   kernel_regularizer=reg)
    for level in _DECODER_LEVELS:
      filters = DECODER_FILTERS[level - 1]
      name = 'upconv%d' % level
      setattr(self, name, keras.layers.Conv2DTranspose(
          filters, 3, strides=2, padding='same', activation='relu', name=name, **decoder))
      name = 'iconv%d' % level
      setattr(self, name, keras.layers.Conv2D(
          filters, 3, padding='valid', activation='relu', name=name, **decoder))
    self.disp1 = keras.layers.Conv2D(1, 3, padding='valid', activation='softplus',
                                     name='disp1', **decoder)
    self.depth_scale = None

  @property
  def blocks(self):
    """The residual blocks conv2_1, conv2_2, ..., conv5_2, in order."""
    return [getattr(self, 'conv%d_%d' % (stage, index))
            for stage in range(2, 6) for index in (1, 2)]

  @property
  def upconvs(self):
    """upconv5 ... upconv1."""
    return [getattr(self, 'upconv%d' % level) for level in _DECODER_LEVELS]

  @property
  def iconvs(self):
    """iconv5 ... iconv1."""
    return [getattr(self, 'iconv%d' % level) for level in _DECODER_LEVELS]

  def get_config(self):
    return {'name': self.name, 'params': dict(self.params), 'trainable': self.trainable}

  def build(self, input_shape):
    if len(input_shape) != 4 or input_shape[-1] != 3:
      raise ValueError('DepthNet input must be rgb [B, H, W, 3], got shape %s.' %
                       (tuple(input_shape),))
    shape = (None, None, None, 3)

    def with_channels(channels):
      return (None, None, None, channels)

    self.conv1_conv.build(shape)
    self.conv1_bn.build(with_channels(ENCODER_FILTERS[0]))
    channels = ENCODER_FILTERS[0]
    for block in self.blocks:
      block.build(with_channels(channels))
      channels = block.filters
    # Skip connections econv4..econv1 have 256, 128, 64, 64 channels.
    skip_channels = {5: ENCODER_FILTERS[3], 4: ENCODER_FILTERS[2], 3: ENCODER_FILTERS[1],
                     2: ENCODER_FILTERS[0], 1: 0}
    for level, upconv, iconv in zip(_DECODER_LEVELS, self.upconvs, self.iconvs):
      filters = DECODER_FILTERS[level - 1]
      upconv.build(with_channels(channels))
      iconv.build(with_channels(filters + skip_channels[level]))
      channels = filters
    self.disp1.build(with_channels(channels))
    if self.params['learn_scale']:
      self.depth_scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(1.0),
                                         name='depth_scale')

  def _check_input(self, rgb):
    rgb = tf.cast(tf.convert_to_tensor(rgb), tf.float32)
    shape = rgb.shape
    if shape.rank != 4 or shape[-1] != 3:
      raise ValueError('DepthNet input rgb must have shape [B, H, W, 3], got shape %s.' %
                       (tuple(shape),))
    height, width = shape[1], shape[2]
    if height is not None and width is not None:
      if height % SIZE_DIVISOR or width % SIZE_DIVISOR:
        raise ValueError('DepthNet input rgb must have height and width divisible by %d (the '
                         'encoder downsamples 5 times), got %dx%d.' %
                         (SIZE_DIVISOR, height, width))
    else:
      dims = tf.shape(rgb)[1:3]
      tf.debugging.assert_equal(
          dims % SIZE_DIVISOR, tf.zeros_like(dims),
          message='DepthNet input rgb must have height and width divisible by 32')
    return rgb

  def _pad(self, x):
    return tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode=self._padding_mode)

  def _noise_seed(self, step):
    """A stateless seed from (this net's base seed, step, replica): resumable noise."""
    seed = tf.stack([tf.constant(self._noise_base_seed, tf.int64),
                     tf.cast(tf.round(tf.cast(step, tf.float64)), tf.int64)])
    context = tf.distribute.get_replica_context()
    if context is not None:
      replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
      seed = tf.random.experimental.stateless_fold_in(seed, replica)
    return seed

  def compute_endpoints(self, rgb, training=False, step=None):
    """Runs the network and returns every stage's activation, keyed by reference scope.

    Keys: 'conv1' (econv1), 'pool1', 'conv2_1' ... 'conv5_2' (block outputs;
    conv2_2..conv5_2 are econv2..econv5), 'upconv5', 'iconv5', ..., 'upconv1',
    'iconv1', 'depth'.
    """
    rgb = self._check_input(rgb)
    if not self.built:
      self.build(rgb.shape)
    noise_seed = None
    if training:
      sigma = layer_norm.layer_norm_noise_stddev(
          step, self.params['layer_norm_noise_rampup_steps'])
      if step is not None:
        noise_seed = self._noise_seed(step)
    else:
      sigma = 0.0
    ends = {}
    x = 2.0 * rgb - 1.0
    x = self.conv1_bn(self.conv1_conv(x), training=training, noise_stddev=sigma,
                      noise_seed=noise_seed)
    ends['conv1'] = x = tf.nn.relu(x)
    ends['pool1'] = x = tf.nn.max_pool2d(x, 3, 2, 'SAME')
    for block in self.blocks:
      ends[block.name] = x = block(x, training=training, noise_stddev=sigma,
                                   noise_seed=noise_seed)

    skips = {5: ends['conv4_2'], 4: ends['conv3_2'], 3: ends['conv2_2'], 2: ends['conv1']}
    for level, upconv, iconv in zip(_DECODER_LEVELS, self.upconvs, self.iconvs):
      ends['upconv%d' % level] = x = upconv(x)
      if level in skips:
        x = tf.concat([x, skips[level]], axis=3)
      ends['iconv%d' % level] = x = iconv(self._pad(x))
    depth = self.disp1(self._pad(x))
    if self.depth_scale is not None:
      depth = self.depth_scale * depth
    ends['depth'] = depth
    return ends

  def call(self, rgb, training=False, step=None):
    return self.compute_endpoints(rgb, training=training, step=step)['depth']

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (1,)

  def reference_variables(self):
    """{reference checkpoint name: variable} for every variable of the network."""
    if not self.built:
      raise ValueError('DepthNet %r is not built: call it once or call net.build((None, None, '
                       'None, 3)) first.' % self.name)
    prefix = 'depth_prediction/'
    names = {
        prefix + 'conv1/conv/kernel': self.conv1_conv.kernel,
        prefix + 'conv1/bn/beta': self.conv1_bn.beta,
        prefix + 'conv1/bn/gamma': self.conv1_bn.gamma,
    }
    for block in self.blocks:
      names.update(block.reference_variables(prefix + block.name))
    for layer in list(self.upconvs) + list(self.iconvs) + [self.disp1]:
      names[prefix + layer.name + '/weights'] = layer.kernel
      names[prefix + layer.name + '/biases'] = layer.bias
    if self.depth_scale is not None:
      names[prefix + 'depth_scale'] = self.depth_scale
    return names
