"""Thesis method 1 (M1): CNN-LSTM on whole grayscale clips padded to a fixed length, LOSO.

`:thesis` (docs/thesis.md): whole clips padded to the longest clip found (141 frames on the real
CASME II; computed from the data) by repeating the last frame, fed unmasked, 224x224 RGB frames, 7
classes, the 20/6 subject split, no augmentation. Where the thesis is silent, Keras' defaults of
its time (`base.keras_training`): Adam 1e-3, batch 32, a constant rate, no label smoothing, no
class weights, one seed; epochs stay ours.
"""

from __future__ import annotations

from configs import base


def sequence_config(arg, *, mode: str, representation: str = "sequences", grayscale: bool = True,
                    length_synthetic: int | None = None):
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
  if mode == "apex_window" and representation == "sequences":
    config.dataset.sequence.length = 6  # M2: 6 frames around the apex
  if opts.synthetic:
    synthetic_sequences(config, length=length_synthetic)
  return config


def synthetic_sequences(config, *, length: int | None = None):
  """CPU-sized sequence variant (M1-M4, ConvLSTM): short clips, 32x32, a tiny CNN-LSTM.

  The synthetic clips are 6-12 frames (M1 pads them to 12, M2 takes 6 around the apex, M3 pads
  to the longest) with 4x the default synthetic motion, and raw gray frames are taken relative to
  the onset frame: at 32x32 the default motion is ~0.4 px, a ~2 grey-level change next to a
  subject's face, and a frame CNN with global pooling does not see it in CPU-minutes (measured:
  train accuracy at chance). Real configs keep raw frames (`sequence.subtract_onset=False`).
  """
  t = config.train
  base.make_synthetic(config, image_size=32, epochs=25)
  config.dataset.synthetic_kwargs.update({"num_frames": (6, 12), "motion_scale": 0.1})
  config.dataset.sequence.length = length or min(config.dataset.sequence.length, 8)
  if config.dataset.representation == "sequences":
    config.dataset.sequence.subtract_onset = True
  config.model.kwargs.frame_features = (8, 16)
  config.model.kwargs.lstm_features = (16,)
  config.model.kwargs.dense_features = (16,)
  config.model.kwargs.dropout = 0.2
  t.batch_size, t.learning_rate = 8, 3e-3
  t.augment.crop = 2
  t.fold_chunk = 0
  return config


def get_config(arg=None):
  config = sequence_config(arg, mode="pad", length_synthetic=12)
  # M1 feeds the zero padding frames to the CNN-LSTM (no mask); M3 (ragged) masks them. Zeros go
  # before the clip, as Keras' pad_sequences (the thesis's tool) puts them by default, so the LSTM
  # reads the real frames last.
  config.dataset.sequence.mask_padding = False
  config.dataset.sequence.padding = "pre"
  # Mean and max of the frame features over space: a movement in a small part of the face is
  # diluted by the mean alone (layers.global_pool).
  config.model.kwargs.frame_pool = "mean_max"
  opts = base.parse_arg(arg)
  if opts.thesis:
    base.thesis_sequences(config)
    base.thesis_classes(config, opts, "7")
    # length 0: the longest clip found; padded with copies of the clip's last frame.
    config.dataset.sequence.update({"mode": "pad", "length": 0, "padding": "last_frame"})
    config.train.protocol = "split"
  return config
