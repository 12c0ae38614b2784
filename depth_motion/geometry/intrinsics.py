"""Pinhole intrinsics matrices K = [[fx, 0, x0], [0, fy, y0], [0, 0, 1]].

Pixel convention (SPEC): integer coordinates at pixel centres, (0, 0) the
centre of the top-left pixel, x = column, y = row.
"""

import tensorflow as tf


def make_intrinsics_matrix(fx, fy, x0, y0):
  """Builds K from focal lengths and principal point.

  Args:
    fx, fy, x0, y0: tensors (or numbers) of one common shape [...].

  Returns:
    [..., 3, 3] intrinsics matrices.
  """
  fx = tf.convert_to_tensor(fx, dtype_hint=tf.float32)
  fy, x0, y0 = (tf.convert_to_tensor(v, dtype=fx.dtype) for v in (fy, x0, y0))
  for name, value in (('fy', fy), ('x0', x0), ('y0', y0)):
    if not fx.shape.is_compatible_with(value.shape):
      raise ValueError('fx and %s must have the same shape, got %s and %s.' %
                       (name, tuple(fx.shape.as_list()), tuple(value.shape.as_list())))
  zeros = tf.zeros_like(fx)
  ones = tf.ones_like(fx)
  rows = [tf.stack([fx, zeros, x0], axis=-1),
          tf.stack([zeros, fy, y0], axis=-1),
          tf.stack([zeros, zeros, ones], axis=-1)]
  return tf.stack(rows, axis=-2)


def invert_intrinsics_matrix(intrinsics_mat):
  """Closed-form inverse of intrinsics matrices.

  K^-1 = [[1/fx, 0, -x0/fx], [0, 1/fy, -y0/fy], [0, 0, 1]]. Only fx, fy, x0,
  y0 are read (the other entries are assumed to be those of a pinhole K).
  Unlike a general matrix inverse this runs everywhere (TPU included) and is
  exact for such matrices.

  Args:
    intrinsics_mat: [..., 3, 3].

  Returns:
    [..., 3, 3] inverses.
  """
  intrinsics_mat = tf.convert_to_tensor(intrinsics_mat, dtype_hint=tf.float32)
  shape = intrinsics_mat.shape
  if shape.rank is not None and (shape.rank < 2 or any(
      d is not None and d != 3 for d in shape[-2:])):
    raise ValueError('intrinsics_mat must have shape [..., 3, 3], got shape %s.' %
                     (tuple(shape.as_list()),))
  fx = intrinsics_mat[..., 0, 0]
  fy = intrinsics_mat[..., 1, 1]
  x0 = intrinsics_mat[..., 0, 2]
  y0 = intrinsics_mat[..., 1, 2]
  return make_intrinsics_matrix(1.0 / fx, 1.0 / fy, -x0 / fx, -y0 / fy)
