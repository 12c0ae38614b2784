"""Every entry point on tiny synthetic data: train (CLI) -> evaluate -> export -> reload -> infer."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_prep import synthetic
from depth_motion import export
from depth_motion import infer
from depth_motion import model as model_lib
from depth_motion import visualization

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_PARAMS = json.dumps({'image_preprocessing': {'image_height': 32, 'image_width': 64},
                          'motion_field_burnin_steps': 2})


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """Trains 3 steps through the CLI, as a user would, with evaluation afterwards."""
  root = tmp_path_factory.mktemp('e2e')
  data_dir, model_dir = root / 'tfds', root / 'model'
  synthetic.ensure_synthetic_dataset(data_dir=str(data_dir), config='tiny', num_workers=1)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run(
      [sys.executable, '-m', 'depth_motion.train', '--model_dir=%s' % model_dir,
       '--dataset=synthetic_dynamic_scenes/tiny', '--data_dir=%s' % data_dir,
       '--batch_size=2', '--train_steps=3', '--summary_every_steps=1', '--seed=1',
       '--param_overrides=%s' % TINY_PARAMS, '--eval_protocol=synthetic'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return root, data_dir, model_dir, proc


def test_train_cli_trains_logs_and_evaluates(trained):
  _, _, model_dir, proc = trained
  assert tf.train.latest_checkpoint(str(model_dir)).endswith('-3')
  assert 'step 3/3' in proc.stderr and 'pairs/s' in proc.stderr and 'ETA' in proc.stderr
  results = json.load(open(model_dir / 'eval_synthetic.json'))
  for key in ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'a1', 'a2', 'a3'):
    assert np.isfinite(results['depth'][key]), key
  assert 'abs_rel' in proc.stdout  # the metrics are printed for the user


def test_export_reload_matches_checkpoint(trained):
  root, data_dir, model_dir, _ = trained
  export_dir = root / 'saved_model'
  export.export_saved_model(str(model_dir), str(export_dir))
  loaded = tf.saved_model.load(str(export_dir))
  model, _, _ = model_lib.restore_model(str(model_dir))
  rgb = np.random.RandomState(0).uniform(size=(3, 32, 64, 3)).astype(np.float32)
  expected = model.predict_depth(tf.constant(rgb)).numpy()
  got = loaded.signatures['depth'](images=tf.constant(rgb))
  depth = got['depth'].numpy()
  np.testing.assert_allclose(depth, expected, rtol=1e-4, atol=1e-5)


def test_infer_on_synthetic_frames(trained):
  import cv2  # pylint: disable=g-import-not-at-top
  root, data_dir, model_dir, _ = trained
  frames_dir = root / 'frames'
  frames_dir.mkdir()
  rng = np.random.RandomState(1)
  base = visualization.to_uint8(rng.uniform(size=(32, 64, 3)))
  for i in range(5):
    cv2.imwrite(str(frames_dir / ('%03d.png' % i)), np.roll(base, i, axis=1))
  out = root / 'infer_out'
  infer.infer(str(frames_dir), str(out), checkpoint=str(model_dir))
  assert len(list(out.glob('**/*.npy'))) == 5
  kitti = (out / 'trajectory_kitti.txt').read_text().strip().splitlines()
  assert len(kitti) == 5 and all(len(line.split()) == 12 for line in kitti)
