"""Throughput of the training input pipeline (augmented pairs per second).

Builds (or reuses, under --data_dir) a TFDS triplet dataset of 128x416 frames
with image statistics like camera footage (smooth structure plus sensor noise,
so PNG decoding costs what it costs on real data), runs
`make_training_dataset` with the default params (augmentation on, batch 16)
and prints one JSON line:

  {"pairs_per_sec": ..., "batch_size": 16, "image_height": 128, "image_width": 416,
   "cpu_count": ..., ...}

Usage:
  python benchmarks/input_pipeline_benchmark.py [--data_dir DIR] [--batches 60]
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import cv2  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from depth_motion.data import features as features_lib
from depth_motion.data import pipeline

HEIGHT, WIDTH = 128, 416
DATASET_NAME = 'input_benchmark_triplets'


def _frames(rng, drift):
  """Three frames of a smooth random scene drifting sideways, with noise."""
  coarse = rng.uniform(0, 255, (HEIGHT // 8, WIDTH // 8 + 8, 3)).astype(np.float32)
  scene = cv2.resize(coarse, (WIDTH + 64, HEIGHT), interpolation=cv2.INTER_CUBIC)
  frames = []
  for t in range(features_lib.NUM_FRAMES):
    shift = int(t * drift)
    frame = scene[:, shift:shift + WIDTH] + rng.normal(0, 3, (HEIGHT, WIDTH, 3))
    frames.append(np.clip(frame, 0, 255).astype(np.uint8))
  return np.stack(frames)


class InputBenchmarkTriplets(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Synthetic 128x416 triplets for the benchmark only."""

  name = DATASET_NAME
  VERSION = tfds.core.Version('1.0.0')
  num_examples = 256

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=features_lib.triplet_features())

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    for i in range(self.num_examples):
      yield i, {
          'images': _frames(rng, drift=rng.uniform(2, 12)),
          'height': HEIGHT, 'width': WIDTH,
          'intrinsics': np.array([241.7, 246.3, 204.2, 59.0], np.float32),
          'intrinsics_known': True, 'video_id': 'video_%d' % (i // 32), 'source': DATASET_NAME,
          'frame_ids': ['%d_0' % i, '%d_1' % i, '%d_2' % i],
      }


def prepare(data_dir, num_examples):
  builder = InputBenchmarkTriplets(data_dir=data_dir)
  if not builder.info.splits:
    InputBenchmarkTriplets.num_examples = num_examples
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=8))
  return builder.data_dir


def measure(directory, batch_size, batches, warmup, params):
  dataset = pipeline.make_training_dataset(params, dataset=directory, batch_size=batch_size,
                                           seed=0)
  iterator = iter(dataset)
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(iterator)
  batch['rgb'][0].numpy()
  seconds = time.perf_counter() - start
  return batches * batch_size / seconds, seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=None,
                      help='where the benchmark dataset is built or reused (default: a temp dir)')
  parser.add_argument('--num_examples', type=int, default=256)
  parser.add_argument('--batch_size', type=int, default=16)
  parser.add_argument('--batches', type=int, default=60)
  parser.add_argument('--warmup', type=int, default=10)
  parser.add_argument('--use_both_pairs', action='store_true')
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as tmp:
    data_dir = args.data_dir or tmp
    start = time.perf_counter()
    directory = prepare(data_dir, args.num_examples)
    prepare_seconds = time.perf_counter() - start
    params = {'input': {'use_both_pairs': args.use_both_pairs}}
    pairs_per_sec, seconds = measure(directory, args.batch_size, args.batches, args.warmup,
                                     params)
  print(json.dumps({
      'pairs_per_sec': round(pairs_per_sec, 1),
      'batch_size': args.batch_size,
      'image_height': HEIGHT,
      'image_width': WIDTH,
      'cpu_count': os.cpu_count(),
      'batches_timed': args.batches,
      'seconds': round(seconds, 2),
      'data_augmentation': True,
      'use_both_pairs': args.use_both_pairs,
      'prepare_seconds': round(prepare_seconds, 1),
  }))


if __name__ == '__main__':
  main()
