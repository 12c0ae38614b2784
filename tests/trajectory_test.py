"""Trajectory: pose chaining conventions, quaternions and the KITTI / TUM files."""

import numpy as np
import pytest

from depth_motion import geometry
from depth_motion import trajectory


def _ry(angle):
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(angle):
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _circle_motion(step, yaw):
  """T_{k-1->k} of a camera that moves `step` forward (+z) in its own frame, then yaws."""
  # C_{k-1}^-1 C_k = [Ry(yaw), (0, 0, step)]; the network's motion is its inverse.
  rotation = _ry(yaw).T
  return rotation, -rotation @ np.array([0.0, 0.0, step])


def test_forward_motion_is_a_straight_line_along_z():
  # Moving 1 m forward makes static points come 1 m closer: t = (0, 0, -1).
  rotations = np.tile(np.eye(3), (4, 1, 1))
  translations = np.tile([0.0, 0.0, -1.0], (4, 1))
  poses = trajectory.chain_relative_motions(rotations, translations)
  np.testing.assert_allclose(poses[:, :3, 3], [[0, 0, k] for k in range(5)], atol=1e-12)
  np.testing.assert_allclose(poses[:, :3, :3], np.tile(np.eye(3), (5, 1, 1)), atol=1e-12)


def test_forward_motion_with_yaw_follows_the_analytic_circle():
  step, yaw, n = 1.5, np.radians(30.0), 12
  rotation, translation = _circle_motion(step, yaw)
  poses = trajectory.chain_relative_motions(np.tile(rotation, (n, 1, 1)),
                                            np.tile(translation, (n, 1)))
  expected = np.zeros((n + 1, 3))
  for k in range(1, n + 1):
    expected[k] = expected[k - 1] + _ry((k - 1) * yaw) @ [0.0, 0.0, step]
  np.testing.assert_allclose(poses[:, :3, 3], expected, atol=1e-12)
  for k in range(n + 1):
    np.testing.assert_allclose(poses[k, :3, :3], _ry(k * yaw), atol=1e-12)
  # Twelve 30-degree turns close the loop, on a circle of radius step / (2 sin(yaw / 2)).
  np.testing.assert_allclose(poses[-1], np.eye(4), atol=1e-12)
  centre = np.array([step / (2 * np.tan(yaw / 2)), 0.0, step / 2])
  radius = step / (2 * np.sin(yaw / 2))
  np.testing.assert_allclose(np.linalg.norm(poses[:, :3, 3] - centre, axis=1), radius,
                             rtol=1e-12)


def test_poses_agree_with_the_point_transfer_convention():
  # A static world point seen from camera k-1 and k satisfies P_k = R P_{k-1} + t.
  rng = np.random.RandomState(0)
  angles = rng.uniform(-0.2, 0.2, (5, 3)).astype(np.float32)
  rotations = trajectory.nearest_rotation(geometry.matrix_from_angles(angles).numpy())
  translations = rng.uniform(-1, 1, (5, 3))
  poses = trajectory.chain_relative_motions(rotations, translations)
  world_point = np.array([0.3, -0.2, 7.0, 1.0])
  in_camera = [np.linalg.inv(pose) @ world_point for pose in poses]
  for k in range(1, 6):
    moved = rotations[k - 1] @ in_camera[k - 1][:3] + translations[k - 1]
    np.testing.assert_allclose(in_camera[k][:3], moved, atol=1e-9)


def test_chained_synthetic_egomotion_reproduces_the_rendered_camera_path():
  scene_lib = pytest.importorskip('data_prep.synthetic_scene')
  scene = scene_lib.random_scene((7, 0), 24)
  motions = np.stack([scene_lib.egomotion(scene, k) for k in range(23)])
  poses = trajectory.chain_relative_motions(motions[:, :3, :3], motions[:, :3, 3])
  # The renderer's camera-to-world poses, expressed in the first camera's frame.
  r0, c0 = scene.camera_rotations[0], scene.camera_positions[0]
  for k in range(24):
    np.testing.assert_allclose(poses[k, :3, :3], r0.T @ scene.camera_rotations[k], atol=1e-9)
    np.testing.assert_allclose(poses[k, :3, 3], r0.T @ (scene.camera_positions[k] - c0),
                               atol=1e-9)
  # The car drives forward (+z of the first camera) at 0.5-1 m per frame.
  steps = np.diff(poses[:, :3, 3], axis=0)
  assert np.all(steps[:, 2] > 0)
  assert np.all((np.linalg.norm(steps, axis=1) > 0.45) & (np.linalg.norm(steps, axis=1) < 1.05))


def test_relative_motions_round_trip():
  rng = np.random.RandomState(1)
  rotations = trajectory.nearest_rotation(np.eye(3) + 0.1 * rng.randn(6, 3, 3))
  translations = rng.randn(6, 3)
  poses = trajectory.chain_relative_motions(rotations, translations)
  back_rotations, back_translations = trajectory.relative_motions_from_poses(poses)
  np.testing.assert_allclose(back_rotations, rotations, atol=1e-12)
  np.testing.assert_allclose(back_translations, translations, atol=1e-12)


def test_chaining_averaged_rotations_orthonormalises_them():
  rotation = _rz(0.1)
  skewed = rotation + 1e-3 * np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]])
  poses = trajectory.chain_relative_motions(np.tile(skewed, (50, 1, 1)), np.zeros((50, 3)))
  for pose in poses:
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)


def test_nearest_rotation():
  rotation = _ry(0.4) @ _rz(-0.3)
  np.testing.assert_allclose(trajectory.nearest_rotation(rotation), rotation, atol=1e-12)
  noisy = trajectory.nearest_rotation(rotation + 1e-3 * np.random.RandomState(0).randn(3, 3))
  np.testing.assert_allclose(noisy @ noisy.T, np.eye(3), atol=1e-12)
  assert np.abs(noisy - rotation).max() < 3e-3
  # A reflection is mapped to a proper rotation (det +1).
  assert np.linalg.det(trajectory.nearest_rotation(np.diag([1.0, 1.0, -1.0]))) > 0


def test_quaternions_known_values_and_round_trip():
  half = np.sqrt(0.5)
  np.testing.assert_allclose(trajectory.rotation_to_quaternion(np.eye(3)), [0, 0, 0, 1])
  np.testing.assert_allclose(trajectory.rotation_to_quaternion(_rz(np.pi / 2)),
                             [0, 0, half, half], atol=1e-12)
  np.testing.assert_allclose(trajectory.rotation_to_quaternion(np.diag([1.0, -1.0, -1.0])),
                             [1, 0, 0, 0], atol=1e-12)
  rng = np.random.RandomState(2)
  rotations = trajectory.nearest_rotation(rng.randn(20, 3, 3))
  quaternions = trajectory.rotation_to_quaternion(rotations)
  assert np.all(quaternions[:, 3] >= 0)
  np.testing.assert_allclose(np.linalg.norm(quaternions, axis=1), 1.0, rtol=1e-12)
  np.testing.assert_allclose(trajectory.quaternion_to_rotation(quaternions), rotations,
                             atol=1e-12)


def test_kitti_and_tum_files_round_trip(tmp_path):
  rotation, translation = _circle_motion(1.0, np.radians(10.0))
  poses = trajectory.chain_relative_motions(np.tile(rotation, (4, 1, 1)),
                                            np.tile(translation, (4, 1)))
  kitti = trajectory.write_kitti(str(tmp_path / 'poses.txt'), poses)
  lines = open(kitti).read().splitlines()
  assert len(lines) == 5
  assert [float(v) for v in lines[0].split()] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
  np.testing.assert_allclose(trajectory.read_kitti(kitti), poses, atol=1e-8)
  stamps = np.arange(5) * 0.1
  tum = trajectory.write_tum(str(tmp_path / 'poses_tum.txt'), poses, stamps)
  rows = [line for line in open(tum).read().splitlines() if not line.startswith('#')]
  assert len(rows) == 5
  assert [float(v) for v in rows[0].split()] == [0, 0, 0, 0, 0, 0, 0, 1]
  read_stamps, read_poses = trajectory.read_tum(tum)
  np.testing.assert_allclose(read_stamps, stamps)
  np.testing.assert_allclose(read_poses, poses, atol=1e-8)
  assert not [p for p in tmp_path.iterdir() if 'tmp' in p.name]


def test_bad_input_raises_clear_errors(tmp_path):
  with pytest.raises(ValueError, match=r'rotations must be \[N, 3, 3\]'):
    trajectory.chain_relative_motions(np.eye(3)[None], np.zeros((2, 3)))
  with pytest.raises(ValueError, match='timestamps'):
    trajectory.format_tum(np.tile(np.eye(4), (3, 1, 1)), [0.0, 1.0])
  bad = tmp_path / 'bad.txt'
  bad.write_text('1 2 3\n')
  with pytest.raises(ValueError, match='line 1: expected 12 numbers'):
    trajectory.read_kitti(str(bad))
