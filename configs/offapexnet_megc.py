"""Off-ApexNet on MEGC2019 (u and v streams of the 28x28 onset->apex flow), 68-fold LOSO.

    main.py --config=configs/offapexnet_megc.py[:synthetic] --workdir=... \
        --config.dataset.manual_dir=/path/to/megc2019_flow_release

Same data, protocol, augmentation and seeds as configs/ststnet_megc.py; Off-ApexNet ignores the
strain channel. Its two 1024-wide dense layers overfit 442 clips quickly: lower learning rate,
stronger weight decay.

Recipe choices (issue 11): `configs/common.py:megc_config`.
"""

from __future__ import annotations

import ml_collections

from configs import base
from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  opts = base.parse_arg(arg, classes="megc", synthetic=False, nested=False)
  config = common.megc_config(classes=opts.classes, synthetic=opts.synthetic, nested=opts.nested)
  config.model.name = "offapexnet"
  config.model.kwargs = ml_collections.ConfigDict({"dropout": 0.5})
  config.train.learning_rate = 1e-3
  config.train.weight_decay = 5e-3
  return config
