"""Randomized layer normalization, the depth network's normaliser (SPEC 2.4).

Each feature map is normalised with its own spatial mean and variance (per
sample and channel, like instance normalisation, with no running statistics).
In training both moments are multiplied by `1 + noise`, noise drawn from a
normal distribution truncated at two standard deviations: Gordon et al. (2019)
found this regularises better than batch normalisation. The noise strength
ramps up over the first steps of training (`layer_norm_noise_stddev`).
"""

import zlib

import keras
import tensorflow as tf

# Largest standard deviation for which 1 + noise, truncated at +-2 sigma, stays
# non-negative; the reference ramps the noise up to it.
MAX_NOISE_STDDEV = 0.5

VARIANCE_EPSILON = 1e-3


def layer_norm_noise_stddev(step, rampup_steps):
  """The noise standard deviation at training step `step`.

  `0.5 * min(step / rampup_steps, 1)**2`: zero at step 0, 0.5 from
  `rampup_steps` on. With no step (None) or `rampup_steps <= 0` the noise is
  0.5 from the start, as in the reference when it has no global step.

  Args:
    step: the global step (a scalar tensor or number), or None.
    rampup_steps: number of steps of the ramp.

  Returns:
    A float32 scalar tensor, or the float 0.5.
  """
  if step is None or rampup_steps <= 0:
    return MAX_NOISE_STDDEV
  ramp = tf.minimum(tf.cast(step, tf.float32) / float(rampup_steps), 1.0)
  return MAX_NOISE_STDDEV * tf.square(ramp)


class RandomizedLayerNorm(keras.layers.Layer):
  """Per-sample, per-channel normalisation over H and W, with noisy moments in training.

  Variables `beta` (zeros) and `gamma` (ones), shape [C]. Called as
  `layer(x, training=..., noise_stddev=...)` on x [N, H, W, C]:

    mean, var = moments of x over H, W              # [N, 1, 1, C]
    training: mean *= 1 + e1, var *= 1 + e2         # e ~ TruncatedNormal(0, sigma), +-2 sigma
    y = gamma * (x - mean) / sqrt(var + 1e-3) + beta

  `noise_stddev` is sigma (a float or scalar tensor, default 0.5); it is ignored
  outside training, where the layer is deterministic. Fresh noise is drawn on
  every call, independently for each sample and channel. With `noise_seed` (an
  int [2] stateless seed, e.g. from the global step) the noise is a pure
  function of the seed and the layer's name, so a run resumed from a
  checkpoint draws exactly what an uninterrupted run would have drawn.
  """

  def build(self, input_shape):
    if len(input_shape) != 4 or input_shape[-1] is None:
      raise ValueError('RandomizedLayerNorm expects inputs [N, H, W, C] with a known C, got '
                       'shape %s.' % (tuple(input_shape),))
    channels = int(input_shape[-1])
    self.beta = self.add_weight(shape=(channels,), initializer='zeros', name='beta')
    self.gamma = self.add_weight(shape=(channels,), initializer='ones', name='gamma')

  def _noise(self, shape, stddev, noise_seed, index, dtype):
    # Drawn in float32 whatever the compute dtype, so mixed precision sees the same noise.
    stddev = tf.cast(stddev, tf.float32)
    if noise_seed is None:
      return tf.cast(tf.random.truncated_normal(shape, stddev=stddev), dtype)
    seed = tf.random.experimental.stateless_fold_in(noise_seed, self._name_hash)
    seed = tf.random.experimental.stateless_fold_in(seed, index)
    return tf.cast(stddev * tf.random.stateless_truncated_normal(shape, seed=seed), dtype)

  @property
  def _name_hash(self):
    return zlib.crc32(self.path.encode('utf-8')) & 0x7fffffff

  def call(self, x, training=False, noise_stddev=MAX_NOISE_STDDEV, noise_seed=None):
    mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    if training:
      mean *= 1.0 + self._noise(tf.shape(mean), noise_stddev, noise_seed, 0, mean.dtype)
      variance *= 1.0 + self._noise(tf.shape(variance), noise_stddev, noise_seed, 1,
                                    variance.dtype)
    return tf.nn.batch_normalization(x, mean, variance, offset=self.beta, scale=self.gamma,
                                     variance_epsilon=VARIANCE_EPSILON)

  def compute_output_shape(self, input_shape):
    return input_shape
