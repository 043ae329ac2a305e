"""Readable reports of a workdir, and a methods table over several workdirs.

    python -m microexp.report WORKDIR                 # -> WORKDIR/report/report.md + PNGs
    python -m microexp.report --compare W1 W2 ...     # prints a markdown methods table
    python -m microexp.report --compare --out=t.md W1 W2

Everything is read from `WORKDIR/results.json` (schema: docs/ARCHITECTURE.md, "Workdir outputs").
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from absl import app, flags  # noqa: E402

from microexp.report import figures as report_figures  # noqa: E402
from microexp.train import workdir as workdir_lib  # noqa: E402
from microexp.train.summary import (METRICS, draw_confusion, metric_cell, metrics_table,  # noqa: E402
                              plot_confusion, train_side_lines)


def load_results(workdir: str | pathlib.Path) -> dict:
  """Reads WORKDIR/results.json; a clear error if it is missing or not the engine's schema."""
  return workdir_lib.read_json(
      pathlib.Path(workdir) / "results.json", required=("class_names", "metrics", "confusion"),
      missing_hint=f"no results.json; is {workdir} a finished training workdir?")


# ----------------------------------------------------------------------------------------------
# Figures.


def per_subject(per_fold: list[dict]) -> dict[str, dict]:
  """Sums each subject's folds over seeds: {subject: {n_test, correct, accuracy, confusion}}."""
  subjects: dict[str, dict] = {}
  for fold in per_fold:
    entry = subjects.setdefault(fold["subject"], {"n_test": 0, "correct": 0.0, "confusion": None})
    entry["n_test"] += int(fold["n_test"])
    entry["correct"] += float(fold["accuracy"]) * int(fold["n_test"])
    if "confusion" in fold:
      c = np.asarray(fold["confusion"], np.int64)
      entry["confusion"] = c if entry["confusion"] is None else entry["confusion"] + c
  for entry in subjects.values():
    entry["accuracy"] = entry["correct"] / max(entry["n_test"], 1)
  return subjects


def plot_fold_confusions(per_fold: list[dict], class_names: Sequence[str],
                         path: str | pathlib.Path) -> pathlib.Path:
  """One small confusion matrix per test subject (summed over seeds), on a grid."""
  subjects = {s: e for s, e in per_subject(per_fold).items() if e["confusion"] is not None}
  cols = min(6, max(1, len(subjects)))
  rows = int(np.ceil(len(subjects) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.1 * rows), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for ax, (subject, entry) in zip(axes.flat, sorted(subjects.items())):
    ax.axis("on")
    draw_confusion(ax, entry["confusion"], class_names,
                    f"{subject}  {entry['accuracy']:.0%} of {entry['n_test']}", small=True)
  fig.suptitle("Confusion per test subject (rows: true, summed over seeds)", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return pathlib.Path(path)


def plot_per_subject(per_fold: list[dict], path: str | pathlib.Path,
                     pooled_accuracy: float | None = None) -> pathlib.Path:
  """Accuracy per test subject (over seeds), with each subject's number of test clips."""
  subjects = sorted(per_subject(per_fold).items())
  names = [s for s, _ in subjects]
  accuracy = [e["accuracy"] for _, e in subjects]
  fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(names) + 1.5), 3.2))
  bars = ax.bar(names, accuracy, color="tab:blue")
  for bar, (_, entry) in zip(bars, subjects):
    ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, str(entry["n_test"]),
            ha="center", va="bottom", fontsize=6)
  if pooled_accuracy is not None:
    ax.axhline(pooled_accuracy, color="tab:red", lw=1, ls="--", label=f"mean {pooled_accuracy:.3f}")
    ax.legend(fontsize=8, loc="lower right")
  ax.set_ylim(0, 1.08)
  ax.set_ylabel("accuracy")
  ax.set_title("Accuracy per test subject (numbers: test clips x seeds)", fontsize=10)
  ax.tick_params(axis="x", labelrotation=90, labelsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return pathlib.Path(path)


# ----------------------------------------------------------------------------------------------
# Markdown.


def _flatten(config: dict, prefix: str = "") -> list[tuple[str, object]]:
  items = []
  for key, value in config.items():
    if isinstance(value, dict):
      items.extend(_flatten(value, f"{prefix}{key}."))
    else:
      items.append((f"{prefix}{key}", value))
  return items


def write_report(workdir: str | pathlib.Path, out: str | pathlib.Path | None = None, *,
                 dataset_figures: bool = True) -> pathlib.Path:
  """Writes report.md and its PNGs (default: WORKDIR/report/); returns the report.md path.

  dataset_figures: also the thesis's Table 1 and Figs 1, 8, 9 from the workdir's dataset
  (`microexp.report.figures`; left out, with a note, when the dataset is not on this machine).
  """
  workdir = pathlib.Path(workdir)
  results = load_results(workdir)
  out = pathlib.Path(out) if out else workdir / "report"
  out.mkdir(parents=True, exist_ok=True)
  class_names = results["class_names"]
  config = results.get("config", {})
  per_fold = results.get("per_fold") or []
  history = results.get("history") or {}

  sections = [f"# Report: {workdir.name}", "",
              f"Model **{config.get('model', {}).get('name', '?')}**, representation "
              f"**{config.get('dataset', {}).get('representation', '?')}**, classes "
              f"{', '.join(class_names)}; protocol "
              f"{config.get('train', {}).get('protocol', '?')}, "
              f"{len(results.get('folds', []))} folds, seeds {results.get('seeds', [])}.", "",
              "## Metrics", "", metrics_table(results), "",
              "UF1: unweighted (macro) F1; UAR: unweighted average recall; both over the pooled "
              "predictions of all folds, per seed.", "",
              "## Confusion (pooled over folds, summed over seeds)", "",
              f"![confusion]({plot_confusion(results['confusion'], class_names, out / 'confusion.png').name})",
              ""]
  side = results.get("train_side")
  if side:
    plot_confusion(side["confusion"], class_names, out / "confusion_train.png",
                   "Training clips, eval mode (pooled)")
    sections += ["## Training side (the thesis's training accuracy, Figs 11 and 15)", "",
                 *train_side_lines(results), "",
                 f"Training accuracy {side['metrics']['accuracy']['mean']:.1%} "
                 f"(test {results['metrics']['accuracy']['mean']:.1%}).", "",
                 "![training confusion](confusion_train.png)", ""]
  if per_fold:
    accuracy = results["metrics"].get("accuracy", {}).get("mean")
    plot_per_subject(per_fold, out / "per_subject.png", accuracy)
    sections += ["## Accuracy per test subject", "", "![per subject](per_subject.png)", ""]
    if any("confusion" in f for f in per_fold):
      plot_fold_confusions(per_fold, class_names, out / "confusion_per_fold.png")
      sections += ["## Confusion per fold", "", "![per fold](confusion_per_fold.png)", ""]
  if history:
    report_figures.plot_curves(history, out / "history.png")
    sections += ["## Training curves", "",
                 "Mean over all seed/fold runs with the min-max band. Test curves are monitoring "
                 "only: nothing computed on a test subject feeds training or selection.", "",
                 "![history](history.png)", ""]
  if dataset_figures:
    sections += report_figures.thesis_sections(config, history, out)
  sections += ["## Config", "", "```"] + [f"{k} = {v!r}" for k, v in _flatten(config)] + ["```", ""]
  path = out / "report.md"
  path.write_text("\n".join(sections))
  return path


def compare(workdirs: Sequence[str | pathlib.Path]) -> str:
  """A markdown methods table, one row per workdir (the thesis's methods table, regenerated)."""
  header = ("| method | model | representation | classes | protocol | folds | seeds | "
            "Accuracy | UF1 | UAR |")
  lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
  for workdir in workdirs:
    results = load_results(workdir)
    config = results.get("config", {})
    dataset, model, train = (config.get(k, {}) for k in ("dataset", "model", "train"))
    representation = dataset.get("representation", "?")
    if representation in ("apex_flow", "flow_sequences") and dataset.get("flow_method"):
      representation += f" ({dataset['flow_method']})"
    cells = [pathlib.Path(workdir).name, model.get("name", "?"), representation,
             str(len(results["class_names"])), train.get("protocol", "?"),
             str(len(results.get("folds", []))), str(len(results.get("seeds", [])))]
    cells += [metric_cell(results["metrics"].get(m)) for m in METRICS]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  FLAGS = flags.FLAGS
  workdirs = list(argv[1:])
  if not workdirs:
    raise app.UsageError("Give a WORKDIR (or --compare W1 W2 ...).")
  if FLAGS.compare:
    table = compare(workdirs)
    print(table)
    if FLAGS.out:
      pathlib.Path(FLAGS.out).write_text(table + "\n")
      print(f"Wrote {FLAGS.out}")
    return
  for workdir in workdirs:
    path = write_report(workdir, FLAGS.out if len(workdirs) == 1 else None)
    print(f"Wrote {path} and its figures in {path.parent}")


if __name__ == "__main__":
  flags.DEFINE_bool("compare", False, "Print a methods table comparing the given workdirs.")
  flags.DEFINE_string("out", None, "Report folder (default WORKDIR/report) or table file (--compare).")
  app.run(main)
