"""KITTI raw -> frame triplets (TFDS builder `kitti_triplets`), with Eigen-split ground truth.

Splits:
  train       Triplets of consecutive frames (stride 1) from every synced drive
              and both colour cameras (image_02, image_03), each frame resized
              (no crop) to 416x128 with OpenCV's bilinear resize, intrinsics
              from the left 3x3 block of P_rect_02 / P_rect_03 scaled with the
              reference's plain scaling fx, x0 *= 416 / W and fy, y0 *= 128 / H
              (SPEC 1.2; `intrinsics_convention='pixel_centre'` gives the exact
              x -> (x + 0.5) s - 0.5 instead). The 28 scenes of the Eigen test
              split (data_prep/splits/eigen_test_scenes.txt, SPEC 8.1) are left
              out entirely, both cameras. video_id = '<drive>_<camera>'
              (e.g. '2011_09_26_drive_0001_sync_02', the struct2depth folder
              name). `depth` is all 0 (unknown) unless the config asks for
              `train_depth`, which projects each frame's Velodyne scan.
  eigen_test  One triplet per line of data_prep/splits/eigen_test_files.txt (the
              697 image_02 frames of the Eigen split): the frame and its
              neighbours in the drive (clamped at the drive's ends), at the RAW
              resolution (about 375x1242) with the raw intrinsics of P_rect_02.
              `depth[1]` holds the frame's ground truth, `depth[0]` and
              `depth[2]` are 0. Ground truth is the monodepth/SfMLearner
              `generate_depth_map` (SPEC 8.1): the Velodyne scan projected with
              P_rect_02 . R_rect_00 . [R|T]_velo->cam, points with forward x < 0
              dropped, image coordinates rounded then shifted by -1, points
              outside the image dropped, depth = the Velodyne forward coordinate
              x (`vel_depth=True`; `gt_depth='camera_z'` gives the camera z
              instead), the nearest point kept where several hit a pixel,
              negative depths set to 0. The reference's `sub2ind` quirk (which
              merges pixel (r, W-1) with (r+1, 0)) is reproduced only with
              `sub2ind_quirk=True`: it touches only the first and last image
              columns, which both the Garg and the Eigen crops exclude.
              Images stay at raw size because the feature spec ties `depth` to
              the image size; the evaluator resizes the input to 128x416 and
              the prediction back to the ground-truth size (SPEC 8.1).
  eigen_benchmark_test
              Only when KITTI's improved ground truth (data_depth_annotated) is
              in manual_dir: one triplet per line of
              data_prep/splits/eigen_benchmark_test_files.txt (the 652 Eigen
              frames that have it, monodepth2's eigen_benchmark), built like
              eigen_test but with depth[1] = the annotated depth (PNG / 256).

Raw layout expected in manual_dir (see MANUAL_DOWNLOAD_INSTRUCTIONS).

Large-scale conversion with Beam (one drive and camera per work item):

  python -m data_prep.convert --dataset=kitti --manual_dir=/data/kitti_raw \\
      --data_dir=/data/tfds --beam_runner=DirectRunner \\
      --beam_options="--direct_num_workers=8 --direct_running_mode=multi_processing"
  # Dataflow: --manual_dir=gs://B/kitti_raw --data_dir=gs://B/tfds --beam_runner=DataflowRunner
  #   --beam_options="--project=P --region=R --temp_location=gs://B/tmp --setup_file=./setup.py"
  # Flink/Spark: --beam_runner=FlinkRunner --beam_options="--flink_master=HOST:8081"
  #              --beam_runner=SparkRunner --beam_options="--spark_master_url=spark://HOST:7077"
"""

import collections
import dataclasses
import functools
import os
from typing import Tuple

from absl import logging
import cv2
import numpy as np
import tensorflow_datasets as tfds

from data_prep import common

CAMERAS = ('02', '03')
_EXCLUDED_NAME_PARTS = ('disp', 'flip', 'seg')  # as the struct2depth script

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the KITTI raw data ("synced+rectified data" and "calibration" of every
drive, http://www.cvlibs.net/datasets/kitti/raw_data.php, e.g. with the
raw_data_downloader.sh script) and unzip everything into manual_dir:

  manual_dir/
    2011_09_26/
      calib_cam_to_cam.txt            (P_rect_02, P_rect_03, R_rect_00, S_rect_02, ...)
      calib_velo_to_cam.txt           (R, T)
      2011_09_26_drive_0001_sync/
        image_02/data/0000000000.png ...
        image_03/data/0000000000.png ...
        velodyne_points/data/0000000000.bin ...   (float32 x, y, z, reflectance)
      2011_09_26_drive_0002_sync/ ...
    2011_09_28/ ...  2011_09_29/ ...  2011_09_30/ ...  2011_10_03/ ...

Velodyne scans are needed only for the eigen_test split (and `train_depth`).
For the eigen_benchmark_test split, add KITTI's annotated depth
(data_depth_annotated.zip, http://www.cvlibs.net/datasets/kitti/eval_depth.php)
either unzipped as manual_dir/data_depth_annotated/{train,val}/<drive>/proj_depth/
groundtruth/image_02/*.png or, as monodepth2 expects, inside each drive folder:
manual_dir/<date>/<drive>/proj_depth/groundtruth/image_02/*.png.
"""

_CITATION = """\
@article{Geiger2013IJRR,
  author = {Andreas Geiger and Philip Lenz and Christoph Stiller and Raquel Urtasun},
  title = {Vision meets Robotics: The KITTI Dataset},
  journal = {International Journal of Robotics Research (IJRR)},
  year = {2013}
}"""


@dataclasses.dataclass(eq=False)
class KittiConfig(tfds.core.BuilderConfig):
  """Options of the KITTI conversion.

  Attributes:
    height, width: size of the train triplets' frames.
    cameras: which colour cameras make train sequences.
    intrinsics_convention: 'reference' (plain scaling, SPEC 1.2) or 'pixel_centre'.
    test_files: the eigen_test list (a path or a file name in data_prep/splits/).
    benchmark_files: the eigen_benchmark_test list (likewise).
    excluded_scenes: drives left out of train (a path or a name in data_prep/splits/).
    gt_depth: 'velodyne_x' (SPEC 8.1, vel_depth=True) or 'camera_z'.
    sub2ind_quirk: reproduce the reference's duplicate-merging quirk.
    train_depth: give the train triplets depth: each frame's ground truth (the eigen_test
      projection) moved to the resized frame, nearest point per pixel (else depth 0).
  """
  height: int = 128
  width: int = 416
  cameras: Tuple[str, ...] = CAMERAS
  intrinsics_convention: str = 'reference'
  test_files: str = 'eigen_test_files.txt'
  benchmark_files: str = 'eigen_benchmark_test_files.txt'
  excluded_scenes: str = 'eigen_test_scenes.txt'
  gt_depth: str = 'velodyne_x'
  sub2ind_quirk: bool = False
  train_depth: bool = False


@dataclasses.dataclass(frozen=True)
class DriveCamera:
  """A train sequence: one drive seen by one camera."""
  date_dir: str
  drive: str
  camera: str

  @property
  def name(self):
    return '%s_%s' % (self.drive, self.camera)


@dataclasses.dataclass(frozen=True)
class TestDrive:
  """The eigen_test frames of one drive and camera, in list order."""
  date_dir: str
  drive: str
  camera: str
  frames: Tuple[str, ...]

  @property
  def name(self):
    return '%s_%s' % (self.drive, self.camera)


# ----------------------------------------------------------------------------------------------
# Calibration and Velodyne.


def read_calib_file(path):
  """{key: float array} of a KITTI calibration text file ('key: v1 v2 ...' lines).

  Values that are not numbers (e.g. calib_time) are skipped.
  """
  data = {}
  for line in common.read_text(path).splitlines():
    if ':' not in line:
      continue
    key, value = line.split(':', 1)
    try:
      data[key.strip()] = np.array([float(v) for v in value.split()], np.float64)
    except ValueError:
      pass
  return data


def _calib_or_bad(path, keys, tally, reason, count=1):
  if not common.isfile(path):
    tally.bad(path, 'calibration file not found', reason, count)
    return None
  calib = read_calib_file(path)
  missing = [k for k in keys if k not in calib]
  if missing:
    tally.bad(path, 'calibration file lacks %s' % ', '.join(missing), reason, count)
    return None
  return calib


def projection_matrix(cam_to_cam, camera):
  """P_rect_<camera> as a 3x4 matrix."""
  return np.asarray(cam_to_cam['P_rect_%s' % camera], np.float64).reshape(3, 4)


def intrinsics_from_projection(p_rect):
  """(fx, fy, x0, y0) of the left 3x3 block of a rectified projection matrix."""
  return common.intrinsics_vector(p_rect[0, 0], p_rect[1, 1], p_rect[0, 2], p_rect[1, 2])


def velo_to_image_matrix(cam_to_cam, velo_to_cam, camera='02'):
  """P_rect_<camera> . R_rect_00 . [R|T]_velo->cam: Velodyne (homogeneous) -> image."""
  r_rect = np.eye(4)
  r_rect[:3, :3] = np.asarray(cam_to_cam['R_rect_00']).reshape(3, 3)
  velo2cam = np.eye(4)
  velo2cam[:3, :3] = np.asarray(velo_to_cam['R']).reshape(3, 3)
  velo2cam[:3, 3] = np.asarray(velo_to_cam['T']).reshape(3)
  return projection_matrix(cam_to_cam, camera) @ r_rect @ velo2cam


def load_velodyne_points(path):
  """[N, 4] float32 (x, y, z, reflectance) of a KITTI .bin scan; ValueError if truncated."""
  raw = np.frombuffer(common.read_bytes(path), dtype=np.float32)
  if raw.size % 4:
    raise ValueError('%d float32 values, not a multiple of 4 (x, y, z, r): truncated?' %
                     raw.size)
  return raw.reshape(-1, 4)


def velodyne_depth_map(points, cam_to_cam, velo_to_cam, height, width, camera='02',
                       gt_depth='velodyne_x', sub2ind_quirk=False):
  """The Eigen-split ground-truth depth [height, width] of one scan (SPEC 8.1).

  The monodepth `generate_depth_map`: project with P_rect . R_rect_00 . [R|T],
  drop points with Velodyne x < 0, round the image coordinates and subtract 1,
  drop points outside the image, depth = Velodyne x ('velodyne_x') or the
  camera z ('camera_z'); the smallest depth where several points share a pixel;
  negative depths -> 0.
  """
  if gt_depth not in ('velodyne_x', 'camera_z'):
    raise ValueError("gt_depth must be 'velodyne_x' or 'camera_z', got %r" % (gt_depth,))
  points = np.asarray(points, np.float64)
  points = points[points[:, 0] >= 0].copy()
  points[:, 3] = 1.0
  projected = points @ velo_to_image_matrix(cam_to_cam, velo_to_cam, camera).T
  with np.errstate(divide='ignore', invalid='ignore'):
    u = projected[:, 0] / projected[:, 2]
    v = projected[:, 1] / projected[:, 2]
  depth = points[:, 0] if gt_depth == 'velodyne_x' else projected[:, 2]
  col = np.round(u) - 1
  row = np.round(v) - 1
  valid = (col >= 0) & (row >= 0) & (col < width) & (row < height)
  col, row, depth = col[valid].astype(np.int64), row[valid].astype(np.int64), depth[valid]
  if sub2ind_quirk:
    out = np.zeros((height, width))
    out[row, col] = depth  # the last point written to a pixel wins, as in NumPy
    # The reference's sub2ind: row * (W - 1) + col - 1 (collides across rows).
    index = row * (width - 1) + col - 1
    _, inverse, counts = np.unique(index, return_inverse=True, return_counts=True)
    for group in np.nonzero(counts > 1)[0]:
      members = np.nonzero(inverse == group)[0]
      out[row[members[0]], col[members[0]]] = depth[members].min()
  else:
    out = np.full((height, width), np.inf)
    np.minimum.at(out, (row, col), depth)
    out[np.isinf(out)] = 0.0
  out[out < 0] = 0.0
  return out.astype(np.float32)


def _downsample_sparse_depth(depth, plan, convention):
  """A raw-resolution sparse depth map moved to the resized frame (nearest point wins)."""
  rows, cols = np.nonzero(depth > 0)
  x, y = plan.points(cols, rows, convention)
  return common.splat_min_depth(x, y, depth[rows, cols], plan.height, plan.width)


# ----------------------------------------------------------------------------------------------
# Sequences.


def list_frames(image_dir):
  """Sorted frame file names of a camera folder (names with disp/flip/seg left out)."""
  return sorted(f for f in common.listdir(image_dir)
                if f.endswith('.png') and not any(p in f for p in _EXCLUDED_NAME_PARTS))


def list_drives(manual_dir):
  """[(date_dir, drive)] of every '<date>/<date>_drive_XXXX_sync' folder, sorted."""
  drives = []
  for date in common.listdir(manual_dir):
    date_dir = os.path.join(manual_dir, date)
    for drive in common.listdir(date_dir):
      if drive.endswith('_sync') and common.isdir(os.path.join(date_dir, drive)):
        drives.append((date_dir, drive))
  return drives


def train_sequences(manual_dir, cameras, excluded_scenes):
  excluded = set(excluded_scenes)
  return [DriveCamera(date_dir, drive, camera)
          for date_dir, drive in list_drives(manual_dir) if drive not in excluded
          for camera in cameras]


def parse_test_line(line):
  """'<date>/<drive>/image_0X/data/<frame>.png' -> (date, drive, camera, frame)."""
  parts = line.split()[0].split('/')
  if len(parts) != 5 or not parts[2].startswith('image_') or parts[3] != 'data':
    raise ValueError('eigen test list line %r: expected '
                     '<date>/<drive>/image_0X/data/<frame>.png' % line)
  return parts[0], parts[1], parts[2][len('image_'):], os.path.splitext(parts[4])[0]


def eigen_test_sequences(manual_dir, test_lines):
  groups = collections.OrderedDict()
  for line in test_lines:
    date, drive, camera, frame = parse_test_line(line)
    groups.setdefault((date, drive, camera), []).append(frame)
  return [TestDrive(os.path.join(manual_dir, date), drive, camera, tuple(frames))
          for (date, drive, camera), frames in groups.items()]


def process_train(config, sequence, tally):
  """Train triplets of one drive and camera."""
  cam_to_cam_path = os.path.join(sequence.date_dir, 'calib_cam_to_cam.txt')
  cam_to_cam = _calib_or_bad(cam_to_cam_path, ['P_rect_%s' % sequence.camera, 'R_rect_00'],
                             tally, 'sequences without calibration')
  if cam_to_cam is None:
    return
  velo_to_cam = None
  if config.train_depth:
    velo_to_cam = _calib_or_bad(os.path.join(sequence.date_dir, 'calib_velo_to_cam.txt'),
                                ['R', 'T'], tally, 'sequences without calibration')
    if velo_to_cam is None:
      return
  raw_intrinsics = intrinsics_from_projection(projection_matrix(cam_to_cam, sequence.camera))
  drive_dir = os.path.join(sequence.date_dir, sequence.drive)
  image_dir = os.path.join(drive_dir, 'image_%s' % sequence.camera, 'data')
  frames = list_frames(image_dir)
  if len(frames) < 3:
    tally.skip('sequences shorter than 3 frames')
    return

  def load(name):
    image = common.read_image(os.path.join(image_dir, name), tally, 'unreadable images')
    if image is None:
      return None
    plan = common.plain_resize(image.shape[0], image.shape[1], config.height, config.width)
    depth = np.zeros((config.height, config.width), np.float32)
    if velo_to_cam is not None:
      velo_path = os.path.join(drive_dir, 'velodyne_points', 'data',
                               os.path.splitext(name)[0] + '.bin')
      try:
        points = load_velodyne_points(velo_path)
      except common.FILE_ERRORS + (ValueError,) as e:
        tally.bad(velo_path, str(e), 'unreadable Velodyne scans')
        return None
      raw_depth = velodyne_depth_map(points, cam_to_cam, velo_to_cam, image.shape[0],
                                     image.shape[1], sequence.camera, config.gt_depth,
                                     config.sub2ind_quirk)
      depth = _downsample_sparse_depth(raw_depth, plan, config.intrinsics_convention)
    return plan.image(image), plan.intrinsics(raw_intrinsics, config.intrinsics_convention), depth

  for window, loaded in common.load_windows(frames, load):
    if any(item is None for item in loaded):
      tally.skip('triplets with a bad frame')
      continue
    stems = [os.path.splitext(name)[0] for name in window]
    yield '%s/%s' % (sequence.name, stems[1]), common.make_example(
        images=[item[0] for item in loaded],
        intrinsics=loaded[1][1],
        video_id=sequence.name,
        source=KittiTriplets.SOURCE,
        frame_ids=stems,
        depth=np.stack([item[2] for item in loaded]))


def annotated_depth_paths(manual_dir, date, drive, camera, frame):
  """Where KITTI's improved ground truth of a frame may be: monodepth2's and the zip's layout."""
  name = os.path.join(drive, 'proj_depth', 'groundtruth', 'image_%s' % camera, frame + '.png')
  return [os.path.join(manual_dir, date, name)] + [
      os.path.join(manual_dir, 'data_depth_annotated', subset, name)
      for subset in ('train', 'val')]


def read_annotated_depth(path):
  """Depth (m) of a KITTI annotated-depth PNG (uint16 depth * 256, 0 = none), or None."""
  raw = common.decode_file(path, cv2.IMREAD_UNCHANGED)
  if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
    return None
  return (raw.astype(np.float64) / 256.0).astype(np.float32)


def process_test(config, sequence, tally, annotated=False):
  """Test triplets (raw resolution, ground truth on the middle frame) of one drive.

  Ground truth: the projected Velodyne scan (eigen_test), or with `annotated` KITTI's
  improved ground truth (eigen_benchmark_test).
  """
  cam_to_cam_path = os.path.join(sequence.date_dir, 'calib_cam_to_cam.txt')
  count = len(sequence.frames)
  cam_to_cam = _calib_or_bad(cam_to_cam_path, ['P_rect_%s' % sequence.camera, 'R_rect_00'],
                             tally, 'test images without calibration', count)
  if cam_to_cam is None:
    return
  velo_to_cam = None
  if not annotated:
    velo_to_cam = _calib_or_bad(os.path.join(sequence.date_dir, 'calib_velo_to_cam.txt'),
                                ['R', 'T'], tally, 'test images without calibration', count)
    if velo_to_cam is None:
      return
  manual_dir = os.path.dirname(sequence.date_dir)
  date = os.path.basename(sequence.date_dir)
  intrinsics = intrinsics_from_projection(projection_matrix(cam_to_cam, sequence.camera))
  drive_dir = os.path.join(sequence.date_dir, sequence.drive)
  image_dir = os.path.join(drive_dir, 'image_%s' % sequence.camera, 'data')
  frames = list_frames(image_dir)
  index_of = {os.path.splitext(f)[0]: i for i, f in enumerate(frames)}
  for frame in sequence.frames:
    image_path = os.path.join(image_dir, frame + '.png')
    if frame not in index_of:
      tally.bad(image_path, 'eigen test image not found', 'missing test images')
      continue
    i = index_of[frame]
    names = [frames[max(i - 1, 0)], frames[i], frames[min(i + 1, len(frames) - 1)]]
    images = [common.read_image(os.path.join(image_dir, n), tally, 'unreadable test images')
              for n in names]
    if any(im is None for im in images):
      continue
    if len({im.shape for im in images}) != 1:
      tally.bad(image_path, 'the frames around it differ in size: %s' %
                [im.shape for im in images], 'unreadable test images')
      continue
    height, width = images[1].shape[:2]
    size_key = 'S_rect_%s' % sequence.camera
    if size_key in cam_to_cam and tuple(cam_to_cam[size_key][::-1].astype(int)) != (height,
                                                                                    width):
      tally.bad(cam_to_cam_path, '%s = %s but %s is %dx%d' % (
          size_key, cam_to_cam[size_key], image_path, width, height), 'unreadable test images')
      continue
    depth = np.zeros((3, height, width), np.float32)
    if annotated:
      paths = annotated_depth_paths(manual_dir, date, sequence.drive, sequence.camera, frame)
      path = next((p for p in paths if common.isfile(p)), paths[0])
      gt = read_annotated_depth(path)
      if gt is None or gt.shape != (height, width):
        tally.bad(path, 'missing or unreadable annotated depth (uint16 PNG of the image size; '
                  'also looked for %s)' % ', '.join(paths[1:]), 'missing annotated depth')
        continue
      depth[1] = gt
    else:
      velo_path = os.path.join(drive_dir, 'velodyne_points', 'data', frame + '.bin')
      try:
        points = load_velodyne_points(velo_path)
      except common.FILE_ERRORS + (ValueError,) as e:
        tally.bad(velo_path, 'cannot read the Velodyne scan: %s' % e,
                  'unreadable Velodyne scans')
        continue
      depth[1] = velodyne_depth_map(points, cam_to_cam, velo_to_cam, height, width,
                                    sequence.camera, config.gt_depth, config.sub2ind_quirk)
    yield '%s/%s' % (sequence.name, frame), common.make_example(
        images=images, intrinsics=intrinsics, video_id=sequence.name,
        source=KittiTriplets.SOURCE, frame_ids=[os.path.splitext(n)[0] for n in names],
        depth=depth)


class KittiTriplets(common.TripletBuilder):
  """KITTI raw frame triplets: train (Eigen test scenes excluded) and eigen_test."""

  name = 'kitti_triplets'
  SOURCE = 'kitti'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Train triplets (416x128); Eigen-split test with Velodyne GT and '
                            'the benchmark test with annotated GT.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      KittiConfig(name='eigen', description=(
          'Train triplets of both cameras at 416x128 without the 28 Eigen test scenes; '
          'eigen_test: the 697 Eigen test frames at raw size with Velodyne ground truth.')),
  ]
  DEFAULT_CONFIG_NAME = 'eigen'

  def _info(self):
    return self.triplet_info(
        description=__doc__.split('\n\n')[0] + '\n\n' + (self.builder_config.description or ''),
        homepage='http://www.cvlibs.net/datasets/kitti/raw_data.php',
        citation=_CITATION,
        with_depth=True)

  def _split_generators(self, dl_manager):
    config = self.builder_config
    if config.intrinsics_convention not in common.INTRINSICS_CONVENTIONS:
      raise ValueError('intrinsics_convention must be one of %s, got %r' %
                       (common.INTRINSICS_CONVENTIONS, config.intrinsics_convention))
    manual_dir = os.fspath(dl_manager.manual_dir)
    excluded = [os.path.basename(s.rstrip('/')) for s in
                common.list_split_file(config.excluded_scenes)]
    test_lines = common.list_split_file(config.test_files)
    train = train_sequences(manual_dir, config.cameras, excluded)
    if not train:
      raise ValueError('%s: no drive folders <date>/<date>_drive_XXXX_sync outside the '
                       'excluded scenes' % manual_dir)
    splits = {'train': self._generate_examples('train', train)}
    # The test split needs its drives; a download without any of them has no eigen_test
    # (a partial one is bad input: the missing images are reported).
    test = eigen_test_sequences(manual_dir, test_lines)
    if any(common.isdir(os.path.join(t.date_dir, t.drive)) for t in test):
      splits['eigen_test'] = self._generate_examples('eigen_test', test)
    else:
      logging.warning('%s: none of the %d eigen_test drives found; no eigen_test split',
                      manual_dir, len(test))
    # The benchmark split needs KITTI's annotated depth; without any of it, no split.
    benchmark = eigen_test_sequences(manual_dir,
                                     common.list_split_file(config.benchmark_files))
    if any(common.isfile(p) for t in benchmark for f in t.frames
           for p in annotated_depth_paths(manual_dir, os.path.basename(t.date_dir), t.drive,
                                          t.camera, f)):
      splits['eigen_benchmark_test'] = self._generate_examples('eigen_benchmark_test',
                                                               benchmark)
    return splits

  def _generate_examples(self, split, sequences):
    if split == 'train':
      process = functools.partial(process_train, self.builder_config)
    else:
      process = functools.partial(process_test, self.builder_config,
                                  annotated=split == 'eigen_benchmark_test')
    return self._triplets(split, sequences, process)


# ----------------------------------------------------------------------------------------------
# A small raw tree in the real layout (tests, benchmarks, and an executable layout example).


def sample_calibration(height, width):
  """Plausible KITTI-like calibration for a height x width camera (dicts of arrays)."""
  f = 0.58 * width
  k = np.array([[f, 0.0, width / 2.0 - 0.5], [0.0, f, height / 2.0 - 0.5], [0.0, 0.0, 1.0]])
  cam_to_cam = {'S_rect_02': np.array([width, height], np.float64),
                'S_rect_03': np.array([width, height], np.float64),
                'R_rect_00': np.array([0.9999, 0.0098, -0.0074, -0.0099, 0.9999, -0.0043,
                                       0.0074, 0.0044, 1.0])}
  for camera, baseline in (('02', 0.06), ('03', -0.48)):
    p = np.hstack([k, (k @ np.array([baseline, 0.0, 0.003]))[:, None]])
    cam_to_cam['P_rect_%s' % camera] = p.reshape(-1)
  # Velodyne axes (x forward, y left, z up) -> camera axes (x right, y down, z forward).
  velo_to_cam = {'R': np.array([0.0, -1.0, 0.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0]),
                 'T': np.array([-0.004, -0.076, -0.27])}
  return cam_to_cam, velo_to_cam


def write_calib_file(path, values, header=None):
  with open(path, 'w') as f:
    if header:
      f.write(header + '\n')
    for key, value in values.items():
      f.write('%s: %s\n' % (key, ' '.join('%.12e' % v for v in np.ravel(value))))


def write_sample_tree(root, drives=(('2011_09_26', '2011_09_26_drive_0001_sync', 5),),
                      height=24, width=80, cameras=CAMERAS, velodyne=True, seed=0,
                      calibration=None, points_fn=None):
  """Writes drives [(date, drive, num_frames)] in KITTI's raw layout under root.

  Images are random textures; scans are random points in front of the car
  unless `points_fn(drive, frame_index)` returns an [N, 4] array. Returns
  {date: (cam_to_cam, velo_to_cam)}.
  """
  rng = np.random.default_rng(seed)
  written = {}
  for date, drive, num_frames in drives:
    date_dir = os.path.join(root, date)
    os.makedirs(date_dir, exist_ok=True)
    if date not in written:
      cam_to_cam, velo_to_cam = calibration or sample_calibration(height, width)
      write_calib_file(os.path.join(date_dir, 'calib_cam_to_cam.txt'), cam_to_cam,
                       'calib_time: 09-Jan-2012 13:57:47')
      write_calib_file(os.path.join(date_dir, 'calib_velo_to_cam.txt'), velo_to_cam,
                       'calib_time: 15-Mar-2012 11:37:16')
      written[date] = (cam_to_cam, velo_to_cam)
    for camera in cameras:
      image_dir = os.path.join(date_dir, drive, 'image_%s' % camera, 'data')
      os.makedirs(image_dir, exist_ok=True)
      for i in range(num_frames):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.imwrite(os.path.join(image_dir, '%010d.png' % i), image)
    if velodyne:
      velo_dir = os.path.join(date_dir, drive, 'velodyne_points', 'data')
      os.makedirs(velo_dir, exist_ok=True)
      for i in range(num_frames):
        if points_fn is not None:
          points = np.asarray(points_fn(drive, i), np.float32)
        else:
          n = 200
          points = np.stack([rng.uniform(2, 40, n), rng.uniform(-10, 10, n),
                             rng.uniform(-1.5, 1, n), rng.uniform(0, 1, n)], axis=1)
        points.astype(np.float32).tofile(os.path.join(velo_dir, '%010d.bin' % i))
  return written
