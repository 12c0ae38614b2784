"""Tests of depth_motion.evaluation.metrics (golden values are in golden_parity_test.py)."""

import math

import numpy as np
import pytest

from depth_motion import evaluation


def test_perfect_prediction():
  gt = np.random.default_rng(0).uniform(1.0, 80.0, size=100)
  errors = evaluation.compute_depth_errors(gt, gt.copy())
  assert sorted(errors) == sorted(evaluation.METRIC_NAMES)
  for key in ('abs_rel', 'sq_rel', 'rmse', 'rmse_log'):
    assert errors[key] == 0.0
  for key in ('a1', 'a2', 'a3'):
    assert errors[key] == 1.0


def test_hand_computed_example():
  gt = np.array([1.0, 2.0, 4.0])
  pred = np.array([1.0, 2.5, 2.0])
  errors = evaluation.compute_depth_errors(gt, pred)
  assert errors['abs_rel'] == pytest.approx((0 + 0.25 + 0.5) / 3)
  assert errors['sq_rel'] == pytest.approx((0 + 0.125 + 1.0) / 3)
  assert errors['rmse'] == pytest.approx(math.sqrt((0 + 0.25 + 4.0) / 3))
  assert errors['rmse_log'] == pytest.approx(
      math.sqrt((math.log(2 / 2.5)**2 + math.log(2.0)**2) / 3))
  # Ratios 1, 1.25, 2: the thresholds are strict (1.25 is not < 1.25).
  assert errors['a1'] == pytest.approx(1 / 3)
  assert errors['a2'] == pytest.approx(2 / 3)
  assert errors['a3'] == pytest.approx(2 / 3)


def test_float32_inputs_are_evaluated_in_float64():
  gt = np.array([3.0, 7.0], np.float32)
  errors = evaluation.compute_depth_errors(gt, gt * np.float32(1.1))
  assert isinstance(errors['abs_rel'], float)
  assert errors['abs_rel'] == pytest.approx(float(np.float32(1.1)) - 1, rel=1e-6)


def test_median_scale_and_clip():
  gt = np.array([1.0, 2.0, 3.0])
  scaled, ratio = evaluation.median_scale(gt, np.array([2.0, 4.0, 6.0]))
  assert ratio == 0.5
  np.testing.assert_allclose(scaled, gt)
  scaled, ratio = evaluation.median_scale(np.array([1.0, 50.0, 60.0]),
                                          np.array([1e-6, 1.0, 10.0]))
  assert ratio == 50.0
  np.testing.assert_allclose(scaled, [evaluation.MIN_DEPTH, 50.0, evaluation.MAX_DEPTH])
  np.testing.assert_allclose(evaluation.clip_depth([0.0, 100.0]), [1e-3, 80.0])


def test_bad_inputs():
  with pytest.raises(ValueError, match='1-D'):
    evaluation.compute_depth_errors(np.ones((2, 2)), np.ones((2, 2)))
  with pytest.raises(ValueError, match='same shape'):
    evaluation.compute_depth_errors(np.ones(3), np.ones(4))
  with pytest.raises(ValueError, match='empty'):
    evaluation.compute_depth_errors(np.ones(0), np.ones(0))
  with pytest.raises(ValueError, match='positive median'):
    evaluation.median_scale(np.ones(3), np.zeros(3))
