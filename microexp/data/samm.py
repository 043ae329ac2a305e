"""SAMM: coding sheet (`SAMM_Micro_FACS_Codes_v2.xlsx`) + `<subject>/<Filename>/<subject>_<frame>.jpg`.

The official sheet has title rows above its header; the header row is found by its names.
Subjects are numbers (6) or text ('006') and become '006'. Frames come from the file names; the
sheet's onset/apex/offset are matched to the disk with the CASME II policies
(`microexp.data.casme2.resolve_clip`). An apex that is not coded (-1, blank) or outside
onset..offset is spotted (`microexp.data.smic.spot_apex`). Every fix or drop is one report line.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any

from microexp.data import casme2
from microexp.data import action_units as au_lib
from microexp.data import sheets as sheets_lib
from microexp.data import smic
from microexp.data.megc_flow import canonical_subject

SHEET_GLOB = "*.xlsx"
# SAMM's 'Estimated Emotion' values (lower case); 'other' has no MEGC2019 class.
SAMM_EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "other", "sadness",
                 "surprise")
COLUMNS = {
    "subject": "Subject", "filename": "Filename", "onset": "Onset Frame", "apex": "Apex Frame",
    "offset": "Offset Frame", "action_units": "Action Units", "emotion": "Estimated Emotion",
}
OPTIONAL_COLUMNS = {"type": "Type"}
_HEADER_SEARCH_ROWS = 40


def _norm(value: Any) -> str:
  return re.sub(r"\s+", "", str(value)).lower() if value is not None else ""


def find_sheet(root) -> pathlib.Path:
  """The single `.xlsx` directly under the SAMM root."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"SAMM root {root} is not a directory.")
  found = sorted(p for p in root.glob(SHEET_GLOB) if not p.name.startswith("~$"))
  if len(found) != 1:
    raise FileNotFoundError(
        f"Expected exactly one SAMM coding sheet (SAMM_Micro_FACS_Codes_v2.xlsx) in {root}, "
        f"found {[p.name for p in found]}.")
  return found[0]


def _frame(value: Any) -> int | None:
  """5562, 5562.0, '5562' -> 5562; -1, '', None, '/' -> None (not coded)."""
  if isinstance(value, bool) or value is None:
    return None
  text = str(value).strip()
  if re.fullmatch(r"\d+(\.0*)?", text):
    return int(float(text))
  return None


def parse_sheet(path) -> tuple[list[sheets_lib.ClipRecord], list[str]]:
  """Reads the SAMM sheet.

  Returns:
    (records, report). `ClipRecord.subject` is '006', `emotion` lower case (SAMM_EMOTIONS);
    `apex` is -1 where the sheet has no usable apex (spotted later).
  """
  path = pathlib.Path(path)
  rows = next(iter(sheets_lib.read_workbook(path, "SAMM sheet").values()))
  wanted = {f: _norm(n) for f, n in {**COLUMNS, **OPTIONAL_COLUMNS}.items()}
  header = None
  for r, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
    names = [_norm(v) for v in row]
    if all(wanted[f] in names for f in COLUMNS):
      header = r
      cols = {f: names.index(h) for f, h in wanted.items() if h in names}
      break
  if header is None:
    raise sheets_lib.CodingSheetError(
        f"{path}: no header row with {list(COLUMNS.values())} in the first {_HEADER_SEARCH_ROWS} "
        "rows of its first sheet.")
  report = [f"{path}: header found in row {header + 1}."] if header else []
  records, seen = [], set()
  for r in range(header + 1, len(rows)):
    row = rows[r]
    cell = lambda f: row[cols[f]] if f in cols and cols[f] < len(row) else None  # pylint: disable=cell-var-from-loop
    if all(cell(f) in (None, "") for f in COLUMNS):
      continue
    where = f"{path.name} row {r + 1}"
    try:
      subject = canonical_subject("samm", cell("subject"))
    except ValueError:
      report.append(f"{where}: dropped: unreadable subject {cell('subject')!r}.")
      continue
    filename = str(cell("filename") or "").strip()
    if re.fullmatch(r"\d+\.0+", filename):
      filename = filename.split(".")[0]
    emotion = str(cell("emotion") or "").strip().lower()
    kind = str(cell("type") or "").strip().lower()
    where = f"{where} ({subject}/{filename})"
    if not filename:
      report.append(f"{where}: dropped: no filename.")
      continue
    if kind and "micro" not in kind:
      report.append(f"{where}: dropped: Type {cell('type')!r} is not a micro-expression.")
      continue
    if emotion not in SAMM_EMOTIONS:
      report.append(f"{where}: dropped: unknown emotion {cell('emotion')!r} "
                    f"(known: {', '.join(SAMM_EMOTIONS)}).")
      continue
    onset, apex, offset = (_frame(cell(f)) for f in ("onset", "apex", "offset"))
    if onset is None:
      report.append(f"{where}: dropped: onset {cell('onset')!r} is not a frame number.")
      continue
    if offset is None:
      report.append(f"{where}: offset {cell('offset')!r} not coded; last frame on disk used.")
      offset = 10**9
    if apex is None or not onset <= apex <= offset:
      report.append(f"{where}: apex {cell('apex')!r} not usable; apex spotted from the flow.")
      apex = -1
    if (subject, filename) in seen:
      report.append(f"{where}: dropped: duplicate of an earlier row.")
      continue
    seen.add((subject, filename))
    records.append(sheets_lib.ClipRecord(
        subject=subject, filename=filename, onset=onset, apex=apex, offset=offset,
        action_units=au_lib.parse_action_units(cell("action_units")),
        emotion=emotion))
  return records, report


def list_clips(root, *, spot_method: str = "dis") -> tuple[list[casme2.Clip], list[str]]:
  """Lists the SAMM clips under `root` (sheet + `<subject>/<Filename>/<subject>_<frame>.jpg`).

  Returns:
    (clips in sheet order, report).
  """
  root = pathlib.Path(root)
  records, report = parse_sheet(find_sheet(root))
  clips = []
  for record in records:
    folder = root / record.subject / record.filename
    if not folder.is_dir() and (root / str(int(record.subject)) / record.filename).is_dir():
      folder = root / str(int(record.subject)) / record.filename
    spot = record.apex < 0
    probe = dataclasses.replace(record, apex=record.onset) if spot else record
    clip, notes = casme2.resolve_clip(probe, folder, f"{record.subject}_")
    if spot:
      apex_index = smic.spot_apex(clip.frame_paths, method=spot_method)
      notes.append(f"{folder}: apex spotted at frame {casme2.frame_number(clip.frame_paths[apex_index])}.")
      clip = dataclasses.replace(clip, record=record, apex_index=apex_index)
    if record.offset == 10**9:
      clip = dataclasses.replace(clip, record=dataclasses.replace(
          clip.record, offset=casme2.frame_number(clip.frame_paths[-1])))
    clips.append(clip)
    report.extend(notes)
  return clips, report
