"""Thesis method 3 (M3): CNN-LSTM on whole clips of their own length (masked, no resampling)."""

from __future__ import annotations

from configs import cnn_lstm_padded


def get_config(arg=None):
  return cnn_lstm_padded.sequence_config(arg, mode="ragged")
