"""Tests of depth_motion.data.pipeline: filtering, determinism, sharding, errors."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from depth_motion.data import pipeline
import tfds_testing

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 16, 30  # 1440 values per frame: mean differences of 0.02 and 0.005 are exact in uint8.


def _triplet(frames, video_id='video_0', **extra):
  example = {'images': np.asarray(frames, np.uint8), 'height': H, 'width': W,
             'intrinsics': np.array([20.0, 21.0, 14.5, 7.5], np.float32),
             'intrinsics_known': True, 'video_id': video_id, 'source': 'test',
             'frame_ids': ['a', 'b', 'c']}
  example.update(extra)
  return example


def _moving_triplet(rng, delta_sum):
  """Frames whose consecutive mean |difference| is delta_sum / (255 * 1440)."""
  base = rng.integers(10, 240, (H, W, 3)).astype(np.int32)
  step = np.full(H * W * 3, delta_sum // (H * W * 3))
  step[:delta_sum % (H * W * 3)] += 1
  step = step.reshape(H, W, 3)
  return [base, base + step, base + 2 * step]


def build_tfds(data_dir, examples, name='pipeline_test_triplets', num_shards=None):
  return tfds_testing.build_tfds(data_dir, examples, name=name, num_shards=num_shards)


def _params(**overrides):
  params = {'image_preprocessing': {'image_height': H, 'image_width': W,
                                    'data_augmentation': False},
            'input': {'shuffle_queue_size': 8, 'prefetch_size': 2}}
  for key, value in overrides.items():
    group, _, name = key.partition('__')
    if name:
      params.setdefault(group, {})[name] = value
    else:
      params[group] = value
  return params


@pytest.fixture(scope='module')
def moving(tmp_path_factory):
  """6 triplets of 2 videos, each frame pair differing by 0.02 on average, with depth."""
  rng = np.random.default_rng(0)
  examples = [_triplet(_moving_triplet(rng, 7344), video_id='video_%d' % (i % 2),
                       depth=rng.uniform(1, 9, (3, H, W)).astype(np.float32))
              for i in range(6)]
  directory = build_tfds(tmp_path_factory.mktemp('moving'), examples, num_shards=2)
  return directory, examples


def _first_frame_index(examples, rgb0):
  """Which example a batch element's frame 0 came from (by its pixels)."""
  keys = {ex['images'][0].tobytes(): i for i, ex in enumerate(examples)}
  return keys[np.round(rgb0 * 255).astype(np.uint8).tobytes()]


def test_batches_have_the_documented_structure(moving):
  directory, _ = moving
  dataset = pipeline.make_training_dataset(
      _params(image_preprocessing__data_augmentation=True, image_preprocessing__image_height=8,
              image_preprocessing__image_width=12, loss_weights__depth_supervision=0.1),
      dataset=directory, batch_size=2, seed=1)
  batch = next(iter(dataset))
  assert set(batch) == {'rgb', 'intrinsics_mat', 'intrinsics_mat_inv', 'intrinsics_known',
                        'depth'}
  shapes = {'rgb': (2, 8, 12, 3), 'intrinsics_mat': (2, 3, 3), 'intrinsics_mat_inv': (2, 3, 3),
            'intrinsics_known': (2,), 'depth': (2, 8, 12, 1)}
  for key, value in batch.items():
    assert isinstance(value, tuple) and len(value) == 2, key
    assert all(tuple(v.shape) == shapes[key] for v in value), key
  assert batch['rgb'][0].dtype == tf.float32 and batch['intrinsics_known'][0].dtype == tf.bool
  assert 0.0 <= float(tf.reduce_min(batch['rgb'][1]))
  assert float(tf.reduce_max(batch['rgb'][1])) <= 1.0
  # fx = 20 * 12 / (crop width), the crop width an integer in [12, 30].
  crop_width = 20.0 * 12 / batch['intrinsics_mat'][0].numpy()[:, 0, 0]
  np.testing.assert_allclose(crop_width, np.round(crop_width), atol=1e-4)
  assert np.all((crop_width >= 12 - 1e-4) & (crop_width <= 30 + 1e-4))


def test_duplicate_filter_keeps_002_and_drops_0005(tmp_path):
  rng = np.random.default_rng(1)
  examples = [_triplet(_moving_triplet(rng, 7344 if i % 2 else 1836)) for i in range(4)]
  directory = build_tfds(tmp_path, examples)
  dataset = pipeline.make_training_dataset(_params(), dataset=directory, batch_size=1,
                                           deterministic=True)
  seen = []
  for batch in dataset.take(6):
    rgb0, rgb1 = (x.numpy()[0] for x in batch['rgb'])
    assert np.mean(np.abs(rgb1 - rgb0)) == pytest.approx(0.02, abs=1e-6)
    seen.append(_first_frame_index(examples, rgb0))
  assert set(seen) == {1, 3}
  predicate = pipeline._is_not_duplicate(0.01)  # pylint: disable=protected-access
  zeros = tf.zeros([4, 5, 3])
  assert bool(predicate({'rgb': (zeros, zeros + 0.02)}))
  assert not bool(predicate({'rgb': (zeros, zeros + 0.005)}))


def test_all_duplicates_or_no_examples_raise_clearly(tmp_path):
  still = np.full((3, H, W, 3), 100, np.uint8)
  directory = build_tfds(tmp_path / 'still', [_triplet(still), _triplet(still)])
  with pytest.raises(ValueError, match='none of its 2 examples passes the duplicate filter'):
    pipeline.make_training_dataset(_params(), dataset=directory, batch_size=1)
  # Without the filter the same data train.
  pipeline.make_training_dataset(_params(input__duplicates_filter_threshold=0.0),
                                 dataset=directory, batch_size=1)
  with pytest.raises(ValueError, match='no examples'):
    pipeline.make_training_dataset(_params(), dataset=directory, split='train[:0]', batch_size=1)
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'train.txt').write_text('\n')
  with pytest.raises(ValueError, match='no examples'):
    pipeline.make_training_dataset(_params(input__data_path=str(empty / 'train.txt')),
                                   batch_size=1)
  with pytest.raises(ValueError, match='No training data'):
    pipeline.make_training_dataset(_params(), batch_size=1)


def test_deterministic_mode_repeats_exactly(moving):
  directory, _ = moving
  params = _params(image_preprocessing__data_augmentation=True,
                   image_preprocessing__image_height=12, image_preprocessing__image_width=20)

  def batches(seed):
    dataset = pipeline.make_training_dataset(params, dataset=directory, batch_size=2, seed=seed,
                                             deterministic=True)
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset.take(4)]

  first, second, other = batches(3), batches(3), batches(4)
  tf.nest.map_structure(np.testing.assert_array_equal, first, second)
  differs = tf.nest.flatten(tf.nest.map_structure(
      lambda a, b: not np.array_equal(a, b), first, other))
  assert any(differs)


def test_input_context_splits_the_data_per_replica(moving):
  directory, examples = moving
  seen = []
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
    dataset = pipeline.make_training_dataset(_params(), dataset=directory, batch_size=4,
                                             deterministic=True, input_context=context)
    indices = []
    for batch in dataset.take(3):
      assert batch['rgb'][0].shape[0] == 2  # The per-replica batch.
      indices += [_first_frame_index(examples, x) for x in batch['rgb'][0].numpy()]
    assert len(set(indices)) == 3  # Its half of the 6 examples, twice over.
    seen.append(set(indices))
  assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(6))


def test_distribute_datasets_from_function_on_two_devices(moving):
  directory, _ = moving
  script = textwrap.dedent('''
      import sys
      import tensorflow as tf
      cpu = tf.config.list_physical_devices('CPU')[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from depth_motion.data import pipeline
      strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
      params = {'image_preprocessing': {'image_height': 16, 'image_width': 30}}
      dataset = strategy.distribute_datasets_from_function(
          lambda ctx: pipeline.make_training_dataset(params, dataset=sys.argv[1],
                                                     batch_size=4, input_context=ctx))
      batch = next(iter(dataset))
      shapes = [tuple(t.shape) for t in strategy.experimental_local_results(batch['rgb'][0])]
      print('SHAPES', shapes)
  ''')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3',
             PYTHONPATH=os.pathsep.join([REPO_ROOT] + sys.path))
  result = subprocess.run([sys.executable, '-c', script, directory], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'SHAPES [(2, 16, 30, 3), (2, 16, 30, 3)]' in result.stdout


def test_per_video_intrinsics(moving):
  directory, examples = moving
  params = _params(learn_intrinsics={'enabled': True, 'per_video': True})
  dataset = pipeline.make_training_dataset(params, dataset=directory, batch_size=3,
                                           deterministic=True)
  for batch in dataset.take(2):
    index0, index1 = (v.numpy() for v in batch['video_index'])
    np.testing.assert_array_equal(index0, index1)
    for rgb0, index in zip(batch['rgb'][0].numpy(), index0):
      video_id = examples[_first_frame_index(examples, rgb0)]['video_id']
      assert index == ['video_0', 'video_1'].index(video_id)
  with pytest.raises(ValueError, match='has 2 videos, more than .*max_number_of_videos = 1'):
    pipeline.make_training_dataset(
        _params(learn_intrinsics={'enabled': True, 'per_video': True,
                                  'max_number_of_videos': 1}),
        dataset=directory, batch_size=1)
  with pytest.raises(ValueError, match='data_augmentation together with learn_intrinsics'):
    pipeline.make_training_dataset(
        _params(learn_intrinsics={'enabled': True, 'per_video': True},
                image_preprocessing__data_augmentation=True),
        dataset=directory, batch_size=1)


def test_missing_features_are_named(moving):
  directory, _ = moving
  with pytest.raises(ValueError, match='has no mask, needed because use_mask is set'):
    pipeline.make_training_dataset(_params(use_mask=True), dataset=directory, batch_size=1)
  with pytest.raises(ValueError, match='has no egomotion_mat'):
    pipeline.make_training_dataset(_params(learn_egomotion=False), dataset=directory,
                                   batch_size=1)


def test_eval_dataset_keeps_order_ground_truth_and_both_pairs(moving):
  directory, examples = moving
  dataset = pipeline.make_eval_dataset(_params(image_preprocessing__image_height=8,
                                               image_preprocessing__image_width=15),
                                       dataset=directory, split='train', batch_size=4,
                                       use_both_pairs=True)
  batches = list(dataset)
  assert [b['rgb'][0].shape[0] for b in batches] == [4, 4, 4]
  assert set(batches[0]) == {'rgb', 'intrinsics_mat', 'intrinsics_mat_inv', 'intrinsics_known',
                             'depth'}
  assert batches[0]['depth'][0].shape == (4, 8, 15, 1)
  native = pipeline.make_eval_dataset(_params(), dataset=directory, split='train', batch_size=2,
                                      use_both_pairs=True)
  batch = next(iter(native))
  (i,) = {_first_frame_index(examples, batch['rgb'][0][0].numpy())}
  # Pairs (t-1, t) then (t, t+1) of the same triplet.
  np.testing.assert_allclose(batch['rgb'][0][1].numpy() * 255, examples[i]['images'][1], atol=1e-3)
  np.testing.assert_allclose(batch['depth'][1][1].numpy()[..., 0], examples[i]['depth'][2])
  again = next(iter(native))
  tf.nest.map_structure(np.testing.assert_array_equal, batch, again)


def test_struct2depth_data_path(tmp_path):
  rng = np.random.default_rng(2)
  root = tmp_path / 's2d'
  (root / 'seq').mkdir(parents=True)
  lines = []
  for i in range(3):
    strip = np.concatenate(_moving_triplet(rng, 7344), axis=1).astype(np.uint8)
    stem = str(root / 'seq' / ('%010d' % i))
    tf.io.write_file(stem + '.png', tf.io.encode_png(strip))
    (root / 'seq' / ('%010d_cam.txt' % i)).write_text('20,0,14.5,0,21,7.5,0,0,1')
    lines.append('seq %010d' % i)
  (root / 'train.txt').write_text('\n'.join(lines))
  params = _params(input__data_path=str(root / 'train.txt'))
  batch = next(iter(pipeline.make_training_dataset(params, batch_size=2, seed=0)))
  assert batch['rgb'][0].shape == (2, H, W, 3)
  np.testing.assert_allclose(batch['intrinsics_mat'][1][0].numpy(),
                             [[20, 0, 14.5], [0, 21, 7.5], [0, 0, 1]])
  # A bad example: named, or dropped with input.skip_bad_examples.
  (root / 'seq' / '0000000001_cam.txt').write_text('20,0,14.5')
  with pytest.raises(ValueError, match=r'0000000001_cam\.txt: expected 9'):
    pipeline.make_training_dataset(params, batch_size=2)
  params['input']['skip_bad_examples'] = True
  batch = next(iter(pipeline.make_training_dataset(params, batch_size=2, deterministic=True)))
  assert batch['rgb'][0].shape == (2, H, W, 3)
