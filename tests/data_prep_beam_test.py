"""The Beam path (DirectRunner) writes the same examples as the in-process path, per builder."""

import os
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

beam = pytest.importorskip('apache_beam')

from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top

from data_prep import cityscapes  # pylint: disable=g-import-not-at-top
from data_prep import common  # pylint: disable=g-import-not-at-top
from data_prep import convert  # pylint: disable=g-import-not-at-top
from data_prep import kitti  # pylint: disable=g-import-not-at-top
from data_prep import struct2depth  # pylint: disable=g-import-not-at-top
from data_prep import video  # pylint: disable=g-import-not-at-top


@pytest.fixture(autouse=True)
def _temp_files_in_tmp_path(tmp_path, monkeypatch):
  """Beam's in-process job server leaves an empty beam-temp* folder in the system temp
  folder for every pipeline; this keeps them in the test's own."""
  monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))


def _beam_config():
  return dict(beam_runner='DirectRunner', beam_options=pipeline_options.PipelineOptions(
      ['--direct_num_workers=1', '--direct_running_mode=in_memory']))


def _prepare(builder_cls, config, raw, out, skip_bad=False, use_beam=False):
  builder = builder_cls(config=config, data_dir=out, skip_bad=skip_bad)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=raw, **(_beam_config() if use_beam else {})))
  return builder


def _assert_same_examples(builder_a, builder_b):
  assert set(builder_a.info.splits) == set(builder_b.info.splits)
  for split in builder_a.info.splits:
    a, b = common.read_examples(builder_a, split), common.read_examples(builder_b, split)
    assert len(a) == len(b) > 0
    for ex_a, ex_b in zip(a, b):
      assert set(ex_a) == set(ex_b)
      for key in ex_a:
        np.testing.assert_array_equal(ex_a[key], ex_b[key], err_msg='%s/%s' % (split, key))


def _counts(summary):
  return {split: {k: v for k, v in s.items() if k != 'seconds'} for split, s in summary.items()}


def _kitti(root):
  kitti.write_sample_tree(root, drives=(('2011_09_26', '2011_09_26_drive_0001_sync', 4),
                                        ('2011_09_26', '2011_09_26_drive_0002_sync', 3)),
                          height=12, width=32)
  test_list = os.path.join(root, 'test.txt')
  with open(test_list, 'w') as f:
    f.write('2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000001.png\n')
  return kitti.KittiTriplets, kitti.KittiConfig(name='t', height=8, width=16,
                                                test_files=test_list)


def _cityscapes(root):
  cityscapes.write_sample_tree(root, snippets=(0, 1), frames_per_snippet=5, height=32,
                               width=64, masks=True)
  return cityscapes.CityscapesTriplets, cityscapes.CityscapesConfig(
      name='t', height=8, width=26, with_masks=True)


def _video(root):
  video.write_sample_tree(root, num_videos=2, folders=1, num_frames=4, height=24, width=32)
  return video.VideoTriplets, video.VideoConfig(name='t', height=8, width=16)


def _struct2depth(root):
  struct2depth.write_sample_tree(root, folders=(('a', 2), ('b', 2), ('c', 1)))
  return struct2depth.Struct2DepthTriplets, 'with_masks'


def _waymo(root):
  waymo = pytest.importorskip('data_prep.waymo')
  pytest.importorskip('waymo_open_dataset')
  waymo.write_sample_tree(root, num_segments=2, num_frames=3, height=16, width=24)
  return waymo.WaymoTriplets, waymo.WaymoConfig(name='t', height=8, width=12)


@pytest.mark.parametrize('make_tree', [_kitti, _cityscapes, _video, _struct2depth, _waymo],
                         ids=['kitti', 'cityscapes', 'video', 'struct2depth', 'waymo'])
def test_beam_and_in_process_write_the_same_examples(tmp_path, make_tree):
  raw = str(tmp_path / 'raw')
  os.makedirs(raw, exist_ok=True)
  builder_cls, config = make_tree(raw)
  local = _prepare(builder_cls, config, raw, str(tmp_path / 'local'))
  with_beam = _prepare(builder_cls, config, raw, str(tmp_path / 'beam'), use_beam=True)
  _assert_same_examples(local, with_beam)
  # The Beam metrics give the same summary counts as the in-process tally.
  assert _counts(with_beam.summary) == _counts(local.summary)


def test_beam_skip_and_count(tmp_path):
  raw = str(tmp_path / 'raw')
  struct2depth.write_sample_tree(raw, folders=(('a', 3), ('b', 1)), with_masks=False)
  with open(os.path.join(raw, 'a', '0000000002.png'), 'wb') as f:
    f.write(b'junk')
  builder = _prepare(struct2depth.Struct2DepthTriplets, 'default', raw, str(tmp_path / 'beam'),
                     skip_bad=True, use_beam=True)
  assert _counts(builder.summary) == {'train': {'sequences': 2, 'triplets_written': 3,
                                                'skipped': {'unreadable strips': 1}}}


def test_convert_reuses_prepared_data(tmp_path):
  raw = str(tmp_path / 'raw')
  struct2depth.write_sample_tree(raw, folders=(('a', 2),))
  first = convert.convert('struct2depth', raw, str(tmp_path / 'out'), **_beam_config())
  assert not first['reused'] and first['num_examples'] == {'train': 2}
  assert first['summary']['train']['triplets_written'] == 2
  again = convert.convert('struct2depth', raw, str(tmp_path / 'out'))
  assert again['reused'] and again['summary'] == {}
  overridden = convert.convert('struct2depth', raw, str(tmp_path / 'out'),
                               config_overrides={'with_masks': True})
  assert overridden['config'].startswith('default_') and not overridden['reused']


def test_convert_command_line_prints_the_summary(tmp_path, capsys):
  import json  # pylint: disable=g-import-not-at-top
  raw = str(tmp_path / 'raw')
  struct2depth.write_sample_tree(raw, folders=(('a', 2),), with_masks=False)
  with open(os.path.join(raw, 'a', '0000000002_cam.txt'), 'w') as f:
    f.write('not numbers')
  argv = ['convert', '--dataset=struct2depth', '--manual_dir=%s' % raw,
          '--data_dir=%s' % (tmp_path / 'out'), '--skip_bad',
          '--beam_runner=DirectRunner',
          '--beam_options=--direct_num_workers=1 --direct_running_mode=in_memory']
  if 'manual_dir' not in convert.FLAGS:
    convert.define_flags()
  try:
    convert.FLAGS(argv)
    convert.main(['convert'])
  finally:
    convert.FLAGS.unparse_flags()
  result = json.loads(capsys.readouterr().out)  # stdout holds only the JSON
  assert result['num_examples'] == {'train': 1}
  assert result['summary']['train']['skipped'] == {'unreadable intrinsics': 1}
