"""Every config file x every `:arg` combination builds the same ConfigDict (values, field types,
placeholders) or refuses it, as recorded in tests/data/config_snapshot.json.

The snapshot pins what the configs produce while their code is reshaped (issue 20: one spec per
family, no `del`, each recipe once). A deliberate change of a config regenerates it:

    PYTHONPATH=$PWD python tests/test_config_snapshot.py --write
"""

from __future__ import annotations

import importlib
import itertools
import json
import pathlib
import sys

import ml_collections
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "data" / "config_snapshot.json"
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py")
                 if p.stem not in ("__init__", "base", "common"))
CLASSES = (None, "3", "5", "7", "megc", "thesis5", "thesis5_m5", "happiness+surprise")
FLAGS = ("synthetic", "thesis", "nested")


def args() -> list[str]:
  """Every combination of the flags with every class set (and a few malformed ones)."""
  out = []
  for n in range(len(FLAGS) + 1):
    for flags in itertools.combinations(FLAGS, n):
      for classes in CLASSES:
        out.append(",".join(list(flags) + ([f"classes={classes}"] if classes else [])))
  return out + ["classes=4", "synthetic=no", "fast", "classes=happiness+joy"]


def describe(value):
  """A JSON-able picture of a ConfigDict: every field's value and, for placeholders, its type."""
  if isinstance(value, ml_collections.ConfigDict):
    fields = {}
    for key in sorted(value.keys()):
      field = value._fields[key]  # pylint: disable=protected-access
      if isinstance(field, ml_collections.FieldReference):
        fields[key] = {"ref": field.get_type().__name__, "value": describe(field.get())}
      else:
        fields[key] = describe(field)
    return {"config": fields, "type_safe": value.is_type_safe}
  if isinstance(value, tuple):
    return {"tuple": [describe(v) for v in value]}
  if isinstance(value, list):
    return {"list": [describe(v) for v in value]}
  if isinstance(value, float):
    return {"float": repr(value)}
  if value is None or isinstance(value, (bool, int, str)):
    return value
  return {type(value).__name__: repr(value)}


def build(name: str, arg: str):
  try:
    config = importlib.import_module(f"configs.{name}").get_config(arg)
  except ValueError:
    return "ValueError"  # the message may change; refusing may not
  return describe(config)


def snapshot() -> dict:
  return {f"{name}:{arg}": build(name, arg) for name in CONFIGS for arg in args()}


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_match_the_snapshot(name):
  recorded = json.loads(SNAPSHOT.read_text())
  for arg in args():
    key = f"{name}:{arg}"
    assert build(name, arg) == recorded[key], f"configs/{name}.py:{arg} changed"


if __name__ == "__main__":
  if sys.argv[1:] != ["--write"]:
    sys.exit(f"usage: {sys.argv[0]} --write")
  SNAPSHOT.write_text(json.dumps(snapshot(), indent=0, sort_keys=True) + "\n")
  print(f"wrote {SNAPSHOT}")
