"""Training losses: consistency between frames, regularisers and their aggregation.

`DepthMotionFieldLossAggregator` is what the model calls; the individual terms
are exported for tests, ablations and other models.
"""

from depth_motion.losses.aggregator import DepthMotionFieldLossAggregator
from depth_motion.losses.consistency import motion_field_consistency_loss
from depth_motion.losses.consistency import rgbd_and_motion_consistency_loss
from depth_motion.losses.consistency import rgbd_consistency_loss
from depth_motion.losses.regularizers import joint_bilateral_smoothing
from depth_motion.losses.regularizers import l1smoothness
from depth_motion.losses.regularizers import normalize_motion_map
from depth_motion.losses.regularizers import sqrt_sparsity
from depth_motion.losses.ssim import weighted_ssim

__all__ = [
    'DepthMotionFieldLossAggregator',
    'joint_bilateral_smoothing',
    'l1smoothness',
    'motion_field_consistency_loss',
    'normalize_motion_map',
    'rgbd_and_motion_consistency_loss',
    'rgbd_consistency_loss',
    'sqrt_sparsity',
    'weighted_ssim',
]
