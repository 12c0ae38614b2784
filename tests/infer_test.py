"""Inference on users' videos and image folders: files written, trajectory, bad input."""

import io
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from depth_motion import export
from depth_motion import infer
from depth_motion import model as model_lib
from depth_motion import trajectory

H, W = 32, 64
TINY = {'image_preprocessing': {'image_height': H, 'image_width': W}}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME_H, FRAME_W = 48, 80


def _frames(count, seed=0):
  """A textured scene sliding sideways, so consecutive frames differ."""
  rng = np.random.RandomState(seed)
  texture = cv2.resize(rng.randint(0, 256, (12, 40, 3)).astype(np.uint8), (4 * FRAME_W, FRAME_H),
                       interpolation=cv2.INTER_LINEAR)
  return [texture[:, 4 * k:4 * k + FRAME_W].copy() for k in range(count)]


def _write_video(path, frames, fps=12.0):
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (FRAME_W, FRAME_H))
  assert writer.isOpened()
  for frame in frames:
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()
  return str(path)


def _write_folder(path, frames):
  path.mkdir()
  for k, frame in enumerate(frames):
    cv2.imwrite(str(path / ('img_%03d.png' % k)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  (path / 'notes.txt').write_text('not an image')
  return str(path)


@pytest.fixture(scope='module')
def tiny_model():
  model = model_lib.DepthMotionFieldModel(TINY)
  model.build_for_size(H, W)
  return export.LoadedModel(export.DepthMotionModule(model, model.params), model.params,
                            'memory')


def _count(directory, ext):
  return len([n for n in os.listdir(directory) if n.endswith(ext)])


def test_video_gives_depth_motion_trajectory_and_side_by_side(tmp_path, tiny_model):
  video = _write_video(tmp_path / 'clip.mp4', _frames(5))
  out = tmp_path / 'out'
  progress = io.StringIO()
  summary = infer.infer(video, str(out), model=tiny_model, video_out=str(out / 'sbs.mp4'),
                        batch_size=3, progress_stream=progress)
  assert summary['num_frames'] == 5
  assert summary['fps'] == pytest.approx(12.0)
  assert _count(out / 'depth', '.npy') == 5 and _count(out / 'depth', '.png') == 5
  assert _count(out / 'motion', '.png') == 4  # One per consecutive pair.
  assert np.load(out / 'depth' / '000000.npy').shape == (H, W)
  assert cv2.imread(str(out / 'depth' / '000004.png')).shape == (H, W, 3)
  assert len(trajectory.read_kitti(str(out / 'trajectory_kitti.txt'))) == 5
  stamps, poses = trajectory.read_tum(str(out / 'trajectory_tum.txt'))
  np.testing.assert_allclose(stamps, np.arange(5) / 12.0, atol=1e-6)
  np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)
  assert (out / 'frames.txt').read_text().split() == ['%06d' % k for k in range(5)]
  assert '5/5 frames' in progress.getvalue() and 'frames/s' in progress.getvalue()
  capture = cv2.VideoCapture(str(out / 'sbs.mp4'))
  decoded = []
  ok, frame = capture.read()
  while ok:
    decoded.append(frame)
    ok, frame = capture.read()
  capture.release()
  assert len(decoded) == 5 and decoded[0].shape == (FRAME_H, 3 * FRAME_W, 3)
  assert not [p for p in out.rglob('*') if '.tmp' in p.name]


def test_folder_results_follow_the_model_and_do_not_depend_on_batch_size(tmp_path, tiny_model):
  frames = _frames(4, seed=1)
  folder = _write_folder(tmp_path / 'frames', frames)
  one = infer.infer(folder, str(tmp_path / 'one'), model=tiny_model, batch_size=1,
                    progress_stream=io.StringIO())
  three = infer.infer(folder, str(tmp_path / 'three'), model=tiny_model, batch_size=3,
                      depth_at_input_size=True, progress_stream=io.StringIO())
  assert one['num_frames'] == three['num_frames'] == 4
  np.testing.assert_allclose(one['poses'], three['poses'], atol=1e-5)
  small = [cv2.resize(f, (W, H), interpolation=cv2.INTER_LINEAR) for f in frames]
  for k, name in enumerate('img_%03d' % k for k in range(4)):
    depth = np.load(tmp_path / 'one' / 'depth' / (name + '.npy'))
    expected = tiny_model.depth(small[k][None])['depth'][0, ..., 0]
    np.testing.assert_allclose(depth, expected, rtol=1e-5)
    assert np.load(tmp_path / 'three' / 'depth' / (name + '.npy')).shape == (FRAME_H, FRAME_W)
  # Camera k's pose is C_{k-1} T_{k-1->k}^-1 with T from the motion signature.
  motion = tiny_model.motion(np.stack(small[:3]), np.stack(small[1:]))
  poses = one['poses']
  for k in range(1, 4):
    step = trajectory.make_transform(
        trajectory.nearest_rotation(motion['rotation_matrix'][k - 1]),
        motion['background_translation'][k - 1])
    np.testing.assert_allclose(poses[k], poses[k - 1] @ np.linalg.inv(step), atol=1e-5)


def test_a_single_image_gives_one_pose(tmp_path, tiny_model):
  folder = _write_folder(tmp_path / 'one_frame', _frames(1))
  summary = infer.infer(folder, str(tmp_path / 'out'), model=tiny_model,
                        progress_stream=io.StringIO())
  assert summary['num_frames'] == 1
  assert _count(tmp_path / 'out' / 'motion', '.png') == 0
  np.testing.assert_allclose(trajectory.read_kitti(str(tmp_path / 'out' / 'trajectory_kitti.txt')),
                             np.eye(4)[None], atol=1e-12)


def test_bad_inputs_fail_clearly(tmp_path, tiny_model):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='holds no images'):
    infer.infer(str(tmp_path / 'empty'), str(tmp_path / 'out'), model=tiny_model)
  (tmp_path / 'fake.mp4').write_bytes(b'this is not a video' * 10)
  with pytest.raises(ValueError, match='Cannot decode video'):
    infer.infer(str(tmp_path / 'fake.mp4'), str(tmp_path / 'out'), model=tiny_model)
  with pytest.raises(ValueError, match='does not exist'):
    infer.infer(str(tmp_path / 'missing.mp4'), str(tmp_path / 'out'), model=tiny_model)
  broken = _write_folder(tmp_path / 'broken', _frames(3))
  (tmp_path / 'broken' / 'img_002.png').write_bytes(b'\x89PNG broken')
  video_out = tmp_path / 'out' / 'sbs.mp4'
  with pytest.raises(ValueError, match='Cannot decode image .*img_002.png'):
    infer.infer(broken, str(tmp_path / 'out'), model=tiny_model, video_out=str(video_out),
                batch_size=1, progress_stream=io.StringIO())
  assert not [p for p in (tmp_path / 'out').iterdir() if p.suffix == '.mp4']


def test_command_line(tmp_path):
  model = model_lib.DepthMotionFieldModel(TINY)
  model.build_for_size(H, W)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(tmp_path / 'model'), 1).save()
  model_lib.save_model_params(str(tmp_path / 'model'), TINY)
  video = _write_video(tmp_path / 'clip.mp4', _frames(3))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  completed = subprocess.run(
      [sys.executable, '-m', 'depth_motion.infer', '--checkpoint=%s' % (tmp_path / 'model'),
       '--input=%s' % video, '--output_dir=%s' % (tmp_path / 'out'), '--fps=5'],
      cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert 'num_frames: 3' in completed.stdout
  assert '3/3 frames' in completed.stderr
  stamps, _ = trajectory.read_tum(str(tmp_path / 'out' / 'trajectory_tum.txt'))
  np.testing.assert_allclose(stamps, [0.0, 0.2, 0.4])
  (tmp_path / 'empty').mkdir()
  completed = subprocess.run(
      [sys.executable, '-m', 'depth_motion.infer', '--checkpoint=%s' % (tmp_path / 'model'),
       '--input=%s' % (tmp_path / 'empty'), '--output_dir=%s' % (tmp_path / 'out2')],
      cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
  assert completed.returncode == 1
  assert 'holds no images' in completed.stderr
