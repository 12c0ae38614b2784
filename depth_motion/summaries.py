"""TensorBoard summaries of a training step: every loss term, optimisation state, images.

Images are what people look at: the two input frames, the predicted disparity
in the plasma colormap, the residual (object) and total translation fields,
and the depth-proximity weight of the SSIM term.
"""

import tensorflow as tf

from depth_motion import visualization

MAX_IMAGES = 3


def write_scalars(step, scalars):
  for name, value in scalars.items():
    tf.summary.scalar(name, value, step=step)


def image_tensors(features, endpoints, output_endpoints):
  """The tensors to show, computed inside the (distributed) step function."""
  images = {
      'rgb0': features['rgb'][0][:MAX_IMAGES],
      'rgb1': features['rgb'][1][:MAX_IMAGES],
      'residual_translation': endpoints['residual_translation'][0][:MAX_IMAGES],
  }
  disparity = output_endpoints.get('disparity')
  if disparity is not None:
    images['disparity0'] = tf.split(disparity, 2, axis=0)[0][:MAX_IMAGES]
  trans = output_endpoints.get('trans')
  if trans is not None:
    images['total_translation'] = trans[:MAX_IMAGES]
  weight = output_endpoints.get('depth_proximity_weight')
  if weight is not None:
    weight0 = tf.split(weight, 2, axis=0)[0][:MAX_IMAGES]
    if weight0.shape.rank == 3:
      weight0 = weight0[..., tf.newaxis]
    images['depth_proximity_weight'] = weight0
  return images


def write_images(step, images):
  """Writes the tensors of `image_tensors` (NumPy or eager) as image summaries."""
  tf.summary.image('input/rgb0', images['rgb0'], step=step, max_outputs=MAX_IMAGES)
  tf.summary.image('input/rgb1', images['rgb1'], step=step, max_outputs=MAX_IMAGES)
  if 'disparity0' in images:
    tf.summary.image('depth/disparity_plasma', visualization.colorize_disparity(
        images['disparity0']), step=step, max_outputs=MAX_IMAGES)
  tf.summary.image('motion/residual_translation', visualization.colorize_translation(
      images['residual_translation']), step=step, max_outputs=MAX_IMAGES)
  if 'total_translation' in images:
    tf.summary.image('motion/total_translation', visualization.colorize_translation(
        images['total_translation']), step=step, max_outputs=MAX_IMAGES)
  if 'depth_proximity_weight' in images:
    tf.summary.image('loss/depth_proximity_weight',
                     tf.clip_by_value(images['depth_proximity_weight'], 0.0, 1.0),
                     step=step, max_outputs=MAX_IMAGES)
