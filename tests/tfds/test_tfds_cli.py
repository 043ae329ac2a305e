"""The documented command line, `tfds build tfds_casme2/casme2 --manual_dir=...`, for each representation."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from microexp.synthetic import casme2 as synthetic

_REPO = pathlib.Path(__file__).resolve().parents[2]
_TFDS = shutil.which("tfds", path=os.path.dirname(sys.executable)) or shutil.which("tfds")


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("cli") / "CASME2"
  return synthetic.write_synthetic_casme2(root, num_subjects=2, clips_per_subject=2,
                                          image_size=(48, 40), num_frames=(6, 8), seed=3)


@pytest.mark.slow  # one `tfds build` subprocess each (~10-15 s)
@pytest.mark.parametrize("config,feature,shape", [
    ("apex_flow_farneback_strain_28", "flow", (28, 28, 3)),
    ("sequences_gray_28", "frames", (28, 28, 1)),
    ("flow_sequences_dis_magnitude_28", "flow", (28, 28, 3)),
])
def test_tfds_build_command(manual_dir, tmp_path, config, feature, shape):
  assert _TFDS, "the `tfds` command is not installed (tensorflow-datasets provides it)"
  data_dir = tmp_path / "tfds"
  env = dict(os.environ, PYTHONPATH=str(_REPO))
  result = subprocess.run(
      [_TFDS, "build", str(_REPO / "tfds_casme2" / "casme2"), f"--manual_dir={manual_dir}",
       f"--config={config}", f"--data_dir={data_dir}"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  source = tfds.data_source(f"casme2/{config}", data_dir=str(data_dir), split="train")
  assert len(source) == 4
  example = source[0]
  assert np.asarray(example[feature]).shape[-3:] == shape
  assert example["subject"].decode() in {"sub01", "sub02"}


# --- the apex-flow builders of issue 14: `tfds build tfds_casme2/<name> --manual_dir=...` ---------

def _other_tree(name, root):
  from microexp.synthetic import casme3 as synthetic_casme3  # pylint: disable=g-import-not-at-top
  from microexp.synthetic import dfme as synthetic_dfme  # pylint: disable=g-import-not-at-top
  from microexp.synthetic import megc as synthetic_megc  # pylint: disable=g-import-not-at-top
  return {
      "casme3": lambda: synthetic_casme3.write_synthetic_casme3(root, num_subjects=2,
                                                                clips_per_subject=2),
      "dfme": lambda: synthetic_dfme.write_synthetic_dfme(root, num_subjects=(1, 1, 0),
                                                          clips_per_subject=2),
      "samm": lambda: synthetic_megc.write_synthetic_samm(root, num_subjects=2,
                                                          clips_per_subject=2),
      "smic": lambda: synthetic_megc.write_synthetic_smic(root, num_subjects=2,
                                                          clips_per_subject=2),
  }[name]()


@pytest.mark.slow
@pytest.mark.parametrize("name,clips", [("casme3", 4), ("dfme", 4), ("samm", 5), ("smic", 4)])
def test_tfds_build_command_other_datasets(tmp_path, name, clips):
  assert _TFDS, "the `tfds` command is not installed (tensorflow-datasets provides it)"
  manual = _other_tree(name, tmp_path / "manual")
  data_dir = tmp_path / "tfds"
  config = "apex_flow_dis_strain_28"
  env = dict(os.environ, PYTHONPATH=str(_REPO))
  result = subprocess.run(
      [_TFDS, "build", str(_REPO / "tfds_casme2" / name), f"--manual_dir={manual}",
       f"--config={config}", f"--data_dir={data_dir}"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  source = tfds.data_source(f"{name}/{config}", data_dir=str(data_dir), split="train")
  assert len(source) == clips
  assert np.asarray(source[0]["flow"]).shape == (28, 28, 3)
