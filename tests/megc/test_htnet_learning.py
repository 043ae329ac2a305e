"""HTNet end to end on the synthetic MEGC2019 release: face crops -> region mosaic -> one split."""

from __future__ import annotations

import pytest

from configs import htnet_megc
from microexp.train import engine

# One subject of each dataset tested; the other 8 of the release's 11 train (LOSO trains 11 models
# for the same evidence; configs/htnet_megc.py keeps LOSO).
TEST_SUBJECTS = ("casme2/sub04", "samm/010", "smic/s03")


@pytest.mark.slow
def test_htnet_on_synthetic_megc_learns(tmp_path):
  config = htnet_megc.get_config("synthetic")
  config.dataset.data_dir = str(tmp_path / "data")
  t = config.train
  t.seeds, t.final_seeds, t.tensorboard, t.checkpoint_every_s = (0,), (), False, 1e9
  t.protocol, t.test_subjects = "split", TEST_SUBJECTS
  t.epochs = 15  # of the config's 30 (measured: UF1 0.89 at 30, 0.82 at 15 and at 10)
  results = engine.run(config, tmp_path / "wd")
  assert results["folds"] == ["split"]
  assert len(results["predictions"]) == 18  # 6 clips of each test subject
  uf1 = results["metrics"]["uf1"]["mean"]
  print("htnet synthetic split", results["metrics"])
  # Three balanced classes: chance UF1 is ~0.33.
  assert uf1 > 0.7, results["metrics"]
