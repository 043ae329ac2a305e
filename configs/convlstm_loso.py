"""ConvLSTM on optical-flow sequences (u, v, magnitude) around the apex, LOSO.

Input: the flow of the onset frame to each of 6 frames around the apex (as M4's input), not raw
frames: flow is what moved, without the face's identity and lighting, which the recurrence
otherwise has to cancel itself. Head: mean and max of the last hidden state over space
(`head_pool='mean_max'`): the hidden state is signed (o * tanh(c)) and a movement in a small part
of the face averages away under the mean alone. Both by principle; on the synthetic set
(`:synthetic`, one 6/2 split fold, 5 classes, 25 epochs) they moved the ConvLSTM from chance
(frames + mean pooling: train accuracy 0.34, test UF1 0.27) to train 0.72 / test UF1 0.66
(docs/training.md).
"""

from __future__ import annotations

import ml_collections

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes="5", synthetic=False)
  config = common.sequence_config(classes=opts.classes, synthetic=opts.synthetic,
                                  mode="apex_window", representation="flow_sequences",
                                  grayscale=False)
  config.dataset.sequence.length = 6
  config.model.name = "convlstm"
  config.model.kwargs = ml_collections.ConfigDict({
      "stem_features": (16,), "lstm_features": (16, 32), "dropout": 0.5, "head_pool": "mean_max"})
  if opts.synthetic:
    config.model.kwargs.update({"stem_features": (8,), "lstm_features": (8,),
                                "dense_features": (16,), "dropout": 0.2})
  return config
