"""MEGC2019 loaders: the precomputed flow release ('megc2019_flow', via the TFDS builder
tfds_casme2/megc2019_flow) and the composite computed from CASME II + SAMM + SMIC-HS frames
('megc2019', `microexp.loaders.megc_frames.build_composite`).

Both return the registry's arrays (docs/ARCHITECTURE.md; values: microexp/loaders/megc_frames.py); use
`config.dataset.classes = 'megc'`. Each load logs the per-dataset counts next to the real data's.
"""

from __future__ import annotations

import pathlib

from absl import logging
import numpy as np

from microexp.vision import flow as flow_lib
from microexp.vision import face_regions
from microexp.loaders import megc_frames as megc_lib
from microexp.synthetic import megc as synthetic_megc
from microexp.data.emotions import MEGC_CLASSES
from microexp.loaders import check_fields
from microexp.loaders import field
from microexp.loaders import read_examples
from microexp.loaders import register
from microexp.loaders import resolve_data_dir

# config.dataset fields each loader reads; any other set field is refused (check_fields).
# flow_method / third_channel of the release are fixed (TV-L1, strain): predict recomputes the flow
# with them, so they are checked, not free. The release has no frames: no flow_kwargs, no workers.
_RELEASE = ("representation", "synthetic", "manual_dir", "data_dir", "image_size", "gt_csv",
            "flow_method", "third_channel", "flow_normalization")
FIELDS = {"megc2019_flow": _RELEASE + ("regions", "synthetic_difficulty"),
          "megc2019": _RELEASE + ("flow_kwargs", "workers", "au_sides", "alignment")}


def _resize(x: np.ndarray, size: int) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top
  if x.shape[1:3] == (size, size):
    return x
  return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in x])


def _log(title: str, lines) -> None:
  logging.info("%s", title)
  for line in lines:
    logging.info("  %s", line)


def _check_apex_flow(config, loader: str) -> None:
  representation = field(config, "representation", "apex_flow")
  if representation != "apex_flow":
    raise ValueError(f"{loader}: config.dataset.representation={representation!r}; MEGC2019 is "
                     "onset->apex flow only ('apex_flow').")


@register("megc2019_flow")
def load_megc2019_flow(config) -> dict[str, np.ndarray]:
  """Precomputed release via the `megc2019_flow` TFDS builder (built once into data_dir).

  config: `manual_dir` (the release folder), `data_dir`, `synthetic` (with optional
  `synthetic_difficulty` 'easy' | 'hard'), `image_size` (28 = native; other sizes are resized),
  optional `gt_csv`, `regions` ('none' | 'mosaic': inputs become HTNet's 2x2 mosaic of the facial
  regions, docs/megc.md; arrays add `region_centres` int32 [N, 4, 2]); `flow_method` / `third_channel` must name the
  release's own flow ('tvl1', 'strain'), which predict recomputes; `flow_kwargs`, `workers`,
  `sequence` and `synthetic_kwargs` are refused (nothing to compute here).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfds_casme2.megc2019_flow import megc2019_flow_dataset_builder as builder_lib  # pylint: disable=g-import-not-at-top

  check_fields(config, "megc2019_flow", FIELDS["megc2019_flow"])
  _check_apex_flow(config, "megc2019_flow")
  for name, release in (("flow_method", "tvl1"), ("third_channel", "strain")):
    if field(config, name, release) != release:
      raise ValueError(
          f"megc2019_flow: config.dataset.{name}={config.get(name)!r}, but the precomputed "
          f"release is {release!r} (predict recomputes the flow with this setting). Set "
          f"{name}={release!r}, or compute the flow from frames (config.dataset.name='megc2019').")
  if flow_lib.flow_normalization(config) != "per_clip":
    raise ValueError(
        f"megc2019_flow: flow_normalization={config.get('flow_normalization')!r} is impossible: "
        "the precomputed release stores per-image min-max PNGs (raw amplitudes are lost). Use "
        "'per_clip', or the composite from frames (config.dataset.name='megc2019').")
  data_dir = resolve_data_dir(config)
  if config.get("synthetic"):
    difficulty = field(config, "synthetic_difficulty", "easy")
    suffix = "" if difficulty == "easy" else f"_{difficulty}"
    manual_dir = synthetic_megc.write_synthetic_megc_flow(
        data_dir / "synthetic" / f"megc2019_flow_raw{suffix}", difficulty=difficulty)
    data_dir = data_dir / "synthetic" / difficulty if suffix else data_dir / "synthetic"
  elif config.get("manual_dir"):
    manual_dir = pathlib.Path(config.manual_dir).expanduser()
  else:
    raise ValueError("megc2019_flow: set config.dataset.manual_dir to the precomputed flow release "
                     "(PNGs + ground-truth CSV; see docs/megc.md) or config.dataset.synthetic=True.")
  builder = builder_lib.Builder(data_dir=str(data_dir), gt_csv=config.get("gt_csv"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir)))
  examples = read_examples(builder, ("subject", "dataset", "clip"))
  flows = np.stack([e["flow"] for e in examples]).astype(np.float32) * (2 / 255.0) - 1
  centres = np.stack([e["region_centres"] for e in examples]).astype(np.int32)
  regions = field(config, "regions", "none")
  if regions == "mosaic":
    flows = face_regions.region_mosaics(flows, centres)
  elif regions != "none":
    raise ValueError(f"megc2019_flow: regions={regions!r}; expected 'none' or 'mosaic'.")
  text = lambda key: np.array([e[key] for e in examples])
  arrays = dict(
      inputs=flow_lib.normalize_flows(
          _resize(flows, int(config.get("image_size") or flows.shape[1])), "per_clip"),
      emotion=np.array([MEGC_CLASSES[int(e["label"])] for e in examples]),
      subject=text("subject"), dataset=text("dataset"), clip=text("clip"),
      region_centres=centres)
  _log(f"megc2019_flow from {manual_dir}:", megc_lib.count_report(
      arrays["dataset"], arrays["subject"], arrays["emotion"]))
  return arrays


@register("megc2019")
def load_megc2019(config) -> dict[str, np.ndarray]:
  """Composite computed from frames. config: `manual_dir` (holding CASME2/, SAMM/, SMIC/) or
  `synthetic` (written under `data_dir`), `image_size`, `flow_method`, `flow_kwargs`,
  `third_channel`, `flow_normalization`, optional `gt_csv`, `workers` (flow processes; default all
  cores, 1 for the small synthetic set), `alignment` of SAMM's uncropped frames ('landmarks' |
  'box' | 'none'; None = 'none', the whole frame). `sequence` and `synthetic_kwargs` are refused."""
  check_fields(config, "megc2019", FIELDS["megc2019"])
  _check_apex_flow(config, "megc2019")
  if config.get("synthetic"):
    root = synthetic_megc.write_synthetic_megc(
        resolve_data_dir(config) / "synthetic" / "megc2019_raw")
  elif config.get("manual_dir"):
    root = pathlib.Path(config.manual_dir).expanduser()
  else:
    raise ValueError("megc2019: set config.dataset.manual_dir to a folder holding CASME2/, SAMM/ "
                     "and SMIC/ (docs/megc.md) or config.dataset.synthetic=True.")
  arrays, report = megc_lib.build_composite(
      root, image_size=int(config.get("image_size") or 28),
      flow_method=config.get("flow_method") or "farneback",
      flow_kwargs=dict(field(config, "flow_kwargs", {})),
      third_channel=config.get("third_channel") or "strain", gt_csv=config.get("gt_csv"),
      flow_normalization=flow_lib.flow_normalization(config),
      workers=field(config, "workers", 1 if config.get("synthetic") else None),
      au_sides=bool(field(config, "au_sides", False)),
      alignment=field(config, "alignment", "none"))
  _log(f"MEGC2019 composite from {root}:", report)
  return arrays
