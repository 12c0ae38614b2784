"""Tests of depth_motion.data.augmentation: golden parity and geometric consistency."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion.data import augmentation

W, H = 32.0, 16.0
INTRINSICS = np.array([W, H, 20.0, 22.0, 15.3, 7.1], np.float32)


def _close(actual, expected, rtol, atol):
  actual = np.asarray(actual)
  expected = np.asarray(expected)
  assert actual.shape == expected.shape
  assert np.max(np.abs(actual - expected)) <= atol + rtol * np.max(np.abs(expected))


@pytest.mark.parametrize('case', ['crop_intrinsics', 'resize_intrinsics', 'resize_intrinsics.odd',
                                  'flip_intrinsics', 'make_intrinsics_mat'])
def test_golden_parity(golden, case):
  data, cases = golden
  assert case in cases
  fn_name = str(data[case + '/fn']).split('.')[-1]
  intrinsics = data[case + '/in/intrinsics']
  if fn_name == 'crop_intrinsics':
    args = [int(data[case + '/in/' + k]) for k in
            ('offset_height', 'offset_width', 'target_height', 'target_width')]
    actual = augmentation.crop_intrinsics(intrinsics, *args)
  elif fn_name == 'resize_intrinsics':
    actual = augmentation.resize_intrinsics(intrinsics, tuple(data[case + '/in/target_size']))
  elif fn_name == 'flip_intrinsics':
    actual = augmentation.flip_intrinsics(intrinsics, faithful=True)
  else:
    actual = augmentation.make_intrinsics_mat(intrinsics)
  _close(actual, data[case + '/out'], float(data[case + '/rtol']), float(data[case + '/atol']))


def test_flip_intrinsics_fixed_by_default():
  out = augmentation.flip_intrinsics(INTRINSICS).numpy()
  np.testing.assert_allclose(out, [W, H, 20.0, 22.0, W - 1 - 15.3, 7.1], rtol=1e-6)
  faithful = augmentation.flip_intrinsics(INTRINSICS, faithful=True).numpy()
  np.testing.assert_allclose(faithful, [W, H, 20.0, 22.0, W - 15.3, H - 7.1], rtol=1e-6)
  # Flipping twice is the identity (the fixed flip is an involution).
  twice = augmentation.flip_intrinsics(augmentation.flip_intrinsics(INTRINSICS)).numpy()
  np.testing.assert_allclose(twice, INTRINSICS, rtol=1e-6)


def test_intrinsics_helpers_batch_and_reject_bad_shapes():
  batch = np.stack([INTRINSICS, INTRINSICS * 2])
  mats = augmentation.make_intrinsics_mat(batch).numpy()
  assert mats.shape == (2, 3, 3)
  inv = augmentation.make_intrinsics_mat_inv(batch).numpy()
  np.testing.assert_allclose(mats @ inv, np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-5)
  with pytest.raises(ValueError, match=r'intrinsics must have shape \[..., 6\]'):
    augmentation.make_intrinsics_mat(np.zeros([4], np.float32))


def _points():
  rng = np.random.default_rng(0)
  # 3D points in front of the camera that project inside the 32x16 frame.
  z = rng.uniform(2.0, 10.0, 50)
  u = rng.uniform(3.0, W - 4.0, 50)
  v = rng.uniform(3.0, H - 4.0, 50)
  fx, fy, x0, y0 = INTRINSICS[2:]
  return np.stack([(u - x0) * z / fx, (v - y0) * z / fy, z], axis=-1)


def _project(intrinsics, points):
  k = augmentation.make_intrinsics_mat(intrinsics).numpy().astype(np.float64)
  p = points @ k.T
  return p[:, :2] / p[:, 2:]


def _bilinear(image, xy):
  x, y = xy[:, 0], xy[:, 1]
  x0 = np.floor(x).astype(int)
  y0 = np.floor(y).astype(int)
  fx, fy = (x - x0)[:, None], (y - y0)[:, None]
  return ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x0 + 1] +
          (1 - fx) * fy * image[y0 + 1, x0] + fx * fy * image[y0 + 1, x0 + 1])


def _coordinate_image(height, width):
  """rgb[y, x] = (x, y, 0): each pixel records where it came from."""
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  return np.stack([xs, ys, np.zeros_like(xs)], axis=-1)


def _pair(rgb, intrinsics=INTRINSICS, **extra):
  features = {'rgb': (tf.constant(rgb), tf.constant(rgb)),
              'intrinsics': (tf.constant(intrinsics), tf.constant(intrinsics))}
  features.update(extra)
  return features


@pytest.mark.parametrize('do_flip', [False, True])
def test_crop_and_flip_move_points_where_the_adjusted_intrinsics_project_them(do_flip):
  points = _points()
  original = _project(INTRINSICS, points)
  features = _pair(_coordinate_image(int(H), int(W)))
  features = augmentation.crop(features, 2, 3, 12, 27)
  if do_flip:
    features = augmentation.flip(features)
  image = features['rgb'][0].numpy()
  intrinsics = features['intrinsics'][0].numpy()
  np.testing.assert_allclose(intrinsics[:2], [27, 12])
  # A flipped frame is the image of the mirrored world X -> -X.
  seen = points * np.array([-1.0, 1.0, 1.0]) if do_flip else points
  adjusted = _project(intrinsics, seen)
  inside = ((adjusted[:, 0] >= 0) & (adjusted[:, 0] < 26) & (adjusted[:, 1] >= 0) &
            (adjusted[:, 1] < 11))
  assert inside.sum() > 20
  # The augmented image, read where the adjusted K projects a point, shows the
  # pixel where the original K projected it.
  came_from = _bilinear(image, adjusted[inside])[:, :2]
  np.testing.assert_allclose(came_from, original[inside], atol=1e-3)
  expected = np.stack([original[:, 0] - 3, original[:, 1] - 2], axis=-1)
  if do_flip:
    expected[:, 0] = 27 - 1 - expected[:, 0]
  np.testing.assert_allclose(adjusted, expected, atol=1e-3)


def test_faithful_flip_is_off_by_one_pixel_in_x_and_mirrors_y():
  points = _points()
  fixed = _project(augmentation.flip_intrinsics(INTRINSICS).numpy(), points)
  faithful = _project(augmentation.flip_intrinsics(INTRINSICS, faithful=True).numpy(), points)
  np.testing.assert_allclose(faithful[:, 0] - fixed[:, 0], 1.0, atol=1e-4)
  np.testing.assert_allclose(faithful[:, 1] - fixed[:, 1], H - 2 * INTRINSICS[5], atol=1e-4)


def test_resize_scales_projections_and_area_matches_tf1_resize_area():
  points = _points()
  target = (8, 24)
  features = _pair(_coordinate_image(int(H), int(W)))
  resized = augmentation.resize(features, target)
  intrinsics = resized['intrinsics'][0].numpy()
  np.testing.assert_allclose(intrinsics[:2], [24, 8])
  scale = np.array([24 / W, 8 / H])
  np.testing.assert_allclose(_project(intrinsics, points), _project(INTRINSICS, points) * scale,
                             rtol=1e-5)
  # Area resampling, as TF1's resize_area (align_corners=False) did.
  image = tf.random.stateless_uniform([16, 32, 3], seed=[1, 2])
  ours = augmentation.resize(_pair(image.numpy()), (11, 21))['rgb'][0]
  tf1 = tf.compat.v1.image.resize_area(image[tf.newaxis], (11, 21))[0]
  np.testing.assert_allclose(ours.numpy(), tf1.numpy(), atol=1e-6)
  # The documented half-pixel offset of the reference's resize_intrinsics:
  # an area downscale by 2 maps x to (x + 0.5) / 2 - 0.5, the intrinsics to x / 2.
  half = augmentation.resize(features, (8, 16))['rgb'][0].numpy()
  np.testing.assert_allclose(half[0, :, 0], (np.arange(16) + 0.5) * 2 - 0.5, atol=1e-5)


def test_flip_transforms_every_key_consistently():
  rng = np.random.default_rng(3)
  mask = rng.integers(0, 4, (16, 32, 1)).astype(np.int32)
  field = rng.normal(size=(16, 32, 3)).astype(np.float32)
  angle = 0.3
  rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                       [-np.sin(angle), 0, np.cos(angle)]], np.float32)
  motion = np.eye(4, dtype=np.float32)
  motion[:3, :3] = rotation
  motion[:3, 3] = [0.5, -0.2, 1.0]
  features = _pair(rng.random((16, 32, 3)).astype(np.float32), mask=(mask, mask),
                   object_translation=(field, field), egomotion_mat=(motion, motion),
                   intrinsics_known=(True, True), video_index=(3, 3))
  flipped = augmentation.flip(features)
  np.testing.assert_array_equal(flipped['mask'][1], mask[:, ::-1])
  np.testing.assert_allclose(flipped['object_translation'][0],
                             field[:, ::-1] * np.array([-1, 1, 1]), rtol=0, atol=0)
  # A mirrored world moves as the mirrored motion: F T F (F P) = F (T P).
  mirror = np.diag([-1.0, 1, 1, 1]).astype(np.float32)
  point = np.array([1.0, 2.0, 5.0, 1.0], np.float32)
  np.testing.assert_allclose(flipped['egomotion_mat'][0].numpy() @ (mirror @ point),
                             mirror @ (motion @ point), atol=1e-6)
  assert int(flipped['video_index'][0]) == 3 and bool(flipped['intrinsics_known'][1])
  with pytest.raises(ValueError, match='no augmentation rule for feature keys normals'):
    augmentation.flip(dict(features, normals=(field, field)))


def test_resize_uses_nearest_for_masks_and_object_translation():
  mask = np.repeat(np.repeat(np.arange(8, dtype=np.int32).reshape(2, 4), 8, 0), 8, 1)[..., None]
  field = np.repeat(mask.astype(np.float32), 3, axis=-1)
  features = _pair(np.zeros((16, 32, 3), np.float32), mask=(mask, mask),
                   object_translation=(field, field))
  out = augmentation.resize(features, (6, 10))
  assert out['mask'][0].dtype == tf.int32
  assert set(np.unique(out['mask'][0])) <= set(range(8))
  assert set(np.unique(out['object_translation'][1])) <= set(range(8))


def test_sampling_follows_the_reference_distribution():
  draws = np.array([[int(v) for v in augmentation.sample_crop_and_flip(20, 40, 16, 32, [s, 7])]
                    for s in range(300)])
  th, tw, oy, ox, flips = draws.T
  assert th.min() == 16 and th.max() == 20 and tw.min() == 32 and tw.max() == 40
  assert np.all(oy >= 0) and np.all(oy <= 20 - th) and np.all(ox >= 0) and np.all(ox <= 40 - tw)
  assert set(oy) == set(range(5)) and 100 < flips.sum() < 200
  # An image smaller than the target is not cropped.
  th, tw, oy, ox, _ = augmentation.sample_crop_and_flip(10, 40, 16, 32, [1, 2])
  assert (int(th), int(oy)) == (10, 0)


def test_random_crop_and_resize_pipeline_treats_both_frames_alike():
  rng = np.random.default_rng(5)
  rgb0 = rng.random((20, 40, 3)).astype(np.float32) * 0.5
  features = {'rgb': (tf.constant(rgb0), tf.constant(rgb0 + 0.25)),
              'intrinsics': (tf.constant(INTRINSICS), tf.constant(INTRINSICS))}
  flips = 0
  for s in range(12):
    out = augmentation.random_crop_and_resize_pipeline(features, 16, 32, seed=[s, 0])
    assert set(out) == {'rgb', 'intrinsics_mat', 'intrinsics_mat_inv'}
    assert out['rgb'][0].shape == (16, 32, 3)
    np.testing.assert_allclose(out['rgb'][1] - out['rgb'][0], 0.25, atol=1e-5)
    np.testing.assert_allclose(out['intrinsics_mat'][0], out['intrinsics_mat'][1])
    np.testing.assert_allclose(out['intrinsics_mat'][0] @ out['intrinsics_mat_inv'][0],
                               np.eye(3), atol=1e-5)
    th, tw, oy, ox, flip = augmentation.sample_crop_and_flip(20, 40, 16, 32, [s, 0])
    expected = augmentation.resize_intrinsics(
        augmentation.crop_intrinsics(INTRINSICS, oy, ox, th, tw), (16, 32))
    if flip:
      flips += 1
      expected = augmentation.flip_intrinsics(expected)
    np.testing.assert_allclose(out['intrinsics_mat'][0],
                               augmentation.make_intrinsics_mat(expected), rtol=1e-6)
  assert 0 < flips < 12
  again = augmentation.random_crop_and_resize_pipeline(features, 16, 32, seed=[3, 0])
  first = augmentation.random_crop_and_resize_pipeline(features, 16, 32, seed=[3, 0])
  np.testing.assert_array_equal(again['rgb'][0], first['rgb'][0])


def test_crop_is_a_noop_at_target_size_and_resize_pipeline_is_deterministic():
  rgb = np.random.default_rng(1).random((16, 32, 3)).astype(np.float32)
  features = _pair(rgb, INTRINSICS)
  for s in range(6):
    out = augmentation.random_crop_and_resize_pipeline(features, 16, 32, seed=[s, 1])
    image = out['rgb'][0].numpy()
    assert np.array_equal(image, rgb) or np.array_equal(image, rgb[:, ::-1])
  out = augmentation.resize_pipeline(features, 8, 16)
  np.testing.assert_allclose(
      out['intrinsics_mat'][0],
      [[10.0, 0, 15.3 / 2], [0, 11.0, 7.1 / 2], [0, 0, 1]], rtol=1e-6)
