"""Dataset registry: `config.dataset.name` -> a loader returning arrays in memory.

A loader is `(dataset_config) -> dict[str, np.ndarray]` following the contract in
docs/ARCHITECTURE.md (inputs, mask?, emotion, subject, dataset, clip). Adding a dataset is writing
one module with a decorated loader and naming the module in `_MODULES`.
"""

from __future__ import annotations

import importlib
from typing import Callable

import numpy as np

_LOADERS: dict[str, Callable[..., dict[str, np.ndarray]]] = {}

# Modules whose import registers loaders.
_MODULES = ("microexp.data.loading", "microexp.data.megc", "microexp.loaders.casme3",
            "microexp.loaders.dfme", "microexp.loaders.samm", "microexp.loaders.smic")


def register(name: str):
  """Decorator: registers `loader(dataset_config) -> arrays` under `name`."""

  def wrap(loader):
    if name in _LOADERS:
      raise ValueError(f"Dataset {name!r} is registered twice.")
    _LOADERS[name] = loader
    return loader

  return wrap


def load(dataset_config) -> dict[str, np.ndarray]:
  """Loads the dataset named by `dataset_config.name` into memory."""
  for module in _MODULES:
    importlib.import_module(module)
  name = dataset_config.name
  if name not in _LOADERS:
    raise ValueError(f"Unknown dataset {name!r}; registered: {sorted(_LOADERS)}.")
  return _LOADERS[name](dataset_config)
