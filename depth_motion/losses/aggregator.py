"""All training losses of the depth + motion-field model from its endpoints (SPEC 5).

`DepthMotionFieldLossAggregator(endpoints, weights_overrides, params_overrides)`
mirrors the reference class of the same name: it stacks frame 1 and frame 2
along the batch (so the forward 1->2 and backward 2->1 directions are
averaged together), warps each frame's depth into the other frame, and
evaluates every term. Each term is multiplied by 2 x its weight (the
reference's "scale of the old code"); the SSIM term carries an extra 0.5.
"""

import copy

import tensorflow as tf

from depth_motion import params as params_lib
from depth_motion.geometry import intrinsics
from depth_motion.geometry import shapes
from depth_motion.geometry import transform_depth_map
from depth_motion.losses import consistency
from depth_motion.losses import regularizers

# The aggregator's own defaults (the reference's `_default_weights`). The model
# overrides all of them with DEFAULT_PARAMS['loss_weights'].
DEFAULT_WEIGHTS = {
    'rgb_consistency': 1.0,
    'ssim': 3.0,
    'depth_consistency': 0.0,
    'depth_smoothing': 0.01,
    'depth_supervision': 1.0,
    'rotation_cycle_consistency': 1e-3,
    'translation_cycle_consistency': 1e-2,
    'depth_variance': 1e-6,
    'motion_smoothing': 1e-3,
    'motion_drift': 0.0,
}

DEFAULT_PARAMS = {
    'target_depth_stop_gradient': True,
    'scale_normalization': False,
    'num_scales': 1,
    'skip_zero_weight_depth_variance': True,
}

# Endpoint key -> layout of each element of its (frame 1, frame 2) pair.
_REQUIRED_ENDPOINTS = {
    'rgb': 'B,H,W,3',
    'predicted_depth': 'B,H,W,1',
    'residual_translation': 'B,H,W,3',
    'background_translation': 'B,1,1,3',
    'rotation': 'B,3',
    'intrinsics_mat': 'B,3,3',
}
_OPTIONAL_ENDPOINTS = {
    'intrinsics_mat_inv': 'B,3,3',
    'validity_mask': 'B,H,W,1',
    'groundtruth_depth': 'B,H,W,1',
    'groundtruth_depth_weight': 'B,H,W,1',
    'groundtruth_depth_filter': 'B,H,W,1',
}
# Single-channel maps that may also come without their channel axis.
_MAP_ENDPOINTS = ('validity_mask', 'groundtruth_depth', 'groundtruth_depth_weight',
                  'groundtruth_depth_filter')


def _min_pool2d(images, ksize, strides, padding):
  return -tf.nn.max_pool2d(-images, ksize, strides, padding)


def _pyramid(images, num_scales, pooling_fn=tf.nn.avg_pool2d):
  """[images, images / 2, ...] by 2x2 pooling, `num_scales` levels."""
  pyramid = [images]
  for _ in range(1, num_scales):
    pyramid.append(pooling_fn(pyramid[-1], 2, 2, 'VALID'))
  return pyramid


def _intrinsics_pyramid(intrinsics_mat, num_scales):
  pyramid = [intrinsics_mat]
  for s in range(1, num_scales):
    factor = 1.0 / 2**s
    pyramid.append(intrinsics.make_intrinsics_matrix(
        intrinsics_mat[:, 0, 0] * factor, intrinsics_mat[:, 1, 1] * factor,
        intrinsics_mat[:, 0, 2] * factor, intrinsics_mat[:, 1, 2] * factor))
  return pyramid


class DepthMotionFieldLossAggregator:
  """Computes the losses of a depth map + 3D motion field model.

  Args:
    endpoints: dict of 2-tuples (frame 1, frame 2), as the reference's
      `loss_fn` builds them:
        rgb [B,H,W,3] in [0, 1]; predicted_depth [B,H,W,1];
        residual_translation [B,H,W,3]; background_translation [B,1,1,3];
        rotation [B,3]; intrinsics_mat [B,3,3]. Element 0 of the motion
        pairs is the 1->2 motion, element 1 the 2->1 motion.
      Optional: intrinsics_mat_inv (ignored: the closed-form inverse of
        intrinsics_mat is used, as in the reference); validity_mask
        [B,H,W,1] float; groundtruth_depth [B,H,W,1] (enables the depth
        supervision term), with optional groundtruth_depth_weight [B,H,W,1]
        (default float(groundtruth_depth > 0.2)) and groundtruth_depth_filter
        [B,H,W,1] (bool or float; the loss is averaged over it). These four
        maps may also be given as [B,H,W].
    weights_overrides: dict (or JSON string) overriding DEFAULT_WEIGHTS;
      unknown keys raise (strict). The model passes all ten keys from
      DEFAULT_PARAMS['loss_weights'].
    params_overrides: dict overriding DEFAULT_PARAMS, strictly:
      target_depth_stop_gradient (no gradient through the target frame's
        depth in the RGBD loss), scale_normalization (divide depths and
        translations by the batch mean depth after depth supervision),
      num_scales (the reference's generic multi-scale path; 1 by default),
      skip_zero_weight_depth_variance (ours, default True): when the
        depth_variance weight is 0 the term is not computed and stays 0. The
        reference computes 0 * (1 / variance), which is NaN for a constant
        depth map (e.g. a collapsed network or a synthetic test) and poisons
        the total loss and every gradient; constant depth must give finite
        losses, so skipping is our default. False reproduces the reference.

  Attributes:
    losses: dict with exactly the ten weight keys -> scalar, weighting
      applied; the training loss is their sum (plus the networks' own weight
      decay, which the trainer adds; there are no TF1 collections here).
    output_endpoints: 'disparity' [2B,H,W,1] (1 / depth, after scale
      normalisation), 'depth_proximity_weight' [2B,H,W], 'trans' and
      'inv_trans' [2B,H,W,3] (total translation fields, forward stack and
      swapped stack).

  Deviations in the multi-scale path (num_scales > 1, unreachable from the
  model params): the reference builds the depth-filter pyramid from the
  ground-truth depth and overwrites the depth variance at every scale (SPEC
  9.19); here the filter is min-pooled from the filter itself and the depth
  variance is accumulated like the other terms. With num_scales = 1 both
  agree with the reference.
  """

  def __init__(self, endpoints, weights_overrides=None, params_overrides=None):
    self._weights = params_lib.ParameterContainer.from_defaults_and_overrides(
        DEFAULT_WEIGHTS, weights_overrides, is_strict=True).as_dict()
    self._params = params_lib.ParameterContainer.from_defaults_and_overrides(
        DEFAULT_PARAMS, params_overrides, is_strict=True).as_dict()
    num_scales = self._params['num_scales']
    if not isinstance(num_scales, int) or num_scales < 1:
      raise ValueError('params num_scales must be an integer >= 1, got %r.' % (num_scales,))
    self._endpoints = self._validate_endpoints(endpoints)
    self._losses = {key: tf.constant(0.0) for key in DEFAULT_WEIGHTS}
    self._output_endpoints = {}
    self._calculate()

  @property
  def losses(self):
    return self._losses

  @property
  def output_endpoints(self):
    return self._output_endpoints

  @property
  def weights(self):
    """The effective weights (defaults with the overrides applied)."""
    return copy.deepcopy(self._weights)

  @property
  def params(self):
    return copy.deepcopy(self._params)

  @staticmethod
  def _validate_endpoints(endpoints):
    if not isinstance(endpoints, dict):
      raise ValueError('endpoints must be a dict of (frame1, frame2) pairs, got %s.' %
                       type(endpoints).__name__)
    missing = [key for key in _REQUIRED_ENDPOINTS if key not in endpoints]
    if missing:
      raise ValueError('endpoints lack %s (have: %s).' %
                       (', '.join(missing), ', '.join(sorted(endpoints))))
    checker = shapes.ShapeChecker()
    validated = {}
    for key, layout in list(_REQUIRED_ENDPOINTS.items()) + list(_OPTIONAL_ENDPOINTS.items()):
      if key not in endpoints:
        continue
      pair = endpoints[key]
      if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError('endpoints[%r] must be a pair (frame1, frame2), got %s.' %
                         (key, type(pair).__name__ if not isinstance(pair, (list, tuple))
                          else 'a sequence of length %d' % len(pair)))
      tensors = []
      for i, element in enumerate(pair):
        if key == 'groundtruth_depth_filter':
          tensor = tf.convert_to_tensor(element)
          tensor = tf.cast(tensor, tf.float32)
        else:
          tensor = tf.convert_to_tensor(element, dtype_hint=tf.float32)
          if tensor.dtype != tf.float32:
            tensor = tf.cast(tensor, tf.float32)
        name = 'endpoints[%r][%d]' % (key, i)
        if key in _MAP_ENDPOINTS:
          if checker.check(name, tensor, 'B,H,W', layout) == 'B,H,W':
            tensor = tensor[..., tf.newaxis]
        else:
          checker.check(name, tensor, layout)
        tensors.append(tensor)
      validated[key] = tuple(tensors)
    return validated

  def _calculate(self):
    ep = self._endpoints
    weights = self._weights
    params = self._params
    num_scales = params['num_scales']

    def stack(key):
      return tf.concat(ep[key], axis=0)

    def flipped(key):
      return tf.concat(ep[key][::-1], axis=0)

    rgb_pyramid = _pyramid(stack('rgb'), num_scales)
    flipped_rgb_pyramid = _pyramid(flipped('rgb'), num_scales)
    depth_pyramid = _pyramid(stack('predicted_depth'), num_scales)
    flipped_depth_pyramid = _pyramid(flipped('predicted_depth'), num_scales)
    residual_pyramid = _pyramid(stack('residual_translation'), num_scales)
    flipped_residual_pyramid = _pyramid(flipped('residual_translation'), num_scales)
    intrinsics_pyramid = _intrinsics_pyramid(stack('intrinsics_mat'), num_scales)
    if 'validity_mask' in ep:
      validity_mask_pyramid = _pyramid(stack('validity_mask'), num_scales, _min_pool2d)
    else:
      validity_mask_pyramid = [None] * num_scales

    supervised = 'groundtruth_depth' in ep
    if supervised:
      gt_depth = stack('groundtruth_depth')
      gt_depth_pyramid = _pyramid(gt_depth, num_scales)
      if 'groundtruth_depth_weight' in ep:
        gt_weight = stack('groundtruth_depth_weight')
      else:
        gt_weight = tf.cast(gt_depth > 0.2, gt_depth.dtype)
      gt_weight_pyramid = _pyramid(gt_weight, num_scales)
      if 'groundtruth_depth_filter' in ep:
        filter_pyramid = _pyramid(stack('groundtruth_depth_filter'), num_scales, _min_pool2d)
      else:
        filter_pyramid = [tf.ones_like(d) for d in gt_depth_pyramid]

    background = stack('background_translation')
    flipped_background = flipped('background_translation')
    rotation = stack('rotation')
    flipped_rotation = flipped('rotation')
    skip_depth_variance = (params['skip_zero_weight_depth_variance'] and
                           weights['depth_variance'] == 0)

    # Coarsest scale first, so that the output endpoints end at scale 0.
    for s in reversed(range(num_scales)):
      scale_weight = 1.0 / 2**s
      rgb = rgb_pyramid[s]
      depth = depth_pyramid[s]
      flipped_depth = flipped_depth_pyramid[s]

      if supervised:
        depth_error = tf.abs(gt_depth_pyramid[s] - depth) * gt_weight_pyramid[s]
        depth_filter = filter_pyramid[s]
        self._losses['depth_supervision'] += scale_weight * tf.reduce_mean(
            depth_error * depth_filter) / tf.reduce_mean(depth_filter)

      # The photometric losses do not see the global depth scale, but it can
      # drift (second-order effects); scale_normalization divides it out.
      # Depth supervision above is scale-sensitive and comes before it.
      mean_depth = tf.reduce_mean(depth)
      if not skip_depth_variance:
        # Penalises a collapse to a constant depth map (a fixed point of the
        # photometric losses).
        depth_var = tf.reduce_mean(tf.square(depth / mean_depth - 1.0))
        self._losses['depth_variance'] += scale_weight * 1.0 / depth_var

      residual = residual_pyramid[s]
      flipped_residual = flipped_residual_pyramid[s]
      scale_background = background
      scale_flipped_background = flipped_background
      if params['scale_normalization']:
        depth /= mean_depth
        flipped_depth /= mean_depth
        scale_background /= mean_depth
        scale_flipped_background /= mean_depth
        residual /= mean_depth
        flipped_residual /= mean_depth

      disparity = 1.0 / depth
      mean_disparity = tf.reduce_mean(disparity, axis=[1, 2, 3], keepdims=True)
      self._losses['depth_smoothing'] += scale_weight * regularizers.joint_bilateral_smoothing(
          disparity / mean_disparity, rgb)
      self._output_endpoints['disparity'] = disparity

      translation = residual + scale_background
      flipped_translation = flipped_residual + scale_flipped_background
      intrinsics_mat = intrinsics_pyramid[s]
      intrinsics_mat_inv = intrinsics.invert_intrinsics_matrix(intrinsics_mat)
      validity_mask = validity_mask_pyramid[s]

      transformed_depth = transform_depth_map.using_motion_vector(
          depth[..., 0], translation, rotation, intrinsics_mat, intrinsics_mat_inv)
      target_depth = flipped_depth[..., 0]
      if params['target_depth_stop_gradient']:
        target_depth = tf.stop_gradient(target_depth)
      # Item i of the first half moves frame 1 into frame 2 with the 1->2
      # motion; the second half does the reverse, hence the flipped targets.
      loss_endpoints = consistency.rgbd_and_motion_consistency_loss(
          transformed_depth, rgb, target_depth, flipped_rgb_pyramid[s], rotation,
          translation, flipped_rotation, flipped_translation, validity_mask=validity_mask)

      normalized_residual = regularizers.normalize_motion_map(residual, translation)
      self._losses['motion_smoothing'] += scale_weight * regularizers.l1smoothness(
          normalized_residual, wrap_around=weights['motion_drift'] == 0)
      self._losses['motion_drift'] += scale_weight * regularizers.sqrt_sparsity(
          normalized_residual)
      self._losses['depth_consistency'] += scale_weight * loss_endpoints['depth_error']
      self._losses['rgb_consistency'] += scale_weight * loss_endpoints['rgb_error']
      self._losses['ssim'] += scale_weight * 0.5 * loss_endpoints['ssim_error']
      self._losses['rotation_cycle_consistency'] += (
          scale_weight * loss_endpoints['rotation_error'])
      self._losses['translation_cycle_consistency'] += (
          scale_weight * loss_endpoints['translation_error'])

      self._output_endpoints['depth_proximity_weight'] = (
          loss_endpoints['depth_proximity_weight'])
      self._output_endpoints['trans'] = translation
      self._output_endpoints['inv_trans'] = flipped_translation

    for key, weight in weights.items():
      # The reference doubles every weight "to match the scale of the old code".
      self._losses[key] = self._losses[key] * (weight * 2)
