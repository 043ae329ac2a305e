"""Thesis method 1 (M1): CNN-LSTM on whole grayscale clips padded to a fixed length, LOSO."""

from __future__ import annotations

from configs import common


def get_config(arg=None):
  config = common.sequence_config(arg, mode="pad", length_synthetic=12)
  # M1 feeds the zero padding frames to the CNN-LSTM (no mask); M3 (ragged) masks them. Zeros go
  # before the clip, as Keras' pad_sequences (the thesis's tool) puts them by default, so the LSTM
  # reads the real frames last.
  config.dataset.sequence.mask_padding = False
  config.dataset.sequence.padding = "pre"
  return config
