"""Distributed training on one CPU machine: MirroredStrategy over 2 logical CPU devices and a
2-worker MultiWorkerMirroredStrategy on localhost.

Both train a few steps of the real model at 32x64 on random frame pairs (each replica or
worker its own shard), then the weights of every replica (mirrored) and of both workers
(multi-worker) are compared: synchronous data-parallel training must keep them identical.
Prints one JSON object with steps/s and the largest weight difference of each setup.
`--role=mirrored --curriculum` also checks the depth freeze and its hold under the strategy:
depth is frozen for the first 2 steps and the hold (random pairs never teach the motion net
the frame order) keeps it frozen for 1 more; the depth net must not move until then.

Usage (from the repository root):
  python -m benchmarks.distributed_benchmark [--steps 4]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top

H, W = 32, 64
PARAMS = {'image_preprocessing': {'image_height': H, 'image_width': W,
                                  'data_augmentation': False},
          'motion_field_burnin_steps': 0}
GLOBAL_BATCH = 4
CURRICULUM = {'depth_stop_gradient_steps': 2, 'depth_stop_gradient_max_hold_steps': 1}


def _random_pairs(seed, batch):
  rng = np.random.RandomState(seed)
  rgb0 = rng.uniform(size=(batch, H, W, 3)).astype(np.float32)
  k = np.tile(np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]], np.float32),
              [batch, 1, 1])
  return {'rgb': (rgb0, np.roll(rgb0, 2, axis=2)), 'intrinsics_mat': (k, k),
          'intrinsics_mat_inv': (np.linalg.inv(k),) * 2}


def _dataset_fn(input_context):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  batch = input_context.get_per_replica_batch_size(GLOBAL_BATCH)
  return tf.data.Dataset.from_tensors(
      _random_pairs(input_context.input_pipeline_id, batch)).repeat()


def _depth_weights(trainer):
  return [np.array(v) for v in trainer.model.depth_net.trainable_variables]


def _largest_difference(arrays_a, arrays_b):
  """The largest absolute element-wise difference between two lists of arrays."""
  return max(float(np.max(np.abs(a - b))) for a, b in zip(arrays_a, arrays_b))


def _train(strategy_name, model_dir, steps, cpu_devices=0, params=None):
  """Runs the trainer; returns (trainer, seconds per step after two warm-up steps, the
  depth net's weights at the start and after the warm-up).

  The warm-up traces both step functions (with and without summary images), so the
  timed steps measure training, not tracing.
  """
  from depth_motion import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = trainer_lib.TrainConfig(
      model_dir=model_dir, param_overrides=params or PARAMS, dataset='benchmark',
      batch_size=GLOBAL_BATCH, train_steps=2, distribution_strategy=strategy_name,
      cpu_devices=cpu_devices, summary_every_steps=10**9, checkpoint_every_steps=10**9,
      seed=0)
  trainer = trainer_lib.Trainer(config, dataset_fn=_dataset_fn)
  depth_weights = [_depth_weights(trainer)]
  trainer.run()
  depth_weights.append(_depth_weights(trainer))
  config.train_steps = 2 + steps
  start = time.perf_counter()
  trainer.run()
  return trainer, (time.perf_counter() - start) / steps, depth_weights


def run_mirrored(steps, curriculum=False):
  from depth_motion import distribute  # pylint: disable=g-import-not-at-top
  distribute.split_cpu(2)
  model_dir = tempfile.mkdtemp(prefix='mirrored_')
  params = dict(PARAMS, **CURRICULUM) if curriculum else PARAMS
  try:
    trainer, seconds, depth_weights = _train('mirrored', model_dir, steps, cpu_devices=2,
                                             params=params)
  finally:  # A checkpoint of the full model is ~700 MB.
    shutil.rmtree(model_dir, ignore_errors=True)
  strategy = trainer.strategy
  difference = 0.0
  for variable in trainer.model.trainable_variables:  # One variable's copies at a time.
    copies = [np.asarray(c) for c in strategy.experimental_local_results(variable.value)]
    difference = max(difference, _largest_difference(copies, copies[:1] * len(copies)))
  result = {'replicas': strategy.num_replicas_in_sync, 'steps_per_sec': 1.0 / seconds,
            'max_weight_difference_across_replicas': difference}
  if curriculum:
    result.update(
        global_step=int(trainer.global_step.numpy()),
        curriculum_hold=int(trainer.curriculum_hold.numpy()),
        depth_change_in_first_2_steps=_largest_difference(*depth_weights),
        depth_change_after=_largest_difference(depth_weights[1], _depth_weights(trainer)))
  return result


def run_worker(index, ports, model_dir, out, steps):
  os.environ['TF_CONFIG'] = json.dumps({
      'cluster': {'worker': ['localhost:%d' % p for p in ports]},
      'task': {'type': 'worker', 'index': index}})
  trainer, seconds, _ = _train('multi_worker_mirrored', model_dir, steps)
  np.savez(out, seconds=seconds,
           **{'w%03d' % i: np.asarray(v) for i, v in enumerate(trainer.model.trainable_variables)})


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def run_multi_worker(steps):
  ports = [_free_port(), _free_port()]
  work = tempfile.mkdtemp(prefix='multi_worker_')
  outs = [os.path.join(work, 'worker%d.npz' % i) for i in range(2)]
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'benchmarks.distributed_benchmark', '--role=worker',
       '--index=%d' % i, '--ports=%d,%d' % tuple(ports), '--model_dir=%s' % work,
       '--out=%s' % outs[i], '--steps=%d' % steps]) for i in range(2)]
  try:
    codes = [p.wait(timeout=900) for p in procs]
    if any(codes):
      return {'error': 'worker exit codes %s' % codes}
    weights = [dict(np.load(o)) for o in outs]
  finally:
    shutil.rmtree(work, ignore_errors=True)
  keys = [k for k in weights[0] if k.startswith('w')]
  difference = _largest_difference([weights[0][k] for k in keys], [weights[1][k] for k in keys])
  return {'workers': 2, 'steps_per_sec': 1.0 / float(weights[0]['seconds']),
          'max_weight_difference_across_workers': difference}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--role', default='main', choices=['main', 'mirrored', 'worker'])
  parser.add_argument('--steps', type=int, default=4)
  parser.add_argument('--index', type=int, default=0)
  parser.add_argument('--ports', default='')
  parser.add_argument('--model_dir', default='')
  parser.add_argument('--out', default='')
  parser.add_argument('--curriculum', action='store_true',
                      help='With --role=mirrored: freeze depth and hold the freeze (see above).')
  args = parser.parse_args()
  if args.role == 'worker':
    run_worker(args.index, [int(p) for p in args.ports.split(',')], args.model_dir, args.out,
               args.steps)
    return
  if args.role == 'mirrored':
    print(json.dumps(run_mirrored(args.steps, args.curriculum)))
    return
  # Each setup in its own process: the logical CPU split must happen before TF starts.
  mirrored = subprocess.run([sys.executable, '-m', 'benchmarks.distributed_benchmark',
                             '--role=mirrored', '--steps=%d' % args.steps],
                            capture_output=True, text=True, timeout=900)
  lines = mirrored.stdout.strip().splitlines()
  result = {'mirrored_2_cpu_devices': json.loads(lines[-1]) if mirrored.returncode == 0 and lines
                                      else {'error': mirrored.stderr[-2000:]},
            'multi_worker_2_localhost': run_multi_worker(args.steps)}
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
