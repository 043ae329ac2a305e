"""The CPU split into several JAX devices (cpu_devices.py): the count, the mesh of a chunk, each
device running its own folds with no collective, the same bits as one device, checkpoints that
resume under another device count, and an accelerator's per-device vmap on the same devices."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from microexp.train import cpu_devices
from microexp.train import engine
from microexp.train import parallel

from . import fake_arrays, tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_count_reads_auto_numbers_and_the_environment(monkeypatch):
  monkeypatch.delenv(cpu_devices.ENV, raising=False)
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
  assert cpu_devices.count("auto") == len(os.sched_getaffinity(0))
  assert cpu_devices.count(None) == len(os.sched_getaffinity(0))
  assert cpu_devices.count("3") == 3 and cpu_devices.count(1) == 1
  monkeypatch.setenv(cpu_devices.ENV, "5")
  assert cpu_devices.count(None) == 5
  assert cpu_devices.count("2") == 2  # the flag wins over the environment
  monkeypatch.delenv(cpu_devices.ENV)
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_dump_to=/tmp")
  assert cpu_devices.count("auto") == 8  # XLA's own flag, kept
  assert cpu_devices.count("3") == 3
  for bad in ("0", "-1", "many", "1.5"):
    with pytest.raises(ValueError, match="CPU devices must be 'auto' or a whole number"):
      cpu_devices.count(bad)


def test_configure_after_jax_started_keeps_its_count_or_says_why():
  have = jax.device_count("cpu")  # this test process already uses JAX
  assert cpu_devices.configure(have) == have
  with pytest.raises(RuntimeError, match="already started with"):
    cpu_devices.configure(have + 1)


@pytest.mark.parametrize("folds, devices, expected", [
    (68, 2, 2), (5, 8, 5), (3, 2, 2), (68, 64, 34), (1, 2, 1), (7, 4, 4), (9, 4, 3), (4, 1, 1)])
def test_fewest_devices_that_take_the_folds_in_the_fewest_rounds(folds, devices, expected):
  fold = parallel.fewest_devices(folds, devices)
  assert fold == expected
  rounds = -(-folds // min(devices, folds))
  assert -(-folds // fold) == rounds  # as few rounds as all the devices would take
  assert fold == 1 or -(-folds // (fold - 1)) > rounds  # and no device fewer does it


def _results(workdir: pathlib.Path) -> dict:
  """What a run reports of its training: predictions and every fold's curves and selection."""
  r = json.loads((workdir / "results.json").read_text())
  return {"predictions": r["predictions"], "history": r["history"],
          "per_fold": [{k: f[k] for k in ("subject", "best_epoch")} for f in r["per_fold"]]}


_TWO_DEVICES = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from microexp.train import cpu_devices
    cpu_devices.configure(2)
    import jax, numpy as np
    from absl import logging
    import train as helpers
    from configs import ststnet_megc
    from microexp.models import builder
    from microexp.train import engine, parallel, steps
    assert jax.device_count() == 2, jax.devices()
    mesh = parallel.make_mesh(5)
    assert dict(mesh.shape) == {{"fold": 2, "data": 1}}, mesh.shape
    assert parallel.padded_folds(5, mesh) == 6
    # Each device runs its own folds: no collective in the compiled epoch, the kernels as on one.
    config = ststnet_megc.get_config("synthetic")
    model = builder.from_config(config, 3, pretrained=False)
    spec = steps.StepSpec.from_config(config, steps_per_epoch=2, num_classes=3)
    mesh4 = parallel.make_mesh(4)
    st = steps.make_steps(model, spec, mesh4)
    n = 64
    x = np.zeros((n, 28, 28, 3), np.float32)
    data = parallel.put_replicated({{"inputs": x, "labels": np.zeros(n, np.int32)}}, mesh4)
    plan = parallel.put_folds({{"key": np.zeros((4, 2), np.uint32),
                               "train_mask": np.ones((4, n), bool),
                               "n_train": np.full(4, n, np.int32),
                               "class_weights": np.ones((4, 1, 3), np.float32)}}, mesh4)
    state = st.init(plan["key"], x[:1], None)
    hlo = st.train_epoch.lower(state, plan, data, 0).compile().as_text()
    print("COLLECTIVES " + json.dumps([op for op in ("all-gather", "all-reduce", "all-to-all",
                                                     "collective-permute") if op in hlo]))
    from microexp.kernels import conv_pool
    print("KERNELS " + json.dumps([conv_pool.available(), "custom-call" in hlo]))
    logging.set_verbosity(logging.INFO)
    for workdir, train in json.loads(sys.argv[1]):
      r = engine.train_and_evaluate(helpers.tiny_config(**train), helpers.fake_arrays(), workdir)
      print("RUN " + ("done" if r is not None else "stopped"), flush=True)
    # An accelerator's way on these devices: each device's folds vmapped together.
    steps.fold_group = lambda spec, mesh: None
    steps.make_steps.cache_clear()
    r = engine.train_and_evaluate(helpers.tiny_config(), helpers.fake_arrays(), sys.argv[2])
    print("VMAPPED " + json.dumps(r["predictions"]), flush=True)
""")


@pytest.mark.slow
def test_two_cpu_devices_match_one_and_resume_across_counts(tmp_path):
  """2 CPU devices: 5 folds padded to 6 on a fold=2 mesh, no collective; a run, a resume of a
  1-device run's checkpoint and a run stopped for a 1-device resume all give the 1-device bits;
  each device's folds vmapped (a GPU's way) agree to rounding."""
  stop = {"stop_after_epochs": 2}
  one, started_on_one, started_on_two = (tmp_path / n for n in ("one", "from_one", "from_two"))
  assert engine.train_and_evaluate(tiny_config(), fake_arrays(), one) is not None
  assert engine.train_and_evaluate(tiny_config(**stop), fake_arrays(), started_on_one) is None
  runs = [[str(tmp_path / "two"), {}], [str(started_on_one), {}], [str(started_on_two), stop]]
  script = _TWO_DEVICES.format(root=str(ROOT), tests=str(ROOT / "tests"))
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-c", script, json.dumps(runs), str(tmp_path / "vmap")],
                        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line]
  out = dict(lines)
  assert json.loads(out["COLLECTIVES"]) == []
  built, called = json.loads(out["KERNELS"])
  assert called == built  # where the CPU kernels built, the per-device program calls them
  assert [v for k, v in lines if k == "RUN"] == ["done", "done", "stopped"]
  assert "resumed after epoch 2" in proc.stderr  # the 1-device checkpoint, 5 folds -> 6
  engine.train_and_evaluate(tiny_config(), fake_arrays(), started_on_two)  # 6 folds -> 5
  expected = _results(one)
  for workdir in (tmp_path / "two", started_on_one, started_on_two):
    assert _results(workdir) == expected, workdir.name
  # Folds vmapped on each device (vmapped convolutions reduce in another order): float rounding.
  vmapped = json.loads(out["VMAPPED"])
  assert [p["clip"] for p in vmapped] == [p["clip"] for p in expected["predictions"]]
  np.testing.assert_allclose([p["probs"] for p in vmapped],
                             [p["probs"] for p in expected["predictions"]], atol=2e-4)
