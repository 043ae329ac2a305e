"""Thesis method 4 (M4): CNN-LSTM on sequences of optical flow (u, v, magnitude), LOSO."""

from __future__ import annotations

from configs import cnn_lstm_padded


def get_config(arg=None):
  return cnn_lstm_padded.sequence_config(arg, mode="apex_window", representation="flow_sequences",
                                         grayscale=False)
