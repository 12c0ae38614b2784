"""Photometric, depth and motion-cycle consistency between two frames (SPEC 5.6, 5.7).

The losses are not symmetric in the two frames: frame 1's depth map is moved
into frame 2 and compared with what frame 2 sees there, only where frame 1's
point is the closer one (occlusion awareness, Gordon et al. 2019). The
aggregator therefore evaluates them on a batch that holds both orderings.
"""

import tensorflow as tf

from depth_motion.geometry import resampler
from depth_motion.geometry import rotations
from depth_motion.geometry import shapes
from depth_motion.losses import ssim as ssim_lib

# The SSIM constants the reference found to work better than the defaults.
_SSIM_C1 = float('inf')
_SSIM_C2 = 9e-6


def _weighted_average(x, w, epsilon=1.0):
  """Per-image sum(x·w) / (sum(w) + epsilon) over H and W, shape [B, 1, 1]."""
  weighted_sum = tf.reduce_sum(x * w, axis=(1, 2), keepdims=True)
  sum_of_weights = tf.reduce_sum(w, axis=(1, 2), keepdims=True)
  return weighted_sum / (sum_of_weights + epsilon)


def rgbd_consistency_loss(frame1transformed_depth, frame1rgb, frame2depth, frame2rgb,
                          validity_mask=None):
  """Depth L1, RGB L1 and weighted-SSIM errors of frame 1 moved onto frame 2.

  Frame 2's RGB and depth are sampled where frame 1's pixels land; a pixel
  counts only where the moved frame-1 point is valid (mask) and closer to the
  camera than frame 2's surface there ("frame1_closer_to_camera"). The SSIM
  term is weighted by a depth-proximity weight m / (e² + m) (e = depth
  difference, m its masked per-image second moment + 1e-4), which carries no
  gradient.

  Args:
    frame1transformed_depth: `geometry.TransformedDepthMap` of frame 1 moved
      into frame 2 ([B, H, W] tensors).
    frame1rgb: [B, H, W, C] frame-1 image.
    frame2depth: [B, H, W] frame-2 depth.
    frame2rgb: [B, H, W, C] frame-2 image.
    validity_mask: optional [B, H, W, 1] float mask multiplying the depth and
      RGB error maps and the proximity weight.

  Returns:
    dict with scalars `depth_error`, `rgb_error`, `ssim_error`, and [B, H, W]
    maps `depth_proximity_weight`, `frame1_closer_to_camera` (float 0/1).
  """
  tdm = frame1transformed_depth
  frame1rgb = tf.convert_to_tensor(frame1rgb, dtype_hint=tf.float32)
  dtype = frame1rgb.dtype
  frame2depth = tf.convert_to_tensor(frame2depth, dtype=dtype)
  frame2rgb = tf.convert_to_tensor(frame2rgb, dtype=dtype)
  checker = shapes.ShapeChecker()
  checker.check('frame1transformed_depth.depth', tdm.depth, 'B,H,W')
  checker.check('frame1transformed_depth.pixel_x', tdm.pixel_x, 'B,H,W')
  checker.check('frame1transformed_depth.pixel_y', tdm.pixel_y, 'B,H,W')
  checker.check('frame1transformed_depth.mask', tdm.mask, 'B,H,W')
  checker.check('frame1rgb', frame1rgb, 'B,H,W,C')
  checker.check('frame2depth', frame2depth, 'B,H,W')
  checker.check('frame2rgb', frame2rgb, 'B,H,W,C')
  if validity_mask is not None:
    validity_mask = tf.convert_to_tensor(validity_mask, dtype=dtype)
    checker.check('validity_mask', validity_mask, 'B,H,W,1')

  frame2rgbd = tf.concat([frame2rgb, frame2depth[..., tf.newaxis]], axis=-1)
  frame2rgbd_resampled = resampler.resampler_with_unstacked_warp(
      frame2rgbd, tdm.pixel_x, tdm.pixel_y, safe=False)
  frame2rgb_resampled = frame2rgbd_resampled[..., :-1]
  frame2depth_resampled = frame2rgbd_resampled[..., -1]

  # Where frame 1's point lands behind frame 2's surface it is occluded in
  # frame 2; that case is handled by the swapped pair.
  frame1_closer_to_camera = tf.cast(
      tf.logical_and(tdm.mask, tdm.depth < frame2depth_resampled), dtype)
  depth_l1_diff = tf.abs(frame2depth_resampled - tdm.depth)
  if validity_mask is not None:
    depth_l1_diff = depth_l1_diff * validity_mask[..., 0]
  depth_error = tf.reduce_mean(tf.math.multiply_no_nan(depth_l1_diff, frame1_closer_to_camera))

  rgb_l1_diff = tf.abs(frame2rgb_resampled - frame1rgb)
  if validity_mask is not None:
    rgb_l1_diff = rgb_l1_diff * validity_mask
  rgb_error = tf.reduce_mean(
      tf.math.multiply_no_nan(rgb_l1_diff, frame1_closer_to_camera[..., tf.newaxis]))

  depth_diff_squared = tf.square(frame2depth_resampled - tdm.depth)
  depth_error_second_moment = _weighted_average(
      depth_diff_squared, frame1_closer_to_camera) + 1e-4
  depth_proximity_weight = tf.math.multiply_no_nan(
      depth_error_second_moment / (depth_diff_squared + depth_error_second_moment),
      tf.cast(tdm.mask, dtype))
  if validity_mask is not None:
    depth_proximity_weight = depth_proximity_weight * validity_mask[..., 0]
  # With a gradient here the network could lower the SSIM term by pushing the
  # two depth maps apart instead of matching the images; training does not
  # start then.
  depth_proximity_weight = tf.stop_gradient(depth_proximity_weight)

  ssim_error, avg_weight = ssim_lib.weighted_ssim(
      frame2rgb_resampled, frame1rgb, depth_proximity_weight, c1=_SSIM_C1, c2=_SSIM_C2)
  ssim_error_mean = tf.reduce_mean(tf.math.multiply_no_nan(ssim_error, avg_weight))

  return {
      'depth_error': depth_error,
      'rgb_error': rgb_error,
      'ssim_error': ssim_error_mean,
      'depth_proximity_weight': depth_proximity_weight,
      'frame1_closer_to_camera': frame1_closer_to_camera,
  }


def motion_field_consistency_loss(frame1transformed_pixelx, frame1transformed_pixely, mask,
                                  rotation1, translation1, rotation2, translation2):
  """Cycle consistency of the forward (1->2) and backward (2->1) motions.

  Following a frame-1 pixel's motion and then frame 2's motion at the spot
  where it landed should give the identity. As in the reference code, the
  composition is `combine(R2, T2_w, R1, T1)`: rot_unit = R1·R2 and
  trans_zero = R1·T2_w + T1, with T2_w the backward field sampled at the
  landing spot (no gradient into the coordinates). SPEC 5.7's earlier
  reading R2·T1 + T2_w is not what the reference computes.

  rotation_error = mean(mean((R1 R2 - I)²) / (1e-24 + mean((R1 - I)²) +
  mean((R2 - I)²))), unmasked; translation_error = mean(mask · |trans_zero|² /
  (1e-24 + |T1|² + |T2_w|²)). Both are normalised by the motions' own
  magnitude so that they do not simply push the motions to zero.

  Args:
    frame1transformed_pixelx, frame1transformed_pixely: [B, H, W] where frame
      1's pixels land in frame 2.
    mask: [B, H, W] weight of each pixel in the translation error.
    rotation1: [B, 3] (or per pixel [B, H, W, 3]) angles of the 1->2 motion.
    translation1: [B, H, W, 3] translation field of the 1->2 motion.
    rotation2: like rotation1, the 2->1 motion.
    translation2: [B, H, W, 3], the 2->1 translation field (frame-2 pixels).

  Returns:
    dict with scalars `rotation_error` and `translation_error`.
  """
  pixel_x = tf.convert_to_tensor(frame1transformed_pixelx, dtype_hint=tf.float32)
  dtype = pixel_x.dtype
  pixel_y = tf.convert_to_tensor(frame1transformed_pixely, dtype=dtype)
  mask = tf.convert_to_tensor(mask, dtype=dtype)
  rotation1 = tf.convert_to_tensor(rotation1, dtype=dtype)
  translation1 = tf.convert_to_tensor(translation1, dtype=dtype)
  rotation2 = tf.convert_to_tensor(rotation2, dtype=dtype)
  translation2 = tf.convert_to_tensor(translation2, dtype=dtype)
  checker = shapes.ShapeChecker()
  checker.check('frame1transformed_pixelx', pixel_x, 'B,H,W')
  checker.check('frame1transformed_pixely', pixel_y, 'B,H,W')
  checker.check('mask', mask, 'B,H,W')
  checker.check('translation1', translation1, 'B,H,W,3')
  checker.check('translation2', translation2, 'B,H,W,3')
  layout1 = checker.check('rotation1', rotation1, 'B,3', 'B,H,W,3')
  layout2 = checker.check('rotation2', rotation2, 'B,3', 'B,H,W,3')

  translation2_resampled = resampler.resampler_with_unstacked_warp(
      translation2, tf.stop_gradient(pixel_x), tf.stop_gradient(pixel_y), safe=False)

  def rotation_field(rotation, layout):
    matrix = rotations.matrix_from_angles(rotation)
    if layout == 'B,3' or rotation.shape.rank == 2:
      # A global rotation: one matrix per image, broadcast over the pixels.
      matrix = matrix[:, tf.newaxis, tf.newaxis]
    return matrix

  rotation1_matrix = rotation_field(rotation1, layout1)
  rotation2_matrix = rotation_field(rotation2, layout2)
  rot_unit, trans_zero = rotations.combine(rotation2_matrix, translation2_resampled,
                                           rotation1_matrix, translation1)
  eye = tf.eye(3, dtype=dtype)

  def mean_squared_deviation_from_identity(matrix):
    return tf.reduce_mean(tf.square(matrix - eye), axis=(-2, -1))

  rot_error = mean_squared_deviation_from_identity(rot_unit) / (
      1e-24 + mean_squared_deviation_from_identity(rotation1_matrix) +
      mean_squared_deviation_from_identity(rotation2_matrix))
  # Global rotations give one error per image; averaging it over the images
  # equals the reference's average over identical per-pixel copies.
  rotation_error = tf.reduce_mean(rot_error)

  def squared_norm(x):
    return tf.reduce_sum(tf.square(x), axis=-1)

  translation_error = tf.reduce_mean(tf.math.multiply_no_nan(
      squared_norm(trans_zero) /
      (1e-24 + squared_norm(translation1) + squared_norm(translation2_resampled)), mask))
  return {'rotation_error': rotation_error, 'translation_error': translation_error}


def rgbd_and_motion_consistency_loss(frame1transformed_depth, frame1rgb, frame2depth,
                                     frame2rgb, rotation1, translation1, rotation2,
                                     translation2, validity_mask=None):
  """Both losses above; the motion cycle is weighted by frame1_closer_to_camera.

  Returns the union of the two dicts.
  """
  endpoints = rgbd_consistency_loss(frame1transformed_depth, frame1rgb, frame2depth,
                                    frame2rgb, validity_mask=validity_mask)
  mask = endpoints['frame1_closer_to_camera']
  if validity_mask is not None:
    mask = mask * tf.convert_to_tensor(validity_mask, dtype=mask.dtype)[..., 0]
  endpoints.update(motion_field_consistency_loss(
      frame1transformed_depth.pixel_x, frame1transformed_depth.pixel_y, mask, rotation1,
      translation1, rotation2, translation2))
  return endpoints
