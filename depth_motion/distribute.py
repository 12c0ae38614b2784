"""Choosing a `tf.distribute` strategy from the trainer's flags.

`default` is TF's default strategy (one device, no distribution code path),
`one_device` pins to one GPU (or the CPU), `mirrored` replicates over the local
GPUs (or over `cpu_devices` logical CPUs, for tests), `multi_worker_mirrored`
reads the cluster from `TF_CONFIG` as TF defines it, `tpu` connects to `tpu`.

Note: the loss uses batch-wide statistics (the auto-mask threshold, the
optional scale normalisation); under a strategy they are computed per replica
over the per-replica batch, which changes them slightly compared with one
device holding the whole batch.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ('default', 'one_device', 'mirrored', 'multi_worker_mirrored', 'tpu')


def split_cpu(num_devices):
  """Splits the physical CPU into `num_devices` logical devices (before TF initialises)."""
  if num_devices <= 1:
    return
  cpus = tf.config.list_physical_devices('CPU')
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)


def make_strategy(name='default', num_gpus=0, tpu=None, cpu_devices=0):
  """Returns the strategy called `name` (see the module docstring)."""
  if name not in STRATEGIES:
    raise ValueError('Unknown distribution_strategy %r; expected one of %s.' %
                     (name, ', '.join(STRATEGIES)))
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'one_device':
    device = '/gpu:0' if tf.config.list_physical_devices('GPU') else '/cpu:0'
    return tf.distribute.OneDeviceStrategy(device)
  if name == 'mirrored':
    if cpu_devices > 1:
      available = len(tf.config.list_logical_devices('CPU'))
      if available < cpu_devices:
        raise ValueError('cpu_devices=%d but TF has %d logical CPU devices: call '
                         'distribute.split_cpu(%d) before TensorFlow initialises (train.py does '
                         'it for --cpu_devices).' % (cpu_devices, available, cpu_devices))
      return tf.distribute.MirroredStrategy(['/cpu:%d' % i for i in range(cpu_devices)])
    if num_gpus > 0:
      available = len(tf.config.list_physical_devices('GPU'))
      if num_gpus > available:
        raise ValueError('--num_gpus=%d but only %d GPUs are visible.' % (num_gpus, available))
      return tf.distribute.MirroredStrategy(['/gpu:%d' % i for i in range(num_gpus)])
    return tf.distribute.MirroredStrategy()
  if name == 'multi_worker_mirrored':
    if 'TF_CONFIG' not in os.environ:
      raise ValueError('distribution_strategy=multi_worker_mirrored needs the TF_CONFIG '
                       'environment variable (cluster and task), as TF defines it.')
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or '')
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
  """True on the worker that writes checkpoints and summaries."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None:
    return True
  if task_type == 'chief':
    return True
  cluster = json.loads(os.environ.get('TF_CONFIG', '{}')).get('cluster', {})
  return task_type == 'worker' and task_id == 0 and 'chief' not in cluster


def worker_dir(model_dir, strategy):
  """Where this worker writes: model_dir on the chief, a private temp dir elsewhere.

  Every MultiWorkerMirroredStrategy worker must take part in saving; the
  non-chief copies go to a scratch directory that is removed afterwards.
  """
  if is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  return os.path.join(model_dir, 'workertemp_%s_%d' % (resolver.task_type, resolver.task_id))
