r"""Converts a raw dataset into frame triplets (TFDS), in process or with Apache Beam.

A thin absl layer over `builder.download_and_prepare`:

  python -m data_prep.convert --dataset=kitti --manual_dir=/data/kitti_raw \
      --data_dir=/data/tfds [--config=eigen] [--config_overrides='{"height": 192}'] \
      [--skip_bad]

Datasets: kitti, cityscapes, waymo, video, struct2depth (their modules in
data_prep/ document the raw layout and what each split holds). The prepared
data lands in <data_dir>/<builder>/<config>/<version>/ and is read with
`tfds.builder_from_directory(...)` or `tfds.load('<builder>/<config>',
data_dir=...)` after importing the data_prep module. A rerun with the same
arguments reuses what TFDS already prepared (`--overwrite` rebuilds). Config
overrides change a config's fields; the config is then stored under a name
with a hash of the overrides, so it never mixes with data made otherwise.

Bad raw files (missing calibration, unreadable image, truncated segment,
undecodable video) stop the conversion with an error naming the file, unless
--skip_bad: then they are skipped, counted, and the summary printed at the end
(sequences, triplets written, skipped and why) says how many.

With Apache Beam (each sequence — a drive/camera, a snippet run, a segment, a
video, a folder — is one work item):

  # Local, several processes:
  python -m data_prep.convert --dataset=kitti --manual_dir=RAW --data_dir=OUT \
      --beam_runner=DirectRunner \
      --beam_options="--direct_num_workers=8 --direct_running_mode=multi_processing"
  # Google Cloud Dataflow (raw data and output on GCS; workers install this package):
  python -m data_prep.convert --dataset=waymo --manual_dir=gs://BUCKET/waymo \
      --data_dir=gs://BUCKET/tfds --beam_runner=DataflowRunner \
      --beam_options="--project=PROJECT --region=us-central1 \
        --temp_location=gs://BUCKET/tmp --setup_file=./setup.py --max_num_workers=64"
  # Apache Flink / Spark through Beam's portable runners:
  python -m data_prep.convert --dataset=cityscapes ... --beam_runner=FlinkRunner \
      --beam_options="--flink_master=HOST:8081 --environment_type=LOOPBACK"
  python -m data_prep.convert --dataset=cityscapes ... --beam_runner=SparkRunner \
      --beam_options="--spark_master_url=spark://HOST:7077 --environment_type=LOOPBACK"

The result (prepared directory, examples per split, and the summary) is the only
thing printed on stdout, as JSON; progress goes to stderr.
"""

import contextlib
import importlib
import json
import os
import shlex
import sys

from absl import app
from absl import flags
from absl import logging

BUILDERS = {
    'kitti': ('data_prep.kitti', 'KittiTriplets'),
    'cityscapes': ('data_prep.cityscapes', 'CityscapesTriplets'),
    'waymo': ('data_prep.waymo', 'WaymoTriplets'),
    'video': ('data_prep.video', 'VideoTriplets'),
    'struct2depth': ('data_prep.struct2depth', 'Struct2DepthTriplets'),
}


def builder_class(dataset):
  """The TripletBuilder class of a dataset name (see BUILDERS)."""
  if dataset not in BUILDERS:
    raise ValueError('dataset must be one of %s, got %r' % (', '.join(sorted(BUILDERS)),
                                                            dataset))
  module, name = BUILDERS[dataset]
  return getattr(importlib.import_module(module), name)


def resolve_dataset_name(name):
  """A `--dataset` value -> the registered TFDS name (`builder[/config]`).

  Accepts our short names ('kitti', 'kitti/eigen'), the builders' own names
  ('kitti_triplets/...'), 'synthetic_dynamic_scenes/...' and anything else TFDS
  knows; importing the module registers the builder class with TFDS.
  """
  if not name:
    return name
  head, sep, rest = name.partition('/')
  if head in BUILDERS:
    return builder_class(head).name + sep + rest
  for short in BUILDERS:
    cls_module, cls_name = BUILDERS[short]
    if head == short + '_triplets':
      getattr(importlib.import_module(cls_module), cls_name)
      return name
  if head == 'synthetic_dynamic_scenes':
    importlib.import_module('data_prep.synthetic')
  return name


def make_builder(dataset, data_dir, config=None, config_overrides=None, skip_bad=False):
  """A builder of `dataset` for config `config` (a name; default: the builder's default)."""
  # Imported here so that `--help` stays fast.
  from data_prep import common  # pylint: disable=g-import-not-at-top
  cls = builder_class(dataset)
  configs = {c.name: c for c in cls.BUILDER_CONFIGS}
  name = config or cls.DEFAULT_CONFIG_NAME
  if name not in configs:
    raise ValueError('%s: config must be one of %s, got %r' % (dataset, ', '.join(configs),
                                                               name))
  builder_config = common.config_with_overrides(configs[name], dict(config_overrides or {}))
  return cls(data_dir=data_dir, config=builder_config, skip_bad=skip_bad)


def convert(dataset, manual_dir, data_dir, config=None, config_overrides=None, skip_bad=False,
            beam_runner=None, beam_options=None, overwrite=False):
  """Prepares the dataset and returns a JSON-able summary.

  Args:
    dataset: one of BUILDERS.
    manual_dir: the raw data (layout in the builder's MANUAL_DOWNLOAD_INSTRUCTIONS).
    data_dir: where TFDS writes the prepared dataset.
    config: a BuilderConfig name of the builder (None: its default).
    config_overrides: {field: value} replacing config fields.
    skip_bad: skip and count bad raw files instead of stopping at the first.
    beam_runner: a Beam runner name (e.g. 'DirectRunner'); with it or beam_options
      the conversion runs as a Beam pipeline.
    beam_options: Beam pipeline options: a string ('--a=1 --b=2'), a list of them, or a
      `PipelineOptions`.
    overwrite: rebuild even if the data is already prepared.

  Returns:
    {'dataset', 'builder', 'config', 'prepared_dir', 'reused', 'num_examples': {split: n},
     'summary': {split: {'sequences', 'triplets_written', 'skipped': {reason: n}}}}
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = make_builder(dataset, data_dir, config, config_overrides, skip_bad)
  if not os.path.isdir(manual_dir) and '://' not in str(manual_dir):
    raise ValueError('manual_dir %s: not a directory' % manual_dir)
  options = None
  if beam_options:
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
    if isinstance(beam_options, pipeline_options.PipelineOptions):
      options = beam_options
    else:
      args = shlex.split(beam_options) if isinstance(beam_options, str) else list(beam_options)
      options = pipeline_options.PipelineOptions(args)
  reused = builder.is_prepared() and not overwrite
  download_config = tfds.download.DownloadConfig(
      manual_dir=manual_dir,
      beam_runner=beam_runner or None,
      beam_options=options,
      download_mode=(tfds.download.GenerateMode.FORCE_REDOWNLOAD if overwrite else
                     tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  builder.download_and_prepare(download_config=download_config)
  return {
      'dataset': dataset,
      'builder': builder.name,
      'config': builder.builder_config.name,
      'prepared_dir': os.fspath(builder.data_dir),
      'reused': reused,
      'num_examples': {name: int(split.num_examples)
                       for name, split in sorted(builder.info.splits.items())},
      'summary': builder.summary,
  }


FLAGS = flags.FLAGS


def define_flags():
  """Defines the CLI flags (only when run as a program: the trainer imports this module)."""
  flags.DEFINE_enum('dataset', None, sorted(BUILDERS), 'Which raw dataset to convert.')
  flags.DEFINE_string('manual_dir', None, 'The raw data (see the builder module for the layout).')
  flags.DEFINE_string('data_dir', None, 'Where TFDS writes the prepared dataset.')
  flags.DEFINE_string('config', None, "Builder config name (default: the builder's default).")
  flags.DEFINE_string('config_overrides', None,
                      'JSON object of config fields to change, e.g. \'{"height": 192}\'.')
  flags.DEFINE_bool('skip_bad', False, 'Skip and count bad raw files instead of failing.')
  flags.DEFINE_string('beam_runner', None, 'Beam runner (DirectRunner, DataflowRunner, ...); '
                      'with it or --beam_options the conversion runs as a Beam pipeline.')
  flags.DEFINE_string('beam_options', None, 'Beam pipeline options, e.g. '
                      '"--direct_num_workers=2 --direct_running_mode=multi_processing".')
  flags.DEFINE_bool('overwrite', False, 'Rebuild even if the dataset is already prepared.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  for name in ('dataset', 'manual_dir', 'data_dir'):
    if not getattr(FLAGS, name):
      raise app.UsageError('--%s is required' % name)
  overrides = None
  if FLAGS.config_overrides:
    try:
      overrides = json.loads(FLAGS.config_overrides)
    except json.JSONDecodeError as e:
      raise app.UsageError('--config_overrides is not JSON: %s' % e)
    if not isinstance(overrides, dict):
      raise app.UsageError('--config_overrides must be a JSON object')
  with contextlib.redirect_stdout(sys.stderr):  # TFDS prints progress; stdout is the JSON
    result = convert(FLAGS.dataset, FLAGS.manual_dir, FLAGS.data_dir, config=FLAGS.config,
                     config_overrides=overrides, skip_bad=FLAGS.skip_bad,
                     beam_runner=FLAGS.beam_runner, beam_options=FLAGS.beam_options,
                     overwrite=FLAGS.overwrite)
  if result['reused']:
    logging.info('%s was already prepared in %s; nothing converted (use --overwrite).',
                 result['builder'], result['prepared_dir'])
  sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + '\n')


if __name__ == '__main__':
  define_flags()
  app.run(main)
