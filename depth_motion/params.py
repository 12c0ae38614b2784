"""Hyperparameters: the reference's defaults and its strict override rules.

`DEFAULT_PARAMS` has exactly the keys and defaults of the reference model
(`depth_motion_field_model.DEFAULT_PARAMS`) and `TRAINER_PARAMS` those of its
trainer, so `--param_overrides` written for the reference carry over unchanged.

Overrides come as a dict, a JSON string, a Python-literal string or the path of
a JSON file. With `is_strict=True`, a key that the defaults do not have is
rejected down to `strictness_depth` levels (the reference uses 2 for the model:
`input.reader` may be extended, `loss_weights.foo` may not). Unlike the
reference we also reject values whose type does not fit the default (an int
where a bool is expected, a string for a float, ...): such typos used to train
silently with the wrong setting.
"""

import ast
import collections.abc
import copy
import json
import os

DEFAULT_PARAMS = {
    'batch_size': None,
    'input': {
        'data_path': '',
        'duplicates_filter_threshold': 0.01,
        'shuffle_queue_size': 1024,
        'prefetch_size': 32,
        'reader': {},
    },
    'image_preprocessing': {
        'data_augmentation': True,
        'image_height': 128,
        'image_width': 416,
    },
    'loss_weights': {
        'rgb_consistency': 1.0,
        'ssim': 3.0,
        'depth_consistency': 0.0,
        'depth_smoothing': 0.001,
        'depth_supervision': 0.0,
        'rotation_cycle_consistency': 1e-3,
        'translation_cycle_consistency': 5e-2,
        'depth_variance': 0.0,
        'motion_smoothing': 1.0,
        'motion_drift': 0.2,
    },
    'loss_params': {
        'target_depth_stop_gradient': True,
        'scale_normalization': False,
    },
    'depth_predictor_params': {
        'layer_norm_noise_rampup_steps': 10000,
        'weight_decay': 0.0,
        'learn_scale': False,
        'reflect_padding': False,
    },
    'motion_prediction_params': {
        'weight_reg': 0.0,
        'align_corners': True,
        'auto_mask': True,
    },
    'learn_intrinsics': {
        'enabled': False,
        'per_video': False,
        'max_number_of_videos': 1000,
    },
    'cascade': True,
    'use_mask': False,
    'learn_egomotion': True,
    'foreground_dilation': 8,
    'motion_field_burnin_steps': 20000,
    'context': None,
    'use_tpu': None,
}

# Our additions to the model params. They live beside the reference's keys so
# that one override mechanism serves both, and each defaults to the reference's
# behaviour unless noted. Kept separate so DEFAULT_PARAMS stays an exact copy.
EXTRA_PARAMS = {
    # Curricula for short runs from scratch (ours; 0 = off, the reference).
    # No gradient reaches the depth net for the first `depth_stop_gradient_steps`
    # steps, so the motion net learns the camera's direction of travel against
    # a still depth map before depth adapts to it; trained together from step
    # 0, depth moves faster and the motion net can stay stuck predicting the
    # same motion for both frame orders (see the README's demo).
    'depth_stop_gradient_steps': 0,
    # When depth would unfreeze but the motion net has not yet learned which
    # way the camera moves (the trainer's `motion/order_symmetry` has not been
    # below 0.5 for 20 steps in a row), the curriculum clock that drives the
    # freeze, the burn-in ramps and the depth noise waits, up to this many
    # extra steps, until it has. How long the motion net needs varies from run
    # to run (about 150 to beyond 800 steps on the demo), so a fixed freeze is
    # either long for most runs or short for some. 0 = off.
    'depth_stop_gradient_max_hold_steps': 0,
    # The camera rotation and the x, y components of the camera translation
    # are multiplied by the motion-field burn-in ramp over these steps (0 until
    # half-way, then linearly to 1), so early on the motion net only predicts
    # forward translation. From scratch, those components draw large gradients
    # that are not opposite for the two frame orders.
    'non_forward_motion_burnin_steps': 0,
    'input': {
        # Use both adjacent pairs (t-1,t) and (t,t+1) of a triplet; the
        # reference uses only the first (SPEC 9.11).
        'use_both_pairs': False,
        # Mirror y0 on a horizontal flip as the reference does (SPEC 9.13).
        # False (our default, as the data issue asks) maps x0 -> W - 1 - x0
        # and leaves y0 alone, which is the correct geometry.
        'faithful_flip_intrinsics': False,
        'skip_bad_examples': False,
    },
    'loss_params': {
        # Skip the depth-variance term when its weight is 0 instead of
        # computing 0 * (1 / variance), which is NaN for a constant depth map
        # (SPEC 5.3). False reproduces the reference.
        'skip_zero_weight_depth_variance': True,
    },
}

TRAINER_PARAMS = {
    'learning_rate': 2e-4,
    'clip_gradients': 10.0,
    'iterations_per_loop': 20,
    'init_ckpt': None,
    'init_ckpt_type': None,
    'master': None,
    'model_dir': None,
    'max_steps': 1000000,
    'keep_checkpoint_every_n_hours': 10000,
}


def merge_missing(target, extra):
  """Sets each key of `extra` that `target` lacks, recursively; returns `target`."""
  for key, value in extra.items():
    if isinstance(value, dict):
      merge_missing(target.setdefault(key, {}), value)
    else:
      target.setdefault(key, value)
  return target


def model_defaults():
  """DEFAULT_PARAMS plus our EXTRA_PARAMS, as a fresh nested dict."""
  return merge_missing(copy.deepcopy(DEFAULT_PARAMS), EXTRA_PARAMS)


def _plain(value):
  """Deep copy with every mapping turned into a plain dict (Keras wraps dict attributes)."""
  if isinstance(value, collections.abc.Mapping):
    return {key: _plain(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_plain(item) for item in value) if isinstance(value, tuple) else [
        _plain(item) for item in value]
  return copy.deepcopy(value)


def parse_overrides(overrides):
  """Turns a dict, JSON string, Python-literal string or JSON file path into a dict."""
  if overrides is None:
    return {}
  if isinstance(overrides, ParameterContainer):
    return overrides.as_dict()
  if isinstance(overrides, collections.abc.Mapping):
    return _plain(overrides)
  if not isinstance(overrides, str):
    raise TypeError('Parameter overrides must be a dict, a JSON string or a file path, '
                    'got %s.' % type(overrides).__name__)
  text = overrides.strip()
  if not text:
    return {}
  if not text.startswith('{') and os.path.isfile(text):
    with open(text, encoding='utf-8') as f:
      try:
        parsed = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError('Parameter file %s is not valid JSON: %s' % (text, e)) from None
    source = text
  else:
    source = 'the override string'
    try:
      parsed = json.loads(text)
    except json.JSONDecodeError:
      try:
        parsed = ast.literal_eval(text)
      except (ValueError, SyntaxError):
        raise ValueError(
            'Cannot parse parameter overrides %r: expected a JSON object, a Python '
            'dict literal or the path of an existing JSON file.' % text) from None
  if not isinstance(parsed, dict):
    raise ValueError('Parameter overrides from %s must be a dict, got %s.' %
                     (source, type(parsed).__name__))
  return parsed


def _check_type(path, default, value):
  if default is None or value is None:
    return
  if isinstance(default, bool):
    ok = isinstance(value, bool)
  elif isinstance(default, (int, float)):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
      ok = float(value).is_integer()
  elif isinstance(default, str):
    ok = isinstance(value, str)
  elif isinstance(default, dict):
    ok = isinstance(value, dict)
  elif isinstance(default, (list, tuple)):
    ok = isinstance(value, (list, tuple))
  else:
    ok = True
  if not ok:
    raise TypeError('Parameter %s expects a value like %r (%s), got %r (%s).' %
                    (path, default, type(default).__name__, value, type(value).__name__))


def _override(params, overrides, is_strict, strictness_depth, depth, prefix):
  for key, value in overrides.items():
    path = prefix + key
    strict_here = is_strict and (strictness_depth is None or depth < strictness_depth)
    if key not in params:
      if strict_here:
        raise AttributeError(
            'Unknown parameter %r. Valid keys%s: %s.' %
            (path, (' under %r' % prefix[:-1]) if prefix else '', ', '.join(sorted(params))))
      params[key] = copy.deepcopy(value)
      continue
    default = params[key]
    if isinstance(default, dict):
      if not isinstance(value, dict):
        raise TypeError('Parameter %s is a group of parameters (%s); it cannot be replaced '
                        'by %r.' % (path, ', '.join(sorted(default)), value))
      _override(default, value, is_strict, strictness_depth, depth + 1, path + '.')
    else:
      if isinstance(value, dict) and default is not None:
        raise TypeError('Parameter %s is a value (%r), not a group; got the dict %r.' %
                        (path, default, value))
      if strict_here:
        _check_type(path, default, value)
      params[key] = copy.deepcopy(value)


class ParameterContainer:
  """Nested parameters with attribute access and the reference's override rules.

  `ParameterContainer.from_defaults_and_overrides(DEFAULT_PARAMS, overrides,
  is_strict=True, strictness_depth=2)` is what the model uses.
  """

  def __init__(self, params=None):
    object.__setattr__(self, '_params', copy.deepcopy(parse_overrides(params)))

  @classmethod
  def from_defaults_and_overrides(cls, defaults, overrides, is_strict=True,
                                  strictness_depth=None):
    container = cls(defaults)
    container.override(overrides, is_strict=is_strict, strictness_depth=strictness_depth)
    return container

  def override(self, overrides, is_strict=False, strictness_depth=None):
    _override(self._params, parse_overrides(overrides), is_strict, strictness_depth, 0, '')
    return self

  def as_dict(self):
    return copy.deepcopy(self._params)

  def get(self, key, default=None):
    value = self._params.get(key, default)
    return ParameterContainer(value) if isinstance(value, dict) else value

  def __getattr__(self, key):
    params = object.__getattribute__(self, '_params')
    if key not in params:
      raise AttributeError('No parameter %r (have: %s).' % (key, ', '.join(sorted(params))))
    value = params[key]
    return _View(value) if isinstance(value, dict) else value

  __getitem__ = __getattr__

  def __contains__(self, key):
    return key in self._params

  def __setattr__(self, key, value):
    self.override({key: value}, is_strict=True, strictness_depth=1)

  def __repr__(self):
    return 'ParameterContainer(%s)' % json.dumps(self._params, indent=2, sort_keys=True,
                                                 default=str)


class _View(ParameterContainer):
  """A sub-container that reads and writes through to its parent's dict."""

  def __init__(self, params):  # pylint: disable=super-init-not-called
    object.__setattr__(self, '_params', params)


def make_model_params(overrides=None):
  """The model params with `overrides` applied strictly to depth 2, as a dict."""
  return ParameterContainer.from_defaults_and_overrides(
      model_defaults(), overrides, is_strict=True, strictness_depth=2).as_dict()


def make_trainer_params(overrides=None):
  return ParameterContainer.from_defaults_and_overrides(
      TRAINER_PARAMS, overrides, is_strict=True, strictness_depth=1).as_dict()


def split_model_and_trainer(overrides):
  """Splits reference-style overrides `{'model': {...}, 'trainer': {...}}`.

  A dict without those two top-level keys is taken as model params, which is
  what most users write by hand.
  """
  parsed = parse_overrides(overrides)
  if set(parsed) <= {'model', 'trainer'}:
    return parsed.get('model', {}) or {}, parsed.get('trainer', {}) or {}
  if 'model' in parsed or 'trainer' in parsed:
    raise AttributeError(
        'Parameter overrides mix top-level "model"/"trainer" with other keys (%s); put '
        'model keys under "model".' % ', '.join(sorted(set(parsed) - {'model', 'trainer'})))
  return parsed, {}
