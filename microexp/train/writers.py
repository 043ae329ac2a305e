"""The TensorBoard curves of a run (results.json, summary.md and figures: each task's writers,
tasks/).

TensorBoard layout mirrors Keras' callback so the thesis's curve names line up:
`tensorboard/seed<s>/<fold>/{train,val,test}/` with scalars `epoch_loss` and
`epoch_categorical_accuracy` at step = epoch (1-based).
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path

CURVES = ("epoch_loss", "epoch_categorical_accuracy")


class CurveWriters:
  """One TensorBoard event file per (run, split), created on first use.

  Written with tensorboard's `RecordWriter` and scalar protos: no TensorFlow import (~4-13 s) and
  tens of microseconds per scalar instead of ~5 ms for TF's eager summary ops (measured with
  benchmarks/bookkeeping.py). The loop writes at its sync points only, a batch of epochs at once;
  the files are complete when `close` returns.
  """

  def __init__(self, logdir: str | Path, enabled: bool = True):
    self.logdir = Path(logdir)
    self.enabled = enabled
    self._writers = {}

  def write(self, run: str, split: str, epoch: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    scalars = {k: float(v) for k, v in scalars.items() if v is not None and math.isfinite(v)}
    if not scalars:
      return
    # pylint: disable=g-import-not-at-top
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    # pylint: enable=g-import-not-at-top

    key = (run, split)
    if key not in self._writers:
      # An event file as tensorboard's EventFileWriter names and starts it (that class would
      # import TensorFlow for its file I/O).
      folder = self.logdir / run / split
      folder.mkdir(parents=True, exist_ok=True)
      f = open(folder / f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}."
                        f"{os.getpid()}.0.microexp", "wb")
      self._writers[key] = (f, RecordWriter(f))
      self._writers[key][1].write(event_pb2.Event(
          wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=k, simple_value=v)
                                         for k, v in scalars.items()])
    self._writers[key][1].write(event_pb2.Event(wall_time=time.time(), step=int(epoch),
                                                summary=summary).SerializeToString())

  def close(self) -> None:
    for f, _ in self._writers.values():
      f.close()
    self._writers = {}
