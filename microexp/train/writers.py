"""What a run writes: TensorBoard curves, results.json, summary.md, confusion matrices (PNG).

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

import numpy as np

from microexp.train import summary
from microexp.train import workdir as workdir_lib
from microexp.train import summary_sections

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


def summary_markdown(results: dict) -> str:
  """The human-readable summary of results.json."""
  cfg = results["config"]
  model = cfg["model"]["name"]
  if "members" in results:
    model = "ensemble of " + " + ".join(results["members"])
  lines = [f"# {model} on {cfg['dataset']['name']} "
           f"({cfg['dataset']['representation']}, classes {cfg['dataset']['classes']})", "",
           f"Protocol: {cfg['train']['protocol']}, selection: {cfg['train']['selection']}, "
           f"seeds: {results['seeds']}, folds: {len(results['folds'])}, "
           f"synthetic: {cfg['dataset'].get('synthetic', False)}", "",
           summary.metrics_table(results)]
  lines += ["", "Per class (pooled over folds and seeds):", "",
            "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
  for r in results["class_report"]:
    lines.append(f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                 f"{r['support']} |")
  lines += ["", "Confusion (rows true, columns predicted; pooled over folds, summed over seeds):", "",
            "| | " + " | ".join(results["class_names"]) + " |",
            "|---" * (len(results["class_names"]) + 1) + "|"]
  for name, row in zip(results["class_names"], results["confusion"]):
    lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
  side = results.get("train_side")
  if side:
    lines += [""] + summary.train_side_lines(results)
    lines += ["", "Training-side confusion (rows true, columns predicted; summed over folds and "
              "seeds):", "", "| | " + " | ".join(results["class_names"]) + " |",
              "|---" * (len(results["class_names"]) + 1) + "|"]
    for name, row in zip(results["class_names"], side["confusion"]):
      lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
  train_acc = {}
  for f in (side or {}).get("per_fold", []):
    train_acc.setdefault(f["subject"], []).append(f["accuracy"])
  lines += ["", "Per fold accuracy (mean over seeds):", "",
            "| fold | n_test | accuracy |" + (" train accuracy |" if train_acc else ""),
            "|---|---|---|" + ("---|" if train_acc else "")]
  by_fold = {}
  for f in results["per_fold"]:
    by_fold.setdefault(f["subject"], []).append(f)
  for subject, fs in by_fold.items():
    lines.append(f"| {subject} | {fs[0]['n_test']} | "
                 f"{np.mean([f['accuracy'] for f in fs]):.3f} |"
                 + (f" {np.mean(train_acc[subject]):.3f} |" if subject in train_acc else ""))
  if "members" in results:
    lines += [""] + summary_sections.members_markdown(results["members"])
    for name, m in results["members"].items():
      if "search" in m:
        lines += [f"Member {name}:", ""] + summary_sections.search_markdown(m["search"])
  if "search" in results:
    lines += [""] + summary_sections.search_markdown(results["search"])
  lines += ["", f"Wall time: {results.get('wall_time_s', float('nan')):.1f} s", ""]
  return "\n".join(lines)


def write_outputs(workdir: str | Path, results: dict) -> None:
  """results.json, summary.md, confusion.png (pooled over folds, summed over seeds) and, with a
  training side, confusion_train.png."""
  workdir = Path(workdir)
  workdir_lib.write_json_atomic(workdir / "results.json", results)
  (workdir / "summary.md").write_text(summary_markdown(results))
  m = results["metrics"]
  summary.plot_confusion(results["confusion"], results["class_names"], workdir / "confusion.png",
                         f"pooled, {len(results['seeds'])} seed(s): acc "
                         f"{m['accuracy']['mean']:.3f} UF1 {m['uf1']['mean']:.3f} UAR "
                         f"{m['uar']['mean']:.3f}")
  side = results.get("train_side")
  if side:
    t = side["metrics"]
    summary.plot_confusion(side["confusion"], results["class_names"],
                           workdir / "confusion_train.png",
                           f"train (eval mode): acc {t['accuracy']['mean']:.3f} UF1 "
                           f"{t['uf1']['mean']:.3f}")
