"""Shared loader of the apex-flow TFDS datasets (CAS(ME)^3, DFME, SAMM, SMIC-HS) -> arrays.

Builds the dataset on first use (from the user's copy, or from a synthetic copy written in the
official layout), then returns the registry's arrays (docs/ARCHITECTURE.md): `inputs` float32
[N, S, S, 3] (u, v, magnitude|strain scaled by `config.dataset.flow_normalization`, as the CASME II
loader), `emotion`, `subject`, `dataset`, `clip`, `au` float32 [N, A] + `au_names` str [N, A]
(`microexp.data.au_lib.au_arrays`; `config.dataset.au_sides` keeps L/R apart), `fps`
float32 [N], `face_box` int32 [N, 4], `alignment` str [N] (the method that ran per clip:
'landmarks', 'box' when none were found, 'none'), `face_detector` str [N], and the builder's extra
text features (DFME: `split`).

`config.dataset.alignment` ('landmarks' | 'box' | 'none'; None = the builder's default:
'landmarks' for uncropped frames, 'none' for SMIC's face crops) selects the builder config, so
different alignments never share a build. Set it explicitly: model.json records the config's
value and predict repeats it (an unset value makes predict use its detector box).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable

from absl import logging
import numpy as np

from microexp.vision import flow as flow_lib
from microexp.data import action_units as au_lib
from microexp.loaders import check_fields
from microexp.loaders import field
from microexp.loaders import flow_settings
from microexp.loaders import prepare
from microexp.loaders import required_manual_dir
from microexp.loaders import resolve_data_dir

# The datasets this module loads (their flow: the aligned face at most `align.WORK_WIDTH` px wide,
# `align.align_for_flow`); model.json records that width so predict crops alike (workdir.py).
DATASETS = ("casme3", "dfme", "samm", "smic")
# config.dataset fields every apex-flow loader reads (any other set field is refused).
FIELDS = ("representation", "synthetic", "synthetic_kwargs", "manual_dir", "data_dir", "image_size",
          "flow_method", "flow_kwargs", "third_channel", "flow_normalization", "au_sides",
          "workers", "alignment")


def _digest(kwargs: dict[str, Any]) -> str:
  return hashlib.sha1(json.dumps(kwargs, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def found_rates(methods: np.ndarray, detectors: np.ndarray, asked: str) -> str:
  """The face-found report of per-clip `alignment` / `face_detector` arrays (str [N])."""
  from tfds_casme2 import apex_flow_base as apex_flow  # pylint: disable=g-import-not-at-top

  counts: dict[tuple[str, str], int] = {}
  for key in zip(methods.tolist(), detectors.tolist()):
    counts[key] = counts.get(key, 0) + 1
  return apex_flow.found_report(counts, asked)


def build(builder_cls, manual_dir, data_dir, config, *, workers: int | None = None):
  """Builds (once) and returns the prepared builder: the Python equivalent of `tfds build`."""
  builder = builder_cls(config=config, data_dir=os.fspath(data_dir), workers=workers)
  return prepare(builder, manual_dir, builder_cls.DATASET_TITLE)


def load(dataset_config, *, name: str, builder_cls, write_synthetic: Callable[..., Any],
         extra_text: tuple[str, ...] = (), extra_fields: tuple[str, ...] = (),
         ) -> dict[str, np.ndarray]:
  """`config.dataset` -> arrays (module doc) for the apex-flow builder `builder_cls`.

  Fields read: representation ('apex_flow' only), synthetic, synthetic_kwargs, manual_dir,
  data_dir, image_size, flow_method, flow_kwargs, third_channel, flow_normalization, au_sides,
  workers, alignment.
  """
  from tfds_casme2 import apex_flow_base as apex_flow  # pylint: disable=g-import-not-at-top

  get = field
  check_fields(dataset_config, name, FIELDS + extra_fields)
  title = builder_cls.DATASET_TITLE
  representation = get(dataset_config, "representation", "apex_flow")
  if representation != "apex_flow":
    raise ValueError(f"{name}: representation {representation!r} is not built yet; "
                     "use 'apex_flow'.")
  normalization = flow_lib.flow_normalization(dataset_config)
  data_dir = resolve_data_dir(dataset_config)
  if get(dataset_config, "synthetic", False):
    kwargs = dict(get(dataset_config, "synthetic_kwargs", {}))
    digest = _digest(kwargs)
    manual_dir = write_synthetic(data_dir / "manual" / f"synthetic_{name}-{digest}", **kwargs)
    tfds_dir = data_dir / "synthetic" / f"{name}-{digest}"  # never mixed with a real build
  else:
    manual_dir = required_manual_dir(dataset_config, f"{title} copy (docs/data.md)")
    tfds_dir = data_dir
  config = apex_flow.make_config(
      builder_cls, **flow_settings(dataset_config),
      alignment=get(dataset_config, "alignment"))
  if get(dataset_config, "alignment") is None and builder_cls.CROP_FACES:
    default = apex_flow.default_alignment(builder_cls)
    logging.warning("%s: config.dataset.alignment is unset; the builder aligns its uncropped "
                    "frames with %r, but model.json will record none and predict will use its "
                    "detector box. Set config.dataset.alignment=%r.", name, default, default)
  builder = build(builder_cls, manual_dir, tfds_dir, config,
                  workers=get(dataset_config, "workers"))
  source = builder.as_data_source(split="train")
  examples = sorted((source[i] for i in range(len(source))),
                    key=lambda e: (_text(e["subject"]), _text(e["clip"])))
  emotion = builder.info.features["emotion"]
  subjects = np.array([_text(e["subject"]) for e in examples])
  out = dict(
      inputs=flow_lib.normalize_flows(np.stack([e["flow"] for e in examples]), normalization),
      emotion=np.array([emotion.int2str(int(e["emotion"])) for e in examples]),
      subject=subjects,
      dataset=np.array([name] * len(examples)),
      clip=np.array([f"{s}/{_text(e['clip'])}" for s, e in zip(subjects, examples)]),
      fps=np.array([e["fps"] for e in examples], np.float32),
      face_box=np.stack([e["face_box"] for e in examples]).astype(np.int32),
      alignment=np.array([_text(e["alignment"]) for e in examples]),
      face_detector=np.array([_text(e["face_detector"]) for e in examples]),
      **au_lib.au_arrays([_text(e["action_units"]).split("+") if _text(e["action_units"])
                                else () for e in examples],
                               sides=bool(get(dataset_config, "au_sides", False))),
      **{k: np.array([_text(e[k]) for e in examples]) for k in extra_text})
  logging.info("%s %s: %d clips of %d subjects loaded, inputs %s, %d AUs; %s.", title, config.name,
               len(examples), len(set(subjects)), out["inputs"].shape, out["au"].shape[1],
               found_rates(out["alignment"], out["face_detector"],
                           config.alignment or apex_flow.default_alignment(builder_cls)))
  return out
