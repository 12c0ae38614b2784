"""Evaluation: depth metrics (and, in their own modules, the dataset protocols)."""

from depth_motion.evaluation.metrics import MAX_DEPTH
from depth_motion.evaluation.metrics import METRIC_NAMES
from depth_motion.evaluation.metrics import MIN_DEPTH
from depth_motion.evaluation.metrics import clip_depth
from depth_motion.evaluation.metrics import compute_depth_errors
from depth_motion.evaluation.metrics import median_scale

__all__ = [
    'MAX_DEPTH',
    'METRIC_NAMES',
    'MIN_DEPTH',
    'clip_depth',
    'compute_depth_errors',
    'median_scale',
]
