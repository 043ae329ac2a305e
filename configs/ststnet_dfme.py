"""STSTNet on DFME: 28x28 apex flow (u, v, optical strain), LOSO inside the official training sheet.

    main.py --config=configs/ststnet_dfme.py --workdir=workdirs/ststnet_dfme \
        --config.dataset.manual_dir=/data/dfme
    main.py --config=configs/ststnet_dfme.py:synthetic --workdir=/tmp/dfme_demo

Classes: DFME's 7 emotions by default ('dfme_7'); ':classes=3' or ':classes=megc' -> 'dfme_3'.
`config.dataset.splits=('train',)`: LOSO over the training sheet's subjects only (the test sheets
are the official train/test protocol's, kept apart; the loader's `split` array names them).
"""

from __future__ import annotations

from configs import base
from configs import common

CLASSES = {None: "dfme_7", "7": "dfme_7", "3": "dfme_3", "megc": "dfme_3"}


def get_config(arg=None):
  opts = base.parse_arg(arg, classes=None, synthetic=False)  # None: CLASSES[None]
  config = common.uncropped_config(
      name="dfme", classes=opts.classes, class_sets=CLASSES, synthetic=opts.synthetic,
      synthetic_kwargs=dict(num_subjects=(6, 2, 2), clips_per_subject=7, image_size=(96, 80),
                            num_frames=(8, 12), seed=0))
  config.dataset.splits = ("train",)
  return config
