"""Tests of data_prep.cityscapes: struct2depth crop, exact intrinsics, masks, disparity GT."""

import os

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import cityscapes
from data_prep import common


def test_crop_is_the_reference_window_and_intrinsics_are_exact():
  crop = cityscapes.train_crop(1024, 2048, 128, 416)
  assert (crop.top, crop.crop_height) == (256, 512)
  assert (crop.plan.resized_height, crop.plan.resized_width, crop.plan.left) == (128, 512, 48)
  assert cityscapes.eval_window(1024, 2048, 128, 416) == (256, 192, 512, 1664)
  k = [2262.52, 2265.3017905988554, 1096.98, 513.137]
  # Exact: crop 256 rows, scale by 1/4 about pixel centres, crop 48 columns.
  np.testing.assert_allclose(crop.intrinsics(k, 'pixel_centre'), [
      565.63, 566.3254476497139, (1096.98 + 0.5) / 4 - 0.5 - 48, (513.137 - 256 + 0.5) / 4 - 0.5])
  # The reference's approximation gave 222.8240625, 64.142125 (SPEC 1.1 example): ~3 px off.
  assert abs(crop.intrinsics(k, 'pixel_centre')[2] - 222.8240625) > 2.5


def test_crop_commutes_with_the_full_resolution_window():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
  crop = cityscapes.train_crop(64, 128, 16, 52)
  top, left, rows, cols = cityscapes.eval_window(64, 128, 16, 52)
  full = image[top:top + rows, left:left + cols]
  # Bilinear downscaling by exactly 2 of the full-resolution window gives the same pixels.
  np.testing.assert_array_equal(crop.image(image), cv2.resize(full, (52, 16)))


def test_align_instance_ids_follows_the_greedy_iou_rule():
  seg1 = np.zeros((6, 10), np.int64)
  seg2 = np.zeros_like(seg1)
  seg3 = np.zeros_like(seg1)
  seg1[1:4, 1:4] = 5          # object A
  seg2[1:4, 2:5] = 9          # A moved by one column (IoU 6/12 = 0.5)
  seg3[1:4, 3:6] = 2          # A again (IoU 0.5 with frame 2)
  seg2[4:6, 7:9] = 3          # appears only in frame 2
  seg1[4:6, 0:2] = 7          # B, then far away in frame 2 (IoU 0): dropped
  seg2[0:2, 8:10] = 4
  out = cityscapes.align_instance_ids(seg1, seg2, seg3)
  assert np.array_equal(out[0] == 5, seg1 == 5) and np.array_equal(out[1] == 5, seg2 == 9)
  assert np.array_equal(out[2] == 5, seg3 == 2)
  assert set(np.unique(out[0])) == {0, 5} and set(np.unique(out[1])) == {0, 5}


def test_disparity_to_depth():
  raw = np.array([[0, 1, 257, 25601]], np.uint16)
  np.testing.assert_allclose(cityscapes.disparity_to_depth(raw, 0.2, 2000.0),
                             [[0.0, 0.0, 400.0, 4.0]])


def _prepare(tmp_path, config, skip_bad=False, name='out'):
  builder = cityscapes.CityscapesTriplets(config=config, data_dir=str(tmp_path / name),
                                          skip_bad=skip_bad)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'raw')))
  return builder


def _rgb(path):
  return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_train_and_test_splits(tmp_path):
  cameras = cityscapes.write_sample_tree(str(tmp_path / 'raw'), snippets=(0, 1),
                                         frames_per_snippet=7, masks=True,
                                         disparity_value=2561)
  config = cityscapes.CityscapesConfig(name='t', height=16, width=52, with_masks=True)
  builder = _prepare(tmp_path, config)
  train = common.read_examples(builder, 'train')
  # Every second frame (0, 2, 4, 6) of each 7-frame snippet -> 2 triplets per snippet.
  assert [[f.decode() for f in e['frame_ids']] for e in train] == [
      ['aachen_%06d_%06d' % (s, f) for f in frames]
      for s in (0, 1) for frames in ((0, 2, 4), (2, 4, 6))]
  assert train[0]['video_id'] == b'aachen_000000_000000'
  seq = tmp_path / 'raw' / 'leftImg8bit_sequence' / 'train' / 'aachen'
  crop = cityscapes.train_crop(64, 128, 16, 52)
  np.testing.assert_array_equal(train[1]['images'][2],
                                crop.image(_rgb(seq / 'aachen_000000_000006_leftImg8bit.png')))
  k = cameras['aachen_000000_000003']['intrinsic']
  np.testing.assert_allclose(train[0]['intrinsics'], [
      k['fx'] / 2, k['fy'] / 2, (k['u0'] + 0.5) / 2 - 0.5 - 6, (k['v0'] - 16 + 0.5) / 2 - 0.5],
                             rtol=1e-6)
  # The mask object (id 7) moves 2 px per raw frame; aligned and renumbered 1.
  masks = train[0]['masks'][..., 0]
  assert set(np.unique(masks)) == {0, 1} and all(masks[t].any() for t in range(3))

  test = common.read_examples(builder, 'test')
  assert [[f.decode() for f in e['frame_ids']] for e in test] == [
      ['aachen_%06d_%06d' % (s, f) for f in (1, 3, 5)] for s in (0, 1)]
  example = test[0]
  top, left, rows, cols = cityscapes.eval_window(64, 128, 16, 52)
  assert (top, left, rows, cols) == (16, 12, 32, 104)
  test_seq = tmp_path / 'raw' / 'leftImg8bit_sequence' / 'test' / 'aachen'
  np.testing.assert_array_equal(
      example['images'][1], _rgb(test_seq / 'aachen_000000_000003_leftImg8bit.png')[16:48, 12:116])
  camera = cameras['aachen_000000_000003']
  expected_depth = camera['extrinsic']['baseline'] * camera['intrinsic']['fx'] / 10.0
  np.testing.assert_allclose(example['depth'][1], np.full((32, 104), expected_depth), rtol=1e-6)
  assert not example['depth'][0].any() and not example['depth'][2].any()
  np.testing.assert_allclose(example['intrinsics'], [
      camera['intrinsic']['fx'], camera['intrinsic']['fy'], camera['intrinsic']['u0'] - 12,
      camera['intrinsic']['v0'] - 16], rtol=1e-6)


def test_missing_camera_json_is_an_error_naming_the_file_or_skipped(tmp_path):
  cityscapes.write_sample_tree(str(tmp_path / 'raw'), snippets=(0, 1), frames_per_snippet=5,
                               subsets=('train',))
  missing = tmp_path / 'raw' / 'camera' / 'train' / 'aachen' / 'aachen_000001_000002_camera.json'
  os.remove(missing)
  config = cityscapes.CityscapesConfig(name='t', height=16, width=52)
  with pytest.raises(common.BadInputError, match='aachen_000001_000000_camera.json: no camera'):
    _prepare(tmp_path, config)
  builder = _prepare(tmp_path, config, skip_bad=True, name='skipped')
  assert builder.summary['train']['skipped'] == {'runs without camera calibration': 1}
  assert builder.summary['train']['triplets_written'] == 1
