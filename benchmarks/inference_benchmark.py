r"""Inference speed: depth latency of the exported SavedModel, and `infer`'s frames/s.

    python benchmarks/inference_benchmark.py [--repetitions=10] [--warmup=3] \
        [--batch_sizes=1,8] [--video_frames=24] [--output_json=/tmp/bench.json]

Builds a randomly initialised model trained-at 192x480 (the paper's timing
resolution, 480x192 W x H; both multiples of 32), exports it with
`depth_motion.export`, loads it back with plain `tf.saved_model.load` and times
the `depth` function on float32 [N, 192, 480, 3] inputs (already at the trained
size, so no resize): the median over `--repetitions` calls after `--warmup`
calls, per batch size. Then writes a video of `--video_frames` frames of
480x192 and runs `depth_motion.infer` on it from the SavedModel, which reports
frames/s over the whole run (decoding, depth and motion of every pair, writing
files and the trajectory). Weights do not change the amount of computation, so
a random model times like a trained one. Prints one JSON object.

The paper reports about 5.3 ms per 480x192 frame at batch 1 on a V100 GPU.
"""

import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2
import numpy as np
import tensorflow as tf

from depth_motion import export
from depth_motion import infer
from depth_motion import model as model_lib

HEIGHT, WIDTH = 192, 480

flags.DEFINE_integer('repetitions', 10, 'Timed calls per batch size.')
flags.DEFINE_integer('warmup', 3, 'Untimed calls before timing (tracing, allocation).')
flags.DEFINE_list('batch_sizes', ['1', '8'], 'Batch sizes to time.')
flags.DEFINE_integer('video_frames', 24, 'Frames of the generated video for infer.')
flags.DEFINE_string('output_json', None, 'Also write the results here.')
FLAGS = flags.FLAGS


def time_depth(loaded, batch_size, repetitions, warmup):
  """Median and spread of the SavedModel's depth call time (seconds) on [N, 192, 480, 3]."""
  images = tf.constant(np.random.RandomState(batch_size).uniform(
      size=(batch_size, HEIGHT, WIDTH, 3)).astype(np.float32))
  for _ in range(warmup):
    loaded.depth(images)['depth'].numpy()
  times = []
  for _ in range(repetitions):
    start = time.perf_counter()
    loaded.depth(images)['depth'].numpy()
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return {
      'batch_size': batch_size,
      'median_ms': 1e3 * median,
      'min_ms': 1e3 * min(times),
      'max_ms': 1e3 * max(times),
      'median_ms_per_frame': 1e3 * median / batch_size,
      'frames_per_second': batch_size / median,
      'repetitions': repetitions,
  }


def write_video(path, frames):
  rng = np.random.RandomState(0)
  texture = cv2.resize(rng.randint(0, 256, (24, 120, 3)).astype(np.uint8),
                       (WIDTH + 4 * frames, HEIGHT), interpolation=cv2.INTER_LINEAR)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (WIDTH, HEIGHT))
  for k in range(frames):
    writer.write(np.ascontiguousarray(texture[:, 4 * k:4 * k + WIDTH]))
  writer.release()
  return path


def main(argv):
  del argv
  results = {
      'benchmark': 'inference',
      'resolution': {'height': HEIGHT, 'width': WIDTH},
      'device': 'cpu' if not tf.config.list_physical_devices('GPU') else 'gpu',
      'cpu_count': os.cpu_count(),
      'processor': platform.processor() or platform.machine(),
      'tensorflow': tf.__version__,
  }
  with tempfile.TemporaryDirectory() as root:
    params = {'image_preprocessing': {'image_height': HEIGHT, 'image_width': WIDTH}}
    model = model_lib.DepthMotionFieldModel(params)
    model.build_for_size(HEIGHT, WIDTH)
    model_dir = os.path.join(root, 'model')
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), model_dir, 1).save()
    model_lib.save_model_params(model_dir, params)
    start = time.perf_counter()
    export_dir = export.export_saved_model(model_dir, os.path.join(root, 'saved_model'))
    results['export_seconds'] = time.perf_counter() - start
    start = time.perf_counter()
    loaded = tf.saved_model.load(export_dir)
    results['load_seconds'] = time.perf_counter() - start
    results['depth'] = [time_depth(loaded, int(b), FLAGS.repetitions, FLAGS.warmup)
                        for b in FLAGS.batch_sizes]
    video = write_video(os.path.join(root, 'clip.mp4'), FLAGS.video_frames)
    summary = infer.infer(video, os.path.join(root, 'out'), saved_model=export_dir,
                          batch_size=8, progress_stream=io.StringIO())
    results['infer'] = {
        'frames': summary['num_frames'],
        'batch_size': 8,
        'frames_per_second': summary['frames_per_second'],
        'includes': 'decoding, depth and motion of every pair, file writing; first call included',
    }
  text = json.dumps(results, indent=2)
  print(text)
  if FLAGS.output_json:
    tmp = FLAGS.output_json + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text + '\n')
    os.replace(tmp, FLAGS.output_json)
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
