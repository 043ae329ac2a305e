"""ResNet50 on apex flow with the thesis's fixed subject split (20 train / 6 test subjects).

`config.train.test_subjects` lists the six test subjects (default: sub21..sub26; set yours with
`--config.train.test_subjects='("sub01", ...)'`). Same recipe as resnet_loso.py.

`:thesis` is the thesis's M6 (docs/thesis.md): the 20/6 split, Keras ResNet50 with ImageNet
weights and the printed head, vertical and horizontal flips as Keras' `RandomFlip`; 3 classes
(60% in the thesis; `classes=thesis5` for its 51% five-class run). Where the thesis is silent,
Keras' defaults of its time (Adam 1e-3, batch 32, a constant rate, no label smoothing, no class
weights, one seed); epochs stay resnet_loso's (30; M7's 100 are LOSO's).
"""

from __future__ import annotations

from configs import base
from configs import resnet_loso


def get_config(arg=None):
  config = resnet_loso.get_config(arg)
  config.train.protocol = "split"
  opts = base.parse_arg(arg, classes=None, synthetic=False, thesis=False)  # as resnet_loso's
  if opts.thesis and not opts.synthetic:
    config.train.epochs = 30  # resnet_loso's own: the thesis states 100 epochs for M7 only
  return config
