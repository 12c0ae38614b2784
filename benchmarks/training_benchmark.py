"""Training throughput (pairs/s) at 128x416 and the share of step time spent outside the model.

For each batch size, trains with the real input pipeline (a prepared 128x416
triplet dataset, augmentation on, summaries every `--summary_every_steps`) and
again on one cached batch (no input cost, no summaries); the difference is the
time spent outside the model (input pipeline, summaries, host-side logging).
These steps have the object-motion field on (`motion_field_burnin_steps` 0). A
third run, on the cached batch, measures the first half of the reference's
burn-in (its first 10000 steps), where the field is zero and its decoder is
skipped. Prints one JSON object:

  {"device": ..., "results": [{"batch_size": 4, "pairs_per_sec": ...,
   "model_only_pairs_per_sec": ..., "fraction_outside_model": ...,
   "burn_in_model_only_pairs_per_sec": ...}, ...]}

Usage (from the repository root):
  python -m benchmarks.training_benchmark [--batch_sizes 4,16] [--steps 6]
"""

import argparse
import json
import os
import shutil
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import logging  # pylint: disable=g-import-not-at-top
import tensorflow as tf

from benchmarks import input_pipeline_benchmark
from depth_motion import trainer as trainer_lib
from depth_motion.data import pipeline


def _timed_run(config, dataset_fn, warmup):
  """Seconds per step after `warmup` steps (tracing excluded)."""
  trainer = trainer_lib.Trainer(config, dataset_fn=dataset_fn)
  total = config.train_steps
  config.train_steps = warmup
  trainer.run()
  config.train_steps = total
  start = time.perf_counter()
  trainer.run()
  return (time.perf_counter() - start) / (total - warmup)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--batch_sizes', default='4,16')
  parser.add_argument('--steps', type=int, default=6)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--summary_every_steps', type=int, default=50)
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)
  data_dir = args.data_dir or tempfile.mkdtemp(prefix='training_benchmark_')
  directory = input_pipeline_benchmark.prepare(data_dir, 256)
  results = []
  for batch_size in [int(b) for b in args.batch_sizes.split(',')]:
    params = {'image_preprocessing': {'image_height': 128, 'image_width': 416},
              'motion_field_burnin_steps': 0}

    def real_data(input_context, batch_size=batch_size, params=params):
      del input_context
      full = trainer_lib.params_lib.make_model_params(params)
      return pipeline.make_training_dataset(full, dataset=directory, batch_size=batch_size,
                                            seed=0)

    cached_batch = next(iter(real_data(None)))

    def cached(input_context, batch=cached_batch):
      del input_context
      return tf.data.Dataset.from_tensors(batch).repeat()

    burn_in_params = {k: v for k, v in params.items() if k != 'motion_field_burnin_steps'}
    seconds = {}
    for name, dataset_fn, summary_every, overrides in (
        ('real', real_data, args.summary_every_steps, params),
        ('cached', cached, 10**9, params),
        ('burn_in_cached', cached, 10**9, burn_in_params)):
      config = trainer_lib.TrainConfig(
          model_dir=tempfile.mkdtemp(prefix='training_benchmark_model_'),
          param_overrides=overrides, dataset='benchmark', batch_size=batch_size,
          train_steps=args.steps + args.warmup, summary_every_steps=summary_every,
          checkpoint_every_steps=10**9, seed=0)
      try:
        seconds[name] = _timed_run(config, dataset_fn, args.warmup)
      finally:  # A checkpoint of the full model is ~700 MB.
        shutil.rmtree(config.model_dir, ignore_errors=True)
    results.append({
        'batch_size': batch_size,
        'image_size': [128, 416],
        'steps_measured': args.steps,
        'seconds_per_step': seconds['real'],
        'pairs_per_sec': batch_size / seconds['real'],
        'model_only_pairs_per_sec': batch_size / seconds['cached'],
        'fraction_outside_model': max(0.0, 1.0 - seconds['cached'] / seconds['real']),
        'burn_in_model_only_pairs_per_sec': batch_size / seconds['burn_in_cached'],
    })
  print(json.dumps({'device': 'cpu x%d' % os.cpu_count(), 'results': results}, indent=2))


if __name__ == '__main__':
  main()
