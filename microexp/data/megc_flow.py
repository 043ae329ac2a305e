"""Precomputed MEGC2019 onset->apex flow (the STSTNet / HTNet release) -> matched examples.

The release is one PNG per clip, `<subject>_<clip>.png`, 28x28, three channels, each channel
min-max normalised to 0..255 per image, plus the ground-truth CSV (`dataset, subject, clip, label`
with label 0 negative, 1 positive, 2 surprise). Channel order, as written by the release's own
`cv2.imwrite(final)` with `final[..., 0] = strain, [..., 1] = v, [..., 2] = u`: the PNG's
**R = u, G = v, B = optical strain**. `cv2.imread` therefore returns [strain, v, u] (BGR) — which
is what the released STSTNet weights were trained on. Here every image is converted to RGB, so
arrays are always [u, v, strain] (the microexp apex-flow contract), for training and prediction.

Quirks of the real files, each handled and reported (docs/megc.md):
- a space before the suffix (`sub01_EP02_01f .png`);
- subject ids padded differently in the CSV and the file names (`6` vs `006`, `s1` vs `s01`,
  SMIC clips `s1_ne_01` vs `s01_ne_01`);
- the same folder holding per-subject pre-split copies `<subject>/u_train|u_test/<label>/...`:
  only the unsplit images are read; the split is always the engine's LOSO, never the folders.
A CSV row without an image, or an image without a row, is an error listing all of them.

Optional (HTNet's release): the apex face crops `combined_datasets_whole/<imagename>.jpg`
(`imagename` column of the CSV; else `<subject>_<clip>.jpg`), from which `load_region_centres`
finds the facial regions (`microexp.vision.face_regions`); clips without a crop get the mean face.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
import re

import numpy as np

from microexp.data.emotions import MEGC_CLASSES

DATASETS = ("casme2", "samm", "smic")
CHANNELS = ("u", "v", "strain")  # order of the last axis of every array returned here

# Header names accepted for each field (lower case); the first row is a header if it names them.
_HEADER_NAMES = {
    "dataset": ("data", "dataset"),
    "subject": ("subject", "sub"),
    "clip": ("clip", "filename_o", "filename"),
    "label": ("label", "class"),
}
FACE_CROP_FOLDER = "combined_datasets_whole"


class FlowSetError(ValueError):
  """The precomputed flow set or its CSV is inconsistent (names the files involved)."""


@dataclasses.dataclass(frozen=True)
class FlowRecord:
  """One ground-truth row, ids canonical: subject 'sub01' / '006' / 's01', clip 'EP02_01f' /
  '006_1_2' / 's01_ne_01'; label 0 negative, 1 positive, 2 surprise."""

  dataset: str
  subject: str
  clip: str
  label: int
  imagename: str = ""  # the apex face crop's file name, when the CSV names it

  @property
  def key(self) -> tuple[str, str, str]:
    return (self.dataset, self.subject, self.clip)

  @property
  def qualified_subject(self) -> str:
    return f"{self.dataset}/{self.subject}"


def canonical_subject(dataset: str, value) -> str:
  """Dataset-specific padding: casme2 1/'01'/'sub1' -> 'sub01'; samm 6/'6'/'006' -> '006';
  smic 's1'/'1' -> 's01'."""
  text = str(value).strip()
  if re.fullmatch(r"\d+\.0+", text):  # 6.0 from a spreadsheet
    text = text.split(".")[0]
  patterns = {"casme2": (r"(?:sub)?0*(\d+)", "sub{:02d}"), "samm": (r"0*(\d+)", "{:03d}"),
              "smic": (r"s?0*(\d+)", "s{:02d}")}
  if dataset not in patterns:
    raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
  pattern, fmt = patterns[dataset]
  m = re.fullmatch(pattern, text, flags=re.IGNORECASE)
  if m is None:
    raise ValueError(f"{text!r} is not a {dataset} subject id.")
  return fmt.format(int(m.group(1)))


def canonical_clip(dataset: str, clip) -> str:
  """SMIC 's1_ne_01' -> 's01_ne_01'; SAMM '6_1_2' -> '006_1_2'; CASME II unchanged."""
  text = str(clip).strip()
  if dataset == "smic":
    m = re.fullmatch(r"s0*(\d+)(_.*)", text, flags=re.IGNORECASE)
    if m:
      return f"s{int(m.group(1)):02d}{m.group(2)}"
  if dataset == "samm":
    m = re.fullmatch(r"0*(\d+)(_.*)", text)
    if m:
      return f"{int(m.group(1)):03d}{m.group(2)}"
  return text


def dataset_of_subject(subject: str) -> str | None:
  """'sub01' -> 'casme2', 's1' / 's01' -> 'smic', '6' / '006' -> 'samm'; None if none fits."""
  s = subject.strip().lower()
  if re.fullmatch(r"sub\d+", s):
    return "casme2"
  if re.fullmatch(r"s\d+", s):
    return "smic"
  if re.fullmatch(r"\d+", s):
    return "samm"
  return None


def _parse_label(value: str) -> int | None:
  text = value.strip().lower()
  if re.fullmatch(r"\d+(\.0*)?", text) and int(float(text)) < len(MEGC_CLASSES):
    return int(float(text))
  return MEGC_CLASSES.index(text) if text in MEGC_CLASSES else None


def read_ground_truth(path) -> tuple[list[FlowRecord], list[str]]:
  """Reads the MEGC2019 ground-truth CSV.

  Accepts a header `data,subject,clip,label`, `dataset,sub,filename_o,label,...` (extra columns
  ignored) or no header (`combined_3class_gt.csv`: dataset, subject, clip, label).

  Returns:
    (records in file order, report lines).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"Ground-truth CSV {path} does not exist.")
  with open(path, newline="", encoding="utf-8-sig") as f:
    rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
  if not rows:
    raise FlowSetError(f"{path}: empty CSV.")
  names = [c.strip().lower() for c in rows[0]]
  cols = {}
  for field, accepted in _HEADER_NAMES.items():
    cols[field] = next((names.index(a) for a in accepted if a in names), None)
  image_col = names.index("imagename") if "imagename" in names else None
  report = []
  if all(c is not None for c in cols.values()):
    body, first = rows[1:], 2
  elif names and names[0] in DATASETS and len(names) >= 4:
    cols = {"dataset": 0, "subject": 1, "clip": 2, "label": 3}
    body, first = rows, 1
    report.append(f"{path}: no header; columns read as dataset, subject, clip, label.")
  else:
    raise FlowSetError(
        f"{path}: first row {rows[0]} is neither a header naming "
        f"{ {k: v for k, v in _HEADER_NAMES.items()} } nor a data row starting with one of "
        f"{DATASETS}.")
  records, seen, padded = [], {}, set()
  for n, row in enumerate(body, start=first):
    cell = lambda field: row[cols[field]].strip() if cols[field] < len(row) else ""  # pylint: disable=cell-var-from-loop
    dataset = cell("dataset").lower()
    if dataset not in DATASETS:
      raise FlowSetError(f"{path}, line {n}: unknown dataset {cell('dataset')!r}; expected one "
                         f"of {DATASETS}.")
    try:
      subject = canonical_subject(dataset, cell("subject"))
    except ValueError as e:
      raise FlowSetError(f"{path}, line {n}: {e}") from None
    clip = canonical_clip(dataset, cell("clip"))
    label = _parse_label(cell("label"))
    if label is None:
      raise FlowSetError(f"{path}, line {n}: label {cell('label')!r} is not 0/1/2 or one of "
                         f"{MEGC_CLASSES}.")
    if subject != cell("subject") or clip != cell("clip"):
      padded.add((cell("subject"), subject))
    imagename = row[image_col].strip() if image_col is not None and image_col < len(row) else ""
    record = FlowRecord(dataset, subject, clip, label, imagename)
    if record.key in seen:
      raise FlowSetError(f"{path}: lines {seen[record.key]} and {n} are the same clip "
                         f"{'/'.join(record.key)}.")
    seen[record.key] = n
    records.append(record)
  if padded:
    examples = ", ".join(f"{a!r}->{b!r}" for a, b in sorted(padded)[:5])
    report.append(f"{path}: {len(padded)} subject id(s) re-padded to the canonical form "
                  f"(e.g. {examples}).")
  return records, report


def find_ground_truth(root) -> pathlib.Path:
  """The single `*.csv` directly under `root`."""
  root = pathlib.Path(root)
  found = sorted(root.glob("*.csv"))
  if len(found) != 1:
    raise FileNotFoundError(
        f"Expected exactly one ground-truth CSV (e.g. combined_3class_gt.csv) in {root}, found "
        f"{[p.name for p in found]}. Keep one, or pass its path explicitly.")
  return found[0]


def parse_image_name(path) -> tuple[tuple[str, str, str], bool]:
  """'sub01_EP02_01f .png' -> (('casme2', 'sub01', 'EP02_01f'), had_space)."""
  stem = pathlib.Path(path).stem
  had_space = stem != stem.strip()
  stem = stem.strip()
  subject, sep, clip = stem.partition("_")
  dataset = dataset_of_subject(subject)
  if not sep or not clip or dataset is None:
    raise FlowSetError(f"Flow image {path}: name is not <subject>_<clip>.png with subject "
                       "subNN (CASME II), sNN (SMIC) or NNN (SAMM).")
  return (dataset, canonical_subject(dataset, subject), canonical_clip(dataset, clip)), had_space


def _is_presplit(folder: pathlib.Path) -> bool:
  return any((folder / name).is_dir() for name in ("u_train", "u_test"))


def find_image_folder(root) -> tuple[pathlib.Path, list[str]]:
  """The folder holding the unsplit PNGs: `root` itself, else its one sub-folder that does.

  Per-subject pre-split copies (`<subject>/u_train|u_test/...`) are never used; they are reported.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"Precomputed flow folder {root} does not exist.")
  report = []
  presplit = sorted(p.name for p in root.iterdir() if p.is_dir() and _is_presplit(p))
  if presplit:
    report.append(f"{root}: {len(presplit)} per-subject pre-split folder(s) "
                  f"({', '.join(presplit[:4])}{', ...' if len(presplit) > 4 else ''}) ignored: "
                  "the unsplit images are read once and the LOSO split is recomputed.")
  if any(p.suffix.lower() == ".png" for p in root.iterdir() if p.is_file()):
    return root, report
  candidates = [p for p in sorted(root.iterdir()) if p.is_dir() and not _is_presplit(p)
                and any(q.suffix.lower() == ".png" for q in p.iterdir() if q.is_file())]
  if len(candidates) != 1:
    raise FileNotFoundError(
        f"No unsplit flow images in {root}: expected <subject>_<clip>.png files directly in it or "
        f"in exactly one sub-folder (found {[p.name for p in candidates]}). Pre-split "
        "u_train/u_test copies are not read.")
  report.append(f"{root}: flow images read from {candidates[0].name}/.")
  return candidates[0], report


def index_images(folder) -> tuple[dict[tuple[str, str, str], pathlib.Path], list[str]]:
  """Maps canonical (dataset, subject, clip) -> PNG path for the images directly in `folder`."""
  folder = pathlib.Path(folder)
  images, report, spaced = {}, [], []
  for path in sorted(folder.iterdir()):
    if not path.is_file() or path.suffix.lower() != ".png":
      continue
    key, had_space = parse_image_name(path)
    if had_space:
      spaced.append(path.name)
    if key in images:
      raise FlowSetError(f"Flow images {images[key].name!r} and {path.name!r} in {folder} are the "
                         f"same clip {'/'.join(key)}; keep one.")
    images[key] = path
  if spaced:
    report.append(f"{folder}: {len(spaced)} image name(s) with a space before the suffix "
                  f"(e.g. {spaced[0]!r}) read as if it were absent.")
  return images, report


def read_flow_image(path) -> np.ndarray:
  """One release PNG -> uint8 [H, W, 3] in CHANNELS order (u, v, strain)."""
  import cv2  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path)
  data = np.fromfile(path, np.uint8) if path.is_file() else None
  image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
  if image is None:
    raise FlowSetError(f"Cannot read flow image {path} (missing or not a decodable PNG).")
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise FlowSetError(f"Flow image {path} is {image.dtype} with shape {image.shape}; expected an "
                       "8-bit 3-channel PNG (R=u, G=v, B=strain).")
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def match(records, images, *, csv_path="CSV", folder="folder"):
  """Pairs records with images; raises listing every unmatched clip on either side."""
  missing = [r for r in records if r.key not in images]
  keys = {r.key for r in records}
  extra = sorted(k for k in images if k not in keys)
  if missing or extra:
    lines = [f"  in {csv_path} but no image in {folder}: {'/'.join(r.key)}" for r in missing]
    lines += [f"  image without a row in {csv_path}: {images[k].name!r} ({'/'.join(k)})"
              for k in extra]
    raise FlowSetError(f"{len(missing)} clip(s) without an image and {len(extra)} image(s) "
                       "without a CSV row:\n" + "\n".join(lines))
  return [(r, images[r.key]) for r in records]


def load_flow_set(root, gt_csv=None) -> tuple[list[FlowRecord], np.ndarray, list[str]]:
  """Reads a precomputed flow release.

  Args:
    root: folder with the PNGs (or with one sub-folder of PNGs) and, unless `gt_csv` is given,
      the single ground-truth CSV.
    gt_csv: path of the ground-truth CSV.

  Returns:
    (records in CSV order, flows uint8 [N, H, W, 3] (u, v, strain), report).
  """
  root = pathlib.Path(root)
  gt_csv = pathlib.Path(gt_csv) if gt_csv else find_ground_truth(root)
  records, report = read_ground_truth(gt_csv)
  folder, notes = find_image_folder(root)
  report += notes
  images, notes = index_images(folder)
  report += notes
  pairs = match(records, images, csv_path=gt_csv, folder=folder)
  flows = [read_flow_image(path) for _, path in pairs]
  shapes = {f.shape for f in flows}
  if len(shapes) > 1:
    by_shape = {}
    for (_, path), f in zip(pairs, flows):
      by_shape.setdefault(f.shape, path.name)
    raise FlowSetError(f"Flow images in {folder} differ in size: {by_shape} (shape: example).")
  return records, np.stack(flows), report


def find_face_crops(root) -> pathlib.Path | None:
  """`root/combined_datasets_whole` (any case) if the release ships the apex face crops."""
  root = pathlib.Path(root)
  found = [p for p in root.iterdir() if p.is_dir() and p.name.lower() == FACE_CROP_FOLDER]
  return found[0] if found else None


def read_face_crop(path) -> np.ndarray:
  """One apex face crop -> uint8 [H, W, 3] RGB."""
  import cv2  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path)
  data = np.fromfile(path, np.uint8) if path.is_file() else None
  image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
  if image is None:
    raise FlowSetError(f"Cannot read face crop {path} (not a decodable image). Replace it, or "
                       f"remove it to use the mean-face regions for that clip.")
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_region_centres(root, records, *, landmarker=None,
                        size: int = 28) -> tuple[np.ndarray, list[str], list[str]]:
  """HTNet's region centres per clip, from the apex face crops when the release has them.

  Returns:
    (centres int32 [N, 4, 2] (row, col) in the `size` flow, per-clip source ('mean_face' or the
    landmarker's name), report lines).
  """
  from microexp.vision import face_regions  # pylint: disable=g-import-not-at-top

  landmarker = landmarker or face_regions.box_landmarks
  folder = find_face_crops(root)
  centres, sources, missing = [], [], []
  for r in records:
    path = None
    if folder is not None:
      names = [r.imagename] if r.imagename else []
      names.append(f"{r.subject}_{r.clip}.jpg")
      path = next((folder / n for n in names if (folder / n).is_file()), None)
      if path is None:
        missing.append(names[0])
    c, source = face_regions.region_centres(
        read_face_crop(path) if path is not None else None, landmarker=landmarker, size=size)
    centres.append(c)
    sources.append(source)
  if folder is None:
    report = [f"{root}: no {FACE_CROP_FOLDER}/ (apex face crops); HTNet regions are the mean "
              "face's for every clip."]
  else:
    report = [f"{folder}: regions of {len(records) - len(missing)} clip(s) from their face crops"
              + (f"; {len(missing)} without a crop (e.g. {missing[0]!r}) use the mean face."
                 if missing else ".")]
  return np.stack(centres).astype(np.int32), sources, report


def flow_set_arrays(root, gt_csv=None) -> dict[str, np.ndarray]:
  """The loader's arrays straight from a release folder, without TFDS (benchmarks, calibration):
  inputs float32 [N, H, W, 3] (u, v, strain) min-max per clip to -1..1, emotion, subject, dataset,
  clip. The registered loader (`megc2019_flow`) builds the same through the TFDS builder."""
  from microexp.vision import flow as flow_lib  # pylint: disable=g-import-not-at-top

  records, flows, _ = load_flow_set(root, gt_csv)
  return dict(inputs=flow_lib.normalize_flows(flows.astype(np.float32) * (2 / 255.0) - 1,
                                              "per_clip"),
              emotion=np.array([MEGC_CLASSES[r.label] for r in records]),
              subject=np.array([r.qualified_subject for r in records]),
              dataset=np.array([r.dataset for r in records]),
              clip=np.array([r.clip for r in records]))
