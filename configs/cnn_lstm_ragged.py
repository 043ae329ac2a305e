"""Thesis method 3 (M3): CNN-LSTM on whole clips of their own length (masked, no resampling).

`:thesis` (docs/thesis.md): whole clips, each of its own length (padded to the longest found and
masked, so the padding never changes the logits), 224x224 RGB, 7 classes (also run with
`classes=thesis5`), no augmentation. Where the thesis is silent, Keras' defaults of its time
(`base.keras_training`): Adam 1e-3, batch 32, a constant rate, no label smoothing, no class
weights, one seed; epochs stay ours.
"""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes=None, synthetic=False, thesis=False)
  config = common.sequence_config(classes=base.thesis_classes(opts, "7"),
                                  synthetic=opts.synthetic, mode="ragged")
  if opts.thesis:
    base.thesis_sequences(config)
  return config
