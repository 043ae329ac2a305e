"""Action units, leave-one-dataset-out on a composite of every dataset (meb's cross-dataset AU
protocol, tvaranka/meb): sigmoid per AU, per-AU F1 and macro-F1 pooled over folds.

    main.py --config=configs/au_lodo.py --workdir=workdirs/au_lodo \
        --config.dataset.members.casme2.manual_dir=/data/CASME2 ...   (every member's copy)
    main.py --config=configs/au_lodo.py:synthetic --workdir=/tmp/au_lodo_demo

A STSTNet-sized model (K = the AUs with >= `config.train.au_min_count` positive clips). SMIC codes
no AU: its clips are left out of the AU task (they stay in the composite). Every clip counts,
'others' included: the emotion classes play no part.
"""

from __future__ import annotations

from configs import base
from configs import common


def get_config(arg=None):
  opts = base.parse_arg(arg, classes="megc", synthetic=False)
  config = common.composite_config(classes=opts.classes, synthetic=opts.synthetic)
  t = config.train
  t.task = "au"
  t.au_min_count = 10
  t.au_pos_weight = True
  t.class_balanced = False  # emotion classes: unused by the AU task
  t.label_smoothing = 0.0  # unused by the AU task
  t.final_seeds = ()  # predict reads emotion models only (docs/training.md)
  if config.dataset.synthetic:
    t.au_min_count = 4
  return config
