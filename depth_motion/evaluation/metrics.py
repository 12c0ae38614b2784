"""Depth error metrics of the KITTI/Eigen protocol (SPEC 8.1), in NumPy float64.

`compute_depth_errors` is the standard SfMLearner / monodepth formula set on
1-D arrays of valid pixels; `median_scale` is the per-image scale alignment
used for monocular (scale-less) predictions. Masks, crops and the averaging
over images belong to the evaluation protocols.
"""

import numpy as np

MIN_DEPTH = 1e-3
MAX_DEPTH = 80.0

METRIC_NAMES = ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'a1', 'a2', 'a3')


def _as_valid_pair(gt, pred):
  gt = np.asarray(gt, dtype=np.float64)
  pred = np.asarray(pred, dtype=np.float64)
  if gt.ndim != 1 or pred.ndim != 1:
    raise ValueError('gt and pred must be 1-D arrays of valid pixels, got shapes %s and %s.' %
                     (gt.shape, pred.shape))
  if gt.shape != pred.shape:
    raise ValueError('gt and pred must have the same shape, got %s and %s.' %
                     (gt.shape, pred.shape))
  if gt.size == 0:
    raise ValueError('gt and pred are empty: no valid pixels to evaluate.')
  return gt, pred


def compute_depth_errors(gt, pred):
  """The seven depth metrics of ground truth vs prediction.

  Args:
    gt: 1-D array of ground-truth depths (valid pixels only, all > 0).
    pred: 1-D array of predicted depths at the same pixels (all > 0; usually
      median-scaled and clipped to [MIN_DEPTH, MAX_DEPTH] first).

  Returns:
    dict of Python floats: abs_rel = mean(|gt - p| / gt), sq_rel =
    mean((gt - p)² / gt), rmse = sqrt(mean((gt - p)²)), rmse_log =
    sqrt(mean((ln gt - ln p)²)), and a1, a2, a3 = fraction of pixels with
    max(gt / p, p / gt) < 1.25, 1.25², 1.25³.

  Raises:
    ValueError: arrays not 1-D, of different shapes, or empty.
  """
  gt, pred = _as_valid_pair(gt, pred)
  thresh = np.maximum(gt / pred, pred / gt)
  diff = gt - pred
  return {
      'abs_rel': float(np.mean(np.abs(diff) / gt)),
      'sq_rel': float(np.mean(diff**2 / gt)),
      'rmse': float(np.sqrt(np.mean(diff**2))),
      'rmse_log': float(np.sqrt(np.mean((np.log(gt) - np.log(pred))**2))),
      'a1': float(np.mean(thresh < 1.25)),
      'a2': float(np.mean(thresh < 1.25**2)),
      'a3': float(np.mean(thresh < 1.25**3)),
  }


def clip_depth(depth, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH):
  """Clips depths to [min_depth, max_depth] (float64)."""
  return np.clip(np.asarray(depth, dtype=np.float64), min_depth, max_depth)


def median_scale(gt, pred, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH):
  """Scales `pred` so that its median matches gt's, then clips it.

  Args:
    gt, pred: 1-D arrays of the valid pixels of one image.
    min_depth, max_depth: clipping range applied after scaling (None to skip
      that bound).

  Returns:
    (scaled_pred, ratio) with ratio = median(gt) / median(pred) and
    scaled_pred = clip(pred * ratio, min_depth, max_depth) in float64.
  """
  gt, pred = _as_valid_pair(gt, pred)
  median_pred = np.median(pred)
  if not median_pred > 0:
    raise ValueError('median_scale needs a positive median prediction, got %r.' % median_pred)
  ratio = float(np.median(gt) / median_pred)
  scaled = pred * ratio
  if min_depth is not None or max_depth is not None:
    scaled = np.clip(scaled, min_depth, max_depth)
  return scaled, ratio
