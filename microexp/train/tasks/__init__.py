"""What a training problem is (emotions, action units, ...): one `Task` per `config.train.task`.

    task = tasks.from_config(config.train)   # the registered Task, built from the train config

A task is registered here by name (`TASKS.register('au')` on a class with `from_config`); the
engine, loop and steps read it through the contract in base.py and never test its name.
"""

from __future__ import annotations

from microexp.registry import Registry
from microexp.train.tasks.base import Task

TASKS = Registry("task", modules=("microexp.train.tasks.emotions",
                                  "microexp.train.tasks.action_units",
                                  "microexp.train.tasks.spotting",
                                  "microexp.train.tasks.spot_then_recognize"))
DEFAULT = "emotion"


def get(name: str):
  """The Task class registered as `name` ('emotion', 'au', 'spot', 'str', or 'module:name')."""
  return TASKS.get(name)


def from_config(train_config) -> Task:
  """The task of `config.train.task` ('emotion' when absent), built from `config.train`."""
  name = str(train_config.get("task", DEFAULT) or DEFAULT)
  if name not in TASKS.names() and ":" not in name:
    raise ValueError(f"config.train.task must be one of {tuple(TASKS.names())}, got {name!r}.")
  return get(name).from_config(train_config)
