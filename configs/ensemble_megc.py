"""An ensemble of STSTNet, Off-ApexNet and HTNet on MEGC2019 (per-clip mean of probabilities).

    main.py --config=configs/ensemble_megc.py --workdir=workdirs/ensemble_megc \
        --config.dataset.manual_dir=/path/to/megc2019_flow_release
    main.py --config=configs/ensemble_megc.py:synthetic --workdir=/tmp/ensemble_demo

The engine (microexp/train/ensemble.py) trains each member on the same folds and seeds, each in
`checkpoints/members/<name>/`, and reports the per-clip mean of their probabilities as the run's
figures, each member's own under `results.json['members']` and in summary.md. `:nested` gives
every member the nested-selection grid (configs/common.py:megc_search). No final models: predict
loads one model (`final_seeds=()`; train a member's own config for prediction).

`config.ensemble`:
- `models`: one entry per member, each a `ConfigDict(name, kwargs, train)`: the registered
  model, its keyword arguments, and the `config.train` fields it overrides (its own recipe from
  its own `configs/<name>_megc.py`). Any registered model may be added.
- `combine='mean_probability'`: softmax of each member (each member itself a seed ensemble over
  `config.train.seeds`), averaged per clip with equal weights — weights tuned on the test subjects
  would leak, and equal weights need no tuning.
- `tta.flip_h`: also average each member over the flow-aware horizontal mirror
  (`microexp.train.tta.flip_tta`: mirror the image, negate u).
All members read the same whole-face inputs (`regions='none'`): HTNet crops the fixed mean-face
regions itself (`regions=face_regions.MEAN_FACE_CENTRES`), since one array feeds every member.
"""

from __future__ import annotations

import ml_collections

from configs import base
from configs import htnet_megc
from configs import offapexnet_megc
from configs import ststnet_megc
from microexp.vision import face_regions

_TRAIN_FIELDS = ("learning_rate", "weight_decay", "batch_size", "epochs", "warmup_epochs")


def _member(config: ml_collections.ConfigDict, **kwargs) -> ml_collections.ConfigDict:
  """A member: its model and the training fields of its own config."""
  return ml_collections.ConfigDict({
      "name": config.model.name,
      "kwargs": ml_collections.ConfigDict({**config.model.kwargs.to_dict(), **kwargs}),
      "train": ml_collections.ConfigDict({f: config.train[f] for f in _TRAIN_FIELDS}),
  })


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  base.parse_arg(arg, classes="megc", synthetic=False, nested=False)  # each member reads `arg`
  config = ststnet_megc.get_config(arg)
  config.dataset.regions = "none"
  config.train.final_seeds = ()
  config.ensemble = ml_collections.ConfigDict({
      "models": (
          _member(ststnet_megc.get_config(arg)),
          _member(offapexnet_megc.get_config(arg)),
          _member(htnet_megc.get_config(arg),
                  regions=tuple(map(tuple, face_regions.MEAN_FACE_CENTRES.tolist()))),
      ),
      "combine": "mean_probability",
      "tta": ml_collections.ConfigDict({"flip_h": True}),
  })
  return config
