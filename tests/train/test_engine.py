"""The LOSO engine on fake arrays and a tiny model: learning, outputs, fold-parallel ==
sequential, multi-device sharding, exact resume, clean selection, NaN errors.

The runs share one compiled step per configuration (the engine caches jitted steps per process).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from microexp.train import chunking
from microexp.train import engine

from . import fake_arrays, probs_by_fold, tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
  """Fold-parallel LOSO, 5 subjects, selection='last', with TensorBoard and a final model."""
  workdir = tmp_path_factory.mktemp("baseline")
  config = tiny_config(tensorboard=True, final_seeds=[0])
  return config, engine.train_and_evaluate(config, fake_arrays(), workdir), workdir


@pytest.mark.slow
def test_learns_and_writes_outputs(baseline):
  config, results, workdir = baseline
  # 3 balanced classes: chance is 1/3.
  assert results["metrics"]["accuracy"]["mean"] > 0.75
  assert results["metrics"]["uf1"]["mean"] > 0.7
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk["folds"] == [f"s{i:02d}" for i in range(5)]
  assert sum(f["n_test"] for f in on_disk["per_fold"]) == 45
  assert np.array(on_disk["confusion"]).sum() == 45
  assert len(on_disk["history"]["seed0/s00"]["train/epoch_loss"]) == config.train.epochs
  assert (workdir / "summary.md").read_text().startswith("# test_tiny_cnn")
  assert (workdir / "confusion.png").stat().st_size > 1000
  assert list((workdir / "tensorboard/seed0/s03/test").glob("events.out.tfevents.*"))
  model_json = json.loads((workdir / "final/model.json").read_text())
  assert model_json["class_names"] == ["happiness", "surprise", "repression"]
  assert (workdir / "final/variables.msgpack").stat().st_size > 100


@pytest.mark.slow
def test_sequential_equals_fold_parallel(baseline, tmp_path):
  config, results, _ = baseline
  seq = tiny_config(fold_parallel=False)
  other = engine.train_and_evaluate(seq, fake_arrays(), tmp_path)
  a, b = probs_by_fold(results), probs_by_fold(other)
  for fold in a:
    np.testing.assert_allclose(a[fold], b[fold], atol=2e-4)


@pytest.mark.slow
def test_resume_after_stop_gives_identical_metrics(baseline, tmp_path):
  config, results, _ = baseline
  stopped = engine.train_and_evaluate(tiny_config(stop_after_epochs=2), fake_arrays(), tmp_path)
  assert stopped is None
  assert not (tmp_path / "results.json").exists()
  resumed = engine.train_and_evaluate(tiny_config(), fake_arrays(), tmp_path)
  assert resumed["metrics"] == results["metrics"]
  a, b = probs_by_fold(results), probs_by_fold(resumed)
  for fold in a:
    np.testing.assert_array_equal(a[fold], b[fold])


@pytest.mark.slow
def test_nan_loss_names_fold_and_step(baseline, tmp_path):
  arrays = fake_arrays()
  sel = arrays["subject"] == "s02"
  arrays["inputs"][sel] = 1e37 * np.sign(arrays["inputs"][sel])  # finite; overflows in the net
  with pytest.raises(engine.NaNLossError, match=r"step \d+/\d+ of fold 's0[0-4]'.*seed 0"):
    engine.train_and_evaluate(tiny_config(), arrays, tmp_path)


@pytest.mark.slow
def test_test_labels_never_influence_their_fold(tmp_path):
  """Validation-based selection: permuting the test subject's labels changes nothing in its fold."""
  config = tiny_config(selection="val", epochs=5)
  arrays = fake_arrays()
  original = engine.train_and_evaluate(config, arrays, tmp_path / "a")
  permuted = dict(arrays)
  emotions = arrays["emotion"].copy()
  sel = arrays["subject"] == "s01"
  emotions[sel] = np.roll(emotions[sel], 1)
  assert (emotions[sel] != arrays["emotion"][sel]).any()
  permuted["emotion"] = emotions
  changed = engine.train_and_evaluate(config, permuted, tmp_path / "b")
  np.testing.assert_array_equal(probs_by_fold(original)["s01"], probs_by_fold(changed)["s01"])
  fold = {f["subject"]: f for f in original["per_fold"]}["s01"]
  assert fold["val_subjects"] and "s01" not in fold["val_subjects"]
  # The other folds trained on s01's labels, so their results may move; s01's may not.
  assert {f["subject"]: f["best_epoch"] for f in original["per_fold"]}["s01"] == {
      f["subject"]: f["best_epoch"] for f in changed["per_fold"]}["s01"]


_MULTI_DEVICE = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    import jax
    assert len(jax.devices()) == 8, jax.devices()
    import functools
    import train as helpers
    from microexp.train import engine, parallel
    assert dict(parallel.make_mesh(5).shape) == {{"fold": 5, "data": 1}}  # CPU devices' rule
    # The accelerators' rule on these CPU devices: folds on a divisor, each fold's batch split.
    parallel.make_mesh = functools.partial(parallel.make_mesh, split_batch=True)
    mesh = parallel.make_mesh(5)
    assert dict(mesh.shape) == {{"fold": 4, "data": 2}}, mesh.shape
    results = engine.train_and_evaluate(helpers.tiny_config(), helpers.fake_arrays(), {workdir!r})
    print("RESULT" + json.dumps([[p["subject"], p["probs"]] for p in results["predictions"]]))
""")


@pytest.mark.slow
def test_multi_device_fold_and_data_sharding_matches_single_device(baseline, tmp_path):
  """8 devices under the accelerators' mesh rule: 5 folds padded to 8 on a fold=4 x data=2 mesh
  (XLA shards a vmap, splitting each fold's batch); same predictions. CPU devices' own rule:
  test_cpu_devices.py."""
  _, results, _ = baseline
  script = _MULTI_DEVICE.format(root=str(ROOT), tests=str(ROOT / "tests"),
                                workdir=str(tmp_path / "wd"))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        timeout=600, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][0]
  multi = {}
  for subject, probs in json.loads(line[len("RESULT"):]):
    multi.setdefault(subject, []).append(probs)
  single = probs_by_fold(results)
  for fold, probs in single.items():
    np.testing.assert_allclose(np.array(multi[fold]), probs, atol=2e-3)


def test_fold_parallel_values_and_chunks():
  assert chunking.parse_fold_parallel("auto") is None
  assert chunking.parse_fold_parallel(True) is True
  assert chunking.parse_fold_parallel("False") is False
  with pytest.raises(ValueError, match="fold_parallel"):
    chunking.parse_fold_parallel("sometimes")
  assert [len(c) for c in chunking.split(list(range(6)), 4)] == [4, 2]
  assert [len(c) for c in chunking.split(list(range(6)), 1)] == [1] * 6


@pytest.mark.slow
def test_composite_reports_and_prints_each_dataset(tmp_path, caplog):
  arrays = fake_arrays()
  arrays["dataset"] = np.where(np.isin(arrays["subject"], ["s00", "s01", "s02"]), "casme2", "samm")
  with caplog.at_level("INFO"):
    results = engine.train_and_evaluate(tiny_config(fold_parallel=False), arrays, tmp_path)
  assert sorted(results["per_dataset"]) == ["casme2", "samm"]
  for name in ("casme2", "samm"):
    uf1 = results["per_dataset"][name]["uf1"]["mean"]
    assert any(r.getMessage().lstrip().startswith(f"{name}") and f"UF1 {uf1:.4f}" in r.getMessage()
               for r in caplog.records), name
