"""The model graph: burn-in, masks, intrinsics choice, gradients, tf.function and strategies."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry
from depth_motion import model as model_lib

H, W = 32, 64
SMALL = {'image_preprocessing': {'image_height': H, 'image_width': W},
         'motion_field_burnin_steps': 0}


def _features(batch=2, seed=0):
  rng = np.random.RandomState(seed)
  rgb0 = rng.uniform(size=(batch, H, W, 3)).astype(np.float32)
  rgb1 = np.roll(rgb0, 1, axis=2)
  k = np.tile(np.array([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]], np.float32),
              [batch, 1, 1])
  mask = np.zeros((batch, H, W, 1), np.int32)
  mask[:, 10:14, 20:26] = 7
  return {'rgb': (tf.constant(rgb0), tf.constant(rgb1)),
          'intrinsics_mat': (tf.constant(k), tf.constant(k)),
          'intrinsics_mat_inv': (tf.constant(np.linalg.inv(k)),) * 2,
          'mask': (tf.constant(mask), tf.constant(mask)),
          'video_index': (tf.constant([0, 3]), tf.constant([0, 3]))}


@pytest.mark.parametrize('step,expected', [(0, 0.0), (5000, 0.0), (10000, 0.0), (15000, 0.5),
                                           (20000, 1.0), (30000, 1.0)])
def test_burnin_factor_matches_reference_points(step, expected):
  assert float(model_lib.motion_burnin_factor(step, 20000)) == pytest.approx(expected)


def test_burnin_disabled_is_one():
  assert float(model_lib.motion_burnin_factor(3, 0)) == 1.0


def test_dilate_mask_grows_by_the_dilation():
  mask = np.zeros((1, 20, 20, 1), np.float32)
  mask[0, 10, 10] = 1.0
  dilated = model_lib.dilate_mask(tf.constant(mask), 2).numpy()[0, ..., 0]
  assert dilated.sum() == 25 and dilated[8:13, 8:13].all()


@pytest.fixture(scope='module')
def default_model():
  model = model_lib.DepthMotionFieldModel(SMALL)
  model.build_for_size(H, W)
  return model


def test_endpoints_structure_and_burnin(default_model):
  features = _features()
  endpoints = default_model.compute_endpoints(features, step=0, training=False)
  for key in ('rgb', 'predicted_depth', 'residual_translation', 'background_translation',
              'rotation', 'intrinsics_mat', 'intrinsics_mat_inv'):
    assert isinstance(endpoints[key], tuple) and len(endpoints[key]) == 2, key
  assert endpoints['predicted_depth'][0].shape == (2, H, W, 1)
  assert endpoints['residual_translation'][0].shape == (2, H, W, 3)
  assert endpoints['rotation'][1].shape == (2, 3)
  # Given intrinsics pass through unchanged.
  np.testing.assert_array_equal(endpoints['intrinsics_mat'][0], features['intrinsics_mat'][0])
  burnin = model_lib.DepthMotionFieldModel(dict(SMALL, motion_field_burnin_steps=100))
  burnin.build_for_size(H, W)
  burnin.set_weights(default_model.get_weights())
  early = burnin.compute_endpoints(features, step=50, training=False)
  assert np.count_nonzero(early['residual_translation'][0].numpy()) == 0


def test_non_forward_motion_burnin_ramps_rotation_and_lateral_translation(default_model):
  features = _features()
  plain = default_model.compute_endpoints(features, step=0, training=False)
  ramped = model_lib.DepthMotionFieldModel(dict(SMALL, non_forward_motion_burnin_steps=100))
  ramped.build_for_size(H, W)
  ramped.set_weights(default_model.get_weights())
  for step, factor in ((0, 0.0), (50, 0.0), (75, 0.5), (100, 1.0), (500, 1.0)):
    out = ramped.compute_endpoints(features, step=step, training=False)
    for i in range(2):
      np.testing.assert_allclose(out['rotation'][i], factor * plain['rotation'][i].numpy(),
                                 atol=1e-9)
      expected = plain['background_translation'][i].numpy() * [factor, factor, 1.0]
      np.testing.assert_allclose(out['background_translation'][i], expected, atol=1e-9)
  assert np.all(np.abs(plain['rotation'][0].numpy()) > 0)


@pytest.mark.parametrize('compiled', [False, True])
def test_depth_stop_gradient_steps_freeze_only_the_depth_net_until_the_step(compiled):
  model = model_lib.DepthMotionFieldModel(dict(SMALL, depth_stop_gradient_steps=10))
  model.build_for_size(H, W)
  depth_vars = model.depth_net.trainable_variables
  motion_vars = [v for v in model.motion_net.trainable_variables if 'Intrinsics' not in v.path]
  features = _features()

  def gradients(step):
    with tf.GradientTape() as tape:
      _, total, _, _ = model.compute_losses(features, step=step, training=False)
    grads = tape.gradient(total, depth_vars + motion_vars)
    return total, [tf.zeros_like(v) if g is None else g for g, v in zip(grads, depth_vars + motion_vars)]

  if compiled:  # the trainer's case: the step is a tensor and both branches are traced
    gradients = tf.function(gradients)
  norm = lambda gs: float(tf.linalg.global_norm(gs))
  total_early, early = gradients(tf.constant(9))
  total_late, late = gradients(tf.constant(10))
  assert norm(early[:len(depth_vars)]) == 0.0 and norm(early[len(depth_vars):]) > 0.0
  assert norm(late[:len(depth_vars)]) > 0.0 and norm(late[len(depth_vars):]) > 0.0
  # Freezing changes gradients only, never the loss.
  np.testing.assert_allclose(float(total_early), float(total_late), rtol=1e-6)


def test_motion_field_burn_in_skips_the_refinement_while_the_field_is_zero():
  model = model_lib.DepthMotionFieldModel(dict(SMALL, motion_field_burnin_steps=20))
  model.build_for_size(H, W)
  refine_vars = [v for r in model.motion_net.refines for v in r.trainable_variables]
  encoder_vars = [v for c in model.motion_net.convs for v in c.trainable_variables]
  features = _features()

  @tf.function
  def step_result(step):
    with tf.GradientTape() as tape:
      _, total, ends, _ = model.compute_losses(features, step=step, training=False)
    grads = tape.gradient(total, refine_vars + encoder_vars)
    grads = [tf.zeros_like(v) if g is None else g
             for g, v in zip(grads, refine_vars + encoder_vars)]
    return (ends['residual_translation'][0], tf.linalg.global_norm(grads[:len(refine_vars)]),
            tf.linalg.global_norm(grads[len(refine_vars):]))

  # The ramp is 0 up to step 10 and 0.1 at step 11.
  residual, refine_norm, encoder_norm = step_result(tf.constant(10))
  assert not np.any(residual.numpy()) and float(refine_norm) == 0.0 and float(encoder_norm) > 0
  residual, refine_norm, _ = step_result(tf.constant(11))
  assert np.any(residual.numpy()) and float(refine_norm) > 0


def test_use_mask_confines_residual_translation_to_dilated_objects():
  # auto_mask off: at random init it may zero the whole box, and we test the object mask here.
  model = model_lib.DepthMotionFieldModel(dict(
      SMALL, use_mask=True, foreground_dilation=1,
      motion_prediction_params={'auto_mask': False}))
  model.build_for_size(H, W)
  residual = model.compute_endpoints(_features(), step=0)['residual_translation'][0].numpy()
  outside = np.ones((H, W), bool)
  outside[9:15, 19:27] = False
  assert np.all(residual[:, outside] == 0)
  assert np.count_nonzero(residual[:, ~outside]) > 0


def test_learned_intrinsics_average_both_directions():
  model = model_lib.DepthMotionFieldModel(dict(SMALL, learn_intrinsics={'enabled': True}))
  model.build_for_size(H, W)
  features = _features()
  endpoints = model.compute_endpoints(features, step=0)
  forward = tf.concat([tf.concat([features['rgb'][i], endpoints['predicted_depth'][i]], -1)
                       for i in range(2)], axis=-1)
  backward = tf.concat([tf.concat([features['rgb'][i], endpoints['predicted_depth'][i]], -1)
                        for i in (1, 0)], axis=-1)
  k = model.predict_motion(tf.concat([forward, backward], axis=0))[3].numpy()
  np.testing.assert_allclose(endpoints['intrinsics_mat'][0], 0.5 * (k[:2] + k[2:]), rtol=1e-5)
  np.testing.assert_allclose(endpoints['intrinsics_mat_inv'][1],
                             geometry.invert_intrinsics_matrix(endpoints['intrinsics_mat'][1]),
                             rtol=1e-6)


def test_per_video_intrinsics_are_a_pair_indexed_by_video():
  params = dict(SMALL, learn_intrinsics={'enabled': True, 'per_video': True,
                                         'max_number_of_videos': 4})
  model = model_lib.DepthMotionFieldModel(params)
  model.build_for_size(H, W)
  endpoints = model.compute_endpoints(_features(), step=0)
  k0, k1 = endpoints['intrinsics_mat']
  assert k0.shape == (2, 3, 3)
  np.testing.assert_array_equal(k0, k1)
  # Initial rows (1, 1, 0.5, 0.5): fx = fy = (H + W) / 2, principal point at the centre.
  np.testing.assert_allclose(k0[0], [[(H + W) / 2, 0, W / 2], [0, (H + W) / 2, H / 2], [0, 0, 1]])


def test_aggregated_loss_reaches_every_variable():
  model = model_lib.DepthMotionFieldModel(dict(SMALL, learn_intrinsics={'enabled': True}))
  model.build_for_size(H, W)
  with tf.GradientTape() as tape:
    losses, total, _, _ = model.compute_losses(_features(), step=0, training=True)
  grads = tape.gradient(total, model.trainable_variables)
  missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
  assert not missing
  assert all(np.all(np.isfinite(g.numpy())) for g in grads)
  assert set(losses) == {'rgb_consistency', 'ssim', 'depth_consistency', 'depth_smoothing',
                         'depth_supervision', 'rotation_cycle_consistency',
                         'translation_cycle_consistency', 'depth_variance', 'motion_smoothing',
                         'motion_drift'}


def test_weight_decay_enters_the_total():
  model = model_lib.DepthMotionFieldModel(dict(SMALL, depth_predictor_params={
      'weight_decay': 0.01}))
  model.build_for_size(H, W)
  losses, total, _, _ = model.compute_losses(_features(), step=0, training=False)
  assert float(losses['regularization']) > 0
  np.testing.assert_allclose(float(total), sum(float(v) for v in losses.values()), rtol=1e-5)


def test_runs_in_tf_function_under_a_strategy_scope():
  strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
  with strategy.scope():
    model = model_lib.DepthMotionFieldModel(SMALL)
    model.build_for_size(H, W)

  @tf.function
  def step(features):
    return strategy.run(lambda f: model.compute_losses(f, tf.constant(5, tf.int64))[1],
                        args=(features,))

  features = _features()
  total = step(features)
  eager = model.compute_losses(features, 5, training=True)[1]
  assert np.isfinite(float(total))
  # Same step, same noise seeds: graph and eager agree.
  np.testing.assert_allclose(float(total), float(eager), rtol=1e-4)


def test_infer_egomotion_inverts_consistently(default_model):
  features = _features(batch=1)
  rot, trans = default_model.infer_egomotion(features['rgb'][0], features['rgb'][1])
  assert rot.shape == (1, 3, 3) and trans.shape == (1, 3)
  rot_back, _ = default_model.infer_egomotion(features['rgb'][1], features['rgb'][0])
  # Swapping the frames gives the inverse rotation (to the accuracy of the averaging).
  np.testing.assert_allclose(rot.numpy()[0] @ rot_back.numpy()[0], np.eye(3), atol=1e-3)


def test_ground_truth_egomotion_replaces_the_prediction():
  model = model_lib.DepthMotionFieldModel(dict(SMALL, learn_egomotion=False))
  model.build_for_size(H, W)
  features = _features()
  angles = np.array([[0.01, -0.02, 0.03], [0.0, 0.05, 0.0]], np.float32)
  motion = np.tile(np.eye(4, dtype=np.float32), [2, 1, 1])
  motion[:, :3, :3] = geometry.matrix_from_angles(angles).numpy()
  motion[:, :3, 3] = [[0.1, 0.2, 1.0], [0.0, 0.0, -0.5]]
  inverse = np.linalg.inv(motion).astype(np.float32)
  features['egomotion_mat'] = (tf.constant(motion), tf.constant(inverse))
  endpoints = model.compute_endpoints(features, step=0)
  np.testing.assert_allclose(endpoints['rotation'][0], angles, atol=1e-5)
  np.testing.assert_allclose(endpoints['background_translation'][0][:, 0, 0], motion[:, :3, 3],
                             atol=1e-6)
  np.testing.assert_allclose(endpoints['background_translation'][1][:, 0, 0], inverse[:, :3, 3],
                             atol=1e-5)


def test_mixed_bfloat16_computes_losses_and_gradients():
  """`--mixed_precision`: every net and loss runs in bfloat16 with float32 weights."""
  tf.keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    model = model_lib.DepthMotionFieldModel(dict(SMALL, motion_field_burnin_steps=0))
    model.build_for_size(H, W)
    with tf.GradientTape() as tape:
      _, total, ends, _ = model.compute_losses(_features(), step=5, training=True)
    grads = tape.gradient(total, model.trainable_variables)
  finally:
    tf.keras.mixed_precision.set_global_policy('float32')
  assert np.isfinite(float(total))
  assert {str(v.dtype) for v in model.trainable_variables} == {'float32'}
  assert ends['intrinsics_mat'][0].dtype == tf.float32
  depth_grads = [g for g in grads[:len(model.depth_net.trainable_variables)] if g is not None]
  assert depth_grads and float(tf.linalg.global_norm(depth_grads)) > 0
