"""Depth-evaluation protocols: which pixels count, crops, depth caps, resizing, scaling.

A `Protocol` says how one image's prediction is compared with its ground
truth; `evaluate_depth_image` applies it. Every protocol evaluates the middle
frame t of each triplet, at the ground truth's resolution:

1. The input image is (for Cityscapes at full resolution) cropped, then resized
   to the network's trained resolution with OpenCV's bilinear interpolation
   (cv2.INTER_LINEAR on the uint8 image, exactly as the struct2depth scripts
   made the training data).
2. The predicted depth is resized to the ground truth's size with
   cv2.INTER_LINEAR (SfMLearner resizes depth, not disparity).
3. Valid pixels: the protocol's ground-truth range and crop.
4. Per-image median scaling s = median(gt) / median(pred) over the valid pixels
   (monocular depth has no scale), then pred is clipped to [min_depth, max_depth].
5. The seven metrics of `metrics.compute_depth_errors` per image; the dataset
   score is their mean over images (done by `depth_motion.evaluate`).

Protocols:
  kitti_eigen            SPEC 8.1: the 697 Eigen test images, raw Velodyne ground
                         truth, 1e-3 < gt < 80 m inside the Garg crop.
  kitti_eigen_benchmark  The 652 images of the Eigen split that have KITTI's
                         improved (annotated, denser) ground truth; as monodepth2's
                         `eigen_benchmark` split: every pixel with gt > 0, no crop,
                         predictions clipped to [1e-3, 80]. The data must carry the
                         improved ground truth (data_prep.kitti's benchmark split);
                         nothing in a depth map says which kind it is.
  cityscapes             SPEC 8.2: input crop rows [256, 768), cols [192, 1856) of the
                         1024x2048 image (skipped when the image is already cropped),
                         the same crop for full-resolution ground truth, 1e-3 < gt < 80.
  waymo                  Ground truth from the projected top LiDAR, full image,
                         1e-3 < gt < 80 m. The LiDAR's range is about 75 m, so the
                         80 m cap (the one the paper's tables use) removes nothing
                         measured; pass max_depth=75 to `get_protocol` for the other
                         convention.
  synthetic              data_prep.synthetic scenes: exact dense depth (0 on the sky), full
                         image, 1e-3 < gt < 80 m. Surfaces reach about 250 m, but the
                         scenes imitate a KITTI car camera (same field of view, 0.5-1 m
                         per frame), and beyond 80 m the parallax between frames is below
                         about 0.2 px at the demo resolution: depth there is not
                         observable from motion, so the KITTI cap is kept and results
                         stay comparable in kind with KITTI's.
"""

import dataclasses
from typing import Optional, Tuple

import cv2
import numpy as np

from depth_motion.evaluation import metrics

# Garg et al.'s crop as fractions of the image size, applied with int()
# truncation of float64 products (SfMLearner / monodepth2 code).
GARG_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Eigen et al.'s crop (the alternative in SfMLearner's eval_depth.py).
EIGEN_CROP_FRACTIONS = (0.3324324, 0.91351351, 0.0359477, 0.96405229)

# Cityscapes: rows [256, 768), cols [192, 1856) of the full 1024x2048 frame.
CITYSCAPES_FULL_SIZE = (1024, 2048)
CITYSCAPES_CROP = (256, 768, 192, 1856)


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How ground truth and prediction of one image are compared.

  Attributes:
    name: protocol name.
    min_depth, max_depth: valid ground-truth range (exclusive) and the
      clipping range of the scaled prediction.
    crop: 'garg', 'eigen' or 'none', the evaluation crop of the ground truth.
    positive_gt_only: valid pixels are gt > 0 instead of min < gt < max
      (monodepth2's rule for the improved KITTI ground truth).
    expected_images: size of the official test set (None: any).
    input_crop: (top, bottom, left, right) crop of images (and ground truth) of
      size `input_crop_full_size`, applied before resizing; None for none.
    input_crop_full_size: the (H, W) the input crop refers to.
    default_split: the TFDS split that holds this protocol's test set.
  """
  name: str
  min_depth: float = metrics.MIN_DEPTH
  max_depth: float = metrics.MAX_DEPTH
  crop: str = 'none'
  positive_gt_only: bool = False
  expected_images: Optional[int] = None
  input_crop: Optional[Tuple[int, int, int, int]] = None
  input_crop_full_size: Optional[Tuple[int, int]] = None
  default_split: str = 'test'


PROTOCOLS = {
    'kitti_eigen': Protocol('kitti_eigen', crop='garg', expected_images=697,
                            default_split='eigen_test'),
    'kitti_eigen_benchmark': Protocol('kitti_eigen_benchmark', positive_gt_only=True,
                                      expected_images=652,
                                      default_split='eigen_benchmark_test'),
    'cityscapes': Protocol('cityscapes', expected_images=1525, input_crop=CITYSCAPES_CROP,
                           input_crop_full_size=CITYSCAPES_FULL_SIZE),
    'waymo': Protocol('waymo'),
    'synthetic': Protocol('synthetic'),
}


def get_protocol(name, **overrides):
  """The protocol called `name`, with fields replaced by `overrides` (e.g. max_depth=75)."""
  if name not in PROTOCOLS:
    raise ValueError('Unknown protocol %r; expected one of %s.' % (name, ', '.join(PROTOCOLS)))
  unknown = set(overrides) - {f.name for f in dataclasses.fields(Protocol)}
  if unknown:
    raise ValueError('Unknown protocol fields %s.' % ', '.join(sorted(unknown)))
  return dataclasses.replace(PROTOCOLS[name], **overrides)


def _crop_box(fractions, height, width):
  top, bottom, left, right = (np.array(fractions, dtype=np.float64) *
                              [height, height, width, width]).astype(np.int32)
  return int(top), int(bottom), int(left), int(right)


def garg_crop_box(height, width):
  """(top, bottom, left, right), half-open, of the Garg crop; 375x1242 -> (153, 371, 44, 1197)."""
  return _crop_box(GARG_CROP_FRACTIONS, height, width)


def eigen_crop_box(height, width):
  """(top, bottom, left, right), half-open, of the Eigen crop."""
  return _crop_box(EIGEN_CROP_FRACTIONS, height, width)


def crop_mask(crop, height, width):
  """[H, W] bool mask of the evaluation crop 'garg', 'eigen' or 'none'."""
  if crop == 'none':
    return np.ones((height, width), dtype=bool)
  if crop == 'garg':
    top, bottom, left, right = garg_crop_box(height, width)
  elif crop == 'eigen':
    top, bottom, left, right = eigen_crop_box(height, width)
  else:
    raise ValueError("crop must be 'garg', 'eigen' or 'none', got %r." % (crop,))
  mask = np.zeros((height, width), dtype=bool)
  mask[top:bottom, left:right] = True
  return mask


def valid_mask(protocol, gt):
  """[H, W] bool: the pixels of ground truth `gt` [H, W] that the protocol scores."""
  gt = np.asarray(gt)
  if protocol.positive_gt_only:
    in_range = gt > 0
  else:
    in_range = (gt > protocol.min_depth) & (gt < protocol.max_depth)
  return in_range & crop_mask(protocol.crop, *gt.shape)


def apply_input_crop(protocol, array):
  """Crops an [H, W, ...] array with the protocol's input crop if it has the crop's full size."""
  if protocol.input_crop is None or tuple(array.shape[:2]) != protocol.input_crop_full_size:
    return array
  top, bottom, left, right = protocol.input_crop
  return array[top:bottom, left:right]


def _cropped_size(protocol, size):
  if protocol.input_crop is None or tuple(size) != protocol.input_crop_full_size:
    return tuple(size)
  top, bottom, left, right = protocol.input_crop
  return (bottom - top, right - left)


def prepare_image(protocol, image, size):
  """Crops (if the protocol says so) and resizes an image to the network's input.

  Args:
    protocol: a `Protocol`.
    image: uint8 [H, W, 3] (or float in [0, 1]).
    size: (height, width) the network was trained at.

  Returns:
    float32 [height, width, 3] in [0, 1].
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError('image must have shape [H, W, 3], got %s.' % (image.shape,))
  image = apply_input_crop(protocol, image)
  height, width = size
  if image.shape[:2] != (height, width):
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 255.0
  return np.asarray(image, dtype=np.float32)


def prepare_ground_truth(protocol, gt, image_shape):
  """Checks ground-truth depth against its image and applies the protocol's input crop.

  Args:
    protocol: a `Protocol`.
    gt: [H, W] (or [H, W, 1]) ground-truth depth, 0 where unknown.
    image_shape: (H, W) of the image it belongs to, before any crop.

  Returns:
    float32 [H', W'] ground truth.

  Raises:
    ValueError: gt is not a depth map, or does not show the image's view (its
      aspect ratio differs from the image's by more than 5 %; the struct2depth
      resize of KITTI frames, 1242x375 to 416x128, changes it by 2 %).
  """
  gt = np.asarray(gt)
  if gt.ndim == 3 and gt.shape[-1] == 1:
    gt = gt[..., 0]
  if gt.ndim != 2 or min(gt.shape) == 0:
    raise ValueError('ground-truth depth must have shape [H, W], got %s.' % (gt.shape,))
  image_hw = tuple(int(d) for d in image_shape[:2])
  if tuple(gt.shape) == image_hw:
    gt = apply_input_crop(protocol, gt)
  image_hw = _cropped_size(protocol, image_hw)
  gt_aspect = gt.shape[1] / gt.shape[0]
  image_aspect = image_hw[1] / image_hw[0]
  if abs(gt_aspect / image_aspect - 1.0) > 0.05:
    raise ValueError(
        'ground-truth depth of size %dx%d (HxW) does not match its image of size %dx%d%s: '
        'the aspect ratios differ (%.3f vs %.3f).' %
        (gt.shape[0], gt.shape[1], image_hw[0], image_hw[1],
         ' (after the %s crop)' % protocol.name if protocol.input_crop else '',
         gt_aspect, image_aspect))
  if not np.all(np.isfinite(gt)):
    raise ValueError('ground-truth depth contains NaN or inf (use 0 for unknown pixels).')
  return gt.astype(np.float32)


def resize_prediction(pred, size):
  """Resizes a predicted depth map [h, w] (or [h, w, 1]) to size (H, W) with cv2.INTER_LINEAR."""
  pred = np.asarray(pred, dtype=np.float32)
  if pred.ndim == 3 and pred.shape[-1] == 1:
    pred = pred[..., 0]
  if pred.ndim != 2:
    raise ValueError('predicted depth must have shape [H, W], got %s.' % (pred.shape,))
  height, width = size
  if pred.shape == (height, width):
    return pred
  return cv2.resize(pred, (width, height), interpolation=cv2.INTER_LINEAR)


def evaluate_depth_image(protocol, gt, pred, parts=None, median_scaling=True):
  """Scores one prediction against its ground truth.

  Args:
    protocol: a `Protocol`.
    gt: [H, W] ground-truth depth (0 = unknown).
    pred: [H, W] predicted depth at the ground truth's size (`resize_prediction`).
    parts: optional dict name -> [H, W] bool, subsets of pixels (e.g. moving
      and static) scored with the same scale as the whole image.
    median_scaling: False scores the raw prediction (a metric-scale model).

  Returns:
    None when the image has no valid pixel, else a dict with `metrics` (the
    seven metrics), `ratio` (the median-scaling factor, 1.0 without scaling),
    `num_pixels`, and `parts`: name -> metrics (parts without valid pixels
    are left out).
  """
  gt = np.asarray(gt, dtype=np.float64)
  pred = np.asarray(pred, dtype=np.float64)
  if gt.shape != pred.shape or gt.ndim != 2:
    raise ValueError('gt and pred must be [H, W] maps of one size, got %s and %s.' %
                     (gt.shape, pred.shape))
  mask = valid_mask(protocol, gt)
  if not np.any(mask):
    return None
  if median_scaling:
    scaled, ratio = metrics.median_scale(gt[mask], pred[mask], protocol.min_depth,
                                         protocol.max_depth)
  else:
    scaled = metrics.clip_depth(pred[mask], protocol.min_depth, protocol.max_depth)
    ratio = 1.0
  result = {
      'metrics': metrics.compute_depth_errors(gt[mask], scaled),
      'ratio': ratio,
      'num_pixels': int(mask.sum()),
      'parts': {},
  }
  for name, part in (parts or {}).items():
    part = np.asarray(part, dtype=bool)
    if part.shape != gt.shape:
      raise ValueError('part %r must have shape %s, got %s.' % (name, gt.shape, part.shape))
    selected = part[mask]
    if np.any(selected):
      result['parts'][name] = metrics.compute_depth_errors(gt[mask][selected], scaled[selected])
  return result


def resize_mask(mask, size):
  """Nearest-neighbour resize of a bool [h, w] mask to size (H, W)."""
  mask = np.asarray(mask)
  height, width = size
  if mask.shape == (height, width):
    return mask.astype(bool)
  return cv2.resize(mask.astype(np.uint8), (width, height),
                    interpolation=cv2.INTER_NEAREST).astype(bool)
