"""Prints train accuracy and test metrics of config variants on one split fold of the synthetic set.

  python benchmarks/sequence_variants.py --data_dir=/tmp/seqdata \
      'convlstm_loso:' \
      'convlstm_loso:dataset.representation="sequences";model.kwargs.head_pool="mean"'

Each argument is `<config>:<field>=<python literal>;...` applied to `<config>.py:synthetic`, run
with `protocol='split'` (the synthetic set's last 2 subjects tested), no final model, one seed.
For choosing between model variants quickly; real-data defaults are never chosen from these
numbers alone (docs/training.md).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import time


def _variant(spec: str, data_dir: str):
  name, _, overrides = spec.partition(":")
  config = importlib.import_module(f"configs.{name}").get_config("synthetic")
  config.dataset.data_dir = data_dir
  config.train.protocol, config.train.final_seeds, config.train.tensorboard = "split", (), False
  for item in filter(None, overrides.split(";")):
    key, value = item.split("=", 1)
    *path, leaf = key.strip().split(".")
    node = config
    for part in path:
      node = node[part]
    node[leaf] = ast.literal_eval(value.strip())
  return config


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("variants", nargs="+")
  parser.add_argument("--data_dir", default="/tmp/sequence_variants_data")
  args = parser.parse_args()
  from microexp.train import cpu_devices  # pylint: disable=g-import-not-at-top
  cpu_devices.configure(cpu_devices.count())  # as main.py: one device per core by default
  from microexp import loaders as registry  # pylint: disable=g-import-not-at-top
  from microexp.train import engine  # pylint: disable=g-import-not-at-top

  loaded = {}
  for spec in args.variants:
    config = _variant(spec, args.data_dir)
    key = json.dumps(config.dataset.to_dict(), sort_keys=True, default=str)
    if key not in loaded:
      loaded[key] = registry.load(config.dataset)
    start = time.time()
    results = engine.train_and_evaluate(config, loaded[key], f"/tmp/sequence_variants/{start:.0f}")
    train = list(results["history"].values())[0]["train/epoch_categorical_accuracy"]
    metrics = {k: round(v["mean"], 3) for k, v in results["metrics"].items()}
    print(f"{spec}: train accuracy (last epoch) {train[-1]:.3f}, test {metrics}, "
          f"{time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
  main()
