"""Tests of data_prep.kitti: Velodyne ground truth, train/eigen_test triplets, bad input."""

import os

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import common
from data_prep import kitti

TEST_DRIVE = '2011_09_26_drive_0002_sync'  # one of the 28 Eigen test scenes
TRAIN_DRIVE = '2011_09_26_drive_0001_sync'


def _simple_calibration(fx=50.0, fy=40.0, cx=30.0, cy=10.0, tz=0.0):
  """R_rect = I, Velodyne axes -> camera axes with no offset, P = K [I | (0, 0, tz)]."""
  p = np.array([[fx, 0.0, cx, 0.0], [0.0, fy, cy, 0.0], [0.0, 0.0, 1.0, tz]])
  cam_to_cam = {'P_rect_02': p.reshape(-1), 'P_rect_03': p.reshape(-1),
                'R_rect_00': np.eye(3).reshape(-1), 'S_rect_02': np.array([64.0, 24.0]),
                'S_rect_03': np.array([64.0, 24.0])}
  velo_to_cam = {'R': np.array([0.0, -1.0, 0.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0]),
                 'T': np.zeros(3)}
  return cam_to_cam, velo_to_cam


def _point(x, y, z):
  return [x, y, z, 0.3]


class TestVelodyneDepthMap:

  def test_point_lands_on_expected_pixel_with_velodyne_x_depth(self):
    cam_to_cam, velo_to_cam = _simple_calibration()
    # Velodyne (x fwd, y left, z up) = (10, -1, 0.5) is camera (1, -0.5, 10):
    # u = 50 * 0.1 + 30 = 35, v = 40 * -0.05 + 10 = 8; monodepth's -1 shift -> (34, 7).
    depth = kitti.velodyne_depth_map(np.array([_point(10.0, -1.0, 0.5)]), cam_to_cam,
                                     velo_to_cam, 24, 64)
    assert np.count_nonzero(depth) == 1
    assert depth[7, 34] == pytest.approx(10.0)

  def test_camera_z_includes_the_projection_offset(self):
    cam_to_cam, velo_to_cam = _simple_calibration(tz=0.25)
    depth = kitti.velodyne_depth_map(np.array([_point(10.0, -1.0, 0.5)]), cam_to_cam,
                                     velo_to_cam, 24, 64, gt_depth='camera_z')
    # Third row of P . X = z + tz; u = (50 * 1 + 30 * 10) / 10.25 = 34.15 -> 34 - 1.
    assert depth[np.nonzero(depth)] == pytest.approx([10.25])
    assert np.nonzero(depth)[1][0] == 33

  def test_nearest_point_wins_and_points_behind_or_outside_are_dropped(self):
    cam_to_cam, velo_to_cam = _simple_calibration()
    points = np.array([
        _point(10.0, -1.0, 0.5),     # pixel (7, 34), depth 10
        _point(20.0, -2.0, 1.0),     # same ray, farther: loses
        _point(-5.0, 0.0, 0.0),      # behind the car
        _point(10.0, 20.0, 0.0),     # far left, outside the image
        _point(8.0, -0.8, 0.4),      # same ray again, nearer: wins
    ])
    depth = kitti.velodyne_depth_map(points, cam_to_cam, velo_to_cam, 24, 64)
    assert np.count_nonzero(depth) == 1
    assert depth[7, 34] == pytest.approx(8.0)

  def test_sub2ind_quirk_merges_last_column_with_next_row_start(self):
    cam_to_cam, velo_to_cam = _simple_calibration()
    height, width = 24, 64
    # Points at pixels (r=3, c=W-1) and (r=4, c=0) after the -1 shift: u = c + 1, v = r + 1.
    def at_pixel(row, col, x):
      u, v = col + 1.0, row + 1.0
      return _point(x, -(u - 30.0) / 50.0 * x, -(v - 10.0) / 40.0 * x)
    points = np.array([at_pixel(3, width - 1, 12.0), at_pixel(4, 0, 9.0)])
    correct = kitti.velodyne_depth_map(points, cam_to_cam, velo_to_cam, height, width)
    assert correct[3, width - 1] == pytest.approx(12.0)
    assert correct[4, 0] == pytest.approx(9.0)
    quirk = kitti.velodyne_depth_map(points, cam_to_cam, velo_to_cam, height, width,
                                     sub2ind_quirk=True)
    # The reference's sub2ind maps both to one index and writes their minimum at the first.
    assert quirk[3, width - 1] == pytest.approx(9.0)
    assert quirk[4, 0] == pytest.approx(9.0)

  def test_truncated_scan_is_an_error(self, tmp_path):
    path = tmp_path / 'scan.bin'
    np.arange(10, dtype=np.float32).tofile(path)
    with pytest.raises(ValueError, match='multiple of 4'):
      kitti.load_velodyne_points(str(path))


def test_eigen_lists_cover_the_697_images_of_28_scenes():
  files = common.list_split_file('eigen_test_files.txt')
  scenes = common.list_split_file('eigen_test_scenes.txt')
  assert len(files) == 697 and len(set(files)) == 697
  assert len(scenes) == 28
  assert {kitti.parse_test_line(f)[1] for f in files} == set(scenes)
  assert all(kitti.parse_test_line(f)[2] == '02' for f in files)
  benchmark = common.list_split_file('eigen_benchmark_test_files.txt')
  assert len(benchmark) == 652 and set(benchmark) <= set(files)


def _prepare(tmp_path, config, skip_bad=False, name='out'):
  builder = kitti.KittiTriplets(config=config, data_dir=str(tmp_path / name),
                                skip_bad=skip_bad)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'raw')))
  return builder


def _test_list(tmp_path, frames):
  path = tmp_path / 'test_files.txt'
  path.write_text(''.join('2011_09_26/%s/image_02/data/%010d.png\n' % (TEST_DRIVE, f)
                          for f in frames))
  return str(path)


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  """A raw tree (train drive of 5 frames, Eigen test drive of 4) converted once."""
  tmp_path = tmp_path_factory.mktemp('kitti')
  known_point = _point(10.0, -1.0, 0.5)

  def points_fn(drive, index):
    rng = np.random.default_rng(index)
    cloud = np.stack([rng.uniform(3, 30, 50), rng.uniform(-8, 8, 50), rng.uniform(-1.5, 0.5, 50),
                      rng.uniform(0, 1, 50)], axis=1)
    return np.vstack([cloud, [known_point]])
  calibration = kitti.sample_calibration(24, 80)
  kitti.write_sample_tree(str(tmp_path / 'raw'), drives=(('2011_09_26', TRAIN_DRIVE, 5),
                                                         ('2011_09_26', TEST_DRIVE, 4)),
                          height=24, width=80, calibration=calibration, points_fn=points_fn)
  config = kitti.KittiConfig(name='tiny', height=12, width=32,
                             test_files=_test_list(tmp_path, [0, 2]))
  builder = _prepare(tmp_path, config)
  return tmp_path, builder, calibration, points_fn


def test_train_triplets_are_consecutive_frames_of_both_cameras(prepared):
  tmp_path, builder, _, _ = prepared
  examples = common.read_examples(builder, 'train')
  # The test scene is left out; 5 frames -> 3 triplets per camera.
  assert [(e['video_id'].decode(), [f.decode() for f in e['frame_ids']]) for e in examples] == [
      (TRAIN_DRIVE + '_' + cam, ['%010d' % (i + j) for j in range(3)])
      for cam in ('02', '03') for i in range(3)]
  assert builder.summary['train'] == {'sequences': 2, 'triplets_written': 6, 'skipped': {},
                                      'seconds': builder.summary['train']['seconds']}
  raw = cv2.cvtColor(cv2.imread(str(tmp_path / 'raw' / '2011_09_26' / TRAIN_DRIVE / 'image_03' /
                                    'data' / '0000000003.png')), cv2.COLOR_BGR2RGB)
  example = examples[4]  # camera 03, frames 1, 2, 3
  np.testing.assert_array_equal(example['images'][2],
                                cv2.resize(raw, (32, 12), interpolation=cv2.INTER_LINEAR))
  assert example['source'] == b'kitti' and example['intrinsics_known']
  assert not example['depth'].any()


def test_train_intrinsics_are_p_rect_scaled_like_the_reference(prepared):
  _, builder, calibration, _ = prepared
  cam_to_cam, _ = calibration
  for example in common.read_examples(builder, 'train'):
    camera = example['video_id'].decode()[-2:]
    p = cam_to_cam['P_rect_%s' % camera].reshape(3, 4)
    sx, sy = 32 / 80, 12 / 24
    np.testing.assert_allclose(example['intrinsics'],
                               [p[0, 0] * sx, p[1, 1] * sy, p[0, 2] * sx, p[1, 2] * sy],
                               rtol=1e-6)


def test_pixel_centre_convention_is_exact():
  # Resizing 80 -> 32 columns: x0 = 39.5 (centre of 80 columns) must become 15.5.
  np.testing.assert_allclose(
      common.scale_intrinsics([46.4, 46.4, 39.5, 11.5], 32 / 80, 12 / 24, 'pixel_centre'),
      [18.56, 23.2, 15.5, 5.5])
  np.testing.assert_allclose(
      common.scale_intrinsics([46.4, 46.4, 39.5, 11.5], 32 / 80, 12 / 24, 'reference'),
      [18.56, 23.2, 15.8, 5.75])


def test_eigen_test_has_raw_images_and_velodyne_ground_truth_on_the_middle_frame(prepared):
  tmp_path, builder, calibration, points_fn = prepared
  cam_to_cam, velo_to_cam = calibration
  examples = common.read_examples(builder, 'eigen_test')
  assert [[f.decode() for f in e['frame_ids']] for e in examples] == [
      ['0000000000', '0000000000', '0000000001'],   # clamped at the drive's start
      ['0000000001', '0000000002', '0000000003']]
  p = cam_to_cam['P_rect_02'].reshape(3, 4)
  for example, frame in zip(examples, (0, 2)):
    assert example['images'].shape == (3, 24, 80, 3)
    np.testing.assert_allclose(example['intrinsics'], [p[0, 0], p[1, 1], p[0, 2], p[1, 2]],
                               rtol=1e-6)
    expected = kitti.velodyne_depth_map(points_fn(TEST_DRIVE, frame), cam_to_cam, velo_to_cam,
                                        24, 80)
    np.testing.assert_allclose(example['depth'][1], expected)
    assert not example['depth'][0].any() and not example['depth'][2].any()
    # The known point: Velodyne x = 10 m.
    assert 10.0 in example['depth'][1]
    raw = cv2.imread(str(tmp_path / 'raw' / '2011_09_26' / TEST_DRIVE / 'image_02' / 'data' /
                         ('%010d.png' % frame)))
    np.testing.assert_array_equal(example['images'][1], cv2.cvtColor(raw, cv2.COLOR_BGR2RGB))


def test_train_depth_projects_velodyne_into_the_resized_frames(tmp_path):
  cam_to_cam, velo_to_cam = _simple_calibration()
  kitti.write_sample_tree(str(tmp_path / 'raw'), drives=(('2011_09_26', TRAIN_DRIVE, 3),),
                          height=24, width=64, cameras=('02',),
                          calibration=(cam_to_cam, velo_to_cam),
                          points_fn=lambda drive, i: np.array([_point(10.0, -1.0, 0.5)]))
  config = kitti.KittiConfig(name='depth', height=12, width=32, cameras=('02',),
                             train_depth=True, intrinsics_convention='pixel_centre',
                             test_files=_test_list(tmp_path, []))
  (example,) = common.read_examples(_prepare(tmp_path, config), 'train')
  # Raw pixel (row 7, col 34) -> pixel centres scaled by 1/2: (3.25, 16.75) -> (3, 17).
  for depth in example['depth']:
    assert np.count_nonzero(depth) == 1 and depth[3, 17] == pytest.approx(10.0)


def test_missing_calibration_is_an_error_naming_the_file_or_skipped(tmp_path):
  kitti.write_sample_tree(str(tmp_path / 'raw'), drives=(
      ('2011_09_26', TRAIN_DRIVE, 3), ('2011_09_28', '2011_09_28_drive_0001_sync', 3)),
                          cameras=('02',), velodyne=False)
  os.remove(tmp_path / 'raw' / '2011_09_26' / 'calib_cam_to_cam.txt')
  config = kitti.KittiConfig(name='nocalib', cameras=('02',), test_files=_test_list(tmp_path, []))
  with pytest.raises(common.BadInputError,
                     match='2011_09_26/calib_cam_to_cam.txt: calibration file not found'):
    _prepare(tmp_path, config)
  builder = _prepare(tmp_path, config, skip_bad=True, name='skipped')
  assert builder.summary['train']['skipped'] == {'sequences without calibration': 1}
  assert builder.summary['train']['sequences'] == 2
  assert builder.summary['train']['triplets_written'] == 1
  (example,) = common.read_examples(builder, 'train')
  assert example['video_id'] == b'2011_09_28_drive_0001_sync_02'


def test_unreadable_image_is_an_error_naming_the_file_or_skipped(tmp_path):
  kitti.write_sample_tree(str(tmp_path / 'raw'), drives=(('2011_09_26', TRAIN_DRIVE, 5),),
                          cameras=('02',), velodyne=False)
  bad = tmp_path / 'raw' / '2011_09_26' / TRAIN_DRIVE / 'image_02' / 'data' / '0000000004.png'
  bad.write_bytes(b'not a png')
  config = kitti.KittiConfig(name='bad', cameras=('02',), test_files=_test_list(tmp_path, []))
  with pytest.raises(common.BadInputError, match='0000000004.png: cannot decode the image'):
    _prepare(tmp_path, config)
  builder = _prepare(tmp_path, config, skip_bad=True, name='skipped')
  # Frames 0..3 still make 2 triplets; the one with frame 4 is skipped.
  assert builder.summary['train']['triplets_written'] == 2
  assert builder.summary['train']['skipped'] == {'triplets with a bad frame': 1,
                                                 'unreadable images': 1}


def test_eigen_benchmark_test_uses_the_annotated_depth(tmp_path):
  kitti.write_sample_tree(str(tmp_path / 'raw'), drives=(('2011_09_26', TRAIN_DRIVE, 3),
                                                         ('2011_09_26', TEST_DRIVE, 3)),
                          height=24, width=80, velodyne=False)
  annotated = np.zeros((24, 80), np.uint16)
  annotated[10, 20] = 2560  # 10 m
  gt_dir = (tmp_path / 'raw' / 'data_depth_annotated' / 'val' / TEST_DRIVE / 'proj_depth' /
            'groundtruth' / 'image_02')
  gt_dir.mkdir(parents=True)
  cv2.imwrite(str(gt_dir / '0000000001.png'), annotated)
  benchmark = tmp_path / 'benchmark.txt'
  benchmark.write_text('2011_09_26/%s/image_02/data/0000000001.png\n' % TEST_DRIVE)
  config = kitti.KittiConfig(name='bench', height=12, width=32, test_files=_test_list(tmp_path, []),
                             benchmark_files=str(benchmark))
  builder = _prepare(tmp_path, config)
  assert 'eigen_test' not in builder.info.splits  # its list is empty here
  (example,) = common.read_examples(builder, 'eigen_benchmark_test')
  assert example['frame_ids'].tolist() == [b'0000000000', b'0000000001', b'0000000002']
  assert np.count_nonzero(example['depth']) == 1 and example['depth'][1, 10, 20] == 10.0
