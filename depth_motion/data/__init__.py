"""Data: the triplet feature spec, readers, augmentation and the tf.data input pipelines.

features.py     the TFDS triplet FeaturesDict every dataset builder uses.
readers.py      TFDS triplets -> clips -> the model's frame pairs (`to_pairs`).
struct2depth.py the struct2depth folder format (train.txt + PNG strips), read directly.
augmentation.py crop / resize / flip of pairs with consistent intrinsics.
pipeline.py     `make_training_dataset`, `make_eval_dataset`.
"""
