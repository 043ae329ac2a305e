"""DFME TFDS builder (`dfme_dataset_builder.Builder`); see docs/tfds.md."""
