"""Turning depth and motion fields into pictures (TensorBoard, `infer` PNGs).

The plasma colormap is matplotlib's, as a degree-6 polynomial fit per channel
(max error about 1/255), so neither TF graphs nor the CLI need matplotlib.
"""

import numpy as np
import tensorflow as tf

_PLASMA_COEFFS = np.array([
    [0.05873234392399702, 0.02333670892565664, 0.5433401826748754],
    [2.176514634195958, 0.2383834171260182, 0.7539604599784036],
    [-2.689460476458034, -7.455851135738909, 3.110799939717086],
    [6.130348345893603, 42.3461881477227, -28.51885465332158],
    [-11.10743619062271, -82.66631109428045, 60.13984767418263],
    [10.02306557647065, 71.41361770095349, -54.07218655560067],
    [-3.658713842777788, -22.93153465461149, 18.19190778539828],
], dtype=np.float32)


def plasma(values):
  """Maps values in [0, 1] (any shape, TF or NumPy) to RGB in [0, 1], shape [..., 3]."""
  if isinstance(values, np.ndarray) or np.isscalar(values):
    t = np.clip(np.asarray(values, np.float32), 0.0, 1.0)[..., None]
    powers = np.stack([t[..., 0] ** i for i in range(7)], axis=-1)
    return np.clip(powers @ _PLASMA_COEFFS, 0.0, 1.0)
  t = tf.clip_by_value(tf.cast(values, tf.float32), 0.0, 1.0)[..., tf.newaxis]
  powers = tf.concat([t ** i for i in range(7)], axis=-1)
  return tf.clip_by_value(tf.tensordot(powers, tf.constant(_PLASMA_COEFFS), axes=1), 0.0, 1.0)


def colorize_disparity(disparity):
  """[B,H,W,1] or [B,H,W] disparity -> [B,H,W,3] plasma, 0 to each image's max (as the reference)."""
  disparity = tf.convert_to_tensor(disparity, tf.float32)
  if disparity.shape.rank == 4:
    disparity = disparity[..., 0]
  peak = tf.reduce_max(disparity, axis=[1, 2], keepdims=True)
  return plasma(tf.math.divide_no_nan(disparity, peak))


def colorize_translation(field):
  """[B,H,W,3] translation field -> RGB with x, y, z as red, green, blue around grey.

  Each image is scaled by its largest absolute component, so a static scene is
  uniform grey and a moving object stands out in colour.
  """
  field = tf.convert_to_tensor(field, tf.float32)
  scale = tf.reduce_max(tf.abs(field), axis=[1, 2, 3], keepdims=True)
  return 0.5 + 0.5 * tf.math.divide_no_nan(field, scale)


def to_uint8(image):
  """[..., 3] float image in [0, 1] -> uint8 (NumPy)."""
  return np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
