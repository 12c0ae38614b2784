"""Every flagfile in flags/ parses and names things that exist, without training.

The flags are read without importing `depth_motion.train`: its flags live in
absl's global FlagValues and would clash with `data_prep.convert`'s in this
process (both define --dataset).
"""

import glob
import os
import re

from absl import flags
import pytest
import tensorflow_datasets as tfds

from data_prep import convert
from depth_motion import params as params_lib
from depth_motion.evaluation import protocols

ROOT = os.path.join(os.path.dirname(__file__), '..')
FLAGFILES = sorted(glob.glob(os.path.join(ROOT, 'flags', '*.flags')))


def _train_flag_names():
  with open(os.path.join(ROOT, 'depth_motion', 'train.py')) as f:
    return set(re.findall(r"flags\.DEFINE_\w+\(\s*'(\w+)'", f.read())) | {'flagfile'}


def _read(path):
  """The flagfile's flags as {name: string value}, each a flag train defines."""
  args = flags.FlagValues().read_flags_from_files(['--flagfile=' + path])
  known = _train_flag_names()
  values = {}
  for arg in args:
    name, _, value = arg.lstrip('-').partition('=')
    assert name in known, '%s: unknown flag --%s' % (path, name)
    values[name] = value
  return values


def _params(values):
  model_overrides, trainer_overrides = params_lib.split_model_and_trainer(
      values.get('param_overrides') or None)
  params_lib.make_trainer_params(trainer_overrides)
  return params_lib.make_model_params(model_overrides)  # strict: unknown keys raise


def test_the_five_flagfiles_exist():
  names = {os.path.basename(f) for f in FLAGFILES}
  assert names == {'demo.flags', 'kitti.flags', 'cityscapes.flags', 'waymo.flags',
                   'youtube.flags'}


@pytest.mark.parametrize('path', FLAGFILES, ids=os.path.basename)
def test_flagfile_parses_into_valid_params_and_an_existing_builder(path):
  values = _read(path)
  model_params = _params(values)
  assert values['model_dir'] and int(values['batch_size']) > 0
  assert float(values.get('learning_rate', 2e-4)) > 0

  name = convert.resolve_dataset_name(values['dataset'])
  builder_name, _, config_name = name.partition('/')
  builder_cls = tfds.builder_cls(builder_name)
  assert issubclass(builder_cls, tfds.core.GeneratorBasedBuilder)
  if config_name:
    assert config_name in {c.name for c in builder_cls.BUILDER_CONFIGS}
  if values.get('eval_protocol'):
    assert values['eval_protocol'] in protocols.PROTOCOLS

  # Every run trains long enough that the motion field is fully on.
  train_steps = int(values['train_steps'])
  assert train_steps >= model_params['motion_field_burnin_steps']
  assert train_steps > model_params['depth_stop_gradient_steps']


def test_demo_flagfile_turns_the_motion_field_on_after_the_depth_freeze():
  """The demo's curriculum: depth frozen, then the field and non-forward motion ramp in."""
  values = _read(os.path.join(ROOT, 'flags', 'demo.flags'))
  p = _params(values)
  frozen = p['depth_stop_gradient_steps']
  assert frozen > 0
  # Both ramps are zero until half their steps: they start when depth unfreezes.
  assert p['motion_field_burnin_steps'] == 2 * frozen
  assert p['non_forward_motion_burnin_steps'] == 2 * frozen
  assert int(values['train_steps']) > p['motion_field_burnin_steps']
  assert values['dataset'].startswith('synthetic_dynamic_scenes/')


def test_an_unknown_flag_or_param_key_is_caught(tmp_path):
  bad_flag = tmp_path / 'bad_flag.flags'
  bad_flag.write_text('--dataset=kitti\n--batchsize=4\n')
  with pytest.raises(AssertionError, match='unknown flag --batchsize'):
    _read(str(bad_flag))
  bad_key = tmp_path / 'bad_key.flags'
  bad_key.write_text('--param_overrides={"motion_field_burnin_step": 10}\n')
  with pytest.raises(AttributeError, match='motion_field_burnin_step'):
    _params(_read(str(bad_key)))
