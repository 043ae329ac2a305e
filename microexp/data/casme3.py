"""CAS(ME)^3 part A: label sheet + `<subject>/<clip>/color/<frame>.jpg` -> clips.

Layout as distributed (Li et al., TPAMI 2022): subjects `spNO.1` .. `spNO.<n>`, one folder per
elicitation video (`a`, `b`, ...) holding `color/` (uncropped 1280x720 RGB JPEGs named
`<frame>.jpg`, no prefix) and `depth/` (ignored here). One clip folder can hold several
micro-expressions: a clip is (subject, folder, onset), its id `<folder>_<onset>` ('a_153').
The sheet (`cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`; the full `CAS(ME)3_part_A_v2.xls` must be
saved as .xlsx first) has the columns `Subject, Filename, Onset, Apex, Offset, AU, Objective class,
emotion`, plus `Expression type` in the full sheet (macro rows are dropped). Policies and quirks:
docs/data.md; every fixed or dropped row is one report line.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

from microexp.data import casme2
from microexp.data import action_units as au_lib
from microexp.data import sheets as sheets_lib
from microexp.data.emotions import CASME3_EMOTIONS

COLUMNS = {
    "subject": ("Subject", "sub"),
    "filename": ("Filename", "material"),
    "onset": ("Onset", "OnsetFrame", "Onset Frame"),
    "apex": ("Apex", "ApexFrame", "Apex Frame"),
    "offset": ("Offset", "OffsetFrame", "Offset Frame"),
    "action_units": ("AU", "AUs", "Action Units"),
    "emotion": ("emotion", "Estimated Emotion"),
    "objective_class": ("Objective class", "Objective classes", None),
    "type": ("Expression type", "Type", None),
}
# Spellings met in the sheets -> the sheet's own vocabulary (a fix, reported).
EMOTION_ALIASES = {"happiness": "happy", "sadness": "sad", "other": "others", "angry": "anger",
                   "surprised": "surprise", "disgusted": "disgust", "fearful": "fear"}
# Issue 14's figure for part A (micro-expressions only).
EXPECTED = {"clips": 860, "subjects": 100}
FPS = 30
FRAME_FOLDER = "color"


def subject_id(value: Any) -> str | None:
  """'spNO.1', 'spNO. 1', 'SPNO.01', 1, '1' -> 'spNO.1'; None if unreadable."""
  if value is None or isinstance(value, bool):
    return None
  text = str(value).strip()
  if re.fullmatch(r"\d+\.0+", text):
    text = text.split(".")[0]
  m = re.fullmatch(r"(?:sp\s*no\s*\.?\s*)?0*(\d+)", text, flags=re.IGNORECASE)
  return f"spNO.{int(m.group(1))}" if m else None


def clip_id(record: sheets_lib.ClipRecord) -> str:
  """'a_153': the folder and the sheet's onset (one folder holds several expressions)."""
  return f"{record.filename}_{record.onset}"


def find_sheet(root) -> pathlib.Path:
  """The label .xlsx under `root` or `root/annotation` (prefers a '*ME_label*' file)."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"CAS(ME)^3 root {root} is not a directory.")
  places = [root] + [p for p in root.iterdir() if p.is_dir() and p.name.lower() == "annotation"]
  found = sorted(p for d in places for p in d.glob("*.xls*") if not p.name.startswith("~$"))
  xlsx = [p for p in found if p.suffix.lower() == ".xlsx"]
  if len(xlsx) > 1:
    xlsx = [p for p in xlsx if "me_label" in p.name.lower()] or xlsx
  if len(xlsx) == 1:
    return xlsx[0]
  if not xlsx and found:
    raise sheets_lib.CodingSheetError(
        f"Only legacy .xls label sheets in {root}: {[p.name for p in found]}. Save the sheet as "
        ".xlsx (openpyxl reads .xlsx only) next to it.")
  raise FileNotFoundError(
      f"Expected one CAS(ME)^3 label sheet (.xlsx, e.g. cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx) "
      f"in {root} or {root}/annotation; found {[p.name for p in xlsx]}.")


def parse_sheet(path) -> tuple[list[sheets_lib.ClipRecord], list[str]]:
  """Reads the CAS(ME)^3 part A label sheet.

  Returns:
    (records in sheet order, report). `subject` 'spNO.1', `filename` the clip folder ('a'),
    `emotion` one of CASME3_EMOTIONS, `action_units` the AU cell's tokens.
  """
  path = pathlib.Path(path)
  rows, report = sheets_lib.read_sheet_table(path, COLUMNS, what="CAS(ME)^3 label sheet")
  records, seen = [], {}
  for row in rows:
    where = f"{path.name} row {row['_row']}"
    subject = subject_id(row["subject"])
    folder = str(row["filename"] or "").strip()
    if subject is None or not re.fullmatch(r"[A-Za-z]+", folder):
      report.append(f"{where}: dropped: unreadable subject {row['subject']!r} or filename "
                    f"{row['filename']!r} (expected 'spNO.<n>' and a letter).")
      continue
    folder = folder.lower()
    where = f"{where} ({subject}/{folder})"
    kind = str(row.get("type") or "").strip().lower()
    if kind and "micro" not in kind:
      report.append(f"{where}: dropped: Expression type {row['type']!r} is not a micro-expression.")
      continue
    emotion = sheets_lib.read_emotion(row["emotion"], EMOTION_ALIASES, CASME3_EMOTIONS, where,
                                        report)
    if emotion is None:
      continue
    frames, notes = sheets_lib.check_frames(row["onset"], row["apex"], row["offset"], where)
    report.extend(notes)
    if frames is None:
      continue
    onset, apex, offset = frames
    key = (subject, folder, onset)
    if key in seen:
      report.append(f"{where}: dropped: same subject, folder and onset as row {seen[key]}.")
      continue
    seen[key] = row["_row"]
    records.append(sheets_lib.ClipRecord(
        subject=subject, filename=folder, onset=onset, apex=apex, offset=offset,
        action_units=au_lib.parse_action_units(row["action_units"]), emotion=emotion))
  if not records:
    raise sheets_lib.CodingSheetError(f"{path}: no usable micro-expression rows.")
  return records, report


def _child(folder: pathlib.Path, name: str) -> pathlib.Path | None:
  """`folder/name`, matched without case ('spNO.1' == 'SPNO.1', 'color' == 'Color')."""
  exact = folder / name
  if exact.is_dir():
    return exact
  if not folder.is_dir():
    return None
  return next((p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower() == name.lower()),
              None)


def find_frames_root(root) -> pathlib.Path:
  """The folder holding the `spNO.<n>` subject folders: `root` or one below it (depth <= 3)."""
  root = pathlib.Path(root)
  is_subject = lambda p: p.is_dir() and re.fullmatch(r"spno\.\d+", p.name.lower())
  level = [root]
  for _ in range(4):
    for folder in level:
      if any(is_subject(p) for p in folder.iterdir()):
        return folder
    level = sorted(p for f in level for p in f.iterdir() if p.is_dir() and not is_subject(p))
  raise FileNotFoundError(f"No spNO.<n> subject folders under {root} (searched 3 levels down); "
                          "expected <subject>/<clip>/color/<frame>.jpg, e.g. spNO.1/a/color/1.jpg.")


def count_report(clips) -> list[str]:
  """Found vs expected: clips, subjects, emotion counts."""
  emotions = [c.record.emotion for c in clips]
  counts = {e: emotions.count(e) for e in CASME3_EMOTIONS}
  return [f"CAS(ME)^3 part A: {len(clips)} clips, {len({c.record.subject for c in clips})} "
          f"subjects, per emotion {counts} (real part A: {EXPECTED['clips']} clips, "
          f"{EXPECTED['subjects']} subjects)."]


def list_clips(root) -> tuple[list[casme2.Clip], list[str]]:
  """Lists the CAS(ME)^3 part A micro-expression clips under `root`.

  Returns:
    (clips in sheet order, report: sheet fixes/drops, disk fixes, the count line).
  """
  root = pathlib.Path(root)
  records, report = parse_sheet(find_sheet(root))
  frames_root = find_frames_root(root)
  clips = []
  for record in records:
    subject_dir = _child(frames_root, record.subject)
    clip_dir = _child(subject_dir, record.filename) if subject_dir else None
    color = _child(clip_dir, FRAME_FOLDER) if clip_dir else None
    if color is None:
      raise FileNotFoundError(
          f"{frames_root / record.subject / record.filename / FRAME_FOLDER} (from the label sheet: "
          f"{record.subject}/{record.filename}, onset {record.onset}) does not exist.")
    clip, notes = casme2.resolve_clip(record, color, "", report_outside=False)
    clips.append(clip)
    report.extend(notes)
  return clips, report + count_report(clips)


def clip_key(clip: casme2.Clip) -> str:
  """'spNO.1/a_153': unique per clip."""
  return f"{clip.record.subject}/{clip_id(clip.record)}"

