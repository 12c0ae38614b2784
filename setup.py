"""depth_motion: self-supervised monocular depth and motion learning in dynamic scenes (TF2)."""

import setuptools

setuptools.setup(
    name="depth_motion",
    version="0.1.0",
    description=(
        "TensorFlow 2 implementation of 'Unsupervised Monocular Depth Learning in "
        "Dynamic Scenes' (Li et al., CoRL 2020)"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["depth_motion", "depth_motion.*",
                                               "data_prep", "data_prep.*"]),
    package_data={"data_prep": ["splits/*.txt"], "depth_motion": ["py.typed"]},
    install_requires=[
        "tensorflow>=2.16",
        "tensorflow-datasets>=4.9",
        # TFDS 4.9 imports it for builders defined inside packages (ours) but does not
        # declare it.
        "importlib_resources",
        "tensorboard",
        "absl-py",
        "numpy",
        # Decodes users' videos (data_prep.video, depth_motion.infer) and resizes
        # dataset frames exactly as the struct2depth scripts did (OpenCV defaults).
        "opencv-python-headless",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist"],
        # Large datasets through TFDS's Beam support (DirectRunner locally).
        "beam": ["apache-beam>=2.50"],
        # Waymo Open Dataset: install its package WITHOUT its pins, which would
        # downgrade TensorFlow:
        #   pip install --no-deps waymo-open-dataset-tf-2-12-0==1.6.7
    },
)
