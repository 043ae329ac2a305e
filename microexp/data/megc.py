"""MEGC2019 loaders: the precomputed flow release ('megc2019_flow') and the composite computed from
CASME II + SAMM + SMIC-HS frames ('megc2019').

Both return the registry's arrays (docs/ARCHITECTURE.md) with `inputs` float32 [N, S, S, 3] =
(u, v, strain) scaled by `config.dataset.flow_normalization` (`microexp.flow.normalize_flow`, the
same function the CASME II loader and predict use): 'per_clip' (default) = each channel min-max
scaled per clip to -1..1 (the STSTNet release's normalisation, so that models move between the
two; negating u, the augmentation's horizontal flip, is exactly the min-max image of the mirrored
flow, and zero padding is mid-range); 'none' = raw pixels (composite only: the precomputed release
stores per-image min-max PNGs, so its raw amplitudes are lost); `emotion` the MEGC class name
('negative' | 'positive' | 'surprise'), `subject` dataset-qualified ('casme2/sub01', 'samm/006',
's01' -> 'smic/s01'), `dataset`, `clip`. Use `config.dataset.classes = 'megc'`.

On the real data both give 442 clips from 68 subjects (EXPECTED); each load logs the per-dataset
counts next to the expected ones.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib

from absl import logging
import numpy as np

from microexp import flow as flow_lib
from microexp.data import casme2
from microexp.data import face_regions
from microexp.data import megc_flow
from microexp.data import samm
from microexp.data import smic
from microexp.data import synthetic_hard
from microexp.data import synthetic_megc
from microexp.data.emotions import MEGC_CLASSES, get_subset
from microexp.data.registry import register

# (clips, subjects) of MEGC2019's composite (combined_3class_gt.csv): 442 clips, 68 subjects.
EXPECTED = {"casme2": (145, 24), "samm": (133, 28), "smic": (164, 16)}
# Class counts (negative, positive, surprise) in the official CSV.
EXPECTED_CLASSES = synthetic_hard.CLASS_COUNTS
# Folder names searched (case-insensitively) under the composite's manual_dir.
FOLDERS = {"casme2": ("casme2", "casme ii", "casme_ii", "casmeii"), "samm": ("samm",),
           "smic": ("smic", "smic-hs", "smic_hs", "hs")}




def _resize(x: np.ndarray, size: int) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top
  if x.shape[1:3] == (size, size):
    return x
  return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in x])


def count_report(dataset: np.ndarray, subject: np.ndarray, emotion: np.ndarray) -> list[str]:
  """One line per dataset: clips, subjects, class counts, and the real data's expected values."""
  lines = []
  for name in megc_flow.DATASETS:
    keep = dataset == name
    classes = tuple(int(np.sum(emotion[keep] == c)) for c in MEGC_CLASSES)
    clips, subjects = EXPECTED[name]
    lines.append(f"{name}: {int(keep.sum())} clips, {len(set(subject[keep]))} subjects, "
                 f"negative/positive/surprise {classes} (real MEGC2019: {clips} clips, "
                 f"{subjects} subjects, {EXPECTED_CLASSES[name]}).")
  lines.append(f"total: {len(dataset)} clips, {len(set(subject))} subjects (real: 442, 68).")
  return lines


def _data_dir(config) -> pathlib.Path:
  data_dir = config.get("data_dir") or os.path.expanduser("~/tensorflow_datasets")
  return pathlib.Path(data_dir)


def _log(title: str, lines) -> None:
  logging.info("%s", title)
  for line in lines:
    logging.info("  %s", line)


# --- the precomputed release -------------------------------------------------------------------


@register("megc2019_flow")
def load_megc2019_flow(config) -> dict[str, np.ndarray]:
  """Precomputed release via the `megc2019_flow` TFDS builder (built once into data_dir).

  config: `manual_dir` (the release folder), `data_dir`, `synthetic` (with optional
  `synthetic_difficulty` 'easy' | 'hard'), `image_size` (28 = native; other sizes are resized),
  optional `gt_csv`, `regions` ('none' | 'mosaic': inputs become HTNet's 2x2 mosaic of the facial
  regions, docs/megc.md). Arrays add `region_centres` int32 [N, 4, 2].
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfds_casme2.megc2019_flow import megc2019_flow_dataset_builder as builder_lib  # pylint: disable=g-import-not-at-top

  if flow_lib.flow_normalization(config) != "per_clip":
    raise ValueError(
        f"megc2019_flow: flow_normalization={config.get('flow_normalization')!r} is impossible: "
        "the precomputed release stores per-image min-max PNGs (raw amplitudes are lost). Use "
        "'per_clip', or the composite from frames (config.dataset.name='megc2019').")
  data_dir = _data_dir(config)
  if config.get("synthetic"):
    difficulty = config.get("synthetic_difficulty") or "easy"
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
  source = builder.as_data_source(split="train")
  examples = [source[i] for i in range(len(source))]
  flows = np.stack([e["flow"] for e in examples]).astype(np.float32) * (2 / 255.0) - 1
  centres = np.stack([e["region_centres"] for e in examples]).astype(np.int32)
  regions = config.get("regions") or "none"
  if regions == "mosaic":
    flows = face_regions.region_mosaics(flows, centres)
  elif regions != "none":
    raise ValueError(f"megc2019_flow: regions={regions!r}; expected 'none' or 'mosaic'.")
  text = lambda key: np.array([e[key].decode() if isinstance(e[key], bytes) else str(e[key])
                               for e in examples])
  arrays = dict(
      inputs=flow_lib.normalize_flows(
          _resize(flows, int(config.get("image_size") or flows.shape[1])), "per_clip"),
      emotion=np.array([MEGC_CLASSES[int(e["label"])] for e in examples]),
      subject=text("subject"), dataset=text("dataset"), clip=text("clip"),
      region_centres=centres)
  _log(f"megc2019_flow from {manual_dir}:", count_report(
      arrays["dataset"], arrays["subject"], arrays["emotion"]))
  return arrays


# --- the composite from frames -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CompositeClip:
  """One composite clip: canonical ids, MEGC class name, onset / apex frame files."""

  dataset: str
  subject: str  # unqualified canonical ('sub01', '006', 's01')
  clip: str
  emotion: str  # MEGC class name
  onset_path: pathlib.Path
  apex_path: pathlib.Path


def find_dataset_dirs(root) -> dict[str, pathlib.Path]:
  """`root/CASME2`, `root/SAMM`, `root/SMIC` (names as in FOLDERS, any case); error if missing."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"MEGC2019 root {root} is not a directory.")
  found = {}
  for name, options in FOLDERS.items():
    match = [p for p in root.iterdir() if p.is_dir() and p.name.lower() in options]
    if len(match) != 1:
      raise FileNotFoundError(
          f"Expected one {name} folder (named one of {options}, any case) in {root}; found "
          f"{[p.name for p in match]}. Layout: {root}/CASME2, {root}/SAMM, {root}/SMIC (docs/megc.md).")
    found[name] = match[0]
  return found


def list_composite(dirs: dict[str, pathlib.Path], *, gt_csv=None,
                   spot_method: str = "dis") -> tuple[list[CompositeClip], list[str]]:
  """Reads the three datasets and maps their emotions to MEGC classes.

  Without `gt_csv` the class is the `megc` subset of the dataset's emotion (clips without one,
  e.g. CASME II 'others', SAMM 'other', are dropped). With it, the CSV is authoritative: exactly its
  clips, with its labels; a CSV row with no clip on disk is an error listing them all.
  """
  megc = get_subset("megc")
  clips, report = [], []
  readers = {"casme2": lambda d: casme2.list_clips(d, layout="cropped"),
             "samm": functools.partial(samm.list_clips, spot_method=spot_method),
             "smic": functools.partial(smic.list_clips, spot_method=spot_method)}
  for name, reader in readers.items():
    found, notes = reader(dirs[name])
    report += [f"{name}: {n}" for n in notes]
    dropped = {}
    for c in found:
      r = c.record
      subject = megc_flow.canonical_subject(name, r.subject)
      label = megc.mapping.get(r.emotion, -1)
      if label < 0 and gt_csv is None:
        dropped[r.emotion] = dropped.get(r.emotion, 0) + 1
        continue
      clips.append(CompositeClip(name, subject, megc_flow.canonical_clip(name, r.filename),
                                 MEGC_CLASSES[label] if label >= 0 else "",
                                 c.frame_paths[c.onset_index], c.frame_paths[c.apex_index]))
    if dropped:
      report.append(f"{name}: dropped (no MEGC class): {dropped}.")
  if gt_csv is not None:
    records, notes = megc_flow.read_ground_truth(gt_csv)
    report += notes
    by_key = {(c.dataset, c.subject, c.clip): c for c in clips}
    missing = [r for r in records if r.key not in by_key]
    if missing:
      raise megc_flow.FlowSetError(
          f"{len(missing)} clip(s) of {gt_csv} not found in the datasets:\n" +
          "\n".join(f"  {'/'.join(r.key)}" for r in missing))
    changed = sum(by_key[r.key].emotion != MEGC_CLASSES[r.label] for r in records)
    report.append(f"{gt_csv}: {len(records)} clips kept, {len(clips) - len(records)} not in it "
                  f"dropped, {changed} label(s) differ from the emotion mapping (CSV wins).")
    clips = [dataclasses.replace(by_key[r.key], emotion=MEGC_CLASSES[r.label]) for r in records]
  return clips, report


def _read_pair(onset_path, apex_path, work_width: int) -> tuple[np.ndarray, np.ndarray]:
  """Gray onset/apex, shrunk to `work_width` px wide (flow cost; SAMM frames are 2040 px)."""
  import cv2  # pylint: disable=g-import-not-at-top
  pair = casme2.read_frames([onset_path, apex_path], grayscale=True)[..., 0]
  h, w = pair.shape[1:]
  if w > work_width:
    size = (work_width, max(8, round(h * work_width / w)))
    pair = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in pair])
  return pair[0], pair[1]


def _pair_flow(onset_path, apex_path, *, work_width, **kwargs):
  return flow_lib.apex_flow_image(*_read_pair(onset_path, apex_path, work_width), **kwargs)


def build_composite(root=None, *, dirs: dict[str, pathlib.Path] | None = None, image_size: int = 28,
                    flow_method: str = "farneback", third_channel: str = "strain",
                    gt_csv=None, work_width: int = 256, workers: int | None = 1,
                    spot_method: str = "dis", flow_normalization: str = "per_clip",
                    ) -> tuple[dict[str, np.ndarray], list[str]]:
  """The MEGC2019 composite as arrays (see the module doc) and the report of every fix/drop."""
  dirs = dirs or find_dataset_dirs(root)
  clips, report = list_composite(dirs, gt_csv=gt_csv, spot_method=spot_method)
  fn = functools.partial(_pair_flow, work_width=work_width, method=flow_method,
                         third_channel=third_channel, size=image_size)
  logging.info("MEGC2019 composite: %s flow of %d clips.", flow_method, len(clips))
  flows = list(flow_lib.map_clips(fn, ((c.onset_path, c.apex_path) for c in clips),
                                  workers=workers))
  arrays = dict(
      inputs=flow_lib.normalize_flows(np.stack(flows), flow_normalization),
      emotion=np.array([c.emotion for c in clips]),
      subject=np.array([f"{c.dataset}/{c.subject}" for c in clips]),
      dataset=np.array([c.dataset for c in clips]),
      clip=np.array([c.clip for c in clips]))
  return arrays, report + count_report(arrays["dataset"], arrays["subject"], arrays["emotion"])


@register("megc2019")
def load_megc2019(config) -> dict[str, np.ndarray]:
  """Composite computed from frames. config: `manual_dir` (holding CASME2/, SAMM/, SMIC/) or
  `synthetic`, `image_size`, `flow_method`, `third_channel`, optional `gt_csv`."""
  if config.get("synthetic"):
    root = synthetic_megc.write_synthetic_megc(_data_dir(config) / "synthetic" / "megc2019_raw")
  elif config.get("manual_dir"):
    root = pathlib.Path(config.manual_dir).expanduser()
  else:
    raise ValueError("megc2019: set config.dataset.manual_dir to a folder holding CASME2/, SAMM/ "
                     "and SMIC/ (docs/megc.md) or config.dataset.synthetic=True.")
  arrays, report = build_composite(
      root, image_size=int(config.get("image_size") or 28),
      flow_method=config.get("flow_method") or "farneback",
      third_channel=config.get("third_channel") or "strain", gt_csv=config.get("gt_csv"),
      flow_normalization=flow_lib.flow_normalization(config),
      workers=None if not config.get("synthetic") else 1)
  _log(f"MEGC2019 composite from {root}:", report)
  return arrays
