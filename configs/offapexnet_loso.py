"""OFF-ApexNet (Gan et al. 2019) on 28x28 apex flow (u, v, magnitude), LOSO."""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes="5", synthetic=False)
  config = common.casme2_config(classes=opts.classes, synthetic=opts.synthetic)
  config.dataset.image_size = 28
  config.model.name = "offapexnet"
  if opts.synthetic:
    common.small_casme2(config, image_size=28)
  common.shallow_flow_training(config, synthetic=opts.synthetic)
  if opts.synthetic:
    config.train.augment.crop = 1  # the demo's shifts: 1 px (STSTNet's: 2 px)
  return config
