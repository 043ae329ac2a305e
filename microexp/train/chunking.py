"""How many jobs train together: fold-parallel or sequential, and chunks that fit in memory.

- `config.train.fold_parallel`: True (stacked folds), False (one job at a time) or 'auto'. On
  CPU devices, where a stacked chunk runs a fold at a time on each device (`steps.fold_group`),
  'auto' is fold-parallel: each fold runs a sequential job's program, the folds spread over the
  devices. Where stacked folds are vmapped (accelerators, `config.train.fold_group`), it is
  measured at start-up by the engine (one job, and a probe of 2 jobs per device stacked: a
  warm-up epoch each, then up to 3 rounds of an epoch each, alternated; the fastest round per
  job-epoch, `loop.seconds_per_job_epoch`): fold-parallel unless clearly slower
  (`prefer_parallel`). The decision is logged and kept in the workdir
  (`checkpoints/chunking.json`), so a restarted run keeps its chunks.
- `config.train.fold_chunk`: jobs per fold-parallel chunk; 0 = as many as fit in device memory.
  The fit is estimated from XLA's `compiled.memory_analysis()` of the epoch step for trial chunks
  of 1 and 2 jobs (linear: fixed + jobs x per-job bytes) against the device's free memory
  (`device.memory_stats()`, GPU/TPU) or `config.train.memory_budget_gb` (GiB per device; needed
  on CPU, which reports no memory figure: without it a CPU chunk holds every job; the CPU's
  devices share it, each holding its own copy of the data and one fold's temporaries), with a
  `SAFETY` margin.
"""

from __future__ import annotations

import hashlib
import json
import math

import jax
import numpy as np
from absl import logging

from microexp.train import parallel
from microexp.train import steps as steps_lib

SAFETY = 0.8  # use at most this fraction of the memory budget (XLA's estimate is not exact)
# 'auto', where it measures (vmapped folds), keeps fold-parallel unless its probe is more than this
# much slower per job-epoch: the probe times bare epoch calls, not the per-call host work
# (dispatch, the loop's bookkeeping) that a chunk of F stacked jobs pays once for F.
PARALLEL_TOLERANCE = 1.1


def prefer_parallel(seconds_sequential: float, seconds_parallel: float) -> bool:
  """'auto': fold-parallel unless its probe is clearly slower per job-epoch."""
  return seconds_parallel <= PARALLEL_TOLERANCE * seconds_sequential


def parse_fold_parallel(value) -> bool | None:
  """`config.train.fold_parallel` -> True / False, or None for 'auto'."""
  if isinstance(value, bool):
    return value
  if isinstance(value, str) and value.lower() in ("auto", "true", "false"):
    return {"auto": None, "true": True, "false": False}[value.lower()]
  raise ValueError(f"config.train.fold_parallel must be 'auto', True or False, got {value!r}.")


def split(jobs: list, size: int) -> list[list]:
  """Consecutive chunks of `size` jobs (the last may be shorter)."""
  size = max(int(size), 1)
  return [jobs[i:i + size] for i in range(0, len(jobs), size)]


def memory_budget(train_config, device) -> tuple[int | None, str]:
  """(bytes available per device, where the figure comes from); None when unknown."""
  gb = float(train_config.get("memory_budget_gb", 0.0) or 0.0)
  if gb > 0:
    return int(gb * 2**30), "config.train.memory_budget_gb"
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except  (some backends do not implement it)
    stats = None
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), (
        f"{device.device_kind} memory_stats")
  return None, "unknown (no device memory figure; set config.train.memory_budget_gb)"


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), tree)


def epoch_bytes(model, spec: steps_lib.StepSpec, num_jobs: int, data: dict, device) -> int:
  """Peak device bytes of one epoch call for `num_jobs` stacked jobs on one device (XLA's own
  estimate: arguments + outputs - donated aliases + temporaries). Compiles, runs nothing."""
  mesh = parallel.make_mesh(num_jobs, devices=[device])
  steps = steps_lib.make_steps(model, spec, mesh)
  n, k = len(data["labels"]), spec.num_classes
  keys = jax.ShapeDtypeStruct((num_jobs, 2), np.uint32)
  sample_mask = data["mask"][:1] if "mask" in data else None
  state = jax.eval_shape(steps.init, keys, data["inputs"][:1], sample_mask)
  plan = {"key": keys, "train_mask": jax.ShapeDtypeStruct((num_jobs, n), np.bool_),
          "n_train": jax.ShapeDtypeStruct((num_jobs,), np.int32),
          "class_weights": jax.ShapeDtypeStruct((num_jobs, _num_datasets(data), k), np.float32)}
  device_data = _abstract(steps_lib.device_data(data, spec.task))
  m = steps.train_epoch.lower(state, plan, device_data, 0).compile().memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
             + m.temp_size_in_bytes)


def _num_datasets(data: dict) -> int:
  index = data.get("dataset_index")
  return int(np.max(index)) + 1 if index is not None and len(index) else 1


def jobs_that_fit(fixed: int, per_job: int, budget: int, devices: int = 1, *,
                  shared_memory: bool = False) -> int:
  """Largest chunk with fixed + ceil(jobs / devices) * per_job <= SAFETY * budget on each device
  (>= 1); shared_memory (CPU devices, one budget for all): devices * fixed + jobs * per_job."""
  if shared_memory:
    return max(int((SAFETY * budget - devices * fixed) // max(per_job, 1)), 1)
  per_device = int((SAFETY * budget - fixed) // max(per_job, 1))
  return max(per_device, 1) * devices


def fitting_chunk(model, spec, data, train_config, num_jobs: int) -> int:
  """`fold_chunk` if set, else the most jobs that fit (all of them when the budget is unknown)."""
  size = int(train_config.get("fold_chunk", 0) or 0)
  if size > 0:
    return min(size, num_jobs)
  device = jax.devices()[0]
  budget, source = memory_budget(train_config, device)
  if budget is None:
    logging.info("Device memory %s: one chunk of all %d jobs.", source, num_jobs)
    return num_jobs
  one = epoch_bytes(model, spec, 1, data, device)
  two = epoch_bytes(model, spec, 2, data, device)
  per_job, fixed = max(two - one, 1), max(2 * one - two, 0)
  shared = device.platform == "cpu"  # one memory: each device's own data copy and temporaries
  fit = jobs_that_fit(fixed, per_job, budget, jax.device_count(), shared_memory=shared)
  size = min(fit, num_jobs)
  logging.info("Memory: %.2f GiB fixed per device + %.3f GiB per job (XLA memory_analysis), "
               "budget %.2f GiB %s (%s, %.0f%% used): %d job(s) fit, chunks of %d (%d chunk(s)).",
               fixed / 2**30, per_job / 2**30, budget / 2**30,
               "for all devices" if shared else "per device", source, 100 * SAFETY, fit, size,
               math.ceil(num_jobs / size))
  if fit == 1 and fixed + per_job > SAFETY * budget:
    logging.warning("Even one job may not fit in %.2f GiB (estimate %.2f GiB).", budget / 2**30,
                    (fixed + per_job) / 2**30)
  return size


def decision_key(config, num_jobs: int, data: dict) -> str:
  """What the chunking depends on: the steps' config, the model, data shape, devices."""
  blob = json.dumps([json.loads(config.to_json_best_effort())["model"],
                     {k: v for k, v in json.loads(config.to_json_best_effort())["train"].items()
                      if k not in ("stop_after_epochs", "tensorboard", "checkpoint_every_s")},
                     num_jobs, list(np.shape(data["inputs"])), jax.default_backend(),
                     jax.device_count()], sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]
