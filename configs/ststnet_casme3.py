"""STSTNet on CAS(ME)^3 part A: 28x28 apex flow (u, v, optical strain), LOSO over its subjects.

    main.py --config=configs/ststnet_casme3.py --workdir=workdirs/ststnet_casme3 \
        --config.dataset.manual_dir=/data/casme3_partA
    main.py --config=configs/ststnet_casme3.py:synthetic --workdir=/tmp/casme3_demo

Classes: the 4 classes of the CAS(ME)^3 paper by default ('casme3_4': negative, positive,
surprise, others); ':classes=7' -> 'casme3_7', ':classes=3' or ':classes=megc' -> 'casme3_3'.
Frames are uncropped: the builder aligns the face on each clip's onset frame with dlib landmarks
(`config.dataset.alignment='landmarks'`, repeated by predict; docs/datasets.md).
"""

from __future__ import annotations

from configs import base
from configs import common

# base.parse_arg's class names -> CAS(ME)^3's subsets.
CLASSES = {None: "casme3_4", "7": "casme3_7", "3": "casme3_3", "megc": "casme3_3"}


def get_config(arg=None):
  opts = base.parse_arg(arg, classes=None, synthetic=False)  # None: CLASSES[None]
  return common.uncropped_config(
      name="casme3", classes=opts.classes, class_sets=CLASSES, synthetic=opts.synthetic,
      synthetic_kwargs=dict(num_subjects=6, clips_per_subject=7, image_size=(96, 80),
                            num_frames=(8, 12), seed=0))
