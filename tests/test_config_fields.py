"""Every config field is read by something or refused: no option is silently dropped.

- config.dataset: each loader lists the fields it reads (`FIELDS`, microexp/loaders/) and refuses
  any other set field (`loaders.check_fields`); each listed field is really used in its module.
- config.train / train.augment / config.model: each key is read by the engine, predict or the
  model builder.
- config.model.kwargs: passed to the model factory as keywords, so an unknown one is a TypeError
  (tests/test_configs.py builds every config's model).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pathlib
import sys

import ml_collections
import pytest

from microexp import loaders
from microexp.synthetic import casme2 as synthetic
from microexp.synthetic import casme3 as synthetic_casme3
from microexp.synthetic import dfme as synthetic_dfme
from microexp.synthetic import megc as synthetic_megc
from microexp.loaders import flow_datasets as apex_flow
from microexp.loaders import composite
from tests.test_configs import ARGS, CONFIGS

_REPO = pathlib.Path(__file__).resolve().parents[1]
CASES = [(c, a) for c in CONFIGS for a in ARGS[c]]
# The synthetic-tree writer each dataset's `synthetic_kwargs` go to.
SYNTHETIC_WRITERS = {"casme2": synthetic.write_synthetic_casme2,
                     "casme3": synthetic_casme3.write_synthetic_casme3,
                     "dfme": synthetic_dfme.write_synthetic_dfme,
                     "samm": synthetic_megc.write_synthetic_samm,
                     "smic": synthetic_megc.write_synthetic_smic}


def _names_used(path: pathlib.Path, skip: tuple[str, ...] = ()) -> set[str]:
  """String constants, attribute and keyword names in a module, outside assignments to `skip`."""
  return _names_in(ast.parse(path.read_text()), skip)


# Readers of microexp/loaders/__init__.py that read config.dataset fields for the loader calling them.
_SHARED_READERS = ("flow_settings", "required_manual_dir")


def _shared_reads(path: pathlib.Path) -> set[str]:
  """The names used by the shared readers (`_SHARED_READERS`) that the module at `path` calls."""
  called = {getattr(n.func, "id", None) or getattr(n.func, "attr", None)
            for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)}
  return set().union(*(_names_in(ast.parse(inspect.getsource(getattr(loaders, reader))))
                       for reader in _SHARED_READERS if reader in called))


def _names_in(tree: ast.AST, skip: tuple[str, ...] = ()) -> set[str]:
  """String constants, attribute and keyword names in `tree`, outside assignments to `skip`."""
  skipped = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Assign) and any(getattr(t, "id", None) in skip for t in node.targets):
      skipped |= {id(n) for n in ast.walk(node)}
  out = set()
  for node in ast.walk(tree):
    if id(node) in skipped:
      continue
    if isinstance(node, ast.Attribute):
      out.add(node.attr)
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
      out.add(node.value)
    elif isinstance(node, ast.keyword) and node.arg:
      out.add(node.arg)
  return out


def _loader_fields(name: str) -> tuple[str, ...]:
  return sys.modules[loaders.get(name).__module__].FIELDS[name]


@functools.lru_cache(maxsize=None)
def _engine_names() -> frozenset[str]:
  paths = list((_REPO / "microexp" / "train").rglob("*.py")) + [
      *(_REPO / "microexp" / "predict").glob("*.py"), _REPO / "microexp" / "models" / "builder.py"]
  return frozenset(set().union(*(_names_used(p) for p in paths)))


@pytest.mark.parametrize("name", ["casme2", "megc2019_flow", "megc2019", "casme3", "dfme", "samm",
                                  "smic", "composite"])
def test_each_loader_reads_the_fields_it_lists(name):
  path = pathlib.Path(inspect.getfile(loaders.get(name)))
  used = _names_used(path, skip=("FIELDS", "_RELEASE")) | _shared_reads(path)
  if name in ("casme3", "dfme", "samm", "smic"):  # the shared apex-flow loader reads the rest
    shared = pathlib.Path(inspect.getfile(apex_flow))
    used |= _names_used(shared, skip=("FIELDS",)) | _shared_reads(shared)
  assert set(_loader_fields(name)) - used == set()


@pytest.mark.parametrize("name,arg", CASES)
def test_dataset_fields_are_read_by_the_loader(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  ds = config.dataset
  loaders.check_fields(ds, ds.name, _loader_fields(ds.name))  # raises on an unread set field
  if "sequence" in ds:
    used = _names_used(pathlib.Path(inspect.getfile(loaders.get("casme2"))))
    assert set(ds.sequence.keys()) <= used
  if "synthetic_kwargs" in ds:
    assert set(ds.synthetic_kwargs.keys()) <= set(
        inspect.signature(SYNTHETIC_WRITERS[ds.name]).parameters)
  if ds.name == "composite":  # every member's fields, shared ones included, read by its loader
    for member in composite.member_configs(ds):
      loaders.check_fields(member, member.name, _loader_fields(member.name))
      if "synthetic_kwargs" in member:
        assert set(member.synthetic_kwargs.keys()) <= set(
            inspect.signature(SYNTHETIC_WRITERS[member.name]).parameters)


@pytest.mark.parametrize("name,arg", CASES)
def test_train_and_model_fields_are_read(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  used = _engine_names()
  keys = ([f"train.{k}" for k in config.train.keys()]
          + [f"train.augment.{k}" for k in config.train.augment.keys()]
          + [f"model.{k}" for k in config.model.keys()])
  assert [k for k in keys if k.rpartition(".")[2] not in used] == []
  assert "stop_after_epochs" not in config.train  # a test hook, set by the tests that use it


def test_megc_composite_reads_the_megc_configs_fields():
  config = importlib.import_module("configs.ststnet_megc").get_config("synthetic")
  config.dataset.name = "megc2019"
  loaders.check_fields(config.dataset, "megc2019", _loader_fields("megc2019"))


@pytest.mark.parametrize("loader,field,value", [
    ("megc2019_flow", "flow_kwargs", {"scales": 3}),
    ("megc2019_flow", "workers", 4),
    ("megc2019_flow", "sequence", {"mode": "pad"}),
    ("megc2019", "synthetic_kwargs", {"num_subjects": 3}),
    ("megc2019", "sequence", {"mode": "pad"}),
    ("casme2", "gt_csv", "/data/gt.csv"),
])
def test_a_field_the_loader_does_not_read_is_refused(loader, field, value, tmp_path):
  ds = ml_collections.ConfigDict(dict(name=loader, classes="megc", synthetic=True,
                                      data_dir=str(tmp_path), image_size=28, flow_method="tvl1",
                                      third_channel="strain"))
  ds[field] = value
  with pytest.raises(ValueError, match=rf"{loader}: config.dataset.{field} is set but"):
    loaders.load(ds)


def test_megc2019_flow_refuses_a_flow_setting_predict_could_not_repeat(tmp_path):
  ds = ml_collections.ConfigDict(dict(name="megc2019_flow", synthetic=True, data_dir=str(tmp_path),
                                      flow_method="farneback"))
  with pytest.raises(ValueError, match="flow_method='farneback'.*release is 'tvl1'"):
    loaders.load(ds)
