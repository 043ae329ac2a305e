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
            max_to_keep=1, create=True, enable_async_checkpointing=True))
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
