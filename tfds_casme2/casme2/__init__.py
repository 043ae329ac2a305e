"""CASME II TFDS builder (`casme2_dataset_builder.Builder`); see docs/tfds.md."""
