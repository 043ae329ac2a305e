"""Dataset registry: `config.dataset.name` -> a loader returning arrays in memory.

A loader is `(dataset_config) -> dict[str, np.ndarray]` following the contract in
docs/ARCHITECTURE.md (inputs, mask?, emotion, subject, dataset, clip). Loaders sit above the TFDS
builders (`tfds_casme2/`), which they build on demand, and the readers (`microexp.data`), which never
import them. Adding a dataset is writing one module `microexp/loaders/<name>.py` with a decorated
loader and naming it in `_MODULES` (a module of one's own: `config.dataset.name = "my_module:name"`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from microexp.registry import Registry

# Modules whose import registers loaders (imported on first lookup).
_MODULES = ("microexp.loaders.casme2", "microexp.loaders.megc")
_LOADERS = Registry("dataset", modules=_MODULES)

Loader = Callable[..., dict[str, np.ndarray]]


def register(name: str):
  """Decorator: registers `loader(dataset_config) -> arrays` under `name`."""
  return _LOADERS.register(name)


def get(name: str) -> Loader:
  """The loader registered as `name`."""
  return _LOADERS.get(name)


def names() -> list[str]:
  return _LOADERS.names()


def load(dataset_config) -> dict[str, np.ndarray]:
  """Loads the dataset named by `dataset_config.name` into memory."""
  return get(dataset_config.name)(dataset_config)
