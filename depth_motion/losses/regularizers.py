"""Regularisers of the depth map and of the residual translation field (SPEC 5.4, 5.8).

Naming follows the reference code. The paper's L_{1/2} sparsity loss is
`sqrt_sparsity` (weight key `motion_drift`) and its group smoothness L_g1 is
`l1smoothness` (weight key `motion_smoothing`).
"""

import tensorflow as tf

from depth_motion.geometry import shapes


def _gradient_x(image):
  return image[:, :, :-1, :] - image[:, :, 1:, :]


def _gradient_y(image):
  return image[:, :-1, :, :] - image[:, 1:, :, :]


def joint_bilateral_smoothing(smoothed, reference):
  """Edge-aware smoothness: |∂smoothed| damped by exp(-mean_c |∂reference|).

  Args:
    smoothed: [B, H, W, C1] map to smooth (the loss passes the mean-normalised
      disparity).
    reference: [B, H, W, C2] guide image; where it has edges the smoothing is
      weaker.

  Returns:
    Scalar mean(|∂x s · exp(-mean_c|∂x I|)|) + mean(|∂y s · exp(-mean_c|∂y I|)|).
  """
  smoothed = tf.convert_to_tensor(smoothed, dtype_hint=tf.float32)
  reference = tf.convert_to_tensor(reference, dtype=smoothed.dtype)
  checker = shapes.ShapeChecker()
  checker.check('smoothed', smoothed, 'B,H,W,C1')
  checker.check('reference', reference, 'B,H,W,C2')
  weights_x = tf.exp(-tf.reduce_mean(tf.abs(_gradient_x(reference)), axis=3, keepdims=True))
  weights_y = tf.exp(-tf.reduce_mean(tf.abs(_gradient_y(reference)), axis=3, keepdims=True))
  smoothness_x = _gradient_x(smoothed) * weights_x
  smoothness_y = _gradient_y(smoothed) * weights_y
  return tf.reduce_mean(tf.abs(smoothness_x)) + tf.reduce_mean(tf.abs(smoothness_y))


def normalize_motion_map(res_motion_map, motion_map):
  """Divides a residual field by the per-image RMS magnitude of the total field.

  Returns res / sqrt(3 · mean_{H,W,C}(motion_map²) + 1e-12), i.e. the residual
  measured relative to the typical length of the full translation vectors.

  Args:
    res_motion_map: [B, H, W, C] residual translation field.
    motion_map: [B, H, W, C] total translation field (residual + background).
  """
  res_motion_map = tf.convert_to_tensor(res_motion_map, dtype_hint=tf.float32)
  motion_map = tf.convert_to_tensor(motion_map, dtype=res_motion_map.dtype)
  checker = shapes.ShapeChecker()
  checker.check('res_motion_map', res_motion_map, 'B,H,W,C')
  checker.check('motion_map', motion_map, 'B,H,W,C')
  norm = tf.reduce_mean(tf.square(motion_map), axis=[1, 2, 3], keepdims=True) * 3.0
  return res_motion_map / tf.sqrt(norm + 1e-12)


def l1smoothness(tensor, wrap_around=True):
  """Group (per channel) total variation: mean(sqrt(1e-24 + Δy² + Δx²)).

  Δy, Δx are differences with the previous row / column. With wrap_around the
  first row and column are compared with the last ones (continuity across the
  image border, which lets a global rotation absorb a translation gradient);
  without it the first row and column are dropped. The aggregator wraps
  around only when the `motion_drift` weight is 0.

  Args:
    tensor: [B, H, W, C].
    wrap_around: bool (a Python value).

  Returns:
    Scalar loss.
  """
  tensor = tf.convert_to_tensor(tensor, dtype_hint=tf.float32)
  shapes.ShapeChecker().check('tensor', tensor, 'B,H,W,C')
  delta_rows = tensor - tf.roll(tensor, shift=1, axis=1)
  delta_cols = tensor - tf.roll(tensor, shift=1, axis=2)
  if not wrap_around:
    delta_rows = delta_rows[:, 1:, 1:, :]
    delta_cols = delta_cols[:, 1:, 1:, :]
  return tf.reduce_mean(tf.sqrt(1e-24 + tf.square(delta_rows) + tf.square(delta_cols)))


def sqrt_sparsity(motion_map):
  """L_{1/2}-like sparsity: mean(2 ā sqrt(|T| / (ā + 1e-24) + 1)).

  ā = mean_{H,W}|T| per image and channel, with no gradient. Near 0 this
  behaves like L1 (gradient sign(T)); far from 0 its pull decreases, so
  large object motions are penalised less than many small ones. A channel
  that is all zeros contributes 0 (and a zero gradient).

  Args:
    motion_map: [B, H, W, C].

  Returns:
    Scalar loss.
  """
  motion_map = tf.convert_to_tensor(motion_map, dtype_hint=tf.float32)
  shapes.ShapeChecker().check('motion_map', motion_map, 'B,H,W,C')
  tensor_abs = tf.abs(motion_map)
  mean = tf.stop_gradient(tf.reduce_mean(tensor_abs, axis=[1, 2], keepdims=True))
  return tf.reduce_mean(2 * mean * tf.sqrt(tensor_abs / (mean + 1e-24) + 1))
