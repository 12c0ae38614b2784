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


def test_mirrored_training_keeps_replicas_identical():
  """Two replicas on two logical CPUs train the real model; their weights must stay equal."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run([sys.executable, '-m', 'benchmarks.distributed_benchmark',
                         '--role=mirrored', '--steps=1'], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['replicas'] == 2
  assert result['max_weight_difference_across_replicas'] == 0.0
