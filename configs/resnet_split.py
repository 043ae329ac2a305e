"""ResNet50 on apex flow with the thesis's fixed subject split (20 train / 6 test subjects).

`config.train.test_subjects` lists the six test subjects (default: sub21..sub26; set yours with
`--config.train.test_subjects='["sub01", ...]'`). Same recipe as resnet_loso.py.
"""

from __future__ import annotations

from configs import resnet_loso


def get_config(arg=None):
  config = resnet_loso.get_config(arg)
  config.train.protocol = "split"
  return config
