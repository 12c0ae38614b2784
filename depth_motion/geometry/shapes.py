"""Static shape checks that name the argument and the shapes seen.

The geometry and loss functions take several tensors whose dimensions must
agree (batch, height, width). Checking them in Python on the static shapes
turns a deep TF broadcasting error into a message such as
"translation must have shape [B,3] or [B,H,W,3] with B=2 (from depth), got
shape (3, 3)", and works inside `tf.function` because only static information
is read. Unknown dimensions (None) are accepted.
"""

import tensorflow as tf


def shape_str(tensor):
  """The static shape of `tensor` as a tuple string, e.g. '(2, 6, 8, 1)'."""
  shape = tf.TensorShape(getattr(tensor, 'shape', None))
  if shape.rank is None:
    return '<unknown>'
  return str(tuple(shape.as_list()))


class ShapeChecker:
  """Checks tensors against layouts such as 'B,H,W,3' with shared symbols.

  A symbol (a non-numeric token such as B, H, W) is bound by the first tensor
  that has a known value for it; later tensors must agree. Numeric tokens
  must match exactly.
  """

  def __init__(self):
    self._dims = {}

  def dim(self, symbol):
    """The value bound to `symbol`, or None."""
    entry = self._dims.get(symbol)
    return entry[0] if entry else None

  def check(self, name, tensor, *layouts):
    """Checks `tensor` against one of `layouts`; returns the matching layout.

    Args:
      name: argument name used in error messages.
      tensor: a tensor (or anything with a `.shape`).
      *layouts: layout strings, alternatives of different ranks.

    Returns:
      The layout string that matched (the first one of the tensor's rank), or
      None when the rank is unknown.

    Raises:
      ValueError: wrong rank or a dimension that contradicts the layout or an
        earlier tensor.
    """
    shape = tf.TensorShape(tensor.shape)
    expected = ' or '.join('[%s]' % layout for layout in layouts)
    if shape.rank is None:
      return None
    parsed = [layout.split(',') for layout in layouts]
    candidates = [p for p in parsed if len(p) == shape.rank]
    if not candidates:
      ranks = sorted({len(p) for p in parsed})
      raise ValueError('%s must have rank %s %s, got shape %s.' % (
          name, ' or '.join(str(r) for r in ranks), expected, shape_str(tensor)))
    layout = candidates[0]
    dims = shape.as_list()
    new_bindings = {}
    for symbol, value in zip(layout, dims):
      symbol = symbol.strip()
      if value is None:
        continue
      if symbol.isdigit():
        if value != int(symbol):
          raise ValueError('%s must have shape %s, got shape %s.' % (
              name, expected, shape_str(tensor)))
        continue
      bound = self._dims.get(symbol) or new_bindings.get(symbol)
      if bound is not None and bound[0] != value:
        raise ValueError('%s must have shape %s with %s=%d (from %s), got shape %s.' % (
            name, expected, symbol, bound[0], bound[1], shape_str(tensor)))
      if bound is None:
        new_bindings[symbol] = (value, name)
    self._dims.update(new_bindings)
    return ','.join(s.strip() for s in layout)


def check_same_shape(name_a, tensor_a, name_b, tensor_b):
  """Raises ValueError unless the static shapes of two tensors are compatible."""
  if not tf.TensorShape(tensor_a.shape).is_compatible_with(tf.TensorShape(tensor_b.shape)):
    raise ValueError('%s and %s must have the same shape, got %s and %s.' % (
        name_a, name_b, shape_str(tensor_a), shape_str(tensor_b)))
