"""The tf.data input pipelines for training and evaluation (SPEC 1.4).

`make_training_dataset` reads a TFDS triplet builder (or a struct2depth folder)
and yields batches of frame pairs for the trainer:

  shards (file-level shuffle, per-worker sharding) -> repeat -> interleave
  -> pair selection -> example shuffle (input.shuffle_queue_size, still PNG-encoded)
  -> decode -> duplicate filter -> augmentation -> batch -> prefetch

The reference shuffles decoded pairs after augmentation; shuffling the encoded
examples instead is statistically the same and holds a fraction of the memory.

Batches are dicts whose values are 2-tuples of batched tensors (index 0 = the
earlier frame of each pair; see `readers.py` for the exact meaning of each key):

  rgb                 float32 [B, H, W, 3] in [0, 1]
  intrinsics_mat      float32 [B, 3, 3]     after crop/resize/flip
  intrinsics_mat_inv  float32 [B, 3, 3]
  intrinsics_known    bool [B]
  mask                int32 [B, H, W, 1]    if use_mask (or masks= asks for it)
  video_index         int32 [B]             if learn_intrinsics.per_video
  depth               float32 [B, H, W, 1]  if depth_supervision > 0 (or ground_truth= asks)
  egomotion_mat       float32 [B, 4, 4]     if learn_egomotion is False (or ground_truth= asks)
  object_translation  float32 [B, H, W, 3]  if ground_truth= asks for it

Before any batch is produced, a source without examples (for this worker), a
dataset lacking a feature the params need, data in which no pair passes the
duplicate filter, and per-video intrinsics together with augmentation all
raise ValueError; bad examples raise naming their file unless
input.skip_bad_examples drops (and counts) them.

H, W = image_preprocessing.image_height, image_width. For use with
tf.distribute:

  strategy.distribute_datasets_from_function(
      lambda ctx: make_training_dataset(params, dataset=..., batch_size=global_batch,
                                        input_context=ctx))

gives each input pipeline its own disjoint part of the data and the per-replica
batch size.
"""

import logging

import tensorflow as tf

from depth_motion import params as params_lib
from depth_motion.data import augmentation
from depth_motion.data import readers
from depth_motion.data import struct2depth

_LOG = logging.getLogger(__name__)

# A worker's seed is derived from the global one so workers draw differently.
_WORKER_SEED_STRIDE = 1000003


def _model_params(params):
  return params_lib.make_model_params(params)


def make_source(params=None, *, dataset=None, data_dir=None, split='train', data_path=None,
                masks='none'):
  """The triplet source: a TFDS builder (`dataset`) or struct2depth data (`data_path`).

  With neither given, `params['input']['data_path']` is used. A data path that is
  a prepared TFDS dataset directory (with dataset_info.json) is read as TFDS;
  otherwise it is a struct2depth list file (or a folder holding train.txt).
  `masks` ('none', 'optional', 'required') only concerns struct2depth data; TFDS
  builders say themselves whether they have masks.
  """
  params = _model_params(params)
  skip_bad = params['input']['skip_bad_examples']
  if dataset is not None and data_path is not None:
    raise ValueError('Give either dataset (a TFDS triplet builder) or data_path (struct2depth '
                     'data), not both: got dataset=%r, data_path=%r' % (dataset, data_path))
  if dataset is None and data_path is None:
    data_path = params['input']['data_path'] or None
  if dataset is None and data_path is None:
    raise ValueError('No training data: pass dataset= (a TFDS triplet builder name or '
                     'directory) or data_path= (a struct2depth train.txt), or set '
                     'input.data_path.')
  if dataset is None and tf.io.gfile.isdir(data_path) and tf.io.gfile.exists(
      tf.io.gfile.join(data_path, 'dataset_info.json')):
    dataset, data_path = data_path, None
  if dataset is not None:
    source = readers.TfdsTripletSource(dataset, data_dir, split)
    return source.check_shards(skip_bad)
  return struct2depth.Struct2DepthSource(data_path, masks=masks, skip_bad_examples=skip_bad)


def _wanted_keys(params, source, ground_truth, masks, training):
  """The optional pair keys to produce, and the clip keys to read for them."""
  available_pairs = {key for key, clip_key in readers.PAIR_TO_CLIP_KEY.items()
                     if clip_key in source.available}
  required = set()
  if masks == 'required' or (masks is None and params['use_mask']):
    required.add('mask')
  elif masks == 'optional' and 'mask' in available_pairs:
    required.add('mask')
  if ground_truth is None:
    if training:
      if params['loss_weights']['depth_supervision'] > 0:
        required.add('depth')
      if not params['learn_egomotion']:
        required.add('egomotion_mat')
    else:
      required.update(available_pairs & set(readers.GROUND_TRUTH_PAIR_KEYS))
  elif ground_truth == 'all':
    required.update(available_pairs & set(readers.GROUND_TRUTH_PAIR_KEYS))
  else:
    ground_truth = tuple(ground_truth)
    unknown = set(ground_truth) - set(readers.GROUND_TRUTH_PAIR_KEYS)
    if unknown:
      raise ValueError('ground_truth keys must be among %s, got %s' %
                       (', '.join(readers.GROUND_TRUTH_PAIR_KEYS), ', '.join(sorted(unknown))))
    required.update(ground_truth)
  missing = sorted(required - available_pairs)
  if missing:
    why = {'mask': "use_mask is set (or masks='required')",
           'depth': 'depth supervision or ground truth is asked for',
           'egomotion_mat': 'learn_egomotion is False or ground truth is asked for',
           'object_translation': 'ground truth is asked for'}
    raise ValueError('%s has no %s, needed because %s' % (
        source.name, ', '.join(missing), '; '.join(why[k] for k in missing)))
  clip_keys = {readers.PAIR_TO_CLIP_KEY[k] for k in required}
  if 'object_translation' in clip_keys:
    clip_keys.add('egomotion')  # Its reverse direction needs the rotation.
  return required, tuple(k for k in readers.OPTIONAL_CLIP_KEYS if k in clip_keys)


def _video_table(params, source):
  """A video_id -> dense index table over the whole split, or None without per-video intrinsics."""
  learn = params['learn_intrinsics']
  if not (learn['enabled'] and learn['per_video']):
    return None
  vocabulary = source.video_ids()
  if len(vocabulary) > learn['max_number_of_videos']:
    raise ValueError('%s has %d videos, more than learn_intrinsics.max_number_of_videos = %d' %
                     (source.name, len(vocabulary), learn['max_number_of_videos']))
  initializer = tf.lookup.KeyValueTensorInitializer(
      tf.constant(vocabulary, tf.string), tf.range(len(vocabulary), dtype=tf.int32))
  return tf.lookup.StaticHashTable(initializer, default_value=-1)


def _per_pipeline(input_context, batch_size, seed):
  if input_context is None:
    return 1, 0, batch_size, seed
  per_replica = input_context.get_per_replica_batch_size(batch_size)
  pipeline_id = input_context.input_pipeline_id
  if seed is not None:
    seed = seed + _WORKER_SEED_STRIDE * pipeline_id
  return input_context.num_input_pipelines, pipeline_id, per_replica, seed


def _options(deterministic):
  options = tf.data.Options()
  options.deterministic = deterministic
  # We shard by file/example ourselves (input_context); tf.distribute must not re-shard.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return options


def _expand_pairs(records, use_both_pairs):
  """(record, first frame) for each pair read from a record."""
  if not use_both_pairs:
    return records.map(lambda r: (r, tf.constant(0, tf.int32)))
  first_frames = tf.constant([0, 1], tf.int32)
  return records.flat_map(lambda r: tf.data.Dataset.from_tensor_slices(
      (tf.stack([r, r]), first_frames)))


def _decoder(source, clip_keys, pair_keys, video_table):
  """record, first frame -> the pair's features (readers.to_pairs)."""

  def decode(record, first_frame):
    clip = source.parse(record, first_frame, 2, clip_keys)
    if video_table is not None:
      clip['video_index'] = video_table.lookup(clip['video_id'])
    pair = readers.to_pairs(clip, use_both_pairs=False)[0]
    kept = ('rgb', 'intrinsics', 'intrinsics_known', 'video_index') + tuple(pair_keys)
    return {k: v for k, v in pair.items() if k in kept}

  return decode


def _is_not_duplicate(threshold):
  def predicate(pair):
    rgb0, rgb1 = pair['rgb']
    return tf.greater(tf.reduce_mean(tf.abs(rgb1 - rgb0)), threshold)
  return predicate


def _check_some_pair_passes(source, decode, threshold):
  """Raises if no pair passes the duplicate filter (training would wait forever)."""
  if not tf.executing_eagerly():
    return
  probe = _expand_pairs(source.records(), False).map(decode).filter(_is_not_duplicate(threshold))
  for _ in probe.take(1):
    return
  raise ValueError('%s: none of its %d examples passes the duplicate filter (mean |rgb1 - rgb0| '
                   '> input.duplicates_filter_threshold = %g); training would wait forever' %
                   (source.name, source.num_examples, threshold))


def make_training_dataset(params=None, *, dataset=None, data_dir=None, split='train',
                          data_path=None, batch_size=None, seed=None, deterministic=False,
                          input_context=None, ground_truth=None, masks=None, source=None):
  """The training input pipeline (see the module docstring).

  Args:
    params: model params or overrides (dict, ParameterContainer, JSON); the
      `input`, `image_preprocessing`, `learn_intrinsics`, `use_mask`,
      `learn_egomotion` and `loss_weights.depth_supervision` entries matter.
    dataset: a TFDS triplet builder name (in `data_dir`) or prepared directory.
    data_dir: TFDS data directory.
    split: TFDS split spec.
    data_path: struct2depth list file or folder (instead of `dataset`);
      defaults to input.data_path.
    batch_size: the global batch size (pairs); defaults to params batch_size.
    seed: seeds file and example shuffling and the augmentation draws.
    deterministic: no shuffling, deterministic order and seeded augmentation
      (seed 0 if None): the same batches every time (tests, debugging).
    input_context: a tf.distribute.InputContext: read this pipeline's part of
      the data and batch per replica.
    ground_truth: None (what the params need), 'all' (everything the data
      has), or a list of 'depth', 'egomotion_mat', 'object_translation'.
    masks: None (use_mask decides), 'required', 'optional' or 'none'.
    source: an already opened source (`make_source`), instead of dataset/data_path.

  Returns:
    An infinite tf.data.Dataset of batches.
  """
  params = _model_params(params)
  batch_size = params['batch_size'] if batch_size is None else batch_size
  if not isinstance(batch_size, int) or batch_size <= 0:
    raise ValueError('batch_size must be a positive int, got %r' % (batch_size,))
  preprocessing = params['image_preprocessing']
  learn = params['learn_intrinsics']
  if preprocessing['data_augmentation'] and learn['enabled'] and learn['per_video']:
    raise ValueError('image_preprocessing.data_augmentation together with '
                     'learn_intrinsics.per_video is not supported (as in the reference): '
                     'intrinsics learned per video cannot follow each example\'s random crop '
                     'and flip. Disable one of them.')
  if deterministic and seed is None:
    seed = 0
  num_pipelines, pipeline_id, per_replica_batch, seed = _per_pipeline(
      input_context, batch_size, seed)
  if source is None:
    source = make_source(params, dataset=dataset, data_dir=data_dir, split=split,
                         data_path=data_path,
                         masks=_struct2depth_masks(masks, params))
  video_table = _video_table(params, source)  # Whole split: the same indices on every worker.
  source = source.shard(num_pipelines, pipeline_id)
  if source.num_examples == 0:
    raise ValueError('%s has no examples for input pipeline %d of %d' %
                     (source.name, pipeline_id, num_pipelines))
  pair_keys, clip_keys = _wanted_keys(params, source, ground_truth, masks, training=True)
  _LOG.info('Training input: %s, %d examples for pipeline %d of %d, per-replica batch %d, '
            'extra keys %s.', source.name, source.num_examples, pipeline_id, num_pipelines,
            per_replica_batch, ', '.join(sorted(pair_keys)) or 'none')
  decode = _decoder(source, clip_keys, pair_keys, video_table)
  threshold = params['input']['duplicates_filter_threshold']
  if threshold > 0:
    _check_some_pair_passes(source, decode, threshold)

  parallel = params['input']['reader'].get('num_parallel_calls', tf.data.AUTOTUNE)
  records = source.records(shuffle_files=not deterministic, seed=seed, repeat=True,
                           deterministic=deterministic)
  pairs = _expand_pairs(records, params['input']['use_both_pairs'])
  queue = params['input']['shuffle_queue_size']
  if not deterministic and queue > 1:
    pairs = pairs.shuffle(queue, seed=seed)
  draws = tf.data.Dataset.random(seed=seed)
  pairs = tf.data.Dataset.zip((pairs, draws))
  pairs = pairs.map(lambda record, draw: (decode(*record), draw), num_parallel_calls=parallel,
                    deterministic=deterministic)
  if params['input']['skip_bad_examples']:
    pairs = pairs.ignore_errors(log_warning=True)
  if threshold > 0:
    pairs = pairs.filter(lambda pair, draw: _is_not_duplicate(threshold)(pair))
  height, width = preprocessing['image_height'], preprocessing['image_width']
  faithful_flip = params['input']['faithful_flip_intrinsics']

  if preprocessing['data_augmentation']:
    def augment(pair, draw):
      return augmentation.random_crop_and_resize_pipeline(
          pair, height, width, seed=tf.stack([draw, tf.constant(0, tf.int64)]),
          faithful_flip=faithful_flip)
  else:
    def augment(pair, draw):
      del draw
      return augmentation.resize_pipeline(pair, height, width)

  pairs = pairs.map(augment, num_parallel_calls=parallel, deterministic=deterministic)
  batches = pairs.batch(per_replica_batch, drop_remainder=True,
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
  prefetch = params['input']['prefetch_size']
  batches = batches.prefetch(prefetch if prefetch > 0 else tf.data.AUTOTUNE)
  return batches.with_options(_options(deterministic))


def _struct2depth_masks(masks, params):
  if masks is None:
    return struct2depth.MASKS_REQUIRED if params['use_mask'] else struct2depth.MASKS_NONE
  return masks


def make_eval_dataset(params=None, *, dataset=None, data_dir=None, split='test', data_path=None,
                      batch_size=None, ground_truth='all', masks='optional',
                      use_both_pairs=None, drop_remainder=False, resize=True, source=None):
  """One pass over the data in file order: no shuffle, filter or augmentation.

  Frames are resized to image_height x image_width (`resize=False` keeps the
  stored size), intrinsics become matrices, and ground truth is kept (by
  default everything the data has). Arguments are as for
  `make_training_dataset`; `use_both_pairs=None` follows input.use_both_pairs.
  """
  params = _model_params(params)
  batch_size = params['batch_size'] if batch_size is None else batch_size
  if not isinstance(batch_size, int) or batch_size <= 0:
    raise ValueError('batch_size must be a positive int, got %r' % (batch_size,))
  if source is None:
    source = make_source(params, dataset=dataset, data_dir=data_dir, split=split,
                         data_path=data_path, masks=_struct2depth_masks(masks, params))
  if source.num_examples == 0:
    raise ValueError('%s has no examples' % source.name)
  pair_keys, clip_keys = _wanted_keys(params, source, ground_truth, masks, training=False)
  decode = _decoder(source, clip_keys, pair_keys, _video_table(params, source))
  if use_both_pairs is None:
    use_both_pairs = params['input']['use_both_pairs']
  pairs = _expand_pairs(source.records(), use_both_pairs)
  pairs = pairs.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  height = params['image_preprocessing']['image_height']
  width = params['image_preprocessing']['image_width']
  if resize:
    pairs = pairs.map(lambda pair: augmentation.resize_pipeline(pair, height, width),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  else:
    pairs = pairs.map(augmentation.add_intrinsics_matrices)
  batches = pairs.batch(batch_size, drop_remainder=drop_remainder)
  return batches.prefetch(tf.data.AUTOTUNE).with_options(_options(True))
