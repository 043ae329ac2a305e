"""Thesis method 2 (M2): CNN-LSTM on a fixed window of frames around the apex, LOSO.

`:thesis` (docs/thesis.md): 6 frames around the apex, 224x224 RGB, 7 classes (the thesis also ran
`classes=thesis5` and `classes=3`), no augmentation. Where the thesis is silent, Keras' defaults of
its time (`base.keras_training`): Adam 1e-3, batch 32, a constant rate, no label smoothing, no
class weights, one seed; epochs stay ours.
"""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes=None, synthetic=False, thesis=False)
  config = common.sequence_config(classes=base.thesis_classes(opts, "7"),
                                  synthetic=opts.synthetic, mode="apex_window")
  if opts.thesis:
    base.thesis_sequences(config)
  return config
