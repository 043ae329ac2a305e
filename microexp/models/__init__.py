"""Model registry: configs name a model by string; `get(name, **kwargs)` builds it.

Adding a model is writing one module with a decorated factory. A module of your own (outside this
library) is named in the config as `"<module>:<name>"` (e.g. `config.model.name = "my_nets:tiny"`):
`get` imports the module, whose import registers `name`. Library models are listed in `_MODULES`.
"""

from __future__ import annotations

import flax.linen as nn

from microexp.registry import Registry

# One module per network; each registers itself on import (lazily, so that `import microexp.models`
# stays cheap and cycle-free).
_MODULES = ("resnet", "cnn_lstm", "convlstm", "flow_cnn", "ststnet", "offapexnet", "htnet",
            "spotter")
_REGISTRY = Registry("model", modules=[f"microexp.models.{m}" for m in _MODULES])


def register(name: str):
  """Decorator: registers a factory `(**kwargs) -> nn.Module` under `name`."""
  return _REGISTRY.register(name)


def get(name: str, **kwargs) -> nn.Module:
  """Builds the registered model `name` (or `'module:name'`) with the config's keyword arguments."""
  return _REGISTRY.get(name)(**kwargs)


def names() -> list[str]:
  return _REGISTRY.names()
