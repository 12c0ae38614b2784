"""Cityscapes sequences -> frame triplets (TFDS builder `cityscapes_triplets`).

Splits:
  train  The struct2depth protocol (SPEC 1.2, gen_data_city.py) on
         leftImg8bit_sequence/train: frames are grouped into runs of one snippet
         with consecutive frame numbers; every second frame of a run is used
         (`frame_skip=2`) and triplets are a sliding window over those. Each
         frame keeps the middle 50 % of its rows (256..767 of 1024), is resized
         to height 128 keeping the aspect (2048x512 -> 512x128, OpenCV bilinear)
         and centre-cropped to 416 columns (48 dropped each side). Intrinsics
         come from the snippet's camera JSON (fx, fy, u0, v0) and are moved
         EXACTLY through the crop and resize (crop offsets subtracted, pixel
         centres at integers: x -> (x + 0.5) s - 0.5), where the reference
         approximated the crops by cy /= 2 and cx /= 512/416 (exact only for a
         centred principal point); `intrinsics_convention='reference'` keeps
         plain scaling for the resize but still subtracts the crop offsets.
         With `with_masks`, the per-frame instance masks `<frame>-seg.png`
         beside the frames (e.g. Mask R-CNN output; grey, 16-bit or RGB ids)
         are cropped the same way with nearest-neighbour resizing (the
         reference's bilinear resize blended ids at borders) and aligned
         across the triplet by the reference's greedy IoU > 0.3 rule
         (`align_instance_ids`), then renumbered 1..K.
         video_id = '<city>_<snippet>_<first frame number>'. depth is 0 (unknown).
  test   One triplet per ground-truth frame, i.e. per
         disparity/test/<city>/*_disparity.png (the 1525 test frames, SPEC 8.2):
         the frame and the frames `frame_skip` before and after it in its
         snippet (clamped), cropped at FULL resolution to the window
         [256:768, 192:1856] (the training crop before its downscaling), so
         images are 512x1664 and intrinsics are the camera JSON's minus the crop
         offsets. depth[1] is the ground truth of the middle frame: disparity
         d = (v - 1) / 256 for v > 0, depth = baseline * fx / d (camera JSON
         extrinsic baseline, intrinsic fx), 0 where invalid, cropped the same
         way; depth[0] and depth[2] are 0. The evaluator resizes the input to
         416x128 and its prediction back to 512x1664 (SPEC 8.2).

Large-scale conversion with Beam (one run of frames, or one test city, per work item):

  python -m data_prep.convert --dataset=cityscapes --manual_dir=/data/cityscapes \\
      --data_dir=/data/tfds --beam_runner=DirectRunner \\
      --beam_options="--direct_num_workers=8 --direct_running_mode=multi_processing"
  # Dataflow: --beam_runner=DataflowRunner --beam_options="--project=P --region=R
  #   --temp_location=gs://B/tmp --setup_file=./setup.py" (manual_dir/data_dir on gs://)
  # Flink/Spark: --beam_runner=FlinkRunner --beam_options="--flink_master=HOST:8081"
  #              --beam_runner=SparkRunner --beam_options="--spark_master_url=spark://HOST:7077"
"""

import dataclasses
import functools
import json
import os
import re
from typing import Tuple

import cv2
import numpy as np
import tensorflow_datasets as tfds

from data_prep import common

_FRAME_RE = re.compile(r'^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit\.png$')
_DISPARITY_RE = re.compile(r'^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_disparity\.png$')

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
From https://www.cityscapes-dataset.com/downloads/ download and unzip into manual_dir:
leftImg8bit_sequence_trainvaltest.zip, camera_trainvaltest.zip and (for the test
split's ground truth) disparity_trainvaltest.zip:

  manual_dir/
    leftImg8bit_sequence/train/<city>/<city>_<snippet>_<frame>_leftImg8bit.png
    leftImg8bit_sequence/test/<city>/...
    camera/train/<city>/<city>_<snippet>_<frame>_camera.json
    camera/test/<city>/...
    disparity/test/<city>/<city>_<snippet>_<frame>_disparity.png
    (optional, config with_masks) <frame>_leftImg8bit-seg.png beside each frame
"""

_CITATION = """\
@inproceedings{Cordts2016Cityscapes,
  title={The Cityscapes Dataset for Semantic Urban Scene Understanding},
  author={Cordts, Marius and Omran, Mohamed and Ramos, Sebastian and Rehfeld, Timo and
          Enzweiler, Markus and Benenson, Rodrigo and Franke, Uwe and Roth, Stefan and
          Schiele, Bernt},
  booktitle={Proc. of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2016}
}"""


@dataclasses.dataclass(eq=False)
class CityscapesConfig(tfds.core.BuilderConfig):
  """Options of the Cityscapes conversion (see the module docstring)."""
  with_masks: bool = False
  frame_skip: int = 2
  height: int = 128
  width: int = 416
  train_subsets: Tuple[str, ...] = ('train',)
  test_subset: str = 'test'
  intrinsics_convention: str = 'pixel_centre'
  align_threshold: float = 0.3


@dataclasses.dataclass(frozen=True)
class Run:
  """Consecutive frames of one snippet (train unit)."""
  root: str
  subset: str
  city: str
  snippet: str
  frames: Tuple[str, ...]  # file names, in order

  @property
  def name(self):
    return '%s_%s_%s' % (self.city, self.snippet, _FRAME_RE.match(self.frames[0])['frame'])


@dataclasses.dataclass(frozen=True)
class TestCity:
  """The ground-truth frames of one test city (test unit)."""
  root: str
  subset: str
  city: str
  stems: Tuple[str, ...]  # '<city>_<snippet>_<frame>'

  @property
  def name(self):
    return self.city


# ----------------------------------------------------------------------------------------------
# Geometry of the struct2depth crop.


@dataclasses.dataclass(frozen=True)
class Crop:
  """Keep rows [top, top + crop_height), then resize/crop with `plan`."""
  top: int
  crop_height: int
  plan: common.ResizeCrop

  def image(self, image, ids=False):
    return self.plan.image(image[self.top:self.top + self.crop_height], ids=ids)

  def intrinsics(self, intrinsics, convention):
    return self.plan.intrinsics(common.crop_intrinsics(intrinsics, 0, self.top), convention)


def train_crop(src_height, src_width, height, width):
  """The struct2depth crop: middle 50 % of rows, resize to `height` (aspect kept), centre crop."""
  top, bottom = int(src_height * 0.25), int(src_height * 0.75)
  crop_height = bottom - top
  resized_width = int(float(height) * src_width / crop_height)
  if resized_width < width:
    raise ValueError('a %dx%d frame is too narrow for %dx%d triplets' %
                     (src_width, src_height, width, height))
  left = (resized_width - width) // 2
  plan = common.ResizeCrop(crop_height, src_width, height, resized_width, 0, left, height, width)
  return Crop(top, crop_height, plan)


def eval_window(src_height, src_width, height, width):
  """(top, left, rows, cols) at full resolution of the training crop: [256:768, 192:1856]."""
  crop = train_crop(src_height, src_width, height, width)
  scale = crop.plan.scale_x
  left = int(round(crop.plan.left / scale))
  cols = int(round(width / scale))
  return crop.top, left, crop.crop_height, cols


# ----------------------------------------------------------------------------------------------
# Camera, disparity, masks.


def read_camera(path):
  """(fx, fy, u0, v0), baseline of a Cityscapes camera JSON."""
  data = json.loads(common.read_text(path))
  k = data['intrinsic']
  return (common.intrinsics_vector(k['fx'], k['fy'], k['u0'], k['v0']),
          float(data.get('extrinsic', {}).get('baseline', 0.0)))


def disparity_to_depth(raw, baseline, fx):
  """Depth (m) of a Cityscapes uint16 disparity PNG: d = (v - 1) / 256 for v > 0, 0 = invalid."""
  raw = np.asarray(raw, np.float64)
  disparity = np.where(raw > 0, (raw - 1.0) / 256.0, 0.0)
  depth = np.zeros_like(disparity)
  valid = disparity > 0
  depth[valid] = baseline * fx / disparity[valid]
  return depth.astype(np.float32)


def _iou(mask1, mask2):
  return np.sum(mask1 & mask2) / np.sum(mask1 | mask2)


def align_instance_ids(seg1, seg2, seg3, threshold_same=0.3):
  """The reference's `alignment.align` (SPEC 1.2): ids of frame 1 carried to frames 2 and 3.

  For each id of frame 1 (0 included), in increasing order: the not-yet-used id
  of frame 2 with the highest IoU; if above the threshold, that region's best
  not-yet-used match in frame 3; if also above, the three regions get the
  frame-1 id and both matches are used up. Everything else becomes 0.
  """
  out = [np.zeros_like(seg1), np.zeros_like(seg2), np.zeros_like(seg3)]
  remaining2 = list(np.unique(seg2))
  remaining3 = list(np.unique(seg3))
  for seg_id in np.unique(seg1):
    mask1 = seg1 == seg_id
    best2, overlap2 = None, float('-inf')
    for candidate in remaining2:
      overlap = _iou(mask1, seg2 == candidate)
      if overlap > overlap2:
        best2, overlap2 = candidate, overlap
    if overlap2 <= threshold_same:
      continue
    mask2 = seg2 == best2
    best3, overlap3 = None, float('-inf')
    for candidate in remaining3:
      overlap = _iou(mask2, seg3 == candidate)
      if overlap > overlap3:
        best3, overlap3 = candidate, overlap
    if overlap3 > threshold_same:
      out[0][mask1] = seg_id
      out[1][mask2] = seg_id
      out[2][seg3 == best3] = seg_id
      remaining2.remove(best2)
      remaining3.remove(best3)
  return out


# ----------------------------------------------------------------------------------------------
# Sequences.


def list_runs(root, subset):
  """Runs of consecutive frames of one snippet, per city, as gen_data_city.py groups them."""
  base = os.path.join(root, 'leftImg8bit_sequence', subset)
  runs = []
  for city in common.listdir(base):
    city_dir = os.path.join(base, city)
    names = [f for f in common.listdir(city_dir) if _FRAME_RE.match(f)]
    current, last = [], None
    for name in names:
      m = _FRAME_RE.match(name)
      key = (m['seq'], int(m['frame']))
      if last is None or key[0] != last[0] or key[1] != last[1] + 1:
        if current:
          runs.append(Run(root, subset, city, _FRAME_RE.match(current[0])['seq'],
                          tuple(current)))
        current = []
      current.append(name)
      last = key
    if current:
      runs.append(Run(root, subset, city, _FRAME_RE.match(current[0])['seq'], tuple(current)))
  return runs


def list_test_cities(root, subset):
  base = os.path.join(root, 'disparity', subset)
  cities = []
  for city in common.listdir(base):
    stems = [m.group(0)[:-len('_disparity.png')]
             for m in map(_DISPARITY_RE.match, common.listdir(os.path.join(base, city))) if m]
    if stems:
      cities.append(TestCity(root, subset, city, tuple(stems)))
  return cities


def _camera_path(root, subset, city, stem):
  return os.path.join(root, 'camera', subset, city, stem + '_camera.json')


def process_run(config, run, tally):
  """Train triplets of one run of frames."""
  city_dir = os.path.join(run.root, 'leftImg8bit_sequence', run.subset, run.city)
  stems = [name[:-len('_leftImg8bit.png')] for name in run.frames]
  camera_paths = [_camera_path(run.root, run.subset, run.city, s) for s in stems]
  existing = [p for p in camera_paths if common.isfile(p)]
  if not existing:
    tally.bad(camera_paths[0], 'no camera JSON for any frame of this run',
              'runs without camera calibration')
    return
  try:
    raw_intrinsics, _ = read_camera(existing[0])
  except common.FILE_ERRORS + (ValueError, KeyError) as e:
    tally.bad(existing[0], 'cannot read the camera JSON: %r' % e, 'runs without camera '
              'calibration')
    return
  used = run.frames[::max(1, config.frame_skip)]
  if len(used) < 3:
    tally.skip('runs shorter than 3 used frames')
    return

  def load(name):
    image = common.read_image(os.path.join(city_dir, name), tally, 'unreadable images')
    if image is None:
      return None
    crop = train_crop(image.shape[0], image.shape[1], config.height, config.width)
    masks = None
    if config.with_masks:
      mask_path = os.path.join(city_dir, name[:-len('.png')] + '-seg.png')
      id_map = common.read_id_map(mask_path)
      if id_map is None or id_map.shape != image.shape[:2]:
        tally.bad(mask_path, 'missing or undecodable mask, or not the size of its frame',
                  'unreadable masks')
        return None
      masks = crop.image(id_map, ids=True)
    return (crop.image(image), crop.intrinsics(raw_intrinsics, config.intrinsics_convention),
            masks)

  for window, loaded in common.load_windows(used, load):
    if any(item is None for item in loaded):
      tally.skip('triplets with a bad frame')
      continue
    frame_ids = [name[:-len('_leftImg8bit.png')] for name in window]
    masks = None
    if config.with_masks:
      masks = common.compact_ids(align_instance_ids(*[item[2] for item in loaded],
                                                    threshold_same=config.align_threshold))
    yield '%s/%s' % (run.name, frame_ids[1]), common.make_example(
        images=[item[0] for item in loaded], intrinsics=loaded[1][1], video_id=run.name,
        source=CityscapesTriplets.SOURCE, frame_ids=frame_ids, masks=masks,
        depth=np.zeros((3, config.height, config.width), np.float32))


def process_test_city(config, city, tally):
  """Test triplets (full-resolution crop, ground truth on the middle frame) of one city."""
  city_dir = os.path.join(city.root, 'leftImg8bit_sequence', city.subset, city.city)
  for stem in city.stems:
    m = re.match(r'^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)$', stem)
    number, digits = int(m['frame']), len(m['frame'])

    def frame_path(k, m=m, digits=digits):
      return os.path.join(city_dir, '%s_%s_%0*d_leftImg8bit.png' % (m['city'], m['seq'],
                                                                    digits, k))
    centre = frame_path(number)
    if not common.isfile(centre):
      tally.bad(centre, 'test frame not found in leftImg8bit_sequence', 'missing test frames')
      continue
    numbers = []
    for k in (number - config.frame_skip, number, number + config.frame_skip):
      numbers.append(k if common.isfile(frame_path(k)) else number)  # clamped at snippet ends
    images = [common.read_image(frame_path(k), tally, 'unreadable test frames') for k in numbers]
    if any(im is None for im in images):
      continue
    camera_path = _camera_path(city.root, city.subset, city.city, stem)
    disparity_path = os.path.join(city.root, 'disparity', city.subset, city.city,
                                  stem + '_disparity.png')
    try:
      intrinsics, baseline = read_camera(camera_path)
    except common.FILE_ERRORS + (ValueError, KeyError) as e:
      tally.bad(camera_path, 'cannot read the camera JSON: %r' % e, 'test frames without '
                'calibration')
      continue
    raw = common.decode_file(disparity_path, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2 or raw.shape != images[1].shape[:2]:
      tally.bad(disparity_path, 'missing or undecodable disparity, or not 16-bit single '
                'channel of the image size', 'unreadable disparities')
      continue
    if baseline <= 0:
      tally.bad(camera_path, 'extrinsic baseline missing or not positive',
                'test frames without calibration')
      continue
    top, left, rows, cols = eval_window(images[1].shape[0], images[1].shape[1], config.height,
                                        config.width)
    window = (slice(top, top + rows), slice(left, left + cols))
    depth = np.zeros((3, rows, cols), np.float32)
    depth[1] = disparity_to_depth(raw, baseline, intrinsics[0])[window]
    frame_ids = ['%s_%s_%0*d' % (m['city'], m['seq'], digits, k) for k in numbers]
    yield '%s/%s' % (city.city, stem), common.make_example(
        images=[im[window] for im in images],
        intrinsics=common.crop_intrinsics(intrinsics, left, top),
        video_id='%s_%s' % (m['city'], m['seq']), source=CityscapesTriplets.SOURCE,
        frame_ids=frame_ids, depth=depth,
        masks=np.zeros((3, rows, cols), np.uint16) if config.with_masks else None)


class CityscapesTriplets(common.TripletBuilder):
  """Cityscapes frame triplets (struct2depth protocol) and the depth test split."""

  name = 'cityscapes_triplets'
  SOURCE = 'cityscapes'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'struct2depth-protocol train triplets, exact intrinsics; test '
                            'split with disparity ground truth.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      CityscapesConfig(name='default', description='416x128 triplets without masks.'),
      CityscapesConfig(name='with_masks', with_masks=True,
                       description='416x128 triplets with aligned instance masks from '
                                   '<frame>-seg.png files.'),
  ]
  DEFAULT_CONFIG_NAME = 'default'

  def _info(self):
    return self.triplet_info(
        description=__doc__.split('\n\n')[0],
        homepage='https://www.cityscapes-dataset.com/',
        citation=_CITATION,
        with_masks=self.builder_config.with_masks,
        with_depth=True)

  def _split_generators(self, dl_manager):
    config = self.builder_config
    root = os.fspath(dl_manager.manual_dir)
    runs = [run for subset in config.train_subsets for run in list_runs(root, subset)]
    if not runs:
      raise ValueError('%s: no frames found under leftImg8bit_sequence/%s/<city>/' %
                       (root, ','.join(config.train_subsets)))
    splits = {'train': self._generate_examples('train', runs)}
    test_cities = list_test_cities(root, config.test_subset)
    if test_cities:
      splits['test'] = self._generate_examples('test', test_cities)
    return splits

  def _generate_examples(self, split, sequences):
    process = process_run if split == 'train' else process_test_city
    return self._triplets(split, sequences, functools.partial(process, self.builder_config))


# ----------------------------------------------------------------------------------------------
# A small raw tree in the real layout (tests, benchmarks).


def sample_camera(height, width):
  return {'extrinsic': {'baseline': 0.209313, 'pitch': 0.038, 'roll': 0.0, 'x': 1.7,
                        'y': 0.1, 'yaw': -0.0195, 'z': 1.18},
          'intrinsic': {'fx': 2262.52 * width / 2048, 'fy': 2265.30 * width / 2048,
                        'u0': 1096.98 * width / 2048, 'v0': 513.137 * height / 1024}}


def write_sample_tree(root, city='aachen', snippets=(0, 1), frames_per_snippet=7,
                      height=64, width=128, subsets=('train', 'test'), masks=False,
                      disparity_value=None, seed=0):
  """Cityscapes layout under root: sequences, camera JSON (frame 19 style: the middle frame),
  disparity PNGs for the test subset's middle frames, optional -seg.png masks.

  Returns {stem: camera dict} of the camera files written.
  """
  rng = np.random.default_rng(seed)
  cameras = {}
  for subset in subsets:
    seq_dir = os.path.join(root, 'leftImg8bit_sequence', subset, city)
    cam_dir = os.path.join(root, 'camera', subset, city)
    os.makedirs(seq_dir, exist_ok=True)
    os.makedirs(cam_dir, exist_ok=True)
    for snippet in snippets:
      middle = frames_per_snippet // 2
      for frame in range(frames_per_snippet):
        stem = '%s_%06d_%06d' % (city, snippet, frame)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.imwrite(os.path.join(seq_dir, stem + '_leftImg8bit.png'), image)
        if masks:
          seg = np.zeros((height, width), np.uint16)
          seg[height // 4 + 4:height // 4 + 14, 20 + 2 * frame:40 + 2 * frame] = 7
          cv2.imwrite(os.path.join(seq_dir, stem + '_leftImg8bit-seg.png'), seg)
        if frame == middle:
          camera = sample_camera(height, width)
          with open(os.path.join(cam_dir, stem + '_camera.json'), 'w') as f:
            json.dump(camera, f, indent=4)
          cameras[stem] = camera
          if subset == 'test':
            disp_dir = os.path.join(root, 'disparity', subset, city)
            os.makedirs(disp_dir, exist_ok=True)
            if disparity_value is None:
              disparity = rng.integers(0, 20000, (height, width)).astype(np.uint16)
            else:
              disparity = np.full((height, width), disparity_value, np.uint16)
            cv2.imwrite(os.path.join(disp_dir, stem + '_disparity.png'), disparity)
  return cameras
