"""Thesis method 4 (M4): CNN-LSTM on sequences of optical flow (u, v, magnitude), LOSO.

`:thesis` (docs/thesis.md): the flow of every frame against the first, the whole sequence unpadded
(each clip its own length: 'ragged', masked), 224x224, happiness / surprise / repression
(`classes=3`), no augmentation. Where the thesis is silent, Keras' defaults of its time
(`base.keras_training`): Adam 1e-3, batch 32, a constant rate, no label smoothing, no class
weights, one seed; epochs stay ours.
"""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes=None, synthetic=False, thesis=False)
  config = common.sequence_config(classes=base.thesis_classes(opts, "3"),
                                  synthetic=opts.synthetic, mode="apex_window",
                                  representation="flow_sequences", grayscale=False)
  if opts.thesis:
    base.keras_training(config)
    config.model.kwargs.frame_pool = "mean"
    if not opts.synthetic:
      config.dataset.image_size = base.THESIS_IMAGE_SIZE
    config.dataset.sequence.update({"mode": "ragged", "mask_padding": True})
  return config
