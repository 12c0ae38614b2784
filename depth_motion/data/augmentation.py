"""Crop, resize and flip of frame pairs, with the camera intrinsics kept consistent (SPEC 1.4).

Intrinsics travel as the reference's 6-vector `(w, h, fx, fy, x0, y0)`: image
width and height in pixels, focal lengths and principal point, with integer
pixel coordinates at pixel centres and (0, 0) the centre of the top-left pixel.

The pair-level functions take the model's per-example features: a dict whose
values are 2-tuples (index 0 = earlier frame) of per-frame tensors
(`readers.to_pairs` makes them). Every key gets the treatment its meaning asks
for, and the same random draw applies to both frames and all keys:

  key                 crop      resize                     flip
  rgb                 crop      area (TF1 resize_area)     mirror
  depth               crop      area                       mirror
  mask                crop      nearest                    mirror
  object_translation  crop      nearest                    mirror, x -> -x
  intrinsics          x0, y0    fx, fy, x0, y0 scaled      see flip_intrinsics
  egomotion_mat       -         -                          F T F, F = diag(-1, 1, 1, 1)
  intrinsics_known,   -         -                          -
  video_index

Deviations from the reference, on purpose:
* `flip_intrinsics` maps x0 -> w - 1 - x0 and keeps y0 (the reference maps
  x0 -> w - x0 and y0 -> h - y0, SPEC 9.13); `faithful=True` (param
  `input.faithful_flip_intrinsics`) restores the reference. With the fixed flip
  a flipped frame is exactly the image of the mirrored world X -> -X, so the
  conjugated egomotion and the negated x of the object translation are exact
  too; the reference's flip is one pixel off in x0 and mirrors y0.
* Nearest-neighbour resizing uses half-pixel centres (TF2's
  `tf.image.resize(method='nearest')`), which is the sampling geometry of the
  area resize applied to the images; TF1's `resize_nearest_neighbor` used
  corner alignment. Masks may therefore differ by one pixel at object borders.
* A frame smaller than the target is not cropped (the reference's random crop
  size would be drawn from an empty range and fail); it is then resized up.
* `intrinsics_mat_inv` is the closed-form inverse of K instead of a general
  3x3 matrix inverse (equal up to rounding).

Kept from the reference although not exact: `resize_intrinsics` scales x0 and y0
by the size ratio s, while under the pixel-centre convention the area resize
maps x to (x + 0.5) s - 0.5; the error is |s - 1| / 2 pixel (zero for the usual
128x416 data, where the crop and resize are identities). Depth is area-resampled
as in the reference, so unknown (0) pixels blend into their neighbours at
borders of valid regions.
"""

import tensorflow as tf

from depth_motion import geometry

_IMAGE_KEYS_AREA = ('rgb', 'depth')
_IMAGE_KEYS_NEAREST = ('mask', 'object_translation')
_PASSIVE_KEYS = ('intrinsics_known', 'video_index')
_ALL_KEYS = (_IMAGE_KEYS_AREA + _IMAGE_KEYS_NEAREST + _PASSIVE_KEYS +
             ('intrinsics', 'egomotion_mat'))
_NUM_RANDOM_DRAWS = 5


# ------------------------------------------------------------------------------------------------
# Single-frame intrinsics helpers (the reference's data_processing_util functions).


def crop_intrinsics(intrinsics, offset_height, offset_width, target_height, target_width):
  """Intrinsics after cropping [offset_height:+target_height, offset_width:+target_width].

  Args:
    intrinsics: float32 [..., 6] = (w, h, fx, fy, x0, y0).
    offset_height, offset_width: the crop's top-left pixel (ints or int tensors).
    target_height, target_width: the crop's size.

  Returns:
    float32 [..., 6]: w, h become the crop size, x0 and y0 move by the offsets,
    fx and fy are unchanged.
  """
  intrinsics = _as_intrinsics(intrinsics, 'crop_intrinsics')
  _, _, fx, fy, x0, y0 = tf.unstack(intrinsics, axis=-1)
  x0 = x0 - tf.cast(offset_width, tf.float32)
  y0 = y0 - tf.cast(offset_height, tf.float32)
  w = tf.broadcast_to(tf.cast(target_width, tf.float32), tf.shape(fx))
  h = tf.broadcast_to(tf.cast(target_height, tf.float32), tf.shape(fx))
  return tf.stack([w, h, fx, fy, x0, y0], axis=-1)


def resize_intrinsics(intrinsics, target_size):
  """Intrinsics after resizing the image to `target_size` = (height, width).

  fx and x0 scale by target_width / w, fy and y0 by target_height / h (the
  reference's formula; see the module docstring for its half-pixel offset).
  """
  intrinsics = _as_intrinsics(intrinsics, 'resize_intrinsics')
  w, h, fx, fy, x0, y0 = tf.unstack(intrinsics, axis=-1)
  target_h = tf.cast(target_size[0], tf.float32)
  target_w = tf.cast(target_size[1], tf.float32)
  x_factor = target_w / w
  y_factor = target_h / h
  return tf.stack([
      tf.broadcast_to(target_w, tf.shape(w)), tf.broadcast_to(target_h, tf.shape(h)),
      fx * x_factor, fy * y_factor, x0 * x_factor, y0 * y_factor
  ], axis=-1)


def flip_intrinsics(intrinsics, faithful=False):
  """Intrinsics after a horizontal (left-right) flip of the image.

  With pixel centres at integer coordinates the mirror of column x is
  w - 1 - x, so the principal point moves to x0' = w - 1 - x0 and y0 stays.
  `faithful=True` reproduces the reference instead: x0' = w - x0 and
  y0' = h - y0 (SPEC 9.13; param `input.faithful_flip_intrinsics`).
  """
  intrinsics = _as_intrinsics(intrinsics, 'flip_intrinsics')
  w, h, fx, fy, x0, y0 = tf.unstack(intrinsics, axis=-1)
  if faithful:
    x0 = w - x0
    y0 = h - y0
  else:
    x0 = w - 1.0 - x0
  return tf.stack([w, h, fx, fy, x0, y0], axis=-1)


def make_intrinsics_mat(intrinsics):
  """[..., 6] intrinsics vectors -> [..., 3, 3] matrices [[fx, 0, x0], [0, fy, y0], [0, 0, 1]]."""
  intrinsics = _as_intrinsics(intrinsics, 'make_intrinsics_mat')
  _, _, fx, fy, x0, y0 = tf.unstack(intrinsics, axis=-1)
  return geometry.make_intrinsics_matrix(fx, fy, x0, y0)


def make_intrinsics_mat_inv(intrinsics):
  """The closed-form inverse of `make_intrinsics_mat(intrinsics)`, [..., 3, 3]."""
  return geometry.invert_intrinsics_matrix(make_intrinsics_mat(intrinsics))


def _as_intrinsics(intrinsics, where):
  intrinsics = tf.convert_to_tensor(intrinsics, tf.float32)
  if intrinsics.shape.rank is not None and (intrinsics.shape.rank == 0 or
                                            intrinsics.shape[-1] not in (None, 6)):
    raise ValueError('%s: intrinsics must have shape [..., 6] = (w, h, fx, fy, x0, y0), got %s'
                     % (where, intrinsics.shape))
  return intrinsics


# ------------------------------------------------------------------------------------------------
# Per-frame operations on one key.


def _crop_image(image, offset_height, offset_width, target_height, target_width):
  channels = image.shape[-1]
  begin = tf.stack([offset_height, offset_width, 0])
  size = tf.stack([target_height, target_width, -1])
  out = tf.slice(image, begin, size)
  out.set_shape([None, None, channels])
  return out


def _resize_image(image, size, method):
  """Resizes [H, W, C] to `size`; an identity when the size already matches."""
  height, width = size
  static = image.shape
  if method == 'area':
    image = tf.cast(image, tf.float32)
  if static[0] == height and static[1] == width:
    return image

  def resize():
    out = tf.image.resize(image[tf.newaxis], (height, width), method=method)[0]
    return tf.cast(out, image.dtype)

  same = tf.logical_and(tf.equal(tf.shape(image)[0], height),
                        tf.equal(tf.shape(image)[1], width))
  out = tf.cond(same, lambda: tf.identity(image), resize)
  out.set_shape([height, width, static[-1]])
  return out


_MIRROR_X = tf.constant([-1.0, 1.0, 1.0])


def _flip_egomotion(matrix):
  """F T F with F = diag(-1, 1, 1, 1): negates the entries that mix x with y, z or 1."""
  sign = tf.constant([[1.0, -1.0, -1.0, -1.0],
                      [-1.0, 1.0, 1.0, 1.0],
                      [-1.0, 1.0, 1.0, 1.0],
                      [-1.0, 1.0, 1.0, 1.0]])
  return matrix * sign


def _check_keys(features, where):
  unknown = sorted(set(features) - set(_ALL_KEYS))
  if unknown:
    raise ValueError('%s: no augmentation rule for feature keys %s (known: %s)' %
                     (where, ', '.join(unknown), ', '.join(_ALL_KEYS)))
  for key, value in features.items():
    if not isinstance(value, (tuple, list)) or len(value) != 2:
      raise ValueError('%s: feature %r must be a 2-tuple (frame 0, frame 1), got %r' %
                       (where, key, type(value).__name__))
  if 'rgb' not in features:
    raise ValueError('%s: features must contain "rgb"' % where)


def _map_frames(features, fn):
  """Applies fn(key, value) to both frames of every key."""
  return {key: tuple(fn(key, v) for v in value) for key, value in features.items()}


# ------------------------------------------------------------------------------------------------
# Pair-level operations.


def crop(features, offset_height, offset_width, target_height, target_width):
  """Crops both frames of every image-like key and adjusts the intrinsics."""
  _check_keys(features, 'crop')

  def fn(key, value):
    if key in _IMAGE_KEYS_AREA or key in _IMAGE_KEYS_NEAREST:
      return _crop_image(value, offset_height, offset_width, target_height, target_width)
    if key == 'intrinsics':
      return crop_intrinsics(value, offset_height, offset_width, target_height, target_width)
    return value

  return _map_frames(features, fn)


def resize(features, size):
  """Resizes both frames to `size` = (height, width): area for rgb/depth, nearest for the rest."""
  _check_keys(features, 'resize')
  size = (int(size[0]), int(size[1]))

  def fn(key, value):
    if key in _IMAGE_KEYS_AREA:
      return _resize_image(value, size, 'area')
    if key in _IMAGE_KEYS_NEAREST:
      return _resize_image(value, size, 'nearest')
    if key == 'intrinsics':
      return resize_intrinsics(value, size)
    return value

  return _map_frames(features, fn)


def flip(features, faithful=False):
  """Mirrors both frames left-right; see the module docstring for each key."""
  _check_keys(features, 'flip')

  def fn(key, value):
    if key in _IMAGE_KEYS_AREA or key == 'mask':
      return tf.reverse(value, axis=[1])
    if key == 'object_translation':
      return tf.reverse(value, axis=[1]) * _MIRROR_X
    if key == 'intrinsics':
      return flip_intrinsics(value, faithful=faithful)
    if key == 'egomotion_mat':
      return _flip_egomotion(value)
    return value

  return _map_frames(features, fn)


def add_intrinsics_matrices(features):
  """Replaces 'intrinsics' by 'intrinsics_mat' and 'intrinsics_mat_inv' (each a 2-tuple)."""
  features = dict(features)
  if 'intrinsics' in features:
    intrinsics = features.pop('intrinsics')
    features['intrinsics_mat'] = tuple(make_intrinsics_mat(k) for k in intrinsics)
    features['intrinsics_mat_inv'] = tuple(make_intrinsics_mat_inv(k) for k in intrinsics)
  return features


def sample_crop_and_flip(height, width, target_height, target_width, seed):
  """Draws the reference's random crop and flip for one example.

  Crop size th ~ UniformInt[target_height, height], tw ~ UniformInt[target_width,
  width] (inclusive; no crop along an axis shorter than the target), offsets
  oy ~ UniformInt[0, height - th], ox ~ UniformInt[0, width - tw], flip with
  probability 1/2. Stateless: the same `seed` (int32/int64 [2]) gives the same
  draw.

  Returns:
    (th, tw, oy, ox, flip): int32 scalars and a bool scalar.
  """
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
  seeds = tf.random.experimental.stateless_split(seed, num=_NUM_RANDOM_DRAWS)
  height = tf.cast(height, tf.int32)
  width = tf.cast(width, tf.int32)
  min_h = tf.minimum(tf.cast(target_height, tf.int32), height)
  min_w = tf.minimum(tf.cast(target_width, tf.int32), width)

  def uniform_int(i, low, high_inclusive):
    return tf.random.stateless_uniform([], seeds[i], minval=low, maxval=high_inclusive + 1,
                                       dtype=tf.int32)

  th = uniform_int(0, min_h, height)
  tw = uniform_int(1, min_w, width)
  oy = uniform_int(2, 0, height - th)
  ox = uniform_int(3, 0, width - tw)
  should_flip = tf.equal(uniform_int(4, 0, 1), 1)
  return th, tw, oy, ox, should_flip


def _random_seed():
  return tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)


def random_crop_and_resize_pipeline(features, target_height, target_width, seed=None,
                                    enable_flipping=True, faithful_flip=False):
  """The reference's training augmentation: random crop, resize to target, random flip.

  Args:
    features: dict of 2-tuples of per-frame tensors (see the module docstring),
      with 'rgb' [H, W, 3] and 'intrinsics' [6].
    target_height, target_width: output size (Python ints).
    seed: int [2] for the stateless draws (`sample_crop_and_flip`); None draws
      a fresh random seed.
    enable_flipping: False disables the random flip.
    faithful_flip: the reference's flip of the intrinsics (`flip_intrinsics`).

  Returns:
    The features with images of size target_height x target_width and
    'intrinsics' replaced by 'intrinsics_mat' and 'intrinsics_mat_inv'.
  """
  _check_keys(features, 'random_crop_and_resize_pipeline')
  seed = _random_seed() if seed is None else seed
  rgb_shape = tf.shape(features['rgb'][0])
  th, tw, oy, ox, should_flip = sample_crop_and_flip(
      rgb_shape[0], rgb_shape[1], target_height, target_width, seed)
  features = crop(features, oy, ox, th, tw)
  features = resize(features, (target_height, target_width))
  if enable_flipping:
    unflipped = features
    features = tf.cond(should_flip, lambda: flip(unflipped, faithful=faithful_flip),
                       lambda: unflipped)
  return add_intrinsics_matrices(features)


def resize_pipeline(features, target_height, target_width):
  """Resizes to (target_height, target_width) and adds the intrinsics matrices; no randomness."""
  _check_keys(features, 'resize_pipeline')
  features = resize(features, (target_height, target_width))
  return add_intrinsics_matrices(features)
