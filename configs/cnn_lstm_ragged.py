"""Thesis method 3 (M3): CNN-LSTM on whole clips of their own length (masked, no resampling)."""

from __future__ import annotations

from configs import common


def get_config(arg=None):
  return common.sequence_config(arg, mode="ragged")
