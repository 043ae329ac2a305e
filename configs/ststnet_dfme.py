"""STSTNet on DFME: 28x28 apex flow (u, v, optical strain), LOSO inside the official training sheet.

    main.py --config=configs/ststnet_dfme.py --workdir=workdirs/ststnet_dfme \
        --config.dataset.manual_dir=/data/dfme
    main.py --config=configs/ststnet_dfme.py:synthetic --workdir=/tmp/dfme_demo

Classes: DFME's 7 emotions by default ('dfme_7'); ':classes=3' or ':classes=megc' -> 'dfme_3'.
`config.dataset.splits=('train',)`: LOSO over the training sheet's subjects only (the test sheets
are the official train/test protocol's, kept apart; the loader's `split` array names them).
"""

from __future__ import annotations

import ml_collections

from configs import base
from configs import common

CLASSES = {None: "dfme_7", "7": "dfme_7", "3": "dfme_3", "megc": "dfme_3"}


def get_config(arg=None):
  opts = base.parse_arg(arg)
  config = base.get_config(opts)
  common.apex_flow_dataset(config, opts, name="dfme", classes=CLASSES, synthetic_kwargs=dict(
      num_subjects=(6, 2, 2), clips_per_subject=7, image_size=(96, 80), num_frames=(8, 12),
      seed=0))
  ds = config.dataset
  ds.splits = ("train",)
  # Uncropped frames: the face is a small part of the frame, and head roll between onset and apex
  # would become flow; dlib landmarks level the eye line, one box per clip (docs/datasets.md).
  # Recorded in model.json: predict aligns its input the same way.
  ds.alignment = "landmarks"
  ds.image_size = 28
  ds.third_channel = "strain"
  config.model.name = "ststnet"
  config.model.kwargs = ml_collections.ConfigDict({"batch_norm": True, "dropout": 0.5})
  t = config.train
  t.epochs, t.batch_size, t.learning_rate, t.weight_decay = 100, 64, 5e-4, 0.01
  t.augment.update({"flip_h": True, "crop": 2, "rotation": 8.0, "mixup": 0.2})
  if opts.synthetic:
    ds.synthetic = True
    t.epochs, t.batch_size, t.warmup_epochs = 15, 16, 1.0
    t.seeds, t.final_seeds = (0,), (0,)
    t.augment.update({"crop": 2, "rotation": 0.0, "mixup": 0.0})
    t.num_val_subjects = 2
  return config
