"""The training loop: a custom `tf.function` step under any `tf.distribute` strategy.

What it does per step, as the reference trainer did: the loss of
`DepthMotionFieldModel.compute_losses` at the current global step, Adam
(beta1 0.9, beta2 0.999, epsilon 1e-8 - set explicitly, Keras' default is 1e-7),
gradients clipped by global norm (`clip_gradients`, 10), the scale variables'
`max(x, 0.001)` constraint after each update, then the global step + 1.

What it adds: resumable checkpoints (exact step and optimizer state; in
deterministic mode also the input position), a checkpoint on SIGTERM
(preemption), fallback to the previous checkpoint when the latest is corrupt,
NaN safety (a non-finite loss or gradient skips the update, is counted and
logged; too many in a row stop training with a checkpoint of the last good
state), progress lines with steps/s, pairs/s and ETA, and TensorBoard scalars
and images.

Gradients are summed across replicas inside the replica function and the
update is applied in cross-replica context, so every replica sees the same
global norm and takes the same skip decision.
"""

import dataclasses
import json
import os
import shutil
import signal
import time
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from depth_motion import checkpoints as checkpoints_lib
from depth_motion import distribute
from depth_motion import model as model_lib
from depth_motion import params as params_lib
from depth_motion import summaries

INIT_CKPT_TYPES = ('imagenet', 'reference', 'checkpoint')


class ConfigError(ValueError):
  """A problem with the flags or data, reported before any compute."""


class NonFiniteError(RuntimeError):
  """Training stopped after too many consecutive non-finite steps."""


@dataclasses.dataclass
class TrainConfig:
  """Everything `train` needs; the absl flags of depth_motion.train map onto it."""
  model_dir: str
  param_overrides: object = None
  dataset: Optional[str] = None
  data_dir: Optional[str] = None
  split: str = 'train'
  data_path: Optional[str] = None
  batch_size: int = 16
  train_steps: Optional[int] = None
  learning_rate: float = 2e-4
  learning_rate_warmup_steps: int = 0
  learning_rate_decay_steps: int = 0
  distribution_strategy: str = 'default'
  tpu: Optional[str] = None
  num_gpus: int = 0
  cpu_devices: int = 0
  init_ckpt: Optional[str] = None
  init_ckpt_type: Optional[str] = None
  checkpoint_every_steps: int = 1000
  keep_checkpoints: int = 5
  summary_every_steps: int = 50
  mixed_precision: bool = False
  seed: Optional[int] = None
  deterministic: bool = False
  max_consecutive_nonfinite: int = 20
  log_every_steps: Optional[int] = None
  jit_optimizer_update: bool = True


def make_update_fn(optimizer, variables, jit_compile):
  """`update(grads)` applies one optimizer update to `variables`.

  With `jit_compile`, XLA fuses the update into one kernel per variable. Keras
  runs Adam as a chain of element-wise ops, each a pass over the weights and
  slots; for this model's 58.5M weights that took 164 ms per step on a 2-core
  CPU, against 63 ms compiled (a whole demo step takes 0.3-0.9 s).
  Same formula, same variables and checkpoints; only the rounding may differ.
  """
  def update(grads):
    optimizer.apply(grads, variables)
  if jit_compile:
    return tf.function(update, jit_compile=True)
  return update


class WarmupAndDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
  """A linear warm-up at the start and a linear decay at the end of training.

  At the optimizer's update count n:
  `peak * min(1, (n + 1) / warmup_steps) * min(1, (total_steps - n) / decay_steps)`,
  where a zero `warmup_steps` or `decay_steps` leaves that factor at 1.

  Neither is in the reference, which trains at a constant rate; both are off by
  default (`--learning_rate_warmup_steps`, `--learning_rate_decay_steps`).
  - Warm-up: Adam's first updates move every weight by about the learning rate
    whatever its gradient. In short runs at raised rates they pushed the motion
    net's deep ReLU biases below their small inputs and killed those units; a
    warm-up kept them alive.
  - Decay: at a constant rate the weights a short run ends with are a sample of
    the noise of the last updates; decaying to zero over the last steps settles
    them. The count is of applied updates, so steps skipped for a non-finite
    loss shift the decay later by as many.
  """

  def __init__(self, peak, warmup_steps=0, decay_steps=0, total_steps=0):
    self.peak = float(peak)
    self.warmup_steps = int(warmup_steps)
    self.decay_steps = int(decay_steps)
    self.total_steps = int(total_steps)
    if self.decay_steps and self.total_steps <= 0:
      raise ValueError('A learning-rate decay needs the total number of steps.')

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    rate = tf.constant(self.peak, tf.float32)
    if self.warmup_steps:
      rate *= tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
    if self.decay_steps:
      remaining = tf.maximum(0.0, float(self.total_steps) - step)
      rate *= tf.minimum(1.0, remaining / float(self.decay_steps))
    return rate

  def get_config(self):
    return {'peak': self.peak, 'warmup_steps': self.warmup_steps,
            'decay_steps': self.decay_steps, 'total_steps': self.total_steps}


# Depth unfreezes (with `depth_stop_gradient_max_hold_steps`) once the order
# symmetry has been below ORDER_SYMMETRY_TO_UNFREEZE for ORDER_STREAK_TO_UNFREEZE
# steps in a row. At 1 both frame orders get the same motion; on the demo it
# falls to about 0.1-0.3 once the net has learned the direction of travel. While
# the net has not, the translations are tiny and a single batch can fall below
# 0.5 by chance (a demo run unfroze on one at step 459 and never learned).
ORDER_SYMMETRY_TO_UNFREEZE = 0.5
ORDER_STREAK_TO_UNFREEZE = 20


def motion_diagnostics(translation12, translation21):
  """Scalars that show whether the ego-motion is being learned.

  `motion/translation_{x,y,z}`: the batch mean of the camera translation 1->2.
  `motion/order_symmetry`: mean of |t12 + t21| / (|t12| + |t21|). Near 1 the
  net predicts the same motion for both frame orders, so it has not learned
  which way the camera moves and depth gets no signal; it falls towards 0 once
  the backward motion is the inverse of the forward one. A from-scratch run
  starts near 1 (`flags/demo.flags` freezes depth until it drops).
  """
  t12 = tf.reshape(translation12, [-1, 3])
  t21 = tf.reshape(translation21, [-1, 3])
  mean12 = tf.reduce_mean(t12, axis=0)
  symmetry = tf.norm(t12 + t21, axis=1) / (tf.norm(t12, axis=1) + tf.norm(t21, axis=1) + 1e-12)
  return {'motion/translation_x': mean12[0], 'motion/translation_y': mean12[1],
          'motion/translation_z': mean12[2],
          'motion/order_symmetry': tf.reduce_mean(symmetry)}


def _differences(saved, current, prefix=''):
  """'key: saved -> current' for every leaf that differs between two nested dicts."""
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key), current.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      yield from _differences(a, b, prefix + key + '.')
    elif a != b:
      yield '%s%s: %r -> %r' % (prefix, key, a, b)


def _format_duration(seconds):
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return '%dh%02dm%02ds' % (hours, minutes, secs) if hours else '%dm%02ds' % (minutes, secs)


class Trainer:
  """Builds the model, optimizer, data and checkpoints; `run()` trains.

  Args:
    config: a TrainConfig.
    dataset_fn: optional `fn(input_context) -> tf.data.Dataset` of batched
      features (per-replica batch), replacing the dataset named in `config`
      (tests use it to inject batches).
  """

  def __init__(self, config: TrainConfig,
               dataset_fn: Optional[Callable[[tf.distribute.InputContext],
                                             tf.data.Dataset]] = None):
    self.config = config
    try:
      model_overrides, trainer_overrides = params_lib.split_model_and_trainer(
          config.param_overrides)
      self.trainer_params = params_lib.make_trainer_params(trainer_overrides)
      self.model_params = params_lib.make_model_params(model_overrides)
    except (AttributeError, TypeError, ValueError) as e:
      raise ConfigError(str(e)) from None
    if config.train_steps is None:
      config.train_steps = self.trainer_params['max_steps']
    if config.init_ckpt is None and self.trainer_params['init_ckpt']:
      config.init_ckpt = self.trainer_params['init_ckpt']
      config.init_ckpt_type = self.trainer_params['init_ckpt_type']
    if 'learning_rate' in trainer_overrides:
      config.learning_rate = self.trainer_params['learning_rate']
    self._validate_config()
    if config.seed is not None:
      tf.keras.utils.set_random_seed(config.seed)
    if config.deterministic:
      tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
      # bfloat16 needs no loss scaling (TPU, Ampere+ GPUs, AVX512-BF16 CPUs).
      tf.keras.mixed_precision.set_global_policy('mixed_bfloat16')

    try:
      self.strategy = distribute.make_strategy(
          config.distribution_strategy, num_gpus=config.num_gpus, tpu=config.tpu,
          cpu_devices=config.cpu_devices)
    except ValueError as e:
      raise ConfigError(str(e)) from None
    replicas = self.strategy.num_replicas_in_sync
    if config.batch_size % replicas:
      raise ConfigError('--batch_size=%d is not divisible by the %d replicas of the %s strategy.'
                        % (config.batch_size, replicas, config.distribution_strategy))
    self.model_params['batch_size'] = config.batch_size
    self._dataset_fn = dataset_fn or self._default_dataset_fn()
    self.is_chief = distribute.is_chief(self.strategy)
    self.write_dir = distribute.worker_dir(config.model_dir, self.strategy)
    self._stop_requested = False
    self._step_fns = None

    size = self.model_params['image_preprocessing']
    with self.strategy.scope():
      self.model = model_lib.DepthMotionFieldModel(self.model_params)
      self.model.build_for_size(size['image_height'], size['image_width'])
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step',
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      learning_rate = config.learning_rate
      if config.learning_rate_warmup_steps or config.learning_rate_decay_steps:
        learning_rate = WarmupAndDecay(
            config.learning_rate, warmup_steps=config.learning_rate_warmup_steps,
            decay_steps=config.learning_rate_decay_steps, total_steps=config.train_steps)
      self.optimizer = tf.keras.optimizers.Adam(
          learning_rate=learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
      self.optimizer.build(self.model.trainable_variables)
      self.nonfinite_count = tf.Variable(0, dtype=tf.int64, trainable=False,
                                         name='nonfinite_count',
                                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      # Steps the curriculum clock (global step - hold) has waited for the
      # motion net; see the `depth_stop_gradient_max_hold_steps` param.
      self.curriculum_hold = tf.Variable(0, dtype=tf.int64, trainable=False,
                                         name='curriculum_hold',
                                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      # Consecutive steps, up to now, whose order symmetry was below the threshold.
      self.order_streak = tf.Variable(0, dtype=tf.int64, trainable=False, name='order_streak',
                                      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self._frozen_steps = int(self.model_params['depth_stop_gradient_steps'])
    self._max_hold_steps = (int(self.model_params['depth_stop_gradient_max_hold_steps'])
                            if self._frozen_steps else 0)

  # ----------------------------------------------------------------- setup --

  def _validate_config(self):
    c = self.config
    if not c.model_dir:
      raise ConfigError('--model_dir is required.')
    if c.batch_size <= 0:
      raise ConfigError('--batch_size must be positive, got %d.' % c.batch_size)
    if c.train_steps <= 0:
      raise ConfigError('--train_steps must be positive, got %d.' % c.train_steps)
    for name in ('learning_rate_warmup_steps', 'learning_rate_decay_steps'):
      if getattr(c, name) < 0:
        raise ConfigError('--%s must be >= 0, got %d.' % (name, getattr(c, name)))
    if c.learning_rate_decay_steps > c.train_steps:
      raise ConfigError('--learning_rate_decay_steps=%d is longer than --train_steps=%d.'
                        % (c.learning_rate_decay_steps, c.train_steps))
    if c.init_ckpt_type and c.init_ckpt_type not in INIT_CKPT_TYPES:
      raise ConfigError('--init_ckpt_type must be one of %s, got %r.' %
                        (', '.join(INIT_CKPT_TYPES), c.init_ckpt_type))
    if c.init_ckpt and not c.init_ckpt_type:
      raise ConfigError('--init_ckpt needs --init_ckpt_type (%s).' % ', '.join(INIT_CKPT_TYPES))
    if c.data_path and not tf.io.gfile.exists(c.data_path):
      raise ConfigError('--data_path %s does not exist (expected a struct2depth train.txt).' %
                        c.data_path)
    if not c.data_path and not c.dataset and not self.model_params['input']['data_path']:
      raise ConfigError('No training data: pass --dataset (a TFDS triplet builder, e.g. '
                        'synthetic_dynamic_scenes/demo) or --data_path (a struct2depth train.txt).')
    if c.dataset and (c.data_path or self.model_params['input']['data_path']):
      raise ConfigError('Pass either --dataset or --data_path (input.data_path), not both.')
    if c.init_ckpt:
      if c.init_ckpt_type == 'checkpoint':
        try:
          c.init_ckpt = model_lib.resolve_checkpoint(c.init_ckpt)[0]
        except ValueError as e:
          raise ConfigError('--init_ckpt: %s' % e) from None
      elif not tf.io.gfile.exists(c.init_ckpt + '.index'):
        raise ConfigError('--init_ckpt %s does not exist (expected the prefix of a TF '
                          'checkpoint, i.e. %s.index).' % (c.init_ckpt, c.init_ckpt))
    self._check_params_match_model_dir()

  def _check_params_match_model_dir(self):
    """A model_dir with checkpoints resumes only with the params it was trained with."""
    c = self.config
    path = os.path.join(c.model_dir, model_lib.PARAMS_FILENAME)
    if not (tf.train.latest_checkpoint(c.model_dir) and tf.io.gfile.exists(path)):
      return
    with tf.io.gfile.GFile(path) as f:
      saved = json.load(f).get('model', {})
    # A key added to the params after the run started was trained at its default.
    saved = params_lib.merge_missing(saved, params_lib.model_defaults())
    current = dict(self.model_params, batch_size=saved.get('batch_size'))
    differences = sorted(_differences(saved, current))
    if differences:
      raise ConfigError(
          '--model_dir %s holds checkpoints trained with other params (%s); resume with the '
          'same --param_overrides or use a new --model_dir.' %
          (c.model_dir, '; '.join(differences[:5])))

  def _default_dataset_fn(self):
    from depth_motion.data import pipeline  # pylint: disable=g-import-not-at-top
    c = self.config
    data_path = c.data_path or self.model_params['input']['data_path'] or None
    dataset_name = None if data_path else c.dataset
    if dataset_name:
      from data_prep import convert  # pylint: disable=g-import-not-at-top
      dataset_name = convert.resolve_dataset_name(dataset_name)
    if dataset_name and dataset_name.split('/')[0] == 'synthetic_dynamic_scenes':
      from data_prep import synthetic  # pylint: disable=g-import-not-at-top
      config_name = dataset_name.split('/')[1] if '/' in dataset_name else 'demo'
      synthetic.ensure_synthetic_dataset(data_dir=c.data_dir, config=config_name)

    def dataset_fn(input_context):
      return pipeline.make_training_dataset(
          self.model_params, dataset=dataset_name, data_dir=c.data_dir, split=c.split,
          data_path=data_path, batch_size=c.batch_size, seed=c.seed,
          deterministic=c.deterministic, input_context=input_context)

    try:  # Fails here, before any compute, on a bad path or an empty dataset.
      probe = dataset_fn(tf.distribute.InputContext())
      next(iter(probe.take(1)))
    except (ValueError, FileNotFoundError, tf.errors.NotFoundError, KeyError) as e:
      raise ConfigError('Cannot read the training data: %s' % str(e).split('\n')[0]) from None
    except StopIteration:
      raise ConfigError('The training data has no examples (after filtering).') from None
    return dataset_fn

  def _make_checkpoint(self, iterator=None):
    objects = dict(step=self.global_step, model=self.model, optimizer=self.optimizer,
                   nonfinite_count=self.nonfinite_count, curriculum_hold=self.curriculum_hold,
                   order_streak=self.order_streak)
    if iterator is not None:
      objects['iterator'] = iterator
    return tf.train.Checkpoint(**objects)

  def _restore_or_initialize(self, checkpoint):
    """Resumes from the newest readable checkpoint in model_dir, else initialises from init_ckpt.

    Every worker reads the chief's checkpoints (a non-chief worker only writes to
    a scratch directory). A checkpoint that cannot be read (truncated, garbled)
    falls back to the previous one with a warning; one that does not fit the
    model (another architecture or image size) is an error, so that a resume
    never silently starts over and rotates the trained checkpoints away.
    """
    state = tf.train.get_checkpoint_state(self.config.model_dir)
    paths = list(state.all_model_checkpoint_paths) if state else []
    if not paths and state and state.model_checkpoint_path:
      paths = [state.model_checkpoint_path]
    for path in reversed(paths):
      try:
        checkpoint.restore(path).assert_existing_objects_matched()
      except (AssertionError, ValueError) as e:
        raise ConfigError('Checkpoint %s does not fit this model (%s); use the params it was '
                          'trained with or a new --model_dir.' % (path, str(e).split('\n')[0])
                          ) from None
      except Exception as e:  # pylint: disable=broad-except
        # A truncated or garbled file raises DataLossError, OpError, IndexError, ...
        logging.warning('Checkpoint %s is unreadable (%s); trying the previous one.', path,
                        str(e).split('\n')[0])
        continue
      if path != paths[-1]:
        logging.warning('Resumed from %s because newer checkpoints could not be read.', path)
      logging.info('Resumed from %s at step %d.', path, int(self.global_step.numpy()))
      return path
    if paths:
      raise ConfigError('None of the %d checkpoints in %s could be read; move them away to '
                        'start over.' % (len(paths), self.config.model_dir))
    c = self.config
    if c.init_ckpt:
      if c.init_ckpt_type == 'imagenet':
        names = checkpoints_lib.import_imagenet_checkpoint(c.init_ckpt, self.model.depth_net)
      elif c.init_ckpt_type == 'reference':
        names = checkpoints_lib.import_reference_checkpoint(
            c.init_ckpt, depth_net=self.model.depth_net, motion_net=self.model.motion_net,
            per_video_intrinsics=self.model.video_intrinsics)
      else:
        status = tf.train.Checkpoint(model=self.model).read(c.init_ckpt)
        status.expect_partial().assert_existing_objects_matched()
        names = [v.path for v in self.model.variables]
      logging.info('Initialised %d variables from %s (%s); starting at step 0.', len(names),
                   c.init_ckpt, c.init_ckpt_type)
    return None

  # ------------------------------------------------------------------ step --

  def _build_step_fns(self):
    model, optimizer = self.model, self.optimizer
    clip_norm = float(self.trainer_params['clip_gradients'])
    variables = model.trainable_variables
    strategy = self.strategy
    replicas = strategy.num_replicas_in_sync
    # Only under the default strategy: distributed variables are updated through
    # the strategy, which XLA does not compile, and TPUs compile everything anyway.
    apply_update = make_update_fn(
        optimizer, variables,
        self.config.jit_optimizer_update and self.config.distribution_strategy == 'default')

    frozen_steps, max_hold = self._frozen_steps, self._max_hold_steps

    def replica_step(features, with_images):
      step = self.global_step.read_value() - self.curriculum_hold.read_value()
      with tf.GradientTape() as tape:
        losses, total, endpoints, output_endpoints = model.compute_losses(
            features, step, training=True)
        scaled = total / replicas
      grads = tape.gradient(scaled, variables)
      grads = [tf.zeros_like(v) if g is None else tf.cast(g, v.dtype)
               for g, v in zip(grads, variables)]
      context = tf.distribute.get_replica_context()
      grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
      losses = dict(losses, total=total)
      intrinsics = endpoints['intrinsics_mat'][0]
      losses['intrinsics/fx'] = tf.reduce_mean(intrinsics[:, 0, 0])
      losses['intrinsics/fy'] = tf.reduce_mean(intrinsics[:, 1, 1])
      losses['intrinsics/x0'] = tf.reduce_mean(intrinsics[:, 0, 2])
      losses['intrinsics/y0'] = tf.reduce_mean(intrinsics[:, 1, 2])
      losses.update(motion_diagnostics(*endpoints['background_translation']))
      losses = context.all_reduce(tf.distribute.ReduceOp.MEAN, losses)
      images = (summaries.image_tensors(features, endpoints, output_endpoints)
                if with_images else {})
      return grads, losses, images

    def apply(grads, losses):
      grad_norm = tf.linalg.global_norm(grads)
      finite = tf.logical_and(tf.math.is_finite(losses['total']), tf.math.is_finite(grad_norm))

      def update():
        clipped, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=grad_norm)
        apply_update(clipped)
        return tf.constant(True)

      def skip():
        self.nonfinite_count.assign_add(1)
        return tf.constant(False)

      applied = tf.cond(finite, update, skip)
      if max_hold:
        learned = losses['motion/order_symmetry'] < ORDER_SYMMETRY_TO_UNFREEZE
        streak = self.order_streak.assign(
            tf.where(learned, self.order_streak + 1, tf.zeros_like(self.order_streak)))
        clock = self.global_step - self.curriculum_hold
        hold = tf.logical_and(
            tf.logical_and(tf.equal(clock, frozen_steps - 1), streak < ORDER_STREAK_TO_UNFREEZE),
            self.curriculum_hold < max_hold)
        self.curriculum_hold.assign_add(tf.cast(hold, tf.int64))
      self.global_step.assign_add(1)
      return applied, grad_norm

    def first_local(value):
      return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], value)

    def make(with_images):
      @tf.function
      def step_fn(iterator):
        grads, losses, images = strategy.run(replica_step, args=(next(iterator), with_images))
        grads, losses, images = first_local((grads, losses, images))
        applied, grad_norm = apply(grads, losses)
        return applied, grad_norm, losses, images
      return step_fn

    return make(False), make(True)

  # ------------------------------------------------------------------ loop --

  def current_learning_rate(self):
    """The rate of the next update (the schedule's value, when there is one)."""
    return float(tf.convert_to_tensor(self.optimizer.learning_rate).numpy())

  def _scalars(self, losses, grad_norm, steps_per_sec):
    scalars = {(k if '/' in k else 'loss/' + k): v for k, v in losses.items()}
    scalars['optimizer/learning_rate'] = self.current_learning_rate()
    scalars['optimizer/gradient_norm'] = grad_norm
    scalars['optimizer/nonfinite_steps'] = int(self.nonfinite_count.numpy())
    scalars['speed/steps_per_sec'] = steps_per_sec
    scalars['speed/pairs_per_sec'] = steps_per_sec * self.config.batch_size
    scales = self.model.motion_net.scales
    scalars['Scales/rotation'] = float(tf.convert_to_tensor(scales.rotation).numpy())
    scalars['Scales/translation'] = float(tf.convert_to_tensor(scales.translation).numpy())
    return scalars

  def _on_sigterm(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning('SIGTERM received: saving a checkpoint and stopping after this step.')
    self._stop_requested = True

  def request_stop(self):
    self._stop_requested = True

  def run(self):
    """Trains to `train_steps`; returns a dict with the final step and losses."""
    c = self.config
    self._stop_requested = False
    tf.io.gfile.makedirs(c.model_dir)
    if self.is_chief:
      model_lib.save_model_params(c.model_dir, self.model_params, extra={
          'trainer': self.trainer_params,
          'data': {'dataset': c.dataset, 'data_dir': c.data_dir, 'split': c.split,
                   'data_path': c.data_path}})
    dataset = self.strategy.distribute_datasets_from_function(self._dataset_fn)
    iterator = iter(dataset)
    checkpoint = self._make_checkpoint(iterator if c.deterministic else None)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(self.write_dir, 'checkpoints') if not self.is_chief
        else c.model_dir, max_to_keep=c.keep_checkpoints, step_counter=self.global_step)
    self._restore_or_initialize(checkpoint)
    if self._step_fns is None:  # Built once: a second run() reuses the traced functions.
      self._step_fns = self._build_step_fns()
    step_fn, step_with_images_fn = self._step_fns
    writer = (tf.summary.create_file_writer(os.path.join(c.model_dir, 'train'))
              if self.is_chief else tf.summary.create_noop_writer())
    previous_handler = None
    try:
      previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
    except ValueError:  # Not the main thread (e.g. a test runner thread).
      pass

    start_step = step = saved_step = int(self.global_step.numpy())
    log_every = c.log_every_steps or c.summary_every_steps
    consecutive_nonfinite = 0
    last_losses, last_finite_losses = {}, {}
    max_hold_steps = self._max_hold_steps
    last_held = int(self.curriculum_hold.numpy())
    # Until the curriculum clock passes the freeze; the hold cannot start after that.
    track_hold = max_hold_steps and step - last_held < self._frozen_steps
    window_start, window_step = time.time(), step
    run_start = time.time()
    if step >= c.train_steps:
      logging.info('Already at step %d >= train_steps %d; nothing to do.', step, c.train_steps)
    logging.info('Training from step %d to %d, batch %d on %d replica(s).', step,
                 c.train_steps, c.batch_size, self.strategy.num_replicas_in_sync)
    try:
      with writer.as_default():
        while step < c.train_steps and not self._stop_requested:
          want_summary = (step + 1) % c.summary_every_steps == 0 or step == start_step
          fn = step_with_images_fn if want_summary else step_fn
          try:
            applied, grad_norm, losses, images = fn(iterator)
          except (StopIteration, tf.errors.OutOfRangeError):
            logging.warning('The training data ran out at step %d.', step)
            break
          step += 1
          if not bool(applied.numpy()):
            consecutive_nonfinite += 1
            logging.warning('Step %d: non-finite loss or gradient (loss %s, gradient norm %s); '
                            'update skipped (%d in a row, %d in total).', step,
                            float(losses['total'].numpy()), float(grad_norm.numpy()),
                            consecutive_nonfinite, int(self.nonfinite_count.numpy()))
            if consecutive_nonfinite > c.max_consecutive_nonfinite:
              manager.save(checkpoint_number=self.global_step)
              raise NonFiniteError(
                  'Stopping: %d consecutive steps with non-finite loss or gradients (limit '
                  '--max_consecutive_nonfinite=%d). The last good weights are saved in %s; '
                  'check the data (NaN/Inf pixels, zero intrinsics) or lower the learning rate.'
                  % (consecutive_nonfinite, c.max_consecutive_nonfinite, c.model_dir))
          else:
            consecutive_nonfinite = 0
          last_losses = losses
          if track_hold:
            held = int(self.curriculum_hold.numpy())
            if held and not last_held:
              logging.info(
                  'Step %d: the motion net still predicts about the same translation for '
                  'both frame orders (order symmetry %.2f); depth stays frozen until it tells '
                  'them apart, at most %d more steps.', step,
                  float(losses['motion/order_symmetry'].numpy()), max_hold_steps)
            elif held == last_held and step - held >= self._frozen_steps:
              track_hold = False
            if held and not track_hold:  # The clock moved on: the hold is over.
              logging.log(
                  logging.WARNING if held >= max_hold_steps else logging.INFO,
                  'Step %d: depth unfreezes after waiting %d extra steps%s (order symmetry '
                  '%.2f); the curriculum runs %d steps behind the global step from here.',
                  step, held, ' (the limit)' if held >= max_hold_steps else '',
                  float(losses['motion/order_symmetry'].numpy()), held)
            last_held = held
          if bool(applied.numpy()):
            last_finite_losses = losses
          if step % c.checkpoint_every_steps == 0:
            manager.save(checkpoint_number=self.global_step)
            saved_step = step
          if want_summary or step % log_every == 0 or step == c.train_steps:
            now = time.time()
            steps_per_sec = (step - window_step) / max(now - window_start, 1e-9)
            window_start, window_step = now, step
            numpy_losses = {k: float(v.numpy()) for k, v in losses.items()}
            if want_summary:
              summaries.write_scalars(step, self._scalars(
                  numpy_losses, float(grad_norm.numpy()), steps_per_sec))
              if images:
                summaries.write_images(step, images)
            remaining = (c.train_steps - step) / max(steps_per_sec, 1e-9)
            logging.info(
                'step %d/%d | loss %.4f (%s) | order symmetry %.2f | %.2f steps/s, %.1f pairs/s'
                ' | ETA %s', step, c.train_steps, numpy_losses['total'],
                ', '.join('%s %.4g' % (k, v) for k, v in sorted(numpy_losses.items())
                          if k != 'total' and '/' not in k and v != 0.0),
                numpy_losses['motion/order_symmetry'], steps_per_sec,
                steps_per_sec * c.batch_size, _format_duration(remaining))
      if saved_step != step:
        manager.save(checkpoint_number=self.global_step)
    finally:
      writer.flush()
      if previous_handler is not None:
        signal.signal(signal.SIGTERM, previous_handler)
      if not self.is_chief and tf.io.gfile.exists(self.write_dir):
        shutil.rmtree(self.write_dir, ignore_errors=True)
    if self._stop_requested:
      logging.warning('Stopped at step %d on request; checkpoint saved in %s.', step,
                      c.model_dir)
    elapsed = time.time() - run_start
    return {
        'step': step,
        'losses': {k: float(np.asarray(v)) for k, v in last_losses.items()},
        'last_finite_losses': {k: float(np.asarray(v)) for k, v in last_finite_losses.items()},
        'nonfinite_steps': int(self.nonfinite_count.numpy()),
        'curriculum_hold_steps': int(self.curriculum_hold.numpy()),
        'seconds': elapsed,
        'preempted': self._stop_requested,
    }


def train(config: TrainConfig, dataset_fn=None):
  """Builds a Trainer and runs it; returns the summary dict of `Trainer.run`."""
  return Trainer(config, dataset_fn=dataset_fn).run()
