r"""Throughput of the real-data converters, in process and with Beam's DirectRunner.

Writes a generated raw tree per builder (KITTI-, Cityscapes-, Waymo-like sizes
scaled by --image_scale), converts it both ways and prints JSON: per builder and
mode the seconds, triplets written and triplets (= output frames' centres) per
second.

  python -m benchmarks.converters_benchmark --builders=kitti,video --frames=30 \
      --beam_workers=2 --beam_mode=multi_processing
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list('builders', ['kitti', 'cityscapes', 'waymo', 'video', 'struct2depth'],
                  'Builders to benchmark.')
flags.DEFINE_integer('frames', 24, 'Frames per sequence of the generated trees.')
flags.DEFINE_integer('sequences', 2, 'Sequences per generated tree.')
flags.DEFINE_float('image_scale', 0.5, 'Raw image size relative to the real dataset.')
flags.DEFINE_integer('beam_workers', 1, 'DirectRunner workers.')
flags.DEFINE_enum('beam_mode', 'in_memory', ['in_memory', 'multi_threading',
                                             'multi_processing'], 'DirectRunner mode.')
flags.DEFINE_bool('skip_beam', False, 'Only the in-process path.')
flags.DEFINE_string('work_dir', None, 'Where trees and outputs go (default: a temp dir, removed).')


def _size(height, width):
  scale = FLAGS.image_scale
  return max(16, int(height * scale)) // 2 * 2, max(32, int(width * scale)) // 2 * 2


def _make_tree(name, root):
  """Writes the raw tree; returns (builder class, config, input frames)."""
  n, s = FLAGS.frames, FLAGS.sequences
  if name == 'kitti':
    from data_prep import kitti  # pylint: disable=g-import-not-at-top
    h, w = _size(375, 1242)
    drives = tuple(('2011_09_26', '2011_09_26_drive_%04d_sync' % (1 + i), n) for i in range(s))
    kitti.write_sample_tree(root, drives=drives, height=h, width=w, velodyne=False)
    test_list = os.path.join(root, 'empty_test.txt')
    open(test_list, 'w').close()
    return kitti.KittiTriplets, kitti.KittiConfig(name='bench', test_files=test_list), 2 * n * s
  if name == 'cityscapes':
    from data_prep import cityscapes  # pylint: disable=g-import-not-at-top
    h, w = _size(1024, 2048)
    cityscapes.write_sample_tree(root, snippets=tuple(range(s)), frames_per_snippet=n,
                                 height=h, width=w, subsets=('train',))
    return cityscapes.CityscapesTriplets, cityscapes.CityscapesConfig(name='bench'), n * s // 2
  if name == 'waymo':
    from data_prep import waymo  # pylint: disable=g-import-not-at-top
    h, w = _size(1280, 1920)
    waymo.write_sample_tree(root, num_segments=s, num_frames=n, height=h, width=w)
    return waymo.WaymoTriplets, waymo.WaymoConfig(name='bench'), n * s
  if name == 'video':
    from data_prep import video  # pylint: disable=g-import-not-at-top
    h, w = _size(720, 1280)
    video.write_sample_tree(root, num_videos=s, num_frames=n, height=h, width=w)
    return video.VideoTriplets, video.VideoConfig(name='bench', static_threshold=0.0), n * s
  if name == 'struct2depth':
    from data_prep import struct2depth  # pylint: disable=g-import-not-at-top
    struct2depth.write_sample_tree(root, folders=tuple(('seq_%d' % i, n) for i in range(s)),
                                   height=128, width=416)
    return (struct2depth.Struct2DepthTriplets,
            struct2depth.Struct2DepthConfig(name='bench', with_masks=True), 3 * n * s)
  raise ValueError('unknown builder %r' % name)


def _run(builder_cls, config, raw, out, use_beam):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if use_beam:
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
    kwargs = dict(beam_runner='DirectRunner', beam_options=pipeline_options.PipelineOptions([
        '--direct_num_workers=%d' % FLAGS.beam_workers,
        '--direct_running_mode=%s' % FLAGS.beam_mode]))
  builder = builder_cls(config=config, data_dir=out)
  start = time.perf_counter()
  with contextlib.redirect_stdout(sys.stderr):  # TFDS prints progress; stdout is the JSON
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=raw, **kwargs))
  seconds = time.perf_counter() - start
  written = sum(int(s.num_examples) for s in builder.info.splits.values())
  return seconds, written


def main(argv):
  del argv
  work = FLAGS.work_dir or tempfile.mkdtemp(prefix='converters_benchmark_')
  results = {'frames_per_sequence': FLAGS.frames, 'sequences': FLAGS.sequences,
             'image_scale': FLAGS.image_scale, 'beam_workers': FLAGS.beam_workers,
             'beam_mode': FLAGS.beam_mode, 'cpu_count': os.cpu_count(), 'builders': {}}
  try:
    for name in FLAGS.builders:
      raw = os.path.join(work, name, 'raw')
      os.makedirs(raw, exist_ok=True)
      builder_cls, config, input_frames = _make_tree(name, raw)
      entry = {'input_frames': input_frames}
      modes = [('in_process', False)] + ([] if FLAGS.skip_beam else [('beam_direct', True)])
      for mode, use_beam in modes:
        seconds, written = _run(builder_cls, config, raw, os.path.join(work, name, mode),
                                use_beam)
        entry[mode] = {'seconds': round(seconds, 3), 'triplets': written,
                       'triplets_per_s': round(written / seconds, 2),
                       'input_frames_per_s': round(input_frames / seconds, 2)}
      results['builders'][name] = entry
  finally:
    if not FLAGS.work_dir:
      shutil.rmtree(work, ignore_errors=True)
  sys.stdout.write(json.dumps(results, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
