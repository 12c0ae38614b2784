"""The motion network and learned intrinsics (SPEC 3).

`MotionFieldNet` takes two frames stacked along channels (RGB + predicted depth
of each with the default cascade: 8 channels) and predicts the camera motion
between them (rotation angles, background translation), a dense residual
translation field for moving objects, and the camera intrinsics. The field is
built coarse to fine from the encoder's feature maps, FlowNet-style
(`RefineMotionField`).

`PerVideoIntrinsics` holds one learned intrinsics vector per video, for
training on videos whose camera is unknown (`learn_intrinsics.per_video`).

Layer and variable names follow the reference's variable scopes
(`MotionFieldNet/Refine3/Conv_1/weights`, `MotionFieldNet/Scales/rotation`,
...); `MotionFieldNet.reference_variables()` gives the exact mapping.
"""

import keras
import tensorflow as tf

ENCODER_FILTERS = (16, 32, 64, 128, 256, 512, 1024)

# The rotation and translation outputs are multiplied by learned scales that
# start small (the network starts near "no motion") and are kept above a floor.
SCALE_INITIAL_VALUE = 0.01
SCALE_MINIMUM = 0.001


def _tf1_l2(scale):
  """TF1's `l2_regularizer(scale)` = scale * sum(w**2) / 2; None (no loss) for scale 0."""
  if not scale:
    return None
  return keras.regularizers.L2(0.5 * scale)


def resize_bilinear(images, size, align_corners):
  """TF1 `resize_bilinear`: no half-pixel offset; corners aligned if `align_corners`.

  With `align_corners=True` output pixel i samples input position
  i * (in - 1) / (out - 1); otherwise i * in / out. `tf.image.resize` (half-pixel
  centres) computes something else.
  """
  return tf.raw_ops.ResizeBilinear(images=images, size=size, align_corners=align_corners,
                                   half_pixel_centers=False)


@keras.saving.register_keras_serializable(package='depth_motion')
class MinimumValue(keras.constraints.Constraint):
  """Keeps a variable at or above `minimum` (the reference's relu(x - m) + m).

  Keras optimizers apply it to the variable after each update.
  """

  def __init__(self, minimum):
    self.minimum = minimum

  def __call__(self, w):
    return tf.nn.relu(w - self.minimum) + self.minimum

  def get_config(self):
    return {'minimum': self.minimum}


class RefineMotionField(keras.layers.Layer):
  """One refinement stage: upsamples a motion field to a feature map's size and corrects it.

  `layer(motion_field [N, h1, w1, m], features [N, h2, w2, c])` returns
  `up + Conv_3(concat(Conv(x), Conv_2(Conv_1(x))))` with `up` the field resized
  bilinearly to (h2, w2) (TF1 semantics, see `resize_bilinear`), x =
  concat(up, features), Conv* 3x3 ReLU convolutions of width max(4, c) and
  Conv_3 a 1x1 convolution to m channels without bias or activation.
  """

  def __init__(self, align_corners=True, kernel_regularizer=None, name=None, **kwargs):
    super().__init__(name=name, **kwargs)
    self.align_corners = align_corners
    self.kernel_regularizer = kernel_regularizer

  def build(self, motion_field_shape, features_shape):
    field_channels = motion_field_shape[-1]
    width = max(4, features_shape[-1])
    common = dict(padding='same', kernel_initializer='glorot_uniform',
                  kernel_regularizer=self.kernel_regularizer)
    self.conv = keras.layers.Conv2D(width, 3, activation='relu', name='Conv', **common)
    self.conv_1 = keras.layers.Conv2D(width, 3, activation='relu', name='Conv_1', **common)
    self.conv_2 = keras.layers.Conv2D(width, 3, activation='relu', name='Conv_2', **common)
    self.conv_3 = keras.layers.Conv2D(field_channels, 1, use_bias=False, name='Conv_3',
                                      **common)
    in_shape = (None, None, None, field_channels + features_shape[-1])
    self.conv.build(in_shape)
    self.conv_1.build(in_shape)
    self.conv_2.build((None, None, None, width))
    self.conv_3.build((None, None, None, 2 * width))

  def call(self, motion_field, features):
    size = tf.shape(features)[1:3]
    # The resize computes in float32; back to the compute dtype (mixed precision).
    upsampled = tf.cast(resize_bilinear(motion_field, size, self.align_corners), features.dtype)
    x = tf.concat([upsampled, features], axis=3)
    branch_a = self.conv(x)
    branch_b = self.conv_2(self.conv_1(x))
    return upsampled + self.conv_3(tf.concat([branch_a, branch_b], axis=-1))

  def reference_variables(self, prefix):
    names = {}
    for scope, conv in (('Conv', self.conv), ('Conv_1', self.conv_1), ('Conv_2', self.conv_2)):
      names['%s/%s/weights' % (prefix, scope)] = conv.kernel
      names['%s/%s/biases' % (prefix, scope)] = conv.bias
    names[prefix + '/Conv_3/weights'] = self.conv_3.kernel
    return names


class Scales(keras.layers.Layer):
  """The learned scalar scales of rotation and translation (`Scales/rotation`, `.../translation`).

  Both start at 0.01 and carry the constraint max(x, 0.001), which Keras
  optimizers apply after every update (a custom training loop that does not
  call `optimizer.apply` must apply `variable.constraint` itself).
  """

  def build(self, input_shape=None):
    del input_shape
    initial = keras.initializers.Constant(SCALE_INITIAL_VALUE)
    constraint = MinimumValue(SCALE_MINIMUM)
    self.rotation = self.add_weight(shape=(), initializer=initial, constraint=constraint,
                                    name='rotation')
    self.translation = self.add_weight(shape=(), initializer=initial, constraint=constraint,
                                       name='translation')

  def call(self, rotation, background_translation, residual_translation):
    return (rotation * self.rotation, background_translation * self.translation,
            residual_translation * self.translation)


def _intrinsics_matrix(fx, fy, x0, y0):
  """[B, 3, 3] matrices [[fx, 0, x0], [0, fy, y0], [0, 0, 1]] from [B] vectors."""
  zero = tf.zeros_like(fx)
  one = tf.ones_like(fx)
  return tf.stack([
      tf.stack([fx, zero, x0], axis=-1),
      tf.stack([zero, fy, y0], axis=-1),
      tf.stack([zero, zero, one], axis=-1),
  ], axis=-2)


class IntrinsicsHead(keras.layers.Layer):
  """Predicts the camera intrinsics from the bottleneck (`CameraIntrinsics`, SPEC 3.4).

  `layer(bottleneck [B, 1, 1, C], image_height, image_width)` returns K
  [B, 3, 3] with (fx, fy) = softplus(`foci`) * (W, H) and
  (x0, y0) = (`offsets` + 0.5) * (W, H): focal lengths are of the order of the
  image size and the principal point starts at the image centre. Not
  regularised.
  """

  def __init__(self, name='CameraIntrinsics', **kwargs):
    super().__init__(name=name, **kwargs)
    self.foci = keras.layers.Conv2D(2, 1, activation='softplus',
                                    kernel_initializer='glorot_uniform', name='foci')
    self.offsets = keras.layers.Conv2D(2, 1, use_bias=False,
                                       kernel_initializer='glorot_uniform', name='offsets')

  def build(self, bottleneck_shape):
    self.foci.build(bottleneck_shape)
    self.offsets.build(bottleneck_shape)

  def call(self, bottleneck, image_height, image_width):
    size = tf.cast(tf.stack([image_width, image_height]), tf.float32)[tf.newaxis]
    # In float32 under mixed precision too: bfloat16 would round a focal length of
    # a few hundred pixels to the nearest 1-2 pixels.
    foci = tf.cast(tf.squeeze(self.foci(bottleneck), axis=(1, 2)), tf.float32)
    offsets = tf.cast(tf.squeeze(self.offsets(bottleneck), axis=(1, 2)), tf.float32)
    focal_lengths = foci * size
    offsets = (offsets + 0.5) * size
    return _intrinsics_matrix(focal_lengths[:, 0], focal_lengths[:, 1], offsets[:, 0],
                              offsets[:, 1])

  def reference_variables(self, prefix):
    return {
        prefix + '/foci/weights': self.foci.kernel,
        prefix + '/foci/biases': self.foci.bias,
        prefix + '/offsets/weights': self.offsets.kernel,
    }


class MotionFieldNet(keras.Model):
  """Predicts camera motion, a residual translation field and intrinsics from a frame pair.

  Args:
    weight_reg: L2 weight regularisation (TF1 style, weight_reg * sum(w**2) / 2)
      of the kernels of every convolution except the intrinsics head, as in
      the reference; the terms appear in `net.losses`. 0 adds none.
    align_corners: `align_corners` of the bilinear upsampling in the refinement
      stages (TF1 semantics, no half-pixel offset either way).
    auto_mask: zero the residual translation wherever its norm is not above
      the mean norm over the whole batch (no gradient through the mask).

  Call `net(pairs, training=False)` with pairs [B, H, W, C] (frame 1 then
  frame 2 along channels). Returns `(rotation [B, 3], background_translation
  [B, 1, 1, 3], residual_translation [B, H, W, 3], intrinsics_mat [B, 3, 3])`,
  rotation as Euler angles in radians (R = Rx Ry Rz, `geometry`). `training`
  changes nothing (no dropout or batch statistics); it is accepted for Keras.
  """

  def __init__(self, weight_reg=0.0, align_corners=True, auto_mask=True, name='MotionFieldNet',
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.weight_reg = weight_reg
    self.align_corners = align_corners
    self.auto_mask = auto_mask
    reg = _tf1_l2(weight_reg)
    conv = dict(kernel_initializer='glorot_uniform', bias_initializer='zeros',
                kernel_regularizer=reg)
    # Sub-layers are attributes, not lists: TF checkpoints do not track Keras 3
    # lists of layers.
    for i, filters in enumerate(ENCODER_FILTERS):
      setattr(self, 'conv%d' % (i + 1), keras.layers.Conv2D(
          filters, 3, strides=2, padding='same', activation='relu', name='Conv%d' % (i + 1),
          **conv))
    self.background_motion = keras.layers.Conv2D(6, 1, use_bias=False, name='background_motion',
                                                 **conv)
    self.unrefined_residual_translation = keras.layers.Conv2D(
        3, 1, name='unrefined_residual_translation', **conv)
    # Coarse to fine: Refine7 refines with Conv7's features, ..., Refine1 with
    # Conv1's, RefineImages with the input itself.
    for level in range(7, 0, -1):
      setattr(self, 'refine%d' % level,
              RefineMotionField(align_corners, reg, name='Refine%d' % level))
    self.refine_images = RefineMotionField(align_corners, reg, name='RefineImages')
    self.scales = Scales(name='Scales')
    self.intrinsics_head = IntrinsicsHead(name='CameraIntrinsics')

  @property
  def convs(self):
    """Conv1 ... Conv7."""
    return [getattr(self, 'conv%d' % i) for i in range(1, 8)]

  @property
  def refines(self):
    """The refinement stages from coarse to fine: Refine7 ... Refine1, RefineImages."""
    return [getattr(self, 'refine%d' % level) for level in range(7, 0, -1)] + [self.refine_images]

  def get_config(self):
    return {'name': self.name, 'weight_reg': self.weight_reg,
            'align_corners': self.align_corners, 'auto_mask': self.auto_mask,
            'trainable': self.trainable}

  def build(self, input_shape):
    if len(input_shape) != 4 or input_shape[-1] is None:
      raise ValueError('MotionFieldNet input must be pairs [B, H, W, C] with a known C, got '
                       'shape %s.' % (tuple(input_shape),))

    def with_channels(channels):
      return (None, None, None, channels)

    channels = input_shape[-1]
    feature_channels = []
    for conv in self.convs:
      conv.build(with_channels(channels))
      channels = conv.filters
      feature_channels.append(channels)
    self.background_motion.build(with_channels(channels))
    self.unrefined_residual_translation.build(with_channels(6))
    features = feature_channels[::-1] + [input_shape[-1]]
    for refine, features_channels in zip(self.refines, features):
      refine.build(with_channels(3), with_channels(features_channels))
    self.scales.build()
    self.intrinsics_head.build(with_channels(ENCODER_FILTERS[-1]))

  def compute_endpoints(self, pairs, training=False, refine_residual=True):
    """Runs the network and returns its intermediate activations and outputs.

    Keys: 'Conv1' ... 'Conv7', 'bottleneck', 'background_motion',
    'unrefined_residual_translation', 'Refine7' ... 'Refine1', 'RefineImages'
    (the unscaled field after each stage), and the outputs 'rotation',
    'background_translation', 'residual_translation', 'intrinsics_mat'.

    `refine_residual` may be a boolean tensor: where it is false the residual
    translation is zero and the refinement decoder, most of the network's
    compute, is skipped (the trainer's motion-field burn-in multiplies the
    field by zero then anyway); the intermediate field keys are then absent.
    """
    del training  # No layer behaves differently in training.
    pairs = tf.cast(tf.convert_to_tensor(pairs), tf.float32)
    if pairs.shape.rank != 4 or pairs.shape[-1] is None:
      raise ValueError('MotionFieldNet input pairs must have shape [B, H, W, C], got shape %s.'
                       % (tuple(pairs.shape),))
    if not self.built:
      self.build(pairs.shape)
    ends = {}
    x = pairs
    features = []
    for conv in self.convs:
      ends[conv.name] = x = conv(x)
      features.append(x)
    ends['bottleneck'] = bottleneck = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    ends['background_motion'] = background_motion = self.background_motion(bottleneck)
    rotation = background_motion[:, 0, 0, :3]
    background_translation = background_motion[:, :, :, 3:]

    def refined_field(record):
      field = self.unrefined_residual_translation(background_motion)
      record['unrefined_residual_translation'] = field
      for refine, layer in zip(self.refines, features[::-1] + [pairs]):
        record[refine.name] = field = refine(field, layer)
      return field

    if refine_residual is True:
      field = refined_field(ends)
    else:
      field = tf.cond(tf.convert_to_tensor(refine_residual), lambda: refined_field({}),
                      lambda: tf.zeros_like(pairs[..., :3], dtype=self.compute_dtype))

    rotation, background_translation, residual_translation = self.scales(
        rotation, background_translation, field)
    if self.auto_mask:
      norm = tf.sqrt(tf.reduce_sum(tf.square(residual_translation), axis=3, keepdims=True))
      threshold = tf.reduce_mean(norm, axis=[0, 1, 2])
      mask = tf.stop_gradient(tf.cast(norm > threshold, residual_translation.dtype))
      residual_translation *= mask

    image_size = tf.shape(pairs)[1:3]
    ends['rotation'] = rotation
    ends['background_translation'] = background_translation
    ends['residual_translation'] = residual_translation
    ends['intrinsics_mat'] = self.intrinsics_head(bottleneck, image_size[0], image_size[1])
    return ends

  def call(self, pairs, training=False, refine_residual=True):
    ends = self.compute_endpoints(pairs, training=training, refine_residual=refine_residual)
    return (ends['rotation'], ends['background_translation'], ends['residual_translation'],
            ends['intrinsics_mat'])

  def compute_output_shape(self, input_shape):
    batch = input_shape[0]
    return ((batch, 3), (batch, 1, 1, 3), tuple(input_shape[:-1]) + (3,), (batch, 3, 3))

  def reference_variables(self):
    """{reference checkpoint name: variable} for every variable of the network."""
    if not self.built:
      raise ValueError('MotionFieldNet %r is not built: call it once or call net.build((None, '
                       'None, None, channels)) first.' % self.name)
    prefix = 'MotionFieldNet/'
    names = {}
    for conv in self.convs + [self.unrefined_residual_translation]:
      names[prefix + conv.name + '/weights'] = conv.kernel
      names[prefix + conv.name + '/biases'] = conv.bias
    names[prefix + 'background_motion/weights'] = self.background_motion.kernel
    for refine in self.refines:
      names.update(refine.reference_variables(prefix + refine.name))
    names[prefix + 'Scales/rotation'] = self.scales.rotation
    names[prefix + 'Scales/translation'] = self.scales.translation
    names.update(self.intrinsics_head.reference_variables(prefix + 'CameraIntrinsics'))
    return names


class PerVideoIntrinsics(keras.layers.Layer):
  """Learned intrinsics, one set per video (SPEC 3.4, `learn_intrinsics.per_video`).

  Holds `all_intrin` [max_number_of_videos, 4], every row initialised to
  (1, 1, 0.5, 0.5). `layer(video_index)` with int video_index [B] returns K
  [B, 3, 3] from the rows (a, b, c, d): fx = a * (H + W) / 2,
  fy = b * (H + W) / 2, x0 = c * W, y0 = d * H. An index outside
  [0, max_number_of_videos) fails with an InvalidArgumentError (tf.gather
  alone would silently return zeros on GPU).

  Unlike the reference, which stored the single tensor `concat([K, K])` where
  the model expects a pair of tensors (SPEC 3.4), callers get one [B, 3, 3]
  tensor and pass `(K, K)` on; the values are the same.
  """

  def __init__(self, max_number_of_videos=1000, image_height=128, image_width=416,
               name='per_video_intrinsics', **kwargs):
    super().__init__(name=name, **kwargs)
    if max_number_of_videos < 1:
      raise ValueError('max_number_of_videos must be >= 1, got %r.' % (max_number_of_videos,))
    self.max_number_of_videos = int(max_number_of_videos)
    self.image_height = float(image_height)
    self.image_width = float(image_width)

  def build(self, input_shape=None):
    del input_shape

    def initializer(shape, dtype=None):
      row = tf.constant([[1.0, 1.0, 0.5, 0.5]], dtype=dtype or tf.float32)
      return tf.tile(row, [shape[0], 1])

    self.all_intrin = self.add_weight(shape=(self.max_number_of_videos, 4),
                                      initializer=initializer, name='all_intrin')

  def call(self, video_index):
    video_index = tf.convert_to_tensor(video_index)
    if not video_index.dtype.is_integer:
      raise ValueError('PerVideoIntrinsics expects integer video indices, got dtype %s.' %
                       video_index.dtype.name)
    video_index = tf.cast(video_index, tf.int32)
    checks = [
        tf.debugging.assert_non_negative(
            video_index, message='PerVideoIntrinsics: video index below 0'),
        tf.debugging.assert_less(
            video_index, self.max_number_of_videos,
            message='PerVideoIntrinsics: video index >= max_number_of_videos (%d)' %
            self.max_number_of_videos),
    ]
    with tf.control_dependencies(checks):
      coefficients = tf.gather(self.all_intrin, video_index)
    a, b, c, d = tf.unstack(coefficients, axis=-1)
    half_size_sum = 0.5 * (self.image_height + self.image_width)
    return _intrinsics_matrix(a * half_size_sum, b * half_size_sum, c * self.image_width,
                              d * self.image_height)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape) + (3, 3)
