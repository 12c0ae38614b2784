"""The depth-and-motion model: both networks wired as the reference's `loss_fn`.

For a batch of frame pairs the model runs the depth net once on both frames
(stacked along the batch axis), the motion-field net once on both orderings
((frame1 || frame2) gives motion 1->2, (frame2 || frame1) motion 2->1), applies
the motion-field burn-in, the optional object mask, the choice of intrinsics
(given / learned from the network / learned per video) and hands the
per-frame-pair endpoints to `DepthMotionFieldLossAggregator`.

Features are dicts whose values are 2-tuples (index 0 = earlier frame):
`rgb` [B,H,W,3] in [0,1], `intrinsics_mat` [B,3,3], `intrinsics_mat_inv`, and
optionally `mask` (instance ids, int), `video_index` [B], `depth` (ground truth,
enables the depth-supervision term), `egomotion_mat` [B,4,4] (used when
`learn_egomotion` is False).

The global step enters as an argument (the noise ramp of the depth net's layer
norm and the burn-in both read it); nothing here looks up global state.
"""

import json
import os

from absl import logging
import tensorflow as tf

from depth_motion import geometry
from depth_motion import losses as losses_lib
from depth_motion import nets
from depth_motion import params as params_lib


def motion_burnin_factor(step, burnin_steps):
  """A burn-in ramp: 0 until burnin/2, then linear to 1 at burnin (1 when burnin is 0).

  The reference's ramp of the residual translation; `non_forward_motion_burnin_steps`
  reuses it for the rotation and the x, y translation.
  """
  if not burnin_steps or burnin_steps <= 0:
    return tf.constant(1.0)
  step = tf.cast(step, tf.float32)
  return tf.clip_by_value(2.0 * step / float(burnin_steps) - 1.0, 0.0, 1.0)


def dilate_mask(mask, dilation):
  """Max-pools a [B,H,W,1] float mask with a (2*dilation+1)^2 window (SAME)."""
  if dilation <= 0:
    return mask
  size = 2 * dilation + 1
  return tf.nn.max_pool2d(mask, ksize=size, strides=1, padding='SAME')


def _check_pair(features, key, rank):
  value = features.get(key)
  if value is None:
    raise ValueError('features[%r] is required.' % key)
  if not isinstance(value, (tuple, list)) or len(value) != 2:
    raise ValueError('features[%r] must be a 2-tuple (earlier frame, later frame), got %s.' %
                     (key, type(value).__name__))
  for i, tensor in enumerate(value):
    if tensor.shape.rank is not None and tensor.shape.rank != rank:
      raise ValueError('features[%r][%d] must have rank %d, got shape %s.' %
                       (key, i, rank, tensor.shape))


class DepthMotionFieldModel(tf.keras.Model):
  """Depth net + motion-field net (+ per-video intrinsics), producing the losses.

  Args:
    params: overrides of `params.DEFAULT_PARAMS` (dict, JSON string or file),
      applied strictly as the reference does.
  """

  def __init__(self, params=None, name='depth_motion_field_model'):
    super().__init__(name=name)
    self.params = params_lib.make_model_params(params)
    p = self.params
    if p['learn_intrinsics']['per_video'] and not p['learn_intrinsics']['enabled']:
      raise ValueError('learn_intrinsics.per_video needs learn_intrinsics.enabled=True.')
    self.depth_net = nets.DepthNet(p['depth_predictor_params'])
    motion = p['motion_prediction_params']
    self.motion_net = nets.MotionFieldNet(
        weight_reg=motion['weight_reg'], align_corners=motion['align_corners'],
        auto_mask=motion['auto_mask'])
    self.video_intrinsics = None
    if p['learn_intrinsics']['enabled'] and p['learn_intrinsics']['per_video']:
      self.video_intrinsics = nets.PerVideoIntrinsics(
          max_number_of_videos=p['learn_intrinsics']['max_number_of_videos'],
          image_height=p['image_preprocessing']['image_height'],
          image_width=p['image_preprocessing']['image_width'])

  def build_for_size(self, height, width):
    """Creates every variable by running the nets once on zeros."""
    rgb = tf.zeros([1, height, width, 3])
    features = {
        'rgb': (rgb, rgb),
        'intrinsics_mat': (tf.eye(3, batch_shape=[1]),) * 2,
        'intrinsics_mat_inv': (tf.eye(3, batch_shape=[1]),) * 2,
    }
    if self.video_intrinsics is not None:
      features['video_index'] = (tf.zeros([1], tf.int32),) * 2
    if self.params['use_mask']:
      features['mask'] = (tf.zeros([1, height, width, 1], tf.int32),) * 2
    if not self.params['learn_egomotion']:
      features['egomotion_mat'] = (tf.eye(4, batch_shape=[1]),) * 2
    self.compute_endpoints(features, step=0, training=False)

  def predict_depth(self, rgb, training=False, step=None):
    """Depth [N,H,W,1] for images [N,H,W,3] in [0,1] (no noise when not training)."""
    if training:
      return tf.cast(self.depth_net(rgb, training=True, step=step), tf.float32)
    return tf.cast(self.depth_net(rgb, training=False), tf.float32)

  def predict_motion(self, motion_input, training=False, refine_residual=True):
    """Runs the motion-field net; outputs cast to float32 (mixed precision)."""
    outputs = self.motion_net(motion_input, training=training, refine_residual=refine_residual)
    return tuple(tf.cast(o, tf.float32) for o in outputs)

  def compute_endpoints(self, features, step, training=True):
    """The endpoints dict of 2-tuples that the loss aggregator consumes."""
    _check_pair(features, 'rgb', 4)
    p = self.params
    step = tf.cast(step, tf.float32)
    rgb_stack = tf.concat(features['rgb'], axis=0)
    predict = lambda: self.predict_depth(rgb_stack, training=training, step=step)
    if p['depth_stop_gradient_steps']:
      # A cond rather than a select: while depth is frozen the step then skips
      # the depth net's backward pass (about a third of a CPU demo step).
      depth_stack = tf.cond(step < float(p['depth_stop_gradient_steps']),
                            lambda: tf.stop_gradient(predict()), predict)
    else:
      depth_stack = predict()
    predicted_depth = tuple(tf.split(depth_stack, 2, axis=0))

    endpoints = {'rgb': tuple(features['rgb']), 'predicted_depth': predicted_depth}
    if 'depth' in features:
      endpoints['groundtruth_depth'] = tuple(features['depth'])

    pairs = self.motion_pairs(features['rgb'][0], predicted_depth[0], features['rgb'][1],
                              predicted_depth[1])
    field_factor = motion_burnin_factor(step, p['motion_field_burnin_steps'])
    # While the burn-in holds the field at zero, its decoder is skipped.
    rotation, translation, residual, learned_k = self.predict_motion(
        pairs, training=training,
        refine_residual=field_factor > 0 if p['motion_field_burnin_steps'] else True)
    residual = residual * field_factor
    if p['non_forward_motion_burnin_steps']:
      ramp = motion_burnin_factor(step, p['non_forward_motion_burnin_steps'])
      rotation = rotation * ramp
      translation = translation * tf.stack([ramp, ramp, tf.constant(1.0)])

    if not p['learn_egomotion']:
      if 'egomotion_mat' not in features:
        raise ValueError('learn_egomotion=False needs features["egomotion_mat"].')
      egomotion = tf.concat(features['egomotion_mat'], axis=0)
      rotation = geometry.angles_from_matrix(egomotion[:, :3, :3])
      translation = egomotion[:, :3, 3][:, tf.newaxis, tf.newaxis, :]

    if p['use_mask']:
      if 'mask' not in features:
        raise ValueError('use_mask=True needs features["mask"] (instance masks).')
      mask = tf.cast(tf.concat(features['mask'], axis=0) > 0, tf.float32)
      residual = residual * dilate_mask(mask, p['foreground_dilation'])

    endpoints['residual_translation'] = tuple(tf.split(residual, 2, axis=0))
    endpoints['background_translation'] = tuple(tf.split(translation, 2, axis=0))
    endpoints['rotation'] = tuple(tf.split(rotation, 2, axis=0))

    if not p['learn_intrinsics']['enabled']:
      _check_pair(features, 'intrinsics_mat', 3)
      endpoints['intrinsics_mat'] = tuple(features['intrinsics_mat'])
      endpoints['intrinsics_mat_inv'] = tuple(
          features.get('intrinsics_mat_inv') or
          [geometry.invert_intrinsics_matrix(k) for k in features['intrinsics_mat']])
    else:
      if self.video_intrinsics is not None:
        if 'video_index' not in features:
          raise ValueError('learn_intrinsics.per_video needs features["video_index"].')
        # The reference stored one concatenated tensor here instead of a pair
        # (SPEC 3.4); both frames of a pair come from the same video.
        intrinsics = self.video_intrinsics(features['video_index'][0])
      else:
        # The 1->2 and 2->1 predictions should agree; the reference averages them.
        intrinsics = 0.5 * tf.add_n(tf.split(learned_k, 2, axis=0))
      intrinsics_inv = geometry.invert_intrinsics_matrix(intrinsics)
      endpoints['intrinsics_mat'] = (intrinsics, intrinsics)
      endpoints['intrinsics_mat_inv'] = (intrinsics_inv, intrinsics_inv)
    return endpoints

  def compute_losses(self, features, step, training=True):
    """Returns (losses dict, total loss, endpoints, aggregator output endpoints).

    The total is the sum of every loss entry plus the networks' weight-decay
    terms (added unweighted, as the reference adds its regularisation losses).
    """
    endpoints = self.compute_endpoints(features, step, training=training)
    aggregator = losses_lib.DepthMotionFieldLossAggregator(
        endpoints, self.params['loss_weights'], self.params['loss_params'])
    losses = dict(aggregator.losses)
    regularization = self.losses
    if regularization:
      losses['regularization'] = tf.add_n([tf.cast(r, tf.float32) for r in regularization])
    total = tf.add_n(list(losses.values()))
    return losses, total, endpoints, aggregator.output_endpoints

  def call(self, features, training=False, step=0):
    return self.compute_endpoints(features, step, training=training)

  def motion_pairs(self, rgb1, depth1, rgb2, depth2):
    """The motion net's input [2B,H,W,2C]: (frame1 ‖ frame2) for the first B items, then
    (frame2 ‖ frame1); a frame is its RGB, with its depth appended when `cascade`."""
    if self.params['cascade']:
      rgb1 = tf.concat([rgb1, depth1], axis=-1)
      rgb2 = tf.concat([rgb2, depth2], axis=-1)
    return tf.concat([tf.concat([rgb1, rgb2], axis=-1), tf.concat([rgb2, rgb1], axis=-1)],
                     axis=0)

  def motion_between(self, rgb1, depth1, rgb2, depth2):
    """Motion 1->2 from both orderings of the pairs (rgb1[i], rgb2[i]) with their depths.

    Averages the forward estimate with the inverse of the backward one,
    R = (R12 + R21^-1)/2 and t = (t12 - R t21)/2, which is what the
    reference's `infer_egomotion` intended (SPEC 7) but ran on another network.
    Returns a dict: `rotation_matrix` [B,3,3], `translation` [B,3],
    `residual_translation` [B,H,W,3] (1->2) and `intrinsics` [B,3,3] (the
    average of both orderings' predictions). The auto-mask threshold is taken
    over the whole batch, as in training.
    """
    pairs = self.motion_pairs(rgb1, depth1, rgb2, depth2)
    rotation, translation, residual, intrinsics = self.predict_motion(pairs)
    rot12, rot21 = tf.split(geometry.matrix_from_angles(rotation), 2, axis=0)
    trans12, trans21 = tf.split(translation[:, 0, 0, :], 2, axis=0)
    rot = 0.5 * (rot12 + tf.linalg.inv(rot21))
    return {
        'rotation_matrix': rot,
        'translation': 0.5 * (trans12 - tf.linalg.matvec(rot, trans21)),
        'residual_translation': tf.split(residual, 2, axis=0)[0],
        'intrinsics': 0.5 * tf.add_n(tf.split(intrinsics, 2, axis=0)),
    }

  def infer_egomotion(self, rgb1, rgb2):
    """Camera motion 1->2 as (rotation matrix [B,3,3], translation [B,3]); see motion_between."""
    depth1, depth2 = tf.split(self.predict_depth(tf.concat([rgb1, rgb2], axis=0)), 2, axis=0)
    motion = self.motion_between(rgb1, depth1, rgb2, depth2)
    return motion['rotation_matrix'], motion['translation']


PARAMS_FILENAME = 'params.json'


def save_model_params(model_dir, model_params, extra=None):
  """Writes the model params next to the checkpoints (atomically), for evaluate/export/infer."""
  tf.io.gfile.makedirs(model_dir)
  path = os.path.join(model_dir, PARAMS_FILENAME)
  payload = {'model': model_params}
  payload.update(extra or {})
  tmp = path + '.tmp'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(payload, f, indent=2, sort_keys=True, default=str)
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path


def resolve_checkpoint(checkpoint):
  """A model_dir or a checkpoint prefix -> (checkpoint prefix, model_dir)."""
  if tf.io.gfile.isdir(checkpoint):
    prefix = tf.train.latest_checkpoint(checkpoint)
    if prefix is None:
      raise ValueError('No checkpoint found in directory %s.' % checkpoint)
    return prefix, checkpoint
  if not tf.io.gfile.exists(checkpoint + '.index'):
    raise ValueError('Checkpoint %s does not exist (expected %s.index, or a model_dir).' %
                     (checkpoint, checkpoint))
  return checkpoint, os.path.dirname(checkpoint)


def _checkpoint_root_children(prefix):
  """Names of the top-level objects of a TF2 object-based checkpoint (empty for TF1 ones)."""
  from tensorflow.core.protobuf import trackable_object_graph_pb2  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(prefix)
  if not reader.has_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'):
    return set()
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))
  return {child.local_name for child in graph.nodes[0].children}


def restore_model(checkpoint, params=None):
  """Rebuilds a trained model from a model_dir or checkpoint prefix.

  The params come from `params.json` in the checkpoint's directory (written by
  the trainer) unless given. Returns (model, model_params, checkpoint_prefix).
  Raises ValueError when the checkpoint does not fit the architecture, naming
  the variables that did not match.
  """
  prefix, model_dir = resolve_checkpoint(checkpoint)
  if params is None:
    params_path = os.path.join(model_dir, PARAMS_FILENAME)
    if tf.io.gfile.exists(params_path):
      with tf.io.gfile.GFile(params_path) as f:
        params = json.load(f)['model']
    else:
      logging.warning('No %s beside checkpoint %s: assuming the default params (128x416); '
                      'pass params= if the model was trained otherwise.', PARAMS_FILENAME,
                      prefix)
  model = DepthMotionFieldModel(params)
  size = model.params['image_preprocessing']
  model.build_for_size(size['image_height'], size['image_width'])
  if 'model' not in _checkpoint_root_children(prefix):
    raise ValueError('%s is not a depth_motion checkpoint (it has no "model" object; a '
                     'checkpoint of the reference TF1 trainer is imported with '
                     'depth_motion.checkpoints.import_reference_checkpoint).' % prefix)
  try:
    status = tf.train.Checkpoint(model=model).read(prefix)
    # Every variable of the model must come from the checkpoint (the trainer stores them
    # under the optimizer's path; the object graph resolves that).
    status.expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
    raise ValueError('Checkpoint %s does not match the model architecture: %s' %
                     (prefix, str(e)[:2000])) from None
  return model, model.params, prefix
