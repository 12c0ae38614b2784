"""Evaluation: protocol and metric known answers, end-to-end runs, bad input."""

import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from depth_motion import evaluate as evaluate_lib
from depth_motion import export
from depth_motion import model as model_lib
from depth_motion.evaluation import motion_metrics
from depth_motion.evaluation import protocols

H, W = 32, 64
TINY = {'image_preprocessing': {'image_height': H, 'image_width': W}}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'a1', 'a2', 'a3')


def _save_tiny_model(model_dir, overrides=None, build_overrides=None):
  """Saves a randomly initialised tiny model as the trainer would; returns the model."""
  model = model_lib.DepthMotionFieldModel(build_overrides or overrides or TINY)
  model.build_for_size(H, W)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(model_dir), 1).save()
  model_lib.save_model_params(str(model_dir), (overrides or TINY))
  return model


def _loaded(model):
  return export.LoadedModel(export.DepthMotionModule(model, model.params), model.params,
                            'memory')


@pytest.fixture(scope='module')
def tiny_model():
  """A random tiny model behind the serving module (shared, so traced once)."""
  model = model_lib.DepthMotionFieldModel(TINY)
  model.build_for_size(H, W)
  return _loaded(model)


@pytest.fixture(scope='module')
def synthetic_dir(tmp_path_factory):
  synthetic = pytest.importorskip('data_prep.synthetic')
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  synthetic.ensure_synthetic_dataset(data_dir, 'tiny', num_workers=1)
  return data_dir


# ----------------------------------------------------------------------------- protocols


def _score(gt, pred, name='synthetic', **kwargs):
  return protocols.evaluate_depth_image(protocols.get_protocol(name), np.asarray(gt, np.float64),
                                        np.asarray(pred, np.float64), **kwargs)


def test_perfect_prediction_has_zero_error_and_all_deltas():
  gt = np.random.RandomState(0).uniform(1, 70, (6, 8))
  result = _score(gt, gt)
  for key in ('abs_rel', 'sq_rel', 'rmse', 'rmse_log'):
    assert result['metrics'][key] == pytest.approx(0.0, abs=1e-12)
  for key in ('a1', 'a2', 'a3'):
    assert result['metrics'][key] == 1.0
  assert result['ratio'] == pytest.approx(1.0)
  assert result['num_pixels'] == 48


def test_constant_factor_is_removed_by_median_scaling():
  gt = np.random.RandomState(1).uniform(1, 70, (6, 8))
  result = _score(gt, 0.25 * gt)
  assert result['ratio'] == pytest.approx(4.0)
  assert result['metrics']['abs_rel'] == pytest.approx(0.0, abs=1e-12)
  assert result['metrics']['a1'] == 1.0
  unscaled = _score(gt, 0.25 * gt, median_scaling=False)
  assert unscaled['ratio'] == 1.0
  assert unscaled['metrics']['abs_rel'] == pytest.approx(0.75)


def test_hand_computed_example():
  # gt (1, 2, 4) vs pred (2, 2, 2): medians agree, so the scale is 1.
  result = _score([[1.0, 2.0, 4.0]], [[2.0, 2.0, 2.0]])
  m = result['metrics']
  assert result['ratio'] == 1.0
  assert m['abs_rel'] == pytest.approx((1 + 0 + 0.5) / 3)
  assert m['sq_rel'] == pytest.approx((1 + 0 + 1) / 3)
  assert m['rmse'] == pytest.approx(np.sqrt(5 / 3))
  assert m['rmse_log'] == pytest.approx(np.log(2) * np.sqrt(2 / 3))
  # max(gt/p, p/gt) = (2, 1, 2): only the middle pixel is within 1.25, 1.5625 and 1.953.
  assert (m['a1'], m['a2'], m['a3']) == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_scaled_prediction_is_clipped_to_the_depth_range():
  # Scale 10 takes the 9 m prediction to 90 m, clipped to 80: error 20 / 100.
  result = _score([[10.0, 20.0, 79.0]], [[1.0, 2.0, 9.0]])
  assert result['ratio'] == pytest.approx(10.0)
  assert result['metrics']['abs_rel'] == pytest.approx((0 + 0 + 1 / 79) / 3)


def test_garg_crop_indices():
  assert protocols.garg_crop_box(375, 1242) == (153, 371, 44, 1197)
  # SPEC 8.1 quotes rows [151, 367), cols [44, 1180) for 370x1224, the crop the
  # fractions were derived from; the published int() truncation of the float64
  # products (SfMLearner, monodepth2) gives one pixel less at two edges, and
  # that is what every reported number used.
  assert protocols.garg_crop_box(370, 1224) == (151, 366, 43, 1180)
  mask = protocols.crop_mask('garg', 375, 1242)
  assert mask.sum() == (371 - 153) * (1197 - 44)
  assert mask[153, 44] and not mask[152, 44] and not mask[153, 1197]


def test_valid_pixels_follow_each_protocol():
  gt = np.full((375, 1242), 10.0)
  gt[200, 100:104] = (0.0, 1e-3, 80.0, 79.9)
  kitti = protocols.valid_mask(protocols.get_protocol('kitti_eigen'), gt)
  assert not kitti[0, 0] and kitti[200, 600]  # Outside / inside the Garg crop.
  assert list(kitti[200, 100:104]) == [False, False, False, True]
  benchmark = protocols.valid_mask(protocols.get_protocol('kitti_eigen_benchmark'), gt)
  assert benchmark[0, 0]  # No crop: every pixel with gt > 0.
  assert list(benchmark[200, 100:104]) == [False, True, True, True]
  assert protocols.get_protocol('kitti_eigen').expected_images == 697
  assert protocols.get_protocol('kitti_eigen_benchmark').expected_images == 652
  assert protocols.get_protocol('waymo', max_depth=75.0).max_depth == 75.0
  with pytest.raises(ValueError, match='Unknown protocol'):
    protocols.get_protocol('nyu')


def test_parts_are_scored_with_the_whole_image_scale():
  gt = np.full((4, 4), 10.0)
  pred = gt.copy()
  pred[0, :2] = 20.0  # The 'moving' pixels are off by 2x; the median is unaffected.
  moving = np.zeros((4, 4), bool)
  moving[0, :2] = True
  result = _score(gt, pred, parts={'moving': moving, 'static': ~moving})
  assert result['ratio'] == 1.0
  assert result['parts']['static']['abs_rel'] == pytest.approx(0.0)
  assert result['parts']['moving']['abs_rel'] == pytest.approx(1.0)
  assert result['parts']['moving']['a3'] == 0.0
  assert result['metrics']['abs_rel'] == pytest.approx(2 / 16)


def test_input_is_resized_with_opencv_bilinear_and_cityscapes_is_cropped():
  rng = np.random.RandomState(2)
  image = rng.randint(0, 256, (40, 100, 3)).astype(np.uint8)
  prepared = protocols.prepare_image(protocols.get_protocol('kitti_eigen'), image, (H, W))
  expected = cv2.resize(image, (W, H), interpolation=cv2.INTER_LINEAR) / 255.0
  np.testing.assert_allclose(prepared, expected, atol=1e-7)
  city = protocols.get_protocol('cityscapes')
  full = np.zeros((1024, 2048, 3), np.uint8)
  full[256:768, 192:1856] = 200
  np.testing.assert_allclose(protocols.prepare_image(city, full, (H, W)), 200 / 255.0,
                             atol=1e-6)
  gt_full = np.zeros((1024, 2048), np.float32)
  gt_full[256:768, 192:1856] = 5.0
  gt = protocols.prepare_ground_truth(city, gt_full, (1024, 2048))
  assert gt.shape == (512, 1664) and np.all(gt == 5.0)
  # Already-cropped data (data_prep.cityscapes' test split) pass unchanged.
  assert protocols.prepare_ground_truth(city, gt, (512, 1664)).shape == (512, 1664)
  pred = protocols.resize_prediction(np.ones((H, W, 1)), gt.shape)
  assert pred.shape == (512, 1664)


def test_ground_truth_of_the_wrong_size_is_rejected():
  kitti = protocols.get_protocol('kitti_eigen')
  with pytest.raises(ValueError, match=r'does not match its image of size 375x1242'):
    protocols.prepare_ground_truth(kitti, np.ones((1242, 375)), (375, 1242))
  with pytest.raises(ValueError, match=r'must have shape \[H, W\]'):
    protocols.prepare_ground_truth(kitti, np.ones((3, 375, 1242)), (375, 1242))
  with pytest.raises(ValueError, match='gt and pred must be'):
    _score(np.ones((4, 4)), np.ones((4, 5)))


# ----------------------------------------------------------------------------- motion metrics


def test_motion_metrics_known_answers():
  angle = np.radians(10.0)
  rz = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                 [0, 0, 1]])
  assert motion_metrics.rotation_error_deg(np.eye(3), rz) == pytest.approx(10.0)
  assert motion_metrics.rotation_error_deg(rz, rz) == pytest.approx(0.0, abs=1e-6)
  errors = motion_metrics.translation_direction_error_deg(
      [[1.0, 0, 0], [0, 0, 2.0], [0, 0, 0]], [[0, 1.0, 0], [0, 0, 0.5], [0, 0, 1.0]])
  assert errors[0] == pytest.approx(90.0)
  assert errors[1] == pytest.approx(0.0, abs=1e-6)
  assert np.isnan(errors[2])  # No direction for a zero vector.

  truth = np.zeros((2, 3, 3))
  truth[0, 0] = (1.0, 0.0, 0.0)
  predicted = np.zeros((2, 3, 3))
  predicted[0, 0] = (0.5, 0.0, 0.0)
  predicted[1, 2] = (0.0, 0.1, 0.0)
  moving = np.linalg.norm(truth, axis=-1) > 0
  result = motion_metrics.object_motion_errors(predicted, truth, moving)
  assert result['epe_moving'] == pytest.approx(0.5)
  assert result['epe_static'] == pytest.approx(0.1 / 5)
  assert result['moving_static_ratio'] == pytest.approx(0.5 / (0.1 / 5))

  k_true = motion_metrics.intrinsics_matrix(100.0, 80.0, 32.0, 16.0)
  k_pred = motion_metrics.intrinsics_matrix(110.0, 80.0, 30.0, 16.0)
  rel = motion_metrics.intrinsics_errors(k_pred, k_true)
  assert (rel['fx'], rel['fy'], rel['x0'], rel['y0']) == pytest.approx((0.1, 0.0, 1 / 16, 0.0))
  with pytest.raises(ValueError, match='moving must have shape'):
    motion_metrics.object_motion_errors(predicted, truth, moving[:, :2])


def test_table_row_and_json(tmp_path):
  header, row = evaluate_lib.table_row(dict(zip(METRICS, (0.1, 0.9, 4.5, 0.2, 0.85, 0.95,
                                                           0.98))))
  assert header.split() == [w for m in METRICS for w in (m, '|')]
  assert row == ('&   0.100  &   0.900  &   4.500  &   0.200  &   0.850  &   0.950  &'
                 '   0.980  \\\\')
  path = evaluate_lib.write_json(str(tmp_path / 'r.json'), {'a': float('nan'), 'b': np.float32(2)})
  assert json.load(open(path)) == {'a': None, 'b': 2.0}
  assert os.listdir(tmp_path) == ['r.json']


# ----------------------------------------------------------------------------- end to end


def _synthetic_examples(data_dir):
  return list(evaluate_lib.tfds_examples('synthetic_dynamic_scenes/tiny', data_dir, 'test'))


def test_cli_on_tiny_synthetic_dataset_writes_every_result(tmp_path, synthetic_dir):
  _save_tiny_model(tmp_path / 'model')
  output = tmp_path / 'out' / 'results.json'
  completed = subprocess.run(
      [sys.executable, '-m', 'depth_motion.evaluate', '--checkpoint=%s' % (tmp_path / 'model'),
       '--dataset=synthetic_dynamic_scenes/tiny', '--data_dir=%s' % synthetic_dir,
       '--protocol=synthetic', '--batch_size=2', '--output_json=%s' % output],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert '&' in completed.stdout and 'Scaling ratios' in completed.stdout
  results = json.load(open(output))
  assert results['num_images'] == 3 and results['num_skipped'] == 0
  assert set(results['depth']) == set(METRICS)
  assert all(np.isfinite(results['depth'][k]) for k in METRICS)
  assert results['scale_ratio']['mean'] > 0 and results['scale_ratio']['std'] >= 0
  assert results['table_row'].count('&') == 7
  assert 'x that of a constant depth' in completed.stdout
  assert results['depth_parts_source'] == 'object_translation'
  assert set(results['depth_parts']) == {'moving', 'static'}
  assert set(results['egomotion']) == {'rotation_error_deg', 'translation_direction_error_deg',
                                       'translation_error_m', 'num_pairs'}
  assert results['egomotion']['num_pairs'] == 3
  for key in ('epe_moving_m', 'epe_static_m', 'residual_moving_m', 'residual_static_m',
              'moving_static_ratio', 'moving_pixels', 'static_pixels'):
    assert key in results['object_motion'], key
  assert results['object_motion']['moving_pixels'] > 0
  assert 'intrinsics' not in results  # Given, not learned.


def test_learned_intrinsics_are_scored_against_the_data(synthetic_dir):
  model = model_lib.DepthMotionFieldModel(dict(TINY, learn_intrinsics={'enabled': True}))
  model.build_for_size(H, W)
  loaded = _loaded(model)
  examples = _synthetic_examples(synthetic_dir)
  results = evaluate_lib.evaluate(examples=examples, model=loaded, protocol='synthetic')
  # The data's intrinsics are at 32x64 = the trained size: compare directly.
  predicted = loaded.motion(
      np.stack([e['images'][1] for e in examples]).astype(np.float32) / 255.0,
      np.stack([e['images'][2] for e in examples]).astype(np.float32) / 255.0)['intrinsics']
  fx = np.array([e['intrinsics'][0] for e in examples])
  expected = np.abs(predicted[:, 0, 0] - fx) / fx
  assert results['intrinsics']['fx_relative_error'] == pytest.approx(np.mean(expected),
                                                                     rel=1e-5)
  assert set(results['intrinsics']) == {'fx_relative_error', 'fy_relative_error',
                                        'x0_relative_error', 'y0_relative_error'}


def test_a_scaled_ground_truth_gives_the_same_errors_and_a_scaled_ratio(tiny_model, synthetic_dir):
  loaded = tiny_model
  examples = _synthetic_examples(synthetic_dir)
  base = evaluate_lib.evaluate(examples=examples, model=loaded, protocol='synthetic',
                               protocol_overrides={'max_depth': 1e9})
  for example in examples:
    example['depth'] = example['depth'] * 0.5
  half = evaluate_lib.evaluate(examples=examples, model=loaded, protocol='synthetic',
                               protocol_overrides={'max_depth': 1e9})
  assert half['depth']['abs_rel'] == pytest.approx(base['depth']['abs_rel'], rel=1e-5)
  assert half['scale_ratio']['mean'] == pytest.approx(0.5 * base['scale_ratio']['mean'],
                                                      rel=1e-5)


def test_constant_depth_baseline_is_the_median_of_each_ground_truth(tiny_model, synthetic_dir):
  examples = _synthetic_examples(synthetic_dir)
  results = evaluate_lib.evaluate(examples=examples, model=tiny_model, protocol='synthetic')
  protocol = protocols.get_protocol('synthetic')
  expected = []
  for example in examples:
    gt = protocols.prepare_ground_truth(protocol, example['depth'][1],
                                        example['images'].shape[1:3]).astype(np.float64)
    gt = gt[protocols.valid_mask(protocol, gt)]
    constant = np.clip(np.median(gt), protocol.min_depth, protocol.max_depth)
    expected.append(np.mean(np.abs(constant - gt) / gt))
  assert results['constant_depth_abs_rel'] == pytest.approx(np.mean(expected), rel=1e-6)
  assert results['abs_rel_over_constant_depth'] == pytest.approx(
      results['depth']['abs_rel'] / np.mean(expected), rel=1e-6)


def _write_struct2depth(root, gt_shape):
  folder = root / 'seq'
  folder.mkdir(parents=True)
  rng = np.random.RandomState(3)
  strip = rng.randint(0, 256, (H, 3 * W, 3)).astype(np.uint8)
  cv2.imwrite(str(folder / '0000000001.png'), strip)
  (folder / '0000000001_cam.txt').write_text('50.0,0.0,32.0,0.0,50.0,16.0,0.0,0.0,1.0')
  (root / 'test.txt').write_text('seq 0000000001\n')
  np.save(str(root / 'gt.npy'), rng.uniform(2, 50, (1,) + gt_shape).astype(np.float32))
  return str(root / 'test.txt'), str(root / 'gt.npy')


def test_struct2depth_list_with_ground_truth(tmp_path, tiny_model):
  loaded = tiny_model
  data_path, gt_path = _write_struct2depth(tmp_path / 'ok', (2 * H, 2 * W))
  results = evaluate_lib.evaluate(data_path=data_path, gt_depth_path=gt_path, model=loaded,
                                  protocol='waymo', output_json=str(tmp_path / 'r.json'))
  assert results['num_images'] == 1
  assert json.load(open(tmp_path / 'r.json'))['depth'] == pytest.approx(results['depth'])
  with pytest.raises(ValueError, match='needs gt_depth_path'):
    evaluate_lib.evaluate(data_path=data_path, model=loaded, protocol='waymo')
  data_path, gt_path = _write_struct2depth(tmp_path / 'bad', (W, H))
  with pytest.raises(ValueError, match='does not match its image'):
    evaluate_lib.evaluate(data_path=data_path, gt_depth_path=gt_path, model=loaded,
                          protocol='waymo')


def test_struct2depth_bad_cam_file_is_a_value_error_naming_it(tmp_path):
  data_path, _ = _write_struct2depth(tmp_path, (H, W))
  (tmp_path / 'seq' / '0000000001_cam.txt').write_text('50.0,0.0,32.0')
  with pytest.raises(ValueError, match=r'0000000001_cam\.txt: expected 9 comma-separated'):
    list(evaluate_lib.struct2depth_examples(data_path))


def test_bad_checkpoints_are_rejected_clearly(tmp_path, synthetic_dir):
  dense = keras.Sequential([keras.layers.Dense(2)])
  dense.build((None, 3))
  tf.train.CheckpointManager(tf.train.Checkpoint(model=dense), str(tmp_path / 'dense'),
                             1).save()
  kwargs = dict(dataset='synthetic_dynamic_scenes/tiny', data_dir=synthetic_dir,
                protocol='synthetic')
  with pytest.raises(ValueError, match='does not match the model architecture'):
    evaluate_lib.evaluate(checkpoint=str(tmp_path / 'dense'), **kwargs)
  # Trained without the depth cascade (6-channel motion input), params.json says cascade.
  _save_tiny_model(tmp_path / 'mismatch', overrides=TINY,
                   build_overrides=dict(TINY, cascade=False))
  with pytest.raises(ValueError, match=r'MotionFieldNet/Conv1/kernel'):
    evaluate_lib.evaluate(checkpoint=str(tmp_path / 'mismatch'), **kwargs)
  model_dir = tmp_path / 'typo'
  _save_tiny_model(model_dir)
  model_lib.save_model_params(str(model_dir), {'image_preprocessing': {'image_hieght': 32}})
  with pytest.raises(ValueError, match='params.json'):
    evaluate_lib.evaluate(checkpoint=str(model_dir), **kwargs)
  with pytest.raises(ValueError, match='No checkpoint found'):
    evaluate_lib.evaluate(checkpoint=str(tmp_path), **kwargs)
  with pytest.raises(ValueError, match='not a SavedModel'):
    evaluate_lib.evaluate(saved_model=str(tmp_path), **kwargs)


def test_bad_data_sources_are_rejected_clearly(tmp_path, tiny_model, synthetic_dir):
  loaded = tiny_model
  with pytest.raises(ValueError, match='has no split'):
    evaluate_lib.evaluate(dataset='synthetic_dynamic_scenes/tiny', data_dir=synthetic_dir,
                          protocol='kitti_eigen', model=loaded)
  with pytest.raises(ValueError, match='Unknown dataset'):
    evaluate_lib.evaluate(dataset='no_such_dataset', data_dir=str(tmp_path), model=loaded)
  with pytest.raises(ValueError, match='exactly one data source'):
    evaluate_lib.evaluate(model=loaded)
  with pytest.raises(ValueError, match='no ground-truth depth'):
    evaluate_lib.evaluate(examples=[{'images': np.zeros((3, H, W, 3), np.uint8)}], model=loaded,
                          protocol='synthetic')
