"""Cross-dataset protocols: leave-one-dataset-out, holdout databases, DFME's official split.

    make_folds(data, train_config, seed)   'loso' | 'split' (folds.py) | 'lodo' | 'holdout' |
                                           'official_split' -> [Fold]

Cross-dataset folds name dataset-qualified subjects ('casme2/sub01', `qualified_subjects`), so two
datasets' subjects never collide; the engine qualifies `data['subject']` before masking
(`qualify`). Validation subjects (selection='val') are carved from the training subjects only,
which here means from the training datasets only: nothing of a test dataset enters the choice.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from microexp import loaders
from microexp.train import folds as folds_lib

CROSS_DATASET = ("lodo", "holdout", "official_split")
PROTOCOLS = ("loso", "split") + CROSS_DATASET
# DFME's official split (its `split` array): train on TRAIN_SPLIT, test on the test sheets.
TRAIN_SPLIT = "train"
TEST_SPLITS = ("testA", "testB")


qualified_subjects = loaders.qualified_subjects  # 'casme2/sub01' (microexp/loaders/__init__.py)


def qualify(data: dict, protocol: str) -> dict:
  """`data` with dataset-qualified `subject` for the cross-dataset protocols (else unchanged)."""
  if protocol not in CROSS_DATASET:
    return data
  return {**data, "subject": qualified_subjects(data["subject"], data["dataset"])}


def _subjects_of(subjects: np.ndarray, keep: np.ndarray) -> list[str]:
  return sorted(set(subjects[keep].tolist()))


def lodo_folds(subjects: Sequence[str], datasets: Sequence[str], *, num_val_subjects: int = 0,
               seed: int = 0) -> list[folds_lib.Fold]:
  """One fold per dataset (sorted): its subjects test, every other dataset's subjects train."""
  subjects = qualified_subjects(subjects, datasets)
  datasets = np.asarray(datasets, str)
  names = sorted(set(datasets.tolist()))
  if len(names) < 2:
    raise ValueError(f"config.train.protocol='lodo' needs at least 2 datasets, got {names}; use "
                     "a composite (config.dataset.name='composite', docs/training.md).")
  folds = []
  for i, name in enumerate(names):
    test = _subjects_of(subjects, datasets == name)
    train, val = folds_lib.carve_val(_subjects_of(subjects, datasets != name), num_val_subjects,
                                     seed, i)
    folds.append(folds_lib.Fold(name, tuple(train), tuple(val), tuple(test)))
  return folds


def _check_datasets(field: str, asked: Sequence[str], available: list[str]) -> list[str]:
  asked = sorted(set(map(str, asked or ())))
  missing = [d for d in asked if d not in available]
  if not asked or missing:
    raise ValueError(f"config.train.{field}={list(asked)} must name datasets of the loaded data; "
                     f"missing {missing}; available: {available}.")
  return asked


def holdout_fold(subjects: Sequence[str], datasets: Sequence[str], train_datasets: Sequence[str],
                 test_datasets: Sequence[str], *, num_val_subjects: int = 0,
                 seed: int = 0) -> folds_lib.Fold:
  """MEGC 2018's holdout-database evaluation: train on `train_datasets`, test on `test_datasets`."""
  subjects = qualified_subjects(subjects, datasets)
  datasets = np.asarray(datasets, str)
  available = sorted(set(datasets.tolist()))
  train_ds = _check_datasets("train_datasets", train_datasets, available)
  test_ds = _check_datasets("test_datasets", test_datasets, available)
  both = sorted(set(train_ds) & set(test_ds))
  if both:
    raise ValueError(f"config.train.train_datasets and test_datasets share {both}; a holdout "
                     "database is never trained on (use 'loso' inside one dataset).")
  train, val = folds_lib.carve_val(_subjects_of(subjects, np.isin(datasets, train_ds)),
                                   num_val_subjects, seed, 0)
  name = "+".join(train_ds) + "->" + "+".join(test_ds)
  return folds_lib.Fold(name, tuple(train), tuple(val),
                        tuple(_subjects_of(subjects, np.isin(datasets, test_ds))))


def official_split_fold(subjects: Sequence[str], datasets: Sequence[str], split: Sequence[str], *,
                        num_val_subjects: int = 0, seed: int = 0) -> folds_lib.Fold:
  """DFME's official split: subjects of split=='train' train, those of testA / testB test."""
  subjects = qualified_subjects(subjects, datasets)
  split = np.asarray(split, str)
  unknown = sorted(set(split.tolist()) - {TRAIN_SPLIT, *TEST_SPLITS})
  if unknown:
    raise ValueError(f"official_split: unknown `split` values {unknown}; expected "
                     f"{[TRAIN_SPLIT, *TEST_SPLITS]}.")
  train = _subjects_of(subjects, split == TRAIN_SPLIT)
  test = _subjects_of(subjects, np.isin(split, TEST_SPLITS))
  if not train or not test:
    raise ValueError(f"official_split needs clips of split 'train' and of {list(TEST_SPLITS)}; "
                     f"got {sorted(set(split.tolist()))}. Load every sheet (leave "
                     "config.dataset.splits unset).")
  both = sorted(set(train) & set(test))
  if both:
    raise ValueError(f"official_split: subjects {both[:5]} have clips in the training and the "
                     "test sheets; a subject-wise split cannot keep them apart.")
  train, val = folds_lib.carve_val(train, num_val_subjects, seed, 0)
  return folds_lib.Fold("official_split", tuple(train), tuple(val), tuple(test))


def make_folds(data: dict, train_config, seed: int) -> list[folds_lib.Fold]:
  """Folds for `config.train.protocol` (PROTOCOLS) over `data` (subject, dataset, split? [N])."""
  tc = train_config
  protocol = tc.protocol
  if protocol not in PROTOCOLS:
    raise ValueError(f"config.train.protocol must be one of {PROTOCOLS}, got {protocol!r}.")
  if protocol not in CROSS_DATASET:
    return folds_lib.make_folds(data["subject"], tc, seed)
  if tc.selection not in ("last", "val"):
    raise ValueError(f"config.train.selection must be 'last' or 'val', got {tc.selection!r}.")
  num_val = int(tc.num_val_subjects) if tc.selection == "val" else 0
  subjects, datasets = data["subject"], data["dataset"]
  if protocol == "lodo":
    return lodo_folds(subjects, datasets, num_val_subjects=num_val, seed=seed)
  if protocol == "holdout":
    return [holdout_fold(subjects, datasets, tc.get("train_datasets") or (),
                         tc.get("test_datasets") or (), num_val_subjects=num_val, seed=seed)]
  if "split" not in data:
    raise ValueError("config.train.protocol='official_split' needs the loader's `split` array "
                     "(DFME: config.dataset.name='dfme').")
  return [official_split_fold(subjects, datasets, data["split"], num_val_subjects=num_val,
                              seed=seed)]
