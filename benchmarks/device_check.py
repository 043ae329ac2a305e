"""Issue 19's GPU checks in one device call: the real-size MEGC ensemble's time, and nothing
slower on a GPU than the tree before issue 19.

Prepared on the CPU machine (docs/training.md, "The GPU check"), run on a lent GPU:

    git worktree add --detach .baseline dc4e05e     # main before issue 19's first change
    mkdir -p .git/info; printf '/.baseline/\n/.whl/\n' >> .git/info/exclude
    python3 -m pip download --no-deps -d .whl ml-collections==1.1.0  # the device image lacks it
    # device `run`, carry [".baseline", ".whl"], timeout_s=480, command:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
      PYTHONPATH=/tmp/site python3 benchmarks/device_check.py --out_dir=$OUT

    python benchmarks/device_check.py --smoke --out_dir=/tmp/dc   # every stage, tiny, on any machine

Stages, in order of value; one starts only while `--deadline_s` leaves it its `need_s`, and runs
with the rest of the deadline as its timeout (its processes killed after it):
- `ensemble`: `protocol.py --modes=parallel` of each member of `configs/ensemble_megc.py` at real
  size (MEGC-shaped synthetic flow, 442 clips, 68 folds): STSTNet and Off-ApexNet for their whole
  150 epochs, HTNet for `--htnet_epochs` of its 800. The ensemble's time is estimated as the sum
  over members of wall + (recipe epochs - run epochs) x epoch time (`estimate_s`; every member's
  startup counted, as the ensemble would not: an upper bound), against issue 19's 15 minutes.
- `ststnet`: `protocol.py --preset=ststnet --folds=8 --epochs=20` fold-parallel (what
  `fold_parallel='auto'` runs on a GPU) on this tree and on `--baseline`, and the PyTorch loop.
- `resnet50`: `protocol.py --preset=resnet50 --folds=4 --epochs=3` fold-parallel on both trees
  (on a GPU the real 224x224 ResNet50).
- `roofline`: `roofline.py` of every model at 1, 8 and 68 folds under each config's 'auto' (on a
  GPU the library convolution everywhere), then the models with convolutions under 'matmul': the
  per-backend choice, measured.
Writes three files under `--out_dir` (the device tool returns at most 8): `device_check.md` (the
report), `device_check.json` (the report with every table) and `device_check_raw.tar.gz` (each
run's log and raw table, kept in `--raw_dir` outside the returned folder), all rewritten after
every stage. Stages the deadline skipped are listed under "Not
run"; a second call runs them alone (`--stages=resnet50,roofline`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET_S = 15 * 60  # issue 19: the real-size ensemble, one seed, 68 folds
# configs/ensemble_megc.py's members as benchmarks/protocol.py presets (their recipes' epochs there).
MEMBERS = ("ststnet", "offapexnet", "htnet")
CONV_MODELS = "flow_cnn,resnet50,convlstm,cnn_lstm,htnet"  # roofline models with convolutions
# requirements.txt's packages (import names) that the device image lacks (the device tool's
# KINDS.md list): the stages must run without them. ml_collections, also missing, is carried.
ABSENT_ON_DEVICE = ("tensorflow", "tensorflow_datasets", "array_record", "openpyxl", "dlib",
                    "face_recognition_models", "apache_beam", "mlcroissant", "importlib_resources")


@dataclasses.dataclass
class Stage:
  """A named check: `need_s` of the deadline to start, `run(ctx)` -> its report entry."""

  name: str
  need_s: float
  run: Callable[["Context"], dict]


def run_command(cmd: list[str], timeout_s: float, log_path: pathlib.Path) -> dict:
  """Runs `cmd` in its own process group (killed whole at the timeout); its output to
  `log_path`. Returns {'rc', 'seconds', 'timed_out', 'tail'}."""
  start = time.perf_counter()
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=_env())
    try:
      rc, timed_out = proc.wait(timeout=max(timeout_s, 1.0)), False
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      rc, timed_out = proc.wait(), True
  tail = log_path.read_text(errors="replace")[-3000:]
  return {"rc": rc, "seconds": time.perf_counter() - start, "timed_out": timed_out, "tail": tail}


def _env() -> dict:
  env = dict(os.environ)
  env.setdefault("PYTHONUNBUFFERED", "1")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


def _produce(ctx, cmd: list[str], out: pathlib.Path, read) -> dict:
  """Runs `cmd`, which writes `out` (removed first: a file of an earlier call is never read as
  this one's); {'table': read(out)} or {'failed': why}, and the command."""
  out.unlink(missing_ok=True)
  r = run_command(cmd, ctx.remaining(), out.with_suffix(".log"))
  result = ({"table": read(out)} if r["rc"] == 0 and out.exists() else {"failed": _failure(r)})
  return {**result, "command": " ".join(cmd[1:])}


def _protocol(ctx, tree: pathlib.Path, tag: str, args: list[str]) -> dict:
  """`tree`'s benchmarks/protocol.py with `args`: its JSON table, or the failure."""
  out = ctx.raw_dir / f"protocol_{tag}.json"
  cmd = [sys.executable, str(tree / "benchmarks" / "protocol.py"), *args, f"--out={out}"]
  return _produce(ctx, cmd, out, lambda path: json.loads(path.read_text()))


def _failure(r: dict) -> str:
  why = "timed out (deadline)" if r["timed_out"] else f"exit {r['rc']}"
  return f"{why} after {r['seconds']:.0f} s; last output:\n{r['tail']}"


def estimate_s(table: dict, recipe_epochs: int) -> float:
  """A member's whole-recipe time from its protocol run: wall + the epochs not run x epoch."""
  row = table["rows"]["parallel"]
  return row["wall_s"] + (recipe_epochs - table["setup"]["epochs"]) * row["epoch_s"]


def stage_ensemble(ctx) -> dict:
  from benchmarks import protocol  # pylint: disable=g-import-not-at-top
  members = {}
  for preset in MEMBERS:
    recipe_epochs = protocol.PRESETS[preset]["epochs"]
    epochs = ctx.htnet_epochs if preset == "htnet" else ctx.epochs(recipe_epochs)
    r = _protocol(ctx, ROOT, f"ensemble_{preset}", [
        f"--preset={preset}", f"--epochs={epochs}", f"--folds={ctx.folds(68)}",
        "--modes=parallel"])
    r["recipe_epochs"] = recipe_epochs
    if "table" in r:
      r["estimate_s"] = estimate_s(r["table"], recipe_epochs)
    members[preset] = r
  done = [m for m in members.values() if "estimate_s" in m]
  total = sum(m["estimate_s"] for m in done) if len(done) == len(MEMBERS) else None
  return {"members": members, "estimate_s": total, "target_s": TARGET_S}


def _compared(ctx, preset: str, args: list[str], torch: bool) -> dict:
  modes = "parallel,torch" if torch else "parallel"
  runs = {"this tree": _protocol(ctx, ROOT, f"{preset}_this", [*args, f"--modes={modes}"])}
  if ctx.baseline is None:
    runs["baseline"] = {"failed": "no --baseline tree (see the module docstring)"}
  else:
    runs["baseline"] = _protocol(ctx, ctx.baseline, f"{preset}_baseline",
                                 [*args, "--modes=parallel"])
  return {"runs": runs}


def stage_ststnet(ctx) -> dict:
  return _compared(ctx, "ststnet", ["--preset=ststnet", f"--folds={ctx.folds(8)}",
                                    f"--epochs={ctx.epochs(20)}"], torch=True)


def stage_resnet50(ctx) -> dict:
  return _compared(ctx, "resnet50", ["--preset=resnet50", f"--folds={ctx.folds(4)}",
                                     f"--epochs={ctx.epochs(3)}"], torch=False)


def stage_roofline(ctx) -> dict:
  tables = {}
  common = (["--models=ststnet", "--folds=1,2", "--steps=1", "--repeats=1"] if ctx.smoke else
            ["--folds=1,8,68", "--steps=4", "--repeats=3", "--budget_s=20"])
  for impl, extra in (("auto", []), ("matmul", [] if ctx.smoke else
                                     [f"--models={CONV_MODELS}", "--folds=1"])):
    out = ctx.raw_dir / f"roofline_{impl}.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "roofline.py"), *common, *extra,
           f"--out={out}"] + ([f"--conv_impl={impl}"] if impl != "auto" else [])
    tables[impl] = _produce(ctx, cmd, out, lambda path: path.read_text())
  return tables


def stage_env(ctx) -> dict:
  probe = ("import jax, flax, optax; d = jax.devices(); print(f'jax {jax.__version__}, flax "
           "{flax.__version__}, optax {optax.__version__}; {jax.default_backend()}: "
           "{len(d)} x {d[0].device_kind}')")
  r = run_command([sys.executable, "-c", probe], ctx.remaining(), ctx.raw_dir / "env.log")
  info = {"python": r["tail"].strip() if r["rc"] == 0 else _failure(r)}
  try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    info["nvidia-smi"] = smi.stdout.strip() or smi.stderr.strip()
  except (OSError, subprocess.TimeoutExpired) as e:
    info["nvidia-smi"] = f"not available ({e.__class__.__name__})"
  return info


STAGES = (Stage("env", 0, stage_env), Stage("ensemble", 150, stage_ensemble),
          Stage("ststnet", 90, stage_ststnet), Stage("resnet50", 120, stage_resnet50),
          Stage("roofline", 90, stage_roofline))


# --- the report -----------------------------------------------------------------------------------


def _row(label: str, run: dict) -> str:
  if "failed" in run:
    return f"| {label} | failed: {run['failed'].splitlines()[0]} | | | | |"
  t = run["table"]
  r = t["rows"]["parallel"]
  return (f"| {label} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | {r['epoch_s']:.4f} | "
          f"{r['uf1']:.3f} | {r['backend']} ({t['setup'].get('device', '')}) |")


def _ratio_line(runs: dict) -> str:
  this, base = runs["this tree"], runs["baseline"]
  if "table" not in this or "table" not in base:
    return "Baseline / this tree: not measured (a run failed; its output is below)."
  a, b = this["table"]["rows"]["parallel"], base["table"]["rows"]["parallel"]
  line = (f"Baseline / this tree: **{b['wall_s'] / a['wall_s']:.2f}x** wall, "
          f"{b['epoch_s'] / a['epoch_s']:.2f}x per epoch (> 1: this tree is faster).")
  torch = this["table"]["rows"].get("torch")
  if torch:
    line += (f" PyTorch loop: wall {torch['wall_s']:.1f} s, epoch {torch['epoch_s']:.4f} s; "
             f"torch / this tree {torch['wall_s'] / a['wall_s']:.2f}x wall.")
  return line


def format_report(report: dict) -> str:
  """The markdown report of the stages run so far."""
  lines = ["# Issue 19's device check", "", f"Started {report['started']}; "
           f"deadline {report['deadline_s']:.0f} s; smoke: {report['smoke']}.", ""]
  stages = report["stages"]
  if "env" in stages:
    lines += [f"- {k}: {v}" for k, v in stages["env"].items()] + [""]
  head = ["| run | wall s | compile s | epoch s | UF1 | backend |", "|---|---:|---:|---:|---:|---|"]
  failures = []
  if "ensemble" in stages:
    e = stages["ensemble"]
    lines += ["## The real-size MEGC ensemble (one seed, fold-parallel)", ""] + head
    for preset, m in e["members"].items():
      lines.append(_row(f"{preset} ({m.get('table', {}).get('setup', {}).get('epochs', '?')} "
                        f"of {m['recipe_epochs']} epochs)", m))
      failures += [(f"ensemble {preset}", m)] if "failed" in m else []
    lines.append("")
    for preset, m in e["members"].items():
      if "estimate_s" in m:
        lines.append(f"- {preset}: whole recipe ~{m['estimate_s']:.0f} s (`{m['command']}`)")
    total = e["estimate_s"]
    lines += ["", "Ensemble estimate: " + (
        "not available (a member failed)" if total is None else
        f"**{total:.0f} s = {total / 60:.1f} min** against {TARGET_S // 60} min "
        f"({'met' if total <= TARGET_S else 'NOT met'}; an upper bound: each member's startup "
        "is counted)."), ""]
  for name, title in (("ststnet", "STSTNet protocol, this tree vs the tree before issue 19"),
                      ("resnet50", "ResNet50 protocol, this tree vs the tree before issue 19")):
    if name in stages:
      runs = stages[name]["runs"]
      lines += [f"## {title}", ""] + head
      lines += [_row(label, run) for label, run in runs.items()]
      lines += ["", _ratio_line(runs), ""]
      lines += [f"- {label}: `{run['command']}`" for label, run in runs.items()
                if "command" in run] + [""]
      failures += [(f"{name} {label}", run) for label, run in runs.items() if "failed" in run]
  if "roofline" in stages:
    lines += ["## Roofline per conv_impl", ""]
    for impl, r in stages["roofline"].items():
      lines += [f"`{r['command']}`", "", r.get("table") or f"failed: {r['failed']}", ""]
  skipped = report.get("skipped", {})
  if skipped:
    lines += ["## Not run", ""] + [f"- {k}: {v}" for k, v in skipped.items()] + [""]
  for name, trace in report.get("errors", {}).items():
    failures.append((f"{name} (the stage itself)", {"failed": trace}))
  if failures:
    lines += ["## Failures", ""]
    for label, run in failures:
      lines += [f"### {label}", "", "```", run["failed"], "```", ""]
  return "\n".join(lines)


# --- the driver ----------------------------------------------------------------------------------


class Context:
  """What the stages share: the output folder, the baseline tree, the deadline, the sizes."""

  def __init__(self, args, start: float):
    self.out_dir = pathlib.Path(args.out_dir)
    self.raw_dir = pathlib.Path(args.raw_dir or tempfile.mkdtemp(prefix="device_check_raw_"))
    self.baseline = pathlib.Path(args.baseline).resolve() if args.baseline else None
    self.smoke = args.smoke
    self.htnet_epochs = 1 if args.smoke else args.htnet_epochs
    self._deadline = start + args.deadline_s

  def remaining(self) -> float:
    return self._deadline - time.perf_counter()

  def folds(self, n: int) -> int:
    return 2 if self.smoke else n

  def epochs(self, n: int) -> int:
    return 1 if self.smoke else n


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out_dir", default=os.environ.get("OUT", "/tmp/device_check"),
                 help="report and raw tables (default: $OUT, the device tool's folder)")
  default_baseline = ROOT / ".baseline"
  p.add_argument("--baseline", default=str(default_baseline) if default_baseline.exists() else "",
                 help="a checkout of the tree to compare with (default: .baseline if present)")
  p.add_argument("--raw_dir", default="",
                 help="each run's log and raw table (default: a new temporary folder)")
  p.add_argument("--stages", default=",".join(s.name for s in STAGES),
                 help="subset of " + ",".join(s.name for s in STAGES))
  p.add_argument("--deadline_s", type=float, default=420.0,
                 help="stop starting stages past this; a running stage is killed at it")
  p.add_argument("--htnet_epochs", type=int, default=20, help="HTNet epochs run (of its 800)")
  p.add_argument("--smoke", action="store_true",
                 help="every stage tiny (2 folds, 1 epoch): checks the script, not the speed")
  return p.parse_args(argv)


def main(argv=None) -> dict:
  """Runs the stages; writes and returns the report {started, deadline_s, smoke, stages,
  skipped, errors}."""
  start = time.perf_counter()
  args = parse_args(argv)
  names = [s.strip() for s in args.stages.split(",") if s.strip()]
  unknown = sorted(set(names) - {s.name for s in STAGES})
  if unknown:
    raise SystemExit(f"--stages: unknown {unknown}; choose from {[s.name for s in STAGES]}.")
  if args.baseline and not (pathlib.Path(args.baseline) / "benchmarks" / "protocol.py").exists():
    raise SystemExit(f"--baseline={args.baseline}: no benchmarks/protocol.py there; make it with "
                     "`git worktree add --detach .baseline dc4e05e`.")
  ctx = Context(args, start)
  ctx.out_dir.mkdir(parents=True, exist_ok=True)
  ctx.raw_dir.mkdir(parents=True, exist_ok=True)
  report = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "deadline_s": args.deadline_s, "smoke": args.smoke, "stages": {}, "skipped": {},
            "errors": {}}
  for stage in STAGES:
    if stage.name not in names:
      continue
    if ctx.remaining() < stage.need_s:
      report["skipped"][stage.name] = (f"{ctx.remaining():.0f} s of the deadline left, the stage "
                                       f"needs ~{stage.need_s:.0f} s")
      continue
    t0 = time.perf_counter()
    print(f"[{t0 - start:6.0f} s] {stage.name} ...", flush=True)
    try:
      report["stages"][stage.name] = stage.run(ctx)
    except Exception:  # pylint: disable=broad-except  (the later stages still run)
      report["errors"][stage.name] = traceback.format_exc()
    print(f"[{time.perf_counter() - start:6.0f} s] {stage.name} done "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    _write(ctx, report)
  _write(ctx, report)
  print(format_report(report), flush=True)
  return report


def _write(ctx: Context, report: dict) -> None:
  """The report, its JSON and the raw files' archive, each through a temporary name, so that a
  killed run never leaves a half-written one."""
  out_dir = ctx.out_dir
  for name, text in (("device_check.md", format_report(report)),
                     ("device_check.json", json.dumps(report, indent=1, default=str))):
    tmp = out_dir / f".{name}.tmp"
    tmp.write_text(text + "\n")
    tmp.replace(out_dir / name)
  tmp = out_dir / ".device_check_raw.tar.gz.tmp"
  with tarfile.open(tmp, "w:gz") as tar:
    tar.add(ctx.raw_dir, arcname="raw")
  tmp.replace(out_dir / "device_check_raw.tar.gz")


if __name__ == "__main__":
  sys.path.insert(0, str(ROOT))  # the repo, when not installed
  main()
