"""Tests of data_prep.video: decoding, stride, static frames, resize/crop, intrinsics."""

import json

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import common
from data_prep import video


def _prepare(tmp_path, config, skip_bad=False, name='out'):
  builder = video.VideoTriplets(config=config, data_dir=str(tmp_path / name), skip_bad=skip_bad)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'raw')))
  return builder


def test_resize_and_centre_crop_plan_and_exact_intrinsics():
  plan = common.resize_and_centre_crop(48, 64, 16, 32)
  # Covering 16x32 from 48x64 keeps the aspect: scale 1/2 -> 24x32, crop rows 4..19.
  assert (plan.resized_height, plan.resized_width, plan.top, plan.left) == (24, 32, 4, 0)
  # Pixel centre x: (x + 0.5) / 2 - 0.5 - crop offset.
  np.testing.assert_allclose(plan.intrinsics([60.0, 50.0, 31.5, 23.5]),
                             [30.0, 25.0, 15.5, 11.5 - 4])
  x, y = plan.points(np.array([0.0, 63.0]), np.array([0.0, 47.0]))
  np.testing.assert_allclose(x, [-0.25, 31.25])
  np.testing.assert_allclose(y, [-4.25, 19.25])


def test_video_triplets_are_consecutive_decoded_frames_resized_and_cropped(tmp_path):
  (tmp_path / 'raw').mkdir()
  frames = video.write_sample_video(str(tmp_path / 'raw' / 'walk.mp4'), num_frames=6,
                                    height=48, width=64)
  config = video.VideoConfig(name='t', height=16, width=32, static_threshold=0.0)
  builder = _prepare(tmp_path, config)
  examples = common.read_examples(builder, 'train')
  assert [[f.decode() for f in e['frame_ids']] for e in examples] == [
      ['%06d' % (i + j) for j in range(3)] for i in range(4)]
  assert {e['video_id'] for e in examples} == {b'walk'}
  assert builder.summary['train']['triplets_written'] == 4
  for example, start in zip(examples, range(4)):
    for j in range(3):
      expected = cv2.resize(frames[start + j], (32, 24), interpolation=cv2.INTER_LINEAR)[4:20]
      # mp4v is lossy: compare with the written frame loosely.
      assert np.mean(np.abs(example['images'][j].astype(float) - expected)) < 12
  # Unknown intrinsics: the per-video learning's starting guess at the stored size.
  np.testing.assert_allclose(examples[0]['intrinsics'], [24.0, 24.0, 16.0, 8.0])
  assert not examples[0]['intrinsics_known']


def test_stride_static_frames_and_given_intrinsics(tmp_path):
  (tmp_path / 'raw').mkdir()
  video.write_sample_video(str(tmp_path / 'raw' / 'a.avi'), num_frames=12, height=48, width=64,
                           static_after=8)
  (tmp_path / 'intrinsics.json').write_text(json.dumps(
      {'videos': {'a': {'fx': 60.0, 'fy': 50.0, 'x0': 31.5, 'y0': 23.5}}}))
  config = video.VideoConfig(name='t', height=16, width=32, frame_stride=2,
                             intrinsics=str(tmp_path / 'intrinsics.json'))
  builder = _prepare(tmp_path, config)
  examples = common.read_examples(builder, 'train')
  # Stride 2 keeps 0, 2, ..., 10; frames 10 equal frame 8 (the picture stopped): dropped.
  assert [[f.decode() for f in e['frame_ids']] for e in examples] == [
      ['000000', '000002', '000004'], ['000002', '000004', '000006'],
      ['000004', '000006', '000008']]
  assert builder.summary['train']['skipped'] == {'static frames dropped': 1}
  np.testing.assert_allclose(examples[0]['intrinsics'], [30.0, 25.0, 15.5, 7.5])
  assert examples[0]['intrinsics_known']


def test_frame_folders_and_videos_each_make_a_video_id(tmp_path):
  video.write_sample_tree(str(tmp_path / 'raw'), num_videos=1, folders=1, num_frames=4,
                          height=24, width=32)
  builder = _prepare(tmp_path, video.VideoConfig(name='t', height=8, width=16))
  examples = common.read_examples(builder, 'train')
  assert sorted({e['video_id'].decode() for e in examples}) == ['clip_0', 'frames_0']
  assert [e['frame_ids'].tolist() for e in examples if e['video_id'] == b'frames_0'] == [
      [b'000000', b'000001', b'000002'], [b'000001', b'000002', b'000003']]


def test_undecodable_video_is_an_error_naming_the_file_or_skipped(tmp_path):
  (tmp_path / 'raw').mkdir()
  video.write_sample_video(str(tmp_path / 'raw' / 'good.mp4'), num_frames=4, height=24,
                           width=32)
  (tmp_path / 'raw' / 'broken.mp4').write_bytes(b'\x00\x00\x00 ftypisom' + b'garbage' * 50)
  config = video.VideoConfig(name='t', height=8, width=16)
  with pytest.raises(common.BadInputError, match='broken.mp4: '):
    _prepare(tmp_path, config)
  builder = _prepare(tmp_path, config, skip_bad=True, name='skipped')
  assert builder.summary['train']['skipped'] == {'undecodable videos': 1}
  assert builder.summary['train']['triplets_written'] == 2


def test_bad_intrinsics_json_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match='intrinsics must be'):
    video.load_intrinsics_spec('{"fx": 1, "fy": 2}')


def test_target_fps_sets_the_stride_from_the_video_frame_rate(tmp_path):
  path = str(tmp_path / 'v.avi')
  video.write_sample_video(path, num_frames=3, height=24, width=32, fps=30.0)
  source = video.VideoSource(path, 'v', is_folder=False)
  assert video.frame_stride(source, video.VideoConfig(name='t', target_fps=10.0)) == 3
  assert video.frame_stride(source, video.VideoConfig(name='t', frame_stride=2)) == 2
  folder = video.VideoSource(str(tmp_path), 'f', is_folder=True)
  # A frame folder has no frame rate unless folder_fps says it.
  assert video.frame_stride(folder, video.VideoConfig(name='t', target_fps=10.0)) == 1
  assert video.frame_stride(folder, video.VideoConfig(name='t', target_fps=10.0,
                                                      folder_fps=20.0)) == 2
