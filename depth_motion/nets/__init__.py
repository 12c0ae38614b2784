"""The depth and motion networks (Keras 3 models) and their building blocks.

`DepthNet` predicts depth from one image; `MotionFieldNet` predicts camera
motion, a residual translation field and intrinsics from a pair of frames;
`PerVideoIntrinsics` learns intrinsics per video. Their variables map one to
one onto the reference's checkpoint names (`depth_motion.checkpoints`).
"""

from depth_motion.nets.depth_net import DepthNet
from depth_motion.nets.depth_net import ResidualBlock
from depth_motion.nets.layer_norm import layer_norm_noise_stddev
from depth_motion.nets.layer_norm import RandomizedLayerNorm
from depth_motion.nets.motion_net import IntrinsicsHead
from depth_motion.nets.motion_net import MinimumValue
from depth_motion.nets.motion_net import MotionFieldNet
from depth_motion.nets.motion_net import PerVideoIntrinsics
from depth_motion.nets.motion_net import RefineMotionField
from depth_motion.nets.motion_net import resize_bilinear
from depth_motion.nets.motion_net import Scales

__all__ = [
    'DepthNet', 'IntrinsicsHead', 'MinimumValue', 'MotionFieldNet', 'PerVideoIntrinsics',
    'RandomizedLayerNorm', 'RefineMotionField', 'ResidualBlock', 'Scales',
    'layer_norm_noise_stddev', 'resize_bilinear',
]
