"""Tests of the synthetic dataset: renderer known answers, ground-truth consistency, builder."""

import os

import numpy as np
import pytest

from data_prep import synthetic
from data_prep import synthetic_scene as ss

# Warping checks run at the demo resolution (at 32x64 most pixels are object edges).
H, W = 64, 192
WARP_SEEDS = [(7, 0), (7, 1), (7, 2)]


def _project(depth, egomotion, object_translation, intrinsics):
  """Where each pixel's 3D point lands in the next frame: (x, y, z), in NumPy."""
  fx, fy, x0, y0 = [float(v) for v in intrinsics]
  height, width = depth.shape
  u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
  points = np.stack([(u - x0) / fx * depth, (v - y0) / fy * depth, depth], -1)
  moved = points @ egomotion[:3, :3].T + egomotion[:3, 3] + object_translation
  z = moved[..., 2]
  return fx * moved[..., 0] / z + x0, fy * moved[..., 1] / z + y0, z


def _bilinear(image, x, y):
  """Bilinear sample of [H, W, C] at (x, y), coordinates clamped to the image."""
  height, width = image.shape[:2]
  x = np.clip(x, 0, width - 1)
  y = np.clip(y, 0, height - 1)
  x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
  x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
  wx, wy = (x - x0)[..., None], (y - y0)[..., None]
  top = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
  bottom = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
  return top * (1 - wy) + bottom * wy


@pytest.fixture(scope='module')
def sequences():
  return [ss.render_sequence(seed, H, W, 3) for seed in WARP_SEEDS]


def _warp_errors(sequence, frame, with_object_motion=True):
  """Photometric error of frame+1 warped into frame, and the masks it is measured on."""
  depth = sequence['depth'][frame].astype(np.float64)
  object_translation = sequence['object_translation'][frame].astype(np.float64)
  x, y, z = _project(depth, sequence['egomotion'][frame].astype(np.float64),
                     object_translation if with_object_motion else 0.0 * object_translation,
                     sequence['intrinsics'])
  next_depth = sequence['depth'][frame + 1].astype(np.float64)[..., None]
  inside = (depth > 0) & (x >= 0) & (y >= 0) & (x <= W - 1) & (y <= H - 1)
  # Visible in the next frame: the landing depth matches the next frame's depth there.
  visible = inside & (np.abs(_bilinear(next_depth, x, y)[..., 0] - z) < 0.02 * z)
  image = sequence['images'][frame].astype(np.float64) / 255
  warped = _bilinear(sequence['images'][frame + 1].astype(np.float64) / 255, x, y)
  error = np.abs(warped - image).mean(-1)
  moving = np.linalg.norm(object_translation, axis=-1) > 0
  return error, inside, visible, moving


# ---------------------------------------------------------------------------------------------
# Determinism.


def test_render_is_deterministic_by_seed():
  a = ss.render_sequence((5, 3), 32, 64, 3)
  b = ss.render_sequence((5, 3), 32, 64, 3)
  for key in ('images', 'depth', 'masks', 'egomotion', 'object_translation', 'intrinsics'):
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  for other in ((5, 4), (6, 3)):
    c = ss.render_sequence(other, 32, 64, 3)
    assert not np.array_equal(a['images'], c['images'])
    assert not np.array_equal(a['depth'], c['depth'])


def test_train_and_test_sequences_differ():
  config = synthetic.BUILDER_CONFIGS[2]
  train = synthetic.render_split_sequence(config, 'train', 0)
  test = synthetic.render_split_sequence(config, 'test', 0)
  assert not np.array_equal(train['depth'], test['depth'])


def test_scene_does_not_depend_on_image_size():
  small = ss.render_sequence((5, 3), 32, 64, 2)
  # With doubled intrinsics, pixel (2r, 2c) of the larger image looks along the ray of
  # pixel (r, c) of the smaller one: the same scene gives the same depth there.
  large = ss.render_sequence((5, 3), 64, 128, 2, intrinsics=2 * small['intrinsics'])
  np.testing.assert_array_equal(small['egomotion'], large['egomotion'])
  np.testing.assert_allclose(large['depth'][:, ::2, ::2], small['depth'], rtol=1e-6)
  np.testing.assert_array_equal(large['masks'][:, ::2, ::2], small['masks'])


# ---------------------------------------------------------------------------------------------
# Known answers.


def test_ground_depth_is_camera_height_over_ray_slope():
  height = 1.6
  intrinsics = ss.default_intrinsics(32, 64)
  fx, fy, x0, y0 = intrinsics
  scene = ss.empty_scene([(0.3, -height, 2.0)])
  frame = ss.render_frame(scene, 0, intrinsics, 32, 64)
  rows = np.arange(32, dtype=np.float64)[:, None] * np.ones((1, 64))
  below = rows > y0
  expected = np.where(below, height * fy / np.where(below, rows - y0, 1.0), 0.0)
  np.testing.assert_allclose(frame.depth, expected, rtol=1e-6)
  assert np.all(frame.instance == 0)
  assert np.all(frame.box_index == -1)


def test_ground_depth_with_rotated_camera():
  height = 1.7
  intrinsics = ss.default_intrinsics(32, 64)
  fx, fy, x0, y0 = intrinsics
  rotation = ss.rotation_camera_to_world(0.3, pitch=-0.05, roll=0.02)
  scene = ss.empty_scene([(0.0, -height, 0.0)], rotation[None])
  frame = ss.render_frame(scene, 0, intrinsics, 32, 64)
  u, v = np.meshgrid(np.arange(64.0), np.arange(32.0))
  world_y = (rotation @ np.stack([(u - x0) / fx, (v - y0) / fy, np.ones_like(u)], -1)[
      ..., None])[..., 1, 0]
  expected = np.where(world_y > 0, height / np.where(world_y > 0, world_y, 1.0), 0.0)
  np.testing.assert_allclose(frame.depth, expected, rtol=1e-6)
  assert np.sum(frame.depth > 0) > 200


def test_box_faces_have_analytic_depth():
  height = 1.6
  intrinsics = ss.default_intrinsics(32, 64)
  fx, fy, x0, y0 = intrinsics
  scene = ss.empty_scene([(0.0, -height, 0.0)])
  # A wall facing the camera at z = 30 and a wall along the road at x = 4 (its face towards
  # the camera at x = 4), 10 m high; the second is a vehicle with instance id 3.
  ss.add_box(scene, (-50, -10, 30), (50, 0, 31), ss.FACADE, (0.5, 0.5, 0.5))
  ss.add_box(scene, (4, -10, 0), (5, 0, 30), ss.VEHICLE_BODY, (0.7, 0.1, 0.1), instance=3)
  frame = ss.render_frame(scene, 0, intrinsics, 32, 64)

  u, v = np.meshgrid(np.arange(64.0), np.arange(32.0))
  ray_x, ray_y = (u - x0) / fx, (v - y0) / fy
  with np.errstate(divide='ignore', invalid='ignore'):
    t_ground = np.where(ray_y > 0, height / ray_y, np.inf)
    t_side = np.where(ray_x > 0, 4.0 / ray_x, np.inf)
  y_side = -height + t_side * ray_y
  t_side = np.where((t_side <= 30) & (y_side >= -10) & (y_side <= 0), t_side, np.inf)
  y_front = -height + 30 * ray_y
  t_front = np.where((y_front >= -10) & (30 * ray_x <= 4), 30.0, np.inf)
  expected = np.minimum(np.minimum(t_ground, t_side), t_front)
  expected = np.where(np.isfinite(expected), expected, 0.0)
  np.testing.assert_allclose(frame.depth, expected, rtol=1e-6)
  np.testing.assert_array_equal(frame.instance, np.where(
      np.isfinite(t_side) & (t_side <= np.minimum(t_ground, t_front)), 3, 0))
  assert np.sum(frame.instance == 3) > 50 and np.sum(expected == 30.0) > 50


def test_egomotion_is_the_camera_step():
  scene = ss.random_scene((5, 1), 4)
  sequence = ss.render_sequence((5, 1), 32, 64, 4)
  for k in range(3):
    matrix = sequence['egomotion'][k].astype(np.float64)
    rotation, translation = matrix[:3, :3], matrix[:3, 3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(matrix[3], [0, 0, 0, 1])
    # The camera drives forward, so static points come closer by about the step length.
    step = np.linalg.norm(scene.camera_positions[k + 1] - scene.camera_positions[k])
    assert 0.3 <= step <= 1.2
    assert translation[2] == pytest.approx(-step, rel=0.01)
    assert np.abs(translation[:2]).max() < 0.05 * step
    # A static world point, through both camera poses, obeys P2 = R P1 + t.
    world = np.array([2.0, -1.0, 15.0])
    p1 = scene.camera_rotations[k].T @ (world - scene.camera_positions[k])
    p2 = scene.camera_rotations[k + 1].T @ (world - scene.camera_positions[k + 1])
    np.testing.assert_allclose(rotation @ p1 + translation, p2, atol=1e-5)


def test_render_rejects_bad_sizes():
  with pytest.raises(ValueError, match='height must be a positive integer'):
    ss.render_sequence((1, 0), -32, 64, 3)
  with pytest.raises(ValueError, match='width must be a positive integer'):
    ss.render_sequence((1, 0), 32, 0, 3)
  with pytest.raises(ValueError, match='num_frames'):
    ss.render_sequence((1, 0), 32, 64, 1)
  with pytest.raises(ValueError, match='hi > lo'):
    ss.add_box(ss.empty_scene([(0, -1.5, 0)]), (0, 0, 0), (1, -1, 1), ss.FACADE, (1, 1, 1))


# ---------------------------------------------------------------------------------------------
# Ground-truth self-consistency.


def test_warping_with_ground_truth_reproduces_the_frame(sequences):
  static_errors, moving_errors, ignored_errors = [], [], []
  for sequence in sequences:
    for frame in range(2):
      error, _, visible, moving = _warp_errors(sequence, frame)
      static_errors.append(error[visible & ~moving])
      moving_errors.append(error[visible & moving])
      error_ignored, inside_ignored, _, _ = _warp_errors(sequence, frame, False)
      ignored_errors.append(error_ignored[moving & inside_ignored])
  static_error = np.concatenate(static_errors).mean()
  moving_error = np.concatenate(moving_errors).mean()
  ignored_error = np.concatenate(ignored_errors).mean()
  assert np.concatenate(moving_errors).size > 200
  assert static_error < 0.02
  assert moving_error < 0.03
  # Without the object translation the moving vehicles land in the wrong place.
  assert ignored_error > 3 * moving_error
  assert ignored_error > 0.04


def test_instance_ids_follow_the_vehicles(sequences):
  for sequence in sequences:
    depth = sequence['depth'][0].astype(np.float64)
    x, y, z = _project(depth, sequence['egomotion'][0].astype(np.float64),
                       sequence['object_translation'][0].astype(np.float64),
                       sequence['intrinsics'])
    _, _, visible, _ = _warp_errors(sequence, 0)
    masks = sequence['masks']
    landing = masks[1][np.clip(np.round(y), 0, H - 1).astype(int),
                       np.clip(np.round(x), 0, W - 1).astype(int)]
    vehicles = visible & (masks[0] > 0)
    assert np.mean(landing[vehicles] == masks[0][vehicles]) > 0.95
    # Object translation lives on vehicles only.
    moving = np.linalg.norm(sequence['object_translation'][0], axis=-1) > 0
    assert np.all(masks[0][moving] > 0)


def test_flow_is_a_few_pixels_at_demo_resolution(sequences):
  flows = []
  for sequence in sequences:
    depth = sequence['depth'][0].astype(np.float64)
    x, y, _ = _project(depth, sequence['egomotion'][0].astype(np.float64),
                       sequence['object_translation'][0].astype(np.float64),
                       sequence['intrinsics'])
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    flows.append(np.hypot(x - u, y - v)[depth > 0])
  median = np.median(np.concatenate(flows))
  assert 0.5 < median < 5.0


def test_camera_speed_vehicle_stays_in_place(sequences):
  for sequence in sequences:
    instance = sequence['camera_speed_instance']
    assert instance > 0
    for frame in range(2):
      pixels = sequence['masks'][frame] == instance
      assert pixels.sum() >= 20
      depth = sequence['depth'][frame].astype(np.float64)
      egomotion = sequence['egomotion'][frame].astype(np.float64)
      object_translation = sequence['object_translation'][frame].astype(np.float64)
      # Its translation cancels the camera's: only the (tiny) rotation moves it.
      np.testing.assert_allclose(object_translation[pixels], -np.broadcast_to(
          egomotion[:3, 3], object_translation[pixels].shape), atol=1e-5)
      x, y, z = _project(depth, egomotion, object_translation, sequence['intrinsics'])
      u, v = np.meshgrid(np.arange(W), np.arange(H))
      assert np.hypot(x - u, y - v)[pixels].max() < 0.5
      np.testing.assert_allclose(z[pixels], depth[pixels], rtol=0.01)
      # Seen in the next frame at the same place and depth.
      next_pixels = sequence['masks'][frame + 1] == instance
      both = pixels & next_pixels
      assert both.sum() >= 0.9 * max(pixels.sum(), next_pixels.sum())
      change = np.abs(sequence['depth'][frame + 1][both] / depth[both] - 1)
      # (A pixel on the edge between two faces may switch faces by the sub-pixel rotation.)
      assert np.median(change) < 0.002 and np.mean(change < 0.01) > 0.9


def test_geometry_warp_matches_ground_truth(sequences):
  tf = pytest.importorskip('tensorflow')
  from depth_motion import geometry  # pylint: disable=g-import-not-at-top
  sequence = sequences[0]
  fx, fy, x0, y0 = sequence['intrinsics']
  intrinsics_mat = np.array([[[fx, 0, x0], [0, fy, y0], [0, 0, 1]]], np.float32)
  egomotion = sequence['egomotion'][0]
  rotation = geometry.angles_from_matrix(tf.constant(egomotion[None, :3, :3]))
  translation = egomotion[:3, 3] + sequence['object_translation'][0]
  depth = sequence['depth'][0]
  warped = geometry.using_motion_vector(depth[None], translation[None], rotation,
                                        intrinsics_mat)
  x, y, z = _project(depth.astype(np.float64), egomotion.astype(np.float64),
                     sequence['object_translation'][0].astype(np.float64),
                     sequence['intrinsics'])
  mask = warped.mask.numpy()[0] & (depth > 0)
  assert mask.sum() > 0.5 * H * W
  np.testing.assert_allclose(warped.pixel_x.numpy()[0][mask], x[mask], atol=2e-3)
  np.testing.assert_allclose(warped.pixel_y.numpy()[0][mask], y[mask], atol=2e-3)
  np.testing.assert_allclose(warped.depth.numpy()[0][mask], z[mask], rtol=1e-4)
  next_rgbd = np.concatenate([sequence['images'][1] / 255.0, sequence['depth'][1][..., None]],
                             -1).astype(np.float32)
  sampled = geometry.resampler_with_unstacked_warp(next_rgbd[None], warped.pixel_x,
                                                   warped.pixel_y, safe=False).numpy()[0]
  visible = mask & (np.abs(sampled[..., 3] - warped.depth.numpy()[0]) < 0.02 * z)
  error = np.abs(sampled[..., :3] - sequence['images'][0] / 255.0).mean(-1)
  assert visible.sum() > 0.4 * H * W
  assert error[visible].mean() < 0.02


# ---------------------------------------------------------------------------------------------
# The TFDS builder.


def test_builder_builds_tiny_and_reuses_it(tmp_path, monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')
  builder = synthetic.ensure_synthetic_dataset(str(tmp_path), 'tiny', num_workers=1)
  assert builder.info.splits['train'].num_examples == 6
  assert builder.info.splits['test'].num_examples == 3
  assert not [p for p in tmp_path.rglob('*') if 'incomplete' in p.name]

  dataset = tfds.load('synthetic_dynamic_scenes/tiny', split='train', data_dir=str(tmp_path))
  examples = list(tfds.as_numpy(dataset))
  assert len(examples) == 6
  example = examples[0]
  expected_shapes = {
      'images': (3, 32, 64, 3), 'masks': (3, 32, 64, 1), 'depth': (3, 32, 64),
      'egomotion': (2, 4, 4), 'object_translation': (2, 32, 64, 3), 'intrinsics': (4,),
      'frame_ids': (3,),
  }
  for key, shape in expected_shapes.items():
    assert example[key].shape == shape, key
  assert example['images'].dtype == np.uint8 and example['masks'].dtype == np.uint16
  assert example['height'] == 32 and example['width'] == 64 and example['intrinsics_known']
  assert example['source'] == b'synthetic_dynamic_scenes'

  # The stored triplets are the renderer's frames, sliding windows over the sequences.
  config = builder.builder_config
  rendered = {i: synthetic.render_split_sequence(config, 'train', i) for i in range(2)}
  for example in examples:
    index = int(example['video_id'].decode().rsplit('_', 1)[1])
    frames = [int(f) for f in example['frame_ids']]
    assert frames == [frames[0], frames[0] + 1, frames[0] + 2]
    sequence = rendered[index]
    np.testing.assert_array_equal(example['images'], sequence['images'][frames])
    np.testing.assert_array_equal(example['masks'][..., 0], sequence['masks'][frames])
    np.testing.assert_array_equal(example['depth'], sequence['depth'][frames])
    np.testing.assert_array_equal(example['egomotion'], sequence['egomotion'][frames[:2]])
    np.testing.assert_array_equal(example['object_translation'],
                                  sequence['object_translation'][frames[:2]])

  # A second call reuses the prepared files and renders nothing.
  def fail(*args, **kwargs):
    raise AssertionError('rendered again')
  monkeypatch.setattr(ss, 'render_sequence', fail)
  again = synthetic.ensure_synthetic_dataset(str(tmp_path), 'tiny', num_workers=1)
  assert again.info.splits['train'].num_examples == 6


def test_config_validation():
  with pytest.raises(ValueError, match='height must be a positive multiple of 32'):
    synthetic.SyntheticConfig(name='bad', height=-64)
  with pytest.raises(ValueError, match='width must be a positive multiple of 32'):
    synthetic.SyntheticConfig(name='bad', width=100)
  with pytest.raises(ValueError, match='frames_per_sequence must be an integer >= 3'):
    synthetic.SyntheticConfig(name='bad', frames_per_sequence=2)
  with pytest.raises(ValueError, match='test_sequences'):
    synthetic.SyntheticConfig(name='bad', test_sequences=0)
  with pytest.raises(ValueError, match='train_seed and test_seed must differ'):
    synthetic.SyntheticConfig(name='bad', train_seed=3, test_seed=3)
  with pytest.raises(ValueError, match="config must be one of demo, small, tiny"):
    synthetic.make_builder(config='huge')


def test_configs_meet_their_sizes():
  configs = {c.name: c for c in synthetic.BUILDER_CONFIGS}
  demo = configs['demo']
  assert (demo.height, demo.width) == (64, 192)
  assert demo.train_sequences * demo.triplets_per_sequence >= 2000
  assert demo.test_sequences * demo.triplets_per_sequence >= 200
  assert synthetic.SyntheticDynamicScenes.DEFAULT_CONFIG_NAME == 'demo'
  for config in configs.values():
    assert config.height % 32 == 0 and config.width % 32 == 0


def test_triplets_are_validated():
  sequence = ss.render_sequence((1, 0), 32, 64, 3)
  sequence['depth'][1, 0, 0] = -1.0
  with pytest.raises(ValueError, match='train sequence 0 frame 1: depth must be finite'):
    synthetic.triplets_from_sequence(sequence, 'train', 0)


def test_cli_module_runs_as_script(tmp_path):
  """`python -m data_prep.synthetic` registers nothing twice and prints its summary."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run(
      [sys.executable, '-m', 'data_prep.synthetic', '--data_dir=%s' % tmp_path, '--config=tiny',
       '--num_workers=1'], capture_output=True, text=True, env=env, timeout=300,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 0, result.stderr[-2000:]
  assert '"train": 6' in result.stdout and '"test": 3' in result.stdout
  assert 'sequences' in result.stderr  # progress lines
