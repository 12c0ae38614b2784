"""Weights from and to the reference's TF1 checkpoints (SPEC 2.6, 6.1).

Our networks' variables map one to one onto the variables the reference
trainer writes (`depth_prediction/conv2_1/bn_1/gamma`,
`MotionFieldNet/Refine3/Conv_1/weights`, `MotionFieldNet/Scales/rotation`, ...;
see tests/data/reference_nets_vars.txt). With that map:

* `import_reference_checkpoint` loads a checkpoint of the reference trainer
  into our networks, which then compute what the reference computed;
* `import_imagenet_checkpoint` initialises the depth encoder from a ResNet-18
  ImageNet checkpoint in dalgu90 naming, as the reference's
  `init_ckpt_type='imagenet'` does;
* `convert_torchvision_resnet18` writes such a checkpoint from torchvision's
  ResNet-18 weights (given as NumPy arrays, no torch needed);
* `export_reference_checkpoint` writes our networks under the reference names.

Every import checks all names and shapes before assigning anything, and
raises one ValueError listing every problem.
"""

import os
import re
import uuid

import numpy as np
import tensorflow as tf

DEPTH_SCOPE = 'depth_prediction/'
MOTION_SCOPE = 'MotionFieldNet/'
PER_VIDEO_INTRINSICS_NAME = 'all_intrin'

# Variables whose names contain one of these are skipped by the ImageNet
# initialisation: optimizer slots and the decoder (SPEC 2.6).
IMAGENET_BLACKLIST = ('Adam', 'iconv', 'depth_scale', 'upconv', 'disp')

# Renames from our (reference) names to dalgu90's, applied in this order.
IMAGENET_RENAMES = (('moving_mean', 'mu'), ('moving_variance', 'sigma'))


def _is_optimizer_state(name):
  # The reference trains with Adam: slots are `<var>/Adam`, `<var>/Adam_1`, plus
  # `beta1_power`/`beta2_power`. Other optimizers' slots would look alike.
  return 'Adam' in name or name.endswith('_power') or 'Momentum' in name


def reference_variable_names(depth_net=None, motion_net=None, per_video_intrinsics=None):
  """{reference checkpoint name: variable} for the given built networks.

  The values are the networks' own (Keras) variables, i.e. the objects in
  `net.trainable_variables` (`variable.value` is the underlying tf.Variable).
  `per_video_intrinsics`, a built `nets.PerVideoIntrinsics`, maps to the
  reference's top-level `all_intrin`.
  """
  names = {}
  if depth_net is not None:
    names.update(depth_net.reference_variables())
  if motion_net is not None:
    names.update(motion_net.reference_variables())
  if per_video_intrinsics is not None:
    if not per_video_intrinsics.built:
      per_video_intrinsics.build()
    names[PER_VIDEO_INTRINSICS_NAME] = per_video_intrinsics.all_intrin
  return names


def _reader(path):
  """A checkpoint reader for a checkpoint prefix or a directory holding checkpoints."""
  if not path:
    raise ValueError('Checkpoint path is empty.')
  try:
    return tf.train.load_checkpoint(path)
  except (ValueError, tf.errors.NotFoundError, tf.errors.DataLossError) as e:
    raise ValueError('Cannot read a TensorFlow checkpoint at %r (give a checkpoint prefix such '
                     'as model.ckpt-1000, or a directory with a "checkpoint" file): %s' %
                     (path, e)) from None


def _format_shape(shape):
  return '[%s]' % ','.join(str(int(d)) for d in shape)


def _check_and_assign(path, reader, wanted, what):
  """Assigns checkpoint tensors to variables after checking every name and shape.

  Args:
    path: the checkpoint path, for messages.
    reader: a checkpoint reader.
    wanted: {checkpoint name: variable}.
    what: description of the variables, for messages.

  Returns:
    The sorted list of assigned checkpoint names.
  """
  shapes = reader.get_variable_to_shape_map()
  problems = []
  for name, variable in sorted(wanted.items()):
    if name not in shapes:
      problems.append('%s is not in the checkpoint' % name)
    elif tuple(shapes[name]) != tuple(variable.shape):
      problems.append('%s has shape %s in the checkpoint but %s in the network' %
                      (name, _format_shape(shapes[name]), _format_shape(variable.shape)))
  if problems:
    raise ValueError('Cannot load %s from checkpoint %s (%d problem%s):\n  %s' %
                     (what, path, len(problems), 's' if len(problems) > 1 else '',
                      '\n  '.join(problems)))
  for name, variable in wanted.items():
    variable.assign(reader.get_tensor(name).astype(np.float32))
  return sorted(wanted)


def _build_from_checkpoint(depth_net, motion_net, shapes, path):
  """Builds unbuilt networks; the motion net's input width comes from the checkpoint."""
  if depth_net is not None and not depth_net.built:
    depth_net.build((None, None, None, 3))
  if motion_net is not None and not motion_net.built:
    conv1 = MOTION_SCOPE + 'Conv1/weights'
    if conv1 not in shapes:
      raise ValueError('Cannot build the motion network from checkpoint %s: it has no %s '
                       '(build the network first to get the full list of what is missing).' %
                       (path, conv1))
    motion_net.build((None, None, None, int(shapes[conv1][2])))


def import_reference_checkpoint(path, depth_net=None, motion_net=None,
                                per_video_intrinsics=None):
  """Loads the reference trainer's checkpoint into our networks.

  Reads every network variable under its reference name (`depth_prediction/...`,
  `MotionFieldNet/...`, `MotionFieldNet/CameraIntrinsics/...`,
  `MotionFieldNet/Scales/...`, and `all_intrin` when `per_video_intrinsics` is
  given). Optimizer slots, `global_step` and the variables of networks not
  passed are ignored. Unbuilt networks are built first (the motion network
  with the input width of the checkpoint's `Conv1`).

  Args:
    path: checkpoint prefix (e.g. `model.ckpt-20000`) or directory.
    depth_net: a `nets.DepthNet`, or None.
    motion_net: a `nets.MotionFieldNet`, or None.
    per_video_intrinsics: a `nets.PerVideoIntrinsics`, or None.

  Returns:
    The sorted list of assigned reference names.

  Raises:
    ValueError: if no network is given, or (before anything is assigned) naming
      every network variable missing from the checkpoint, every shape mismatch
      and every variable of a given network's scope in the checkpoint that the
      network does not have (e.g. `depth_prediction/depth_scale` with
      `learn_scale=False`), since the network would then not compute what
      the reference computed.
  """
  if depth_net is None and motion_net is None and per_video_intrinsics is None:
    raise ValueError('import_reference_checkpoint needs at least one of depth_net, motion_net, '
                     'per_video_intrinsics.')
  reader = _reader(path)
  shapes = reader.get_variable_to_shape_map()
  _build_from_checkpoint(depth_net, motion_net, shapes, path)
  wanted = reference_variable_names(depth_net, motion_net, per_video_intrinsics)

  scopes = []
  if depth_net is not None:
    scopes.append(DEPTH_SCOPE)
  if motion_net is not None:
    scopes.append(MOTION_SCOPE)
  unexpected = sorted(
      name for name in shapes
      if name.startswith(tuple(scopes)) and name not in wanted and not _is_optimizer_state(name))
  if unexpected:
    raise ValueError(
        'Checkpoint %s has variables that the networks do not have (%s); loading would not '
        'reproduce the reference (check the network parameters, e.g. learn_scale for '
        'depth_scale):\n  %s' % (path, ', '.join(s[:-1] for s in scopes),
                                 '\n  '.join(unexpected)))
  return _check_and_assign(path, reader, wanted, 'the networks')


def imagenet_variable_names(depth_net):
  """{dalgu90 ResNet-18 checkpoint name: variable} for the depth encoder (SPEC 2.6)."""
  names = {}
  for name, variable in depth_net.reference_variables().items():
    if any(key in name for key in IMAGENET_BLACKLIST):
      continue
    name = name[len(DEPTH_SCOPE):]
    for old, new in IMAGENET_RENAMES:
      name = name.replace(old, new)
    names[name] = variable
  return names


def import_imagenet_checkpoint(path, depth_net):
  """Initialises the depth encoder from a ResNet-18 ImageNet checkpoint (dalgu90 names).

  As the reference's `init_ckpt_type='imagenet'`: every depth variable except
  those whose name contains Adam, iconv, depth_scale, upconv or disp (the
  decoder), read under its name without the `depth_prediction/` prefix
  (`conv1/conv/kernel`, `conv2_1/bn_1/gamma`, `conv3_1/shortcut/kernel`, ...).
  Only kernels, betas and gammas exist in our encoder (no running statistics
  with the randomized layer norm); the checkpoint's `mu`/`sigma`, `fc` and any
  other variables are ignored. The decoder keeps its initialisation. The
  trainer resets the global step afterwards, as the reference does.

  Returns:
    The sorted list of assigned checkpoint names.

  Raises:
    ValueError: naming every missing variable and shape mismatch (nothing is
      assigned then).
  """
  if depth_net is None:
    raise ValueError('import_imagenet_checkpoint needs a depth_net.')
  reader = _reader(path)
  if not depth_net.built:
    depth_net.build((None, None, None, 3))
  return _check_and_assign(path, reader, imagenet_variable_names(depth_net),
                           'the ImageNet ResNet-18 encoder')


def write_checkpoint(arrays, prefix):
  """Writes {name: array} as a TF checkpoint whose keys are exactly these names.

  The files (`<prefix>.index`, `<prefix>.data-00000-of-00001`) are written
  under a temporary prefix and renamed when complete, index last. Read them
  with `tf.train.load_checkpoint(prefix)`.
  """
  if not arrays:
    raise ValueError('write_checkpoint: nothing to write to %s.' % prefix)
  directory = os.path.dirname(os.path.abspath(prefix))
  os.makedirs(directory, exist_ok=True)
  temp = os.path.join(directory, '.tmp-%s-%s' % (os.path.basename(prefix), uuid.uuid4().hex))
  names = sorted(arrays)
  tf.raw_ops.SaveV2(prefix=temp, tensor_names=names, shape_and_slices=[''] * len(names),
                    tensors=[tf.convert_to_tensor(arrays[n]) for n in names])
  data_suffix = '.data-00000-of-00001'
  os.replace(temp + data_suffix, prefix + data_suffix)
  os.replace(temp + '.index', prefix + '.index')
  return prefix


def export_reference_checkpoint(prefix, depth_net=None, motion_net=None,
                                per_video_intrinsics=None):
  """Writes the networks' variables under the reference's names (see `write_checkpoint`).

  The result loads with `import_reference_checkpoint`, and into the reference
  code's variables by name (it holds no optimizer state or global step).
  """
  names = reference_variable_names(depth_net, motion_net, per_video_intrinsics)
  return write_checkpoint({n: v.numpy() for n, v in names.items()}, prefix)


_TORCH_BN_FIELDS = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'mu',
                    'running_var': 'sigma'}


def _torchvision_name(name):
  """dalgu90 name for a torchvision ResNet-18 key, or None when it has no counterpart."""
  if name.startswith('fc.') or name.endswith('num_batches_tracked'):
    return None
  if name == 'conv1.weight':
    return 'conv1/conv/kernel'
  match = re.fullmatch(r'bn1\.(\w+)', name)
  if match and match.group(1) in _TORCH_BN_FIELDS:
    return 'conv1/bn/' + _TORCH_BN_FIELDS[match.group(1)]
  match = re.fullmatch(r'layer([1-4])\.([01])\.(conv|bn)([12])\.(\w+)', name)
  if match:
    stage, block, kind, index, field = match.groups()
    scope = 'conv%d_%d' % (int(stage) + 1, int(block) + 1)
    if kind == 'conv' and field == 'weight':
      return '%s/conv_%s/kernel' % (scope, index)
    if kind == 'bn' and field in _TORCH_BN_FIELDS:
      return '%s/bn_%s/%s' % (scope, index, _TORCH_BN_FIELDS[field])
  match = re.fullmatch(r'layer([2-4])\.0\.downsample\.([01])\.(\w+)', name)
  if match:
    stage, module, field = match.groups()
    if module == '0' and field == 'weight':
      return 'conv%d_1/shortcut/kernel' % (int(stage) + 1)
    # The downsample's batch norm has no counterpart in dalgu90's ResNet-18.
    return None
  raise ValueError('Unexpected key %r in the torchvision ResNet-18 state dict.' % name)


def torchvision_resnet18_to_reference(state_dict):
  """Renames and transposes torchvision ResNet-18 weights to dalgu90 names (SPEC 2.6).

  Args:
    state_dict: {torchvision name: NumPy array}, e.g.
      `{k: v.numpy() for k, v in torchvision.models.resnet18(weights=...).state_dict().items()}`.

  Returns:
    {dalgu90 name: float32 array}: conv kernels transposed from [out, in, h, w]
    to [h, w, in, out]; batch norms' weight/bias/running_mean/running_var as
    gamma/beta/mu/sigma. `fc`, `num_batches_tracked` and the shortcut's
    batch norm are dropped.

  Raises:
    ValueError: for an unknown key, or when a weight the encoder needs is missing.
  """
  converted = {}
  for name, value in state_dict.items():
    target = _torchvision_name(name)
    if target is None:
      continue
    value = np.asarray(value, dtype=np.float32)
    if target.endswith('/kernel'):
      if value.ndim != 4:
        raise ValueError('torchvision weight %r should be a 4-D conv kernel, got shape %s.' %
                         (name, value.shape))
      value = value.transpose(2, 3, 1, 0)
    converted[target] = value
  missing = sorted(set(_resnet18_encoder_names()) - set(converted))
  if missing:
    raise ValueError('The torchvision state dict lacks weights for: %s.' % ', '.join(missing))
  return converted


def _resnet18_encoder_names():
  names = ['conv1/conv/kernel', 'conv1/bn/beta', 'conv1/bn/gamma']
  for stage in range(2, 6):
    for block in (1, 2):
      scope = 'conv%d_%d' % (stage, block)
      for index in (1, 2):
        names += ['%s/conv_%d/kernel' % (scope, index), '%s/bn_%d/beta' % (scope, index),
                  '%s/bn_%d/gamma' % (scope, index)]
      if stage > 2 and block == 1:
        names.append(scope + '/shortcut/kernel')
  return names


def convert_torchvision_resnet18(state_dict, prefix):
  """Writes a dalgu90-named ResNet-18 checkpoint for `import_imagenet_checkpoint`.

  `state_dict` as in `torchvision_resnet18_to_reference`. Note the encoder's
  TF 'SAME' padding differs from torchvision's symmetric padding at stride 2,
  as it did in the reference. Returns `prefix`.
  """
  return write_checkpoint(torchvision_resnet18_to_reference(state_dict), prefix)
