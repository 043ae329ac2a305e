"""STSTNet leave-one-dataset-out on a composite of every dataset (MEGC's 3 classes).

    main.py --config=configs/ststnet_lodo.py --workdir=workdirs/ststnet_lodo \
        --config.dataset.members.casme2.manual_dir=/data/CASME2 \
        --config.dataset.members.samm.manual_dir=/data/SAMM ...   (every member's copy)
    main.py --config=configs/ststnet_lodo.py:synthetic --workdir=/tmp/lodo_demo

Members: CASME II, CAS(ME)^3, DFME, SAMM, SMIC-HS (`configs.common.COMPOSITE_MEMBERS`), 28x28
TV-L1 apex flow + optical strain; each fold trains on four datasets and tests on the fifth
(per-dataset and pooled metrics). `--config.train.protocol=holdout` with
`--config.train.train_datasets='("casme2","samm")' --config.train.test_datasets='("smic",)'`
is MEGC 2018's holdout-database evaluation (docs/training.md).
"""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes="megc", synthetic=False)
  return common.composite_config(classes=opts.classes, synthetic=opts.synthetic)
