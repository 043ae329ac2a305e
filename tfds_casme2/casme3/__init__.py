"""CAS(ME)^3 part A TFDS builder (`casme3_dataset_builder.Builder`); see docs/tfds.md."""
