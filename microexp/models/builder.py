"""One way to build a model from a config, used by the engine and by predict.

    model = builder.from_config(config, num_classes)
    pretrained = builder.pretrained(model)          # host arrays read once, or None
    variables = builder.load_pretrained(model, model.init(...), pretrained)

`init` stays pure (no file reads): a model with pretrained weights exposes `pretrained()` (reads
the file on the host) and `load(variables, pretrained)` (pure, jittable), as big_vision's
`load(init_params, path)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax.numpy as jnp
from absl import logging

from microexp import models


def hashable(x):
  """Lists (from JSON or the command line) -> tuples: flax module attributes must be hashable."""
  if isinstance(x, dict):
    return {k: hashable(v) for k, v in x.items()}
  return tuple(hashable(v) for v in x) if isinstance(x, (list, tuple)) else x


def _get(tree, key, default=None):
  return tree.get(key, default) if hasattr(tree, "get") else getattr(tree, key, default)


def from_config(config, num_classes: int, *, pretrained: bool = True):
  """The registered `config.model.name` with `config.model.kwargs` and `config.model.dtype`.

  config: the run's ConfigDict, or model.json's plain dict. pretrained=False drops the
  pretrained-weights path (predict: the trained variables replace them). A missing weights file
  is an error, except on synthetic data where training starts from scratch (with a warning).
  """
  model_config, dataset = _get(config, "model"), _get(config, "dataset") or {}
  kwargs = _get(model_config, "kwargs") or {}
  kwargs = hashable(kwargs.to_dict() if hasattr(kwargs, "to_dict") else dict(kwargs))
  if (kwargs.get("flow_bound") is not None
      and _get(dataset, "flow_normalization", "per_clip") != "none"):
    raise ValueError("config.model.kwargs.flow_bound (a fixed speed scale in pixels) needs raw "
                     "flow: set config.dataset.flow_normalization='none' (it is "
                     f"{_get(dataset, 'flow_normalization', 'per_clip')!r}).")
  weights = kwargs.get("weights")
  if weights and not pretrained:
    kwargs["weights"] = None
  elif weights and not Path(weights).exists():
    if _get(dataset, "synthetic", False):
      logging.warning("Pretrained weights %s not found: synthetic run, TRAINING FROM SCRATCH "
                      "(random initialization).", weights)
      kwargs["weights"] = None
    else:
      from microexp.models.weights import source  # pylint: disable=g-import-not-at-top

      source.check_readable(weights)  # raises the weight loader's missing-file error
  return models.get(_get(model_config, "name"), num_classes=num_classes,
                    dtype=jnp.dtype(_get(model_config, "dtype") or "float32"), **kwargs)


def pretrained(model) -> Any:
  """The model's pretrained variables read on the host (`model.pretrained()`), None if none."""
  read = getattr(model, "pretrained", None)
  return read() if callable(read) else None


def load_pretrained(model, variables: dict, pretrained_variables) -> dict:
  """`variables` (one model's) with the pretrained ones put in (pure; unchanged if None)."""
  if pretrained_variables is None:
    return variables
  return model.load(variables, pretrained_variables)
