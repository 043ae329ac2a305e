"""Checkpoints of a chunk of fold-stacked training (orbax), and finished-chunk results.

Layout: `WORKDIR/checkpoints/<chunk>/<epoch>/` (orbax, the latest kept) holds the fold-stacked
`TrainState` plus host arrays (curves, selection state); `WORKDIR/checkpoints/<chunk>/result.json`
marks a finished chunk. orbax writes to a temporary directory and renames it when complete, and
`result.json` is written the same way, so a run killed at any moment restarts from the last
complete epoch. Restoring always passes an abstract target (shapes, dtypes, shardings): without one
optax states come back as lists (docs/PLATFORM notes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp


def quiet_orbax_logs() -> None:
  """Drops orbax's per-save INFO lines (dozens per checkpoint) from the absl log; keeps warnings."""
  import logging  # pylint: disable=g-import-not-at-top

  def keep(record) -> bool:
    return record.levelno >= logging.WARNING or "orbax" not in record.pathname

  logger = logging.getLogger("absl")
  if not any(getattr(f, "__name__", "") == "keep" for f in logger.filters):
    logger.addFilter(keep)


class ChunkCheckpointer:
  """Saves/restores `{'state': fold-stacked TrainState, 'host': dict of np arrays}` per epoch."""

  def __init__(self, directory: str | os.PathLike, every: int = 1):
    self.directory = Path(directory).absolute()
    self.every = max(int(every), 1)
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, enable_async_checkpointing=False))

  def maybe_save(self, epochs_done: int, tree, *, force: bool = False) -> None:
    if self.manager.latest_step() == epochs_done:
      return
    if force or epochs_done % self.every == 0:
      self.manager.save(epochs_done, args=ocp.args.StandardSave(tree), force=True)
      self.manager.wait_until_finished()

  def restore_latest(self, template):
    """Returns (epochs_done, tree) from the latest checkpoint, or (0, None) when there is none.

    template: a tree like the saved one; only its shapes, dtypes and shardings are used.
    """
    step = self.manager.latest_step()
    if step is None:
      return 0, None
    abstract = jax.tree.map(
        lambda x: x if isinstance(x, np.ndarray) else ocp.utils.to_shape_dtype_struct(x), template)
    tree = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return int(step), tree

  def close(self) -> None:
    self.manager.close()


def write_json_atomic(path: str | os.PathLike, obj) -> None:
  """Writes JSON via a temporary file and a rename, so readers never see half a file."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  with open(tmp, "w") as f:
    json.dump(obj, f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_json(path: str | os.PathLike):
  path = Path(path)
  return json.loads(path.read_text()) if path.exists() else None
