"""Waymo Open Dataset segments -> FRONT-camera frame triplets (TFDS builder `waymo_triplets`).

Each segment TFRecord (Frame protos, Perception v1 format) is one sequence;
`video_id` is the segment's context name. Per frame (every `frame_stride`-th):

* image: the FRONT camera JPEG (1920x1280), resized to the smallest size covering
  height x width with its aspect kept and centre-cropped (default 192x480:
  resize to 480x320, keep rows 64..255 — the 480x192 input of the paper's Waymo
  and timing numbers; set height=320 for the whole frame). OpenCV bilinear.
* intrinsics: f_u, f_v, c_u, c_v of the camera calibration moved exactly through
  the resize and crop (pixel centres at integers). Lens distortion (k1, k2, p1,
  p2, k3) is ignored, as in the paper.
* depth (`with_depth`): the TOP LiDAR's first return, turned into vehicle-frame
  points by `frame_utils.parse_range_image_and_camera_projection` and
  `convert_range_image_to_point_cloud`; each point's depth is its forward
  coordinate in the FRONT camera frame (through the inverse camera extrinsic),
  at the pixel Waymo's own camera projection gives it (`projection='waymo'`,
  both projections of a point are used; rolling-shutter aware) or at the
  pinhole projection of the calibration (`projection='pinhole'`); moved to the
  stored image with the same resize and crop, rounded to the nearest pixel, the
  nearest point winning; 0 = no return.
* egomotion (`with_egomotion`): for the pairs (t-1 -> t) and (t -> t+1) the
  camera-to-camera transform from the vehicle poses (the camera image's pose
  when present, else the frame pose) and the camera extrinsic, in our camera
  axes (x right, y down, z forward; Waymo cameras are x forward, y left, z up):
  T = C . inv(V2 E) . (V1 E) . inv(C), so that P2 = R P1 + t.

A truncated or corrupt segment is an error naming the file; with `skip_bad` the
triplets read before the damage are kept and the segment is counted as truncated.

Large-scale conversion with Beam (one segment per work item):

  python -m data_prep.convert --dataset=waymo --manual_dir=/data/waymo \\
      --data_dir=/data/tfds --beam_runner=DirectRunner \\
      --beam_options="--direct_num_workers=8 --direct_running_mode=multi_processing"
  # Dataflow: --manual_dir=gs://B/waymo --data_dir=gs://B/tfds --beam_runner=DataflowRunner
  #   --beam_options="--project=P --region=R --temp_location=gs://B/tmp --setup_file=./setup.py"
  # Flink/Spark: --beam_runner=FlinkRunner --beam_options="--flink_master=HOST:8081"
  #              --beam_runner=SparkRunner --beam_options="--spark_master_url=spark://HOST:7077"
"""

import collections
import dataclasses
import functools
import os
import zlib

import cv2
import numpy as np
import tensorflow_datasets as tfds

from data_prep import common

# Waymo camera axes (x forward, y left, z up) -> ours (x right, y down, z forward).
WAYMO_TO_OURS = np.array([[0.0, -1.0, 0.0, 0.0],
                          [0.0, 0.0, -1.0, 0.0],
                          [1.0, 0.0, 0.0, 0.0],
                          [0.0, 0.0, 0.0, 1.0]])

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download segment TFRecords of the Waymo Open Dataset, Perception v1.x format
(https://waymo.com/open/download/, 'individual files', e.g. with gsutil) into
manual_dir:

  manual_dir/
    training/segment-XXXX_with_camera_labels.tfrecord ...    -> split 'train'
    validation/segment-YYYY_with_camera_labels.tfrecord ...  -> split 'validation'
    (or *.tfrecord directly in manual_dir                    -> split 'train')

Reading them needs `pip install --no-deps waymo-open-dataset-tf-2-12-0==1.6.7`
(without --no-deps it would downgrade TensorFlow).
"""

_CITATION = """\
@InProceedings{Sun_2020_CVPR,
  author = {Sun, Pei and Kretzschmar, Henrik and Dotiwalla, Xerxes and others},
  title = {Scalability in Perception for Autonomous Driving: Waymo Open Dataset},
  booktitle = {Proc. of the IEEE/CVF Conference on Computer Vision and Pattern
               Recognition (CVPR)},
  year = {2020}
}"""


def _waymo():
  """The Waymo protos and frame_utils (imported late: an optional dependency)."""
  try:
    from waymo_open_dataset import dataset_pb2  # pylint: disable=g-import-not-at-top
    from waymo_open_dataset.utils import frame_utils  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('Reading Waymo segments needs the waymo-open-dataset package: '
                      'pip install --no-deps waymo-open-dataset-tf-2-12-0==1.6.7') from e
  return dataset_pb2, frame_utils


@dataclasses.dataclass(eq=False)
class WaymoConfig(tfds.core.BuilderConfig):
  """Options of the Waymo conversion (see the module docstring)."""
  height: int = 192
  width: int = 480
  camera: str = 'FRONT'
  with_depth: bool = True
  with_egomotion: bool = True
  projection: str = 'waymo'
  frame_stride: int = 1


@dataclasses.dataclass(frozen=True)
class Segment:
  path: str

  @property
  def name(self):
    return os.path.basename(self.path)


def list_segments(manual_dir):
  """{split: [Segment]}: training/ -> train, validation/ -> validation, top level -> train."""
  def tfrecords(directory):
    return [Segment(os.path.join(directory, f)) for f in common.listdir(directory)
            if f.endswith('.tfrecord') or '.tfrecord-' in f]
  splits = {'train': tfrecords(os.path.join(manual_dir, 'training')) + tfrecords(manual_dir),
            'validation': tfrecords(os.path.join(manual_dir, 'validation'))}
  return {k: v for k, v in splits.items() if v}


def read_frames(path, tally):
  """The Frame protos of a segment file, in order; a damaged file goes to `tally.bad`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dataset_pb2, _ = _waymo()
  iterator = iter(tf.data.TFRecordDataset(path))
  index = 0
  while True:
    try:
      record = next(iterator)
    except StopIteration:
      return
    except (tf.errors.DataLossError, tf.errors.OpError) as e:
      tally.bad(path, 'truncated or corrupt TFRecord after %d frames (%s)' %
                (index, e.message.splitlines()[0] if e.message else type(e).__name__),
                'truncated segments')
      return
    frame = dataset_pb2.Frame()
    try:
      frame.ParseFromString(record.numpy())
    except Exception as e:  # pylint: disable=broad-except  (protobuf DecodeError)
      tally.bad(path, 'record %d is not a waymo Frame proto (%s)' % (index, e),
                'truncated segments')
      return
    yield frame
    index += 1


def _matrix(transform):
  values = np.asarray(transform, np.float64)
  return values.reshape(4, 4) if values.size == 16 else None


def camera_to_camera(vehicle_pose1, vehicle_pose2, extrinsic):
  """T (ours axes) taking camera-1 coordinates to camera-2 coordinates: P2 = R P1 + t."""
  camera1_to_world = vehicle_pose1 @ extrinsic
  camera2_to_world = vehicle_pose2 @ extrinsic
  waymo = np.linalg.inv(camera2_to_world) @ camera1_to_world
  return WAYMO_TO_OURS @ waymo @ np.linalg.inv(WAYMO_TO_OURS)


def lidar_depth(frame, calibration, camera_name, plan, projection):
  """Sparse depth [plan.height, plan.width] of the TOP LiDAR's first return in the camera."""
  dataset_pb2, frame_utils = _waymo()
  range_images, camera_projections, _, top_pose = (
      frame_utils.parse_range_image_and_camera_projection(frame))
  points, cp_points = frame_utils.convert_range_image_to_point_cloud(
      frame, range_images, camera_projections, top_pose, ri_index=0)
  names = sorted(c.name for c in frame.context.laser_calibrations)
  top = names.index(dataset_pb2.LaserName.TOP)
  xyz, cp = np.asarray(points[top], np.float64), np.asarray(cp_points[top])
  extrinsic = _matrix(calibration.extrinsic.transform)
  homogeneous = np.concatenate([xyz, np.ones((len(xyz), 1))], axis=1)
  in_camera = homogeneous @ np.linalg.inv(extrinsic).T  # Waymo camera axes
  forward = in_camera[:, 0]
  if projection == 'waymo':
    us, vs, ds = [], [], []
    for name_col, u_col, v_col in ((0, 1, 2), (3, 4, 5)):
      hit = cp[:, name_col] == camera_name
      us.append(cp[hit, u_col])
      vs.append(cp[hit, v_col])
      ds.append(forward[hit])
    u, v, depth = (np.concatenate(a).astype(np.float64) for a in (us, vs, ds))
  elif projection == 'pinhole':
    f_u, f_v, c_u, c_v = list(calibration.intrinsic)[:4]
    ahead = forward > 0
    depth = forward[ahead]
    u = c_u - f_u * in_camera[ahead, 1] / depth
    v = c_v - f_v * in_camera[ahead, 2] / depth
  else:
    raise ValueError("projection must be 'waymo' or 'pinhole', got %r" % (projection,))
  x, y = plan.points(u, v, 'pixel_centre')
  return common.splat_min_depth(x, y, depth, plan.height, plan.width)


def process_segment(config, segment, tally):
  """Triplets of one segment file."""
  dataset_pb2, _ = _waymo()
  camera_name = dataset_pb2.CameraName.Name.Value(config.camera)
  calibration = None
  plan = None
  video_id = None
  window = collections.deque(maxlen=3)
  for index, frame in enumerate(read_frames(segment.path, tally)):
    if index % max(1, config.frame_stride):
      continue
    video_id = video_id or frame.context.name or os.path.splitext(segment.name)[0]
    for c in frame.context.camera_calibrations:
      if c.name == camera_name:
        calibration = c
    image_proto = next((im for im in frame.images if im.name == camera_name), None)
    where = '%s (frame %d, timestamp %d)' % (segment.path, index, frame.timestamp_micros)
    if calibration is None:
      tally.bad(where, 'no %s camera calibration' % config.camera, 'frames without calibration')
      window.clear()
      continue
    image = None
    if image_proto is not None:
      image = cv2.imdecode(np.frombuffer(image_proto.image, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
      tally.bad(where, 'no decodable %s camera image' % config.camera, 'unreadable images')
      window.clear()
      continue
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if plan is None or (plan.src_height, plan.src_width) != image.shape[:2]:
      plan = common.resize_and_centre_crop(image.shape[0], image.shape[1], config.height,
                                           config.width)
    pose = _matrix(image_proto.pose.transform)
    if pose is None or not np.any(pose):
      pose = _matrix(frame.pose.transform)
    if config.with_egomotion and pose is None:
      tally.bad(where, 'no vehicle pose', 'frames without pose')
      window.clear()
      continue
    depth = None
    if config.with_depth:
      try:
        depth = lidar_depth(frame, calibration, camera_name, plan, config.projection)
      except (KeyError, ValueError, IndexError) as e:
        tally.bad(where, 'cannot project the TOP LiDAR: %r' % e, 'frames without LiDAR')
        window.clear()
        continue
    intrinsics = plan.intrinsics(list(calibration.intrinsic)[:4], 'pixel_centre')
    window.append(('%d' % frame.timestamp_micros, plan.image(image), intrinsics, depth, pose))
    if len(window) < 3:
      continue
    ids = [w[0] for w in window]
    egomotion = None
    if config.with_egomotion:
      extrinsic = _matrix(calibration.extrinsic.transform)
      egomotion = np.stack([camera_to_camera(window[i][4], window[i + 1][4], extrinsic)
                            for i in range(2)])
    yield '%s/%s' % (video_id, ids[1]), common.make_example(
        images=[w[1] for w in window], intrinsics=window[1][2], video_id=video_id,
        source=WaymoTriplets.SOURCE, frame_ids=ids,
        depth=np.stack([w[3] for w in window]) if config.with_depth else None,
        egomotion=egomotion)


class WaymoTriplets(common.TripletBuilder):
  """Waymo Open Dataset FRONT-camera triplets with LiDAR depth and camera ego-motion."""

  name = 'waymo_triplets'
  SOURCE = 'waymo'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'FRONT camera 192x480 triplets, TOP LiDAR depth, ego-motion.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      WaymoConfig(name='default', description='FRONT camera, 192x480, LiDAR depth, ego-motion.'),
  ]
  DEFAULT_CONFIG_NAME = 'default'

  def _info(self):
    config = self.builder_config
    return self.triplet_info(
        description=__doc__.split('\n\n')[0],
        homepage='https://waymo.com/open/',
        citation=_CITATION,
        with_depth=config.with_depth,
        with_egomotion=config.with_egomotion)

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    segments = list_segments(manual_dir)
    if not segments:
      raise ValueError('%s: no segment .tfrecord files (top level, training/ or validation/)'
                       % manual_dir)
    return {split: self._generate_examples(split, segs) for split, segs in segments.items()}

  def _generate_examples(self, split, segments):
    return self._triplets(split, segments, functools.partial(process_segment,
                                                             self.builder_config))


# ----------------------------------------------------------------------------------------------
# Small synthetic segments in the real format (tests, benchmarks).


def _compressed(message):
  return zlib.compress(message.SerializeToString())


def range_image_point(row, col, range_m, height, width, beam_inclinations, extrinsic):
  """The vehicle-frame point of range-image pixel (row, col), by the WOD range-image model.

  Row i uses inclination beam_inclinations[H - 1 - i] (rows go top to bottom,
  inclinations are listed bottom to top); column j looks at azimuth
  ((W - j - 0.5) / W * 2 - 1) * pi minus the extrinsic's yaw.
  """
  inclination = np.asarray(beam_inclinations)[::-1][row]
  az_correction = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
  azimuth = ((width - col - 0.5) / width * 2.0 - 1.0) * np.pi - az_correction
  local = range_m * np.array([np.cos(azimuth) * np.cos(inclination),
                              np.sin(azimuth) * np.cos(inclination), np.sin(inclination)])
  return extrinsic[:3, :3] @ local + extrinsic[:3, 3]


def make_frame(timestamp, vehicle_pose, image_rgb, intrinsic, camera_extrinsic,
               lidar_returns=(), range_shape=(4, 16), lidar_extrinsic=None,
               beam_inclinations=None, context_name='segment-test', camera='FRONT'):
  """A Frame proto with one camera and a TOP LiDAR range image.

  lidar_returns: [(row, col, range)] set in the first-return range image; each
  gets a camera projection computed with the pinhole model of the calibration
  (as Waymo's own projection would give for an undistorted, global-shutter
  camera). Returns the serialised Frame.
  """
  dataset_pb2, _ = _waymo()
  height, width = range_shape
  lidar_extrinsic = np.eye(4) if lidar_extrinsic is None else np.asarray(lidar_extrinsic)
  if beam_inclinations is None:
    beam_inclinations = np.linspace(-0.3, 0.05, height)
  camera_name = dataset_pb2.CameraName.Name.Value(camera)
  frame = dataset_pb2.Frame()
  frame.context.name = context_name
  frame.timestamp_micros = int(timestamp)
  frame.pose.transform.extend(np.asarray(vehicle_pose, np.float64).reshape(-1).tolist())
  cal = frame.context.camera_calibrations.add()
  cal.name = camera_name
  cal.intrinsic.extend(list(intrinsic) + [0.0] * (9 - len(intrinsic)))
  cal.extrinsic.transform.extend(np.asarray(camera_extrinsic, np.float64).reshape(-1).tolist())
  cal.height, cal.width = image_rgb.shape[:2]
  lcal = frame.context.laser_calibrations.add()
  lcal.name = dataset_pb2.LaserName.TOP
  lcal.beam_inclinations.extend(list(beam_inclinations))
  lcal.beam_inclination_min = float(np.min(beam_inclinations))
  lcal.beam_inclination_max = float(np.max(beam_inclinations))
  lcal.extrinsic.transform.extend(lidar_extrinsic.reshape(-1).tolist())
  image = frame.images.add()
  image.name = camera_name
  image.image = cv2.imencode('.jpg', cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                             [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
  image.pose.transform.extend(np.asarray(vehicle_pose, np.float64).reshape(-1).tolist())

  ranges = np.full((height, width, 4), -1.0)
  projections = np.zeros((height, width, 6), np.int32)
  f_u, f_v, c_u, c_v = intrinsic[:4]
  to_camera = np.linalg.inv(np.asarray(camera_extrinsic))
  for row, col, range_m in lidar_returns:
    ranges[row, col] = (range_m, 0.5, 0.0, 0.0)
    point = range_image_point(row, col, range_m, height, width, beam_inclinations,
                              lidar_extrinsic)
    cam = to_camera[:3, :3] @ point + to_camera[:3, 3]
    if cam[0] > 0:
      u, v = c_u - f_u * cam[1] / cam[0], c_v - f_v * cam[2] / cam[0]
      if 0 <= u < image_rgb.shape[1] and 0 <= v < image_rgb.shape[0]:
        projections[row, col, :3] = (camera_name, int(round(u)), int(round(v)))
  # Per-pixel vehicle pose of the range image (roll, pitch, yaw, x, y, z): the frame pose.
  pose = np.asarray(vehicle_pose, np.float64)
  yaw = np.arctan2(pose[1, 0], pose[0, 0])
  pitch = np.arctan2(-pose[2, 0], np.hypot(pose[2, 1], pose[2, 2]))
  roll = np.arctan2(pose[2, 1], pose[2, 2])
  pixel_pose = np.tile([roll, pitch, yaw, pose[0, 3], pose[1, 3], pose[2, 3]],
                       (height, width, 1))
  laser = frame.lasers.add()
  laser.name = dataset_pb2.LaserName.TOP
  laser.ri_return1.range_image_compressed = _compressed(dataset_pb2.MatrixFloat(
      data=ranges.reshape(-1).tolist(), shape=dataset_pb2.MatrixShape(dims=[height, width, 4])))
  laser.ri_return1.camera_projection_compressed = _compressed(dataset_pb2.MatrixInt32(
      data=projections.reshape(-1).tolist(),
      shape=dataset_pb2.MatrixShape(dims=[height, width, 6])))
  laser.ri_return1.range_image_pose_compressed = _compressed(dataset_pb2.MatrixFloat(
      data=pixel_pose.reshape(-1).tolist(),
      shape=dataset_pb2.MatrixShape(dims=[height, width, 6])))
  return frame.SerializeToString()


def translation_pose(x, y=0.0, z=0.0, yaw=0.0):
  pose = np.eye(4)
  pose[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
  pose[:3, 3] = (x, y, z)
  return pose


def sample_camera(height, width):
  """(intrinsic [f_u, f_v, c_u, c_v], extrinsic camera->vehicle) of a front camera."""
  focal = 1.08 * width
  extrinsic = np.eye(4)
  extrinsic[:3, 3] = (1.5, 0.0, 2.1)
  return [focal, focal, width / 2.0 - 0.5, height / 2.0 - 0.5], extrinsic


def write_segment(path, frames):
  """Writes serialised frames as a TFRecord file (uncompressed, like WOD segments)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.TFRecordWriter(path) as writer:
    for record in frames:
      writer.write(record)


def write_sample_tree(root, num_segments=1, num_frames=4, height=32, width=48, seed=0,
                      speed=1.0):
  """Segments 'training/segment-<i>.tfrecord' of a car driving straight (tests, benchmarks)."""
  rng = np.random.default_rng(seed)
  directory = os.path.join(root, 'training')
  os.makedirs(directory, exist_ok=True)
  intrinsic, extrinsic = sample_camera(height, width)
  lidar_extrinsic = translation_pose(0.0, 0.0, 2.0)
  for s in range(num_segments):
    frames = []
    for i in range(num_frames):
      image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
      returns = [(1, 7, 10.0 + i), (2, 8, 12.0), (1, 9, 30.0)]
      frames.append(make_frame(1_000_000 + 100_000 * i, translation_pose(speed * i), image,
                               intrinsic, extrinsic, returns, lidar_extrinsic=lidar_extrinsic,
                               context_name='segment-%d' % s))
    write_segment(os.path.join(directory, 'segment-%d.tfrecord' % s), frames)
