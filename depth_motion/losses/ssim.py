"""Weighted structural similarity (SSIM) with 3x3 average pooling (SPEC 5.6)."""

import math

import tensorflow as tf

from depth_motion.geometry import shapes


def _avg_pool3x3(x):
  return tf.nn.avg_pool2d(x, ksize=3, strides=1, padding='VALID')


def weighted_ssim(x, y, weight, c1=0.01**2, c2=0.03**2, weight_epsilon=0.01):
  """SSIM loss map where each pixel's moments are weighted by `weight`.

  With P a 3x3 VALID average pooling, w̄ = P(weight) and
  avg(z) = P(z · (weight + eps)) / (w̄ + eps), the moments are
  mu = avg(x), sigma_x = avg(x²) - mu_x², sigma_xy = avg(xy) - mu_x mu_y.
  SSIM = (2 mu_x mu_y + c1)(2 sigma_xy + c2) / ((mu_x² + mu_y² + c1)(sigma_x +
  sigma_y + c2)); with c1 = inf only the contrast-structure factor is kept
  (what the RGBD loss uses, with c2 = 9e-6), with c2 = inf only the
  luminance factor.

  Args:
    x, y: [B, H, W, C] images.
    weight: [B, H, W] per-pixel weights.
    c1, c2: Python floats, either may be float('inf') but not both.
    weight_epsilon: regularises the division by the pooled weight.

  Returns:
    (ssim, avg_weight): the loss clip((1 - SSIM) / 2, 0, 1) of shape
    [B, H-2, W-2, C] and the pooled weight w̄ [B, H-2, W-2, 1], which tells
    how much each loss pixel should count.

  Raises:
    ValueError: both c1 and c2 infinite (the loss would be identically 0), or
      mismatched shapes.
  """
  c1 = float(c1)
  c2 = float(c2)
  if math.isinf(c1) and math.isinf(c2):
    raise ValueError('Both c1 and c2 are infinite; the SSIM loss would be identically 0.')
  x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
  y = tf.convert_to_tensor(y, dtype=x.dtype)
  weight = tf.convert_to_tensor(weight, dtype=x.dtype)
  checker = shapes.ShapeChecker()
  checker.check('x', x, 'B,H,W,C')
  checker.check('y', y, 'B,H,W,C')
  checker.check('weight', weight, 'B,H,W')

  weight = weight[..., tf.newaxis]
  average_pooled_weight = _avg_pool3x3(weight)
  weight_plus_epsilon = weight + weight_epsilon
  inverse_average_pooled_weight = 1.0 / (average_pooled_weight + weight_epsilon)

  def weighted_avg_pool3x3(z):
    return _avg_pool3x3(z * weight_plus_epsilon) * inverse_average_pooled_weight

  mu_x = weighted_avg_pool3x3(x)
  mu_y = weighted_avg_pool3x3(y)
  sigma_x = weighted_avg_pool3x3(x**2) - mu_x**2
  sigma_y = weighted_avg_pool3x3(y**2) - mu_y**2
  sigma_xy = weighted_avg_pool3x3(x * y) - mu_x * mu_y
  if math.isinf(c1):
    numerator = 2 * sigma_xy + c2
    denominator = sigma_x + sigma_y + c2
  elif math.isinf(c2):
    numerator = 2 * mu_x * mu_y + c1
    denominator = mu_x**2 + mu_y**2 + c1
  else:
    numerator = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2)
  ssim = numerator / denominator
  return tf.clip_by_value((1 - ssim) / 2, 0, 1), average_pooled_weight
