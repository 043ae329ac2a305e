"""One small registry type: configs name a component (model, dataset loader, face detector) by string.

    MODELS = Registry("model", modules=("microexp.models.resnet", ...))

    @MODELS.register("ststnet")
    def ststnet(**kwargs): ...

    MODELS.get("ststnet")           # the registered object
    MODELS.get("my_nets:tiny")      # imports `my_nets` (one's own module), whose import registers 'tiny'

`modules` are imported on first lookup, so importing the package that owns a registry stays cheap and
cycle-free: the registered modules import the package, never the other way round at import time.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable


class Registry:
  """Name -> registered object, filled by the `register(name)` decorator.

  Args:
    kind: what is registered, in lower case ('model', 'dataset', 'face detector'); used in errors.
    modules: modules whose import registers the library's own entries (imported lazily).
  """

  def __init__(self, kind: str, modules: Iterable[str] = ()):
    self.kind = kind
    self.modules = tuple(modules)
    self._entries: dict[str, Any] = {}

  def register(self, name: str) -> Callable[[Any], Any]:
    """Decorator: registers the decorated object under `name`; a name registered twice is an error."""

    def wrap(obj):
      if name in self._entries:
        raise ValueError(f"{self.kind.capitalize()} {name!r} is registered twice.")
      self._entries[name] = obj
      return obj

    return wrap

  def get(self, name: str) -> Any:
    """The object registered as `name`, or as `registered` after importing `module` for a
    `'module:registered'` name. Unknown names raise a ValueError listing the registered ones."""
    self._import_modules()
    module, _, registered = name.rpartition(":")
    if module:
      try:
        importlib.import_module(module)
      except ImportError as e:
        raise ValueError(f"{self.kind.capitalize()} {name!r}: cannot import module {module!r} "
                         f"({e}); it must be importable (on PYTHONPATH or installed).") from e
    if registered not in self._entries:
      raise ValueError(f"Unknown {self.kind} {registered!r}; registered: {sorted(self._entries)}"
                       + (f" (module {module!r} registered no such name)." if module else "."))
    return self._entries[registered]

  def names(self) -> list[str]:
    """Sorted registered names (the library's own modules imported first)."""
    self._import_modules()
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def _import_modules(self) -> None:
    for module in self.modules:
      importlib.import_module(module)
