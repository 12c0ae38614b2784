"""Moving a depth map through a rigid motion (plus a translation field).

`using_motion_vector` back-projects every pixel with its depth, applies the
rotation and translation (global or per pixel) and projects the moved points
into the same camera (SPEC 4.3). The result is a `TransformedDepthMap`: for
each source pixel, where it lands (pixel_x, pixel_y), its new depth and
whether the landing spot is usable (mask).
"""

import tensorflow as tf

from depth_motion.geometry import rotations
from depth_motion.geometry import shapes


class TransformedDepthMap:
  """A depth map after a motion, on the irregular grid it was moved to.

  All four tensors are [B, H, W] and indexed by the SOURCE pixel (b, i, j):
  the point seen at row i, column j lands at (pixel_y, pixel_x) in the target
  camera, at depth `depth`. `mask` is True where the landing spot is inside
  0 <= x < W-1, 0 <= y < H-1 (strict upper bounds: the last column and row are
  always masked out, as in the reference), the depth is positive and no NaN
  occurred. Where `mask` is False the coordinates were clamped into
  [0, W-1] x [0, H-1] (NaN replaced by 0), so that sampling there replicates
  the border.
  """

  def __init__(self, pixel_x, pixel_y, depth, mask):
    tensors = {'pixel_x': pixel_x, 'pixel_y': pixel_y, 'depth': depth, 'mask': mask}
    names = list(tensors)
    for i, name_i in enumerate(names):
      for name_j in names[:i]:
        shapes.check_same_shape(name_j, tensors[name_j], name_i, tensors[name_i])
    self._pixel_x = pixel_x
    self._pixel_y = pixel_y
    self._depth = depth
    self._mask = mask
    self._pixel_xy = None

  @property
  def pixel_x(self):
    return self._pixel_x

  @property
  def pixel_y(self):
    return self._pixel_y

  @property
  def depth(self):
    return self._depth

  @property
  def mask(self):
    return self._mask

  @property
  def pixel_xy(self):
    """[B, H, W, 2] = stack([pixel_x, pixel_y], axis=3)."""
    if self._pixel_xy is None:
      self._pixel_xy = tf.stack([self._pixel_x, self._pixel_y], axis=3)
    return self._pixel_xy


def _pixel_grid(height, width, dtype):
  """[H, W, 3] homogeneous pixel coordinates (x, y, 1)."""
  x, y = tf.meshgrid(tf.range(width), tf.range(height))
  grid = tf.stack([x, y, tf.ones_like(x)], axis=-1)
  return tf.cast(grid, dtype)


def _clamp_and_filter_result(pixel_x, pixel_y, z):
  """Masks and clamps projected coordinates (SPEC 4.3 step 6)."""
  shape = tf.shape(pixel_x)
  max_x = tf.cast(shape[2] - 1, pixel_x.dtype)
  max_y = tf.cast(shape[1] - 1, pixel_x.dtype)
  not_nan = tf.logical_not(tf.logical_or(tf.math.is_nan(pixel_x), tf.math.is_nan(pixel_y)))
  mask = tf.reduce_all(tf.stack([
      pixel_x >= 0.0, pixel_y >= 0.0, pixel_x < max_x, pixel_y < max_y, z > 0.0, not_nan
  ], axis=0), axis=0)
  not_nan_float = tf.cast(not_nan, pixel_x.dtype)
  pixel_x = tf.clip_by_value(tf.math.multiply_no_nan(pixel_x, not_nan_float), 0.0, max_x)
  pixel_y = tf.clip_by_value(tf.math.multiply_no_nan(pixel_y, not_nan_float), 0.0, max_y)
  return pixel_x, pixel_y, mask


def _transform(depth, translation, rotation_mat, intrinsic_mat, intrinsic_mat_inv):
  """Moves every pixel's 3D point: p' = K (R K^-1 [u, v, 1] d + t)."""
  shape = tf.shape(depth)
  grid = _pixel_grid(shape[1], shape[2], depth.dtype)
  rays = tf.einsum('bij,hwj->bhwi', intrinsic_mat_inv, grid)
  points = rays * depth[..., tf.newaxis]
  if rotation_mat.shape.rank == 3:
    rotated = tf.einsum('bij,bhwj->bhwi', rotation_mat, points)
  else:
    rotated = tf.einsum('bhwij,bhwj->bhwi', rotation_mat, points)
  if translation.shape.rank == 2:
    translation = translation[:, tf.newaxis, tf.newaxis, :]
  projected = tf.einsum('bij,bhwj->bhwi', intrinsic_mat, rotated + translation)
  x, y, z = tf.unstack(projected, num=3, axis=-1)
  return x / z, y / z, z


def _prepare(depth, translation, rotation, intrinsic_mat, intrinsic_mat_inv,
             rotation_name, rotation_layouts):
  depth = tf.convert_to_tensor(depth, dtype_hint=tf.float32)
  dtype = depth.dtype
  translation = tf.convert_to_tensor(translation, dtype=dtype)
  rotation = tf.convert_to_tensor(rotation, dtype=dtype)
  intrinsic_mat = tf.convert_to_tensor(intrinsic_mat, dtype=dtype)
  checker = shapes.ShapeChecker()
  checker.check('depth', depth, 'B,H,W')
  checker.check('translation', translation, 'B,3', 'B,H,W,3')
  checker.check(rotation_name, rotation, *rotation_layouts)
  checker.check('intrinsic_mat', intrinsic_mat, 'B,3,3')
  if intrinsic_mat_inv is None:
    intrinsic_mat_inv = tf.linalg.inv(intrinsic_mat)
  else:
    intrinsic_mat_inv = tf.convert_to_tensor(intrinsic_mat_inv, dtype=dtype)
    checker.check('intrinsic_mat_inv', intrinsic_mat_inv, 'B,3,3')
  return depth, translation, rotation, intrinsic_mat, intrinsic_mat_inv


def using_motion_vector(depth, translation, rotation_angles, intrinsic_mat,
                        intrinsic_mat_inv=None):
  """Transforms a depth map by a rotation and a translation (global or per pixel).

  Every pixel (u, v) with depth d is back-projected to P = d K^-1 (u, v, 1),
  moved to R P + t(u, v) and projected with K: pixel_x = q_x / q_z,
  pixel_y = q_y / q_z, depth = q_z where q = K (R P + t). The rotation is
  applied first, the translation is read at the source pixel.

  Args:
    depth: [B, H, W] depth map (not [B, H, W, 1]).
    translation: [B, 3] or [B, H, W, 3] translation (a per-pixel field).
    rotation_angles: [B, 3] or [B, H, W, 3] Euler angles (R = Rx·Ry·Rz).
    intrinsic_mat: [B, 3, 3] intrinsics K.
    intrinsic_mat_inv: [B, 3, 3] inverse of K, or None to compute it with a
      general matrix inverse (the losses pass the closed-form inverse).

  Returns:
    A `TransformedDepthMap` (mask, clamping and NaN rules described there).

  Raises:
    ValueError: if a shape does not fit (names the argument and the shape).
  """
  depth, translation, rotation_angles, intrinsic_mat, intrinsic_mat_inv = _prepare(
      depth, translation, rotation_angles, intrinsic_mat, intrinsic_mat_inv,
      'rotation_angles', ('B,3', 'B,H,W,3'))
  rotation_mat = rotations.matrix_from_angles(rotation_angles)
  pixel_x, pixel_y, z = _transform(depth, translation, rotation_mat, intrinsic_mat,
                                   intrinsic_mat_inv)
  pixel_x, pixel_y, mask = _clamp_and_filter_result(pixel_x, pixel_y, z)
  return TransformedDepthMap(pixel_x, pixel_y, z, mask)


def using_transform_matrix(depth, transform, intrinsic_mat, intrinsic_mat_inv=None):
  """Like `using_motion_vector` with a [B, 4, 4] rigid transform [[R, t], [0, 1]].

  The last row of `transform` is assumed (not checked) to be (0, 0, 0, 1).
  """
  depth = tf.convert_to_tensor(depth, dtype_hint=tf.float32)
  transform = tf.convert_to_tensor(transform, dtype=depth.dtype)
  shapes.ShapeChecker().check('transform', transform, 'B,4,4')
  depth, translation, rotation_mat, intrinsic_mat, intrinsic_mat_inv = _prepare(
      depth, transform[:, :3, 3], transform[:, :3, :3], intrinsic_mat, intrinsic_mat_inv,
      'transform[:, :3, :3]', ('B,3,3',))
  pixel_x, pixel_y, z = _transform(depth, translation, rotation_mat, intrinsic_mat,
                                   intrinsic_mat_inv)
  pixel_x, pixel_y, mask = _clamp_and_filter_result(pixel_x, pixel_y, z)
  return TransformedDepthMap(pixel_x, pixel_y, z, mask)
