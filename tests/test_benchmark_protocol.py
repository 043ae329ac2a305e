"""benchmarks/protocol.py: the three-way LOSO protocol table (tiny preset) and its data shapes."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import protocol


def test_fewer_subjects_keeps_every_clip_and_the_fold_count():
  for folds in (3, 8, 20, 68):
    shape = protocol.fewer_subjects(protocol.MEGC_SHAPE, folds)
    assert sum(n for _, n, _ in shape) == folds
    assert [c for _, _, c in shape] == [c for _, _, c in protocol.MEGC_SHAPE]
  assert protocol.fewer_subjects(protocol.MEGC_SHAPE, 0) == protocol.MEGC_SHAPE
  with pytest.raises(ValueError, match="only 68 subjects"):
    protocol.fewer_subjects(protocol.MEGC_SHAPE, 69)


@pytest.mark.slow  # 442 synthetic flows: ~2 s
def test_megc_shaped_arrays():
  arrays = protocol.synthetic_flows(protocol.MEGC_SHAPE, 28)
  assert arrays["inputs"].shape == (442, 28, 28, 3)
  assert len(set(arrays["subject"])) == 68
  assert sorted(set(arrays["emotion"])) == ["negative", "positive", "surprise"]
  assert arrays["inputs"].min() >= -1 and arrays["inputs"].max() <= 1


@pytest.mark.slow
def test_three_ways_table(tmp_path, capsys):
  out = tmp_path / "protocol.json"
  table = protocol.main(["--folds=2", "--epochs=2", "--modes=sequential,parallel,torch",
                         f"--out={out}"])
  printed = capsys.readouterr().out
  assert set(table["rows"]) == {"sequential", "parallel", "torch"}
  assert table["setup"]["folds"] == 2 and table["setup"]["epochs"] == 2
  for mode, row in table["rows"].items():
    assert f"  {mode} " in printed
    for key in ("wall_s", "startup_s", "train_s", "epoch_s"):
      assert math.isfinite(row[key]) and row[key] > 0, (mode, key, row[key])
    assert 0 <= row["uf1"] <= 1 and 0 <= row["accuracy"] <= 1
  assert table["rows"]["sequential"]["compile_s"] > 0  # XLA compilation is seen and counted
  assert len(table["ratios"]) == 5
  for name, value in table["ratios"].items():
    assert math.isfinite(value) and value > 0, name
    assert name in printed
  assert json.loads(out.read_text())["rows"].keys() == table["rows"].keys()


@pytest.mark.slow
def test_offapexnet_preset_runs_its_config_and_says_why_torch_is_skipped(capsys):
  table = protocol.main(["--preset=offapexnet", "--folds=2", "--epochs=1",
                         "--modes=parallel,torch"])
  printed = capsys.readouterr().out
  assert list(table["rows"]) == ["parallel"]
  assert "preset offapexnet" in printed
  assert "no reference PyTorch loop" in table["skipped"]["torch"]
  row = table["rows"]["parallel"]
  assert row["compile_s"] > 0 and 0 <= row["uf1"] <= 1


def test_htnet_preset_is_the_ensembles_member_at_real_size():
  settings = protocol.preset_settings("htnet", "cpu")
  config = protocol._microexp_config("htnet", settings, 3, True)
  assert config.model.name == "htnet" and config.model.kwargs.dim == 256
  assert len(config.model.kwargs.regions) == 4  # cropped by the model from the whole face
  assert (config.train.batch_size, config.train.epochs, settings["epochs"]) == (256, 3, 800)
  assert config.train.fold_parallel and list(config.train.seeds) == [0]
  assert "no reference PyTorch loop" in protocol._torch_skip_reason("htnet")
