"""Euler-angle rotations and rigid transforms in the reference's convention.

Angles are (rx, ry, rz) in radians and the rotation matrix is
R = Rx(rx) · Ry(ry) · Rz(rz) with the right-handed elementary rotations
(SPEC 4.1). This is the convention of the motion network's `rotation` output
and of struct2depth's `_euler2mat`; the reference obtained it through
tensorflow_graphics with a negation and a transpose, we write the matrix
elements directly (same values up to float rounding).

All functions accept any number of leading (batch) dimensions.
"""

import math

import numpy as np
import tensorflow as tf


def _check_last_dim(name, tensor, size, min_rank=1):
  shape = tensor.shape
  if shape.rank is not None and (shape.rank < min_rank or
                                 (shape[-1] is not None and shape[-1] != size)):
    raise ValueError('%s must have shape [..., %d], got shape %s.' %
                     (name, size, tuple(shape.as_list())))


def _check_matrix(name, tensor):
  shape = tensor.shape
  if shape.rank is not None and (shape.rank < 2 or any(
      d is not None and d != 3 for d in shape[-2:])):
    raise ValueError('%s must have shape [..., 3, 3], got shape %s.' %
                     (name, tuple(shape.as_list())))


def _elements(rx, ry, rz):
  """The nine elements of Rx·Ry·Rz, row by row."""
  sx, sy, sz = tf.sin(rx), tf.sin(ry), tf.sin(rz)
  cx, cy, cz = tf.cos(rx), tf.cos(ry), tf.cos(rz)
  return ((cy * cz, -cy * sz, sy),
          (cx * sz + sx * sy * cz, cx * cz - sx * sy * sz, -sx * cy),
          (sx * sz - cx * sy * cz, sx * cz + cx * sy * sz, cx * cy))


def _stack_matrix(rows):
  return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_from_angles(rot):
  """Rotation matrices R = Rx·Ry·Rz from Euler angles.

  Args:
    rot: [..., 3] angles (rx, ry, rz) in radians.

  Returns:
    [..., 3, 3] rotation matrices.
  """
  rot = tf.convert_to_tensor(rot, dtype_hint=tf.float32)
  _check_last_dim('rot', rot, 3)
  rx, ry, rz = tf.unstack(rot, num=3, axis=-1)
  return _stack_matrix(_elements(rx, ry, rz))


def unstacked_matrix_from_angles(rx, ry, rz):
  """Same matrix as `matrix_from_angles`, from three separate angle tensors.

  The reference returned a nested 3x3 tuple (a TPU memory trick); our API
  returns it stacked.

  Args:
    rx, ry, rz: angle tensors of one common shape [...].

  Returns:
    [..., 3, 3] rotation matrices (element [i][j] at [..., i, j]).
  """
  rx = tf.convert_to_tensor(rx, dtype_hint=tf.float32)
  ry = tf.convert_to_tensor(ry, dtype=rx.dtype)
  rz = tf.convert_to_tensor(rz, dtype=rx.dtype)
  for name, tensor in (('ry', ry), ('rz', rz)):
    if not rx.shape.is_compatible_with(tensor.shape):
      raise ValueError('rx and %s must have the same shape, got %s and %s.' %
                       (name, tuple(rx.shape.as_list()), tuple(tensor.shape.as_list())))
  return _stack_matrix(_elements(rx, ry, rz))


def _nonzero_sign(x):
  return tf.where(x >= 0.0, tf.ones_like(x), -tf.ones_like(x))


def angles_from_matrix(matrix):
  """Euler angles (rx, ry, rz) of rotation matrices, the inverse of `matrix_from_angles`.

  ry is in [-pi/2, pi/2]. Follows the reference (tensorflow_graphics'
  decomposition applied to the transposed matrix), including its tiny
  epsilon added to the atan2 denominators and its gimbal-lock branch
  (|R[0, 2]| = 1, where rz is set to 0). Unlike the reference, R[0, 2] is
  clipped to [-1, 1] so that rounding slightly past 1 gives the gimbal-lock
  answer instead of NaN.

  Args:
    matrix: [..., 3, 3] rotation matrices.

  Returns:
    [..., 3] angles in radians.
  """
  matrix = tf.convert_to_tensor(matrix, dtype_hint=tf.float32)
  _check_matrix('matrix', matrix)
  eps = tf.constant(2.0 * np.finfo(matrix.dtype.as_numpy_dtype).eps, matrix.dtype)
  sin_y = tf.clip_by_value(matrix[..., 0, 2], -1.0, 1.0)
  m00 = matrix[..., 0, 0]
  m01 = matrix[..., 0, 1]
  m10 = matrix[..., 1, 0]
  m12 = matrix[..., 1, 2]
  m20 = matrix[..., 2, 0]
  m22 = matrix[..., 2, 2]

  # General case. cos(ry) >= 0 on the asin branch, so no sign flip is needed.
  ry = tf.asin(sin_y)
  rz = -tf.atan2(m01, m00 + _nonzero_sign(m00) * eps)
  rx = -tf.atan2(m12, m22 + _nonzero_sign(m22) * eps)
  general = tf.stack([rx, ry, rz], axis=-1)

  # Gimbal lock: only rx + rz (or rx - rz) is defined; rz is set to 0.
  sign = _nonzero_sign(sin_y)
  gimbal_rx = -tf.atan2(-sign * m10, -sign * (m20 + _nonzero_sign(m20) * eps))
  gimbal_ry = sign * tf.constant(math.pi / 2.0, matrix.dtype)
  gimbal = tf.stack([gimbal_rx, gimbal_ry * tf.ones_like(gimbal_rx),
                     tf.zeros_like(gimbal_rx)], axis=-1)
  is_gimbal = tf.equal(tf.abs(sin_y), 1.0)[..., tf.newaxis]
  return tf.where(is_gimbal, gimbal, general)


def inverse_euler(angles):
  """The reference's approximate inverse of Euler angles.

  This reproduces the reference formula, which divides by cos(y) outside the
  arcsin and is therefore exact only to second order in the angles (about
  2e-4 matrix error at 0.3 rad). It is not used in training. For an exact
  inverse use `angles_from_matrix(tf.linalg.matrix_transpose(R))`.

  Args:
    angles: [..., 3] angles (rx, ry, rz).

  Returns:
    [..., 3] angles of (approximately) the inverse rotation.
  """
  angles = tf.convert_to_tensor(angles, dtype_hint=tf.float32)
  _check_last_dim('angles', angles, 3)
  # The reference names the components in reverse order; the formula below
  # is kept with its variable roles so that it computes the same thing.
  sz, sy, sx = tf.unstack(-tf.sin(angles), num=3, axis=-1)
  cz, _, cx = tf.unstack(tf.cos(angles), num=3, axis=-1)
  y = tf.asin(cx * sy * cz + sx * sz)
  x = -tf.asin(sx * sy * cz - cx * sz) / tf.cos(y)
  z = -tf.asin(cx * sy * sz - sx * cz) / tf.cos(y)
  return tf.stack([x, y, z], axis=-1)


def invert_rot_and_trans(rot, trans):
  """Inverts the transform (rotation angles, translation): p -> R p + t.

  Args:
    rot: [..., 3] rotation angles.
    trans: [..., 3] translations.

  Returns:
    (rot_inv, trans_inv), both [..., 3], with rot_inv = inverse_euler(rot)
    (approximate, see there) and trans_inv = -R(rot_inv) · trans.
  """
  rot = tf.convert_to_tensor(rot, dtype_hint=tf.float32)
  trans = tf.convert_to_tensor(trans, dtype=rot.dtype)
  _check_last_dim('rot', rot, 3)
  _check_last_dim('trans', trans, 3)
  rot_inv = inverse_euler(rot)
  trans_inv = -tf.linalg.matvec(matrix_from_angles(rot_inv), trans)
  return rot_inv, trans_inv


def combine(rot_mat1, trans_vec1, rot_mat2, trans_vec2):
  """Composes (R1, t1) followed by (R2, t2).

  p -> R2 (R1 p + t1) + t2, i.e. the result is (R2 · R1, R2 · t1 + t2).

  Args:
    rot_mat1: [..., 3, 3]. trans_vec1: [..., 3].
    rot_mat2: [..., 3, 3]. trans_vec2: [..., 3].

  Returns:
    (rot [..., 3, 3], trans [..., 3]).
  """
  rot_mat1 = tf.convert_to_tensor(rot_mat1, dtype_hint=tf.float32)
  dtype = rot_mat1.dtype
  trans_vec1 = tf.convert_to_tensor(trans_vec1, dtype=dtype)
  rot_mat2 = tf.convert_to_tensor(rot_mat2, dtype=dtype)
  trans_vec2 = tf.convert_to_tensor(trans_vec2, dtype=dtype)
  _check_matrix('rot_mat1', rot_mat1)
  _check_matrix('rot_mat2', rot_mat2)
  _check_last_dim('trans_vec1', trans_vec1, 3)
  _check_last_dim('trans_vec2', trans_vec2, 3)
  rot = tf.matmul(rot_mat2, rot_mat1)
  trans = tf.linalg.matvec(rot_mat2, trans_vec1) + trans_vec2
  return rot, trans
