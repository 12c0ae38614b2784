"""Reading the struct2depth folder format directly (SPEC 1.1 and 1.3).

A dataset is a list file (`train.txt`) with one `<subfolder> <frame_id>` line per
triplet; paths are relative to the list file's directory. Each triplet has

  <subfolder>/<frame_id>.png        RGB strip H x 3W: frames t-1 | t | t+1
  <subfolder>/<frame_id>_cam.txt    9 comma-separated floats, row-major 3x3 K
                                    (fx, 0, x0, 0, fy, y0, 0, 0, 1) at the frame size
  <subfolder>/<frame_id>-fseg.png   optional RGB instance-id strip, id = r*65536 + g*256 + b

`Struct2DepthSource` yields clips in the intermediate form of `readers.py`
(`video_id` = the subfolder, `intrinsics_known` = True), so the training
pipeline treats it like any TFDS triplet builder. The reference's pairs are the
first two frames of each strip (`use_both_pairs=False` in `readers.to_pairs`).

Differences from the reference reader:
* The intrinsics vector uses the actual frame size (W = strip width / 3,
  H = strip height), not the hard-coded 416 x 128; the same for 416x128 data.
* Masks are read only when asked for (`masks='required'` when the model uses
  them, `'optional'` to treat a missing `-fseg.png` as all background,
  `'none'` to ignore them); the reference opens the mask file always.
* Every file is checked up front in Python: the list file's lines, the
  existence of each file, the 9 numbers of each `_cam.txt` (read here, so the
  graph does not parse text) and the PNG headers (the strip must be 3 frames
  wide, a mask the size of its strip). A problem raises ValueError naming the
  file and the problem, or with `skip_bad_examples` drops the example, counts
  it in `num_skipped` and logs the count. Damage inside PNG data that only
  decoding reveals raises a tf.errors.InvalidArgumentError naming the file
  (checked again in the graph with tf.debugging asserts).
* The reference's patch for the one empty KITTI intrinsics file is kept.
"""

import concurrent.futures
import copy
import logging
import math
import os
import struct

import numpy as np
import tensorflow as tf

from depth_motion.data import features as features_lib

_LOG = logging.getLogger(__name__)

IMAGES_PER_SEQUENCE = features_lib.NUM_FRAMES
MASKS_NONE = 'none'
MASKS_OPTIONAL = 'optional'
MASKS_REQUIRED = 'required'
_MASK_MODES = (MASKS_NONE, MASKS_OPTIONAL, MASKS_REQUIRED)

# One KITTI intrinsics file is empty in the reference's copy of the data; the
# reference substitutes these values (SPEC 1.2).
KITTI_CORRUPT_FILE = '2011_09_26_drive_0001_sync_02/0000000001'
KITTI_CORRUPT_FILE_INTRINSICS = ('241.67446312399355,0.0,204.16801030595812,'
                                 '0.0,246.28486826666665,59.000832,0.0,0.0,1.0')

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_IO_THREADS = 16
_MAX_LISTED_PROBLEMS = 5


class _BadExample(ValueError):
  """One example's problem: the file and what is wrong with it (a ValueError for callers)."""


def _png_size(path):
  """(height, width) from a PNG's IHDR chunk, reading 24 bytes."""
  with tf.io.gfile.GFile(path, 'rb') as f:
    head = f.read(24)
  if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b'IHDR':
    raise _BadExample('%s: not a PNG file' % path)
  width, height = struct.unpack('>II', head[16:24])
  return height, width


def parse_cam_file(content, path='_cam.txt'):
  """The (fx, fy, x0, y0) of a `_cam.txt`: a row-major 3x3 matrix of 9 numbers.

  Numbers are separated by commas (struct2depth writes one line) or newlines
  (one row per line, commas within). Non-finite values and focal lengths that
  are not positive are errors naming `path`. The reader, the converter and
  evaluate share this parser.
  """
  # A row-per-line file's '\r' (CRLF) goes with the whitespace each word is stripped of.
  words = [w.strip() for w in content.strip().replace('\n', ',').split(',')]
  if len(words) != 9:
    raise _BadExample('%s: expected 9 comma-separated numbers (a row-major 3x3 matrix), got '
                      '%d: %r' % (path, len([w for w in words if w]), content[:200]))
  try:
    values = [float(w) for w in words]
  except ValueError:
    raise _BadExample('%s: not 9 numbers: %r' % (path, content[:200])) from None
  if not all(math.isfinite(v) for v in values):
    raise _BadExample('%s: non-finite value in %r' % (path, content[:200]))
  fx, _, x0, _, fy, y0 = values[:6]
  if fx <= 0 or fy <= 0:
    raise _BadExample('%s: focal lengths must be positive, got fx=%g fy=%g' % (path, fx, fy))
  return fx, fy, x0, y0


def _check_example(stem, masks):
  """Validates one triplet's files; returns (height, width, (fx, fy, x0, y0), has_mask)."""
  image_path = stem + '.png'
  cam_path = stem + '_cam.txt'
  mask_path = stem + '-fseg.png'
  for path in (image_path, cam_path):
    if not tf.io.gfile.exists(path):
      raise _BadExample('%s: file not found' % path)
  height, strip_width = _png_size(image_path)
  if strip_width % IMAGES_PER_SEQUENCE or height == 0 or strip_width == 0:
    raise _BadExample('%s: image strip is %dx%d (HxW); its width must hold %d frames of equal '
                      'width' % (image_path, height, strip_width, IMAGES_PER_SEQUENCE))
  with tf.io.gfile.GFile(cam_path, 'r') as f:
    content = f.read()
  if not content.strip() and stem.endswith(KITTI_CORRUPT_FILE):
    content = KITTI_CORRUPT_FILE_INTRINSICS
  intrinsics = parse_cam_file(content, cam_path)
  has_mask = False
  if masks != MASKS_NONE:
    if tf.io.gfile.exists(mask_path):
      mask_size = _png_size(mask_path)
      if mask_size != (height, strip_width):
        raise _BadExample('%s: mask strip is %dx%d, its image strip %dx%d' %
                          (mask_path, mask_size[0], mask_size[1], height, strip_width))
      has_mask = True
    elif masks == MASKS_REQUIRED:
      raise _BadExample('%s: mask file not found (needed because masks are used; pass '
                        "masks='optional' to treat missing masks as background)" % mask_path)
  return height, strip_width // IMAGES_PER_SEQUENCE, intrinsics, has_mask


def read_list_file(list_path):
  """The (line number, subfolder, frame_id or None, problem or None) entries of a train.txt."""
  if not tf.io.gfile.exists(list_path):
    raise ValueError('struct2depth list file %s not found' % list_path)
  with tf.io.gfile.GFile(list_path, 'r') as f:
    lines = f.read().split('\n')
  entries = []
  for number, line in enumerate(lines, start=1):
    words = line.split()
    if not words:
      continue
    if len(words) != 2:
      entries.append((number, None, None,
                      '%s line %d: expected 2 words "<subfolder> <frame_id>", got %d: %r' %
                      (list_path, number, len(words), line)))
    else:
      entries.append((number, words[0], words[1], None))
  return entries


def resolve_list_file(data_path):
  """`data_path` is the list file itself (the reference's meaning) or a folder with train.txt."""
  if tf.io.gfile.isdir(data_path):
    return os.path.join(data_path, 'train.txt')
  return data_path


class Struct2DepthSource:
  """The triplets of a struct2depth list file, validated and ready for tf.data.

  Attributes:
    list_path: the list file.
    available: optional clip keys this source can yield (('mask',) or ()).
    num_examples: triplets read (after sharding and skipping).
    num_skipped: examples dropped with skip_bad_examples.
    problems: the problems of the dropped examples.
  """

  def __init__(self, data_path, masks=MASKS_NONE, skip_bad_examples=False):
    if masks not in _MASK_MODES:
      raise ValueError('masks must be one of %s, got %r' % (', '.join(_MASK_MODES), masks))
    self.list_path = resolve_list_file(data_path)
    self.name = 'struct2depth %s' % self.list_path
    self.masks = masks
    self.available = ('mask',) if masks != MASKS_NONE else ()
    directory = os.path.dirname(self.list_path)
    entries = read_list_file(self.list_path)
    problems = [problem for _, _, _, problem in entries if problem]
    good = [(os.path.join(directory, sub, frame), sub)
            for _, sub, frame, problem in entries if not problem]

    def check(item):
      try:
        return _check_example(item[0], masks), None
      except _BadExample as e:
        return None, str(e)
      except (OSError, UnicodeDecodeError, tf.errors.OpError) as e:
        return None, '%s: cannot read: %s' % (item[0], e)

    with concurrent.futures.ThreadPoolExecutor(_IO_THREADS) as pool:
      results = list(pool.map(check, good))
    kept = []
    for (stem, subfolder), (info, problem) in zip(good, results):
      if problem:
        problems.append(problem)
      else:
        kept.append((stem, subfolder) + info)
    if problems and not skip_bad_examples:
      listed = '\n  '.join(problems[:_MAX_LISTED_PROBLEMS])
      more = len(problems) - _MAX_LISTED_PROBLEMS
      raise ValueError('%s: %d bad example(s), e.g. %s\n  %s%s\nFix the data or set '
                       'input.skip_bad_examples to drop them.' %
                       (self.name, len(problems), problems[0], listed,
                        ('\n  ... and %d more' % more) if more > 0 else ''))
    self.problems = problems
    self.num_skipped = len(problems)
    if problems:
      _LOG.warning('%s: skipped %d bad example(s) of %d (input.skip_bad_examples); first: %s',
                   self.name, len(problems), len(entries), problems[0])
    self._examples = kept

  @property
  def num_examples(self):
    return len(self._examples)

  def shard(self, num_pipelines, pipeline_id):
    """A new source with every num_pipelines-th example, starting at pipeline_id."""
    part = copy.copy(self)
    if num_pipelines > 1:
      # pylint: disable-next=protected-access
      part._examples = self._examples[pipeline_id::num_pipelines]
      part.__dict__.pop('_table_cache', None)
    return part

  def video_ids(self):
    return sorted({example[1] for example in self._examples})

  def _tables(self):
    if not hasattr(self, '_table_cache'):
      examples = self._examples
      with tf.init_scope():  # Eager constants, usable from every tf.data function.
        self._table_cache = self._make_tables(examples)
    return self._table_cache

  @staticmethod
  def _make_tables(examples):
    return {
        'stem': tf.constant([e[0] for e in examples] or [''], tf.string),
        'video_id': tf.constant([e[1] for e in examples] or [''], tf.string),
        'height': tf.constant([e[2] for e in examples] or [0], tf.int32),
        'width': tf.constant([e[3] for e in examples] or [0], tf.int32),
        'intrinsics': tf.constant(np.array([e[4] for e in examples] or [[0.0] * 4],
                                           np.float32)),
        'has_mask': tf.constant([e[5] for e in examples] or [False], tf.bool),
    }

  def records(self, shuffle_files=False, seed=None, repeat=False, deterministic=True):
    """A dataset of example indices (int64); `parse` turns one into a clip."""
    del deterministic  # Indices come in order unless shuffled.
    if not self._examples:
      raise ValueError('%s has no examples to read' % self.name)
    indices = tf.data.Dataset.range(len(self._examples))
    if shuffle_files:
      indices = indices.shuffle(len(self._examples), seed=seed, reshuffle_each_iteration=True)
    if repeat:
      indices = indices.repeat()
    return indices

  def parse(self, index, first_frame=0, num_frames=IMAGES_PER_SEQUENCE, keys=()):
    """Reads and decodes frames [first_frame, first_frame + num_frames) of example `index`."""
    unknown = [k for k in keys if k not in self.available]
    if unknown:
      raise ValueError('%s cannot provide %s (masks=%r)' % (self.name, ', '.join(unknown),
                                                            self.masks))
    tables = self._tables()
    stem = tf.gather(tables['stem'], index)
    height = tf.gather(tables['height'], index)
    width = tf.gather(tables['width'], index)
    image_path = stem + '.png'
    strip = tf.io.decode_png(tf.io.read_file(image_path), channels=3)
    shape = tf.shape(strip)
    with tf.control_dependencies([tf.debugging.Assert(
        tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], IMAGES_PER_SEQUENCE * width)),
        ['struct2depth: image strip', image_path, 'decodes to HxW', shape[0], shape[1],
         'but its PNG header said', height, IMAGES_PER_SEQUENCE * width])]):
      strip = tf.identity(strip)
    first = tf.cast(first_frame, tf.int32)
    clip = {
        'rgb': _split_frames(strip, first, num_frames, height, width),
        'intrinsics': tf.gather(tables['intrinsics'], index),
        'intrinsics_known': tf.constant(True),
        'video_id': tf.gather(tables['video_id'], index),
    }
    if 'mask' in keys:
      mask_path = stem + '-fseg.png'

      def read_mask():
        encoded = tf.io.decode_png(tf.io.read_file(mask_path), channels=3)
        mask_shape = tf.shape(encoded)
        check = tf.debugging.Assert(
            tf.reduce_all(tf.equal(mask_shape[:2], shape[:2])),
            ['struct2depth: mask strip', mask_path, 'is', mask_shape[0], mask_shape[1],
             'its image strip', shape[0], shape[1]])
        with tf.control_dependencies([check]):
          rgb = tf.cast(encoded, tf.int32)
        return (rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2])[..., tf.newaxis]

      mask = tf.cond(tf.gather(tables['has_mask'], index), read_mask,
                     lambda: tf.zeros([shape[0], shape[1], 1], tf.int32))
      clip['mask'] = _split_frames(mask, first, num_frames, height, width)
    return clip


def _split_frames(strip, first, num_frames, height, width):
  """[H, 3W, C] strip -> [num_frames, H, W, C], frames first .. first + num_frames - 1."""
  channels = strip.shape[-1]
  part = strip[:, first * width:(first + num_frames) * width]
  frames = tf.reshape(part, [height, num_frames, width, channels])
  frames = tf.transpose(frames, [1, 0, 2, 3])
  frames.set_shape([num_frames, None, None, channels])
  return frames


def read_struct2depth(data_path, masks=MASKS_NONE, skip_bad_examples=False,
                      num_frames=IMAGES_PER_SEQUENCE):
  """The clips of a struct2depth list file, in file order.

  Args:
    data_path: the list file (train.txt) or the folder holding train.txt.
    masks: 'none', 'optional' (missing mask file = all background) or 'required'.
    skip_bad_examples: drop (and count) bad examples instead of raising.
    num_frames: 3 for whole triplets, 2 for the reference's first two frames.

  Returns:
    A tf.data.Dataset of clips (readers.py's intermediate form).
  """
  if num_frames not in (1, 2, 3):
    raise ValueError('num_frames must be 1, 2 or 3, got %r' % (num_frames,))
  source = Struct2DepthSource(data_path, masks=masks, skip_bad_examples=skip_bad_examples)
  keys = source.available
  return source.records().map(lambda i: source.parse(i, 0, num_frames, keys),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
