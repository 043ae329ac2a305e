"""Thesis method 1 (M1): CNN-LSTM on whole grayscale clips padded to a fixed length, LOSO.

`:thesis` (docs/thesis.md): whole clips padded to the longest clip found (141 frames on the real
CASME II; computed from the data) by repeating the last frame, fed unmasked, 224x224 RGB frames, 7
classes, the 20/6 subject split, no augmentation. Where the thesis is silent, Keras' defaults of
its time (`base.keras_training`): Adam 1e-3, batch 32, a constant rate, no label smoothing, no
class weights, one seed; epochs stay ours.
"""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes=None, synthetic=False, thesis=False)
  config = common.sequence_config(classes=base.thesis_classes(opts, "7"),
                                  synthetic=opts.synthetic, mode="pad", length_synthetic=12)
  # M1 feeds the zero padding frames to the CNN-LSTM (no mask); M3 (ragged) masks them. Zeros go
  # before the clip, as Keras' pad_sequences (the thesis's tool) puts them by default, so the LSTM
  # reads the real frames last.
  config.dataset.sequence.mask_padding = False
  config.dataset.sequence.padding = "pre"
  if opts.thesis:
    base.thesis_sequences(config)
    # length 0: the longest clip found; padded with copies of the clip's last frame.
    config.dataset.sequence.update({"mode": "pad", "length": 0, "padding": "last_frame"})
    config.train.protocol = "split"
  return config
