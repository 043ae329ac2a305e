"""Dataset registry: `config.dataset.name` -> a loader returning arrays in memory.

A loader is `(dataset_config) -> dict[str, np.ndarray]` following the contract in
docs/ARCHITECTURE.md (inputs, mask?, emotion, subject, dataset, clip). Loaders sit above the TFDS
builders (`tfds_casme2/`), which they build on demand, and the readers (`microexp.data`), which
never import them. Adding a dataset is writing one module `microexp/loaders/<name>.py` with a
decorated loader and naming it in `_MODULES` (a module of one's own: `name = "my_module:name"`).
The conventions every loader shares live here: `resolve_data_dir`, `read_examples`, `check_fields`.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any, Callable, Iterable, Mapping

from absl import logging
import numpy as np

from microexp.registry import Registry

# Modules whose import registers loaders (imported on first lookup).
_MODULES = ("microexp.loaders.casme2", "microexp.loaders.megc", "microexp.loaders.casme3",
            "microexp.loaders.dfme", "microexp.loaders.samm", "microexp.loaders.smic",
            "microexp.loaders.composite", "microexp.loaders.long_videos")
_LOADERS = Registry("dataset", modules=_MODULES)

Loader = Callable[..., dict[str, np.ndarray]]

# Every loader caches its builds here unless config.dataset.data_dir / $MICROEXP_DATA_DIR says
# otherwise: the repository's ./data, next to data/weights (README, demo), never a global cache.
DEFAULT_DATA_DIR = "./data"
# config.dataset fields no loader reads: the engine reads them (name: the registry; classes: the
# class subset; crop_size: predict's face crop, recorded in final/model.json).
ENGINE_FIELDS = ("name", "classes", "crop_size")


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


def field(dataset_config, name: str, default: Any = None) -> Any:
  """Field of a ConfigDict / dict / object, or `default` when absent or None."""
  if isinstance(dataset_config, Mapping) or hasattr(dataset_config, "get"):
    value = dataset_config.get(name, default)
  else:
    value = getattr(dataset_config, name, default)
  return default if value is None else value


def required_manual_dir(dataset_config, copy: str) -> Any:
  """`config.dataset.manual_dir`; when unset, a ValueError asking for `copy` (what to point it
  at, e.g. 'CAS(ME)^3 copy (docs/data.md)')."""
  value = field(dataset_config, "manual_dir")
  if value is None:
    raise ValueError(f"config.dataset.manual_dir is not set: point it at your {copy} or set "
                     "config.dataset.synthetic=True.")
  return value


def flow_settings(dataset_config) -> dict[str, Any]:
  """The TFDS builders' flow fields of `config.dataset` (their make_config's keyword arguments):
  image_size, flow_method, third_channel, flow_kwargs (None when empty)."""
  return dict(image_size=field(dataset_config, "image_size"),
              flow_method=field(dataset_config, "flow_method"),
              third_channel=field(dataset_config, "third_channel"),
              flow_kwargs=dict(field(dataset_config, "flow_kwargs", {})) or None)


def qualified_subjects(subjects, datasets) -> np.ndarray:
  """[N] subjects, [N] datasets -> [N] 'dataset/subject' (already qualified names are kept):
  the names of composites and cross-dataset protocols, where two datasets' subjects may collide."""
  return np.array([s if s.startswith(f"{d}/") else f"{d}/{s}"
                   for s, d in zip(map(str, subjects), map(str, datasets))])


def resolve_data_dir(dataset_config) -> pathlib.Path:
  """config.dataset.data_dir, else $MICROEXP_DATA_DIR, else ./data (DEFAULT_DATA_DIR)."""
  return pathlib.Path(field(dataset_config, "data_dir")
                      or os.environ.get("MICROEXP_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()


def check_fields(dataset_config, loader: str, reads: Iterable[str]) -> None:
  """Refuses every set field of `config.dataset` that neither `loader` nor the engine reads.

  A field counts as set unless it is absent, None, False (a switched-off flag such as `au_sides`)
  or empty ({}): a silently dropped option would let a run claim a setting it never used. The error names the field and what the loader reads.
  """
  known = set(reads) | set(ENGINE_FIELDS)
  keys = dataset_config.keys() if hasattr(dataset_config, "keys") else vars(dataset_config)
  unused = sorted(k for k in keys if k not in known and not _empty(field(dataset_config, k)))
  if unused:
    raise ValueError(
        f"{loader}: config.dataset.{unused[0]} is set but the {loader!r} loader does not use it"
        + (f" (nor {', '.join(unused[1:])})" if len(unused) > 1 else "")
        + f"; remove it. It reads: {', '.join(sorted(known))}.")


def _empty(value) -> bool:
  return value is None or value is False or (hasattr(value, "__len__") and len(value) == 0)


def read_examples(builder, text_fields: Iterable[str]) -> list[dict[str, Any]]:
  """All 'train' examples of a prepared TFDS builder as numpy dicts, `text_fields` decoded to str.

  array_record is read with `as_data_source` (no TensorFlow needed); tfrecord with `tfds.as_numpy`.
  Order: the builder's (stable keys); callers sort if they need another.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
    source = builder.as_data_source(split="train")
    examples = [source[i] for i in range(len(source))]
  else:
    examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
  for ex in examples:
    for k in text_fields:
      ex[k] = ex[k].decode() if isinstance(ex[k], bytes) else str(ex[k])
  return examples


def prepare(builder, manual_dir, title: str, **prepare_kwargs):
  """Builds a TFDS builder once from `manual_dir` (the Python `tfds build`); reuses a finished build.

  `title` names the dataset in the log and in the error for a missing `manual_dir`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  name = builder.builder_config.name
  if builder.data_path.exists():
    logging.info("%s %s: reusing %s", title, name, builder.data_path)
    return builder
  manual_dir = pathlib.Path(manual_dir).expanduser()
  if not manual_dir.is_dir():
    raise FileNotFoundError(
        f"{title} manual_dir {manual_dir} does not exist. Set config.dataset.manual_dir to your "
        f"copy (layouts: docs/data.md, docs/datasets.md), or config.dataset.synthetic=True.")
  logging.info("%s %s: building from %s into %s ...", title, name, manual_dir, builder.data_path)
  start = time.time()
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)),
      **prepare_kwargs)
  logging.info("%s %s: built in %.1f s.", title, name, time.time() - start)
  return builder
