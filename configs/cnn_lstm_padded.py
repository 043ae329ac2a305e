"""Thesis method 1 (M1): CNN-LSTM on whole grayscale clips padded to a fixed length, LOSO."""

from __future__ import annotations

from configs import base


def sequence_config(arg, *, mode: str, representation: str = "sequences", grayscale: bool = True):
  """Shared by M1-M4: a CNN-LSTM over frame (or flow) sequences."""
  opts = base.parse_arg(arg)
  config = base.get_config(opts)
  config.dataset.representation = representation
  config.dataset.image_size = 64
  config.dataset.sequence.update({"mode": mode, "length": 32, "grayscale": grayscale})
  config.model.name = "cnn_lstm"
  config.model.kwargs.frame_features = (32, 64, 128)
  config.model.kwargs.lstm_features = (128,)
  config.model.kwargs.dropout = 0.5
  t = config.train
  t.epochs, t.batch_size, t.learning_rate, t.weight_decay = 40, 16, 1e-3, 0.01
  t.augment.update({"flip_h": True, "crop": 4, "rotation": 0.0, "mixup": 0.0})
  t.fold_chunk = 9  # sequences are memory-heavy: 9 (seed, fold) models at a time
  if opts.synthetic:
    base.make_synthetic(config, image_size=32, epochs=6)
    config.model.kwargs.frame_features = (8, 16)
    config.model.kwargs.lstm_features = (16,)
    config.model.kwargs.dense_features = (16,)
    t.augment.crop = 2
    t.fold_chunk = 0
  return config


def get_config(arg=None):
  return sequence_config(arg, mode="pad")
