"""Machinery shared by the real-data triplet builders (KITTI, Cityscapes, Waymo, videos, ...).

Every builder turns raw sequences (a KITTI drive and camera, a Cityscapes
snippet, a Waymo segment, a video) into examples of
`depth_motion.data.features.triplet_features`. This module holds what they
have in common:

* `TripletBuilder`, the `tfds.core.GeneratorBasedBuilder` base class. Its
  `_triplets(split, sequences, process)` is what a builder's
  `_generate_examples` returns: in-process a Python generator, or, when the
  dataset is prepared with a Beam runner or Beam options
  (`tfds.download.DownloadConfig(beam_runner=..., beam_options=...)`), the
  PTransform `beam.Create(sequences) | beam.FlatMap(process)`. Each sequence
  is an independent unit of work and both paths run the same per-sequence
  function, so they write the same examples (same keys, same values).
* `Tally`: progress and the end-of-split summary (sequences, triplets written,
  triplets or sequences skipped and why), kept in Python counters in-process and
  in Beam metrics under a runner. Bad input (missing calibration, unreadable
  image, truncated file) raises `BadInputError` naming the file, unless the
  builder was made with `skip_bad=True`, in which case it is logged and counted.
* `sliding_windows`: the triplets of a sequence of frames (stride 1, in order).
* A small file layer (`listdir`, `isfile`, `read_bytes`, `read_image`, ...):
  local paths through `os`, others (gs://...) through `tf.io.gfile`, so that
  Dataflow workers read the raw data straight from a bucket.
* Image and intrinsics helpers in NumPy/OpenCV. Intrinsics are
  (fx, fy, x0, y0) with integer pixel coordinates at pixel centres (the
  convention of `features.py`). Resizing an image by a factor s maps a
  coordinate x to (x + 0.5) * s - 0.5 — exactly what `cv2.resize` does when it
  samples — so `scale_intrinsics(..., convention='pixel_centre')` gives the
  intrinsics of the resized image. The struct2depth scripts (SPEC 1.2) used
  plain scaling, x0 * s, which is off by (s - 1) / 2 pixels (-0.33 px for KITTI
  at 416x128); `convention='reference'` reproduces it, and the KITTI builder
  uses it by default so its triplets match the reference's.
"""

import collections
import dataclasses
import inspect
import os
import time

from absl import logging
import cv2
from etils import epath
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from depth_motion.data import features as features_lib

SPLITS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'splits')

INTRINSICS_CONVENTIONS = ('pixel_centre', 'reference')

# Counter names used in Beam metrics and in the summary.
_SEQUENCES = 'sequences'
_TRIPLETS = 'triplets_written'
_SKIPPED_PREFIX = 'skipped: '


class BadInputError(ValueError):
  """A raw file that cannot be used; the message starts with the file's path."""

  def __init__(self, path, problem):
    # A problem passed on from a parser may name the path itself; name it once.
    problem = problem.replace('%s: ' % path, '')
    super().__init__('%s: %s' % (path, problem))
    self.path = str(path)
    self.problem = problem


# ----------------------------------------------------------------------------------------------
# Progress, skip-and-count and the summary.


class Tally:
  """Counts what one split's conversion did, and decides what bad input does.

  `bad(path, problem, reason)` raises `BadInputError` (naming the file) unless
  `skip_bad`, in which case it logs a warning and counts `reason` under
  'skipped'. `skip(reason)` counts a deliberate skip (e.g. a static frame) that
  is not an error. Under Beam every count also goes to a Beam metric in the
  namespace '<source>/<split>' so the runner's UI and `TripletBuilder.summary`
  see the totals over all workers.
  """

  def __init__(self, source, split, skip_bad=False, use_beam_metrics=False):
    self.source = source
    self.split = split
    self.skip_bad = skip_bad
    self.counts = collections.Counter()
    self._beam_metrics = use_beam_metrics
    self._started = time.time()

  @property
  def namespace(self):
    return '%s/%s' % (self.source, self.split)

  def _add(self, name, count):
    if count <= 0:
      return
    self.counts[name] += count
    if self._beam_metrics:
      import apache_beam as beam  # pylint: disable=g-import-not-at-top
      beam.metrics.Metrics.counter(self.namespace, name).inc(count)

  def bad(self, path, problem, reason, count=1):
    """Bad raw input: raises BadInputError, or (skip_bad) logs and counts `count` skips."""
    if not self.skip_bad:
      raise BadInputError(path, problem)
    logging.warning('%s: skipping (%s): %s: %s', self.namespace, reason, path, problem)
    self._add(_SKIPPED_PREFIX + reason, count)

  def skip(self, reason, count=1):
    """Counts a deliberate skip that is not an error (e.g. static frames)."""
    self._add(_SKIPPED_PREFIX + reason, count)

  def wrote(self, count=1):
    self._add(_TRIPLETS, count)

  def sequence_done(self, sequence_name, written, index=None, total=None):
    """Counts a finished sequence and logs progress (running totals when in process)."""
    self._add(_SEQUENCES, 1)
    if index is None:  # a Beam worker: this tally covers one sequence only
      logging.info('%s: sequence %s: %d triplets, %d skipped', self.namespace, sequence_name,
                   written, self.skipped_total())
    else:
      logging.info('%s: sequence %d/%d %s: %d triplets (so far %d written, %d skipped)',
                   self.namespace, index + 1, total, sequence_name, written,
                   self.counts[_TRIPLETS], self.skipped_total())

  def skipped_total(self):
    return sum(v for k, v in self.counts.items() if k.startswith(_SKIPPED_PREFIX))

  def summary(self):
    return summary_from_counts(self.counts, time.time() - self._started)


def summary_from_counts(counts, seconds=None):
  """The summary dict of one split from its counters."""
  skipped = {k[len(_SKIPPED_PREFIX):]: int(v) for k, v in sorted(counts.items())
             if k.startswith(_SKIPPED_PREFIX)}
  summary = {'sequences': int(counts.get(_SEQUENCES, 0)),
             'triplets_written': int(counts.get(_TRIPLETS, 0)),
             'skipped': skipped}
  if seconds is not None:
    summary['seconds'] = round(float(seconds), 3)
  return summary


def format_summary(source, summaries):
  """Human-readable lines of `TripletBuilder.summary`."""
  lines = []
  for split, s in sorted(summaries.items()):
    skipped = ', '.join('%d %s' % (n, why) for why, n in s['skipped'].items()) or 'none'
    lines.append('%s/%s: %d sequences, %d triplets written, skipped: %s' %
                 (source, split, s['sequences'], s['triplets_written'], skipped))
  return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------
# In-process or Beam.


def sliding_windows(items, size=features_lib.NUM_FRAMES, stride=1):
  """Consecutive windows of `size` items, in order: [0,1,2], [1,2,3], ..."""
  items = list(items)
  return [items[i:i + size] for i in range(0, len(items) - size + 1, stride)]


def load_windows(names, load):
  """(window, [load(name) for name in window]) for each sliding triplet; each name loaded once.

  A frame that failed to load (None) is not retried, so a bad file is reported once.
  """
  cache = {}
  for window in sliding_windows(names):
    for name in list(cache):
      if name not in window:
        del cache[name]
    for name in window:
      if name not in cache:
        cache[name] = load(name)
    yield window, [cache[name] for name in window]


def _sequence_examples(process, sequence, tally, name):
  """The validated (key, example) pairs of one sequence, counted; returns how many."""
  written = 0
  for key, example in process(sequence, tally):
    features_lib.validate_triplet(example, where='%s (%s)' % (name, key))
    yield key, example
    tally.wrote()
    written += 1
  return written


class _ProcessSequence:
  """The per-sequence unit of work under Beam (picklable: Beam ships it to workers)."""

  def __init__(self, process, source, split, skip_bad, name_fn):
    self._process = process
    self._source = source
    self._split = split
    self._skip_bad = skip_bad
    self._name_fn = name_fn

  def __call__(self, sequence):
    tally = Tally(self._source, self._split, self._skip_bad, use_beam_metrics=True)
    name = self._name_fn(sequence)
    written = yield from _sequence_examples(self._process, sequence, tally, name)
    tally.sequence_done(name, written)


def _sequence_name(sequence):
  return getattr(sequence, 'name', None) or str(sequence)


def generate_in_process(sequences, process, tally, name_fn=_sequence_name, on_done=None):
  """Runs `process(sequence, tally)` over the sequences one after another."""
  sequences = list(sequences)
  for index, sequence in enumerate(sequences):
    name = name_fn(sequence)
    written = yield from _sequence_examples(process, sequence, tally, name)
    tally.sequence_done(name, written, index, len(sequences))
  if on_done is not None:
    on_done(tally)
  if not tally.counts[_TRIPLETS]:
    # TFDS would fail with 'No examples were yielded'; say why instead.
    raise ValueError('%s: no triplets written from %d sequences; %s' % (
        tally.namespace, len(sequences), format_summary(tally.source,
                                                        {tally.split: tally.summary()})))


def generate_with_beam(sequences, process, source, split, skip_bad, name_fn=_sequence_name):
  """`beam.Create(sequences) | beam.FlatMap(process)`: one sequence per work item."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  return (beam.Create(list(sequences))
          | 'ProcessSequence' >> beam.FlatMap(
              _ProcessSequence(process, source, split, skip_bad, name_fn)))


class TripletBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the real-data builders: in-process or Beam, skip-and-count, summary.

  Subclasses set `SOURCE` (the value of the `source` feature) and return
  `self._triplets(split, sequences, process)` from `_generate_examples`, where
  `process(sequence, tally)` is a picklable callable (a module-level function
  or a `functools.partial` of one) yielding `(key, example)` pairs.

  Args of the constructor, besides TFDS's (`data_dir`, `config`, `version`):
    skip_bad: skip and count bad raw files instead of failing on the first one.
  """

  SOURCE = None

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    # TFDS 4.9.10 looks this up through `importlib_resources`, a package it
    # requires only on Python < 3.9, and fails without it; the module file is
    # all TFDS needs (to look for checksums/README beside it).
    return epath.Path(inspect.getfile(cls))

  def __init__(self, *, skip_bad=False, **kwargs):
    self._skip_bad = bool(skip_bad)
    self._use_beam = False
    self._summary = {}
    super().__init__(**kwargs)

  @property
  def summary(self):
    """{split: {'sequences', 'triplets_written', 'skipped': {reason: n}}} of the last run."""
    return dict(self._summary)

  def triplet_info(self, description, homepage, citation, **feature_kwargs):
    """The DatasetInfo for `triplet_features(**feature_kwargs)`."""
    return self.dataset_info_from_configs(
        description=description,
        features=features_lib.triplet_features(**feature_kwargs),
        homepage=homepage,
        citation=citation)

  def _download_and_prepare(self, dl_manager, download_config):
    self._use_beam = (download_config.beam_runner is not None or
                      download_config.beam_options is not None)
    self._summary = {}
    super()._download_and_prepare(dl_manager, download_config)
    if self._summary:
      logging.info('Conversion summary:\n%s', format_summary(self.SOURCE, self._summary))

  def _process_pipeline_result(self, pipeline_result):
    """Collects the Beam counters of every split into `summary`."""
    counts = collections.defaultdict(collections.Counter)
    try:
      results = pipeline_result.metrics().query()
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('could not read the Beam metrics: %s', e)
      return
    prefix = '%s/' % self.SOURCE
    for counter in results.get('counters', []):
      namespace = counter.key.metric.namespace
      if not namespace.startswith(prefix):
        continue
      value = counter.committed if counter.committed is not None else counter.attempted
      counts[namespace[len(prefix):]][counter.key.metric.name] += int(value or 0)
    for split, split_counts in counts.items():
      self._summary[split] = summary_from_counts(split_counts)

  def _triplets(self, split, sequences, process, name_fn=_sequence_name):
    """What `_generate_examples` returns: a generator, or a Beam PTransform under Beam."""
    sequences = list(sequences)
    logging.info('%s/%s: %d sequences to convert (%s)', self.SOURCE, split, len(sequences),
                 'Beam' if self._use_beam else 'in process')
    if self._use_beam:
      return generate_with_beam(sequences, process, self.SOURCE, split, self._skip_bad,
                                name_fn)
    tally = Tally(self.SOURCE, split, self._skip_bad)

    def on_done(t):
      self._summary[split] = t.summary()
    return generate_in_process(sequences, process, tally, name_fn, on_done)


def config_with_overrides(config, overrides):
  """A copy of a dataclass BuilderConfig with fields replaced; the name records the change.

  TFDS stores each config in its own folder, so a changed config gets a new name
  (the base name plus a short hash of the overrides) and never reuses data
  prepared with other values.
  """
  if not overrides:
    return config
  fields = {f.name for f in dataclasses.fields(config)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError('config overrides: unknown field(s) %s of %s; known: %s' %
                     (', '.join(unknown), type(config).__name__, ', '.join(sorted(fields))))
  for key, value in overrides.items():
    current = getattr(config, key)
    if isinstance(current, tuple) and isinstance(value, list):
      overrides[key] = tuple(value)
  import hashlib  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()
  return dataclasses.replace(config, name='%s_%s' % (config.name, digest[:8]), **overrides)


# ----------------------------------------------------------------------------------------------
# Reading files.


# Local paths go through `os`; others (gs://, s3://, ...) through `tf.io.gfile`, so that
# Dataflow workers read raw data straight from a bucket.


# What reading a missing or unreadable file raises, locally or remotely.
FILE_ERRORS = (OSError, tf.errors.OpError)


def is_remote(path):
  return '://' in os.fspath(path)


def _gfile():
  return tf.io.gfile


def isdir(path):
  return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def isfile(path):
  if is_remote(path):
    return _gfile().exists(path) and not _gfile().isdir(path)
  return os.path.isfile(path)


def listdir(path):
  """Sorted entry names of a directory ([] if it is not one)."""
  if not isdir(path):
    return []
  names = _gfile().listdir(path) if is_remote(path) else os.listdir(path)
  return sorted(name.rstrip('/') for name in names)


def walk(path):
  """os.walk (top-down, sorted) for local or remote directories."""
  entries = _gfile().walk(path) if is_remote(path) else os.walk(path)
  for dirpath, dirnames, filenames in entries:
    dirnames[:] = sorted(d.rstrip('/') for d in dirnames)
    yield dirpath, dirnames, sorted(filenames)


def read_bytes(path):
  if is_remote(path):
    with _gfile().GFile(path, 'rb') as f:
      return f.read()
  with open(path, 'rb') as f:
    return f.read()


def read_text(path):
  return read_bytes(path).decode('utf-8')


def local_copy(path):
  """A local path with the file's content (the path itself if local; else a temp copy).

  For readers that need a real file (OpenCV's VideoCapture); delete the copy
  with `release_local_copy(path, local)`.
  """
  if not is_remote(path):
    return path
  import tempfile  # pylint: disable=g-import-not-at-top
  handle, local = tempfile.mkstemp(suffix=os.path.splitext(path)[1])
  os.close(handle)
  _gfile().copy(path, local, overwrite=True)
  return local


def release_local_copy(path, local):
  if local != path and os.path.exists(local):
    os.remove(local)


def decode_file(path, flags):
  """cv2.imdecode of a file's bytes, or None if it is missing or cannot be decoded."""
  try:
    data = read_bytes(path)
  except FILE_ERRORS:
    return None
  if not data:
    return None
  return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def read_image(path, tally, reason='unreadable image'):
  """An RGB uint8 image [H, W, 3], or None (after `tally.bad`) if it cannot be decoded."""
  image = decode_file(path, cv2.IMREAD_COLOR)
  if image is None:
    problem = 'cannot decode the image' if isfile(path) else 'file not found'
    tally.bad(path, problem, reason)
    return None
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_id_map(path):
  """An instance-id map [H, W] (int64) from a PNG: grey, 16-bit, or RGB r*65536 + g*256 + b.

  Returns None if the file is missing or cannot be decoded.
  """
  image = decode_file(path, cv2.IMREAD_UNCHANGED)
  if image is None:
    return None
  if image.ndim == 2:
    return image.astype(np.int64)
  image = image[..., :3].astype(np.int64)  # BGR(A)
  if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1],
                                                                     image[..., 2]):
    return image[..., 0]
  return image[..., 2] * 65536 + image[..., 1] * 256 + image[..., 0]


def compact_ids(id_maps):
  """Renumbers the non-zero ids of aligned id maps to 1..K (the same ids in all maps).

  The masks feature is uint16; colour-coded ids (up to 2^24) are renumbered in
  increasing order so they fit while staying aligned across the triplet.
  """
  stacked = np.stack(id_maps)
  ids = np.unique(stacked)
  ids = ids[ids != 0]
  if len(ids) > np.iinfo(np.uint16).max:
    raise ValueError('more than 65535 instance ids in one triplet (%d)' % len(ids))
  out = np.zeros(stacked.shape, np.uint16)
  for new_id, old_id in enumerate(ids, start=1):
    out[stacked == old_id] = new_id
  return out


# ----------------------------------------------------------------------------------------------
# Images and intrinsics.


def intrinsics_vector(fx, fy, x0, y0):
  return np.array([fx, fy, x0, y0], np.float64)


def scale_intrinsics(intrinsics, scale_x, scale_y, convention='pixel_centre'):
  """Intrinsics (fx, fy, x0, y0) of an image resized by (scale_x, scale_y).

  'pixel_centre': x -> (x + 0.5) * s - 0.5, exact for `cv2.resize`.
  'reference': plain scaling x0 * s, as the struct2depth scripts did (SPEC 1.2).
  """
  if convention not in INTRINSICS_CONVENTIONS:
    raise ValueError('intrinsics convention must be one of %s, got %r' %
                     (INTRINSICS_CONVENTIONS, convention))
  fx, fy, x0, y0 = np.asarray(intrinsics, np.float64)
  if convention == 'pixel_centre':
    return intrinsics_vector(fx * scale_x, fy * scale_y,
                             (x0 + 0.5) * scale_x - 0.5, (y0 + 0.5) * scale_y - 0.5)
  return intrinsics_vector(fx * scale_x, fy * scale_y, x0 * scale_x, y0 * scale_y)


def crop_intrinsics(intrinsics, left, top):
  """Intrinsics after cropping `left` columns and `top` rows off the image (exact)."""
  fx, fy, x0, y0 = np.asarray(intrinsics, np.float64)
  return intrinsics_vector(fx, fy, x0 - left, y0 - top)


def scale_points(x, y, scale_x, scale_y, convention='pixel_centre'):
  """Pixel coordinates in an image resized by (scale_x, scale_y) (see scale_intrinsics)."""
  if convention == 'pixel_centre':
    return (x + 0.5) * scale_x - 0.5, (y + 0.5) * scale_y - 0.5
  return x * scale_x, y * scale_y


def resize_image(image, height, width):
  """Bilinear resize (OpenCV's default, as the struct2depth scripts)."""
  if image.shape[0] == height and image.shape[1] == width:
    return image
  return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_ids(id_map, height, width):
  """Nearest-neighbour resize of an id map (ids must not be blended)."""
  if id_map.shape[0] == height and id_map.shape[1] == width:
    return id_map
  return cv2.resize(id_map.astype(np.float32), (width, height),
                    interpolation=cv2.INTER_NEAREST).astype(id_map.dtype)


@dataclasses.dataclass(frozen=True)
class ResizeCrop:
  """Resize (src -> resized) then crop a window (top, left, height, width) of the result."""
  src_height: int
  src_width: int
  resized_height: int
  resized_width: int
  top: int
  left: int
  height: int
  width: int

  @property
  def scale_x(self):
    return self.resized_width / self.src_width

  @property
  def scale_y(self):
    return self.resized_height / self.src_height

  def image(self, image, ids=False):
    if image.shape[:2] != (self.src_height, self.src_width):
      raise ValueError('image of shape %s where %dx%d was expected' %
                       (image.shape, self.src_height, self.src_width))
    resize = resize_ids if ids else resize_image
    resized = resize(image, self.resized_height, self.resized_width)
    return resized[self.top:self.top + self.height, self.left:self.left + self.width]

  def intrinsics(self, intrinsics, convention='pixel_centre'):
    scaled = scale_intrinsics(intrinsics, self.scale_x, self.scale_y, convention)
    return crop_intrinsics(scaled, self.left, self.top)

  def points(self, x, y, convention='pixel_centre'):
    """Source pixel coordinates -> output pixel coordinates (may fall outside)."""
    x, y = scale_points(np.asarray(x, np.float64), np.asarray(y, np.float64), self.scale_x,
                        self.scale_y, convention)
    return x - self.left, y - self.top


def resize_and_centre_crop(src_height, src_width, height, width):
  """The smallest resize that covers height x width (aspect kept), then a centred crop."""
  if min(src_height, src_width, height, width) <= 0:
    raise ValueError('sizes must be positive, got %dx%d -> %dx%d' %
                     (src_height, src_width, height, width))
  scale = max(height / src_height, width / src_width)
  resized_h = max(height, int(round(src_height * scale)))
  resized_w = max(width, int(round(src_width * scale)))
  return ResizeCrop(src_height, src_width, resized_h, resized_w,
                    (resized_h - height) // 2, (resized_w - width) // 2, height, width)


def plain_resize(src_height, src_width, height, width):
  """Resize to height x width (aspect not kept), no crop."""
  return ResizeCrop(src_height, src_width, height, width, 0, 0, height, width)


def splat_min_depth(x, y, depth, height, width):
  """A sparse depth map [height, width]: points rounded to the nearest pixel, the nearest wins.

  x, y: pixel coordinates (pixel centres at integers); depth: their depths.
  Points outside the image or with depth <= 0 are dropped; empty pixels are 0.
  """
  col = np.round(np.asarray(x, np.float64))
  row = np.round(np.asarray(y, np.float64))
  depth = np.asarray(depth, np.float64)
  keep = ((col >= 0) & (row >= 0) & (col < width) & (row < height) & (depth > 0) &
          np.isfinite(depth))
  out = np.full((height, width), np.inf)
  np.minimum.at(out, (row[keep].astype(np.int64), col[keep].astype(np.int64)), depth[keep])
  out[np.isinf(out)] = 0.0
  return out.astype(np.float32)


def make_example(images, intrinsics, video_id, source, frame_ids, intrinsics_known=True,
                 masks=None, depth=None, egomotion=None):
  """One triplet example dict (NumPy values) in the layout of `triplet_features`."""
  images = np.stack([np.ascontiguousarray(im, np.uint8) for im in images])
  example = {
      'images': list(images),
      'height': np.int32(images.shape[1]),
      'width': np.int32(images.shape[2]),
      'intrinsics': np.asarray(intrinsics, np.float32),
      'intrinsics_known': bool(intrinsics_known),
      'video_id': str(video_id),
      'source': str(source),
      'frame_ids': [str(f) for f in frame_ids],
  }
  if masks is not None:
    masks = np.asarray(masks, np.uint16)
    if masks.ndim == 3:
      masks = masks[..., None]
    example['masks'] = list(masks)
  if depth is not None:
    example['depth'] = np.asarray(depth, np.float32)
  if egomotion is not None:
    example['egomotion'] = np.asarray(egomotion, np.float32)
  return example


def list_split_file(name_or_path):
  """Lines of a split list: a path, or a file name inside data_prep/splits/."""
  path = name_or_path
  if not is_remote(path) and not os.path.isabs(path) and not os.path.exists(path):
    path = os.path.join(SPLITS_DIR, name_or_path)
  if not isfile(path):
    raise BadInputError(path, 'split list not found')
  return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def read_examples(builder, split):
  """All examples of a prepared split as NumPy dicts, sorted by (video_id, frame_ids).

  For tests, benchmarks and quick looks; a training pipeline should use
  `builder.as_dataset` instead.
  """
  examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
  return sorted(examples, key=lambda e: (e['video_id'], tuple(e['frame_ids'])))
