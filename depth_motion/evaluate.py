r"""Evaluates depth (and, where ground truth allows, motion) of a trained model.

    python -m depth_motion.evaluate --checkpoint=/tmp/model_dir \
        --dataset=kitti --data_dir=~/tensorflow_datasets --protocol=kitti_eigen
    python -m depth_motion.evaluate --saved_model=/tmp/export \
        --dataset=synthetic_dynamic_scenes/tiny --protocol=synthetic --output_json=/tmp/r.json

The model comes from `--checkpoint` (a model_dir or checkpoint prefix, with the
trainer's params.json beside it) or an exported `--saved_model`; both run the
same `export.DepthMotionModule` computation. The data come from a prepared TFDS
triplet builder (`--dataset`, `--data_dir`, `--split`, default the protocol's
test split) or from a struct2depth list file (`--data_path`, lines
`<subfolder> <frame_id>` naming 3-frame strips `<frame_id>.png` with
`<frame_id>_cam.txt`) with ground truth from `--gt_depth_path` (a .npy/.npz of
one depth map per line, as monodepth2's gt_depths.npz).

Every triplet contributes its middle frame t, scored as its protocol says
(`evaluation.protocols`): the seven depth metrics averaged over images, the
median-scaling ratios (mean, std, median, std/median as monodepth2 prints), and a
monodepth2-style `&`-separated table row. Where the ground truth separates
moving from static pixels (`object_translation` != 0, else instance `masks` > 0)
the metrics of each part as well, using each image's overall scale. Where the
data carry ground-truth motion (the synthetic scenes), the pair (t, t+1) also
gives:
  egomotion       rotation error (angle of R_pred^T R_gt) and translation
                  direction error in degrees, and the translation error in
                  metres after multiplying by the frame's depth scale ratio.
  object_motion   end-point error of the residual translation field (scaled by
                  the same ratio, nearest-neighbour resized to the ground truth)
                  on moving and on static pixels, pooled over all pixels, and
                  the ratio of the mean |residual| on moving to static pixels.
  intrinsics      when the model learned them (not per video): relative errors
                  of fx, fy, x0, y0 against the data's intrinsics scaled to the
                  trained resolution.
The results dict is printed and, with `--output_json`, written atomically
(NaN/inf as null).
"""

import importlib
import json
import math
import os
import pkgutil
import sys
import time

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np

from depth_motion import export as export_lib
from depth_motion.data import struct2depth
from depth_motion.evaluation import metrics as metrics_lib
from depth_motion.evaluation import motion_metrics
from depth_motion.evaluation import protocols as protocols_lib

MIDDLE = 1  # The evaluated frame t of a triplet (t-1, t, t+1).
MOVING_MIN_NORM = 1e-6  # |object_translation| above which a pixel moves (metres).


# ----------------------------------------------------------------------------- data sources


def _import_dataset_modules():
  """Imports data_prep's modules so that their TFDS builders register (import errors skipped)."""
  try:
    import data_prep  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  for info in pkgutil.iter_modules(data_prep.__path__):
    try:
      importlib.import_module('data_prep.' + info.name)
    except Exception as e:  # pylint: disable=broad-except
      logging.debug('Skipping data_prep.%s: %s', info.name, e)


def tfds_examples(dataset, data_dir=None, split='test'):
  """Yields the NumPy examples of a prepared TFDS triplet builder, in file order."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from data_prep import convert  # pylint: disable=g-import-not-at-top
  # Our short names ('kitti') would otherwise reach TFDS's own datasets of that name.
  dataset = convert.resolve_dataset_name(dataset)
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    _import_dataset_modules()
    try:
      builder = tfds.builder(dataset, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
      raise ValueError('Unknown dataset %r: no TFDS builder of that name is registered or '
                       'prepared in data_dir %s.' % (dataset, data_dir)) from None
  if not builder.is_prepared():
    raise ValueError('Dataset %s is not prepared in %s; prepare it first (python -m '
                     'data_prep.convert --dataset=...).' % (dataset, builder.data_dir))
  if split not in builder.info.splits:
    raise ValueError('Dataset %s has no split %r; it has %s.' %
                     (dataset, split, ', '.join(sorted(builder.info.splits))))
  ds = builder.as_dataset(split=split, shuffle_files=False)
  for example in tfds.as_numpy(ds):
    yield example


def _read_rgb(path):
  image = cv2.imread(path, cv2.IMREAD_COLOR)
  if image is None:
    raise ValueError('Cannot read image %s.' % path)
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_gt_depths(path):
  """Ground-truth depth maps from a .npy ([N, H, W] or object array) or .npz (key 'data').

  monodepth2's gt_depths.npz stores maps of different sizes as an object array,
  which NumPy can only read with pickling; that is allowed for this
  user-supplied file only.
  """
  if not os.path.exists(path):
    raise ValueError('gt_depth_path %s does not exist.' % path)
  loaded = np.load(path, allow_pickle=True)
  if isinstance(loaded, np.lib.npyio.NpzFile):
    if 'data' not in loaded.files:
      raise ValueError('%s must hold the depth maps under the key "data", has %s.' %
                       (path, ', '.join(loaded.files)))
    loaded = loaded['data']
  return list(loaded)


def struct2depth_examples(data_path, gt_depth_path=None):
  """Yields examples from a struct2depth list file (SPEC 1.1) and optional ground truth.

  Each line `<subfolder> <frame_id>` names `<root>/<subfolder>/<frame_id>.png`,
  three frames side by side, and `<frame_id>_cam.txt`, 9 comma-separated
  numbers (row-major K); `<frame_id>-fseg.png` masks are read when present.
  """
  data_path = struct2depth.resolve_list_file(data_path)
  root = os.path.dirname(os.path.abspath(data_path))
  entries = []
  for _, folder, frame_id, problem in struct2depth.read_list_file(data_path):
    if problem:
      raise ValueError(problem)
    entries.append((folder, frame_id))
  if not entries:
    raise ValueError('data_path %s lists no examples.' % data_path)
  gt_depths = load_gt_depths(gt_depth_path) if gt_depth_path else None
  if gt_depths is not None and len(gt_depths) != len(entries):
    raise ValueError('%s holds %d depth maps but %s lists %d examples.' %
                     (gt_depth_path, len(gt_depths), data_path, len(entries)))
  for index, (folder, frame_id) in enumerate(entries):
    stem = os.path.join(root, folder, frame_id)
    strip = _read_rgb(stem + '.png')
    if strip.shape[1] % 3:
      raise ValueError('%s.png: width %d is not 3 frames side by side.' % (stem, strip.shape[1]))
    width = strip.shape[1] // 3
    images = np.stack([strip[:, i * width:(i + 1) * width] for i in range(3)])
    example = {'images': images, 'frame_ids': np.array([('%s/%s' % (folder, frame_id)).encode()] *
                                                       3)}
    cam_path = stem + '_cam.txt'
    if os.path.exists(cam_path):
      with open(cam_path, encoding='utf-8') as f:
        fx, fy, x0, y0 = struct2depth.parse_cam_file(f.read(), cam_path)
      example['intrinsics'] = np.array([fx, fy, x0, y0], np.float32)
      example['intrinsics_known'] = True
    mask_path = stem + '-fseg.png'
    if os.path.exists(mask_path):
      seg = _read_rgb(mask_path).astype(np.int64)
      ids = seg[..., 0] * 65536 + seg[..., 1] * 256 + seg[..., 2]
      example['masks'] = np.stack([ids[:, i * width:(i + 1) * width, None] for i in range(3)])
    if gt_depths is not None:
      depth = np.zeros((3,) + np.shape(gt_depths[index]), np.float32)
      depth[MIDDLE] = gt_depths[index]
      example['depth'] = depth
    yield example


# ----------------------------------------------------------------------------- accumulation


class _Mean:
  """Mean and count of dicts of numbers (NaN entries skipped key by key)."""

  def __init__(self):
    self.sums, self.counts = {}, {}

  def add(self, values, weight=1.0):
    for key, value in values.items():
      if value is None or not np.isfinite(value):
        continue
      self.sums[key] = self.sums.get(key, 0.0) + float(value) * weight
      self.counts[key] = self.counts.get(key, 0.0) + weight

  def result(self):
    return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k] > 0}


def table_row(depth_metrics):
  """monodepth2's printed header and `&`-separated LaTeX row of the seven metrics."""
  header = ('{:>8} | ' * 7).format(*metrics_lib.METRIC_NAMES)
  row = ('&{: 8.3f}  ' * 7).format(*[depth_metrics[k] for k in metrics_lib.METRIC_NAMES]) + '\\\\'
  return header, row


def _json_safe(value):
  if isinstance(value, dict):
    return {str(k): _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if isinstance(value, (np.floating, float)):
    return float(value) if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, np.bool_):
    return bool(value)
  return value


def write_json(path, results):
  """Writes `results` as JSON to a temporary file and renames it to `path`."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = '%s.tmp-%d' % (path, os.getpid())
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(_json_safe(results), f, indent=2, sort_keys=True, allow_nan=False)
  os.replace(tmp, path)
  return path


# ----------------------------------------------------------------------------- evaluation


def _scaled_intrinsics(example, protocol, height, width):
  """The example's K (pixels) moved by the protocol's input crop and scaled to height x width."""
  fx, fy, x0, y0 = (float(v) for v in example['intrinsics'])
  image_h, image_w = example['images'].shape[1:3]
  if (protocol.input_crop is not None and
      (image_h, image_w) == tuple(protocol.input_crop_full_size)):
    top, bottom, left, right = protocol.input_crop
    x0, y0 = x0 - left, y0 - top
    image_h, image_w = bottom - top, right - left
  sx, sy = width / image_w, height / image_h
  # The reference's resize rule (data.augmentation.resize_intrinsics), as in training.
  return motion_metrics.intrinsics_matrix(fx * sx, fy * sy, x0 * sx, y0 * sy)


class _Evaluation:
  """Accumulates the per-image results of one evaluation run."""

  def __init__(self, protocol, model, median_scaling):
    self.protocol = protocol
    self.model = model
    self.median_scaling = median_scaling
    self.depth = _Mean()
    self.constant_depth = _Mean()
    self.parts = {}
    self.parts_source = None
    self.ratios = []
    self.skipped = 0
    self.egomotion = _Mean()
    self.object_motion = _Mean()
    self.object_pixels = {'moving': 0, 'static': 0}
    self.residual_sums = {'moving': 0.0, 'static': 0.0}
    self.intrinsics = _Mean()
    self.motion_pairs = 0

  def _parts(self, example, gt_shape):
    source = None
    if 'object_translation' in example:
      moving = np.linalg.norm(example['object_translation'][MIDDLE], axis=-1) > MOVING_MIN_NORM
      source = 'object_translation'
    elif 'masks' in example:
      moving = example['masks'][MIDDLE][..., 0] > 0
      source = 'masks'
    else:
      return None
    if self.parts_source is None:
      self.parts_source = source
    moving = protocols_lib.resize_mask(
        protocols_lib.apply_input_crop(self.protocol, moving), gt_shape)
    return {'moving': moving, 'static': ~moving}

  def needs_motion(self, example):
    learned = self.model.params['learn_intrinsics']
    return ('egomotion' in example or 'object_translation' in example or
            (learned['enabled'] and not learned['per_video'] and
             bool(example.get('intrinsics_known', False)) and 'intrinsics' in example))

  def add_batch(self, examples):
    size = (self.model.height, self.model.width)
    middle = np.stack([protocols_lib.prepare_image(self.protocol, e['images'][MIDDLE], size)
                       for e in examples])
    depths = self.model.depth(middle)['depth'][..., 0]
    scales = []
    for example, depth in zip(examples, depths):
      if 'depth' not in example:
        raise ValueError('Example %s has no ground-truth depth; the data source must provide '
                         'it (a TFDS split with depth, or --gt_depth_path).' %
                         _example_name(example))
      gt = protocols_lib.prepare_ground_truth(self.protocol, example['depth'][MIDDLE],
                                              example['images'].shape[1:3])
      pred = protocols_lib.resize_prediction(depth, gt.shape)
      parts = self._parts(example, gt.shape)
      result = protocols_lib.evaluate_depth_image(self.protocol, gt, pred, parts,
                                                  self.median_scaling)
      if result is None:
        self.skipped += 1
        scales.append(None)
        continue
      self.depth.add(result['metrics'])
      # The floor any depth model must beat: one depth for the whole image,
      # median-scaled, so only the image's depth spread counts against it.
      self.constant_depth.add(protocols_lib.evaluate_depth_image(
          self.protocol, gt, np.ones_like(pred), median_scaling=True)['metrics'])
      self.ratios.append(result['ratio'])
      scales.append(result['ratio'])
      for name, part_metrics in result['parts'].items():
        self.parts.setdefault(name, _Mean()).add(part_metrics)
    motion_examples = [i for i, e in enumerate(examples) if self.needs_motion(e)]
    if motion_examples:
      self._add_motion([examples[i] for i in motion_examples],
                       middle[motion_examples], [scales[i] for i in motion_examples])

  def _add_motion(self, examples, middle, scales):
    size = (self.model.height, self.model.width)
    last = np.stack([protocols_lib.prepare_image(self.protocol, e['images'][MIDDLE + 1], size)
                     for e in examples])
    outputs = self.model.motion(middle, last)
    self.motion_pairs += len(examples)
    for i, (example, scale) in enumerate(zip(examples, scales)):
      scale = 1.0 if scale is None else scale
      if 'egomotion' in example:
        truth = np.asarray(example['egomotion'][MIDDLE], np.float64)
        rotation = outputs['rotation_matrix'][i]
        translation = outputs['background_translation'][i]
        self.egomotion.add({
            'rotation_error_deg': float(motion_metrics.rotation_error_deg(rotation,
                                                                          truth[:3, :3])),
            'translation_direction_error_deg': float(
                motion_metrics.translation_direction_error_deg(translation, truth[:3, 3])),
            'translation_error_m': float(np.linalg.norm(scale * translation - truth[:3, 3])),
        })
      if 'object_translation' in example:
        truth = np.asarray(example['object_translation'][MIDDLE], np.float64)
        residual = cv2.resize(outputs['residual_translation'][i] * scale,
                              (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
        moving = np.linalg.norm(truth, axis=-1) > MOVING_MIN_NORM
        errors = motion_metrics.object_motion_errors(residual, truth, moving)
        counts = {'moving': int(moving.sum()), 'static': int((~moving).sum())}
        for part in ('moving', 'static'):
          if counts[part]:
            self.object_motion.add({'epe_%s_m' % part: errors['epe_' + part]}, counts[part])
            self.object_pixels[part] += counts[part]
            self.residual_sums[part] += errors['residual_' + part] * counts[part]
      learned = self.model.params['learn_intrinsics']
      if (learned['enabled'] and not learned['per_video'] and 'intrinsics' in example and
          bool(example.get('intrinsics_known', False))):
        truth = _scaled_intrinsics(example, self.protocol, *size)
        self.intrinsics.add({'%s_relative_error' % k: float(v) for k, v in
                             motion_metrics.intrinsics_errors(outputs['intrinsics'][i],
                                                              truth).items()})

  def results(self):
    count = len(self.ratios)
    if not count:
      raise ValueError('No image had valid ground-truth pixels (%d skipped): nothing to score.' %
                       self.skipped)
    ratios = np.array(self.ratios)
    depth = self.depth.result()
    header, row = table_row(depth)
    results = {
        'protocol': self.protocol.name,
        'num_images': count,
        'num_skipped': self.skipped,
        'expected_images': self.protocol.expected_images,
        'median_scaling': self.median_scaling,
        'min_depth': self.protocol.min_depth,
        'max_depth': self.protocol.max_depth,
        'depth': depth,
        'scale_ratio': {
            'mean': float(ratios.mean()),
            'std': float(ratios.std()),
            'median': float(np.median(ratios)),
            'std_over_median': float(np.std(ratios / np.median(ratios))),
        },
        'table_header': header,
        'table_row': row,
    }
    constant = self.constant_depth.result()
    results['constant_depth_abs_rel'] = constant['abs_rel']
    results['abs_rel_over_constant_depth'] = motion_metrics.safe_ratio(depth['abs_rel'],
                                                                       constant['abs_rel'])
    if self.parts:
      results['depth_parts'] = {name: dict(mean.result(), num_images=int(
          max(mean.counts.values(), default=0))) for name, mean in self.parts.items()}
      results['depth_parts_source'] = self.parts_source
    if self.egomotion.counts:
      results['egomotion'] = dict(self.egomotion.result(),
                                  num_pairs=int(max(self.egomotion.counts.values())))
    if self.object_pixels['moving'] or self.object_pixels['static']:
      mean_moving = (self.residual_sums['moving'] / self.object_pixels['moving']
                     if self.object_pixels['moving'] else float('nan'))
      mean_static = (self.residual_sums['static'] / self.object_pixels['static']
                     if self.object_pixels['static'] else float('nan'))
      results['object_motion'] = dict(
          self.object_motion.result(),
          residual_moving_m=mean_moving, residual_static_m=mean_static,
          moving_static_ratio=motion_metrics.safe_ratio(mean_moving, mean_static),
          moving_pixels=self.object_pixels['moving'], static_pixels=self.object_pixels['static'])
    if self.intrinsics.counts:
      results['intrinsics'] = self.intrinsics.result()
    return results


def _example_name(example):
  frame_ids = example.get('frame_ids')
  if frame_ids is None:
    return '?'
  name = frame_ids[MIDDLE]
  return name.decode() if isinstance(name, bytes) else str(name)


def evaluate(checkpoint=None, saved_model=None, dataset=None, data_dir=None, split=None,
             data_path=None, gt_depth_path=None, protocol='kitti_eigen', batch_size=4,
             max_examples=None, median_scaling=True, protocol_overrides=None, output_json=None,
             examples=None, model=None):
  """Evaluates a model on a dataset under a protocol and returns the results dict.

  Args:
    checkpoint: model_dir or checkpoint prefix (exclusive with saved_model).
    saved_model: an exported SavedModel directory.
    dataset: TFDS builder name (with config, e.g. 'synthetic_dynamic_scenes/tiny').
    data_dir: TFDS data_dir.
    split: TFDS split (default: the protocol's, e.g. 'eigen_test' for kitti_eigen).
    data_path: struct2depth list file, instead of dataset.
    gt_depth_path: ground truth for data_path (see `load_gt_depths`).
    protocol: a name in `protocols.PROTOCOLS`.
    batch_size: images per network call.
    max_examples: evaluate only the first examples (the count check then fails).
    median_scaling: scale each prediction to the ground truth's median.
    protocol_overrides: dict of `Protocol` fields to replace (e.g. {'max_depth': 75}).
    output_json: where to write the results (atomically), or None.
    examples: an iterable of example dicts, instead of dataset/data_path (tests).
    model: an `export.LoadedModel`, instead of checkpoint/saved_model.

  Returns:
    The results dict (see the module docstring); `depth` holds the seven metrics.
  """
  proto = protocols_lib.get_protocol(protocol, **(protocol_overrides or {}))
  if batch_size < 1:
    raise ValueError('batch_size must be >= 1, got %r.' % batch_size)
  if model is None:
    model = export_lib.load(checkpoint=checkpoint, saved_model=saved_model)
  sources = [s for s in (dataset, data_path, examples) if s is not None]
  if len(sources) != 1:
    raise ValueError('Give exactly one data source: dataset (TFDS) or data_path (struct2depth '
                     'list).')
  if dataset is not None:
    split = split or proto.default_split
    examples = tfds_examples(dataset, data_dir, split)
    source = {'dataset': dataset, 'data_dir': data_dir, 'split': split}
  elif data_path is not None:
    if not gt_depth_path:
      raise ValueError('data_path needs gt_depth_path: a struct2depth list has no ground '
                       'truth.')
    examples = struct2depth_examples(data_path, gt_depth_path)
    source = {'data_path': data_path, 'gt_depth_path': gt_depth_path}
  else:
    source = {'examples': 'in memory'}

  run = _Evaluation(proto, model, median_scaling)
  batch, seen, start = [], 0, time.time()
  for example in examples:
    if max_examples is not None and seen >= max_examples:
      break
    batch.append(example)
    seen += 1
    if len(batch) == batch_size:
      run.add_batch(batch)
      batch = []
      if seen % (20 * batch_size) == 0:
        logging.info('Evaluated %d images (%.1f images/s).', seen, seen / (time.time() - start))
  if batch:
    run.add_batch(batch)
  if not seen:
    raise ValueError('The data source yielded no examples.')
  results = run.results()
  results['complete'] = (proto.expected_images is None or
                         results['num_images'] + results['num_skipped'] == proto.expected_images)
  if not results['complete']:
    logging.warning('Protocol %s expects %d images, evaluated %d: the numbers are not '
                    'comparable with published ones.', proto.name, proto.expected_images,
                    results['num_images'] + results['num_skipped'])
  results['model'] = model.source
  results['source'] = source
  if output_json:
    write_json(output_json, results)
  return results


def format_results(results):
  """A human-readable summary of `evaluate`'s results."""
  lines = ['Protocol %s: %d images (%d without valid ground truth)%s.' % (
      results['protocol'], results['num_images'], results['num_skipped'],
      '' if results.get('complete', True) else ', NOT the full test set')]
  ratio = results['scale_ratio']
  lines.append('Scaling ratios | mean: %.3f | std: %.3f | med: %.3f | std/med: %.3f' %
               (ratio['mean'], ratio['std'], ratio['median'], ratio['std_over_median']))
  lines += [results['table_header'], results['table_row']]
  if 'constant_depth_abs_rel' in results:
    lines.append('abs_rel %.3f = %.2f x that of a constant depth (median-scaled): %.3f' % (
        results['depth']['abs_rel'], results['abs_rel_over_constant_depth'],
        results['constant_depth_abs_rel']))
  for name, part in sorted(results.get('depth_parts', {}).items()):
    lines.append('  %-7s (%d images): %s' % (name, part['num_images'], table_row(part)[1]))
  for key in ('egomotion', 'object_motion', 'intrinsics'):
    if key in results:
      lines.append('%s: %s' % (key, ', '.join('%s=%.4g' % (k, v) if v is not None else
                                              '%s=nan' % k for k, v in
                                              sorted(_json_safe(results[key]).items()))))
  return '\n'.join(lines)


def define_flags():
  """The command-line flags (defined only when run as a program)."""
  flags.DEFINE_string('checkpoint', None, 'model_dir or checkpoint prefix.')
  flags.DEFINE_string('saved_model', None, 'Exported SavedModel directory (instead of '
                      '--checkpoint).')
  flags.DEFINE_string('dataset', None, 'TFDS triplet builder, e.g. kitti or '
                      'synthetic_dynamic_scenes/tiny.')
  flags.DEFINE_string('data_dir', None, 'TFDS data_dir.')
  flags.DEFINE_string('split', None, "TFDS split; default the protocol's test split.")
  flags.DEFINE_string('data_path', None, 'struct2depth list file (instead of --dataset).')
  flags.DEFINE_string('gt_depth_path', None, 'Ground truth for --data_path (.npy/.npz).')
  flags.DEFINE_enum('protocol', 'kitti_eigen', list(protocols_lib.PROTOCOLS), 'Protocol.')
  flags.DEFINE_integer('batch_size', 4, 'Images per network call.')
  flags.DEFINE_integer('max_examples', None, 'Evaluate only this many examples.')
  flags.DEFINE_bool('median_scaling', True, 'Per-image median scaling (off for metric models).')
  flags.DEFINE_float('max_depth', None, "Override the protocol's depth cap (metres).")
  flags.DEFINE_string('output_json', None, 'Write the results here (atomically).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  args = flags.FLAGS
  overrides = {'max_depth': args.max_depth} if args.max_depth else None
  try:
    results = evaluate(checkpoint=args.checkpoint, saved_model=args.saved_model,
                       dataset=args.dataset, data_dir=args.data_dir, split=args.split,
                       data_path=args.data_path, gt_depth_path=args.gt_depth_path,
                       protocol=args.protocol, batch_size=args.batch_size,
                       max_examples=args.max_examples, median_scaling=args.median_scaling,
                       protocol_overrides=overrides, output_json=args.output_json)
  except ValueError as e:
    print('Error: %s' % e, file=sys.stderr)
    return 1
  print(format_results(results))
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
