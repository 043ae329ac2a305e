"""SMIC-HS TFDS builder (`smic_dataset_builder.Builder`); see docs/tfds.md."""
