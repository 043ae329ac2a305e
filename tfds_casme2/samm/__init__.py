"""SAMM TFDS builder (`samm_dataset_builder.Builder`); see docs/tfds.md."""
