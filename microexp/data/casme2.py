"""CASME II on-disk layout -> clips with resolved frame paths; frame loading.

Layouts (under the root that holds the coding sheet):
  cropped: `Cropped/subNN/<Filename>/reg_img<frame>.jpg`
  raw:     `CASME2_RAW_selected/subNN/<Filename>/img<frame>.jpg`
Frame numbers are absolute and read from the file names. Disagreements between the sheet and the
disk are resolved by the policies in docs/data.md; each one adds a line to the report.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np

from microexp.data import casme2_sheet
from microexp.data import sheets as sheets_lib

LAYOUTS = {
    "cropped": ("Cropped", "reg_img"),
    "raw": ("CASME2_RAW_selected", "img"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclasses.dataclass(frozen=True)
class Clip:
  """A sheet record with its frames on disk.

  `frame_paths` are sorted by frame number and cover onset..offset as present on disk;
  `onset_index`, `apex_index`, `offset_index` are positions in `frame_paths`; `frame_numbers`
  are the absolute frame numbers of `frame_paths` (parsed from the file names).
  """

  record: sheets_lib.ClipRecord
  frame_paths: tuple[pathlib.Path, ...]
  onset_index: int
  apex_index: int
  offset_index: int
  frame_numbers: tuple[int, ...] = ()


def frame_number(path) -> int:
  """The frame number at the end of a file name: 'reg_img46.jpg', 'img46 (1).JPG', '006_05562.jpg'."""
  stem = pathlib.Path(path).stem
  m = re.search(r"(\d+)(?:\s*\(\d+\))?$", stem) or re.search(r"(\d+)", stem)
  if m is None:
    raise ValueError(f"No frame number in file name {path}.")
  return int(m.group(1))


def _scan_frames(folder: pathlib.Path, prefix: str) -> tuple[dict[int, pathlib.Path], list[str]]:
  """Returns frame number -> path for `<prefix><n>[ (k)].<image suffix>` files, and notes."""
  pattern = re.compile(rf"{re.escape(prefix)}(\d+)(.*)", flags=re.IGNORECASE)
  candidates: dict[int, list[pathlib.Path]] = {}
  notes = []
  for path in folder.iterdir():
    if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
      continue  # Thumbs.db, .DS_Store, sub-folders: not frames.
    m = pattern.fullmatch(path.stem)
    if m is None:
      notes.append(f"{path}: image not named {prefix}<frame>; ignored.")
      continue
    candidates.setdefault(int(m.group(1)), []).append(path)
  frames = {}
  for number, paths in candidates.items():
    # Canonical name first (`reg_img46.jpg`), then lower-case suffix, then name order.
    paths.sort(key=lambda p: (p.stem.lower() != f"{prefix}{number}".lower(),
                              p.suffix != p.suffix.lower(), p.name))
    frames[number] = paths[0]
    if len(paths) > 1:
      notes.append(f"{folder}: {len(paths)} files for frame {number} "
                   f"({', '.join(p.name for p in paths)}); kept {paths[0].name}.")
  return frames, notes


def resolve_clip(record: sheets_lib.ClipRecord, folder: pathlib.Path,
                 prefix: str, *, report_outside: bool = True) -> tuple[Clip, list[str]]:
  """Matches one sheet record to the frames `<prefix><frame>[ (k)].<ext>` in `folder`.

  Applies the disk policies of docs/data.md; returns (clip, report lines). Also used for the
  SAMM layout (prefix '<subject>_'). `report_outside=False`: frames outside onset..offset are
  normal (a folder holding a whole recording, CAS(ME)^3) and not reported.
  """
  if not folder.is_dir():
    raise FileNotFoundError(
        f"Clip folder {folder} (from the coding sheet: {record.subject}/{record.filename}) does not "
        "exist. Check the layout (Cropped/subNN/<Filename>/) or remove the row.")
  frames, report = _scan_frames(folder, prefix)
  if not frames:
    raise FileNotFoundError(f"Clip folder {folder} holds no {prefix}<frame> images.")
  inside = sorted(n for n in frames if record.onset <= n <= record.offset)
  outside = sorted(n for n in frames if not record.onset <= n <= record.offset)
  if not inside:
    raise FileNotFoundError(
        f"Clip folder {folder} has frames {min(frames)}..{max(frames)} but none within the sheet's "
        f"onset..offset {record.onset}..{record.offset}.")
  if outside and report_outside:
    report.append(f"{folder}: {len(outside)} frame(s) outside onset..offset "
                  f"{record.onset}..{record.offset} ignored ({outside[0]}..{outside[-1]}).")
  if inside[0] != record.onset:
    report.append(f"{folder}: onset frame {record.onset} missing; first frame present "
                  f"{inside[0]} used.")
  if inside[-1] != record.offset:
    report.append(f"{folder}: offset frame {record.offset} missing; last frame present "
                  f"{inside[-1]} used.")
  numbers = np.asarray(inside)
  apex_index = int(np.argmin(np.abs(numbers - record.apex)))  # ties -> the earlier frame
  if inside[apex_index] != record.apex:
    report.append(f"{folder}: apex frame {record.apex} missing; nearest frame "
                  f"{inside[apex_index]} used.")
  gaps = int(numbers[-1] - numbers[0] + 1 - len(numbers))
  if gaps:
    report.append(f"{folder}: {gaps} frame(s) missing inside {inside[0]}..{inside[-1]}.")
  clip = Clip(record=record, frame_paths=tuple(frames[n] for n in inside), onset_index=0,
              apex_index=apex_index, offset_index=len(inside) - 1, frame_numbers=tuple(inside))
  return clip, report


def list_clips(root, *, layout: str = "cropped") -> tuple[list[Clip], list[str]]:
  """Lists the clips of a CASME II copy.

  Args:
    root: folder holding `CASME2-coding-*.xlsx` and `Cropped/` (or `CASME2_RAW_selected/`).
    layout: 'cropped' or 'raw'.

  Returns:
    (clips in sheet order, report): the sheet's report followed by one line per disk fix.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"Unknown CASME II layout {layout!r}; choose one of {sorted(LAYOUTS)}.")
  root = pathlib.Path(root)
  folder_name, prefix = LAYOUTS[layout]
  frames_root = root / folder_name
  if not frames_root.is_dir():
    raise FileNotFoundError(f"{frames_root} does not exist: expected the {layout} layout "
                            f"{folder_name}/subNN/<Filename>/{prefix}<frame>.jpg under {root}.")
  records, report = casme2_sheet.parse_coding_sheet(casme2_sheet.find_coding_sheet(root))
  clips = []
  for record in records:
    clip, notes = resolve_clip(record, frames_root / record.subject / record.filename, prefix)
    clips.append(clip)
    report.extend(notes)
  return clips, report


def read_frames(paths, *, size: tuple[int, int] | None = None,
                grayscale: bool = False) -> np.ndarray:
  """Reads images into one array.

  Args:
    paths: image files, in order.
    size: (H, W) to resize every frame to (cv2.INTER_AREA), or None to keep the size on disk
      (then all frames must share it).
    grayscale: read one luminance channel instead of RGB.

  Returns:
    frames: [T, H, W, C] uint8, C = 1 (grayscale) or 3 (RGB order).
  """
  import cv2  # pylint: disable=g-import-not-at-top

  paths = [pathlib.Path(p) for p in paths]
  if not paths:
    raise ValueError("read_frames: no paths given.")
  frames = []
  for path in paths:
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    image = None
    if data is not None and data.size:
      image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    if image is None:
      raise ValueError(f"Cannot read image {path} "
                       f"({'missing' if data is None else 'not a decodable image'}).")
    if size is not None:
      image = cv2.resize(image, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
    elif frames and image.shape[:2] != frames[0].shape[:2]:
      raise ValueError(f"Image {path} is {image.shape[1]}x{image.shape[0]} (WxH) but {paths[0]} "
                       f"is {frames[0].shape[1]}x{frames[0].shape[0]}; pass size=(H, W).")
    frames.append(image[..., None] if grayscale else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
  return np.stack(frames)
