"""The MEGC2019 composite read from frames: CASME II + SAMM + SMIC-HS -> (u, v, strain) apex flow.

`build_composite` returns the arrays of docs/ARCHITECTURE.md with `inputs` float32 [N, S, S, 3] =
(u, v, strain) scaled by `flow_normalization` (`microexp.vision.flow.normalize_flow`, the same function
the CASME II loader and predict use): 'per_clip' (default) = each channel min-max scaled per clip
to -1..1 (the STSTNet release's normalisation, so that models move between the composite and the
precomputed release; negating u, the augmentation's horizontal flip, is exactly the min-max image
of the mirrored flow, and zero padding is mid-range); 'none' = raw pixels; `emotion` the MEGC
class name ('negative' | 'positive' | 'surprise'), `subject` dataset-qualified ('casme2/sub01',
'samm/006', 's01' -> 'smic/s01'), `dataset`, `clip`. The registered loaders ('megc2019',
'megc2019_flow') live in `microexp/loaders/megc.py`.

SAMM's frames are uncropped (2040x1088): `alignment` ('landmarks' | 'box' | 'none',
`microexp.vision.align`) aligns its clips on the onset frame before the flow, as the apex-flow builders
do; CASME II's (`Cropped/`) and SMIC-HS's frames are face crops and are used whole. The
array `alignment` str [N] holds the method that ran per clip, and the report its face-found counts.

On the real data the composite has 442 clips from 68 subjects (EXPECTED); `count_report` puts the
per-dataset counts next to the expected ones.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

from absl import logging
import numpy as np

from microexp.vision import align
from microexp.vision import flow as flow_lib
from microexp.data import casme2
from microexp.data import action_units as au_lib
from microexp.data import megc_flow
from microexp.data import samm
from microexp.data import smic
from microexp.synthetic import megc_hard as synthetic_hard
from microexp.data.emotions import MEGC_CLASSES, get_subset

# (clips, subjects) of MEGC2019's composite (combined_3class_gt.csv): 442 clips, 68 subjects.
EXPECTED = {"casme2": (145, 24), "samm": (133, 28), "smic": (164, 16)}
# Class counts (negative, positive, surprise) in the official CSV.
EXPECTED_CLASSES = synthetic_hard.CLASS_COUNTS
# Folder names searched (case-insensitively) under the composite's manual_dir.
# Datasets whose frames are uncropped: the composite's `alignment` applies to them only.
UNCROPPED = ("samm",)
FOLDERS = {"casme2": ("casme2", "casme ii", "casme_ii", "casmeii"), "samm": ("samm",),
           "smic": ("smic", "smic-hs", "smic_hs", "hs")}


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



@dataclasses.dataclass(frozen=True)
class CompositeClip:
  """One composite clip: canonical ids, MEGC class name, onset / apex frame files."""

  dataset: str
  subject: str  # unqualified canonical ('sub01', '006', 's01')
  clip: str
  emotion: str  # MEGC class name
  onset_path: pathlib.Path
  apex_path: pathlib.Path
  action_units: tuple[str, ...] = ()  # the sheet's AU tokens (SMIC: none)


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
                                 c.frame_paths[c.onset_index], c.frame_paths[c.apex_index],
                                 r.action_units))
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


def _read_pair(onset_path, apex_path, work_width: int, alignment: str = "none",
               ) -> tuple[np.ndarray, align.Alignment | None]:
  """Gray onset/apex uint8 [2, h, w], at most `work_width` px wide (flow cost; SAMM frames are
  2040 px): the whole frames for 'none', else the face aligned on the onset
  (`align.align_for_flow`) and its Alignment."""
  import cv2  # pylint: disable=g-import-not-at-top
  if alignment != "none":
    crops, aligned = align.align_for_flow(casme2.read_frames([onset_path, apex_path]), alignment,
                                          work_width=work_width)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in crops]), aligned
  pair = casme2.read_frames([onset_path, apex_path], grayscale=True)[..., 0]
  h, w = pair.shape[1:]
  if w > work_width:
    size = (work_width, max(8, round(h * work_width / w)))
    pair = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in pair])
  return pair, None


def _pair_flow(onset_path, apex_path, alignment, *, work_width, **kwargs):
  """(flow [S, S, 3], the method that ran, what found the face)."""
  pair, aligned = _read_pair(onset_path, apex_path, work_width, alignment)
  result = flow_lib.apex_flow_image(pair[0], pair[1], **kwargs)
  return result, *((aligned.method, aligned.face.detector) if aligned else ("none", "none"))


def build_composite(root=None, *, dirs: dict[str, pathlib.Path] | None = None, image_size: int = 28,
                    flow_method: str = "farneback", flow_kwargs: dict | None = None,
                    third_channel: str = "strain",
                    gt_csv=None, work_width: int = 256, workers: int | None = 1,
                    spot_method: str = "dis", flow_normalization: str = "per_clip",
                    au_sides: bool = False, alignment: str = "none",
                    ) -> tuple[dict[str, np.ndarray], list[str]]:
  """The MEGC2019 composite as arrays (see the module doc) and the report of every fix/drop.

  `au` [N, A] / `au_names` [N, A]: the AUs of the CASME II and SAMM sheets (SMIC rows are zero).
  `alignment`: of SAMM's uncropped frames (`UNCROPPED`; module doc).
  """
  if alignment not in align.ALIGNMENTS:
    raise ValueError(f"Unknown alignment {alignment!r}; choose one of {align.ALIGNMENTS}.")
  dirs = dirs or find_dataset_dirs(root)
  clips, report = list_composite(dirs, gt_csv=gt_csv, spot_method=spot_method)
  fn = functools.partial(_pair_flow, work_width=work_width, method=flow_method,
                         third_channel=third_channel, size=image_size, **(flow_kwargs or {}))
  logging.info("MEGC2019 composite: %s flow of %d clips.", flow_method, len(clips))
  results = list(flow_lib.map_clips(
      fn, ((c.onset_path, c.apex_path, alignment if c.dataset in UNCROPPED else "none")
           for c in clips), workers=workers))
  flows, methods, detectors = zip(*results) if results else ((), (), ())
  if alignment != "none":
    found: dict[tuple[str, str], int] = {}
    for c, method, detector in zip(clips, methods, detectors):
      if c.dataset in UNCROPPED:
        found[(method, detector)] = found.get((method, detector), 0) + 1
    report.append(f"{'/'.join(UNCROPPED)} faces: " + ", ".join(
        f"{m} {n}/{sum(found.values())} ({d})" for (m, d), n in sorted(found.items())) +
        f" (alignment {alignment!r}).")
  arrays = dict(
      inputs=flow_lib.normalize_flows(np.stack(flows), flow_normalization),
      alignment=np.array(methods, dtype=str),
      emotion=np.array([c.emotion for c in clips]),
      subject=np.array([f"{c.dataset}/{c.subject}" for c in clips]),
      dataset=np.array([c.dataset for c in clips]),
      clip=np.array([c.clip for c in clips]),
      **au_lib.au_arrays([c.action_units for c in clips], sides=au_sides))
  return arrays, report + count_report(arrays["dataset"], arrays["subject"], arrays["emotion"])


