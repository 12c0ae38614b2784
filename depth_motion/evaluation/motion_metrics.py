"""Error measures of the predicted motion: camera ego-motion, object motion, intrinsics.

All functions take NumPy arrays (one example or a batch) and return float64
values; averaging over a dataset belongs to `depth_motion.evaluate`. Motion
follows `depth_motion.data.features`: a frame pair's ego-motion maps points of
the first camera into the second, P2 = R P1 + t, and the object motion is the
extra translation dT(u, v) of each first-frame pixel's 3D point.
"""

import numpy as np

from depth_motion import trajectory


def rotation_error_deg(predicted, ground_truth):
  """Angle in degrees of the rotation taking `predicted` to `ground_truth`.

  Args:
    predicted: [..., 3, 3] rotation matrices; projected onto SO(3) first (the
      averaged forward/backward estimate is only nearly orthonormal).
    ground_truth: [..., 3, 3] rotation matrices.

  Returns:
    [...] angles of R_pred^T R_gt in degrees, in [0, 180].
  """
  predicted = trajectory.nearest_rotation(predicted)
  ground_truth = np.asarray(ground_truth, dtype=np.float64)
  if ground_truth.shape != predicted.shape:
    raise ValueError('predicted and ground_truth rotations must have the same shape, got %s '
                     'and %s.' % (predicted.shape, ground_truth.shape))
  relative = np.swapaxes(predicted, -1, -2) @ ground_truth
  cosine = 0.5 * (np.trace(relative, axis1=-2, axis2=-1) - 1.0)
  return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def translation_direction_error_deg(predicted, ground_truth, min_norm=1e-6):
  """Angle in degrees between predicted and true translation vectors [..., 3].

  Monocular training fixes the translation only up to scale, so its direction
  is what can be compared. Where either vector is shorter than `min_norm` the
  direction is undefined and the result is NaN (use np.nanmean).
  """
  predicted = np.asarray(predicted, dtype=np.float64)
  ground_truth = np.asarray(ground_truth, dtype=np.float64)
  if predicted.shape != ground_truth.shape or predicted.shape[-1:] != (3,):
    raise ValueError('predicted and ground_truth translations must both have shape [..., 3], '
                     'got %s and %s.' % (predicted.shape, ground_truth.shape))
  norms = np.linalg.norm(predicted, axis=-1) * np.linalg.norm(ground_truth, axis=-1)
  defined = norms >= min_norm * min_norm
  cosine = np.sum(predicted * ground_truth, axis=-1) / np.where(defined, norms, 1.0)
  angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
  return np.where(defined, angle, np.nan)


def _check_field(name, field, shape=None):
  field = np.asarray(field, dtype=np.float64)
  if field.ndim < 1 or field.shape[-1] != 3:
    raise ValueError('%s must have shape [..., H, W, 3], got %s.' % (name, field.shape))
  if shape is not None and field.shape != shape:
    raise ValueError('%s must have shape %s, got %s.' % (name, shape, field.shape))
  return field


def object_motion_errors(predicted, ground_truth, moving, valid=None):
  """End-point error of the object-motion (residual translation) field, and its contrast.

  Args:
    predicted: [H, W, 3] predicted residual translation, already in metres
      (multiplied by the depth's median-scaling ratio).
    ground_truth: [H, W, 3] true object translation (0 on static pixels).
    moving: [H, W] bool, pixels of moving objects.
    valid: optional [H, W] bool, pixels to use at all (default: all).

  Returns:
    dict with, over valid pixels: `epe_moving` = mean |pred - gt| on moving
    pixels, `epe_static` = the same on static pixels, `residual_moving` and
    `residual_static` = mean |pred| on each part, and `moving_static_ratio` =
    residual_moving / residual_static (how much the field singles out the
    moving objects; inf when the static part is exactly 0). A value is NaN
    when its part has no pixel.
  """
  predicted = _check_field('predicted', predicted)
  ground_truth = _check_field('ground_truth', ground_truth, predicted.shape)
  moving = np.asarray(moving, dtype=bool)
  if moving.shape != predicted.shape[:-1]:
    raise ValueError('moving must have shape %s, got %s.' % (predicted.shape[:-1], moving.shape))
  valid = np.ones_like(moving) if valid is None else np.asarray(valid, dtype=bool)
  if valid.shape != moving.shape:
    raise ValueError('valid must have shape %s, got %s.' % (moving.shape, valid.shape))
  error = np.linalg.norm(predicted - ground_truth, axis=-1)
  magnitude = np.linalg.norm(predicted, axis=-1)

  def mean(values, part):
    return float(np.mean(values[part])) if np.any(part) else float('nan')

  on_moving = moving & valid
  on_static = ~moving & valid
  result = {
      'epe_moving': mean(error, on_moving),
      'epe_static': mean(error, on_static),
      'residual_moving': mean(magnitude, on_moving),
      'residual_static': mean(magnitude, on_static),
  }
  result['moving_static_ratio'] = safe_ratio(result['residual_moving'],
                                             result['residual_static'])
  return result


def safe_ratio(numerator, denominator):
  """numerator / denominator, NaN when either is NaN, inf for x / 0 with x > 0, NaN for 0 / 0."""
  if np.isnan(numerator) or np.isnan(denominator):
    return float('nan')
  if denominator == 0:
    return float('inf') if numerator > 0 else float('nan')
  return float(numerator / denominator)


def intrinsics_errors(predicted, ground_truth):
  """Relative errors |p - g| / |g| of fx, fy, x0, y0 between [..., 3, 3] intrinsics matrices.

  Returns a dict of [...] arrays keyed fx, fy, x0, y0.
  """
  predicted = np.asarray(predicted, dtype=np.float64)
  ground_truth = np.asarray(ground_truth, dtype=np.float64)
  if predicted.shape != ground_truth.shape or predicted.shape[-2:] != (3, 3):
    raise ValueError('predicted and ground_truth intrinsics must both have shape [..., 3, 3], '
                     'got %s and %s.' % (predicted.shape, ground_truth.shape))
  entries = {'fx': (0, 0), 'fy': (1, 1), 'x0': (0, 2), 'y0': (1, 2)}
  return {name: np.abs(predicted[..., i, j] - ground_truth[..., i, j]) /
                np.abs(ground_truth[..., i, j])
          for name, (i, j) in entries.items()}


def intrinsics_matrix(fx, fy, x0, y0):
  """[3, 3] float64 K = [[fx, 0, x0], [0, fy, y0], [0, 0, 1]]."""
  return np.array([[fx, 0.0, x0], [0.0, fy, y0], [0.0, 0.0, 1.0]], dtype=np.float64)
