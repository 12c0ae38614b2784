"""Trainer: steps, resume, NaN skipping, preemption, bad configuration."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import trainer as trainer_lib

H, W = 32, 64
TINY = {
    'image_preprocessing': {'image_height': H, 'image_width': W, 'data_augmentation': False},
    'motion_field_burnin_steps': 4,
    'depth_predictor_params': {'layer_norm_noise_rampup_steps': 4},
}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _batch(batch_size=2, seed=0, nan=False):
  rng = np.random.RandomState(seed)
  rgb0 = rng.uniform(size=(batch_size, H, W, 3)).astype(np.float32)
  rgb1 = np.roll(rgb0, 2, axis=2)
  if nan:
    rgb1[:, 3, 5, :] = np.nan
  k = np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]], np.float32)
  k = np.tile(k[None], [batch_size, 1, 1])
  k_inv = np.linalg.inv(k).astype(np.float32)
  return {'rgb': (rgb0, rgb1), 'intrinsics_mat': (k, k), 'intrinsics_mat_inv': (k_inv, k_inv)}


def _dataset_fn(batches):
  def fn(input_context):
    del input_context
    ds = tf.data.Dataset.from_tensor_slices(
        tf.nest.map_structure(lambda *xs: np.stack(xs), *batches))
    return ds.repeat()
  return fn


def _config(model_dir, steps, overrides=None, **kwargs):
  kwargs.setdefault('batch_size', 2)
  kwargs.setdefault('keep_checkpoints', 2)  # ~700 MB each
  # Summaries every step: only one step function is traced, which keeps the tests fast.
  kwargs.setdefault('summary_every_steps', 1)
  return trainer_lib.TrainConfig(model_dir=str(model_dir), param_overrides=overrides or TINY,
                                 dataset='injected', train_steps=steps, seed=1,
                                 deterministic=True, checkpoint_every_steps=1, **kwargs)


@pytest.fixture
def eager():
  """Runs the step functions eagerly: for 1-4 step runs this is faster than tracing the
  58M-parameter graph, and the loop logic under test is the same. The traced path is
  covered by the first and the non-finite tests."""
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


def _weights(trainer):
  return [v.numpy().copy() for v in trainer.model.trainable_variables]


def test_trains_and_writes_checkpoint_params_and_summaries(tmp_path):
  batches = [_batch(seed=i) for i in range(3)]
  # No burn-in, so the residual-translation layers get gradients from the first step.
  overrides = dict(TINY, motion_field_burnin_steps=0)
  trainer = trainer_lib.Trainer(_config(tmp_path, 3, overrides),
                                dataset_fn=_dataset_fn(batches))
  before = _weights(trainer)
  result = trainer.run()
  assert result['step'] == 3
  assert result['nonfinite_steps'] == 0
  assert np.isfinite(result['losses']['total'])
  # With given intrinsics (the default) the intrinsics head gets no gradient, as in the
  # reference; every other variable must move.
  unchanged = [v.path for v, a, b in zip(trainer.model.trainable_variables, before,
                                          _weights(trainer))
               if np.array_equal(a, b) and 'CameraIntrinsics' not in v.path]
  assert not unchanged, 'variables without an update: %s' % unchanged
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith('-3')
  assert os.path.exists(tmp_path / 'params.json')
  event_files = tf.io.gfile.glob(str(tmp_path / 'train' / 'events.*'))
  assert event_files
  tags = set()
  for event in tf.compat.v1.train.summary_iterator(event_files[0]):
    for value in event.summary.value:
      tags.add(value.tag)
  for tag in ('loss/rgb_consistency', 'loss/ssim', 'loss/motion_smoothing', 'loss/total',
              'optimizer/gradient_norm', 'optimizer/learning_rate', 'speed/pairs_per_sec',
              'intrinsics/fx', 'motion/order_symmetry', 'motion/translation_z',
              'depth/disparity_plasma', 'motion/residual_translation',
              'motion/total_translation', 'input/rgb0'):
    assert tag in tags, tag


def test_optimizer_matches_reference_settings(tmp_path):
  trainer = trainer_lib.Trainer(_config(tmp_path, 1), dataset_fn=_dataset_fn([_batch()]))
  opt = trainer.optimizer
  assert opt.epsilon == pytest.approx(1e-8)
  assert opt.beta_1 == pytest.approx(0.9) and opt.beta_2 == pytest.approx(0.999)
  assert float(opt.learning_rate.numpy()) == pytest.approx(2e-4)
  assert trainer.trainer_params['clip_gradients'] == 10.0


def test_learning_rate_warmup_and_decay_are_linear(eager):
  warmup = trainer_lib.WarmupAndDecay(1e-3, warmup_steps=4)
  np.testing.assert_allclose([float(warmup(n)) for n in range(6)],
                             [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3], rtol=1e-6)
  # Ten updates (n = 0..9), the last four decaying towards zero; never negative after.
  decay = trainer_lib.WarmupAndDecay(1e-3, decay_steps=4, total_steps=10)
  np.testing.assert_allclose([float(decay(n)) for n in range(12)],
                             [1e-3] * 7 + [7.5e-4, 5e-4, 2.5e-4, 0.0, 0.0], rtol=1e-6)
  both = trainer_lib.WarmupAndDecay(1e-3, warmup_steps=2, decay_steps=4, total_steps=5)
  np.testing.assert_allclose([float(both(n)) for n in range(5)],
                             [5e-4, 1e-3, 7.5e-4, 5e-4, 2.5e-4], rtol=1e-6)
  with pytest.raises(ValueError, match='total number of steps'):
    trainer_lib.WarmupAndDecay(1e-3, decay_steps=4)


@pytest.mark.parametrize('steps,schedule,rate_before,rate_after', [
    (2, {'learning_rate_warmup_steps': 4}, 2.5e-4, 7.5e-4),
    # Three updates done: the rate for a fourth would be zero.
    (3, {'learning_rate_decay_steps': 2}, 1e-3, 0.0),
])
def test_learning_rate_schedule_runs_and_resumes(eager, tmp_path, steps, schedule,
                                                 rate_before, rate_after):
  batches = [_batch(seed=i) for i in range(2)]
  trainer = trainer_lib.Trainer(_config(tmp_path, steps, learning_rate=1e-3, **schedule),
                                dataset_fn=_dataset_fn(batches))
  assert trainer.current_learning_rate() == pytest.approx(rate_before)
  trainer.run()
  assert trainer.current_learning_rate() == pytest.approx(rate_after)
  # The schedule runs on the optimizer's update count, which the checkpoint holds.
  resumed = trainer_lib.Trainer(_config(tmp_path, steps, learning_rate=1e-3, **schedule),
                                dataset_fn=_dataset_fn(batches))
  resumed._restore_or_initialize(resumed._make_checkpoint())
  assert resumed.current_learning_rate() == pytest.approx(rate_after)


def test_resume_matches_uninterrupted_run(eager, tmp_path):
  batches = [_batch(seed=i) for i in range(4)]
  straight = trainer_lib.Trainer(_config(tmp_path / 'a', 4), dataset_fn=_dataset_fn(batches))
  straight.run()

  first = trainer_lib.Trainer(_config(tmp_path / 'b', 2), dataset_fn=_dataset_fn(batches))
  first.run()
  resumed = trainer_lib.Trainer(_config(tmp_path / 'b', 4), dataset_fn=_dataset_fn(batches))
  result = resumed.run()
  assert result['step'] == 4
  assert int(resumed.optimizer.iterations.numpy()) == int(straight.optimizer.iterations.numpy())
  for a, b in zip(_weights(straight), _weights(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_nonfinite_batch_is_skipped_and_training_continues(tmp_path, caplog):
  good, bad = _batch(seed=0), _batch(seed=1, nan=True)
  one_step = trainer_lib.Trainer(_config(tmp_path / 'one', 1), dataset_fn=_dataset_fn([good]))
  one_step.run()
  skipped = trainer_lib.Trainer(_config(tmp_path / 'two', 2),
                                dataset_fn=_dataset_fn([good, bad]))
  result = skipped.run()
  assert result['step'] == 2 and result['nonfinite_steps'] == 1
  assert any('non-finite' in r.getMessage() and 'Step 2' in r.getMessage()
             for r in caplog.records)
  # The NaN batch changed nothing: same weights as after the one good step.
  for a, b in zip(_weights(one_step), _weights(skipped)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # And training goes on with the next good batch.
  more = trainer_lib.Trainer(_config(tmp_path / 'two', 3),
                             dataset_fn=_dataset_fn([good, bad]))
  assert more.run()['step'] == 3


def test_too_many_nonfinite_steps_stop_with_checkpoint(eager, tmp_path):
  batches = [_batch(seed=0, nan=True)]
  config = _config(tmp_path, 10, max_consecutive_nonfinite=2)
  trainer = trainer_lib.Trainer(config, dataset_fn=_dataset_fn(batches))
  before = _weights(trainer)
  with pytest.raises(trainer_lib.NonFiniteError, match='max_consecutive_nonfinite'):
    trainer.run()
  for a, b in zip(before, _weights(trainer)):
    np.testing.assert_array_equal(a, b)
  assert tf.train.latest_checkpoint(str(tmp_path)) is not None


def test_sigterm_saves_checkpoint_and_stops(eager, tmp_path):
  batches = [_batch(seed=i) for i in range(2)]
  trainer = trainer_lib.Trainer(_config(tmp_path, 100), dataset_fn=_dataset_fn(batches))
  original = trainer._build_step_fns

  def build_and_stop_after_first():
    plain, with_images = original()
    del plain

    def stop_after(iterator):
      out = with_images(iterator)
      os.kill(os.getpid(), signal.SIGTERM)  # what a preempting scheduler sends
      return out
    return stop_after, stop_after
  trainer._build_step_fns = build_and_stop_after_first
  result = trainer.run()
  assert result['preempted'] and result['step'] == 1
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith('-1')


def test_corrupt_latest_checkpoint_falls_back(eager, tmp_path, caplog):
  batches = [_batch(seed=i) for i in range(3)]
  trainer_lib.Trainer(_config(tmp_path, 3), dataset_fn=_dataset_fn(batches)).run()
  latest = tf.train.latest_checkpoint(str(tmp_path))
  for path in tf.io.gfile.glob(latest + '.data-*'):
    with open(path, 'r+b') as f:
      f.truncate(16)
  resumed = trainer_lib.Trainer(_config(tmp_path, 3), dataset_fn=_dataset_fn(batches))
  resumed.run()
  assert int(resumed.global_step.numpy()) == 3
  messages = [r.getMessage() for r in caplog.records]
  assert any('unreadable' in m for m in messages)
  assert any('Resumed from' in m and m.split()[2].endswith('ckpt-2') for m in messages), messages


def test_resume_with_other_params_is_refused(eager, tmp_path):
  trainer_lib.Trainer(_config(tmp_path, 1), dataset_fn=_dataset_fn([_batch()])).run()
  other = dict(TINY, loss_weights={'ssim': 1.0})
  with pytest.raises(trainer_lib.ConfigError, match='loss_weights.ssim: 3.0 -> 1.0'):
    trainer_lib.Trainer(_config(tmp_path, 2, other), dataset_fn=_dataset_fn([_batch()]))
  # A run from a version without a newer param key resumes: it trained at the key's default.
  path = tmp_path / 'params.json'
  saved = json.loads(path.read_text())
  del saved['model']['depth_stop_gradient_max_hold_steps']
  path.write_text(json.dumps(saved))
  resumed = trainer_lib.Trainer(_config(tmp_path, 2), dataset_fn=_dataset_fn([_batch()]))
  assert resumed.run()['step'] == 2


def test_init_from_our_checkpoint_starts_at_step_zero(eager, tmp_path):
  source = trainer_lib.Trainer(_config(tmp_path / 'source', 2),
                               dataset_fn=_dataset_fn([_batch()]))
  source.run()
  config = _config(tmp_path / 'target', 1, init_ckpt=str(tmp_path / 'source'),
                   init_ckpt_type='checkpoint')
  target = trainer_lib.Trainer(config, dataset_fn=_dataset_fn([_batch()]))
  target._restore_or_initialize(target._make_checkpoint())
  assert int(target.global_step.numpy()) == 0
  for a, b in zip(_weights(source), _weights(target)):
    np.testing.assert_array_equal(a, b)
  missing = _config(tmp_path / 'x', 1, init_ckpt=str(tmp_path / 'nothing'),
                    init_ckpt_type='reference')
  with pytest.raises(trainer_lib.ConfigError, match='does not exist'):
    trainer_lib.Trainer(missing, dataset_fn=_dataset_fn([_batch()]))


@pytest.mark.parametrize('overrides,kwargs,message', [
    ({'loss_weights': {'no_such_weight': 1.0}}, {}, 'no_such_weight'),
    (None, {'batch_size': 0}, 'batch_size'),
    (None, {'init_ckpt': '/x', 'init_ckpt_type': None}, 'init_ckpt_type'),
    (None, {'learning_rate_warmup_steps': -1}, 'learning_rate_warmup_steps'),
    (None, {'learning_rate_decay_steps': -1}, 'learning_rate_decay_steps'),
    (None, {'learning_rate_decay_steps': 2}, 'longer than --train_steps=1'),
])
def test_bad_configuration_fails_before_compute(tmp_path, overrides, kwargs, message):
  config = trainer_lib.TrainConfig(model_dir=str(tmp_path), param_overrides=overrides,
                                   dataset='injected', train_steps=1, **kwargs)
  with pytest.raises((ValueError, AttributeError, TypeError), match=message):
    trainer_lib.Trainer(config, dataset_fn=_dataset_fn([_batch()]))


def _run_cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run([sys.executable, '-m', 'depth_motion.train', *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=120)


def test_cli_rejects_bad_flags_with_one_line(tmp_path):
  proc = _run_cli('--model_dir=%s' % tmp_path, '--data_path=%s' % (tmp_path / 'missing.txt'))
  assert proc.returncode == 2
  assert 'depth_motion.train: error: --data_path' in proc.stderr
  proc = _run_cli('--model_dir=%s' % tmp_path, '--dataset=synthetic_dynamic_scenes/tiny',
                  '--param_overrides={"loss_weights": {"ssim_typo": 1}}')
  assert proc.returncode == 2
  assert "Unknown parameter 'loss_weights.ssim_typo'" in proc.stderr
  proc = _run_cli('--model_dir=%s' % tmp_path, '--dataset=synthetic_dynamic_scenes/tiny',
                  '--distribution_strategy=mirrored', '--cpu_devices=2', '--batch_size=3')
  assert proc.returncode == 2
  assert 'not divisible' in proc.stderr
  empty = tmp_path / 'train.txt'
  empty.write_text('\n')
  proc = _run_cli('--model_dir=%s' % (tmp_path / 'm'), '--data_path=%s' % empty)
  assert proc.returncode == 2
  error_lines = [l for l in proc.stderr.splitlines() if 'depth_motion.train: error' in l]
  assert len(error_lines) == 1 and 'no examples' in error_lines[0].lower(), proc.stderr[-2000:]


def test_jit_compiled_update_matches_the_plain_keras_update():
  """The XLA-compiled Adam update (the default) gives Keras's results, constraint included."""
  results = []
  for jit in (False, True):
    weights = [tf.Variable([[0.5, -1.0], [2.0, 0.0]]),
               tf.Variable(0.01, constraint=lambda w: tf.maximum(w, 0.001))]
    optimizer = tf.keras.optimizers.Adam(learning_rate=0.1, epsilon=1e-8)
    optimizer.build(weights)
    update = trainer_lib.make_update_fn(optimizer, weights, jit_compile=jit)
    for _ in range(3):
      update([tf.constant([[1.0, -2.0], [0.5, 3.0]]), tf.constant(5.0)])
    results.append([w.numpy() for w in weights] + [optimizer.iterations.numpy()])
  plain, compiled = results
  for a, b in zip(plain, compiled):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  # A constant gradient: each Adam step moves a weight by the learning rate, against its sign.
  np.testing.assert_allclose(plain[0], [[0.2, -0.7], [1.7, -0.3]], atol=1e-5)
  assert plain[1] == np.float32(0.001) and plain[2] == 3


def test_motion_diagnostics_tell_learned_frame_order_from_symmetric_motion():
  forward = tf.constant([[0.1, 0.0, -1.0], [0.0, 0.2, -0.5]])[:, None, None, :]
  inverse = trainer_lib.motion_diagnostics(forward, -forward)
  same = trainer_lib.motion_diagnostics(forward, forward)
  assert float(inverse['motion/order_symmetry']) == 0.0
  np.testing.assert_allclose(float(same['motion/order_symmetry']), 1.0, rtol=1e-6)
  np.testing.assert_allclose(
      [float(inverse['motion/translation_%s' % a]) for a in 'xyz'], [0.05, 0.1, -0.75],
      rtol=1e-6)
  # Backward motion half as long and opposite: |t12 + t21| / (|t12| + |t21|) = 1/3.
  half = trainer_lib.motion_diagnostics(forward, -0.5 * forward)
  np.testing.assert_allclose(float(half['motion/order_symmetry']), 1.0 / 3.0, rtol=1e-6)


def test_depth_freeze_waits_for_the_motion_net_up_to_the_hold_limit(eager, tmp_path,
                                                                     monkeypatch):
  """At init the motion net predicts the same translation for both frame orders, so the
  curriculum clock stops at the last frozen step until the hold limit; the hold resumes.
  Once the order symmetry has been low for long enough, depth unfreezes."""
  batches = [_batch(seed=i) for i in range(3)]
  overrides = dict(TINY, depth_stop_gradient_steps=2, depth_stop_gradient_max_hold_steps=3)

  def depth_weights(trainer):
    return [v.numpy().copy() for v in trainer.model.depth_net.trainable_variables]

  trainer = trainer_lib.Trainer(_config(tmp_path / 'held', 3, overrides),
                                dataset_fn=_dataset_fn(batches))
  initial = depth_weights(trainer)
  assert trainer.run()['curriculum_hold_steps'] == 2  # Held at steps 2 and 3.
  resumed = trainer_lib.Trainer(_config(tmp_path / 'held', 5, overrides),
                                dataset_fn=_dataset_fn(batches))
  assert resumed.run()['curriculum_hold_steps'] == 3  # The limit.
  # Five steps, all at clock 0 or 1 (< 2): depth never got a gradient.
  for a, b in zip(initial, depth_weights(resumed)):
    np.testing.assert_array_equal(a, b)
  resumed = trainer_lib.Trainer(_config(tmp_path / 'held', 6, overrides),
                                dataset_fn=_dataset_fn(batches))
  resumed.run()
  assert any(not np.array_equal(a, b) for a, b in zip(initial, depth_weights(resumed)))

  # Every step passes the symmetry threshold: depth unfreezes once 3 have in a row. At the
  # last frozen step (step 2) only 2 have, so the clock waits one step.
  monkeypatch.setattr(trainer_lib, 'ORDER_SYMMETRY_TO_UNFREEZE', 1.5)
  monkeypatch.setattr(trainer_lib, 'ORDER_STREAK_TO_UNFREEZE', 3)
  free = trainer_lib.Trainer(_config(tmp_path / 'free', 4, overrides),
                             dataset_fn=_dataset_fn(batches))
  free_initial = depth_weights(free)
  assert free.run()['curriculum_hold_steps'] == 1
  assert any(not np.array_equal(a, b) for a, b in zip(free_initial, depth_weights(free)))
