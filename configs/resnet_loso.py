"""The thesis's best method: ResNet50 (ImageNet transfer) on apex optical flow (u, v, magnitude),
leave-one-subject-out.

    main.py --config=configs/resnet_loso.py:classes=5 --workdir=...
    main.py --config=configs/resnet_loso.py:synthetic --workdir=workdirs/demo   (CPU demo)

The real config loads `config.model.kwargs.weights` (Keras ImageNet notop file) and stops with the
weight loader's missing-file error if it is absent. `:synthetic` uses a reduced ResNet (one
bottleneck per stage, width 16, 64x64 input) so the demo runs on a CPU in minutes; without the
weights file it trains from scratch and says so.

`:thesis` is the thesis's M7 (docs/thesis.md): LOSO over the 26 subjects, 100 epochs, 3 classes
(happiness, surprise, repression), predictions pooled over the folds; Keras ResNet50 with ImageNet
weights and the printed head on 224x224 apex flow; vertical and horizontal flips as Keras'
`RandomFlip` (plain image flips), nothing else. Where the thesis is silent, Keras' defaults of its
time (`base.keras_training`): Adam 1e-3, batch 32, a constant rate, no label smoothing, no class
weights, one seed. `:thesis,synthetic` keeps the reduced demo ResNet and its 12 epochs.
"""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes=None, synthetic=False, thesis=False)
  config = common.casme2_config(classes=base.thesis_classes(opts, "3"),
                                synthetic=opts.synthetic)
  config.dataset.image_size = 224
  config.model.name = "resnet50"
  config.model.kwargs.variant = "keras"
  config.model.kwargs.weights = base.RESNET50_KERAS_WEIGHTS
  config.model.kwargs.flow_input = True  # u, v, magnitude -> 0..255 images like ImageNet inputs
  config.model.kwargs.dropout_rate = 0.5
  t = config.train
  t.epochs, t.batch_size, t.learning_rate, t.weight_decay = 30, 16, 3e-4, 0.05
  t.warmup_epochs, t.label_smoothing, t.class_balanced = 2.0, 0.1, True
  t.augment.update({"flip_h": True, "flip_v": False, "crop": 16, "rotation": 8.0, "mixup": 0.2})
  if opts.synthetic:
    common.casme2_synthetic(config, image_size=64, epochs=12)
    config.model.kwargs.stage_sizes = (1, 1, 1, 1)
    config.model.kwargs.width = 16
    # BN momentum 0.9 (torchvision layout): Keras' 0.99 leaves the running statistics near their
    # initial values after the demo's ~60 steps, and evaluation uses them.
    config.model.kwargs.variant = "torchvision"
    t.learning_rate, t.weight_decay, t.batch_size = 2e-3, 1e-4, 16
    t.augment.update({"rotation": 0.0, "mixup": 0.0})
  if opts.thesis:
    base.keras_training(config)
    base.keras_random_flip(config)
    if not opts.synthetic:
      config.dataset.image_size = base.THESIS_IMAGE_SIZE
      t.epochs = 100
  return config
