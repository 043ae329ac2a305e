"""A run killed with SIGKILL and restarted with the same command ends with identical results."""

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
          "--config.train.epochs=8", "--config.train.tensorboard=False"]


def _epochs_checkpointed(workdir: pathlib.Path) -> int:
  """Completed orbax epochs over all chunks (temporary, half-written directories don't count)."""
  root = workdir / "checkpoints"
  return sum(int(p.name) for p in root.glob("*/*") if p.is_dir() and re.fullmatch(r"\d+", p.name))


@pytest.mark.slow
def test_sigkill_then_same_command_gives_identical_results(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(_REPO), JAX_PLATFORMS="cpu")
  data_dir = tmp_path / "data"
  run = lambda workdir: subprocess.run(_command(workdir, data_dir), cwd=_REPO, env=env,
                                       capture_output=True, text=True, timeout=600)
  reference = run(tmp_path / "uninterrupted")
  assert reference.returncode == 0, reference.stderr[-3000:]

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

  expected = json.loads((tmp_path / "uninterrupted" / "results.json").read_text())
  got = json.loads((killed_dir / "results.json").read_text())
  assert got["metrics"] == expected["metrics"]
  assert got["predictions"] == expected["predictions"]
  assert got["per_fold"] == expected["per_fold"]
  assert got["metrics"]["accuracy"]["mean"] > 0.0
