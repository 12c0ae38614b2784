"""The built-in synthetic dynamic-scene dataset: a TFDS builder, `ensure_synthetic_dataset`, a CLI.

Street scenes rendered by `data_prep.synthetic_scene` (exact ray casting, no
download), cut into frame triplets with every optional key of the triplet spec:
exact depth, ego-motion, per-pixel object translation and instance masks. It
lets the method run with nothing downloaded (`flags/demo.flags` trains on the
`demo` config) and the evaluator measure depth against exact ground truth.

Build from the command line:

  python -m data_prep.synthetic --data_dir=/tmp/tfds --config=demo

or from Python (builds once, then reuses the prepared files):

  builder = ensure_synthetic_dataset(data_dir, 'demo')
  ds = builder.as_dataset(split='train')

Each sequence is an independent unit: `sequence_examples(config, split, index)`
is a pure function of its arguments returning that sequence's (key, example)
pairs, so the generation can run as a Beam pipeline
(`beam.Create(range(n)) | beam.FlatMap(...)`); in-process, sequences are
rendered in a pool of worker processes.
"""

import collections
import dataclasses
import json
import multiprocessing
import os
import time

from absl import app
from absl import flags
from absl import logging
import cv2
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_prep import synthetic_scene
from depth_motion.data import features as features_lib

NAME = 'synthetic_dynamic_scenes'

DESCRIPTION = """\
Synthetic dynamic street scenes for self-supervised depth and motion learning.

Each example is a triplet of consecutive frames (t-1, t, t+1) of a procedurally
generated video, rendered by exact ray casting (one ray per pixel centre):
a straight street with textured asphalt, lane marks, parking strips, raised
sidewalks, lamp posts and buildings with window grids on both sides; parked
cars and vans; traffic moving by pure translation in both directions; and, in
every sequence, a car driving just ahead exactly with the camera (it keeps its
place in the image, the case that looks like infinite depth without object
motion). The camera drives forward at 0.5-1 m per frame (a car at 10 Hz) with
a slow yaw wobble and slight pitch and roll.

Ground truth, exact by construction:
* `depth`: z-depth along the optical axis in metres. The sky is at infinity and
  has depth 0 (= unknown, as in the triplet spec); every other pixel is within
  about 250 m (a far building row closes the street).
* `egomotion`: the rigid transform from each frame's camera to the next's
  (P2 = R P1 + t; camera x right, y down, z forward).
* `object_translation`: each pixel's extra translation dT between the two
  frames of a pair (next frame's camera coordinates), zero on static surfaces.
* `masks`: vehicle instance ids, 0 = background, the same id for a vehicle in
  every frame of its sequence (parked vehicles included).
* `intrinsics`: pinhole (fx, fy, x0, y0), square pixels, fx = 0.58 W (KITTI's
  field of view), principal point at the image centre; `intrinsics_known` is
  true.

Surfaces are Lambertian under a fixed sun and nothing rotates, so a surface
point keeps its colour from frame to frame; texture detail finer than a pixel
is filtered out analytically (no supersampling, so the depth of a pixel is the
depth of the surface whose colour it shows).

Splits: `train` and `test` come from disjoint sequence seeds
(split seed, sequence index); triplets are sliding windows over each sequence
(N frames give N - 2 triplets). The data depend only on the config; a
sequence's scene does not depend on the image size.

Configs: `demo` (64x192, for the 15-minute CPU demo), `small` (128x416, the
paper's resolution), `tiny` (32x64, for tests).
"""

CITATION = """\
@inproceedings{li2020unsupervised,
  title={Unsupervised Monocular Depth Learning in Dynamic Scenes},
  author={Li, Hanhan and Gordon, Ariel and Zhao, Hang and Casser, Vincent and Angelova, Anelia},
  booktitle={Conference on Robot Learning (CoRL)},
  year={2020}
}
"""


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
  """A size of the synthetic dataset.

  Attributes:
    height, width: image size; multiples of 32 (the networks need it).
    frames_per_sequence: frames rendered per sequence (>= 3).
    train_sequences, test_sequences: sequences per split (>= 1).
    train_seed, test_seed: the splits' seeds (must differ); sequence i of a
      split has the seed (split seed, i).
  """
  height: int = 64
  width: int = 192
  frames_per_sequence: int = 24
  train_sequences: int = 100
  test_sequences: int = 10
  train_seed: int = 1
  test_seed: int = 2

  def __post_init__(self):
    where = 'SyntheticConfig %r' % (self.name,)
    for field in ('height', 'width'):
      value = getattr(self, field)
      if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0
          or value % 32):
        raise ValueError('%s: %s must be a positive multiple of 32 (the networks downsample '
                         'by 32), got %r' % (where, field, value))
    for field, minimum in (('frames_per_sequence', 3), ('train_sequences', 1),
                           ('test_sequences', 1)):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError('%s: %s must be an integer >= %d, got %r' %
                         (where, field, minimum, value))
    if self.train_seed == self.test_seed:
      raise ValueError('%s: train_seed and test_seed must differ (disjoint splits), both are %r'
                       % (where, self.train_seed))

  @property
  def triplets_per_sequence(self):
    return self.frames_per_sequence - 2

  def num_sequences(self, split):
    return {'train': self.train_sequences, 'test': self.test_sequences}[split]

  def split_seed(self, split):
    return {'train': self.train_seed, 'test': self.test_seed}[split]


BUILDER_CONFIGS = [
    SyntheticConfig(
        name='demo', description='64x192, 100 + 10 sequences of 24 frames: 2,200 train and '
        '220 test triplets (about 400 MB). Builds in 1-2 minutes on 2 CPU cores.',
        height=64, width=192, frames_per_sequence=24, train_sequences=100, test_sequences=10),
    SyntheticConfig(
        name='small', description='128x416 (the paper\'s resolution), 200 + 20 sequences of 24 '
        'frames: 4,400 train and 440 test triplets (about 3.5 GB).',
        height=128, width=416, frames_per_sequence=24, train_sequences=200, test_sequences=20),
    SyntheticConfig(
        name='tiny', description='32x64, 2 + 1 sequences of 5 frames: 6 train and 3 test '
        'triplets, for tests.',
        height=32, width=64, frames_per_sequence=5, train_sequences=2, test_sequences=1),
]


def render_split_sequence(config, split, index):
  """Renders sequence `index` of `split` (a dict as from `synthetic_scene.render_sequence`)."""
  return synthetic_scene.render_sequence(
      synthetic_scene.sequence_seed(config.split_seed(split), index), config.height,
      config.width, config.frames_per_sequence)


_PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 6)  # zlib's default level, as TFDS's encoder


def encode_pngs(sequence):
  """PNG bytes of every frame's image and instance mask: [(image, mask)] per frame.

  Encoded once per frame (each frame is in up to three triplets) and, when
  building, in the worker processes; TFDS stores PNG bytes as they are.
  """
  out = []
  for image, mask in zip(sequence['images'], sequence['masks']):
    ok_image, image_png = cv2.imencode('.png', image[..., ::-1], _PNG_PARAMS)  # OpenCV: BGR.
    ok_mask, mask_png = cv2.imencode('.png', mask, _PNG_PARAMS)
    if not (ok_image and ok_mask):
      raise ValueError('PNG encoding of a rendered frame failed')
    out.append((image_png.tobytes(), mask_png.tobytes()))
  return out


def triplets_from_sequence(sequence, split, index, pngs=None):
  """The (key, example) pairs of one rendered sequence: sliding windows of three frames.

  Every example is checked with `validate_triplet`. With `pngs` (from
  `encode_pngs(sequence)`), images and masks are given to TFDS as PNG bytes.
  """
  video_id = '%s_%s_%05d' % (NAME, split, index)
  num_frames = sequence['images'].shape[0]
  height, width = sequence['images'].shape[1:3]
  out = []
  for centre in range(1, num_frames - 1):
    frames = slice(centre - 1, centre + 2)
    pairs = slice(centre - 1, centre + 1)
    example = {
        'images': sequence['images'][frames],
        'height': np.int32(height),
        'width': np.int32(width),
        'intrinsics': np.asarray(sequence['intrinsics'], np.float32),
        'intrinsics_known': True,
        'video_id': video_id,
        'source': NAME,
        'frame_ids': np.array(['%04d' % k for k in range(centre - 1, centre + 2)], dtype=object),
        'masks': sequence['masks'][frames][..., None],
        'depth': sequence['depth'][frames],
        'egomotion': sequence['egomotion'][pairs],
        'object_translation': sequence['object_translation'][pairs],
    }
    features_lib.validate_triplet(example, where='%s sequence %d frame %d' % (split, index,
                                                                             centre))
    if pngs is not None:
      example['images'] = [pngs[k][0] for k in range(centre - 1, centre + 2)]
      example['masks'] = [pngs[k][1] for k in range(centre - 1, centre + 2)]
    out.append(('%s_%05d_%04d' % (split, index, centre), example))
  return out


def sequence_examples(config, split, index):
  """All (key, example) pairs of sequence `index` of `split`: a pure function of its arguments."""
  return triplets_from_sequence(render_split_sequence(config, split, index), split, index)


def _render_job(args):
  """Worker-process entry point: (split_seed, index, height, width, frames) -> (sequence, PNGs)."""
  sequence = synthetic_scene.render_sequence_job(args)
  return sequence, encode_pngs(sequence)


def _ordered_results(pool, function, jobs, max_pending):
  """`pool.imap(function, jobs)` with at most `max_pending` results rendered ahead.

  (imap would render everything ahead of a slower consumer and hold it in memory.)
  """
  pending = collections.deque()
  for job in jobs:
    pending.append(pool.apply_async(function, (job,)))
    if len(pending) >= max_pending:
      yield pending.popleft().get()
  while pending:
    yield pending.popleft().get()


# Frames x pixels below which rendering in-process beats starting worker processes.
_MIN_PIXELS_FOR_POOL = 2_000_000


def _default_num_workers():
  return os.cpu_count() or 1


# Run as a script (or re-imported by its worker processes as `__mp_main__`), this module is a
# second copy of `data_prep.synthetic`: only the latter registers the dataset name.
class SyntheticDynamicScenes(tfds.core.GeneratorBasedBuilder,
                             skip_registration=__name__ in ('__main__', '__mp_main__')):
  """Synthetic street scenes with exact depth, ego-motion, object motion and instance masks."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release: configs demo (64x192), small (128x416), tiny (32x64).',
  }
  BUILDER_CONFIGS = BUILDER_CONFIGS
  DEFAULT_CONFIG_NAME = 'demo'
  # TFDS 4.9.10 derives this through `importlib_resources`, which it only
  # installs for Python < 3.9 (ModuleNotFoundError otherwise); there is
  # nothing to find next to this file anyway (no checksums, no README).
  code_path = epath.Path(__file__)

  def __init__(self, *, num_workers=None, **kwargs):
    """`num_workers`: rendering processes (default: one per CPU core; 1 renders in-process)."""
    super().__init__(**kwargs)
    self._num_workers = _default_num_workers() if num_workers is None else int(num_workers)

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=DESCRIPTION,
        features=features_lib.triplet_features(
            with_masks=True, with_depth=True, with_egomotion=True,
            with_object_translation=True),
        citation=CITATION,
        metadata=tfds.core.MetadataDict(
            frames_per_sequence=self.builder_config.frames_per_sequence,
            sky_depth=0.0))

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in ('train', 'test')}

  def _generate_examples(self, split):
    config = self.builder_config
    count = config.num_sequences(split)
    jobs = [(config.split_seed(split), index, config.height, config.width,
             config.frames_per_sequence) for index in range(count)]
    start = time.time()
    last_report = start
    triplets = 0
    workers = min(self._num_workers, count)
    if count * config.frames_per_sequence * config.height * config.width < _MIN_PIXELS_FOR_POOL:
      workers = 1  # Starting processes would take longer than rendering.
    pool = None
    if workers > 1:
      # spawn: the workers need only NumPy, and forking a process that runs
      # TensorFlow threads is unsafe.
      pool = multiprocessing.get_context('spawn').Pool(workers)
      sequences = _ordered_results(pool, _render_job, jobs, max_pending=2 * workers)
    else:
      sequences = map(_render_job, jobs)
    try:
      for index, (sequence, pngs) in enumerate(sequences):
        for key, example in triplets_from_sequence(sequence, split, index, pngs):
          triplets += 1
          yield key, example
        now = time.time()
        if now - last_report >= 5.0 or index + 1 == count:
          last_report = now
          logging.info('%s/%s %s: %d/%d sequences, %d triplets, %.1f s', NAME, config.name,
                       split, index + 1, count, triplets, now - start)
    finally:
      if pool is not None:
        pool.terminate()
        pool.join()


def make_builder(data_dir=None, config='demo', num_workers=None):
  """The builder for `config` (a name or a `SyntheticConfig`), without preparing it."""
  if isinstance(config, str):
    names = [c.name for c in BUILDER_CONFIGS]
    if config not in names:
      raise ValueError('config must be one of %s or a SyntheticConfig, got %r' %
                       (', '.join(names), config))
  elif not isinstance(config, SyntheticConfig):
    raise ValueError('config must be a config name or a SyntheticConfig, got %r' % (config,))
  return SyntheticDynamicScenes(data_dir=data_dir, config=config, num_workers=num_workers)


def ensure_synthetic_dataset(data_dir=None, config='demo', num_workers=None):
  """Builds the dataset into the TFDS data dir unless it is already there; returns the builder.

  TFDS writes into a temporary directory and renames it when complete, so an
  interrupted build leaves nothing that a later call would mistake for data;
  a prepared dataset is reused as it is.

  Args:
    data_dir: the TFDS data dir (default: TFDS's, `$TFDS_DATA_DIR` or
      ~/tensorflow_datasets).
    config: 'demo', 'small', 'tiny' or a `SyntheticConfig`.
    num_workers: rendering processes (default: one per CPU core).

  Returns:
    The prepared `SyntheticDynamicScenes` builder (`builder.as_dataset(split=...)`).
  """
  builder = make_builder(data_dir, config, num_workers)
  if builder.is_prepared():
    logging.info('Reusing %s in %s', builder.info.full_name, builder.data_dir)
  else:
    builder.download_and_prepare()
  return builder


def _directory_size(path):
  total = 0
  for root, _, files in os.walk(path):
    total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
  return total


def _define_flags():
  flags.DEFINE_string('data_dir', None, 'TFDS data dir (default: $TFDS_DATA_DIR or '
                      '~/tensorflow_datasets).')
  flags.DEFINE_enum('config', 'demo', [c.name for c in BUILDER_CONFIGS], 'Dataset config.')
  flags.DEFINE_integer('num_workers', None, 'Rendering processes (default: one per CPU core).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  # Use the registered module's builder, not this __main__ copy of it.
  from data_prep import synthetic  # pylint: disable=g-import-not-at-top,import-self
  logging.set_verbosity(logging.INFO)
  start = time.time()
  builder = synthetic.ensure_synthetic_dataset(flags.FLAGS.data_dir, flags.FLAGS.config,
                                               flags.FLAGS.num_workers)
  info = builder.info
  summary = {
      'dataset': info.full_name,
      'data_dir': os.fspath(builder.data_dir),
      'splits': {name: split.num_examples for name, split in info.splits.items()},
      'image_size': [builder.builder_config.height, builder.builder_config.width],
      'bytes_on_disk': _directory_size(os.fspath(builder.data_dir)),
      'seconds': round(time.time() - start, 1),
  }
  print(json.dumps(summary, indent=1))


if __name__ == '__main__':
  _define_flags()
  app.run(main)
