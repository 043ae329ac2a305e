"""HTNet end to end on the synthetic MEGC2019 release: face crops -> region mosaic -> LOSO."""

from __future__ import annotations

import pytest

from configs import htnet_megc
from microexp.train import engine


@pytest.mark.slow
def test_htnet_loso_on_synthetic_megc_learns(tmp_path):
  config = htnet_megc.get_config("synthetic")
  config.dataset.data_dir = str(tmp_path / "data")
  t = config.train
  t.seeds, t.final_seeds, t.tensorboard, t.checkpoint_every_s = (0,), (), False, 1e9
  results = engine.run(config, tmp_path / "wd")
  assert len(results["folds"]) == 11  # 4 CASME II + 4 SAMM + 3 SMIC subjects
  uf1 = results["metrics"]["uf1"]["mean"]
  print("htnet synthetic LOSO", results["metrics"])
  # Three balanced classes: chance UF1 is ~0.33.
  assert uf1 > 0.7, results["metrics"]
