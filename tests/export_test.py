"""SavedModel export: loads in a fresh process without depth_motion and matches the model."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import export
from depth_motion import geometry
from depth_motion import model as model_lib

H, W = 32, 64
TINY = {'image_preprocessing': {'image_height': H, 'image_width': W}}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs with only TensorFlow (which itself imports Keras): the SavedModel must not need our code.
FRESH_PROCESS_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf
    export_dir, inputs_path, outputs_path = sys.argv[1:4]
    inputs = np.load(inputs_path)
    loaded = tf.saved_model.load(export_dir)
    out = {}
    default = loaded.signatures['serving_default'](images=tf.constant(inputs['images']))
    for key, value in default.items():
      out['default/' + key] = value.numpy()
    uint8 = loaded.signatures['depth_uint8'](images=tf.constant(inputs['images_uint8']))
    out['uint8/depth'] = uint8['depth'].numpy()
    out['single/depth'] = loaded.depth(tf.constant(inputs['images'][:1]))['depth'].numpy()
    motion = loaded.signatures['motion'](frame1=tf.constant(inputs['frame1']),
                                         frame2=tf.constant(inputs['frame2']))
    for key, value in motion.items():
      out['motion/' + key] = value.numpy()
    sequence = loaded.signatures['sequence_uint8'](frames=tf.constant(inputs['images_uint8']))
    for key, value in sequence.items():
      out['sequence/' + key] = value.numpy()
    out['trained_size'] = np.array([loaded.trained_height.numpy(), loaded.trained_width.numpy()])
    assert not any(m.startswith('depth_motion') for m in sys.modules), 'imported depth_motion'
    np.savez(outputs_path, **out)
''')


def _close(actual, expected, rtol=1e-5, atol=1e-6):
  """The golden-data rule: max |a - e| <= atol + rtol * max |e|."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape
  assert np.abs(actual - expected).max() <= atol + rtol * np.abs(expected).max()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """(original model, export_dir, fresh-process outputs, inputs)."""
  root = tmp_path_factory.mktemp('export')
  model = model_lib.DepthMotionFieldModel(TINY)
  model.build_for_size(H, W)
  model_dir = root / 'model'
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(model_dir), 1).save()
  model_lib.save_model_params(str(model_dir), TINY)
  export_dir = root / 'saved_model'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  completed = subprocess.run(
      [sys.executable, '-m', 'depth_motion.export', '--checkpoint=%s' % model_dir,
       '--export_dir=%s' % export_dir], cwd=REPO, capture_output=True, text=True, timeout=300,
      env=env)
  assert completed.returncode == 0, completed.stderr[-3000:]

  rng = np.random.RandomState(0)
  images = rng.uniform(size=(3, 40, 70, 3)).astype(np.float32)
  inputs = {
      'images': images,
      'images_uint8': rng.randint(0, 256, (2, 24, 50, 3)).astype(np.uint8),
      'frame1': images[:2],
      'frame2': np.roll(images[:2], 3, axis=2),
  }
  np.savez(root / 'inputs.npz', **inputs)
  script = root / 'fresh.py'
  script.write_text(FRESH_PROCESS_SCRIPT)
  # Outside the repository and without PYTHONPATH: depth_motion is not importable there.
  clean_env = {k: v for k, v in env.items() if k != 'PYTHONPATH'}
  completed = subprocess.run(
      [sys.executable, str(script), str(export_dir), str(root / 'inputs.npz'),
       str(root / 'outputs.npz')], cwd=str(root), capture_output=True, text=True, timeout=300,
      env=clean_env)
  assert completed.returncode == 0, completed.stderr[-3000:]
  return model, export_dir, dict(np.load(root / 'outputs.npz')), inputs


def _resized(images):
  images = tf.convert_to_tensor(images)
  if images.dtype == tf.uint8:
    images = tf.cast(images, tf.float32) / 255.0
  return tf.image.resize(images, [H, W], method='bilinear')


def test_depth_signatures_match_the_checkpoint_model(exported):
  model, _, out, inputs = exported
  expected = model.predict_depth(_resized(inputs['images'])).numpy()
  _close(out['default/depth'], expected)
  _close(out['default/disparity'], 1.0 / expected)
  assert out['default/depth_resized'].shape == (3, 40, 70, 1)
  _close(out['default/depth_resized'],
         tf.image.resize(expected, [40, 70], method='bilinear').numpy())
  _close(out['single/depth'], expected[:1])
  _close(out['uint8/depth'], model.predict_depth(_resized(inputs['images_uint8'])).numpy())
  assert np.all(out['default/depth'] > 0)
  np.testing.assert_array_equal(out['trained_size'], [H, W])


def test_motion_signature_matches_the_checkpoint_model(exported):
  model, _, out, inputs = exported
  frame1, frame2 = _resized(inputs['frame1']), _resized(inputs['frame2'])
  rotation, translation = model.infer_egomotion(frame1, frame2)
  _close(out['motion/rotation_matrix'], rotation.numpy())
  _close(out['motion/background_translation'], translation.numpy())
  _close(out['motion/rotation'], geometry.angles_from_matrix(rotation).numpy())
  depth1 = model.predict_depth(frame1)
  depth2 = model.predict_depth(frame2)
  _close(out['motion/depth1'], depth1.numpy())
  _close(out['motion/depth2'], depth2.numpy())
  for i in range(2):
    # Each pair alone, as the model's training step would see a batch of one pair.
    a = tf.concat([frame1[i:i + 1], depth1[i:i + 1]], axis=-1)
    b = tf.concat([frame2[i:i + 1], depth2[i:i + 1]], axis=-1)
    _, _, residual, intrinsics = model.predict_motion(
        tf.concat([tf.concat([a, b], -1), tf.concat([b, a], -1)], axis=0))
    _close(out['motion/residual_translation'][i], residual[0].numpy())
    _close(out['motion/intrinsics'][i], 0.5 * (intrinsics[0] + intrinsics[1]).numpy())
  assert out['motion/residual_translation'].shape == (2, H, W, 3)
  np.testing.assert_array_equal(out['motion/intrinsics_learned'], [False, False])


def test_sequence_signature_matches_depth_and_motion(exported):
  model, _, out, inputs = exported
  frames = _resized(inputs['images_uint8'])
  _close(out['sequence/depth'], model.predict_depth(frames).numpy())
  rotation, translation = model.infer_egomotion(frames[:1], frames[1:])
  _close(out['sequence/rotation_matrix'], rotation.numpy())
  _close(out['sequence/background_translation'], translation.numpy())
  assert out['sequence/residual_translation'].shape == (1, H, W, 3)
  assert out['sequence/intrinsics'].shape == (1, 3, 3)


def test_export_layout_readme_and_no_overwrite(exported):
  _, export_dir, _, _ = exported
  readme = (export_dir / 'assets' / 'README').read_text()
  assert 'up to one unknown global scale' in readme and 'not disparity' in readme
  assert '%dx%d' % (H, W) in readme
  assert (export_dir / 'assets' / 'params.json').exists()
  assert not [p for p in export_dir.parent.iterdir() if '.tmp-' in p.name]
  with pytest.raises(ValueError, match='already exists'):
    export.export_saved_model(str(export_dir.parent / 'model'), str(export_dir))


def test_loading_the_export_through_our_loader(exported):
  _, export_dir, out, inputs = exported
  loaded = export.load(saved_model=str(export_dir))
  assert (loaded.height, loaded.width) == (H, W)
  assert loaded.params['image_preprocessing']['image_height'] == H
  _close(loaded.depth(inputs['images'])['depth'], out['default/depth'])
  with pytest.raises(ValueError, match='not a SavedModel'):
    export.load(saved_model=str(export_dir / 'assets'))
  with pytest.raises(ValueError, match='exactly one of checkpoint and saved_model'):
    export.load()
