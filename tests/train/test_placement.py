"""The dataset goes to the device once per run and the mesh is built once, however many chunks."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from microexp.train import engine
from microexp.train import parallel

from . import fake_arrays, tiny_config


@pytest.mark.slow  # 8 chunks of engine training (~5-14 s)
def test_a_sequential_run_places_the_dataset_once_and_builds_one_mesh(tmp_path, monkeypatch):
  placed, meshes = [], []
  put_replicated, make_mesh = parallel.put_replicated, jax.make_mesh

  def counting_put(tree, mesh):
    placed.append(sorted(tree))
    return put_replicated(tree, mesh)

  def counting_mesh(*args, **kwargs):
    meshes.append(args)
    return make_mesh(*args, **kwargs)

  monkeypatch.setattr(parallel, "put_replicated", counting_put)
  monkeypatch.setattr(jax, "make_mesh", counting_mesh)
  parallel._mesh.cache_clear()  # pylint: disable=protected-access
  arrays = fake_arrays(num_subjects=4, clips_per_subject=6)
  config = tiny_config(epochs=2, seeds=(0, 1), fold_parallel=False)
  results = engine.train_and_evaluate(config, arrays, tmp_path / "wd")
  chunks = sorted(p.name for p in (tmp_path / "wd" / "checkpoints").iterdir() if p.is_dir())
  assert len(chunks) == 8  # 2 seeds x 4 folds, one job per chunk
  assert placed == [["dataset_index", "inputs", "labels"]]  # once, for all 8 chunks
  assert len(meshes) == 1
  assert len(results["predictions"]) == 2 * len(arrays["subject"])
  assert np.isfinite(results["metrics"]["uf1"]["mean"])
  # A second run places its own copy (the placement belongs to the run, not the process).
  engine.train_and_evaluate(config, arrays, tmp_path / "wd2")
  assert len(placed) == 2 and len(meshes) == 1
