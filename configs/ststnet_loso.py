"""STSTNet (Liong et al. 2019) on 28x28 apex flow (u, v, optical strain), LOSO."""

from __future__ import annotations

from configs import base


def get_config(arg=None):
  opts = base.parse_arg(arg)
  base.refuse_thesis(opts, "ststnet_loso")
  config = base.get_config(opts)
  config.dataset.representation = "apex_flow"
  config.dataset.image_size = 28
  config.dataset.third_channel = "strain"
  config.model.name = "ststnet"
  config.model.kwargs.batch_norm = True
  config.model.kwargs.dropout = 0.5
  t = config.train
  t.epochs, t.batch_size, t.learning_rate, t.weight_decay = 100, 64, 5e-4, 0.01
  t.augment.update({"flip_h": True, "crop": 2, "rotation": 8.0, "mixup": 0.2})
  if opts.synthetic:
    base.make_synthetic(config, image_size=28, epochs=15)
    t.batch_size = 16
    t.augment.update({"crop": 2, "rotation": 0.0, "mixup": 0.0})
  return config
