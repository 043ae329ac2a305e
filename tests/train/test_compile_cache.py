"""The persistent compilation cache: where it lives, and that a program compiled again is read back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from microexp.train import compile_cache

ROOT = Path(__file__).resolve().parents[2]


def test_directory_follows_flag_then_environment_then_default(monkeypatch, tmp_path):
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
  assert compile_cache.directory(str(tmp_path / "flag")) == tmp_path / "flag"
  assert compile_cache.directory() == tmp_path / "env"
  monkeypatch.delenv(compile_cache.ENV)
  assert compile_cache.directory() == compile_cache.DEFAULT.expanduser()
  for off in ("none", "", "OFF"):
    assert compile_cache.directory(off) is None
  assert compile_cache.enable(None) is None


def test_an_unwritable_folder_is_a_clear_error(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(OSError, match=r"compilation cache folder .*file/xla.*--compilation_cache"):
    compile_cache.enable(blocker / "xla")


_PROGRAM = """
import json, sys, jax, jax.numpy as jnp
from microexp.train import compile_cache
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
compile_cache.enable(compile_cache.directory(sys.argv[1]), min_compile_time_s=0)
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())
first = float(f(jnp.ones((8, 8))))
before = len(hits)
jax.clear_caches()  # the in-memory caches: the next call must compile again, or read the cache
second = float(f(jnp.ones((8, 8))))
print(json.dumps({"before": before, "after": len(hits), "equal": first == second}))
"""


def test_a_program_compiled_again_is_read_from_the_cache(tmp_path):
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
  out = subprocess.run([sys.executable, "-c", _PROGRAM, str(tmp_path / "xla")], env=env,
                       capture_output=True, text=True, check=True, timeout=120)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["before"] == 0 and result["after"] >= 1 and result["equal"]
  assert any((tmp_path / "xla").iterdir())
