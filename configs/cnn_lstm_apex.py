"""Thesis method 2 (M2): CNN-LSTM on a fixed window of frames around the apex, LOSO."""

from __future__ import annotations

from configs import cnn_lstm_padded


def get_config(arg=None):
  return cnn_lstm_padded.sequence_config(arg, mode="apex_window")
