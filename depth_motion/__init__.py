"""depth_motion: self-supervised monocular depth and motion learning in dynamic scenes.

TensorFlow 2 implementation of Li, Gordon, Zhao, Casser, Angelova,
"Unsupervised Monocular Depth Learning in Dynamic Scenes" (CoRL 2020).
"""

__version__ = '0.1.0'
