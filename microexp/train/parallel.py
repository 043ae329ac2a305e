"""Device mesh for fold-parallel training: axes ('fold', 'data').

Folds (stacked models) are split over the 'fold' axis. On accelerators, when a chunk has fewer
folds than devices, the remaining factor becomes a 'data' axis: each fold's batch is split over it
(data parallel within a fold; XLA inserts the gradient and BatchNorm all-reduces). CPU devices
never split a batch (`make_mesh`). The fold axis is padded to a multiple of the 'fold' mesh size
with copies of the last fold whose results are discarded.
Placement uses `jax.make_array_from_callback`, which also works on several hosts when every
process holds the same host array (after `jax.distributed.initialize()`).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


def make_mesh(num_folds: int, devices=None, *, split_batch: bool | None = None) -> Mesh:
  """Mesh of a chunk of `num_folds` stacked folds, built once per (shape, devices) in a process.

  split_batch True (default on accelerators, and on several processes): all devices; fold = the
  largest divisor of the device count <= num_folds, data = the rest (each fold's batch split).
  split_batch False (default on one process's CPU devices, `cpu_devices.py`): they share the cores
  and the memory, so splitting a fold's batch over them only adds collectives. data = 1, and as
  few devices as take the folds in the fewest rounds (68 folds on 2 devices: 2, 34 folds each;
  5 folds on 8: 5 devices, one each).
  """
  devices = tuple(devices if devices is not None else jax.devices())
  n, folds = len(devices), max(num_folds, 1)
  if split_batch is None:
    split_batch = devices[0].platform != "cpu" or jax.process_count() > 1
  if split_batch:
    fold = max(d for d in range(1, n + 1) if n % d == 0 and d <= folds)
    return _mesh(fold, n // fold, devices)
  fold = fewest_devices(folds, n)
  return _mesh(fold, 1, devices[:fold])


def fewest_devices(num_folds: int, num_devices: int) -> int:
  """The fewest of `num_devices` that run `num_folds` folds in the fewest rounds (folds per
  device): the least padding (`padded_folds`) among the fastest meshes."""
  rounds = -(-num_folds // min(num_devices, num_folds))
  return -(-num_folds // rounds)


@functools.lru_cache(maxsize=None)
def _mesh(fold: int, data: int, devices: tuple) -> Mesh:
  return jax.make_mesh((fold, data), ("fold", "data"), axis_types=(AxisType.Auto,) * 2,
                       devices=list(devices))


def padded_folds(num_folds: int, mesh: Mesh) -> int:
  """Fold-axis length after padding to a multiple of the mesh's 'fold' size."""
  size = mesh.shape["fold"]
  return -(-num_folds // size) * size


def pad_folds(x: np.ndarray, length: int) -> np.ndarray:
  """Pads axis 0 to `length` by repeating the last entry (dummy folds)."""
  if x.shape[0] == length:
    return x
  return np.concatenate([x, np.repeat(x[-1:], length - x.shape[0], axis=0)])


def _put(x, sharding):
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def put_folds(tree, mesh: Mesh):
  """Host arrays with a leading fold axis -> device arrays sharded over 'fold'."""
  return jax.tree.map(lambda x: _put(x, NamedSharding(mesh, P("fold"))), tree)


def put_replicated(tree, mesh: Mesh):
  """Host arrays -> device arrays replicated on every device (the resident dataset)."""
  return jax.tree.map(lambda x: _put(x, NamedSharding(mesh, P())), tree)
