"""The contract between the engine and a task (docs/ARCHITECTURE.md, "Adding a task").

A task is a frozen (hashable) dataclass: it is part of `steps.StepSpec`, the key of the compiled
steps. Its methods fall in three groups, by where they run:

host, before training
  check_config(config)            refuses config fields the task cannot serve (ValueError)
  prepare(arrays, config)         loader arrays -> (host data, output names: K strings)
  loss_weight_fn(data)            None (the [D, K] class weights of config.train.class_balanced)
                                  or train_mask [N] -> [K] loss weights of one fold
device, inside the jitted step of one fold (jax; B = batch, K = outputs)
  device_keys                     host data arrays the steps read, besides inputs, mask,
                                  dataset_index (placed on the device once per run)
  targets(data, idx, spec)        [B, K] float32 training targets of the clips idx [B]
  loss(logits, targets, weights)  scalar; weights [B, K] (the clip's row of class_weights)
  correct(logits, data, idx)      scalar: the batch's count of right answers (training accuracy)
  tta_logits(logits_fn, x, is_flow)  flip test-time augmentation, logits [B, K]
host, after each evaluation and at the end
  evaluate(logits, val_idx, test_idx, data, *, select_metric, num_classes, length, n_test)
                                  eval logits [L, M, K] -> selection.Evaluation (losses,
                                  accuracies, the selection score, test probabilities [L, n, K])
  aggregate(job_results, data, output_names, seeds, fold_names)
                                  -> the task's part of results.json (metrics pooled over folds,
                                  per seed, then mean ± std; per fold; predictions; history)
  write_outputs(workdir, results), log_summary(results, workdir)
  train_side                      whether the training-side report (train_eval.py) applies
  final_models                    whether the final all-subject models (predict's) are written
  search_and_ensembles            whether nested selection and ensembles may train it
  output_unit                     what the K outputs are, for the log ('classes', 'AUs')
  trainer                         None (engine.train_and_evaluate trains it on the loader's
                                  arrays) or the module whose run(config, workdir) does (the
                                  long-video tasks: spot_protocol, str_protocol); engine.run
                                  dispatches on it
  timelines                       whether results.json's test videos get timeline pictures
                                  (main.py, predict.timeline.protocol_timelines)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np


class Task(Protocol):
  """One training problem (see the module docstring for the contract)."""

  name: str
  output_unit: str
  device_keys: tuple[str, ...]
  train_side: bool
  final_models: bool
  search_and_ensembles: bool
  trainer: str | None
  timelines: bool

  @classmethod
  def from_config(cls, train_config) -> "Task": ...

  def check_config(self, config) -> None: ...

  def prepare(self, arrays: dict[str, np.ndarray], config) -> tuple[dict, tuple[str, ...]]: ...

  def loss_weight_fn(self, data: dict) -> Callable[[np.ndarray], np.ndarray] | None: ...

  def targets(self, data: dict, idx, spec) -> Any: ...

  def loss(self, logits, targets, weights) -> Any: ...

  def correct(self, logits, data: dict, idx) -> Any: ...

  def tta_logits(self, logits_fn: Callable, x, is_flow: bool) -> Any: ...

  def evaluate(self, logits: np.ndarray, val_idx, test_idx, data: dict, *, select_metric: str,
               num_classes: int, length: int, n_test: int) -> Any: ...

  def aggregate(self, job_results: list[dict], data: dict, output_names: Sequence[str], seeds,
                fold_names) -> dict: ...

  def write_outputs(self, workdir: Path, results: dict) -> None: ...

  def log_summary(self, results: dict, workdir: Path) -> None: ...
