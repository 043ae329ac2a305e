"""Precomputed MEGC2019 flow TFDS builder (`megc2019_flow_dataset_builder.Builder`); see docs/megc.md."""
