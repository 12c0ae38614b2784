r"""Runs a trained model on a user's video or folder of images.

    python -m depth_motion.infer --checkpoint=/tmp/model_dir --input=clip.mp4 \
        --output_dir=/tmp/clip_out --video_out=/tmp/clip_out/side_by_side.mp4

Input: a video file (decoded with OpenCV) or a folder of images (png, jpg,
jpeg, bmp, tif, tiff; sorted by name). Frames are resized (cv2.INTER_LINEAR)
to the model's trained resolution h x w; any aspect ratio is stretched, as in
training.

Written to --output_dir (each file complete before it appears):
  depth/<frame>.npy        float32 [h, w] depth at the trained resolution
                           (--depth_at_input_size: [H, W] at the frame's size).
                           Depth along the optical axis, in metres up to one
                           unknown scale (monocular training).
  depth/<frame>.png        the disparity 1/depth in the plasma colour map,
                           normalised per frame.
  motion/<frame>.png       the object-motion (residual translation) field of the
                           pair (this frame, next frame), x/y/z as red/green/blue
                           around grey, normalised per pair (no file for the last
                           frame).
  trajectory_kitti.txt     camera-to-world poses of every frame (first camera =
                           world), KITTI odometry format (3x4 row-major).
  trajectory_tum.txt       the same as `timestamp tx ty tz qx qy qz qw`
                           (timestamps from the video's frame rate or --fps).
  frames.txt               frame names, one per line, in trajectory order.
Optionally --video_out: frame | depth | object motion side by side.

The trajectory chains the ego-motion of consecutive frames
(`model.infer_egomotion`'s estimator, see `depth_motion.trajectory`); its
scale is as unknown as the depth's. The model runs through the `sequence`
function of `depth_motion.export` (depth once per frame, motion per pair), from
a checkpoint or an exported SavedModel alike. Progress (frames, frames/s, ETA) goes to
stderr.
"""

import os
import sys
import time

from absl import app
from absl import flags
import cv2
import numpy as np

from depth_motion import export as export_lib
from depth_motion import trajectory as trajectory_lib
from depth_motion import visualization

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
DEFAULT_FPS = 10.0


class FrameSource:
  """Frames of a video file or an image folder: iterate for (name, RGB uint8 [H, W, 3]).

  Attributes:
    fps: frames per second (the video's, else `fps` or DEFAULT_FPS).
    total: number of frames if known in advance, else None.
  """

  def __init__(self, path, fps=None):
    self.path = path
    if os.path.isdir(path):
      names = sorted(n for n in os.listdir(path)
                     if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith('.'))
      if not names:
        raise ValueError('Input folder %s holds no images (expected files ending in %s).' %
                         (path, ', '.join(IMAGE_EXTENSIONS)))
      self._files = [os.path.join(path, n) for n in names]
      self.total = len(names)
      self.fps = float(fps or DEFAULT_FPS)
      self._capture = None
    elif os.path.isfile(path):
      self._files = None
      self._capture = cv2.VideoCapture(path)
      ok = self._capture.isOpened()
      if ok:
        ok, first = self._capture.read()
      if not ok:
        self._capture.release()
        raise ValueError('Cannot decode video %s with OpenCV (not a video, or a codec OpenCV '
                         'lacks).' % path)
      self._first = first
      video_fps = self._capture.get(cv2.CAP_PROP_FPS)
      self.fps = float(fps or (video_fps if video_fps and video_fps > 0 else DEFAULT_FPS))
      count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
      self.total = count if count > 0 else None
    else:
      raise ValueError('Input %s does not exist.' % path)

  def __iter__(self):
    if self._files is not None:
      for file in self._files:
        image = cv2.imread(file, cv2.IMREAD_COLOR)
        if image is None:
          raise ValueError('Cannot decode image %s.' % file)
        yield os.path.splitext(os.path.basename(file))[0], cv2.cvtColor(image,
                                                                         cv2.COLOR_BGR2RGB)
      return
    index, frame = 0, self._first
    try:
      while frame is not None:
        yield '%06d' % index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        index += 1
        ok, frame = self._capture.read()
        if not ok:
          frame = None
    finally:
      self._capture.release()


class _Progress:
  """One self-overwriting progress line on stderr."""

  def __init__(self, total, stream=None):
    self.total = total
    self.stream = stream or sys.stderr
    self.start = time.time()
    self.done = 0

  def update(self, done):
    self.done = done
    elapsed = max(time.time() - self.start, 1e-9)
    fps = done / elapsed
    if self.total:
      eta = (self.total - done) / fps if fps > 0 else float('inf')
      line = '\r[infer] %d/%d frames, %.2f frames/s, ETA %.0f s' % (done, self.total, fps, eta)
    else:
      line = '\r[infer] %d frames, %.2f frames/s' % (done, fps)
    self.stream.write(line)
    self.stream.flush()

  def finish(self):
    self.stream.write('\n')
    self.stream.flush()
    return self.done / max(time.time() - self.start, 1e-9)


def _save_npy(path, array):
  tmp = path + '.tmp.npy'
  np.save(tmp, array)
  os.replace(tmp, path)


def _save_png(path, rgb):
  tmp = path + '.tmp.png'
  if not cv2.imwrite(tmp, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
    raise ValueError('Cannot write %s.' % path)
  os.replace(tmp, path)


def colorize_depth(depth):
  """[h, w] depth -> uint8 [h, w, 3] plasma picture of its disparity."""
  disparity = 1.0 / np.maximum(np.asarray(depth, np.float32), 1e-6)
  return visualization.to_uint8(visualization.colorize_disparity(disparity[None]).numpy()[0])


def colorize_motion(field):
  """[h, w, 3] residual translation -> uint8 [h, w, 3] picture."""
  field = np.asarray(field, np.float32)
  return visualization.to_uint8(visualization.colorize_translation(field[None]).numpy()[0])


class _VideoOut:
  """Writes frame | depth | motion panels side by side to a video, then renames it into place."""

  def __init__(self, path, fps):
    self.path = path
    self.fps = fps
    root, ext = os.path.splitext(path)
    self.tmp = '%s.tmp-%d%s' % (root, os.getpid(), ext or '.mp4')
    self.writer = None
    self.size = None

  def write(self, frame, depth_rgb, motion_rgb):
    if self.writer is None:
      height, width = frame.shape[:2]
      self.size = (width, height)
      ext = os.path.splitext(self.path)[1].lower()
      fourcc = cv2.VideoWriter_fourcc(*('MJPG' if ext == '.avi' else 'mp4v'))
      directory = os.path.dirname(os.path.abspath(self.path))
      os.makedirs(directory, exist_ok=True)
      self.writer = cv2.VideoWriter(self.tmp, fourcc, self.fps, (3 * width, height))
      if not self.writer.isOpened():
        raise ValueError('OpenCV cannot write the video %s (use .mp4 or .avi).' % self.path)
    panels = [cv2.resize(p, self.size, interpolation=cv2.INTER_LINEAR)
              for p in (frame, depth_rgb, motion_rgb)]
    self.writer.write(cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_RGB2BGR))

  def close(self, complete=True):
    """Releases the writer; renames the video into place only if `complete`."""
    if self.writer is not None:
      self.writer.release()
      if complete:
        os.replace(self.tmp, self.path)
      elif os.path.exists(self.tmp):
        os.remove(self.tmp)


def infer(input_path, output_dir, checkpoint=None, saved_model=None, video_out=None,
          batch_size=4, fps=None, depth_at_input_size=False, model=None, progress_stream=None):
  """Writes depth, motion pictures and the camera trajectory of a video (see module docstring).

  Args:
    input_path: a video file or a folder of images.
    output_dir: where to write (created).
    checkpoint, saved_model: the model (exactly one), unless `model` (an
      `export.LoadedModel`) is given.
    video_out: optional path of a side-by-side video (.mp4 or .avi).
    batch_size: frame pairs per network call.
    fps: frame rate for the TUM timestamps (default: the video's, else 10).
    depth_at_input_size: save .npy depth at the frame size instead of the
      trained resolution.
    progress_stream: where the progress line goes (default stderr).

  Returns:
    dict: num_frames, frames_per_second (processing speed), fps (timestamps'),
    output paths, and `poses` [N, 4, 4] camera-to-world.
  """
  if batch_size < 1:
    raise ValueError('batch_size must be >= 1, got %r.' % batch_size)
  source = FrameSource(input_path, fps)  # Fails on bad input before the model loads.
  if model is None:
    model = export_lib.load(checkpoint=checkpoint, saved_model=saved_model)
  size = (model.width, model.height)
  depth_dir = os.path.join(output_dir, 'depth')
  motion_dir = os.path.join(output_dir, 'motion')
  os.makedirs(depth_dir, exist_ok=True)
  os.makedirs(motion_dir, exist_ok=True)
  video = _VideoOut(video_out, source.fps) if video_out else None
  progress = _Progress(source.total, progress_stream)
  names, rotations, translations = [], [], []

  def emit(name, frame, depth, motion_field):
    stored = depth
    if depth_at_input_size:
      stored = cv2.resize(depth, (frame.shape[1], frame.shape[0]),
                          interpolation=cv2.INTER_LINEAR)
    _save_npy(os.path.join(depth_dir, name + '.npy'), stored.astype(np.float32))
    depth_rgb = colorize_depth(depth)
    _save_png(os.path.join(depth_dir, name + '.png'), depth_rgb)
    if motion_field is not None:
      motion_rgb = colorize_motion(motion_field)
      _save_png(os.path.join(motion_dir, name + '.png'), motion_rgb)
    else:
      motion_rgb = np.full_like(depth_rgb, 128)
    if video is not None:
      video.write(frame, depth_rgb, motion_rgb)
    names.append(name)

  def run_chunk(chunk, final):
    """chunk: consecutive (name, frame, small); emits all but its last frame unless final."""
    outputs = model.sequence(np.stack([c[2] for c in chunk]))
    for i, (name, frame, _) in enumerate(chunk[:-1]):
      emit(name, frame, outputs['depth'][i, ..., 0], outputs['residual_translation'][i])
      rotations.append(outputs['rotation_matrix'][i])
      translations.append(outputs['background_translation'][i])
    if final:
      name, frame, _ = chunk[-1]
      emit(name, frame, outputs['depth'][-1, ..., 0], None)

  complete = False
  try:
    # Chunks of batch_size pairs share their boundary frame with the next chunk.
    chunk = []
    for name, frame in source:
      chunk.append((name, frame, cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)))
      if len(chunk) == batch_size + 1:
        run_chunk(chunk, final=False)
        chunk = chunk[-1:]
        progress.update(len(names))
    run_chunk(chunk, final=True)
    progress.update(len(names))
    complete = True
  finally:
    speed = progress.finish()
    if video is not None:
      video.close(complete)

  poses = trajectory_lib.chain_relative_motions(np.reshape(rotations, (-1, 3, 3)),
                                                np.reshape(translations, (-1, 3)))
  timestamps = np.arange(len(names)) / source.fps
  kitti_path = trajectory_lib.write_kitti(os.path.join(output_dir, 'trajectory_kitti.txt'),
                                          poses)
  tum_path = trajectory_lib.write_tum(os.path.join(output_dir, 'trajectory_tum.txt'), poses,
                                      timestamps)
  frames_path = os.path.join(output_dir, 'frames.txt')
  tmp = frames_path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(''.join(n + '\n' for n in names))
  os.replace(tmp, frames_path)
  return {
      'num_frames': len(names),
      'frames_per_second': speed,
      'fps': source.fps,
      'depth_dir': depth_dir,
      'motion_dir': motion_dir,
      'trajectory_kitti': kitti_path,
      'trajectory_tum': tum_path,
      'frames': frames_path,
      'video': video_out,
      'poses': poses,
  }


def define_flags():
  """The command-line flags (defined only when run as a program)."""
  flags.DEFINE_string('checkpoint', None, 'model_dir or checkpoint prefix.')
  flags.DEFINE_string('saved_model', None, 'Exported SavedModel (instead of --checkpoint).')
  flags.DEFINE_string('input', None, 'A video file or a folder of images.')
  flags.DEFINE_string('output_dir', None, 'Where to write the results.')
  flags.DEFINE_string('video_out', None, 'Optional side-by-side video (.mp4 or .avi).')
  flags.DEFINE_integer('batch_size', 4, 'Frame pairs per network call.')
  flags.DEFINE_float('fps', None, "Frame rate for timestamps (default: the video's, else 10).")
  flags.DEFINE_bool('depth_at_input_size', False, 'Save .npy depth at the frame size.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  args = flags.FLAGS
  if not args.input or not args.output_dir:
    raise app.UsageError('--input and --output_dir are required.')
  try:
    summary = infer(args.input, args.output_dir, checkpoint=args.checkpoint,
                    saved_model=args.saved_model, video_out=args.video_out,
                    batch_size=args.batch_size, fps=args.fps,
                    depth_at_input_size=args.depth_at_input_size)
  except ValueError as e:
    print('Error: %s' % e, file=sys.stderr)
    return 1
  summary.pop('poses')
  for key, value in summary.items():
    print('%s: %s' % (key, value))
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
