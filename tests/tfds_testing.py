"""Writes in-memory triplets as a prepared TFDS dataset, for the data tests."""

import tensorflow_datasets as tfds

from depth_motion.data import features as features_lib


def build_tfds(data_dir, examples, name='test_triplets', num_shards=None):
  """Writes `examples` as a prepared TFDS triplet dataset; returns its version directory."""
  optional = {'with_' + key: key in examples[0]
              for key in ('masks', 'depth', 'egomotion', 'object_translation')}
  builder_name = name

  class TestTriplets(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    name = builder_name
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self,
                                   features=features_lib.triplet_features(**optional))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples()}

    def _generate_examples(self):
      for i, example in enumerate(examples):
        yield '%05d' % i, example

  builder = TestTriplets(data_dir=str(data_dir))
  config = tfds.download.DownloadConfig(num_shards=num_shards) if num_shards else None
  builder.download_and_prepare(download_config=config)
  return builder.data_dir
