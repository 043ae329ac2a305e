"""A training workdir's files: the JSON reader and writer, and the final-model export.

The engine writes `results.json` and `final/` (model.json + variables*.msgpack); predict and report
read them back with `read_json` (schemas: docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import os
import pathlib

from absl import logging

# Dataset representations that are optical flow (channels u, v, magnitude/strain).
FLOW_REPRESENTATIONS = ("apex_flow", "flow_sequences", "flow_rows")  # flow_rows: long videos


def read_json(path: str | pathlib.Path, *, required: tuple[str, ...] = (),
              missing_hint: str = "missing.") -> dict:
  """Reads one workdir JSON file; a clear error naming the file if absent, invalid or incomplete.

  Args:
    path: the file.
    required: top-level keys it must have.
    missing_hint: what to tell the user when the file does not exist.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: {missing_hint}")
  try:
    content = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e}).") from e
  missing = [k for k in required if k not in content]
  if missing:
    raise ValueError(f"{path}: missing keys {missing} (schema: docs/ARCHITECTURE.md).")
  return content


def write_json_atomic(path: str | os.PathLike, obj) -> None:
  """Writes JSON via a temporary file and a rename, so readers never see half a file."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  with open(tmp, "w") as f:
    json.dump(obj, f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def config_dict(config) -> dict:
  """A ConfigDict as plain JSON-able dicts (what results.json and model.json record)."""
  return json.loads(config.to_json_best_effort())


def training_crop_size(dataset_config) -> list[int] | None:
  """[H, W] of the face crops the flow was computed on (predict crops to it), None if unknown.

  `config.dataset.crop_size` if set, else the synthetic CASME II's image size; None (predict's
  default, CASME II's ~340x280) for real data.
  """
  size = dataset_config.get("crop_size")
  if size is None and dataset_config.get("synthetic") and dataset_config.get("name") == "casme2":
    size = (dataset_config.get("synthetic_kwargs") or {}).get("image_size")
  if size is None:
    return None
  return [int(size), int(size)] if isinstance(size, (int, float)) else [int(s) for s in size]


def flow_work_width(dataset_config) -> int | None:
  """The widest face crop the dataset's builder computes flow on (`align.align_for_flow`: the face
  box shrunk to at most this width, aspect kept) for the apex-flow builders
  (`microexp.loaders.flow_datasets.DATASETS`); None for CASME II (flow on the whole Cropped frame,
  predict uses `training_crop_size`)."""
  from microexp.vision import align  # pylint: disable=g-import-not-at-top
  from microexp.loaders import flow_datasets as apex_flow  # pylint: disable=g-import-not-at-top

  if (dataset_config.get("crop_size") is not None
      or dataset_config.get("name") not in apex_flow.DATASETS):
    return None
  return int(align.WORK_WIDTH)


def preprocessing_spec(ds, input_shape) -> dict:
  """model.json's `preprocessing`: how the inputs were made, everything predict must repeat."""
  from microexp.vision import flow as flow_lib  # pylint: disable=g-import-not-at-top

  is_flow = ds.representation in FLOW_REPRESENTATIONS
  third = ds.get("third_channel", "magnitude")
  channels = (["u", "v", third] if is_flow else
              ["gray"] if ds.get("sequence", {}).get("grayscale", False) else ["r", "g", "b"])
  return {"dataset": ds.name, "representation": ds.representation,
          "image_size": ds.get("image_size"), "flow_method": ds.get("flow_method"),
          "flow_kwargs": dict(ds.get("flow_kwargs") or {}),
          "third_channel": third, "channel_order": channels,
          "flow_normalization": flow_lib.flow_normalization(ds) if is_flow else None,
          "crop_size": training_crop_size(ds),
          "work_width": flow_work_width(ds),  # set: predict crops the face box, this wide at most
          "alignment": ds.get("alignment"),  # microexp/vision/align.py; predict repeats it
          "sequence": dict(ds.get("sequence", {}) or {}),
          "input_shape": list(input_shape)}


def save_final(workdir: str | pathlib.Path, config, class_names, results: list[dict],
               epochs: int, input_shape) -> None:
  """WORKDIR/final/: model.json + variables.msgpack (first seed) + variables_seed<s>.msgpack.

  results: one dict per final seed with 'seed' and 'variables' (host arrays of one model).
  """
  from flax import serialization  # pylint: disable=g-import-not-at-top

  out = pathlib.Path(workdir) / "final"
  out.mkdir(parents=True, exist_ok=True)
  files = []
  for i, r in enumerate(results):
    fname = "variables.msgpack" if i == 0 else f"variables_seed{r['seed']}.msgpack"
    (out / fname).write_bytes(serialization.to_bytes(r["variables"]))
    files.append({"seed": r["seed"], "file": fname})
  model_json = {
      "config": config_dict(config), "class_names": list(class_names),
      "model": {"name": config.model.name, "kwargs": config.model.kwargs.to_dict(),
                "dtype": config.model.get("dtype", "float32")},
      "preprocessing": preprocessing_spec(config.dataset, input_shape),
      "trained_epochs": epochs, "variables": files,
  }
  write_json_atomic(out / "model.json", model_json)
  logging.info("Final model(s) on all subjects written to %s (%d seed(s)).", out, len(files))
