"""Geometry: rotations, intrinsics, bilinear resampling and depth-map warping.

Exists once and is used by the losses, evaluation, inference and the
synthetic data checks. Conventions (SPEC 4): R = Rx·Ry·Rz from Euler angles
(rx, ry, rz); pinhole K with integer pixel coordinates at pixel centres.
"""

from depth_motion.geometry.intrinsics import invert_intrinsics_matrix
from depth_motion.geometry.intrinsics import make_intrinsics_matrix
from depth_motion.geometry.resampler import resampler_with_unstacked_warp
from depth_motion.geometry.rotations import angles_from_matrix
from depth_motion.geometry.rotations import combine
from depth_motion.geometry.rotations import inverse_euler
from depth_motion.geometry.rotations import invert_rot_and_trans
from depth_motion.geometry.rotations import matrix_from_angles
from depth_motion.geometry.rotations import unstacked_matrix_from_angles
from depth_motion.geometry.transform_depth_map import TransformedDepthMap
from depth_motion.geometry.transform_depth_map import using_motion_vector
from depth_motion.geometry.transform_depth_map import using_transform_matrix

__all__ = [
    'TransformedDepthMap',
    'angles_from_matrix',
    'combine',
    'inverse_euler',
    'invert_intrinsics_matrix',
    'invert_rot_and_trans',
    'make_intrinsics_matrix',
    'matrix_from_angles',
    'resampler_with_unstacked_warp',
    'unstacked_matrix_from_angles',
    'using_motion_vector',
    'using_transform_matrix',
]
