"""CASME II coding sheet (`CASME2-coding-*.xlsx`) -> `ClipRecord`s and a report of fixes/drops.

The official sheet has quirks (int or text subjects, '/' apexes, Action Units typed as numbers,
irregular filenames). Each is handled by a fixed policy documented in docs/data.md; every row
that is changed or dropped gets one line in the report, so a build log says exactly what was
done to the annotations.

Shared by every dataset's reader: the AU parser (`parse_action_units`, `action_unit_numbers`,
`au_arrays`), the onset/apex/offset policies (`check_frames`) and the header search of any
label workbook (`read_sheet_table`).
"""

from __future__ import annotations

import pathlib
import re
from typing import Any


from microexp.data import action_units as au_lib
from microexp.data import sheets as sheets_lib
from microexp.data.emotions import CASME2_EMOTIONS


SHEET_NAME = "Sheet1"


SHEET_GLOB = "CASME2-coding-*.xlsx"


# Header names as in the official sheet; matched case- and whitespace-insensitively.
COLUMNS = {
    "subject": "Subject",
    "filename": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "action_units": "Action Units",
    "emotion": "Estimated Emotion",
}


# Rows searched for the header (the official sheet has it in row 1).
_HEADER_SEARCH_ROWS = 10


def find_coding_sheet(root) -> pathlib.Path:
  """Returns the single `CASME2-coding-*.xlsx` directly under `root`."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"CASME II root {root} is not a directory.")
  found = sorted(p for p in root.glob(SHEET_GLOB) if not p.name.startswith("~$"))
  if not found:
    raise FileNotFoundError(
        f"No coding sheet matching {SHEET_GLOB!r} in {root}. Put the official "
        "CASME2-coding-20140508.xlsx next to the Cropped/ folder.")
  if len(found) > 1:
    raise sheets_lib.CodingSheetError(
        f"Several coding sheets in {root}: {[p.name for p in found]}. Keep exactly one.")
  return found[0]


def _norm_header(value: Any) -> str:
  return re.sub(r"\s+", " ", str(value)).strip().lower() if value is not None else ""


def _locate_columns(rows, path) -> tuple[int, dict[str, int]]:
  """Finds the header row; returns (row index, field -> column index)."""
  wanted = {field: _norm_header(name) for field, name in COLUMNS.items()}
  best = None
  for r, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
    names = [_norm_header(v) for v in row]
    found = {f: names.index(h) for f, h in wanted.items() if h in names}
    if best is None or len(found) > len(best[1]):
      best = (r, found)
  if best is None or "subject" not in best[1]:
    raise sheets_lib.CodingSheetError(
        f"{path}: no header row with a 'Subject' column in the first {_HEADER_SEARCH_ROWS} rows of "
        f"{SHEET_NAME!r}; expected columns {list(COLUMNS.values())}.")
  missing = [COLUMNS[f] for f in COLUMNS if f not in best[1]]
  if missing:
    raise sheets_lib.CodingSheetError(
        f"{path}: sheet {SHEET_NAME!r} lacks column(s) {missing} (header row {best[0] + 1}); "
        f"expected columns {list(COLUMNS.values())}.")
  return best


def _parse_subject(value: Any) -> str | None:
  """1, 1.0, '01', '1', 'sub01' -> 'sub01'."""
  if isinstance(value, bool) or value is None:
    return None
  if isinstance(value, (int, float)):
    if float(value) != int(value):
      return None
    return f"sub{int(value):02d}"
  m = re.fullmatch(r"(?:sub)?\s*0*(\d+)", str(value).strip(), flags=re.IGNORECASE)
  return f"sub{int(m.group(1)):02d}" if m else None


def _format_filename(value: Any) -> str | None:
  if value is None:
    return None
  if isinstance(value, float) and value == int(value):
    value = int(value)
  text = str(value).strip()
  return text or None


def parse_coding_sheet(path) -> tuple[list[sheets_lib.ClipRecord], list[str]]:
  """Reads the CASME II coding sheet.

  Args:
    path: the `CASME2-coding-*.xlsx` file.

  Returns:
    (records in sheet order, report): one report line per row fixed or dropped.
  """
  path = pathlib.Path(path)
  sheets = sheets_lib.read_workbook(path, "Coding sheet")
  if SHEET_NAME not in sheets:
    raise sheets_lib.CodingSheetError(f"{path}: no sheet named {SHEET_NAME!r} (sheets: {list(sheets)}).")
  rows = sheets[SHEET_NAME]

  header_row, cols = _locate_columns(rows, path)
  records, report, seen = [], [], {}
  for r in range(header_row + 1, len(rows)):
    row = rows[r]
    cell = lambda f, row=row: row[cols[f]] if cols[f] < len(row) else None
    if all(cell(f) is None or str(cell(f)).strip() == "" for f in COLUMNS):
      continue  # blank line
    excel_row = r + 1
    where = f"row {excel_row}"

    subject = _parse_subject(cell("subject"))
    filename = _format_filename(cell("filename"))
    if subject is None or filename is None:
      report.append(f"{where}: dropped: unreadable subject {cell('subject')!r} or filename "
                    f"{cell('filename')!r}.")
      continue
    where = f"row {excel_row} ({subject}/{filename})"

    emotion = str(cell("emotion") or "").strip().lower()
    if emotion not in CASME2_EMOTIONS:
      report.append(f"{where}: dropped: unknown emotion {cell('emotion')!r} "
                    f"(known: {', '.join(CASME2_EMOTIONS)}).")
      continue

    frames, notes = sheets_lib.check_frames(*(cell(f) for f in ("onset", "apex", "offset")), where)
    report.extend(notes)
    if frames is None:
      continue
    onset, apex, offset = frames

    key = (subject, filename)
    if key in seen:
      report.append(f"{where}: dropped: duplicate of row {seen[key]}.")
      continue
    seen[key] = excel_row
    records.append(sheets_lib.ClipRecord(subject=subject, filename=filename, onset=onset, apex=apex,
                              offset=offset,
                              action_units=au_lib.parse_action_units(cell("action_units")),
                              emotion=emotion))
  if not records:
    raise sheets_lib.CodingSheetError(f"{path}: no usable rows in sheet {SHEET_NAME!r}.")
  return records, report
