"""The frame-triplet feature spec: the one contract between data_prep and the model.

Every dataset source (synthetic, KITTI, Cityscapes, Waymo, users' videos,
struct2depth folders) is a TFDS `GeneratorBasedBuilder` whose `_info()` uses
`triplet_features(...)`. An example is three consecutive frames t-1, t, t+1 of
one video, all of the same size.

Keys (always present):
  images           uint8 [3, H, W, 3], PNG-encoded (lossless).
  height, width    int32 image size (equal to the images' H, W).
  intrinsics       float32 [4] = (fx, fy, x0, y0) in pixels at this size; the
                   pixel-centre convention of SPEC (integer coordinates at pixel
                   centres, (0, 0) the centre of the top-left pixel).
  intrinsics_known bool; False when the source has no calibration (own videos):
                   `intrinsics` then holds a plausible guess and training must
                   learn them (`learn_intrinsics`).
  video_id         string, constant over a video (keys learned per-video
                   intrinsics).
  source           string, the builder's name (e.g. 'kitti').
  frame_ids        string [3], the source's own frame names, for tracing.

Optional keys (present in every example of a builder or in none; the builder
says which through the `with_*` arguments):
  masks            uint16 [3, H, W, 1] instance ids, 0 = background, ids
                   aligned across the three frames.
  depth            float32 [3, H, W] metric ground-truth depth along the
                   optical axis (z), 0 = unknown.
  egomotion        float32 [2, 4, 4]: for the pairs (t-1 -> t) and (t -> t+1),
                   the rigid transform taking a point in the first frame's
                   camera coordinates to the second frame's:
                   P2 = R P1 + t. This is the motion the network predicts
                   (`rotation`, `background_translation` of the pair
                   (frame1 || frame2)), with rotation angles from
                   `geometry.angles_from_matrix(R)`.
  object_translation float32 [2, H, W, 3]: for the same two pairs, the extra
                   translation of each pixel's 3D point (in the second frame's
                   camera coordinates, added after R): P2 = R P1 + t + dT(u,v),
                   zero on static pixels; the network's residual translation.
"""

import numpy as np
import tensorflow_datasets as tfds

NUM_FRAMES = 3

REQUIRED_KEYS = ('images', 'height', 'width', 'intrinsics', 'intrinsics_known', 'video_id',
                 'source', 'frame_ids')
OPTIONAL_KEYS = ('masks', 'depth', 'egomotion', 'object_translation')


def triplet_features(with_masks=False, with_depth=False, with_egomotion=False,
                     with_object_translation=False):
  """The `tfds.features.FeaturesDict` of a triplet, with the optional keys asked for."""
  features = {
      'images': tfds.features.Sequence(
          tfds.features.Image(shape=(None, None, 3), encoding_format='png'),
          length=NUM_FRAMES),
      'height': tfds.features.Scalar(dtype=np.int32),
      'width': tfds.features.Scalar(dtype=np.int32),
      'intrinsics': tfds.features.Tensor(shape=(4,), dtype=np.float32),
      'intrinsics_known': tfds.features.Scalar(dtype=np.bool_),
      'video_id': tfds.features.Text(),
      'source': tfds.features.Text(),
      'frame_ids': tfds.features.Tensor(shape=(NUM_FRAMES,), dtype=np.str_),
  }
  if with_masks:
    features['masks'] = tfds.features.Sequence(
        tfds.features.Image(shape=(None, None, 1), dtype=np.uint16, encoding_format='png'),
        length=NUM_FRAMES)
  if with_depth:
    features['depth'] = tfds.features.Tensor(
        shape=(NUM_FRAMES, None, None), dtype=np.float32,
        encoding=tfds.features.Encoding.ZLIB)
  if with_egomotion:
    features['egomotion'] = tfds.features.Tensor(
        shape=(NUM_FRAMES - 1, 4, 4), dtype=np.float32)
  if with_object_translation:
    features['object_translation'] = tfds.features.Tensor(
        shape=(NUM_FRAMES - 1, None, None, 3), dtype=np.float32,
        encoding=tfds.features.Encoding.ZLIB)
  return tfds.features.FeaturesDict(features)


def validate_triplet(example, where='example'):
  """Checks one example (NumPy values) against the spec before it is written.

  Raises ValueError naming `where` (the source file or sequence), the key and
  what was expected, so a converter's bug or a bad raw file is caught at build
  time rather than deep inside TFDS's encoder.
  """
  missing = [k for k in REQUIRED_KEYS if k not in example]
  if missing:
    raise ValueError('%s: missing keys %s' % (where, ', '.join(missing)))
  images = np.asarray(example['images'])
  if images.ndim != 4 or images.shape[0] != NUM_FRAMES or images.shape[-1] != 3:
    raise ValueError('%s: images must have shape [3, H, W, 3], got %s' % (where, images.shape))
  if images.dtype != np.uint8:
    raise ValueError('%s: images must be uint8, got %s' % (where, images.dtype))
  h, w = images.shape[1:3]
  if int(example['height']) != h or int(example['width']) != w:
    raise ValueError('%s: height/width (%s, %s) do not match the images (%d, %d)' %
                     (where, example['height'], example['width'], h, w))
  intrinsics = np.asarray(example['intrinsics'], np.float64)
  if intrinsics.shape != (4,) or not np.all(np.isfinite(intrinsics)):
    raise ValueError('%s: intrinsics must be 4 finite numbers (fx, fy, x0, y0), got %s' %
                     (where, example['intrinsics']))
  if intrinsics[0] <= 0 or intrinsics[1] <= 0:
    raise ValueError('%s: focal lengths must be positive, got fx=%g fy=%g' %
                     (where, intrinsics[0], intrinsics[1]))
  expected = {
      'masks': (NUM_FRAMES, h, w, 1),
      'depth': (NUM_FRAMES, h, w),
      'egomotion': (NUM_FRAMES - 1, 4, 4),
      'object_translation': (NUM_FRAMES - 1, h, w, 3),
  }
  for key, shape in expected.items():
    if key in example and np.shape(example[key]) != shape:
      raise ValueError('%s: %s must have shape %s, got %s' %
                       (where, key, shape, np.shape(example[key])))
  if 'depth' in example:
    depth = np.asarray(example['depth'])
    if not np.all(np.isfinite(depth)) or np.any(depth < 0):
      raise ValueError('%s: depth must be finite and >= 0 (0 = unknown)' % where)
  return example
