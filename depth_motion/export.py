r"""Exports a trained model as a self-contained TensorFlow SavedModel.

    python -m depth_motion.export --checkpoint=/tmp/model_dir --export_dir=/tmp/depth_motion_sm

The SavedModel needs neither this package nor any Keras code to run: load it with
`tf.saved_model.load(path)` (call `.depth(images)` / `.motion(frame1, frame2)`
or its `signatures`), or serve it with TF Serving. Signatures:

`depth` (also `serving_default`), input `images` float32 [N, H, W, 3] in [0, 1];
`depth_uint8`, input `images` uint8 [N, H, W, 3] in [0, 255]. Any N, H, W:
images are resized inside (bilinear, half-pixel centres, no antialiasing, i.e.
cv2.INTER_LINEAR) to the trained resolution h x w, stretching them if the
aspect ratio differs. Outputs:
  depth          float32 [N, h, w, 1] at the trained resolution.
  disparity      float32 [N, h, w, 1] = 1 / depth.
  depth_resized  float32 [N, H, W, 1], depth resized back to the input size.

THE DEPTH CONTRACT: `depth` is depth along the optical axis (z, not the
Euclidean range, and not disparity), in metres up to one unknown global scale
for a model trained on monocular video (the usual case): multiply by a scale
from any metric reference (e.g. median(gt) / median(depth), or camera height).
It is positive everywhere. The scale can drift between images of different
scenes; within a video it is roughly consistent.

`motion`, inputs `frame1`, `frame2` float32 [N, H, W, 3] in [0, 1] (frames of
one video, frame2 after frame1); `motion_uint8` the same in uint8. Outputs,
for the camera motion from frame1 to frame2 (a point P1 in camera-1
coordinates is at P2 = R P1 + t in camera 2's, same units as depth):
  rotation_matrix         float32 [N, 3, 3] R, the average of the forward
                          estimate and the inverse of the backward one
                          (orthonormal only approximately).
  rotation                float32 [N, 3] Euler angles (rx, ry, rz) of R, radians,
                          R = Rx Ry Rz.
  background_translation  float32 [N, 3] t (same averaging).
  residual_translation    float32 [N, h, w, 3] object motion: the extra
                          translation of each frame-1 pixel's 3D point,
                          P2 = R P1 + t + dT(u, v); zero where static. The auto
                          mask is computed per pair (over its forward and
                          backward predictions), so each pair's field does not
                          depend on the rest of the batch. The network's full
                          field: no burn-in factor and no object mask (a model
                          trained with use_mask had its field masked by the
                          data's instance masks, which serving does not have).
  intrinsics              float32 [N, 3, 3] K predicted by the network at the
                          trained resolution (pixel centres at integers).
  intrinsics_learned      bool [N]: whether `intrinsics` was trained (model
                          trained with learn_intrinsics.enabled and not
                          per_video); otherwise it is an untrained head's output
                          and must not be used.
  depth1, depth2          float32 [N, h, w, 1] the depths of both frames.

`sequence`, input `frames` float32 [N, H, W, 3] in [0, 1], N >= 1 consecutive
frames of one video; `sequence_uint8` the same in uint8. Runs the depth net once
per frame and returns `depth` and `disparity` [N, h, w, 1] and, for the N - 1
pairs (frames[k], frames[k+1]), every `motion` output above except depth1/depth2
(values equal to `motion` on those pairs). What `depth_motion.infer` uses. Its
outputs have N and N - 1 rows, so with TF Serving's REST API call it in the
columnar format ("inputs"), not the row format ("instances").

Variables `trained_height`, `trained_width` (int32) and `params_json` (string,
the model params) describe the model. The export also holds
`assets/README` (this contract) and `assets/params.json`.

It is written to a temporary directory next to `export_dir` and renamed when
complete (local file systems).
"""

import json
import os
import shutil

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from depth_motion import geometry
from depth_motion import model as model_lib

FLOAT_IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32)
UINT8_IMAGES = tf.TensorSpec([None, None, None, 3], tf.uint8)

README_TEMPLATE = """depth_motion SavedModel (TensorFlow {tf_version})
Trained resolution: {height}x{width} (HxW). Checkpoint: {checkpoint}

{contract}
"""


def _to_model_input(images, height, width):
  """uint8 or float [N, H, W, 3] -> float32 [N, height, width, 3] in [0, 1]."""
  if images.dtype == tf.uint8:
    images = tf.cast(images, tf.float32) / 255.0
  else:
    images = tf.cast(images, tf.float32)
  # Bilinear with half-pixel centres is exact identity at equal size.
  return tf.image.resize(images, [height, width], method='bilinear', antialias=False)


class DepthMotionModule(tf.Module):
  """The serving wrapper around a `DepthMotionFieldModel` (see the module docstring).

  Used both for the SavedModel and, unsaved, by `evaluate` and `infer` when
  they are given a checkpoint, so both paths run the same computation.
  """

  def __init__(self, model, params):
    super().__init__(name='depth_motion')
    self.model = model
    size = params['image_preprocessing']
    self._height = int(size['image_height'])
    self._width = int(size['image_width'])
    learn = params['learn_intrinsics']
    self._intrinsics_learned = bool(learn['enabled'] and not learn['per_video'])
    self.trained_height = tf.Variable(self._height, dtype=tf.int32, trainable=False,
                                      name='trained_height')
    self.trained_width = tf.Variable(self._width, dtype=tf.int32, trainable=False,
                                     name='trained_width')
    self.params_json = tf.Variable(json.dumps(params, sort_keys=True, default=str),
                                   dtype=tf.string, trainable=False, name='params_json')
    # reduce_retracing: one trace serves every batch size and image size.
    self.depth = tf.function(self._depth, reduce_retracing=True)
    self.motion = tf.function(self._motion, reduce_retracing=True)
    self.sequence = tf.function(self._sequence, reduce_retracing=True)

  def _depth(self, images):
    x = _to_model_input(images, self._height, self._width)
    depth = self.model.predict_depth(x)
    return {
        'depth': depth,
        'disparity': 1.0 / depth,
        'depth_resized': tf.image.resize(depth, tf.shape(images)[1:3], method='bilinear',
                                         antialias=False),
    }

  def _motion_of_pair(self, frames):
    """frames: (frame1, depth1, frame2, depth2), each [h, w, C] of one pair."""
    motion = self.model.motion_between(*(f[tf.newaxis] for f in frames))
    return (motion['rotation_matrix'][0], motion['translation'][0],
            motion['residual_translation'][0], motion['intrinsics'][0])

  def _pair_motions(self, x1, depth1, x2, depth2):
    """Motion outputs of the pairs (x1[i], x2[i]), one pair at a time (per-pair auto mask)."""
    rot, trans, residual, intrinsics = tf.map_fn(
        self._motion_of_pair, (x1, depth1, x2, depth2),
        fn_output_signature=(tf.TensorSpec([3, 3], tf.float32), tf.TensorSpec([3], tf.float32),
                             tf.TensorSpec([self._height, self._width, 3], tf.float32),
                             tf.TensorSpec([3, 3], tf.float32)))
    return {
        'rotation_matrix': rot,
        'rotation': geometry.angles_from_matrix(rot),
        'background_translation': trans,
        'residual_translation': residual,
        'intrinsics': intrinsics,
        'intrinsics_learned': tf.fill(tf.shape(rot)[:1], self._intrinsics_learned),
    }

  def _motion(self, frame1, frame2):
    tf.debugging.assert_equal(tf.shape(frame1)[0], tf.shape(frame2)[0],
                              message='frame1 and frame2 must have the same batch size')
    x1 = _to_model_input(frame1, self._height, self._width)
    x2 = _to_model_input(frame2, self._height, self._width)
    depth = self.model.predict_depth(tf.concat([x1, x2], axis=0))
    depth1, depth2 = tf.split(depth, 2, axis=0)
    outputs = self._pair_motions(x1, depth1, x2, depth2)
    outputs.update(depth1=depth1, depth2=depth2)
    return outputs

  def _sequence(self, frames):
    x = _to_model_input(frames, self._height, self._width)
    depth = self.model.predict_depth(x)
    outputs = self._pair_motions(x[:-1], depth[:-1], x[1:], depth[1:])
    outputs.update(depth=depth, disparity=1.0 / depth)
    return outputs

  def serving_signatures(self):
    """The concrete functions to export as signatures (tracing both dtypes)."""
    depth_float = self.depth.get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.float32, name='images'))
    depth_uint8 = self.depth.get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.uint8, name='images'))
    motion_float = self.motion.get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.float32, name='frame1'),
        tf.TensorSpec([None, None, None, 3], tf.float32, name='frame2'))
    motion_uint8 = self.motion.get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.uint8, name='frame1'),
        tf.TensorSpec([None, None, None, 3], tf.uint8, name='frame2'))
    sequence_float = self.sequence.get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.float32, name='frames'))
    sequence_uint8 = self.sequence.get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.uint8, name='frames'))
    return {
        'serving_default': depth_float,
        'depth': depth_float,
        'depth_uint8': depth_uint8,
        'motion': motion_float,
        'motion_uint8': motion_uint8,
        'sequence': sequence_float,
        'sequence_uint8': sequence_uint8,
    }


def module_from_checkpoint(checkpoint):
  """A `DepthMotionModule` around the model restored from a model_dir or checkpoint prefix.

  Returns (module, params, checkpoint_prefix).
  """
  try:
    model, params, prefix = model_lib.restore_model(checkpoint)
  except (AttributeError, TypeError) as e:
    # The strict params overrides reject unknown keys and wrong types.
    raise ValueError('The params of checkpoint %s (its %s) do not fit this version of the '
                     'model: %s' % (checkpoint, model_lib.PARAMS_FILENAME, e)) from None
  return DepthMotionModule(model, params), params, prefix


class LoadedModel:
  """Uniform access to a checkpoint's or a SavedModel's `depth`/`motion` functions."""

  def __init__(self, module, params, source):
    self.module = module
    self.params = params
    self.source = source
    self.height = int(module.trained_height.numpy())
    self.width = int(module.trained_width.numpy())

  def depth(self, images):
    """dict of NumPy arrays (see the module docstring) for images [N, H, W, 3]."""
    return {k: v.numpy() for k, v in self.module.depth(tf.convert_to_tensor(images)).items()}

  def motion(self, frame1, frame2):
    """dict of NumPy arrays (see the module docstring) for the pairs (frame1, frame2)."""
    outputs = self.module.motion(tf.convert_to_tensor(frame1), tf.convert_to_tensor(frame2))
    return {k: v.numpy() for k, v in outputs.items()}

  def sequence(self, frames):
    """dict of NumPy arrays (see the module docstring) for consecutive frames [N, H, W, 3]."""
    return {k: v.numpy() for k, v in self.module.sequence(tf.convert_to_tensor(frames)).items()}


def load(checkpoint=None, saved_model=None):
  """Loads a model from a checkpoint (model_dir or prefix) or an exported SavedModel.

  Exactly one of the two must be given. Returns a `LoadedModel`.
  """
  if bool(checkpoint) == bool(saved_model):
    raise ValueError('Give exactly one of checkpoint and saved_model (got checkpoint=%r, '
                     'saved_model=%r).' % (checkpoint, saved_model))
  if checkpoint:
    module, params, prefix = module_from_checkpoint(checkpoint)
    return LoadedModel(module, params, prefix)
  if not tf.io.gfile.exists(os.path.join(saved_model, 'saved_model.pb')):
    raise ValueError('%s is not a SavedModel directory (no saved_model.pb).' % saved_model)
  module = tf.saved_model.load(saved_model)
  missing = [name for name in ('depth', 'motion', 'sequence', 'trained_height', 'trained_width',
                               'params_json') if not hasattr(module, name)]
  if missing:
    raise ValueError('%s is not a depth_motion SavedModel (it lacks %s); export one with '
                     'python -m depth_motion.export.' % (saved_model, ', '.join(missing)))
  params = json.loads(module.params_json.numpy().decode('utf-8'))
  return LoadedModel(module, params, saved_model)


def export_saved_model(checkpoint, export_dir, overwrite=False):
  """Exports the model of `checkpoint` (model_dir or prefix) as a SavedModel in `export_dir`.

  Returns export_dir. Raises ValueError if export_dir exists and not overwrite.
  """
  export_dir = os.path.abspath(export_dir.rstrip('/'))
  if os.path.exists(export_dir) and not overwrite:
    raise ValueError('export_dir %s already exists (pass overwrite=True / --overwrite to '
                     'replace it).' % export_dir)
  module, params, prefix = module_from_checkpoint(checkpoint)
  signatures = module.serving_signatures()
  tmp = '%s.tmp-%d' % (export_dir, os.getpid())
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  try:
    tf.saved_model.save(module, tmp, signatures=signatures)
    assets = os.path.join(tmp, 'assets')
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, 'README'), 'w', encoding='utf-8') as f:
      f.write(README_TEMPLATE.format(
          tf_version=tf.__version__, height=module.trained_height.numpy(),
          width=module.trained_width.numpy(), checkpoint=prefix,
          contract=__doc__[__doc__.index('`depth` (also'):]))
    with open(os.path.join(assets, 'params.json'), 'w', encoding='utf-8') as f:
      json.dump(params, f, indent=2, sort_keys=True, default=str)
    old = '%s.old-%d' % (export_dir, os.getpid())
    if os.path.exists(export_dir):
      os.replace(export_dir, old)  # Moved aside, so a complete export is always in place.
    os.replace(tmp, export_dir)
    if os.path.exists(old):
      shutil.rmtree(old)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  logging.info('Exported %s to %s.', prefix, export_dir)
  return export_dir


def define_flags():
  """The command-line flags (defined only when run as a program: importing defines none)."""
  flags.DEFINE_string('checkpoint', None, 'A model_dir (latest checkpoint) or checkpoint prefix.')
  flags.DEFINE_string('export_dir', None, 'Where to write the SavedModel.')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing export_dir.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  args = flags.FLAGS
  if not args.checkpoint or not args.export_dir:
    raise app.UsageError('--checkpoint and --export_dir are required.')
  print(export_saved_model(args.checkpoint, args.export_dir, args.overwrite))


if __name__ == '__main__':
  define_flags()
  app.run(main)
