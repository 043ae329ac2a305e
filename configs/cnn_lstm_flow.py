"""Thesis method 4 (M4): CNN-LSTM on sequences of optical flow (u, v, magnitude), LOSO."""

from __future__ import annotations

from configs import common


def get_config(arg=None):
  return common.sequence_config(arg, mode="apex_window", representation="flow_sequences",
                                grayscale=False)
