"""Thesis method 2 (M2): CNN-LSTM on a fixed window of frames around the apex, LOSO."""

from __future__ import annotations

from configs import common


def get_config(arg=None):
  return common.sequence_config(arg, mode="apex_window")
