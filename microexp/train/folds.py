"""Evaluation protocols: leave-one-subject-out (LOSO) and a fixed subject split.

A `Fold` names its test, validation and training subjects. Validation subjects are carved out of
the training subjects only, chosen from the subject *names* with a generator seeded by
(seed, fold index): nothing about the test subject (not even its labels) enters the choice.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Fold:
  """One train/val/test partition of the subjects.

  name: the test subject for LOSO, 'split' for the fixed split, 'all' for the final model.
  """

  name: str
  train_subjects: tuple[str, ...]
  val_subjects: tuple[str, ...]
  test_subjects: tuple[str, ...]

  def masks(self, subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """subjects: [N] str -> (train, val, test) bool [N] each."""
    return (np.isin(subjects, self.train_subjects), np.isin(subjects, self.val_subjects),
            np.isin(subjects, self.test_subjects))


def _carve_val(train: list[str], num_val: int, seed: int, index: int) -> tuple[list, list]:
  if num_val <= 0:
    return train, []
  if num_val >= len(train):
    raise ValueError(f"num_val_subjects={num_val} leaves no training subject ({len(train)} "
                     "available); lower config.train.num_val_subjects.")
  rng = np.random.default_rng([seed, index])
  val = sorted(rng.choice(train, size=num_val, replace=False).tolist())
  return [s for s in train if s not in val], val


# Public for the cross-dataset fold makers (protocols.py).
carve_val = _carve_val


def loso_folds(subjects: Sequence[str], *, num_val_subjects: int = 0, seed: int = 0) -> list[Fold]:
  """One fold per subject (sorted), each subject the test set exactly once."""
  unique = sorted(set(map(str, subjects)))
  if len(unique) < 2:
    raise ValueError(f"LOSO needs at least 2 subjects, got {unique}.")
  folds = []
  for i, test in enumerate(unique):
    train, val = _carve_val([s for s in unique if s != test], num_val_subjects, seed, i)
    folds.append(Fold(test, tuple(train), tuple(val), (test,)))
  return folds


def split_fold(subjects: Sequence[str], test_subjects: Sequence[str], *, num_val_subjects: int = 0,
               seed: int = 0) -> Fold:
  """The fixed split: `test_subjects` are tested, the rest train (minus validation)."""
  unique = sorted(set(map(str, subjects)))
  test = sorted(set(map(str, test_subjects)))
  missing = [s for s in test if s not in unique]
  if not test or missing:
    raise ValueError(f"config.train.test_subjects={list(test_subjects)} must name subjects of the "
                     f"dataset; missing {missing}; available: {unique}.")
  train, val = _carve_val([s for s in unique if s not in test], num_val_subjects, seed, 0)
  return Fold("split", tuple(train), tuple(val), tuple(test))


def make_folds(subjects: Sequence[str], train_config, seed: int) -> list[Fold]:
  """Folds for `config.train.protocol` ('loso' | 'split') and `selection` ('last' | 'val')."""
  num_val = int(train_config.num_val_subjects) if train_config.selection == "val" else 0
  if train_config.selection not in ("last", "val"):
    raise ValueError(f"config.train.selection must be 'last' or 'val', got "
                     f"{train_config.selection!r}.")
  if train_config.protocol == "loso":
    return loso_folds(subjects, num_val_subjects=num_val, seed=seed)
  if train_config.protocol == "split":
    return [split_fold(subjects, train_config.test_subjects, num_val_subjects=num_val, seed=seed)]
  raise ValueError(f"config.train.protocol must be 'loso' or 'split', got "
                   f"{train_config.protocol!r}.")


def all_subjects_fold(subjects: Sequence[str]) -> Fold:
  """Every subject trains: the final model for prediction."""
  return Fold("all", tuple(sorted(set(map(str, subjects)))), (), ())
