"""Analytic tests of depth_motion.geometry (reference parity is in golden_parity_test.py)."""

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import geometry


def _np_rotation(rx, ry, rz):
  """Rx·Ry·Rz written out from the elementary rotations, in float64."""
  cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
  rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
  rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
  rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
  return rot_x @ rot_y @ rot_z


def _intrinsics(batch, fx=8.0, fy=7.0, x0=3.5, y0=2.5):
  k = np.array([[fx, 0, x0], [0, fy, y0], [0, 0, 1]], np.float32)
  return np.tile(k[None], [batch, 1, 1])


# ----------------------------------------------------------------------------- rotations


def test_matrix_from_angles_is_rx_ry_rz():
  angles = np.random.default_rng(0).uniform(-1.0, 1.0, size=(5, 3)).astype(np.float32)
  matrices = geometry.matrix_from_angles(angles).numpy()
  for a, m in zip(angles.astype(np.float64), matrices):
    np.testing.assert_allclose(m, _np_rotation(*a), atol=2e-6)


def test_matrix_from_angles_any_rank_and_orthonormal():
  angles = np.random.default_rng(1).uniform(-1.0, 1.0, size=(2, 3, 4, 3)).astype(np.float32)
  matrices = geometry.matrix_from_angles(angles).numpy()
  assert matrices.shape == (2, 3, 4, 3, 3)
  np.testing.assert_allclose(matrices[1, 2, 3], _np_rotation(*angles[1, 2, 3].astype(float)),
                             atol=2e-6)
  identity = np.einsum('...ij,...kj->...ik', matrices, matrices)
  np.testing.assert_allclose(identity, np.broadcast_to(np.eye(3), identity.shape), atol=2e-6)
  np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=2e-6)
  single = geometry.matrix_from_angles(angles[0, 0, 0]).numpy()
  np.testing.assert_allclose(single, matrices[0, 0, 0], atol=1e-7)


def test_unstacked_matrix_matches_stacked():
  angles = np.random.default_rng(2).uniform(-1.0, 1.0, size=(3, 4, 3)).astype(np.float32)
  stacked = geometry.matrix_from_angles(angles)
  unstacked = geometry.unstacked_matrix_from_angles(angles[..., 0], angles[..., 1],
                                                    angles[..., 2])
  np.testing.assert_allclose(unstacked.numpy(), stacked.numpy(), atol=1e-7)


def test_angles_matrix_round_trip():
  angles = np.random.default_rng(3).uniform(-1.4, 1.4, size=(50, 3)).astype(np.float32)
  recovered = geometry.angles_from_matrix(geometry.matrix_from_angles(angles)).numpy()
  np.testing.assert_allclose(recovered, angles, atol=5e-5)


def test_angles_from_matrix_gimbal_lock():
  # ry = ±pi/2: only rx ± rz is defined; the decomposition must still give
  # angles that rebuild the same matrix.
  for ry in (np.pi / 2, -np.pi / 2):
    matrix = _np_rotation(0.3, ry, 0.2).astype(np.float32)
    matrix[0, 2] = np.sign(ry)  # exactly on the lock, as float32 rounds it
    angles = geometry.angles_from_matrix(matrix).numpy()
    assert angles[2] == 0.0
    np.testing.assert_allclose(angles[1], ry, atol=1e-6)
    np.testing.assert_allclose(geometry.matrix_from_angles(angles).numpy(), matrix, atol=1e-5)


def test_combine_with_inverse_is_identity():
  rng = np.random.default_rng(4)
  rot = geometry.matrix_from_angles(rng.uniform(-1, 1, size=(4, 3)).astype(np.float32))
  trans = tf.constant(rng.uniform(-2, 2, size=(4, 3)).astype(np.float32))
  rot_inv = tf.linalg.matrix_transpose(rot)
  trans_inv = -tf.linalg.matvec(rot_inv, trans)
  rot_total, trans_total = geometry.combine(rot, trans, rot_inv, trans_inv)
  np.testing.assert_allclose(rot_total.numpy(), np.broadcast_to(np.eye(3), (4, 3, 3)),
                             atol=1e-6)
  np.testing.assert_allclose(trans_total.numpy(), 0.0, atol=1e-6)


def test_combine_applies_first_then_second():
  rng = np.random.default_rng(5)
  r1, r2 = (geometry.matrix_from_angles(rng.uniform(-1, 1, 3).astype(np.float32)).numpy()
            for _ in range(2))
  t1, t2 = (rng.uniform(-1, 1, 3).astype(np.float32) for _ in range(2))
  point = rng.uniform(-1, 1, 3).astype(np.float32)
  rot, trans = geometry.combine(r1, t1, r2, t2)
  np.testing.assert_allclose(rot.numpy() @ point + trans.numpy(), r2 @ (r1 @ point + t1) + t2,
                             atol=1e-5)


def test_inverse_euler_is_second_order_accurate():
  for scale, tolerance in ((0.01, 1e-5), (0.1, 2e-3)):
    angles = np.array([[scale, -0.7 * scale, 0.5 * scale]], np.float32)
    product = tf.matmul(geometry.matrix_from_angles(angles),
                        geometry.matrix_from_angles(geometry.inverse_euler(angles)))
    assert np.max(np.abs(product.numpy()[0] - np.eye(3))) < tolerance
  np.testing.assert_allclose(geometry.inverse_euler(np.zeros((2, 3), np.float32)).numpy(), 0.0)


def test_invert_rot_and_trans_round_trip_for_small_motion():
  rot = np.array([[0.01, -0.02, 0.015]], np.float32)
  trans = np.array([[0.3, -0.1, 0.5]], np.float32)
  rot_inv, trans_inv = geometry.invert_rot_and_trans(rot, trans)
  matrix, matrix_inv = (geometry.matrix_from_angles(r) for r in (rot, rot_inv))
  rot_total, trans_total = geometry.combine(matrix, trans, matrix_inv, trans_inv)
  np.testing.assert_allclose(rot_total.numpy()[0], np.eye(3), atol=1e-4)
  np.testing.assert_allclose(trans_total.numpy(), 0.0, atol=1e-4)


# ----------------------------------------------------------------------------- intrinsics


def test_make_and_invert_intrinsics():
  k = geometry.make_intrinsics_matrix([500.0, 300.0], [400.0, 310.0], [208.0, 100.0],
                                      [64.0, 60.0])
  np.testing.assert_allclose(k.numpy()[0], [[500, 0, 208], [0, 400, 64], [0, 0, 1]])
  k_inv = geometry.invert_intrinsics_matrix(k).numpy()
  np.testing.assert_allclose(k_inv, np.linalg.inv(k.numpy()), rtol=1e-6, atol=1e-7)
  nested = geometry.invert_intrinsics_matrix(np.tile(k.numpy()[:, None], [1, 3, 1, 1]))
  assert nested.shape == (2, 3, 3, 3)


# ----------------------------------------------------------------------------- resampler


def _image(batch=2, height=4, width=5, channels=2):
  return np.random.default_rng(6).uniform(size=(batch, height, width, channels)).astype(
      np.float32)


def test_resampler_exact_at_integers_and_bilinear_between():
  data = _image()
  y, x = np.meshgrid(np.arange(4, dtype=np.float32), np.arange(5, dtype=np.float32),
                     indexing='ij')
  x = np.tile(x[None], [2, 1, 1])
  y = np.tile(y[None], [2, 1, 1])
  np.testing.assert_allclose(geometry.resampler_with_unstacked_warp(data, x, y).numpy(), data,
                             atol=1e-7)
  out = geometry.resampler_with_unstacked_warp(
      data, np.array([[1.25], [3.5]], np.float32), np.array([[2.0], [0.75]], np.float32))
  expected0 = 0.75 * data[0, 2, 1] + 0.25 * data[0, 2, 2]
  expected1 = 0.5 * (0.25 * data[1, 0, 3] + 0.75 * data[1, 1, 3]) + 0.5 * (
      0.25 * data[1, 0, 4] + 0.75 * data[1, 1, 4])
  np.testing.assert_allclose(out.numpy(), [[expected0], [expected1]], atol=1e-6)


def test_resampler_safe_zeroes_outside_and_unsafe_clamps():
  data = _image(batch=1)
  warp_x = np.array([[-0.5, 4.5, 2.0, -3.0]], np.float32)
  warp_y = np.array([[1.0, 2.0, -0.25, 1.0]], np.float32)
  safe = geometry.resampler_with_unstacked_warp(data, warp_x, warp_y, safe=True).numpy()[0]
  np.testing.assert_allclose(safe[0], 0.5 * data[0, 1, 0], atol=1e-7)
  np.testing.assert_allclose(safe[1], 0.5 * data[0, 2, 4], atol=1e-7)
  np.testing.assert_allclose(safe[2], 0.75 * data[0, 0, 2], atol=1e-7)
  np.testing.assert_allclose(safe[3], 0.0)
  clamped = geometry.resampler_with_unstacked_warp(
      data, np.clip(warp_x, 0, 4), np.clip(warp_y, 0, 3), safe=False).numpy()[0]
  np.testing.assert_allclose(clamped[0], data[0, 1, 0], atol=1e-7)
  np.testing.assert_allclose(clamped[2], data[0, 0, 2], atol=1e-7)


def test_resampler_gradients():
  data = tf.constant(_image(batch=1, channels=1))
  warp_x = tf.constant([[1.0, 2.3]])
  warp_y = tf.constant([[2.0, 1.0]])
  with tf.GradientTape() as tape:
    tape.watch([data, warp_x, warp_y])
    out = geometry.resampler_with_unstacked_warp(data, warp_x, warp_y)
  grad_data, grad_x, grad_y = tape.gradient(out, [data, warp_x, warp_y])
  d = data.numpy()[0, ..., 0]
  # At an integer coordinate floor = ceil, so the coordinate gradient is 0.
  assert grad_x.numpy()[0, 0] == 0.0 and grad_y.numpy()[0, 0] == 0.0
  np.testing.assert_allclose(grad_x.numpy()[0, 1], d[1, 3] - d[1, 2], atol=1e-6)
  grad_data = tf.convert_to_tensor(grad_data).numpy()[0, ..., 0]
  np.testing.assert_allclose(grad_data[2, 1], 1.0)
  np.testing.assert_allclose([grad_data[1, 2], grad_data[1, 3]], [0.7, 0.3], atol=1e-6)
  np.testing.assert_allclose(grad_data.sum(), 2.0, atol=1e-6)


def test_resampler_bad_shapes():
  data = _image()
  with pytest.raises(ValueError, match='warp_x and warp_y'):
    geometry.resampler_with_unstacked_warp(data, np.zeros((2, 3)), np.zeros((2, 4)))
  with pytest.raises(ValueError, match='batch size'):
    geometry.resampler_with_unstacked_warp(data, np.zeros((3, 4)), np.zeros((3, 4)))
  with pytest.raises(ValueError, match='data must have rank 4'):
    geometry.resampler_with_unstacked_warp(data[0], np.zeros((2, 4)), np.zeros((2, 4)))


# ----------------------------------------------------------------------------- warping


def _depth(batch=2, height=6, width=8, seed=7):
  return np.random.default_rng(seed).uniform(1.0, 10.0, size=(batch, height, width)).astype(
      np.float32)


def _integer_depth(batch=2, height=6, width=8):
  # Integer depths with K = _EXACT_K make the row-0 / column-0 arithmetic exact,
  # so the strict mask bounds are not at the mercy of rounding.
  return np.random.default_rng(9).integers(1, 11, size=(batch, height, width)).astype(
      np.float32)


def _exact_intrinsics(batch):
  return _intrinsics(batch, fx=8.0, fy=8.0, x0=4.0, y0=2.0)


def test_identity_motion_maps_every_pixel_to_itself():
  depth = _integer_depth()
  tdm = geometry.using_motion_vector(depth, np.zeros((2, 3), np.float32),
                                     np.zeros((2, 3), np.float32), _exact_intrinsics(2))
  y, x = np.meshgrid(np.arange(6), np.arange(8), indexing='ij')
  np.testing.assert_allclose(tdm.pixel_x.numpy(), np.broadcast_to(x, (2, 6, 8)), atol=1e-5)
  np.testing.assert_allclose(tdm.pixel_y.numpy(), np.broadcast_to(y, (2, 6, 8)), atol=1e-5)
  np.testing.assert_allclose(tdm.depth.numpy(), depth, rtol=1e-6)
  expected_mask = np.ones((2, 6, 8), bool)
  expected_mask[:, -1, :] = False  # Strict x < W-1, y < H-1: last row and column out.
  expected_mask[:, :, -1] = False
  np.testing.assert_array_equal(tdm.mask.numpy(), expected_mask)
  np.testing.assert_allclose(tdm.pixel_xy.numpy(),
                             np.stack([tdm.pixel_x.numpy(), tdm.pixel_y.numpy()], axis=3))


def test_x_translation_shifts_by_fx_tx_over_z():
  depth = _integer_depth()
  translation = np.array([[0.37, 0, 0], [-0.3, 0, 0]], np.float32)
  k = _exact_intrinsics(2)
  tdm = geometry.using_motion_vector(depth, translation, np.zeros((2, 3), np.float32), k)
  x = np.arange(8, dtype=np.float32)
  expected_x = x + 8.0 * translation[:, 0, None, None] / depth
  inside = (expected_x >= 0) & (expected_x < 7)
  np.testing.assert_allclose(tdm.pixel_x.numpy()[inside], expected_x[inside], atol=1e-5)
  np.testing.assert_allclose(tdm.pixel_x.numpy(), np.clip(expected_x, 0, 7), atol=1e-5)
  np.testing.assert_allclose(tdm.depth.numpy(), depth, rtol=1e-6)
  np.testing.assert_array_equal(tdm.mask.numpy()[:, :-1], inside[:, :-1])


def test_z_translation_and_rotation_about_optical_axis():
  depth = np.full((1, 6, 8), 4.0, np.float32)
  k = _intrinsics(1)
  forward = geometry.using_motion_vector(depth, np.array([[0, 0, 1.0]], np.float32),
                                         np.zeros((1, 3), np.float32), k)
  np.testing.assert_allclose(forward.depth.numpy(), 5.0, rtol=1e-6)
  # Moving away by a quarter of the depth shrinks offsets from the principal point by 4/5.
  x = np.arange(8, dtype=np.float32)
  np.testing.assert_allclose(forward.pixel_x.numpy()[0, 0], 3.5 + (x - 3.5) * 0.8, atol=1e-5)
  # A rotation by pi about z maps (x - x0, y - y0) to its negative when fx = fy.
  k_square = _intrinsics(1, fx=7.0, fy=7.0)
  turned = geometry.using_motion_vector(depth, np.zeros((1, 3), np.float32),
                                        np.array([[0, 0, np.pi]], np.float32), k_square)
  y = np.arange(6, dtype=np.float32)
  np.testing.assert_allclose(turned.pixel_x.numpy()[0, 1, 1:-1], 7.0 - x[1:-1], atol=1e-4)
  np.testing.assert_allclose(turned.pixel_y.numpy()[0, 1:-1, 2], 5.0 - y[1:-1], atol=1e-4)


def test_per_pixel_fields_match_global_motion_and_transform_matrix():
  depth = _depth()
  rng = np.random.default_rng(8)
  translation = rng.uniform(-0.3, 0.3, size=(2, 3)).astype(np.float32)
  rotation = rng.uniform(-0.05, 0.05, size=(2, 3)).astype(np.float32)
  k = _intrinsics(2)
  reference = geometry.using_motion_vector(depth, translation, rotation, k)
  field = geometry.using_motion_vector(
      depth, np.broadcast_to(translation[:, None, None], (2, 6, 8, 3)),
      np.broadcast_to(rotation[:, None, None], (2, 6, 8, 3)), k,
      geometry.invert_intrinsics_matrix(k))
  transform = np.tile(np.eye(4, dtype=np.float32)[None], [2, 1, 1])
  transform[:, :3, :3] = geometry.matrix_from_angles(rotation).numpy()
  transform[:, :3, 3] = translation
  by_matrix = geometry.using_transform_matrix(depth, transform, k)
  for other in (field, by_matrix):
    for name in ('pixel_x', 'pixel_y', 'depth'):
      np.testing.assert_allclose(getattr(other, name).numpy(), getattr(reference, name).numpy(),
                                 rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(other.mask.numpy(), reference.mask.numpy())


def test_points_behind_camera_and_nan_are_masked():
  depth = np.full((1, 6, 8), 2.0, np.float32)
  depth[0, 0, 0] = 0.0  # projects to (0, 0, 0): x/z is NaN
  behind = geometry.using_motion_vector(depth, np.array([[0, 0, -3.0]], np.float32),
                                        np.zeros((1, 3), np.float32), _intrinsics(1))
  assert not behind.mask.numpy().any()
  assert (behind.depth.numpy()[0, 1:, 1:] < 0).all()
  for t in (behind.pixel_x, behind.pixel_y):
    t = t.numpy()
    assert np.isfinite(t).all()
  assert (behind.pixel_x.numpy() >= 0).all() and (behind.pixel_x.numpy() <= 7).all()
  zero = geometry.using_motion_vector(depth, np.zeros((1, 3), np.float32),
                                      np.zeros((1, 3), np.float32), _intrinsics(1))
  assert zero.pixel_x.numpy()[0, 0, 0] == 0.0 and zero.pixel_y.numpy()[0, 0, 0] == 0.0
  assert not zero.mask.numpy()[0, 0, 0]
  assert zero.mask.numpy()[0, 1, 1]


def test_warp_gradients_are_finite():
  depth = tf.constant(_depth())
  translation = tf.zeros((2, 6, 8, 3))
  rotation = tf.zeros((2, 3))
  with tf.GradientTape() as tape:
    tape.watch([depth, translation, rotation])
    tdm = geometry.using_motion_vector(depth, translation, rotation, _intrinsics(2))
    total = tf.reduce_sum(tdm.pixel_x + tdm.pixel_y + tdm.depth)
  for gradient in tape.gradient(total, [depth, translation, rotation]):
    assert np.isfinite(gradient.numpy()).all()


def test_using_motion_vector_inside_tf_function_with_unknown_sizes():
  spec = [tf.TensorSpec([None, None, None]), tf.TensorSpec([None, 3]),
          tf.TensorSpec([None, 3]), tf.TensorSpec([None, 3, 3])]

  @tf.function(input_signature=spec)
  def warp(depth, translation, rotation, k):
    tdm = geometry.using_motion_vector(depth, translation, rotation, k)
    return tdm.pixel_x, tdm.mask

  depth = _depth()
  translation = np.array([[0.1, 0, 0], [0, 0.1, 0]], np.float32)
  rotation = np.zeros((2, 3), np.float32)
  pixel_x, mask = warp(depth, translation, rotation, _intrinsics(2))
  eager = geometry.using_motion_vector(depth, translation, rotation, _intrinsics(2))
  np.testing.assert_allclose(pixel_x.numpy(), eager.pixel_x.numpy(), atol=1e-6)
  np.testing.assert_array_equal(mask.numpy(), eager.mask.numpy())


@pytest.mark.parametrize('kwargs, message', [
    (dict(depth=np.ones((2, 6, 8, 1))), r'depth must have rank 3 \[B,H,W\], got shape '
                                        r'\(2, 6, 8, 1\)'),
    (dict(translation=np.zeros((2, 4))), r'translation must have shape \[B,3\] or '
                                         r'\[B,H,W,3\], got shape \(2, 4\)'),
    (dict(translation=np.zeros((3, 3))), r'translation .*B=2 \(from depth\), got shape'),
    (dict(translation=np.zeros((2, 5, 8, 3))), r'translation .*H=6 \(from depth\)'),
    (dict(rotation_angles=np.zeros((2, 3, 1))), r'rotation_angles must have rank 2 or 4'),
    (dict(intrinsic_mat=np.eye(3)), r'intrinsic_mat must have rank 3 \[B,3,3\], got shape '
                                    r'\(3, 3\)'),
    (dict(intrinsic_mat=np.zeros((2, 3, 4))), r'intrinsic_mat must have shape \[B,3,3\]'),
    (dict(intrinsic_mat_inv=np.zeros((1, 3, 3))), r'intrinsic_mat_inv .*B=2'),
])
def test_using_motion_vector_bad_inputs(kwargs, message):
  args = dict(depth=_depth(), translation=np.zeros((2, 3)), rotation_angles=np.zeros((2, 3)),
              intrinsic_mat=_intrinsics(2), intrinsic_mat_inv=None)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    geometry.using_motion_vector(**args)


def test_rotation_functions_bad_inputs():
  with pytest.raises(ValueError, match=r'rot must have shape \[..., 3\]'):
    geometry.matrix_from_angles(np.zeros((2, 4)))
  with pytest.raises(ValueError, match=r'matrix must have shape \[..., 3, 3\]'):
    geometry.angles_from_matrix(np.zeros((2, 3, 4)))
  with pytest.raises(ValueError, match='rx and rz'):
    geometry.unstacked_matrix_from_angles(np.zeros(3), np.zeros(3), np.zeros(4))
  with pytest.raises(ValueError, match='intrinsics_mat'):
    geometry.invert_intrinsics_matrix(np.zeros((2, 2)))
  with pytest.raises(ValueError, match='trans_vec1'):
    geometry.combine(np.eye(3), np.zeros(4), np.eye(3), np.zeros(3))
