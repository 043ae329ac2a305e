"""A run killed with SIGKILL, or stopped with SIGTERM, and restarted with the same command ends
with identical results."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

_REPO = pathlib.Path(__file__).resolve().parents[2]


def _command(workdir, data_dir):
  return [sys.executable, str(_REPO / "main.py"), "--config=configs/ststnet_loso.py:synthetic",
          f"--workdir={workdir}", f"--config.dataset.data_dir={data_dir}",
          "--config.dataset.synthetic_kwargs.num_subjects=4",
          "--config.dataset.synthetic_kwargs.clips_per_subject=6",
          "--config.train.epochs=8", "--config.train.tensorboard=False",
          # Checkpoints after every epoch (default: every 120 s), so that the kill lands between.
          "--config.train.checkpoint_every_s=0",
          # Not 'auto': two fresh runs may measure differently, and the modes agree only to float
          # rounding. (A resumed run keeps its workdir's decision: checkpoints/chunking.json.)
          "--config.train.fold_parallel=False"]


def _epochs_checkpointed(workdir: pathlib.Path) -> int:
  """Completed orbax epochs over all chunks (temporary, half-written directories don't count)."""
  root = workdir / "checkpoints"
  return sum(int(p.name) for p in root.glob("*/*") if p.is_dir() and re.fullmatch(r"\d+", p.name))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """(run(workdir) -> CompletedProcess, env, data_dir, results.json of an uninterrupted run)."""
  tmp_path = tmp_path_factory.mktemp("kill")
  env = dict(os.environ, PYTHONPATH=str(_REPO), JAX_PLATFORMS="cpu")
  data_dir = tmp_path / "data"
  run = lambda workdir: subprocess.run(_command(workdir, data_dir), cwd=_REPO, env=env,
                                       capture_output=True, text=True, timeout=600)
  done = run(tmp_path / "uninterrupted")
  assert done.returncode == 0, done.stderr[-3000:]
  return run, env, data_dir, json.loads((tmp_path / "uninterrupted/results.json").read_text())


def _assert_same(expected, got):
  assert got["metrics"] == expected["metrics"]
  assert got["predictions"] == expected["predictions"]
  assert got["per_fold"] == expected["per_fold"]
  assert got["metrics"]["accuracy"]["mean"] > 0.0


@pytest.mark.slow
def test_sigkill_then_same_command_gives_identical_results(reference, tmp_path):
  run, env, data_dir, expected = reference
  killed_dir = tmp_path / "killed"
  proc = subprocess.Popen(_command(killed_dir, data_dir), cwd=_REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while _epochs_checkpointed(killed_dir) < 11 and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  assert proc.poll() is None, "the run ended before it could be killed; make it longer"
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert not (killed_dir / "results.json").exists()

  resumed = run(killed_dir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resumed after epoch" in resumed.stderr or "already finished" in resumed.stderr

  _assert_same(expected, json.loads((killed_dir / "results.json").read_text()))


@pytest.mark.slow
def test_sigterm_saves_and_exits_then_resumes_identically(reference, tmp_path):
  run, env, data_dir, expected = reference
  workdir = tmp_path / "terminated"
  proc = subprocess.Popen(_command(workdir, data_dir), cwd=_REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while _epochs_checkpointed(workdir) < 11 and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  assert proc.poll() is None, "the run ended before it could be stopped; make it longer"
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  assert "signal 15" in stderr and "rerun the same command to resume" in stderr
  assert not (workdir / "results.json").exists()

  resumed = run(workdir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resumed after epoch" in resumed.stderr or "already finished" in resumed.stderr
  _assert_same(expected, json.loads((workdir / "results.json").read_text()))
