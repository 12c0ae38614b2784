"""struct2depth triplet folders -> the triplet format (TFDS builder `struct2depth_triplets`).

Moves datasets already prepared for the reference (SPEC 1.1) into the new
format without going back to the raw data. manual_dir is a struct2depth
dataset root:

  train.txt                      '<subfolder> <frame_id>' per line
  <subfolder>/<frame_id>.png     three frames t-1 | t | t+1 side by side (H x 3W)
  <subfolder>/<frame_id>_cam.txt 'fx,0,x0,0,fy,y0,0,0,1' at the stored size
  <subfolder>/<frame_id>-fseg.png  optional: instance ids (RGB r*65536+g*256+b, 0 =
                                 background), aligned across the three frames

Each subfolder is one sequence and its name is the `video_id` (struct2depth
folders are one drive/camera or one Cityscapes snippet each). Intrinsics are
taken as stored (the reference reads fx = v[0], x0 = v[2], fy = v[4], y0 = v[5]);
`frame_ids` are '<frame_id>/0', '/1', '/2'. With `with_masks` the -fseg.png ids
are renumbered 1..K (same ids in the three frames) to fit the uint16 feature.
Like DAML, an empty intrinsics file of 2011_09_26_drive_0001_sync_02/0000000001
(a known hole in the reference's KITTI data) is replaced by the values DAML
hard-codes (SPEC 1.2); any other empty or malformed file is bad input.

Large-scale conversion with Beam (one subfolder per work item):

  python -m data_prep.convert --dataset=struct2depth --manual_dir=/data/kitti_s2d \\
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
import os
from typing import Tuple

import cv2
import numpy as np
import tensorflow_datasets as tfds

from data_prep import common
from depth_motion.data import struct2depth as struct2depth_reader

# DAML's substitute for the empty intrinsics file of this one KITTI sample.
_PATCHED_SAMPLE = ('2011_09_26_drive_0001_sync_02', '0000000001')
_PATCHED_INTRINSICS = (241.67446312399355, 0.0, 204.16801030595812, 0.0, 246.28486826666665,
                       59.000832, 0.0, 0.0, 1.0)

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
manual_dir is a struct2depth dataset root (as written by struct2depth's
gen_data_kitti.py / gen_data_city.py, or DAML's data):

  manual_dir/
    train.txt                          '<subfolder> <frame_id>' per line
    <subfolder>/<frame_id>.png         the three frames side by side (H x 3W)
    <subfolder>/<frame_id>_cam.txt     9 comma-separated numbers (row-major K)
    <subfolder>/<frame_id>-fseg.png    instance masks (only for the with_masks config)
"""


@dataclasses.dataclass(eq=False)
class Struct2DepthConfig(tfds.core.BuilderConfig):
  """Options: masks or not, which list files make which splits, strip extension."""
  with_masks: bool = False
  split_files: Tuple[Tuple[str, str], ...] = (('train', 'train.txt'),)
  image_extension: str = 'png'


@dataclasses.dataclass(frozen=True)
class Folder:
  """One sequence: the listed samples of one subfolder."""
  root: str
  subfolder: str
  frame_ids: Tuple[str, ...]

  @property
  def name(self):
    return self.subfolder


def read_list(path):
  """[(subfolder, frame_id)] of a struct2depth list file (exactly two words a line)."""
  samples = []
  for number, line in enumerate(common.read_text(path).splitlines(), start=1):
    words = line.split()
    if not words:
      continue
    if len(words) != 2:
      raise ValueError('%s:%d: expected "<subfolder> <frame_id>", got %r' % (path, number, line))
    samples.append((words[0], words[1]))
  return samples


def folders_of(root, samples):
  """Samples grouped by subfolder (first-seen order), duplicates dropped."""
  groups = collections.OrderedDict()
  for subfolder, frame_id in samples:
    frames = groups.setdefault(subfolder, [])
    if frame_id not in frames:
      frames.append(frame_id)
  return [Folder(root, sub, tuple(frames)) for sub, frames in groups.items()]


def split_strip(strip, where):
  if strip.shape[1] % 3:
    raise ValueError('%s: strip width %d is not a multiple of 3' % (where, strip.shape[1]))
  width = strip.shape[1] // 3
  return [strip[:, i * width:(i + 1) * width] for i in range(3)]


def process_folder(config, folder, tally):
  """Triplets of one struct2depth subfolder."""
  directory = os.path.join(folder.root, folder.subfolder)
  for frame_id in folder.frame_ids:
    stem = os.path.join(directory, frame_id)
    image_path = '%s.%s' % (stem, config.image_extension)
    strip = common.read_image(image_path, tally, 'unreadable strips')
    if strip is None:
      continue
    try:
      frames = split_strip(strip, image_path)
    except ValueError as e:
      tally.bad(image_path, str(e), 'unreadable strips')
      continue
    cam_path = stem + '_cam.txt'
    try:
      text = common.read_text(cam_path)
      if not text.strip() and (folder.subfolder, frame_id) == _PATCHED_SAMPLE:
        text = ','.join(repr(v) for v in _PATCHED_INTRINSICS)
      intrinsics = common.intrinsics_vector(*struct2depth_reader.parse_cam_file(text, cam_path))
    except common.FILE_ERRORS + (ValueError,) as e:
      tally.bad(cam_path, 'cannot read the intrinsics: %s' % e, 'unreadable intrinsics')
      continue
    masks = None
    if config.with_masks:
      mask_path = stem + '-fseg.png'
      id_map = common.read_id_map(mask_path)
      if id_map is None or id_map.shape != strip.shape[:2]:
        problem = ('missing or undecodable mask' if id_map is None else
                   'mask is %s, strip is %s' % (id_map.shape, strip.shape[:2]))
        tally.bad(mask_path, problem, 'unreadable masks')
        continue
      masks = common.compact_ids(split_strip(id_map, mask_path))
    yield '%s/%s' % (folder.subfolder, frame_id), common.make_example(
        images=frames, intrinsics=intrinsics, video_id=folder.subfolder,
        source=Struct2DepthTriplets.SOURCE,
        frame_ids=['%s/%d' % (frame_id, i) for i in range(3)], masks=masks)


class Struct2DepthTriplets(common.TripletBuilder):
  """Frame triplets read from struct2depth folders."""

  name = 'struct2depth_triplets'
  SOURCE = 'struct2depth'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'struct2depth strips, intrinsics and optional masks.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      Struct2DepthConfig(name='default', description='Images and intrinsics.'),
      Struct2DepthConfig(name='with_masks', with_masks=True,
                         description='Images, intrinsics and the -fseg.png instance masks.'),
  ]
  DEFAULT_CONFIG_NAME = 'default'

  def _info(self):
    return self.triplet_info(
        description=__doc__.split('\n\n')[0],
        homepage='https://github.com/tensorflow/models/tree/master/research/struct2depth',
        citation=None,
        with_masks=self.builder_config.with_masks)

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    splits = {}
    for split, list_name in self.builder_config.split_files:
      path = os.path.join(root, list_name)
      if not common.isfile(path):
        raise ValueError('%s: list file of split %r not found' % (path, split))
      splits[split] = self._generate_examples(split, folders_of(root, read_list(path)))
    return splits

  def _generate_examples(self, split, folders):
    return self._triplets(split, folders, functools.partial(process_folder,
                                                            self.builder_config))


def write_sample_tree(root, folders=(('seq_a', 3), ('seq_b', 2)), height=16, width=24,
                      with_masks=True, seed=0):
  """Writes a struct2depth root (list, strips, _cam.txt, -fseg.png) for tests and benchmarks.

  Returns {(subfolder, frame_id): (strip RGB, (fx, fy, x0, y0))}.
  """
  rng = np.random.default_rng(seed)
  written = {}
  lines = []
  for subfolder, count in folders:
    os.makedirs(os.path.join(root, subfolder), exist_ok=True)
    for i in range(1, count + 1):
      frame_id = '%010d' % i
      strip = rng.integers(0, 256, (height, 3 * width, 3), dtype=np.uint8)
      stem = os.path.join(root, subfolder, frame_id)
      cv2.imwrite(stem + '.png', cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
      fx, fy = float(rng.uniform(0.5, 1.5) * width), float(rng.uniform(0.5, 1.5) * width)
      x0, y0 = width / 2 + 0.25, height / 2 - 0.5
      with open(stem + '_cam.txt', 'w') as f:
        f.write('%r,0.0,%r,0.0,%r,%r,0.0,0.0,1.0' % (fx, x0, fy, y0))
      if with_masks:
        seg = np.zeros((height, 3 * width, 3), np.uint8)
        for t in range(3):  # one object, id (1, 2, 3) in RGB, moving right
          seg[2:6, t * width + 2 + t:t * width + 8 + t] = (1, 2, 3)
        cv2.imwrite(stem + '-fseg.png', cv2.cvtColor(seg, cv2.COLOR_RGB2BGR))
      written[(subfolder, frame_id)] = (strip, (fx, fy, x0, y0))
      lines.append('%s %s' % (subfolder, frame_id))
  with open(os.path.join(root, 'train.txt'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return written
