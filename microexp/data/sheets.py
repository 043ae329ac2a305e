"""Label workbooks of every dataset: reading .xlsx tables, the `ClipRecord` of one coded clip,
the onset/apex/offset policies and emotion cells shared by all sheet readers."""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any, Sequence




class CodingSheetError(ValueError):
  """The coding sheet cannot be read (missing file, sheet or column)."""


@dataclasses.dataclass(frozen=True)
class ClipRecord:
  """One clip of the coding sheet; frame numbers are absolute (as in the image file names)."""

  subject: str  # 'sub01'
  filename: str  # verbatim folder name, e.g. 'EP02_01f', 'EP01_2'
  onset: int
  apex: int
  offset: int
  action_units: tuple[str, ...]  # ('4', 'L10'), ('?',), () when empty
  emotion: str  # lowercase, one of CASME2_EMOTIONS


def _parse_frame(value: Any) -> int | None:
  """46, 46.0, '46' -> 46; '/', '', None, 46.5 -> None."""
  if isinstance(value, bool) or value is None:
    return None
  if isinstance(value, (int, float)):
    return int(value) if float(value) == int(value) else None
  text = str(value).strip()
  if re.fullmatch(r"\d+(\.0*)?", text):
    return int(float(text))
  return None


def read_emotion(cell: Any, aliases: dict[str, str], known: Sequence[str], where: str,
                 report: list[str]) -> str | None:
  """A sheet's emotion cell, lower case, spelled through `aliases`; None (and a report line) when
  it is not one of `known`, a report line when an alias was applied."""
  raw = str(cell or "").strip().lower()
  emotion = aliases.get(raw, raw)
  if emotion not in known:
    report.append(f"{where}: dropped: unknown emotion {cell!r} (known: {', '.join(known)}).")
    return None
  if emotion != raw:
    report.append(f"{where}: emotion {cell!r} read as {emotion!r}.")
  return emotion


def check_frames(onset_cell: Any, apex_cell: Any, offset_cell: Any,
                 where: str) -> tuple[tuple[int, int, int] | None, list[str]]:
  """The onset/apex/offset policies of docs/data.md for one sheet row (every sheet).

  Returns ((onset, apex, offset) or None when the row is dropped, report lines prefixed `where`).
  """
  onset, apex, offset = (_parse_frame(c) for c in (onset_cell, apex_cell, offset_cell))
  if onset is None or offset is None:
    return None, [f"{where}: dropped: onset {onset_cell!r} / offset {offset_cell!r} is not a "
                  "frame number."]
  if onset > offset:
    return None, [f"{where}: dropped: onset {onset} > offset {offset}."]
  if onset == offset:
    return None, [f"{where}: dropped: onset == offset == {onset} (one frame has no motion)."]
  midpoint = (onset + offset) // 2
  report = []
  if apex is None:
    report.append(f"{where}: apex {apex_cell!r} not a frame number; set to the midpoint "
                  f"{midpoint} of onset {onset} and offset {offset}.")
    apex = midpoint
  elif apex < onset or apex > offset:
    report.append(f"{where}: apex {apex} outside onset..offset {onset}..{offset}; set to the "
                  f"midpoint {midpoint}.")
    apex = midpoint
  elif apex == onset:
    # An onset->apex flow would be zero: take the midpoint like a missing apex.
    report.append(f"{where}: apex == onset == {apex}; set to the midpoint {midpoint} of "
                  f"onset..offset {onset}..{offset}.")
    apex = midpoint
  elif apex == offset:
    # onset->apex is non-degenerate; only apex->offset would be: kept as coded.
    report.append(f"{where}: apex == offset == {apex}; kept (onset->apex motion is non-zero).")
  return (onset, apex, offset), report


def read_workbook(path, what: str, error: type[Exception] | None = None) -> dict[str, list[tuple]]:
  """Every sheet of an .xlsx file as rows of cell values: {sheet name: [row tuple]} in file order.

  A missing file is a FileNotFoundError naming `what` (e.g. 'Coding sheet'); an unreadable one
  an `error` (default CodingSheetError) naming the path.
  """
  import openpyxl  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{what} {path} does not exist.")
  try:
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
  except Exception as e:  # openpyxl raises several types for a corrupt file.
    raise (error or CodingSheetError)(f"{path}: cannot be read as an .xlsx workbook ({e}).") from e
  try:
    return {name: [tuple(r) for r in workbook[name].iter_rows(values_only=True)]
            for name in workbook.sheetnames}
  finally:
    workbook.close()


def _squash(value: Any) -> str:
  """Header cell -> lower case without spaces or underscores ('Onset Frame' == 'onset_frame')."""
  return re.sub(r"[\s_]+", "", str(value)).lower() if value is not None else ""


def read_sheet_table(path, columns: dict[str, tuple[str, ...]], *, search_rows: int = 40,
                     what: str = "label sheet") -> tuple[list[dict[str, Any]], list[str]]:
  """Rows of the first worksheet holding a header with every required column (any sheet).

  Args:
    path: an .xlsx file.
    columns: field -> accepted header names (matched without case, spaces or underscores); a
      field whose names end with None is optional.
    search_rows: rows searched for the header in each sheet.
    what: the file's role, for messages.

  Returns:
    (rows as {field: cell} with the Excel row number under '_row', notes: where the header was).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{what} {path} does not exist.")
  if path.suffix.lower() != ".xlsx":
    raise CodingSheetError(f"{path}: only .xlsx {what}s can be read (openpyxl); open it in a "
                           "spreadsheet program and save it as .xlsx next to the original.")
  sheets = read_workbook(path, what)
  required = {f: names for f, names in columns.items() if names[-1] is not None}
  best = (0, None)
  for sheet, rows in sheets.items():
    for r, row in enumerate(rows[:search_rows]):
      names = [_squash(v) for v in row]
      cols = {}
      for field, options in columns.items():
        hit = [names.index(_squash(o)) for o in options if o is not None and _squash(o) in names]
        if hit:
          cols[field] = hit[0]
      if all(f in cols for f in required):
        table = []
        for i in range(r + 1, len(rows)):
          cells = {f: rows[i][c] if c < len(rows[i]) else None for f, c in cols.items()}
          if all(v is None or str(v).strip() == "" for v in cells.values()):
            continue
          table.append({**cells, "_row": i + 1})
        notes = [] if r == 0 else [f"{path.name}: header found in sheet {sheet!r} row {r + 1}."]
        return table, notes
      found = sum(f in cols for f in required)
      if found > best[0]:
        best = (found, (sheet, r, [f for f in required if f not in cols]))
  detail = (f"; best match sheet {best[1][0]!r} row {best[1][1] + 1} lacks {best[1][2]}"
            if best[1] else "")
  raise CodingSheetError(
      f"{path}: no header row with columns {[n[0] for n in required.values()]} in the first "
      f"{search_rows} rows of any sheet{detail}.")
