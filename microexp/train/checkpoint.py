"""Checkpoints of a chunk of fold-stacked training (orbax): on a time budget, asynchronous.

Layout: `WORKDIR/checkpoints/<chunk>/<epoch>/` (orbax, the latest kept) holds the fold-stacked
`TrainState` plus host arrays (curves, selection state); `WORKDIR/checkpoints/<chunk>/result.json`
marks a finished chunk. orbax writes to a temporary directory and renames it when complete, and
`result.json` is written the same way, so a run killed at any moment restarts from the last
complete checkpoint: a `kill -9` loses at most `config.train.checkpoint_every_s` seconds of
training. Saves are asynchronous (orbax copies the arrays to host memory, then writes them in a
background thread while training goes on); SIGTERM / SIGINT save before the process stops
(`StopSignals`). Restoring always passes an abstract target (shapes, dtypes, shardings): without
one optax states come back as lists (docs/PLATFORM notes).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from microexp.train import parallel


def quiet_orbax_logs() -> None:
  """Drops orbax's per-save INFO lines (dozens per checkpoint) from the absl log; keeps warnings."""
  import logging  # pylint: disable=g-import-not-at-top

  def keep(record) -> bool:
    return record.levelno >= logging.WARNING or "orbax" not in record.pathname

  logger = logging.getLogger("absl")
  if not any(getattr(f, "__name__", "") == "keep" for f in logger.filters):
    logger.addFilter(keep)


class ChunkCheckpointer:
  """Saves `{'state': fold-stacked TrainState, 'host': dict of np arrays}` every `every_s` seconds.

  `every_s=0` saves at every `maybe_save` call (every epoch; tests).
  """

  def __init__(self, directory: str | os.PathLike, every_s: float = 120.0):
    self.directory = Path(directory).absolute()
    self.every_s = max(float(every_s), 0.0)
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, enable_async_checkpointing=True),
        item_handlers=ocp.StandardCheckpointHandler())
    self._last = time.monotonic()

  def due(self) -> bool:
    return time.monotonic() - self._last >= self.every_s

  def save(self, epochs_done: int, tree) -> None:
    """Starts an asynchronous save (returns once the arrays are copied off the device)."""
    if self.manager.latest_step() == epochs_done:
      return
    # Host arrays are copied: the loop keeps filling them while orbax writes in the background.
    tree = {"state": tree["state"], "host": jax.tree.map(np.array, tree["host"])}
    self.manager.save(epochs_done, args=ocp.args.StandardSave(tree), force=True)
    self._last = time.monotonic()

  def restore_latest(self, template):
    """Returns (epochs_done, tree) from the latest checkpoint, or (0, None) when there is none.

    template: a tree like the saved one; only its shapes, dtypes and shardings are used. A
    checkpoint that stacks another number of folds (written under another device count, which
    pads the fold axis differently) is refitted to the template's (`_refit_folds`).
    """
    step = self.manager.latest_step()
    if step is None:
      return 0, None
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = [x for _, x in paths]
    stored = {m.name: tuple(m.shape) for m in jax.tree.leaves(
        self.manager.item_metadata(step).tree, is_leaf=lambda m: hasattr(m, "shape"))}
    shapes = [stored.get(".".join(ocp.tree.str_keypath(path)), np.shape(x)) for path, x in paths]
    if any(shape != np.shape(x) for shape, x in zip(shapes, leaves)):
      return int(step), self._refit_folds(step, leaves, treedef, shapes)
    abstract = jax.tree.map(
        lambda x: x if isinstance(x, np.ndarray) else ocp.utils.to_shape_dtype_struct(x), template)
    tree = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return int(step), tree

  def _refit_folds(self, step: int, leaves: list, treedef, shapes: list):
    """The checkpoint at `step` (arrays of `shapes`), each array's fold axis padded with copies of
    its last fold or cut to the length of the template's (`leaves`, `treedef`).

    Padding folds are copies of the chunk's last job (`parallel.pad_folds`) and train exactly as
    it does, so this is the state an uninterrupted run on the new devices would hold. The fold
    axis is the one axis where stored and template shapes differ; anything else is an error."""
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = [np.empty(shape, x.dtype) if isinstance(x, np.ndarray)
                else jax.ShapeDtypeStruct(shape, x.dtype, sharding=local)
                for x, shape in zip(leaves, shapes)]
    restored = jax.tree.leaves(self.manager.restore(
        step, args=ocp.args.StandardRestore(jax.tree.unflatten(treedef, abstract))))
    where = self.directory / str(step)
    out, lengths = [], set()
    for x, shape, value in zip(leaves, shapes, restored):
      axes = [a for a, (old, new) in enumerate(zip(shape, np.shape(x))) if old != new]
      if len(shape) != np.ndim(x) or len(axes) > 1:
        raise ValueError(f"Checkpoint {where} holds an array of shape {shape} where this run has "
                         f"{np.shape(x)}: not a run of this config. Remove {self.directory} to "
                         "train the chunk afresh.")
      value = np.asarray(value)
      if axes:
        a, length = axes[0], np.shape(x)[axes[0]]
        lengths.add((shape[a], length))
        value = np.moveaxis(parallel.pad_folds(np.moveaxis(value, a, 0)[:length], length), 0, a)
      out.append(value if isinstance(x, np.ndarray) else jax.make_array_from_callback(
          value.shape, x.sharding, lambda index, v=value: v[index]))
    if len(lengths) > 1:
      raise ValueError(f"Checkpoint {where} stacks its arrays' folds differently "
                       f"{sorted(lengths)}: not a run of this config. Remove {self.directory}.")
    return jax.tree.unflatten(treedef, out)

  def close(self) -> None:
    """Waits for a save in flight, then releases the manager."""
    self.manager.wait_until_finished()
    self.manager.close()


class StopSignals:
  """Context manager: SIGTERM / SIGINT set `requested` instead of killing the process at once.

  The training loop checks `requested` after each epoch, saves a checkpoint and stops. A second
  signal of the same kind kills as usual. Installed only in the main thread (Python's rule).
  """

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
    self.signals = signals
    self.requested: int | None = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested is not None:  # second signal: the usual behaviour
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      signal.raise_signal(signum)
      return
    self.requested = signum

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}
    return False
