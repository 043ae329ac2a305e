"""Model registry: configs name a model by string; `get(name, **kwargs)` builds it.

Adding a model is writing one module with a decorated factory. A module of your own (outside this
library) is named in the config as `"<module>:<name>"` (e.g. `config.model.name = "my_nets:tiny"`):
`get` imports the module, whose import registers `name`. Library models are listed in `_MODULES`.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
  """Decorator: registers a factory `(**kwargs) -> nn.Module` under `name`."""

  def wrap(factory):
    if name in _REGISTRY:
      raise ValueError(f"Model {name!r} is registered twice.")
    _REGISTRY[name] = factory
    return factory

  return wrap


def get(name: str, **kwargs) -> nn.Module:
  """Builds the registered model `name` with the config's keyword arguments."""
  _import_all()
  module, _, registered = name.rpartition(":")
  if module:
    import importlib  # pylint: disable=g-import-not-at-top

    try:
      importlib.import_module(module)
    except ImportError as e:
      raise ValueError(f"Model {name!r}: cannot import module {module!r} ({e}); it must be "
                       "importable (on PYTHONPATH or installed).") from e
  if registered not in _REGISTRY:
    raise ValueError(f"Unknown model {registered!r}; registered: {sorted(_REGISTRY)}"
                     + (f" (module {module!r} registered no such name)." if module else "."))
  return _REGISTRY[registered](**kwargs)


def names() -> list[str]:
  _import_all()
  return sorted(_REGISTRY)


def _import_all():
  # Imported lazily so that `import microexp.models` stays cheap and cycle-free.
  import importlib

  for module in _MODULES:
    importlib.import_module(f"microexp.models.{module}")


# One module per network; each registers itself on import.
_MODULES = ("resnet", "cnn_lstm", "convlstm", "flow_cnn", "ststnet", "offapexnet", "htnet")
