"""Tests of data_prep.waymo on Frame protos built with dataset_pb2 (LiDAR depth, ego-motion)."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

pytest.importorskip('waymo_open_dataset')

from data_prep import common  # pylint: disable=g-import-not-at-top
from data_prep import waymo  # pylint: disable=g-import-not-at-top


def _yaw(angle, translation=(0.0, 0.0, 0.0)):
  pose = waymo.translation_pose(*translation, yaw=angle)
  return pose


def _prepare(tmp_path, config, skip_bad=False, name='out'):
  builder = waymo.WaymoTriplets(config=config, data_dir=str(tmp_path / name), skip_bad=skip_bad)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'raw')))
  return builder


def test_camera_to_camera_of_a_left_turn():
  # The car turns left by theta about its origin, where the camera is (2 m up); a point
  # straight ahead of camera 1 at distance d is seen by camera 2 to the right:
  # (d sin theta, 0, d cos theta) in x-right/y-down/z-forward axes.
  theta, d = 0.3, 7.0
  extrinsic = waymo.translation_pose(0.0, 0.0, 2.0)
  transform = waymo.camera_to_camera(np.eye(4), _yaw(theta), extrinsic)
  np.testing.assert_allclose(transform @ [0.0, 0.0, d, 1.0],
                             [d * np.sin(theta), 0.0, d * np.cos(theta), 1.0], atol=1e-12)


@pytest.mark.parametrize('projection', ['waymo', 'pinhole'])
def test_lidar_return_lands_on_the_expected_pixel_with_its_forward_depth(tmp_path, projection):
  # Column 7 of a 16-column range image looks at azimuth ((16 - 7 - 0.5) / 16 * 2 - 1) pi
  # = pi / 16 in the vehicle frame; row 1 uses the 2nd inclination from the top (0 here).
  # The camera sits at the LiDAR's origin, yawed by pi / 16: the return is on its optical
  # axis, at the principal point (23, 15) of the 48x32 image, 10 m ahead.
  lidar = waymo.translation_pose(0.0, 0.0, 2.0)
  camera = _yaw(np.pi / 16, (0.0, 0.0, 2.0))
  intrinsic = [40.0, 40.0, 23.0, 15.0]
  rng = np.random.default_rng(0)
  frames = [waymo.make_frame(1000 + i, np.eye(4), rng.integers(0, 256, (32, 48, 3), np.uint8),
                             intrinsic, camera, [(1, 7, 10.0)], range_shape=(4, 16),
                             lidar_extrinsic=lidar, beam_inclinations=[-0.2, -0.1, 0.0, 0.1])
            for i in range(3)]
  os.makedirs(tmp_path / 'raw')
  waymo.write_segment(str(tmp_path / 'raw' / 'segment-a.tfrecord'), frames)
  config = waymo.WaymoConfig(name='t', height=16, width=24, projection=projection)
  (example,) = common.read_examples(_prepare(tmp_path, config), 'train')
  # Halving about pixel centres: (23, 15) -> (11.25, 7.25) -> pixel (row 7, col 11).
  for depth in example['depth']:
    assert np.count_nonzero(depth) == 1
    assert depth[7, 11] == pytest.approx(10.0, abs=1e-4)
  np.testing.assert_allclose(example['intrinsics'], [20.0, 20.0, 11.25, 7.25])
  assert example['frame_ids'].tolist() == [b'1000', b'1001', b'1002']
  np.testing.assert_allclose(example['egomotion'], np.stack([np.eye(4)] * 2), atol=1e-6)


def test_sample_segments_give_forward_motion_and_consecutive_frames(tmp_path):
  waymo.write_sample_tree(str(tmp_path / 'raw'), num_segments=1, num_frames=4, speed=1.0)
  config = waymo.WaymoConfig(name='t', height=16, width=24)
  builder = _prepare(tmp_path, config)
  examples = common.read_examples(builder, 'train')
  assert [e['frame_ids'].tolist() for e in examples] == [
      [b'1000000', b'1100000', b'1200000'], [b'1100000', b'1200000', b'1300000']]
  assert {e['video_id'] for e in examples} == {b'segment-0'}
  expected = np.eye(4)
  expected[2, 3] = -1.0  # 1 m forward: static points come 1 m closer
  for example in examples:
    np.testing.assert_allclose(example['egomotion'], np.stack([expected] * 2), atol=1e-6)
    assert all(np.count_nonzero(d) > 0 for d in example['depth'])
  assert builder.summary['train'] == {'sequences': 1, 'triplets_written': 2, 'skipped': {},
                                      'seconds': builder.summary['train']['seconds']}


def test_truncated_segment_is_an_error_naming_the_file_or_skipped(tmp_path):
  waymo.write_sample_tree(str(tmp_path / 'raw'), num_segments=1, num_frames=5)
  path = tmp_path / 'raw' / 'training' / 'segment-0.tfrecord'
  data = path.read_bytes()
  path.write_bytes(data[:len(data) - len(data) // 10])  # the last frame is cut
  config = waymo.WaymoConfig(name='t', height=16, width=24)
  with pytest.raises(common.BadInputError, match='segment-0.tfrecord: truncated or corrupt'):
    _prepare(tmp_path, config)
  builder = _prepare(tmp_path, config, skip_bad=True, name='skipped')
  assert builder.summary['train']['skipped'] == {'truncated segments': 1}
  assert builder.summary['train']['triplets_written'] == 2  # from the 4 intact frames
