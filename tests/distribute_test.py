"""Strategies: choice and errors, and a real MirroredStrategy run over 2 logical CPU devices."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from depth_motion import distribute

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_strategy_names_and_errors(monkeypatch):
  assert distribute.make_strategy('default') is tf.distribute.get_strategy()
  assert isinstance(distribute.make_strategy('one_device'), tf.distribute.OneDeviceStrategy)
  with pytest.raises(ValueError, match='Unknown distribution_strategy'):
    distribute.make_strategy('parameter_server')
  monkeypatch.delenv('TF_CONFIG', raising=False)
  with pytest.raises(ValueError, match='TF_CONFIG'):
    distribute.make_strategy('multi_worker_mirrored')
  with pytest.raises(ValueError, match='split_cpu'):
    distribute.make_strategy('mirrored', cpu_devices=4)
  assert distribute.is_chief(tf.distribute.get_strategy())


def _run_mirrored(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run([sys.executable, '-m', 'benchmarks.distributed_benchmark',
                         '--role=mirrored', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mirrored_training_keeps_replicas_identical():
  """Two replicas on two logical CPUs train the real model; their weights must stay equal."""
  result = _run_mirrored('--steps=1')
  assert result['replicas'] == 2
  assert result['max_weight_difference_across_replicas'] == 0.0


def test_mirrored_training_holds_the_depth_freeze():
  """Under the strategy the hold keeps depth frozen one step past the 2-step freeze.

  Random pairs never teach the motion net the frame order, so the hold runs to its limit
  of 1 step: after 3 steps the depth net is untouched (without the hold, step 3 would
  train it) while the rest of the model trained identically on both replicas.
  """
  result = _run_mirrored('--steps=1', '--curriculum')
  assert result['replicas'] == 2 and result['global_step'] == 3
  assert result['curriculum_hold'] == 1
  assert result['depth_change_in_first_2_steps'] == 0.0
  assert result['depth_change_after'] == 0.0
  assert result['max_weight_difference_across_replicas'] == 0.0
