"""Numerical parity with the reference implementation on tests/data/reference_parity.npz.

One test per stored case (except the `data.*` intrinsics helpers, tested with
the data pipeline). Each case is called with the stored inputs as the
reference was, and every stored output array is compared with the rule of
tests/data/README.md: equal shapes, identical bools, no NaN, and
max|actual - expected| <= atol + rtol * max|expected| per array.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from depth_motion import evaluation
from depth_motion import geometry
from depth_motion import losses

_GOLDEN_PATH = os.path.join(os.path.dirname(__file__), 'data', 'reference_parity.npz')


def _case_names():
  with np.load(_GOLDEN_PATH) as data:
    cases = json.loads(str(data['__meta__/cases']))
    return [c for c in cases if not str(data[c + '/fn']).startswith('data.')]


_FUNCTIONS = {
    'geometry.matrix_from_angles': geometry.matrix_from_angles,
    'geometry.unstacked_matrix_from_angles': geometry.unstacked_matrix_from_angles,
    'geometry.angles_from_matrix': geometry.angles_from_matrix,
    'geometry.inverse_euler': geometry.inverse_euler,
    'geometry.invert_rot_and_trans': geometry.invert_rot_and_trans,
    'geometry.combine': geometry.combine,
    'geometry.invert_intrinsics_matrix': geometry.invert_intrinsics_matrix,
    'geometry.resampler_with_unstacked_warp': geometry.resampler_with_unstacked_warp,
    'geometry.using_motion_vector': geometry.using_motion_vector,
    'losses.weighted_ssim': losses.weighted_ssim,
    'losses.rgbd_consistency_loss': losses.rgbd_consistency_loss,
    'losses.motion_field_consistency_loss': losses.motion_field_consistency_loss,
    'losses.joint_bilateral_smoothing': losses.joint_bilateral_smoothing,
    'losses.normalize_motion_map': losses.normalize_motion_map,
    'losses.l1smoothness': losses.l1smoothness,
    'losses.sqrt_sparsity': losses.sqrt_sparsity,
    'losses.DepthMotionFieldLossAggregator': losses.DepthMotionFieldLossAggregator,
    'evaluation.compute_depth_errors': evaluation.compute_depth_errors,
}

_GRAD_ENDPOINTS = ('predicted_depth', 'residual_translation', 'background_translation',
                   'rotation')


def _assert_close(name, actual, expected, rtol, atol):
  actual = np.asarray(actual)
  expected = np.asarray(expected)
  if expected.shape == () and actual.size == 1:
    actual = actual.reshape(())
  assert actual.shape == expected.shape, '%s: shape %s, expected %s' % (
      name, actual.shape, expected.shape)
  if expected.dtype == bool:
    assert actual.dtype == bool, '%s: dtype %s, expected bool' % (name, actual.dtype)
    mismatches = int(np.sum(actual != expected))
    assert mismatches == 0, '%s: %d of %d booleans differ' % (name, mismatches, expected.size)
    return
  actual = actual.astype(np.float64)
  expected = expected.astype(np.float64)
  assert not np.any(np.isnan(actual)), '%s: NaN in the output' % name
  error = np.max(np.abs(actual - expected)) if expected.size else 0.0
  allowed = atol + rtol * (np.max(np.abs(expected)) if expected.size else 0.0)
  assert error <= allowed, '%s: max abs error %.3g > allowed %.3g' % (name, error, allowed)


def _scalar(value):
  value = value.item()
  return bool(value) if isinstance(value, (bool, np.bool_)) else value


def _inputs(data, case, signature):
  """Positional args and kwargs of the case, built from the stored inputs."""
  prefix = case + '/in/'
  arg_types = signature.get('arg_types', {})

  def value(name):
    kind = arg_types.get(name)
    if kind == 'tdm':
      parts = {k: data['%s%s/%s' % (prefix, name, k)]
               for k in ('pixel_x', 'pixel_y', 'depth', 'mask')}
      return geometry.TransformedDepthMap(**{k: tf.constant(v) for k, v in parts.items()})
    if kind == 'pairs':
      keys = sorted({k[len(prefix + name) + 1:].split('/')[0]
                     for k in data.files if k.startswith(prefix + name + '/')})
      return {key: tuple(tf.constant(data['%s%s/%s/%d' % (prefix, name, key, i)])
                         for i in range(2)) for key in keys}
    if kind == 'json':
      return json.loads(str(data[prefix + name]))
    array = data[prefix + name]
    if kind == 'numpy':
      return array
    if array.ndim == 0:
      return _scalar(array)
    return tf.constant(array)

  args = [value(name) for name in signature['args']]
  kwargs = {name: value(name) for name in signature['kwargs']}
  return args, kwargs


def _outputs(result, returns):
  """Maps a function's result to {stored output key suffix: array}."""
  if returns == 'tensor':
    return {'out': result}
  if returns.startswith('tuple:'):
    return {'out/' + name: value for name, value in zip(returns[6:].split(','), result)}
  if returns.startswith('attrs:'):
    return {'out/' + name: getattr(result, name) for name in returns[6:].split(',')}
  if returns == 'dict':
    return {'out/' + name: value for name, value in result.items()}
  raise AssertionError('unknown returns %r' % returns)


@pytest.mark.parametrize('case', _case_names())
def test_reference_parity(golden, case):
  data, _ = golden
  signature = json.loads(str(data[case + '/signature']))
  function = _FUNCTIONS[str(data[case + '/fn'])]
  rtol = float(data[case + '/rtol'])
  atol = float(data[case + '/atol'])
  args, kwargs = _inputs(data, case, signature)
  returns = signature['returns']
  expected_keys = sorted(k for k in data.files if k.startswith(case + '/out'))
  actual = {}

  if returns == 'grad':
    watched = {name: args[signature['args'].index(name)] for name in signature['grad_wrt']}
    with tf.GradientTape() as tape:
      tape.watch(list(watched.values()))
      value = function(*args, **kwargs)
      upstream = case + '/in/upstream'
      objective = (tf.reduce_sum(value * data[upstream]) if upstream in data.files
                   else value)
    gradients = tape.gradient(objective, list(watched.values()))
    actual['out/value'] = value
    for name, gradient in zip(watched, gradients):
      actual['out/grad/' + name] = tf.convert_to_tensor(gradient)
  elif returns == 'losses':
    endpoints = args[0]
    sources = {(key, i): endpoints[key][i] for key in _GRAD_ENDPOINTS for i in range(2)}
    with tf.GradientTape() as tape:
      tape.watch(list(sources.values()))
      aggregator = function(*args, **kwargs)
      total = tf.add_n(list(aggregator.losses.values()))
    assert sorted(aggregator.losses) == sorted(
        k.split('/')[-1] for k in expected_keys if '/out/losses/' in k)
    gradients = tape.gradient(total, list(sources.values()))
    for name, loss in aggregator.losses.items():
      actual['out/losses/' + name] = loss
    for name, endpoint in aggregator.output_endpoints.items():
      actual['out/output_endpoints/' + name] = endpoint
    for (key, i), gradient in zip(sources, gradients):
      actual['out/grad_total/%s/%d' % (key, i)] = tf.convert_to_tensor(gradient)
  else:
    actual = _outputs(function(*args, **kwargs), returns)

  actual_keys = {case + '/' + k for k in actual}
  missing = sorted(set(expected_keys) - actual_keys)
  assert not missing, 'outputs not produced: %s' % missing
  for key in expected_keys:
    _assert_close(key, actual[key[len(case) + 1:]], data[key], rtol, atol)
