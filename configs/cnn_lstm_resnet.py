"""CNN-LSTM with an ImageNet ResNet50 frame CNN: the thesis's future work, transfer learning on
sequences. M2's input (6 RGB frames around the apex), LOSO.

    main.py --config=configs/cnn_lstm_resnet.py --workdir=... \
        --config.model.kwargs.weights=/path/to/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5

The frame CNN is the Keras ResNet50 (params under `frame_cnn/backbone`), frames scaled to 0..255
and normalised the Keras way ('caffe'). `init` stays pure: the weights at
`config.model.kwargs.weights` are read once on the host (`CNNLSTM.pretrained`) and put under
`frame_cnn/backbone` by the engine (`microexp.models.builder`), as for ResNet50; a missing file
stops the run (synthetic runs train from scratch and say so). The backbone's
BatchNorm computes its statistics over real frames only, so padding never leaks into them.
Small batches of clips (8 x 6 frames = 48 images per step) and a lower learning rate than the
small CNN-LSTM, as usual when fine-tuning ImageNet weights. `:synthetic` uses a reduced ResNet
(one bottleneck per stage, width 8) without weights at 32x32.
"""

from __future__ import annotations

import ml_collections

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes="5", synthetic=False)
  config = common.sequence_config(classes=opts.classes, synthetic=opts.synthetic,
                                  mode="apex_window")
  config.dataset.image_size = 112
  config.dataset.sequence.grayscale = False  # ImageNet weights want RGB
  config.model.kwargs = ml_collections.ConfigDict({
      "frame_cnn": "resnet50", "backbone_kwargs": {"variant": "keras"}, "preprocess": "caffe",
      "lstm_features": (128,), "dense_features": (64,), "dropout": 0.5,
      "weights": base.RESNET50_KERAS_WEIGHTS})
  t = config.train
  t.batch_size, t.learning_rate, t.weight_decay = 8, 1e-4, 1e-4
  if opts.synthetic:
    config.dataset.image_size = 32
    config.model.kwargs.update({
        "backbone_kwargs": {"variant": "torchvision", "stage_sizes": (1, 1, 1, 1), "width": 8},
        "preprocess": "none", "lstm_features": (16,), "dense_features": (16,), "dropout": 0.2})
    config.model.kwargs.weights = None
    t.learning_rate = 3e-3
  return config
