"""Prints LOSO figures of a recipe and of logistic regression on a synthetic MEGC2019 flow release.

    PYTHONPATH=. python benchmarks/synthetic_megc_calibration.py --difficulty=hard \
        --subjects=8,8,6 --epochs=40 --config=configs/ststnet_megc.py

Used to calibrate the 'hard' preset (microexp/synthetic/megc_hard.py) and for docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import numpy as np

from microexp.train import baselines
from microexp.data import megc_flow
from microexp.synthetic import megc as synthetic_megc
from microexp.data.emotions import MEGC_CLASSES
from microexp.train import metrics


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
  work = pathlib.Path(tempfile.mkdtemp(prefix="megc_calib_"))
  t0 = time.time()
  root = synthetic_megc.write_synthetic_megc_flow(
      work / "release", num_subjects=tuple(int(v) for v in args.subjects.split(",")),
      difficulty=args.difficulty, seed=args.seed, face_crops=False,
      hard_params=json.loads(args.hard_params))
  arrays = megc_flow.flow_set_arrays(root)
  y = np.array([MEGC_CLASSES.index(e) for e in arrays["emotion"]])
  print(f"{args.difficulty}: {len(y)} clips, {len(set(arrays['subject']))} subjects, class counts "
        f"{np.bincount(y, minlength=3).tolist()}, written in {time.time() - t0:.0f} s")
  cm = metrics.confusion_matrix(
      y, baselines.loso_predictions(arrays["inputs"], y, arrays["subject"], num_classes=3), 3)
  uf1, uar = metrics.uf1(cm), metrics.uar(cm)
  print(f"logistic regression on raw pixels, LOSO: UF1 {uf1:.3f} UAR {uar:.3f}")
  if args.no_net:
    return
  import importlib.util  # pylint: disable=g-import-not-at-top
  from microexp.train import engine  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("cfg", args.config)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(args.arg)
  t = config.train
  t.update_from_flattened_dict({k: v for k, v in _flat(json.loads(args.train)).items()})
  t.epochs, t.seeds, t.final_seeds, t.tensorboard = args.epochs, [args.seed], [], False
  t.checkpoint_every_s = 1e9
  t0 = time.time()
  results = engine.train_and_evaluate(config, arrays, work / "wd")
  m = results["metrics"]
  print(f"{config.model.name} ({args.config}, {args.epochs} epochs, seed {args.seed}), LOSO: "
        f"UF1 {m['uf1']['mean']:.3f} UAR {m['uar']['mean']:.3f} accuracy "
        f"{m['accuracy']['mean']:.3f} ({time.time() - t0:.0f} s)")
  for name, dm in sorted(results.get("per_dataset", {}).items()):
    print(f"  {name}: {json.dumps(dm)}")
  if "search" in results:
    for c, cand in enumerate(results["search"]["candidates"]):
      print(f"  candidate {c}: {json.dumps(cand)}")


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
