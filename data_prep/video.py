"""Users' own videos -> frame triplets (TFDS builder `video_triplets`).

manual_dir holds video files (any container OpenCV's FFmpeg can decode: .mp4,
.avi, .mov, .mkv, .webm, ...) and/or folders of frames (.png/.jpg files whose
sorted names give the time order), at any depth. Each video or frame folder is
one sequence; its path relative to manual_dir (without the extension) is its
`video_id`, so per-video intrinsics can be learned (`learn_intrinsics.per_video`).

Per video: frames are decoded with `cv2.VideoCapture`, subsampled (every
`frame_stride`-th frame, or the stride closest to `source_fps / target_fps` when
`target_fps` is set and the frame rate is known), resized to the smallest size
covering height x width (aspect kept, OpenCV bilinear) and centre-cropped to
height x width (default 128x416). A frame is dropped as static when its mean
absolute difference to the last kept frame (values in [0, 1]) is at most
`static_threshold` (0.01, the training duplicate filter's threshold; 0 keeps
every frame). Triplets are consecutive kept frames (stride 1).

Intrinsics:
  known    `intrinsics` (a JSON file path, or the JSON text itself) gives
           fx, fy, x0, y0 at the ORIGINAL resolution, either
           {"fx": .., "fy": .., "x0": .., "y0": ..} for every video or
           {"default": {...}, "videos": {"<video_id>": {...}}}; they are moved
           exactly through the resize and crop (pixel centres at integers:
           x -> (x + 0.5) s - 0.5 - crop offset) and intrinsics_known is True.
  unknown  intrinsics_known is False and `intrinsics` holds the guess
           fx = fy = 0.5 (H + W), x0 = 0.5 W, y0 = 0.5 H at the stored size —
           the values the reference's per-video intrinsics start from (SPEC
           3.4) — to be learned in training (`learn_intrinsics`).

A video OpenCV cannot open or decode is an error naming the file, or with
`skip_bad` skipped and counted (likewise unreadable frame images).

Large-scale conversion with Beam (one video per work item):

  python -m data_prep.convert --dataset=video --manual_dir=/data/my_videos \\
      --data_dir=/data/tfds --beam_runner=DirectRunner \\
      --beam_options="--direct_num_workers=8 --direct_running_mode=multi_processing"
  # Dataflow: --beam_runner=DataflowRunner --beam_options="--project=P --region=R
  #   --temp_location=gs://B/tmp --setup_file=./setup.py" (manual_dir/data_dir on gs://)
  # Flink/Spark: --beam_runner=FlinkRunner --beam_options="--flink_master=HOST:8081"
  #              --beam_runner=SparkRunner --beam_options="--spark_master_url=spark://HOST:7077"
"""

import collections
import dataclasses
import functools
import json
import os
from typing import Optional, Tuple

import cv2
import numpy as np
import tensorflow_datasets as tfds

from data_prep import common

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv',
                    '.flv', '.3gp', '.ts', '.mts')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put your videos (or folders of frames) in manual_dir, at any depth:

  manual_dir/
    walk_1.mp4
    trips/drive_2.mov
    phone_clip/            (a frame folder: images sorted by name)
      000000.jpg 000001.jpg ...

video_id = the path relative to manual_dir without extension ('trips/drive_2').
Optional camera intrinsics at the original resolution: --config_overrides=
'{"intrinsics": "/path/intrinsics.json"}' (see data_prep/video.py).
"""


@dataclasses.dataclass(eq=False)
class VideoConfig(tfds.core.BuilderConfig):
  """Options of the video conversion (see the module docstring)."""
  height: int = 128
  width: int = 416
  frame_stride: int = 1
  target_fps: Optional[float] = None
  folder_fps: Optional[float] = None
  static_threshold: float = 0.01
  intrinsics: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class VideoSource:
  """One sequence: a video file or a folder of frames."""
  path: str
  video_id: str
  is_folder: bool
  intrinsics: Optional[Tuple[float, float, float, float]] = None

  @property
  def name(self):
    return self.video_id


def list_sources(manual_dir):
  """[(path, video_id, is_folder)] of the videos and frame folders under manual_dir, sorted."""
  sources = []
  for dirpath, _, filenames in common.walk(manual_dir):
    rel_dir = os.path.relpath(dirpath, manual_dir)
    images = [f for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)]
    if images and rel_dir != '.':
      sources.append((dirpath, rel_dir.replace(os.sep, '/'), True))
    for f in filenames:
      if f.lower().endswith(VIDEO_EXTENSIONS):
        rel = os.path.normpath(os.path.join(rel_dir, os.path.splitext(f)[0]))
        sources.append((os.path.join(dirpath, f), rel.replace(os.sep, '/'), False))
  return sorted(sources, key=lambda s: s[1])


def _parse_intrinsics(value, where):
  try:
    return tuple(float(value[k]) for k in ('fx', 'fy', 'x0', 'y0'))
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError('%s: intrinsics must be {"fx", "fy", "x0", "y0"} numbers, got %r (%s)' %
                     (where, value, e)) from e


def load_intrinsics_spec(spec):
  """(default or None, {video_id: intrinsics}) from a JSON file path or JSON text."""
  if not spec:
    return None, {}
  if common.isfile(spec):
    text, where = common.read_text(spec), spec
  else:
    text, where = spec, 'intrinsics JSON'
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError('%s: not a JSON file or JSON text: %s' % (where, e)) from e
  if 'videos' in data or 'default' in data:
    default = _parse_intrinsics(data['default'], where) if 'default' in data else None
    per_video = {k: _parse_intrinsics(v, '%s[%s]' % (where, k))
                 for k, v in data.get('videos', {}).items()}
    return default, per_video
  return _parse_intrinsics(data, where), {}


def _iter_decoded(source, tally):
  """(frame_id, RGB frame) of every decodable frame, in time order."""
  if source.is_folder:
    names = [f for f in common.listdir(source.path) if f.lower().endswith(IMAGE_EXTENSIONS)]
    for name in names:
      image = common.read_image(os.path.join(source.path, name), tally, 'unreadable frames')
      if image is not None:
        yield os.path.splitext(name)[0], image
    return
  local = common.local_copy(source.path)
  capture = cv2.VideoCapture(local)
  try:
    if not capture.isOpened():
      tally.bad(source.path, 'OpenCV cannot open the video (unknown format or corrupt)',
                'undecodable videos')
      return
    index = 0
    while True:
      ok, frame = capture.read()
      if not ok:
        break
      yield '%06d' % index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
      index += 1
    if index == 0:
      tally.bad(source.path, 'no frame could be decoded', 'undecodable videos')
  finally:
    capture.release()
    common.release_local_copy(source.path, local)


def source_fps(source, config):
  if source.is_folder:
    return config.folder_fps
  local = common.local_copy(source.path)
  capture = cv2.VideoCapture(local)
  try:
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
  finally:
    capture.release()
    common.release_local_copy(source.path, local)
  return fps if fps and np.isfinite(fps) and fps > 0 else None


def frame_stride(source, config):
  """Keep every stride-th decoded frame."""
  if config.target_fps:
    fps = source_fps(source, config)
    if fps:
      return max(1, int(round(fps / config.target_fps)))
  return max(1, int(config.frame_stride))


def guessed_intrinsics(height, width):
  """The unknown-intrinsics guess at the stored size (the per-video learning's start)."""
  return common.intrinsics_vector(0.5 * (height + width), 0.5 * (height + width), 0.5 * width,
                                  0.5 * height)


def process_video(config, source, tally):
  """Triplets of one video or frame folder."""
  stride = frame_stride(source, config)
  plan = None
  intrinsics = None
  last_kept = None
  window = collections.deque(maxlen=3)
  for index, (frame_id, frame) in enumerate(_iter_decoded(source, tally)):
    if index % stride:
      continue
    if plan is None:
      plan = common.resize_and_centre_crop(frame.shape[0], frame.shape[1], config.height,
                                           config.width)
      if source.intrinsics is not None:
        intrinsics = plan.intrinsics(source.intrinsics, 'pixel_centre')
      else:
        intrinsics = guessed_intrinsics(config.height, config.width)
    if frame.shape[:2] != (plan.src_height, plan.src_width):
      tally.bad(source.path, 'frame %s is %dx%d, earlier frames %dx%d' % (
          frame_id, frame.shape[1], frame.shape[0], plan.src_width, plan.src_height),
                'frames of another size')
      continue
    small = plan.image(frame)
    if last_kept is not None and config.static_threshold > 0:
      change = np.mean(np.abs(small.astype(np.float32) - last_kept.astype(np.float32))) / 255.0
      if change <= config.static_threshold:
        tally.skip('static frames dropped')
        continue
    last_kept = small
    window.append((frame_id, small))
    if len(window) == 3:
      ids = [w[0] for w in window]
      yield '%s/%s' % (source.video_id, ids[1]), common.make_example(
          images=[w[1] for w in window], intrinsics=intrinsics, video_id=source.video_id,
          source=VideoTriplets.SOURCE, frame_ids=ids,
          intrinsics_known=source.intrinsics is not None)


class VideoTriplets(common.TripletBuilder):
  """Frame triplets from a folder of videos (or frame folders)."""

  name = 'video_triplets'
  SOURCE = 'video'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Videos and frame folders; static-frame dropping; intrinsics '
                            'given or unknown.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [VideoConfig(name='default', description='128x416 triplets, every frame.')]
  DEFAULT_CONFIG_NAME = 'default'

  def _info(self):
    return self.triplet_info(
        description=__doc__.split('\n\n')[0],
        homepage='https://github.com/google-research/google-research/tree/master/'
                 'depth_and_motion_learning',
        citation=None)

  def _split_generators(self, dl_manager):
    config = self.builder_config
    manual_dir = os.fspath(dl_manager.manual_dir)
    default, per_video = load_intrinsics_spec(config.intrinsics)
    sources = [VideoSource(path, video_id, is_folder, per_video.get(video_id, default))
               for path, video_id, is_folder in list_sources(manual_dir)]
    unknown = sorted(set(per_video) - {s.video_id for s in sources})
    if unknown:
      raise ValueError('intrinsics given for videos not found in %s: %s' %
                       (manual_dir, ', '.join(unknown)))
    if not sources:
      raise ValueError('%s: no video (%s) or frame folder found' %
                       (manual_dir, ', '.join(VIDEO_EXTENSIONS)))
    return {'train': self._generate_examples(sources)}

  def _generate_examples(self, sources):
    return self._triplets('train', sources, functools.partial(process_video,
                                                              self.builder_config))


def write_sample_video(path, num_frames=8, height=48, width=64, fps=10.0, seed=0,
                       static_after=None):
  """Encodes a short video of a texture sliding right by 2 px per frame (mp4v or MJPG).

  From frame `static_after` on, the picture stops moving. Returns the frames written (RGB).
  """
  rng = np.random.default_rng(seed)
  texture = cv2.resize(rng.integers(0, 256, (height // 4, width // 4 + num_frames, 3),
                                    dtype=np.uint8), (width + 8 * num_frames, height),
                       interpolation=cv2.INTER_LINEAR)
  fourcc = 'MJPG' if path.lower().endswith('.avi') else 'mp4v'
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
  if not writer.isOpened():
    raise RuntimeError('OpenCV cannot write %s' % path)
  frames = []
  for i in range(num_frames):
    shift = 2 * (i if static_after is None else min(i, static_after))
    frame = np.ascontiguousarray(texture[:, shift:shift + width])
    frames.append(frame)
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()
  return frames


def write_sample_tree(root, num_videos=1, num_frames=8, height=48, width=64, folders=0,
                      seed=0):
  """Videos 'clip_<i>.mp4' and frame folders 'frames_<i>/' under root (tests, benchmarks)."""
  os.makedirs(root, exist_ok=True)
  for i in range(num_videos):
    write_sample_video(os.path.join(root, 'clip_%d.mp4' % i), num_frames, height, width,
                       seed=seed + i)
  rng = np.random.default_rng(seed + 1000)
  for i in range(folders):
    folder = os.path.join(root, 'frames_%d' % i)
    os.makedirs(folder, exist_ok=True)
    for j in range(num_frames):
      cv2.imwrite(os.path.join(folder, '%06d.png' % j),
                  rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
