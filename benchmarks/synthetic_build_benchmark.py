"""Times building the synthetic dataset (default: the demo config) into a temporary directory.

  python -m benchmarks.synthetic_build_benchmark [--config=demo] [--num_workers=2]

(from the repository root, or as a script once the package is installed).

Prints one JSON object: wall seconds, triplets per second, frames rendered,
CPU seconds (this process and its workers: compare with wall x cores to see
whether other load slowed the build), bytes written, and the single-process
render time per frame. Target for the demo config: under 2 minutes on 2 cores.
"""

import json
import os
import resource
import shutil
import tempfile
import time

from absl import app
from absl import flags

from data_prep import synthetic
from data_prep import synthetic_scene

_CONFIG = flags.DEFINE_enum('config', 'demo', [c.name for c in synthetic.BUILDER_CONFIGS],
                            'Config to build.')
_NUM_WORKERS = flags.DEFINE_integer('num_workers', None,
                                    'Rendering processes (default: one per CPU core).')
_KEEP = flags.DEFINE_string('keep', None, 'Build here and keep it (default: a temporary '
                            'directory, deleted afterwards).')


def _cpu_seconds():
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _render_seconds_per_frame(config, frames=24):
  start = time.perf_counter()
  synthetic_scene.render_sequence((0, 0), config.height, config.width, frames)
  return (time.perf_counter() - start) / frames


def main(argv):
  del argv
  config = {c.name: c for c in synthetic.BUILDER_CONFIGS}[_CONFIG.value]
  data_dir = _KEEP.value or tempfile.mkdtemp(prefix='synthetic_build_benchmark_')
  try:
    reused = synthetic.make_builder(data_dir, config.name).is_prepared()
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    builder = synthetic.ensure_synthetic_dataset(data_dir, config.name, _NUM_WORKERS.value)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    triplets = sum(split.num_examples for split in builder.info.splits.values())
    sequences = config.train_sequences + config.test_sequences
    size = sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(os.fspath(builder.data_dir)) for name in names)
    result = {
        'config': config.name,
        'reused_existing_data': reused,
        'image_size': [config.height, config.width],
        'seconds': round(seconds, 2),
        'triplets': triplets,
        'triplets_per_second': round(triplets / seconds, 1),
        'sequences': sequences,
        'frames_rendered': sequences * config.frames_per_sequence,
        'cpu_seconds': round(cpu, 1),
        'cpu_count': os.cpu_count(),
        'load_average_before': round(load_before, 2),
        'bytes_on_disk': size,
        'render_seconds_per_frame_one_process': round(_render_seconds_per_frame(config), 4),
    }
    print(json.dumps(result))
  finally:
    if not _KEEP.value:
      shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
