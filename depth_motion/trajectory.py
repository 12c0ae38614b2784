"""Camera trajectories from chained relative motions, and the KITTI / TUM file formats.

Convention. The network's ego-motion of a frame pair (k-1, k) is the rigid
transform T_{k-1->k} = [R | t] that maps a point in camera k-1's coordinates to
camera k's: P_k = R P_{k-1} + t (`depth_motion.data.features`, `model.infer_egomotion`).
The pose of camera k is the camera-to-world transform C_k (P_world = C_k P_k),
with the world the first camera (C_0 = I). Since P_{k-1} = T_{k-1->k}^-1 P_k,

    C_k = C_{k-1} · T_{k-1->k}^-1.

File formats (both hold camera-to-world poses, one line per frame):
  KITTI odometry: the 12 numbers of the 3x4 matrix [R | t] of C_k, row-major.
  TUM RGB-D:      `timestamp tx ty tz qx qy qz qw`, the position and the
                  orientation quaternion (Hamilton, unit, qw >= 0) of C_k.

Everything here is NumPy float64 and independent of TensorFlow.
"""

import os

import numpy as np


def _as_rotations(rotations, name='rotations'):
  rotations = np.asarray(rotations, dtype=np.float64)
  if rotations.ndim < 2 or rotations.shape[-2:] != (3, 3):
    raise ValueError('%s must have shape [..., 3, 3], got %s.' % (name, rotations.shape))
  return rotations


def _as_poses(poses, name='poses'):
  poses = np.asarray(poses, dtype=np.float64)
  if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)):
    raise ValueError('%s must have shape [N, 4, 4] or [N, 3, 4], got %s.' % (name, poses.shape))
  if poses.shape[1] == 3:
    bottom = np.broadcast_to([0.0, 0.0, 0.0, 1.0], (poses.shape[0], 1, 4))
    poses = np.concatenate([poses, bottom], axis=1)
  return poses


def make_transform(rotation, translation):
  """[..., 4, 4] homogeneous transforms [[R, t], [0, 1]] from R [..., 3, 3] and t [..., 3]."""
  rotation = _as_rotations(rotation, 'rotation')
  translation = np.asarray(translation, dtype=np.float64)
  if translation.shape != rotation.shape[:-1]:
    raise ValueError('translation must have shape %s to match rotation %s, got %s.' %
                     (rotation.shape[:-1], rotation.shape, translation.shape))
  transform = np.zeros(rotation.shape[:-2] + (4, 4))
  transform[..., :3, :3] = rotation
  transform[..., :3, 3] = translation
  transform[..., 3, 3] = 1.0
  return transform


def invert_transform(transform):
  """Inverse of rigid transforms [..., 4, 4]: [[R^T, -R^T t], [0, 1]]."""
  transform = np.asarray(transform, dtype=np.float64)
  if transform.ndim < 2 or transform.shape[-2:] != (4, 4):
    raise ValueError('transform must have shape [..., 4, 4], got %s.' % (transform.shape,))
  rotation_t = np.swapaxes(transform[..., :3, :3], -1, -2)
  translation = transform[..., :3, 3]
  return make_transform(rotation_t, -np.einsum('...ij,...j->...i', rotation_t, translation))


def nearest_rotation(matrices):
  """Projects [..., 3, 3] matrices onto SO(3) (closest in Frobenius norm, det = +1).

  `model.infer_egomotion` averages the forward estimate with the inverse of the
  backward one, R = (R12 + R21^-1) / 2, which is close to but not exactly a
  rotation; chaining such matrices would let the error grow along the path.
  """
  matrices = _as_rotations(matrices, 'matrices')
  u, _, vt = np.linalg.svd(matrices)
  det = np.linalg.det(u @ vt)
  correction = np.ones(matrices.shape[:-1])
  correction[..., 2] = np.sign(det) + (det == 0)
  return (u * correction[..., None, :]) @ vt


def chain_relative_motions(rotations, translations, orthonormalize=True):
  """Camera poses from consecutive relative motions.

  Args:
    rotations: [N, 3, 3], R of T_{k-1->k} for k = 1..N.
    translations: [N, 3], t of T_{k-1->k}.
    orthonormalize: project each R onto SO(3) first (see `nearest_rotation`).

  Returns:
    [N + 1, 4, 4] camera-to-world poses C_0 = I, C_k = C_{k-1} · T_{k-1->k}^-1.
  """
  rotations = _as_rotations(rotations)
  translations = np.asarray(translations, dtype=np.float64)
  if rotations.ndim != 3 or translations.shape != (rotations.shape[0], 3):
    raise ValueError('rotations must be [N, 3, 3] and translations [N, 3], got %s and %s.' %
                     (rotations.shape, translations.shape))
  if orthonormalize and len(rotations):
    rotations = nearest_rotation(rotations)
  inverse_motions = invert_transform(make_transform(rotations, translations))
  poses = np.empty((rotations.shape[0] + 1, 4, 4))
  poses[0] = np.eye(4)
  for k, inverse in enumerate(inverse_motions):
    poses[k + 1] = poses[k] @ inverse
  return poses


def relative_motions_from_poses(poses):
  """The inverse of `chain_relative_motions`: T_{k-1->k} = C_k^-1 · C_{k-1}.

  Args:
    poses: [N + 1, 4, 4] (or [N + 1, 3, 4]) camera-to-world poses.

  Returns:
    (rotations [N, 3, 3], translations [N, 3]).
  """
  poses = _as_poses(poses)
  motions = invert_transform(poses[1:]) @ poses[:-1]
  return motions[:, :3, :3], motions[:, :3, 3]


def rotation_to_quaternion(rotations):
  """Unit quaternions (qx, qy, qz, qw), qw >= 0, of rotation matrices [..., 3, 3].

  Shepperd's method: divides by the largest of the four candidate diagonal
  combinations, so it is accurate for every angle, 180 degrees included.
  """
  r = _as_rotations(rotations)
  trace = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
  candidates = np.stack([r[..., 0, 0], r[..., 1, 1], r[..., 2, 2], trace], axis=-1)
  choice = np.argmax(candidates, axis=-1)
  q = np.empty(r.shape[:-2] + (4,))
  # Each case solves for its largest component first (4 q_i^2 = 1 + ...).
  cases = {
      0: (lambda m: 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
          lambda m, s: (0.25 * s, (m[..., 0, 1] + m[..., 1, 0]) / s,
                        (m[..., 0, 2] + m[..., 2, 0]) / s, (m[..., 2, 1] - m[..., 1, 2]) / s)),
      1: (lambda m: 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
          lambda m, s: ((m[..., 0, 1] + m[..., 1, 0]) / s, 0.25 * s,
                        (m[..., 1, 2] + m[..., 2, 1]) / s, (m[..., 0, 2] - m[..., 2, 0]) / s)),
      2: (lambda m: 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
          lambda m, s: ((m[..., 0, 2] + m[..., 2, 0]) / s, (m[..., 1, 2] + m[..., 2, 1]) / s,
                        0.25 * s, (m[..., 1, 0] - m[..., 0, 1]) / s)),
      3: (lambda m: 1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
          lambda m, s: ((m[..., 2, 1] - m[..., 1, 2]) / s, (m[..., 0, 2] - m[..., 2, 0]) / s,
                        (m[..., 1, 0] - m[..., 0, 1]) / s, 0.25 * s)),
  }
  for index, (radicand, components) in cases.items():
    selected = choice == index
    if not np.any(selected):
      continue
    m = r[selected]
    s = 2.0 * np.sqrt(np.maximum(radicand(m), 1e-300))
    q[selected] = np.stack(components(m, s), axis=-1)
  q /= np.linalg.norm(q, axis=-1, keepdims=True)
  return np.where(q[..., 3:] < 0, -q, q)


def quaternion_to_rotation(quaternions):
  """Rotation matrices [..., 3, 3] of quaternions (qx, qy, qz, qw) [..., 4] (normalised first)."""
  q = np.asarray(quaternions, dtype=np.float64)
  if q.ndim < 1 or q.shape[-1] != 4:
    raise ValueError('quaternions must have shape [..., 4] = (qx, qy, qz, qw), got %s.' %
                     (q.shape,))
  x, y, z, w = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
  return np.stack([
      np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
      np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
      np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
  ], axis=-2)


def format_kitti(poses):
  """KITTI odometry lines: the 12 numbers of each pose's 3x4 [R | t], row-major."""
  poses = _as_poses(poses)
  return ['%s' % ' '.join('%.9e' % v for v in pose[:3].reshape(-1)) for pose in poses]


def format_tum(poses, timestamps):
  """TUM lines `timestamp tx ty tz qx qy qz qw` for each pose."""
  poses = _as_poses(poses)
  timestamps = np.asarray(timestamps, dtype=np.float64)
  if timestamps.shape != (poses.shape[0],):
    raise ValueError('timestamps must have shape (%d,) (one per pose), got %s.' %
                     (poses.shape[0], timestamps.shape))
  quaternions = rotation_to_quaternion(poses[:, :3, :3])
  return ['%.6f %s' % (stamp, ' '.join('%.9f' % v for v in np.concatenate([pose[:3, 3], q])))
          for stamp, pose, q in zip(timestamps, poses, quaternions)]


def _write_lines(path, lines):
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = '%s.tmp-%d' % (path, os.getpid())
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(''.join(line + '\n' for line in lines))
  os.replace(tmp, path)
  return path


def write_kitti(path, poses):
  """Writes poses in the KITTI odometry format (atomically). Returns the path."""
  return _write_lines(path, format_kitti(poses))


def write_tum(path, poses, timestamps):
  """Writes poses in the TUM format (atomically). Returns the path."""
  return _write_lines(path, ['# timestamp tx ty tz qx qy qz qw'] + format_tum(poses, timestamps))


def _read_rows(path, width):
  rows = []
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      line = line.strip()
      if not line or line.startswith('#'):
        continue
      values = line.split()
      if len(values) != width:
        raise ValueError('%s line %d: expected %d numbers, got %d.' %
                         (path, number, width, len(values)))
      try:
        rows.append([float(v) for v in values])
      except ValueError:
        raise ValueError('%s line %d: not a list of numbers: %r.' % (path, number, line)) from None
  return np.array(rows, dtype=np.float64).reshape(-1, width)


def read_kitti(path):
  """Reads a KITTI odometry trajectory -> [N, 4, 4] camera-to-world poses."""
  return _as_poses(_read_rows(path, 12).reshape(-1, 3, 4))


def read_tum(path):
  """Reads a TUM trajectory -> (timestamps [N], poses [N, 4, 4])."""
  rows = _read_rows(path, 8)
  return rows[:, 0], make_transform(quaternion_to_rotation(rows[:, 4:]), rows[:, 1:4])
