"""Shared test setup: quiet TF logs, deterministic seeds, the golden parity data."""

import atexit
import json
import os
import shutil
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Nothing a test builds may land in the user's TFDS directory.
if 'TFDS_DATA_DIR' not in os.environ:
  os.environ['TFDS_DATA_DIR'] = tempfile.mkdtemp(prefix='depth_motion_tests_tfds_')
  atexit.register(shutil.rmtree, os.environ['TFDS_DATA_DIR'], True)

import numpy as np
import pytest

GOLDEN_PATH = os.path.join(os.path.dirname(__file__), 'data', 'reference_parity.npz')


@pytest.fixture(scope='session')
def golden():
  """The reference's inputs and outputs (tests/data/README.md says how to read them)."""
  data = np.load(GOLDEN_PATH)
  cases = json.loads(str(data['__meta__/cases']))
  return data, cases
