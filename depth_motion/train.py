r"""Trains depth and motion from monocular video.

  python -m depth_motion.train --flagfile=flags/demo.flags
  python -m depth_motion.train --model_dir=/tmp/kitti --dataset=kitti \
      --data_dir=~/tensorflow_datasets --param_overrides='{"motion_field_burnin_steps": 20000}'

`--param_overrides` takes the reference's keys (a dict, a JSON string or a JSON
file; either the model params directly or `{"model": {...}, "trainer": {...}}`
as the reference's trainer took them); unknown keys are rejected.

Bad flags or data fail before any compute with a one-line explanation.
"""

import sys

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from depth_motion import distribute
from depth_motion import trainer as trainer_lib

FLAGS = flags.FLAGS

flags.DEFINE_string('model_dir', None, 'Directory for checkpoints, params.json and '
                    'TensorBoard summaries; a job restarted with the same model_dir resumes.')
flags.DEFINE_string('param_overrides', '', 'Model (and trainer) hyperparameters with the '
                    "reference's keys: a dict literal, a JSON string or a JSON file path.")
flags.DEFINE_string('dataset', None, 'TFDS triplet builder to train on, e.g. '
                    'synthetic_dynamic_scenes/demo (built on first use), kitti, cityscapes.')
flags.DEFINE_string('data_dir', None, 'TFDS data directory of --dataset (default: TFDS\'s).')
flags.DEFINE_string('split', 'train', 'Split of --dataset to train on.')
flags.DEFINE_string('data_path', None, 'A struct2depth train.txt to train on instead of '
                    '--dataset (the reference\'s input.data_path).')
flags.DEFINE_integer('batch_size', 16, 'Global batch size in frame pairs (split over replicas).')
flags.DEFINE_integer('train_steps', None, 'Number of training steps (default: the trainer '
                     'param max_steps, 1,000,000).')
flags.DEFINE_float('learning_rate', 2e-4, 'Adam learning rate: constant, as the reference, unless '
                   'a warm-up or decay is set, which scale it.')
flags.DEFINE_integer('learning_rate_warmup_steps', 0, 'Ramp the learning rate linearly from '
                     '0 to --learning_rate over this many updates (0: constant from the '
                     'first step, as the reference).')
flags.DEFINE_integer('learning_rate_decay_steps', 0, 'Decay the learning rate linearly to 0 '
                     'over the last this many of --train_steps updates (0: no decay, as the '
                     'reference).')
flags.DEFINE_enum('distribution_strategy', 'default', list(distribute.STRATEGIES),
                  'tf.distribute strategy. multi_worker_mirrored reads TF_CONFIG.')
flags.DEFINE_string('tpu', None, 'TPU name or address for --distribution_strategy=tpu.')
flags.DEFINE_integer('num_gpus', 0, 'GPUs for the mirrored strategy (0: all visible).')
flags.DEFINE_integer('cpu_devices', 0, 'Split the CPU into this many logical devices for the '
                     'mirrored strategy (testing distribution without GPUs).')
flags.DEFINE_string('init_ckpt', None, 'Checkpoint to initialise from when model_dir has none.')
flags.DEFINE_enum('init_ckpt_type', None, list(trainer_lib.INIT_CKPT_TYPES),
                  'imagenet: a ResNet-18 encoder checkpoint (the reference\'s naming); '
                  'reference: a checkpoint of the reference TF1 trainer; checkpoint: ours.')
flags.DEFINE_integer('checkpoint_every_steps', 1000, 'Save a checkpoint every N steps.')
flags.DEFINE_integer('keep_checkpoints', 5, 'Number of recent checkpoints to keep.')
flags.DEFINE_integer('summary_every_steps', 50, 'Log and write TensorBoard summaries every N '
                     'steps.')
flags.DEFINE_boolean('mixed_precision', False, 'Compute in bfloat16 (mixed_bfloat16 policy); '
                     'losses stay float32.')
flags.DEFINE_integer('seed', None, 'Random seed (weights, augmentation, noise).')
flags.DEFINE_boolean('deterministic', False, 'Deterministic ops, no shuffling, and the input '
                     'position saved in checkpoints, so a resumed run matches an uninterrupted '
                     'one (slower).')
flags.DEFINE_boolean('jit_optimizer_update', True, 'Compile the Adam update with XLA under '
                     'the default strategy (one fused kernel per weight; about 2.6x faster on '
                     'a CPU). Same formula; turn off if XLA is unavailable on your platform.')
flags.DEFINE_integer('max_consecutive_nonfinite', 20, 'Stop when more than this many consecutive '
                     'steps have a non-finite loss or gradient (each is skipped).')
flags.DEFINE_string('eval_protocol', None, 'After training, evaluate with this protocol of '
                    'depth_motion.evaluate (e.g. synthetic) on --eval_split and print the '
                    'metrics.')
flags.DEFINE_string('eval_split', None, 'Split of --dataset for --eval_protocol (default: the '
                    "protocol's, e.g. eigen_test for kitti_eigen).")


def config_from_flags():
  return trainer_lib.TrainConfig(
      model_dir=FLAGS.model_dir, param_overrides=FLAGS.param_overrides or None,
      dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, split=FLAGS.split,
      data_path=FLAGS.data_path, batch_size=FLAGS.batch_size, train_steps=FLAGS.train_steps,
      learning_rate=FLAGS.learning_rate,
      learning_rate_warmup_steps=FLAGS.learning_rate_warmup_steps,
      learning_rate_decay_steps=FLAGS.learning_rate_decay_steps,
      distribution_strategy=FLAGS.distribution_strategy,
      tpu=FLAGS.tpu, num_gpus=FLAGS.num_gpus, cpu_devices=FLAGS.cpu_devices,
      init_ckpt=FLAGS.init_ckpt, init_ckpt_type=FLAGS.init_ckpt_type,
      checkpoint_every_steps=FLAGS.checkpoint_every_steps,
      keep_checkpoints=FLAGS.keep_checkpoints, summary_every_steps=FLAGS.summary_every_steps,
      mixed_precision=FLAGS.mixed_precision, seed=FLAGS.seed,
      deterministic=FLAGS.deterministic,
      max_consecutive_nonfinite=FLAGS.max_consecutive_nonfinite,
      jit_optimizer_update=FLAGS.jit_optimizer_update)


def _evaluate_after_training(config):
  from depth_motion import evaluate  # pylint: disable=g-import-not-at-top
  if not config.dataset:
    logging.warning('--eval_protocol needs --dataset (a TFDS builder with ground truth); '
                    'skipping the evaluation.')
    return None
  # The evaluation model is built anew; it computes in float32 whatever training used.
  tf.keras.mixed_precision.set_global_policy('float32')
  results = evaluate.evaluate(
      checkpoint=config.model_dir, protocol=FLAGS.eval_protocol, dataset=config.dataset,
      data_dir=config.data_dir, split=FLAGS.eval_split,
      output_json=config.model_dir.rstrip('/') + '/eval_%s.json' % FLAGS.eval_protocol)
  print(evaluate.format_results(results))
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  if FLAGS.cpu_devices > 1:
    distribute.split_cpu(FLAGS.cpu_devices)
  config = config_from_flags()
  try:
    trainer = trainer_lib.Trainer(config)
  except trainer_lib.ConfigError as e:
    message = str(e).split('\n')[0]
    print('depth_motion.train: error: %s' % message, file=sys.stderr)
    sys.exit(2)
  try:
    result = trainer.run()
  except trainer_lib.NonFiniteError as e:
    logging.error('%s', e)
    sys.exit(1)
  logging.info('Finished at step %d in %.0f s (%d non-finite steps skipped).', result['step'],
               result['seconds'], result['nonfinite_steps'])
  if FLAGS.eval_protocol and not result['preempted']:
    _evaluate_after_training(config)


if __name__ == '__main__':
  flags.mark_flag_as_required('model_dir')
  app.run(main)
