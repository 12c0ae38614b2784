"""Tests of data_prep.struct2depth: strips, intrinsics, masks, the list file, bad input."""

import os

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import common
from data_prep import struct2depth


def _prepare(tmp_path, config_name='default', skip_bad=False, name='out'):
  builder = struct2depth.Struct2DepthTriplets(config=config_name, data_dir=str(tmp_path / name),
                                              skip_bad=skip_bad)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'raw')))
  return builder


def test_strips_become_triplets_with_their_intrinsics_and_aligned_masks(tmp_path):
  written = struct2depth.write_sample_tree(str(tmp_path / 'raw'), folders=(('seq_a', 2),
                                                                           ('seq_b', 1)))
  builder = _prepare(tmp_path, 'with_masks')
  examples = common.read_examples(builder, 'train')
  assert [(e['video_id'].decode(), e['frame_ids'][1].decode()) for e in examples] == [
      ('seq_a', '0000000001/1'), ('seq_a', '0000000002/1'), ('seq_b', '0000000001/1')]
  for example in examples:
    sub, frame_id = example['video_id'].decode(), example['frame_ids'][0].decode()[:10]
    strip, (fx, fy, x0, y0) = written[(sub, frame_id)]
    np.testing.assert_array_equal(example['images'], np.stack(np.split(strip, 3, axis=1)))
    np.testing.assert_allclose(example['intrinsics'], [fx, fy, x0, y0], rtol=1e-6)
    # The RGB id (1, 2, 3) = 66051 is renumbered 1 in every frame; the object moves right.
    masks = example['masks'][..., 0]
    assert set(np.unique(masks)) == {0, 1}
    for t in range(3):
      cols = np.nonzero(masks[t].any(axis=0))[0]
      assert (cols.min(), cols.max()) == (2 + t, 7 + t)
  assert builder.summary['train']['sequences'] == 2


def test_list_file_with_a_bad_line_is_a_clear_error(tmp_path):
  path = tmp_path / 'train.txt'
  path.write_text('seq_a 0000000001\nseq_a 0000000002 extra\n')
  with pytest.raises(ValueError, match='train.txt:2: expected'):
    struct2depth.read_list(str(path))


def test_cam_file_with_one_row_per_line_is_read_like_the_one_line_form(tmp_path):
  struct2depth.write_sample_tree(str(tmp_path / 'raw'), folders=(('seq', 1),), with_masks=False)
  (tmp_path / 'raw' / 'seq' / '0000000001_cam.txt').write_text(
      '565.63,0.0,222.8240625\n0.0,566.3254476497139,64.142125\n0.0,0.0,1.0\n')
  (example,) = common.read_examples(_prepare(tmp_path), 'train')
  np.testing.assert_allclose(example['intrinsics'],
                             [565.63, 566.3254476497139, 222.8240625, 64.142125], rtol=1e-6)


def test_the_empty_cam_file_of_the_known_corrupt_sample_gets_the_daml_patch(tmp_path):
  root = tmp_path / 'raw'
  sub = root / '2011_09_26_drive_0001_sync_02'
  sub.mkdir(parents=True)
  cv2.imwrite(str(sub / '0000000001.png'), np.zeros((8, 24, 3), np.uint8))
  (sub / '0000000001_cam.txt').write_text('')
  (root / 'train.txt').write_text('2011_09_26_drive_0001_sync_02 0000000001\n')
  (example,) = common.read_examples(_prepare(tmp_path), 'train')
  np.testing.assert_allclose(example['intrinsics'], [241.67446312399355, 246.28486826666665,
                                                     204.16801030595812, 59.000832], rtol=1e-6)


def test_bad_strip_and_intrinsics_are_errors_naming_the_file_or_skipped(tmp_path):
  struct2depth.write_sample_tree(str(tmp_path / 'raw'), folders=(('seq_a', 3),),
                                 with_masks=False)
  (tmp_path / 'raw' / 'seq_a' / '0000000002.png').write_bytes(b'junk')
  (tmp_path / 'raw' / 'seq_a' / '0000000003_cam.txt').write_text('1,2,3')
  with pytest.raises(common.BadInputError, match='seq_a/0000000002.png: cannot decode'):
    _prepare(tmp_path)
  builder = _prepare(tmp_path, skip_bad=True, name='skipped')
  assert builder.summary['train']['skipped'] == {'unreadable intrinsics': 1,
                                                 'unreadable strips': 1}
  assert builder.summary['train']['triplets_written'] == 1


def test_a_bad_cam_file_error_names_the_file_once_and_says_what_was_expected(tmp_path):
  struct2depth.write_sample_tree(str(tmp_path / 'raw'), folders=(('seq_a', 3),),
                                 with_masks=False)
  (tmp_path / 'raw' / 'seq_a' / '0000000003_cam.txt').write_text('1,2,3')
  with pytest.raises(common.BadInputError) as raised:
    _prepare(tmp_path)
  message = str(raised.value)
  assert message.count('0000000003_cam.txt') == 1, message
  assert 'cannot read the intrinsics: expected 9 comma-separated numbers' in message


def test_a_strip_of_the_wrong_width_error_names_the_file_once(tmp_path):
  struct2depth.write_sample_tree(str(tmp_path / 'raw'), folders=(('seq_a', 3),),
                                 with_masks=False)
  cv2.imwrite(str(tmp_path / 'raw' / 'seq_a' / '0000000002.png'),
              np.zeros((8, 25, 3), np.uint8))
  with pytest.raises(common.BadInputError) as raised:
    _prepare(tmp_path)
  message = str(raised.value)
  assert message.count('0000000002') == 1, message
  assert message.endswith('0000000002.png: strip width 25 is not a multiple of 3'), message


def test_remote_paths_read_through_tf_gfile_give_the_same_examples(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  local = str(tmp_path / 'raw')
  struct2depth.write_sample_tree(local, folders=(('a', 2),))
  remote = 'ram://%s/raw' % tmp_path.name
  for dirpath, _, files in common.walk(local):
    for name in files:
      rel = os.path.relpath(os.path.join(dirpath, name), local)
      tf.io.gfile.makedirs(os.path.dirname(remote + '/' + rel))
      tf.io.gfile.copy(os.path.join(dirpath, name), remote + '/' + rel, overwrite=True)
  assert common.listdir(remote) == ['a', 'train.txt'] and common.isdir(remote + '/a')
  config = struct2depth.Struct2DepthTriplets.builder_configs['with_masks']
  results = []
  for root in (local, remote):
    (folder,) = struct2depth.folders_of(root, struct2depth.read_list(root + '/train.txt'))
    tally = common.Tally('struct2depth', 'train')
    results.append(list(struct2depth.process_folder(config, folder, tally)))
  assert [k for k, _ in results[0]] == [k for k, _ in results[1]] == ['a/0000000001',
                                                                      'a/0000000002']
  for (_, a), (_, b) in zip(*results):
    for key in a:
      np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
