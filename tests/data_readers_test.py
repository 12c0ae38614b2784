"""Tests of depth_motion.data.readers (TFDS triplets) and depth_motion.data.struct2depth."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from depth_motion.data import readers
from depth_motion.data import struct2depth
import tfds_testing

H, W = 6, 8


def _rotation_y(angle):
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)


def _examples(count, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for i in range(count):
    motions = np.tile(np.eye(4, dtype=np.float32), (2, 1, 1))
    for k in range(2):
      motions[k, :3, :3] = _rotation_y(0.1 * (i + k + 1))
      motions[k, :3, 3] = rng.normal(size=3)
    out.append({
        'images': rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8),
        'height': H, 'width': W,
        'intrinsics': np.array([7.0 + i, 7.5, 3.5, 2.5], np.float32),
        'intrinsics_known': bool(i % 2),
        'video_id': 'video_%d' % (i % 2),
        'source': 'test',
        'frame_ids': ['%d_a' % i, '%d_b' % i, '%d_c' % i],
        'masks': rng.integers(0, 65536, (3, H, W, 1)).astype(np.uint16),
        'depth': rng.uniform(0, 50, (3, H, W)).astype(np.float32),
        'egomotion': motions,
        'object_translation': rng.normal(size=(2, H, W, 3)).astype(np.float32),
    })
  return out


def build_tfds(data_dir, examples, name='reader_test_triplets', num_shards=None):
  return tfds_testing.build_tfds(data_dir, examples, name=name, num_shards=num_shards)


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('tfds')
  examples = _examples(5)
  return build_tfds(data_dir, examples, num_shards=2), examples


def _by_first_frame(clips, examples):
  """Matches read clips to the written examples (TFDS reorders examples)."""
  order = {ex['images'][0].tobytes(): i for i, ex in enumerate(examples)}
  return {order[clip['rgb'][0].numpy().tobytes()]: clip for clip in clips}


def test_tfds_round_trip_is_exact(tfds_dir):
  directory, examples = tfds_dir
  clips = list(readers.read_triplets(directory))
  assert len(clips) == len(examples)
  matched = _by_first_frame(clips, examples)
  assert sorted(matched) == list(range(len(examples)))
  for i, clip in matched.items():
    ex = examples[i]
    np.testing.assert_array_equal(clip['rgb'].numpy(), ex['images'])
    assert clip['rgb'].dtype == tf.uint8
    np.testing.assert_array_equal(clip['intrinsics'].numpy(), ex['intrinsics'])
    assert bool(clip['intrinsics_known']) == ex['intrinsics_known']
    assert clip['video_id'].numpy().decode() == ex['video_id']
    np.testing.assert_array_equal(clip['mask'].numpy(), ex['masks'].astype(np.int32))
    np.testing.assert_array_equal(clip['depth'].numpy(), ex['depth'])
    np.testing.assert_array_equal(clip['egomotion'].numpy(), ex['egomotion'])
    np.testing.assert_array_equal(clip['object_translation'].numpy(), ex['object_translation'])


def test_read_by_name_with_data_dir_and_key_selection(tfds_dir):
  directory, examples = tfds_dir
  data_dir = os.path.dirname(os.path.dirname(directory))
  clips = list(readers.read_triplets('reader_test_triplets', data_dir, keys=['depth']))
  assert len(clips) == len(examples)
  assert set(clips[0]) == {'rgb', 'intrinsics', 'intrinsics_known', 'video_id', 'depth'}
  source = readers.TfdsTripletSource(directory)
  assert source.video_ids() == ['video_0', 'video_1']
  # Frames 1 and 2 of one triplet: only those PNGs are decoded.
  record = next(iter(source.records()))
  clip = source.parse(record, first_frame=1, num_frames=2, keys=('egomotion',))
  index = _by_first_frame([source.parse(record)], examples)
  (i,) = index
  np.testing.assert_array_equal(clip['rgb'].numpy(), examples[i]['images'][1:])
  np.testing.assert_array_equal(clip['egomotion'].numpy(), examples[i]['egomotion'][1:])


def test_to_pairs_defines_both_directions(tfds_dir):
  directory, examples = tfds_dir
  clip = next(iter(readers.read_triplets(directory)))
  (i,) = _by_first_frame([clip], examples)
  ex = examples[i]
  first_only = readers.to_pairs(clip)
  assert len(first_only) == 1
  pairs = readers.to_pairs(clip, use_both_pairs=True)
  assert len(pairs) == 2
  for k, pair in enumerate(pairs):
    assert all(isinstance(v, tuple) and len(v) == 2 for v in pair.values())
    np.testing.assert_allclose(pair['rgb'][0].numpy(), ex['images'][k] / 255.0, atol=1e-7)
    np.testing.assert_allclose(pair['rgb'][1].numpy(), ex['images'][k + 1] / 255.0, atol=1e-7)
    np.testing.assert_allclose(pair['intrinsics'][1].numpy(),
                               np.concatenate([[W, H], ex['intrinsics']]))
    np.testing.assert_array_equal(pair['mask'][1].numpy(), ex['masks'][k + 1])
    np.testing.assert_array_equal(pair['depth'][0].numpy()[..., 0], ex['depth'][k])
    forward, backward = (m.numpy() for m in pair['egomotion_mat'])
    np.testing.assert_array_equal(forward, ex['egomotion'][k])
    np.testing.assert_allclose(forward @ backward, np.eye(4), atol=1e-5)
    # A 3D point of frame a moved by the object: P_b = R P_a + t + dT; the
    # reverse motion with -R^T dT brings it back.
    field, back_field = (f.numpy() for f in pair['object_translation'])
    np.testing.assert_array_equal(field, ex['object_translation'][k])
    p_a = np.array([0.3, -0.2, 4.0])
    p_b = forward[:3, :3] @ p_a + forward[:3, 3] + field[2, 3]
    np.testing.assert_allclose(backward[:3, :3] @ p_b + backward[:3, 3] + back_field[2, 3], p_a,
                               atol=1e-5)


def test_truncated_shard_is_reported_or_skipped(tfds_dir, tmp_path):
  directory, examples = tfds_dir
  copy = str(tmp_path / 'copy')
  shutil.copytree(directory, copy)
  source = readers.TfdsTripletSource(copy)
  shard = max(source.instructions, key=lambda i: i.take)
  path = os.path.join(copy, os.path.basename(shard.filename))
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) - 20)
  with pytest.raises(ValueError, match=r'TFRecord shard .*%s.*truncated' %
                     os.path.basename(path)):
    list(readers.read_triplets(copy))
  source = readers.TfdsTripletSource(copy).check_shards(skip_bad_examples=True)
  assert source.num_skipped == 1
  assert len(list(readers.read_triplets(copy, skip_bad_examples=True))) == len(examples) - 1


def test_sharding_partitions_the_examples(tfds_dir):
  directory, _ = tfds_dir
  seen = []
  for num_pipelines in (2, 3):
    parts = []
    for pipeline_id in range(num_pipelines):
      source = readers.TfdsTripletSource(directory).shard(num_pipelines, pipeline_id)
      parts.append([bytes(r.numpy()) for r in source.records()])
    flat = [r for part in parts for r in part]
    assert len(flat) == len(set(flat)) == 5
    seen.append(set(flat))
  assert seen[0] == seen[1]


def test_open_builder_errors(tmp_path):
  with pytest.raises(ValueError, match='not found in data_dir'):
    readers.open_builder('no_such_triplets', str(tmp_path))
  with pytest.raises(ValueError, match='has no dataset_info.json'):
    readers.open_builder(str(tmp_path))


# ------------------------------------------------------------------------------------------------
# struct2depth folders.

CAM = '565.63,0.0,222.8240625,0.0,566.3254476497139,64.142125,0.0,0.0,1.0'


def _write_png(path, array):
  tf.io.write_file(path, tf.io.encode_png(array))


def _write_example(root, subfolder, frame_id, strip, cam=CAM, mask=None):
  folder = os.path.join(root, subfolder)
  os.makedirs(folder, exist_ok=True)
  stem = os.path.join(folder, frame_id)
  _write_png(stem + '.png', strip)
  with open(stem + '_cam.txt', 'w') as f:
    f.write(cam)
  if mask is not None:
    _write_png(stem + '-fseg.png', mask)


@pytest.fixture()
def s2d(tmp_path):
  """A struct2depth folder with 3 triplets of 6 x 8 frames (strips 6 x 24)."""
  rng = np.random.default_rng(1)
  root = str(tmp_path / 's2d')
  strips, masks = {}, {}
  lines = []
  for sub, frame in (('erfurt_93', '0000000002'), ('erfurt_93', '0000000003'),
                     ('kitti_02', '0000000001')):
    strips[sub, frame] = rng.integers(0, 256, (H, 3 * W, 3), dtype=np.uint8)
    masks[sub, frame] = rng.integers(0, 256, (H, 3 * W, 3), dtype=np.uint8)
    _write_example(root, sub, frame, strips[sub, frame], mask=masks[sub, frame])
    lines.append('%s %s' % (sub, frame))
  with open(os.path.join(root, 'train.txt'), 'w') as f:
    f.write('\n'.join(lines) + '\n\n')
  return root, strips, masks


def test_struct2depth_reader_matches_the_spec(s2d):
  root, strips, masks = s2d
  clips = list(struct2depth.read_struct2depth(os.path.join(root, 'train.txt'), masks='required'))
  assert len(clips) == 3
  keys = list(strips)
  for key, clip in zip(keys, clips):
    strip, mask = strips[key], masks[key].astype(np.int64)
    frames = np.stack(np.split(strip, 3, axis=1))
    np.testing.assert_array_equal(clip['rgb'].numpy(), frames)
    encoded = mask[..., 0] * 65536 + mask[..., 1] * 256 + mask[..., 2]
    np.testing.assert_array_equal(clip['mask'].numpy(),
                                  np.stack(np.split(encoded[..., None], 3, axis=1)))
    assert clip['video_id'].numpy().decode() == key[0]
    assert bool(clip['intrinsics_known'])
    # The reference's pair: the first two frames, intrinsics [W, H, fx, fy, x0, y0].
    (pair,) = readers.to_pairs(clip)
    np.testing.assert_allclose(pair['rgb'][1].numpy(), frames[1] / 255.0, atol=1e-7)
    for intrinsics in pair['intrinsics']:
      np.testing.assert_allclose(intrinsics.numpy(),
                                 [W, H, 565.63, 566.3254476497139, 222.8240625, 64.142125],
                                 rtol=1e-7)
  # The folder itself works as data_path, and the faithful 2-frame read.
  two = next(iter(struct2depth.read_struct2depth(root, num_frames=2)))
  assert two['rgb'].shape == (2, H, W, 3) and 'mask' not in two


def _rewrite_list(root, lines):
  with open(os.path.join(root, 'train.txt'), 'w') as f:
    f.write('\n'.join(lines))


@pytest.mark.parametrize('damage, message', [
    ('narrow', r'0000000003\.png: image strip is 6x23 .* 3 frames'),
    ('cam', r'0000000003_cam\.txt: expected 9 comma-separated numbers .* got 8'),
    ('mask', r'0000000003-fseg\.png: mask file not found'),
    ('line', r'train\.txt line 2: expected 2 words'),
])
def test_struct2depth_bad_inputs_raise_or_are_skipped(s2d, damage, message):
  root, _, _ = s2d
  stem = os.path.join(root, 'erfurt_93', '0000000003')
  if damage == 'narrow':
    _write_png(stem + '.png', np.zeros((H, 23, 3), np.uint8))
  elif damage == 'cam':
    with open(stem + '_cam.txt', 'w') as f:
      f.write(CAM.rsplit(',', 1)[0])
  elif damage == 'mask':
    os.remove(stem + '-fseg.png')
  else:
    _rewrite_list(root, ['erfurt_93 0000000002', 'erfurt_93 0000000003 extra',
                         'kitti_02 0000000001'])
  with pytest.raises(ValueError, match=message):
    struct2depth.Struct2DepthSource(root, masks='required')
  source = struct2depth.Struct2DepthSource(root, masks='required', skip_bad_examples=True)
  assert source.num_skipped == 1 and source.num_examples == 2
  assert len(list(source.records())) == 2


def test_struct2depth_optional_and_unused_masks(s2d):
  root, _, _ = s2d
  os.remove(os.path.join(root, 'erfurt_93', '0000000003-fseg.png'))
  source = struct2depth.Struct2DepthSource(root, masks='optional')
  assert source.num_skipped == 0
  clip = source.parse(tf.constant(1, tf.int64), keys=('mask',))
  np.testing.assert_array_equal(clip['mask'].numpy(), np.zeros((3, H, W, 1)))
  # Masks not asked for: a missing mask file does not matter.
  source = struct2depth.Struct2DepthSource(root)
  assert source.num_examples == 3
  parts = [source.shard(2, i) for i in range(2)]
  assert [p.num_examples for p in parts] == [2, 1] and source.num_examples == 3
  stems = [source.parse(i)['video_id'].numpy() for i in parts[1].records()]
  assert stems == [b'erfurt_93']


def test_struct2depth_missing_files_and_kitti_patch(s2d):
  root, _, _ = s2d
  os.remove(os.path.join(root, 'kitti_02', '0000000001_cam.txt'))
  with pytest.raises(ValueError, match=r'kitti_02/0000000001_cam\.txt: file not found'):
    struct2depth.Struct2DepthSource(root)
  # The reference's patch for the one empty KITTI intrinsics file.
  _write_example(root, '2011_09_26_drive_0001_sync_02', '0000000001',
                 np.zeros((H, 3 * W, 3), np.uint8), cam='')
  _rewrite_list(root, ['2011_09_26_drive_0001_sync_02 0000000001'])
  clip = next(iter(struct2depth.read_struct2depth(root)))
  np.testing.assert_allclose(clip['intrinsics'].numpy(),
                             [241.67446312399355, 246.28486826666665, 204.16801030595812,
                              59.000832], rtol=1e-7)


def test_struct2depth_decoding_checks_the_header_size(s2d):
  root, _, _ = s2d
  source = struct2depth.Struct2DepthSource(root)
  # Replace a strip after validation: the graph's assert names the file.
  _write_png(os.path.join(root, 'kitti_02', '0000000001.png'), np.zeros((H + 1, 3 * W, 3),
                                                                       np.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r'kitti_02/0000000001\.png'):
    source.parse(tf.constant(2, tf.int64))


def test_cam_file_parser_reads_one_line_or_rows_and_rejects_bad_values():
  one_line = '565.63,0.0,222.8,0.0,566.3,64.1,0.0,0.0,1.0'
  rows = '565.63, 0.0, 222.8\r\n0.0, 566.3, 64.1\r\n0.0, 0.0, 1.0\r\n'
  assert struct2depth.parse_cam_file(one_line) == (565.63, 566.3, 222.8, 64.1)
  assert struct2depth.parse_cam_file(rows) == (565.63, 566.3, 222.8, 64.1)
  bad = {
      '565.63,0.0,222.8': 'a/x_cam.txt: expected 9 comma-separated numbers',
      one_line.replace('222.8', 'abc'): 'a/x_cam.txt: not 9 numbers',
      one_line.replace('64.1', 'nan'): 'a/x_cam.txt: non-finite value',
      one_line.replace('566.3', '-566.3'): 'a/x_cam.txt: focal lengths must be positive',
  }
  for content, message in bad.items():
    with pytest.raises(ValueError, match=message):
      struct2depth.parse_cam_file(content, 'a/x_cam.txt')
