"""STSTNet on MEGC2019: 68-fold LOSO (442 clips of CASME II + SAMM + SMIC-HS), 3 classes.

    main.py --config=configs/ststnet_megc.py --workdir=workdirs/ststnet_megc \
        --config.dataset.manual_dir=/path/to/megc2019_flow_release
    main.py --config=configs/ststnet_megc.py:synthetic[,nested] --workdir=/tmp/megc_demo

Input: the precomputed 28x28 onset->apex flow (u, v, optical strain; docs/megc.md), or the
composite computed from frames with `--config.dataset.name=megc2019` (manual_dir holding CASME2/,
SAMM/, SMIC/). Defaults aimed at numbers that transfer: class-balanced loss (negative is 57% of the
clips), label smoothing, flow-aware augmentation (a horizontal flip negates u; small shifts and
rotations; mixup), a fixed schedule (no test-subject model selection), five seeds and their
ensemble. `:synthetic` runs the same protocol on a small synthetic release (11 subjects) on CPU.

Recipe choices (issue 11): `configs/common.py:megc_config`.
"""

from __future__ import annotations

import ml_collections

from configs import base
from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  opts = base.parse_arg(arg, classes="megc", synthetic=False, nested=False)
  config = common.megc_config(classes=opts.classes, synthetic=opts.synthetic, nested=opts.nested)
  return common.ststnet(config)
