"""DFME (Zhao et al., TAFFC 2023; the MEGC 2022/2023 set): label sheets + clip folders -> clips.

Sheets (one per official split; name -> split): `training_full_with_AU.xlsx` -> 'train',
`testA_full_with_AU.xlsx` -> 'testA', `testB_full_with_AU.xlsx` -> 'testB', columns `Subject,
Filename, OnsetFrame, ApexFrame, OffsetFrame, Emotion, EmotionId, Fps, AU`. Clips were recorded at
500 fps (some at 300 or 200): `Fps` is kept per clip. The frame layout of the release is not
published; the reader finds each clip folder by its Filename anywhere up to 3 levels below the
root (`<split>/<Filename>/`, `<Subject>/<Filename>/` or `<Filename>/`) and reads the frame number
from the end of each image name (`<n>.jpg`, `img_<n>.jpg`). Policies: docs/data.md.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any

from microexp.data import casme2
from microexp.data import action_units as au_lib
from microexp.data import sheets as sheets_lib
from microexp.data.emotions import DFME_EMOTIONS

SHEETS = {"train": "training_full_with_AU.xlsx", "testA": "testA_full_with_AU.xlsx",
          "testB": "testB_full_with_AU.xlsx"}
SPLITS = tuple(SHEETS)
COLUMNS = {
    "subject": ("Subject",), "filename": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"), "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"), "emotion": ("Emotion",),
    "emotion_id": ("EmotionId", "Emotion Id", None), "fps": ("Fps", "FPS", "Frame rate"),
    "action_units": ("AU", "AUs", "Action Units"),
}
EMOTION_ALIASES = {"happy": "happiness", "sad": "sadness", "angry": "anger",
                   "disgusted": "disgust", "surprised": "surprise", "fearful": "fear"}
# The DFME paper's totals (all sheets): 7,526 clips from 671 participants.
EXPECTED = {"clips": 7526, "subjects": 671}
_SEARCH_DEPTH = 3


@dataclasses.dataclass(frozen=True)
class DfmeRecord:
  """A sheet row: the common record plus DFME's own fields."""

  record: sheets_lib.ClipRecord
  fps: float
  split: str  # 'train' | 'testA' | 'testB'


def find_sheets(root) -> dict[str, pathlib.Path]:
  """split -> sheet path for the sheets present directly under `root` (at least one)."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"DFME root {root} is not a directory.")
  names = {p.name.lower(): p for p in root.iterdir() if p.is_file()}
  found = {split: names[name.lower()] for split, name in SHEETS.items() if name.lower() in names}
  if not found:
    raise FileNotFoundError(f"No DFME label sheet in {root}: expected one or more of "
                            f"{list(SHEETS.values())}.")
  return found


def _fps(value: Any) -> float | None:
  """500, 500.0, '500', '500fps', '500 FPS' -> 500.0; anything else None."""
  if isinstance(value, bool) or value is None:
    return None
  m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:fps)?", str(value).strip(), flags=re.IGNORECASE)
  return float(m.group(1)) if m and float(m.group(1)) > 0 else None


def _text_id(value: Any) -> str:
  if isinstance(value, float) and value == int(value):
    value = int(value)
  return str(value).strip() if value is not None else ""


def parse_sheets(sheets: dict[str, pathlib.Path]) -> tuple[list[DfmeRecord], list[str]]:
  """Reads every split's sheet.

  Returns:
    (records: train, then testA, then testB, each in sheet order; report).
  """
  records, report, seen, ids = [], [], {}, {}
  for split, path in sheets.items():
    rows, notes = sheets_lib.read_sheet_table(path, COLUMNS, what="DFME label sheet")
    report += notes
    for row in rows:
      where = f"{path.name} row {row['_row']}"
      subject, filename = _text_id(row["subject"]), _text_id(row["filename"])
      if not subject or not filename:
        report.append(f"{where}: dropped: no subject ({row['subject']!r}) or filename "
                      f"({row['filename']!r}).")
        continue
      where = f"{where} ({subject}/{filename})"
      emotion = sheets_lib.read_emotion(row["emotion"], EMOTION_ALIASES, DFME_EMOTIONS, where,
                                          report)
      if emotion is None:
        continue
      emotion_id = _text_id(row.get("emotion_id"))
      if emotion_id:
        first = ids.setdefault(emotion, (emotion_id, where))
        if first[0] != emotion_id:
          report.append(f"{where}: EmotionId {emotion_id} for {emotion!r}, but {first[1]} has "
                        f"{first[0]}; the Emotion text is used.")
      fps = _fps(row["fps"])
      if fps is None:
        report.append(f"{where}: dropped: Fps {row['fps']!r} is not a frame rate.")
        continue
      frames, notes = sheets_lib.check_frames(row["onset"], row["apex"], row["offset"], where)
      report.extend(notes)
      if frames is None:
        continue
      if (subject, filename) in seen:
        report.append(f"{where}: dropped: duplicate of {seen[(subject, filename)]}.")
        continue
      seen[(subject, filename)] = where
      onset, apex, offset = frames
      records.append(DfmeRecord(sheets_lib.ClipRecord(
          subject=subject, filename=filename, onset=onset, apex=apex, offset=offset,
          action_units=au_lib.parse_action_units(row["action_units"]), emotion=emotion),
          fps=fps, split=split))
  if not records:
    raise sheets_lib.CodingSheetError(f"No usable rows in the DFME sheets {list(sheets.values())}.")
  return records, report


def index_clip_folders(root) -> dict[str, list[pathlib.Path]]:
  """Folder name -> folders with that name up to 3 levels below `root` (one directory walk)."""
  index: dict[str, list[pathlib.Path]] = {}
  level = [pathlib.Path(root)]
  for _ in range(_SEARCH_DEPTH):
    level = sorted(p for f in level for p in f.iterdir() if p.is_dir())
    for p in level:
      index.setdefault(p.name, []).append(p)
  return index


def frame_prefix(folder: pathlib.Path) -> str:
  """The image name before the frame number ('' for '12.jpg', 'img_' for 'img_00012.jpg')."""
  for path in sorted(folder.iterdir()):
    if path.is_file() and path.suffix.lower() in casme2.IMAGE_SUFFIXES:
      m = re.fullmatch(r"(.*?)\d+", path.stem)
      if m:
        return m.group(1)
  raise FileNotFoundError(f"DFME clip folder {folder} holds no <name><frame number> images.")


def _folder(index, record: DfmeRecord, root: pathlib.Path) -> pathlib.Path:
  r = record.record
  options = index.get(r.filename, [])
  if len(options) > 1:  # prefer the one under its subject or split folder
    better = [p for p in options if {r.subject.lower(), record.split.lower()} &
              {q.name.lower() for q in p.relative_to(root).parents}]
    options = better if len(better) == 1 else options
  if len(options) != 1:
    raise FileNotFoundError(
        f"DFME clip {r.subject}/{r.filename} ({record.split} sheet): "
        + (f"{len(options)} folders named {r.filename!r} under {root}: {options}."
           if options else f"no folder named {r.filename!r} up to {_SEARCH_DEPTH} levels below "
           f"{root}."))
  return options[0]


def count_report(records: list[DfmeRecord]) -> list[str]:
  lines = []
  for split in SPLITS:
    part = [r for r in records if r.split == split]
    if part:
      fps = sorted({r.fps for r in part})
      lines.append(f"DFME {split}: {len(part)} clips, {len({r.record.subject for r in part})} "
                   f"subjects, fps {fps}.")
  lines.append(f"DFME total: {len(records)} clips, {len({r.record.subject for r in records})} "
               f"subjects (real DFME: {EXPECTED['clips']} clips, {EXPECTED['subjects']} "
               "subjects over all sheets).")
  return lines


def list_clips(root) -> tuple[list[tuple[casme2.Clip, DfmeRecord]], list[str]]:
  """Lists the DFME clips of every sheet under `root`.

  Returns:
    ([(clip, record with fps and split)] in sheet order, report).
  """
  root = pathlib.Path(root)
  records, report = parse_sheets(find_sheets(root))
  index = index_clip_folders(root)
  clips = []
  for record in records:
    folder = _folder(index, record, root)
    clip, notes = casme2.resolve_clip(record.record, folder, frame_prefix(folder))
    clips.append((clip, record))
    report.extend(notes)
  return clips, report + count_report(records)
