"""Bilinear sampling of an image at arbitrary (x, y) coordinates.

Plain TensorFlow (no tensorflow-addons), differentiable with respect to the
data and the coordinates. It reproduces the reference's
`resampler_with_unstacked_warp` (SPEC 4.4): the four corners are floor(x),
ceil(x), floor(y), ceil(y), so at an exact integer coordinate both corners
coincide, the value is exact and the gradient with respect to that coordinate
is 0 (also at coordinates clamped to the border).
"""

import tensorflow as tf

from depth_motion.geometry import shapes


def resampler_with_unstacked_warp(data, warp_x, warp_y, safe=True):
  """Samples `data` bilinearly at (warp_x, warp_y).

  Args:
    data: [B, H, W, C] images.
    warp_x: [B, d1, ..., dn] column coordinates (0 = centre of the first
      column, W - 1 = centre of the last).
    warp_y: row coordinates, same shape as warp_x.
    safe: True: corners outside the image contribute 0 (so x = -0.5 gives half
      of column 0). False: coordinates are expected inside
      [0, W-1] x [0, H-1] (as after `using_motion_vector`'s clamping); corners
      outside are clamped to the border (the reference's unchecked gather
      raised or returned garbage there instead).

  Returns:
    [B, d1, ..., dn, C] samples.
  """
  data = tf.convert_to_tensor(data, dtype_hint=tf.float32)
  warp_x = tf.convert_to_tensor(warp_x, dtype=data.dtype)
  warp_y = tf.convert_to_tensor(warp_y, dtype=data.dtype)
  checker = shapes.ShapeChecker()
  checker.check('data', data, 'B,H,W,C')
  shapes.check_same_shape('warp_x', warp_x, 'warp_y', warp_y)
  if warp_x.shape.rank is not None and warp_x.shape.rank < 1:
    raise ValueError('warp_x must have a batch dimension, got shape %s.' %
                     shapes.shape_str(warp_x))
  batch = warp_x.shape[0] if warp_x.shape.rank else None
  if batch is not None and checker.dim('B') is not None and batch != checker.dim('B'):
    raise ValueError('warp_x and data must have the same batch size, got shapes %s and %s.' %
                     (shapes.shape_str(warp_x), shapes.shape_str(data)))

  data_shape = tf.shape(data)
  height, width, channels = data_shape[1], data_shape[2], data_shape[3]

  floor_x = tf.floor(warp_x)
  floor_y = tf.floor(warp_y)
  right_weight = warp_x - floor_x
  down_weight = warp_y - floor_y
  left_weight = 1.0 - right_weight
  up_weight = 1.0 - down_weight
  x0 = tf.cast(floor_x, tf.int32)
  y0 = tf.cast(floor_y, tf.int32)
  x1 = tf.cast(tf.math.ceil(warp_x), tf.int32)
  y1 = tf.cast(tf.math.ceil(warp_y), tf.int32)

  warp_shape = tf.shape(warp_x)
  batch_shape = tf.concat([warp_shape[:1], tf.ones_like(warp_shape[1:])], axis=0)
  batch_offset = tf.reshape(tf.range(warp_shape[0]) * height, batch_shape)
  flat_data = tf.reshape(data, tf.stack([-1, channels]))

  def gather(y, x):
    x_clipped = tf.clip_by_value(x, 0, width - 1)
    y_clipped = tf.clip_by_value(y, 0, height - 1)
    values = tf.gather(flat_data, (batch_offset + y_clipped) * width + x_clipped)
    if safe:
      inside = tf.logical_and(tf.equal(x, x_clipped), tf.equal(y, y_clipped))
      values *= tf.cast(inside, data.dtype)[..., tf.newaxis]
    return values

  left_weight = left_weight[..., tf.newaxis]
  right_weight = right_weight[..., tf.newaxis]
  up_weight = up_weight[..., tf.newaxis]
  down_weight = down_weight[..., tf.newaxis]
  result = ((gather(y0, x0) * left_weight + gather(y0, x1) * right_weight) * up_weight +
            (gather(y1, x0) * left_weight + gather(y1, x1) * right_weight) * down_weight)
  result.set_shape(warp_x.shape.concatenate(data.shape[-1:]))
  return result
