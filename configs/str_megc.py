"""Spot-then-recognize (MEGC 2023-2025's STR task) on SAMM Long Videos, LOSO (docs/spotting.md):
the learned spotter (configs/common.py:spotting_config) finds the intervals, STSTNet on their
onset -> apex flow names them, micro and macro (MEGC's 3 classes); scores spotting F1, recognition UF1 / UAR and
STRS (microexp/train/str_protocol.py).

`:synthetic`: the synthetic SAMM-LV layout at 30 fps (CPU-sized; the real set is 200 fps).
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg=None):
  config = common.spotting_config(arg, dataset="samm_lv")
  config.train.task = "str"
  # STSTNet's recipe (configs/ststnet_loso.py) on the 28 x 28 (u, v, magnitude) interval flow.
  config.recognizer = ml_collections.ConfigDict({
      "model": {"name": "ststnet", "kwargs": {"batch_norm": True, "dropout": 0.5},
                "dtype": "float32"},
      "kinds": ("micro", "macro"), "classes": ("negative", "positive", "surprise"),
      "train": {"epochs": 100, "batch_size": 64, "learning_rate": 5e-4, "weight_decay": 0.01,
                "class_balanced": True, "label_smoothing": 0.1}})
  if config.dataset.synthetic:
    config.dataset.synthetic_kwargs.fps = 30.0
    config.recognizer.train.update({"epochs": 30, "batch_size": 16, "learning_rate": 3e-3})
  return config
