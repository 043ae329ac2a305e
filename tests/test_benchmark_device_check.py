"""benchmarks/device_check.py: the prepared GPU check's estimate, report, deadline and process
handling; one stage end to end on this machine (slow)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time

import pytest

from benchmarks import device_check

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _table(wall, epoch, epochs, *, compile_s=2.0, torch=None):
  rows = {"parallel": dict(wall_s=wall, startup_s=1.0, compile_s=compile_s, train_s=wall - 1,
                           epoch_s=epoch, accuracy=0.9, uf1=0.8, backend="gpu")}
  if torch:
    rows["torch"] = dict(rows["parallel"], wall_s=torch[0], epoch_s=torch[1])
  return {"setup": {"epochs": epochs, "device": "H100"}, "rows": rows}


def test_estimate_adds_the_epochs_not_run():
  assert device_check.estimate_s(_table(30.0, 0.5, 20), 800) == pytest.approx(30.0 + 780 * 0.5)
  assert device_check.estimate_s(_table(30.0, 0.5, 150), 150) == pytest.approx(30.0)


def test_report_states_the_estimate_against_the_target_and_the_ratios():
  members = {p: {"table": _table(60.0, 0.1, 150 if p != "htnet" else 20), "command": f"c {p}",
                 "recipe_epochs": e, "estimate_s": 100.0 * (i + 1)}
             for i, (p, e) in enumerate(zip(device_check.MEMBERS, (150, 150, 800)))}
  report = {"started": "now", "deadline_s": 420, "smoke": False, "skipped": {"roofline": "late"},
            "stages": {
                "ensemble": {"members": members, "estimate_s": 600.0, "target_s": 900},
                "ststnet": {"runs": {
                    "this tree": {"table": _table(10.0, 0.2, 20, torch=(50.0, 2.0)), "command": "a"},
                    "baseline": {"table": _table(25.0, 0.5, 20), "command": "b"}}},
                "resnet50": {"runs": {
                    "this tree": {"table": _table(10.0, 0.2, 3), "command": "a"},
                    "baseline": {"failed": "exit 1 after 3 s; last output:\nTypeError: boom",
                                 "command": "b"}}}}}
  text = device_check.format_report(report)
  assert "**600 s = 10.0 min** against 15 min (met" in text
  assert "htnet (20 of 800 epochs)" in text
  assert "Baseline / this tree: **2.50x** wall, 2.50x per epoch" in text
  assert "torch / this tree 5.00x wall" in text
  assert "Baseline / this tree: not measured" in text  # resnet50's baseline failed
  assert "### resnet50 baseline" in text and "TypeError: boom" in text
  assert "- roofline: late" in text
  report["stages"]["ensemble"]["estimate_s"] = 1200.0
  assert "(NOT met" in device_check.format_report(report)


def test_a_stage_past_the_deadline_is_skipped_and_the_report_still_written(tmp_path):
  report = device_check.main([f"--out_dir={tmp_path}", "--stages=ensemble,roofline",
                              "--deadline_s=0"])
  assert report["stages"] == {} and set(report["skipped"]) == {"ensemble", "roofline"}
  assert "## Not run" in (tmp_path / "device_check.md").read_text()
  assert json.loads((tmp_path / "device_check.json").read_text())["skipped"] == report["skipped"]
  assert not list(tmp_path.glob(".*.tmp"))


def test_bad_arguments_are_named():
  with pytest.raises(SystemExit, match="unknown \\['gpu'\\]"):
    device_check.main(["--stages=env,gpu"])
  with pytest.raises(SystemExit, match="no benchmarks/protocol.py"):
    device_check.main(["--baseline=/nonexistent", "--stages=env"])


def test_a_timed_out_command_is_killed_with_its_children(tmp_path):
  marker = tmp_path / "grandchild.pid"
  script = ("import subprocess, sys, time; "
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(marker)!r}, 'w').write(str(p.pid)); print('started', flush=True); "
            "time.sleep(60)")
  start = time.perf_counter()
  r = device_check.run_command([sys.executable, "-c", script], 3.0, tmp_path / "log")
  assert r["timed_out"] and time.perf_counter() - start < 20
  assert "started" in r["tail"]
  pid = int(marker.read_text())
  for _ in range(50):  # the killed grandchild is reaped by init shortly after
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      break
    time.sleep(0.1)
  else:
    pytest.fail(f"grandchild {pid} survived the timeout")


@pytest.mark.slow  # two protocol runs (2 folds, 1 epoch): ~30 s
def test_smoke_stage_compares_two_trees_without_the_packages_the_device_lacks(tmp_path,
                                                                              monkeypatch):
  site = tmp_path / "site"
  site.mkdir()
  (site / "sitecustomize.py").write_text(  # every process of the stage: as if not installed
      "import sys\n" + "".join(f"sys.modules[{n!r}] = None\n"
                               for n in device_check.ABSENT_ON_DEVICE))
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site),
                                                                  os.environ.get("PYTHONPATH")])))
  out = tmp_path / "out"
  report = device_check.main([f"--out_dir={out}", "--stages=ststnet", "--smoke",
                              f"--baseline={ROOT}"])
  runs = report["stages"]["ststnet"]["runs"]
  for label in ("this tree", "baseline"):
    assert "table" in runs[label], runs[label].get("failed")
    assert runs[label]["table"]["setup"]["folds"] == 2
  assert set(runs["this tree"]["table"]["rows"]) == {"parallel", "torch"}
  text = (out / "device_check.md").read_text()
  # What the device tool returns (at most 8 files): the report, its JSON, the raw runs' archive.
  assert sorted(f.name for f in out.iterdir()) == [
      "device_check.json", "device_check.md", "device_check_raw.tar.gz"]
  with tarfile.open(out / "device_check_raw.tar.gz") as tar:
    names = tar.getnames()
  assert {"raw/protocol_ststnet_this.json", "raw/protocol_ststnet_baseline.log"} <= set(names)
  a = runs["this tree"]["table"]["rows"]["parallel"]["wall_s"]
  b = runs["baseline"]["table"]["rows"]["parallel"]["wall_s"]
  assert f"Baseline / this tree: **{b / a:.2f}x** wall" in text


def test_the_absent_packages_are_really_made_absent(tmp_path):
  """The mechanism the test above relies on: a package set to None cannot be imported."""
  (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['tensorflow'] = None\n")
  env = dict(os.environ, PYTHONPATH=str(tmp_path))
  code = "import importlib.util, sys; print(importlib.util.find_spec('tensorflow')); import tensorflow"
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
  assert proc.returncode != 0 and proc.stdout.strip() == "None"
  assert "ModuleNotFoundError" in proc.stderr or "ImportError" in proc.stderr


def test_a_stage_that_raises_is_reported_and_the_next_still_runs(tmp_path, monkeypatch):
  def boom(ctx):
    raise KeyError("rows")

  ran = []
  stages = (device_check.Stage("env", 0, boom),
            device_check.Stage("ensemble", 0, lambda ctx: ran.append(1) or {
                "members": {}, "estimate_s": None, "target_s": 900}))
  monkeypatch.setattr(device_check, "STAGES", stages)
  report = device_check.main([f"--out_dir={tmp_path}", "--stages=env,ensemble"])
  assert ran == [1] and "ensemble" in report["stages"] and "env" not in report["stages"]
  text = (tmp_path / "device_check.md").read_text()
  assert "### env (the stage itself)" in text and "KeyError: 'rows'" in text
  assert "Ensemble estimate: not available" in text
