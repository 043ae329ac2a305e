"""main.py takes list-valued config overrides (`--config.train.seeds=[2]`), lists and tuples
alike."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A user's own config with a *list* field (ml_collections alone refuses to override lists).
LIST_CONFIG = '''
from configs import ststnet_loso


def get_config():
  config = ststnet_loso.get_config("synthetic")
  del config.train["seeds"]
  config.train.seeds = [0, 1]
  return config
'''


@pytest.mark.slow
def test_main_with_list_overrides(tmp_path):
  config = tmp_path / "list_config.py"
  config.write_text(LIST_CONFIG)
  workdir = tmp_path / "wd"
  command = [
      sys.executable, str(ROOT / "main.py"), f"--config={config}", f"--workdir={workdir}",
      "--config.train.seeds=[2]",  # a list field
      "--config.train.test_subjects=[\"sub03\"]",  # a tuple field given as a list
      "--config.train.final_seeds=()", "--config.train.epochs=1", "--config.train.protocol=split",
      "--config.train.tensorboard=False", f"--config.dataset.data_dir={tmp_path / 'data'}",
      "--config.dataset.synthetic_kwargs.num_subjects=3",
      "--config.dataset.synthetic_kwargs.clips_per_subject=6",
      "--config.dataset.synthetic_kwargs.image_size=(48,40)",
      "--config.dataset.synthetic_kwargs.num_frames=(6,8)"]
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads((workdir / "results.json").read_text())
  assert results["seeds"] == [2]
  assert results["config"]["train"]["test_subjects"] == ["sub03"]
  assert results["folds"] == ["split"]


def test_list_parser_reads_lists_tuples_and_single_values():
  sys.path.insert(0, str(ROOT))
  import main  # pylint: disable=g-import-not-at-top

  parser = main.ListParser()
  assert parser.parse("[0, 1]") == [0, 1]
  assert parser.parse("(0, 1)") == [0, 1]
  assert parser.parse("3") == [3]
  with pytest.raises(ValueError, match="as a list"):
    parser.parse("[0, 1")
