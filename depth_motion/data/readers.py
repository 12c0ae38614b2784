"""Reading frame triplets from TFDS builders, and turning them into the model's frame pairs.

Two stages, shared by every source (TFDS builders here, struct2depth folders in
`struct2depth.py`):

1. A source yields *clips*: N consecutive frames of one video (N = 3 for a
   whole triplet, 2 for a single pair), in this common intermediate form:

     rgb                uint8 [N, H, W, 3]
     intrinsics         float32 [4] = (fx, fy, x0, y0) at this size (same for all frames)
     intrinsics_known   bool []
     video_id           string []
     mask               int32 [N, H, W, 1]     optional, instance ids, 0 = background
     depth              float32 [N, H, W]       optional, 0 = unknown
     egomotion          float32 [N-1, 4, 4]     optional, frame i -> i+1 (features.py)
     object_translation float32 [N-1, H, W, 3]  optional, frame i -> i+1 (features.py)
     video_index        int32 []                added by the pipeline for per-video intrinsics

2. `to_pairs(clip, use_both_pairs)` makes the model's per-example features from
   it, every value a 2-tuple (index 0 = the earlier frame a, index 1 = the
   later frame b of the pair (a, b)):

     rgb                float32 [H, W, 3] in [0, 1]
     intrinsics         float32 [6] = (W, H, fx, fy, x0, y0) (augmentation turns
                        them into 'intrinsics_mat' and 'intrinsics_mat_inv')
     intrinsics_known   bool []
     video_index        int32 []                 if the clip has it
     mask               int32 [H, W, 1]          if the clip has it
     depth              float32 [H, W, 1]        ground truth, 0 = unknown
     egomotion_mat      float32 [4, 4]: (T_ab, T_ba). The motion network sees
                        the pair in the order (a || b) for index 0 and (b || a)
                        for index 1, and predicts the transform taking a point
                        from the first frame's camera coordinates to the
                        second's; T_ab is that for (a || b) (P_b = R P_a + t) and
                        T_ba = T_ab^-1 that for (b || a).
     object_translation float32 [H, W, 3]: index 0 is the residual translation
                        dT of (a || b) at frame a's pixels (P_b = R P_a + t + dT).
                        Index 1 is the residual of the reverse motion for the
                        same 3D points, -R^T dT, ALSO on frame a's pixel grid:
                        resampling it to where the points appear in frame b
                        would need depth and occlusion reasoning. It is exact
                        for per-object values (a rigidly translating object has
                        one value in both frames) but not pixel-aligned with b.

The first pair (frames t-1, t) is the reference's choice; `use_both_pairs` adds
(t, t+1) (SPEC 9.11).

Reading TFDS data goes straight to the shards named by the split's file
instructions (what `builder.as_dataset` does internally), so that the training
pipeline controls file shuffling, interleaving, per-worker sharding, shuffling
of still-encoded examples and which frames get decoded.
"""

import concurrent.futures
import copy
import logging
import os
import struct

import tensorflow as tf
import tensorflow_datasets as tfds

from depth_motion.data import features as features_lib

_LOG = logging.getLogger(__name__)

OPTIONAL_CLIP_KEYS = ('mask', 'depth', 'egomotion', 'object_translation')
# Clip key -> the TFDS feature it comes from.
_TFDS_KEY = {'mask': 'masks', 'depth': 'depth', 'egomotion': 'egomotion',
             'object_translation': 'object_translation'}
GROUND_TRUTH_PAIR_KEYS = ('depth', 'egomotion_mat', 'object_translation')
# Pair key -> clip key it needs.
PAIR_TO_CLIP_KEY = {'mask': 'mask', 'depth': 'depth', 'egomotion_mat': 'egomotion',
                    'object_translation': 'object_translation'}

_TFRECORD_HEADER_BYTES = 12  # uint64 length + uint32 masked CRC of the length.
_TFRECORD_FOOTER_BYTES = 4  # uint32 masked CRC of the data.
_MAX_INTERLEAVE_CYCLE = 16
_IO_THREADS = 16


# ------------------------------------------------------------------------------------------------
# Clips -> pairs.


def _rigid_inverse(matrix):
  rotation = matrix[:3, :3]
  translation = matrix[:3, 3:]
  rotation_inv = tf.transpose(rotation)
  top = tf.concat([rotation_inv, -tf.matmul(rotation_inv, translation)], axis=1)
  return tf.concat([top, tf.constant([[0.0, 0.0, 0.0, 1.0]])], axis=0)


def to_pairs(clip, use_both_pairs=False):
  """The model's per-example features of the pairs of a clip (see the module docstring).

  Args:
    clip: dict in the intermediate form, with a static number of frames N >= 2.
    use_both_pairs: False keeps only the first pair (frames 0, 1), as the
      reference does; True returns all N - 1 adjacent pairs.

  Returns:
    A list of feature dicts, one per pair, every value a 2-tuple.
  """
  num_frames = clip['rgb'].shape[0]
  if num_frames is None or num_frames < 2:
    raise ValueError('to_pairs: clip rgb must have a static number of frames >= 2, got shape %s'
                     % clip['rgb'].shape)
  if 'object_translation' in clip and 'egomotion' not in clip:
    raise ValueError('to_pairs: object_translation needs egomotion (its reverse-direction value '
                     'is -R^T dT)')
  starts = list(range(num_frames - 1)) if use_both_pairs else [0]
  # Only the frames the pairs use are converted (the reference's scaling: x * (1 / 255)).
  rgb = {i: tf.cast(clip['rgb'][i], tf.float32) * (1.0 / 255.0)
         for i in sorted(set(starts) | {a + 1 for a in starts})}
  shape = tf.shape(clip['rgb'])
  fx, fy, x0, y0 = tf.unstack(tf.cast(clip['intrinsics'], tf.float32))
  intrinsics = tf.stack([tf.cast(shape[2], tf.float32), tf.cast(shape[1], tf.float32),
                         fx, fy, x0, y0])
  known = tf.cast(clip['intrinsics_known'], tf.bool)
  pairs = []
  for a in starts:
    b = a + 1
    pair = {'rgb': (rgb[a], rgb[b]),
            'intrinsics': (intrinsics, intrinsics),
            'intrinsics_known': (known, known)}
    if 'video_index' in clip:
      index = tf.cast(clip['video_index'], tf.int32)
      pair['video_index'] = (index, index)
    if 'mask' in clip:
      mask = tf.cast(clip['mask'], tf.int32)
      pair['mask'] = (mask[a], mask[b])
    if 'depth' in clip:
      depth = tf.cast(clip['depth'], tf.float32)[..., tf.newaxis]
      pair['depth'] = (depth[a], depth[b])
    if 'egomotion' in clip:
      forward = tf.cast(clip['egomotion'][a], tf.float32)
      pair['egomotion_mat'] = (forward, _rigid_inverse(forward))
    if 'object_translation' in clip:
      field = tf.cast(clip['object_translation'][a], tf.float32)
      rotation = tf.cast(clip['egomotion'][a][:3, :3], tf.float32)
      # Row vectors: (-R^T dT)^T = -dT^T R.
      backward = -tf.einsum('hwi,ij->hwj', field, rotation)
      pair['object_translation'] = (field, backward)
    pairs.append(pair)
  return pairs


# ------------------------------------------------------------------------------------------------
# TFDS triplet builders.


def _looks_like_prepared_dir(path):
  return tf.io.gfile.exists(os.path.join(path, 'dataset_info.json'))


def open_builder(dataset, data_dir=None):
  """A TFDS builder from a registered or prepared name, or from a prepared directory.

  `dataset` is either a builder name ('synthetic_triplets', 'kitti_triplets:1.0.0',
  looked up in `data_dir`) or the path of a prepared dataset version directory
  (the one holding dataset_info.json).
  """
  if not isinstance(dataset, str) or not dataset:
    raise ValueError('dataset must be a TFDS name or a directory, got %r' % (dataset,))
  if tf.io.gfile.isdir(dataset):
    if not _looks_like_prepared_dir(dataset):
      raise ValueError('dataset directory %s has no dataset_info.json; give the directory of a '
                       'prepared TFDS dataset version (e.g. .../my_dataset/1.0.0)' % dataset)
    return tfds.builder_from_directory(dataset)
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise ValueError('TFDS dataset %r not found in data_dir %s (neither a registered builder '
                     'nor a prepared dataset there)' % (dataset, data_dir)) from None
  if not builder.info.splits:
    raise ValueError('TFDS dataset %r is not prepared in %s; run its data_prep builder '
                     '(download_and_prepare) first' % (dataset, builder.data_dir))
  return builder


def _scan_tfrecord(path):
  """Counts the complete records of a TFRecord file by walking its length headers.

  Reads 12 bytes per record, so it costs little next to reading the data.
  Returns (number of complete records, None) or (count, problem description).
  """
  size = tf.io.gfile.stat(path).length
  count = 0
  offset = 0
  with tf.io.gfile.GFile(path, 'rb') as f:
    while offset < size:
      if size - offset < _TFRECORD_HEADER_BYTES:
        return count, 'ends with a partial record header at byte %d of %d' % (offset, size)
      f.seek(offset)
      (length,) = struct.unpack('<Q', f.read(8))
      end = offset + _TFRECORD_HEADER_BYTES + length + _TFRECORD_FOOTER_BYTES
      if end > size:
        return count, ('record %d at byte %d needs %d bytes but the file ends at byte %d '
                       '(truncated)' % (count, offset, end - offset, size))
      count += 1
      offset = end
  return count, None


class TfdsTripletSource:
  """The shards of one split of a TFDS triplet builder, read as serialized examples.

  Attributes:
    builder: the TFDS builder.
    split: the split spec (slicing such as 'train[:90%]' is allowed).
    available: the optional clip keys this builder has.
    num_examples: examples (triplets) this source reads, after sharding and
      skipping bad shards.
    num_skipped: examples lost in bad shards skipped with skip_bad_examples.
  """

  def __init__(self, dataset, data_dir=None, split='train'):
    self.builder = open_builder(dataset, data_dir)
    self.split = split
    self.name = '%s/%s' % (self.builder.info.full_name, split)
    features = self.builder.info.features
    missing = [k for k in features_lib.REQUIRED_KEYS if k not in features]
    if missing:
      raise ValueError('TFDS dataset %s is not a triplet dataset (features.triplet_features): '
                       'missing %s' % (self.builder.info.full_name, ', '.join(missing)))
    self.available = tuple(k for k in OPTIONAL_CLIP_KEYS if _TFDS_KEY[k] in features)
    file_format = str(getattr(self.builder.info, 'file_format', 'tfrecord') or 'tfrecord')
    if 'tfrecord' not in file_format.lower():
      raise ValueError('TFDS dataset %s is stored as %s; only TFRecord shards are supported' %
                       (self.builder.info.full_name, file_format))
    try:
      self.instructions = list(self.builder.info.splits[split].file_instructions)
    except (KeyError, ValueError) as e:
      raise ValueError('TFDS dataset %s has no split %r (have: %s): %s' % (
          self.builder.info.full_name, split, ', '.join(self.builder.info.splits), e)) from None
    self.instructions = [i for i in self.instructions if i.take > 0]
    self.num_skipped = 0

  @property
  def num_examples(self):
    return sum(i.take for i in self.instructions)

  def check_shards(self, skip_bad_examples=False):
    """Finds truncated or corrupt shards up front, before training starts.

    Raises ValueError naming the shard, or with `skip_bad_examples` reads only
    its complete records and counts the lost examples in `num_skipped`.
    """
    paths = sorted({i.filename for i in self.instructions})
    with concurrent.futures.ThreadPoolExecutor(min(_IO_THREADS, max(1, len(paths)))) as pool:
      scans = dict(zip(paths, pool.map(_scan_tfrecord, paths)))
    kept = []
    lost = 0
    for instruction in self.instructions:
      count, problem = scans[instruction.filename]
      if problem is None and count < instruction.examples_in_shard:
        problem = 'holds %d records, dataset_info says %d' % (count,
                                                              instruction.examples_in_shard)
      if problem is None:
        kept.append(instruction)
        continue
      if not skip_bad_examples:
        raise ValueError('TFRecord shard %s of %s is corrupt: %s. Rebuild the dataset, or set '
                         'input.skip_bad_examples to read only its complete records.' %
                         (instruction.filename, self.name, problem))
      take = max(0, min(instruction.take, count - instruction.skip))
      lost += instruction.take - take
      if take > 0:
        kept.append(instruction.replace(take=take))
      _LOG.warning('Skipping the damaged end of shard %s: %s', instruction.filename, problem)
    if lost:
      _LOG.warning('%s: skipped %d bad examples (input.skip_bad_examples).', self.name, lost)
    self.num_skipped += lost
    self.instructions = kept
    return self

  def shard(self, num_pipelines, pipeline_id):
    """This worker's part (a new source): whole shards when there are enough, else example ranges.

    The parts of all workers are disjoint and cover the split, so no worker
    reads (or decodes) another worker's examples.
    """
    part = copy.copy(self)
    if num_pipelines <= 1:
      return part
    if len(self.instructions) >= num_pipelines:
      part.instructions = self.instructions[pipeline_id::num_pipelines]
    else:
      part.instructions = []
      for instruction in self.instructions:
        begin = instruction.take * pipeline_id // num_pipelines
        end = instruction.take * (pipeline_id + 1) // num_pipelines
        if end > begin:
          part.instructions.append(
              instruction.replace(skip=instruction.skip + begin, take=end - begin))
    return part

  def records(self, shuffle_files=False, seed=None, repeat=False, deterministic=True):
    """A dataset of serialized examples (tf.string scalars)."""
    if not self.instructions:
      raise ValueError('%s has no examples to read' % self.name)
    files = tf.constant([i.filename for i in self.instructions])
    skips = tf.constant([i.skip for i in self.instructions], tf.int64)
    takes = tf.constant([i.take for i in self.instructions], tf.int64)
    shards = tf.data.Dataset.from_tensor_slices((files, skips, takes))
    if shuffle_files and len(self.instructions) > 1:
      shards = shards.shuffle(len(self.instructions), seed=seed, reshuffle_each_iteration=True)
    if repeat:
      shards = shards.repeat()

    def read_shard(filename, skip, take):
      return tf.data.TFRecordDataset(filename).skip(skip).take(take)

    cycle_length = min(_MAX_INTERLEAVE_CYCLE, len(self.instructions))
    return shards.interleave(read_shard, cycle_length=cycle_length, block_length=1,
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)

  def parse(self, serialized, first_frame=0, num_frames=features_lib.NUM_FRAMES, keys=()):
    """Decodes frames [first_frame, first_frame + num_frames) of one serialized triplet.

    Only the asked-for optional `keys` (clip keys) are parsed, and only the
    PNGs of the selected frames are decoded.
    """
    missing = [k for k in keys if k not in self.available]
    if missing:
      raise ValueError('%s has no %s (it has: %s)' % (self.name, ', '.join(missing),
                                                      ', '.join(self.available) or 'none'))
    wanted = ['images', 'intrinsics', 'intrinsics_known', 'video_id']
    wanted += [_TFDS_KEY[k] for k in keys]
    all_features = self.builder.info.features
    subset = tfds.features.FeaturesDict({k: all_features[k] for k in wanted})
    decoders = {'images': tfds.decode.SkipDecoding()}
    if 'mask' in keys:
      decoders['masks'] = tfds.decode.SkipDecoding()
    example = subset.deserialize_example(serialized, decoders=decoders)
    first = tf.cast(first_frame, tf.int32)
    frames = [first + i for i in range(num_frames)]
    motions = frames[:-1]
    clip = {
        'rgb': tf.stack([tf.io.decode_png(example['images'][f], channels=3) for f in frames]),
        'intrinsics': example['intrinsics'],
        'intrinsics_known': example['intrinsics_known'],
        'video_id': example['video_id'],
    }
    if 'mask' in keys:
      clip['mask'] = tf.cast(tf.stack([
          tf.io.decode_png(example['masks'][f], channels=1, dtype=tf.uint16) for f in frames]),
                             tf.int32)
    if 'depth' in keys:
      clip['depth'] = tf.gather(example['depth'], frames)
    if 'egomotion' in keys:
      clip['egomotion'] = tf.gather(example['egomotion'], motions)
    if 'object_translation' in keys:
      clip['object_translation'] = tf.gather(example['object_translation'], motions)
    return clip

  def video_ids(self):
    """The sorted distinct video_id values of the whole split (images are not decoded)."""
    all_instructions = [i for i in self.builder.info.splits[self.split].file_instructions
                        if i.take > 0]
    ids = set()
    for instruction in all_instructions:
      records = tf.data.TFRecordDataset(instruction.filename).skip(instruction.skip).take(
          instruction.take).batch(1024)
      for batch in records:
        parsed = tf.io.parse_example(batch, {'video_id': tf.io.FixedLenFeature([], tf.string)})
        ids.update(parsed['video_id'].numpy().tolist())
    return sorted(v.decode('utf-8') for v in ids)


def read_triplets(name, data_dir=None, split='train', *, keys=None, use_both_pairs=None,
                  check_shards=True, skip_bad_examples=False):
  """Reads a TFDS triplet split in file order.

  Args:
    name: a TFDS name (looked up in `data_dir`) or a prepared dataset directory.
    data_dir: the TFDS data directory.
    split: split spec.
    keys: optional clip keys to read (subset of OPTIONAL_CLIP_KEYS); None
      reads all the builder has.
    use_both_pairs: None yields 3-frame clips; False/True yields the model's
      pair features (`to_pairs`) instead.
    check_shards: find truncated shards up front (`TfdsTripletSource.check_shards`).
    skip_bad_examples: with check_shards, read around damaged shards.

  Returns:
    A tf.data.Dataset of clips (or of pair feature dicts).
  """
  source = TfdsTripletSource(name, data_dir, split)
  if check_shards:
    source.check_shards(skip_bad_examples)
  keys = source.available if keys is None else tuple(keys)
  dataset = source.records().map(lambda s: source.parse(s, keys=keys),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if use_both_pairs is None:
    return dataset
  return dataset.flat_map(lambda clip: pairs_dataset(clip, use_both_pairs))


def pairs_dataset(clip, use_both_pairs):
  """`to_pairs` as a dataset, for `flat_map` over clips."""
  pairs = to_pairs(clip, use_both_pairs)
  dataset = tf.data.Dataset.from_tensors(pairs[0])
  for pair in pairs[1:]:
    dataset = dataset.concatenate(tf.data.Dataset.from_tensors(pair))
  return dataset
