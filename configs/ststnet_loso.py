"""STSTNet (Liong et al. 2019) on 28x28 apex flow (u, v, optical strain), LOSO."""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes="5", synthetic=False)
  config = common.ststnet(common.casme2_config(classes=opts.classes, synthetic=opts.synthetic))
  config.dataset.image_size = 28
  config.dataset.third_channel = "strain"
  if opts.synthetic:
    common.small_casme2(config, image_size=28)
  return common.shallow_flow_training(config, synthetic=opts.synthetic)
