"""Prints LOSO figures of a recipe and of logistic regression on a synthetic MEGC2019 flow release.

    PYTHONPATH=. python benchmarks/synthetic_megc_calibration.py --difficulty=hard \
        --subjects=8,8,6 --epochs=40 --config=configs/ststnet_megc.py

Used to calibrate the 'hard' preset (microexp/synthetic/megc_hard.py) and for docs/results.md.
`test_hard_preset_calibration` asserts the calibration (STSTNet LOSO UF1 in 0.6-0.8, logistic
regression at least 0.05 below): 22 folds x 60 epochs, 5-13 min on a CPU, so it carries the
`benchmark` marker, which pytest deselects unless asked (pyproject.toml addopts; CI does not run it):

    PYTHONPATH=. python -m pytest -q -s -m benchmark benchmarks/synthetic_megc_calibration.py
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import numpy as np
import pytest

from microexp.train import baselines
from microexp.data import megc_flow
from microexp.synthetic import megc as synthetic_megc
from microexp.data.emotions import MEGC_CLASSES
from microexp.train import metrics


def calibrate(*, difficulty: str = "hard", subjects=(8, 8, 6), epochs: int = 40,
              config_path: str = "configs/ststnet_megc.py", arg: str = "synthetic",
              train: dict | None = None, seed: int = 0, hard_params: dict | None = None,
              net: bool = True, work: pathlib.Path | None = None) -> dict:
  """Writes the release and prints (and returns) its LOSO figures: {'logistic_regression':
  {'uf1', 'uar'}, 'results': the recipe's engine results (net=True)}."""
  work = pathlib.Path(work or tempfile.mkdtemp(prefix="megc_calib_"))
  t0 = time.time()
  root = synthetic_megc.write_synthetic_megc_flow(
      work / "release", num_subjects=tuple(subjects), difficulty=difficulty, seed=seed,
      face_crops=False, hard_params=hard_params or {})
  arrays = megc_flow.flow_set_arrays(root)
  y = np.array([MEGC_CLASSES.index(e) for e in arrays["emotion"]])
  print(f"{difficulty}: {len(y)} clips, {len(set(arrays['subject']))} subjects, class counts "
        f"{np.bincount(y, minlength=3).tolist()}, written in {time.time() - t0:.0f} s")
  cm = metrics.confusion_matrix(
      y, baselines.loso_predictions(arrays["inputs"], y, arrays["subject"], num_classes=3), 3)
  out = {"logistic_regression": {"uf1": metrics.uf1(cm), "uar": metrics.uar(cm)}}
  print(f"logistic regression on raw pixels, LOSO: UF1 {out['logistic_regression']['uf1']:.3f} "
        f"UAR {out['logistic_regression']['uar']:.3f}")
  if not net:
    return out
  import importlib.util  # pylint: disable=g-import-not-at-top
  from microexp.train import engine  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("cfg", config_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  t = config.train
  t.update_from_flattened_dict({k: v for k, v in _flat(train or {}).items()})
  t.epochs, t.seeds, t.final_seeds, t.tensorboard = epochs, [seed], [], False
  t.checkpoint_every_s = 1e9
  t0 = time.time()
  results = out["results"] = engine.train_and_evaluate(config, arrays, work / "wd")
  m = results["metrics"]
  print(f"{config.model.name} ({config_path}, {epochs} epochs, seed {seed}), LOSO: "
        f"UF1 {m['uf1']['mean']:.3f} UAR {m['uar']['mean']:.3f} accuracy "
        f"{m['accuracy']['mean']:.3f} ({time.time() - t0:.0f} s)")
  for name, dm in sorted(results.get("per_dataset", {}).items()):
    print(f"  {name}: {json.dumps(dm)}")
  if "search" in results:
    for c, cand in enumerate(results["search"]["candidates"]):
      print(f"  candidate {c}: {json.dumps(cand)}")
  return out


@pytest.mark.benchmark
def test_hard_preset_calibration(tmp_path):
  """The reduced hard set of docs/results.md (22 subjects, 60 epochs): STSTNet's LOSO UF1 lies in
  0.6-0.8 and logistic regression on the raw pixels stays clearly below it."""
  config_path = pathlib.Path(__file__).resolve().parents[1] / "configs/ststnet_megc.py"
  out = calibrate(difficulty="hard", subjects=(8, 8, 6), epochs=60, config_path=str(config_path),
                  work=tmp_path)
  uf1, lr_uf1 = out["results"]["metrics"]["uf1"]["mean"], out["logistic_regression"]["uf1"]
  assert 0.6 <= uf1 <= 0.8, out["results"]["metrics"]
  assert lr_uf1 <= uf1 - 0.05


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--difficulty", default="hard")
  parser.add_argument("--subjects", default="8,8,6")
  parser.add_argument("--epochs", type=int, default=40)
  parser.add_argument("--config", default="configs/ststnet_megc.py")
  parser.add_argument("--arg", default="synthetic", help="the config's :arg (e.g. synthetic,nested)")
  parser.add_argument("--train", default="{}", help="JSON config.train overrides, e.g. "
                      '\'{"tta": {"flip_h": false}}\'')
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--hard_params", default="{}", help="JSON overrides of synthetic_hard.HARD")
  parser.add_argument("--no_net", action="store_true", help="logistic regression only")
  args = parser.parse_args()
  from microexp.train import cpu_devices  # pylint: disable=g-import-not-at-top
  cpu_devices.configure(cpu_devices.count())  # as main.py: one device per core by default
  calibrate(difficulty=args.difficulty, subjects=[int(v) for v in args.subjects.split(",")],
            epochs=args.epochs, config_path=args.config, arg=args.arg,
            train=json.loads(args.train), seed=args.seed,
            hard_params=json.loads(args.hard_params), net=not args.no_net)


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
  return out


if __name__ == "__main__":
  main()
