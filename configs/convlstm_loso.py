"""ConvLSTM on grayscale frame windows around the apex, LOSO."""

from __future__ import annotations

from configs import base
from configs import cnn_lstm_padded


def get_config(arg=None):
  base.refuse_thesis(base.parse_arg(arg), "convlstm_loso")
  config = cnn_lstm_padded.sequence_config(arg, mode="apex_window")
  config.model.name = "convlstm"
  config.model.kwargs = type(config.model.kwargs)({"stem_features": (16,),
                                                   "lstm_features": (16, 32), "dropout": 0.5})
  if config.dataset.synthetic:
    config.model.kwargs.update({"stem_features": (8,), "lstm_features": (8,),
                                "dense_features": (16,), "dropout": 0.2})
  return config
