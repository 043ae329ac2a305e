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

import dataclasses
import pathlib
import re
from typing import Any, Sequence

import numpy as np

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
    raise CodingSheetError(
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
    raise CodingSheetError(
        f"{path}: no header row with a 'Subject' column in the first {_HEADER_SEARCH_ROWS} rows of "
        f"{SHEET_NAME!r}; expected columns {list(COLUMNS.values())}.")
  missing = [COLUMNS[f] for f in COLUMNS if f not in best[1]]
  if missing:
    raise CodingSheetError(
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


# Separators between AUs in the sheets: '+', ',', the full-width comma, ';', '、', and spaces.
_AU_SEPARATORS = r"[+,;\uff0c\u3001]+|(?<=[\d)])\s+(?=[A-Za-z]{0,2}\d)"
# One AU token once normalised: optional side, the AU number, an optional FACS intensity letter.
_AU_TOKEN = re.compile(
    r"(?:AU)?\s*(?P<pre>[A-Z]{0,2}?)\s*(?:AU)?\s*(?P<num>\d+)(?:\.0+)?\s*(?P<post>[A-Z]{0,2})")
SIDES = ("L", "R")  # left / right; other letters (FACS intensity A-E, 'U', 'T', 'B') are dropped


def parse_action_units(value: Any) -> tuple[str, ...]:
  """An AU cell split into its tokens, kept as written (one parser for every sheet).

  4 / 4.0 / '4+L10+R12' / '?' / '1, 2' / 'AU4，AU7' -> ('4',) / ('4',) / ('4', 'L10', 'R12') /
  ('?',) / ('1', '2') / ('AU4', 'AU7'). `action_unit_numbers` normalises the tokens.
  """
  if value is None:
    return ()
  if isinstance(value, float) and value == int(value):
    value = int(value)
  units = []
  for part in re.split(_AU_SEPARATORS, str(value).strip()):
    part = part.strip()
    if re.fullmatch(r"\d+\.0+", part):  # '4.0' typed by Excel
      part = part.split(".")[0]
    if part:
      units.append(part)
  return tuple(units)


def normalize_action_unit(token: str, *, sides: bool = False) -> str | None:
  """One AU token -> its number as a string, or None when it names no AU.

  'AU4', '4', '4.0', '12(weak)', '12B' (FACS intensity), 'A1', 'B4', 'T12' -> '4', '4', '4', '12',
  '12', '1', '4', '12'; 'L12', 'R12', 'AU12R', 'AU12L' -> '12', or 'L12' / 'R12' with `sides`;
  '?', '', 'none', '/' -> None.
  """
  text = re.sub(r"\(.*?\)|\[.*?\]", "", str(token)).strip().upper()
  m = _AU_TOKEN.fullmatch(text)
  if m is None:
    return None
  side = next((c for c in m.group("pre") + m.group("post") if c in SIDES), "")
  number = str(int(m.group("num")))
  return f"{side}{number}" if sides and side else number


def action_unit_numbers(value: Any, *, sides: bool = False) -> tuple[str, ...]:
  """An AU cell (or parsed tokens) -> normalised AUs, unique, in numeric order.

  '4+L10+R12' -> ('4', '10', '12'); with `sides` -> ('4', 'L10', 'R12'). Tokens naming no AU
  ('?') are left out.
  """
  tokens = value if isinstance(value, (tuple, list)) else parse_action_units(value)
  found = {a for a in (normalize_action_unit(t, sides=sides) for t in tokens) if a}
  return tuple(sorted(found, key=_au_sort_key))


def _au_sort_key(name: str) -> tuple[int, str]:
  return int(re.sub(r"\D", "", name)), name


def au_multi_hot(action_units, *, sides: bool = False,
                 vocabulary=None) -> tuple[np.ndarray, tuple[str, ...]]:
  """Per-clip AU cells or token tuples -> (multi-hot float32 [N, A], AU names [A]).

  `vocabulary` fixes the columns (e.g. a union over datasets); by default it is every AU present,
  in numeric order ('1', '2', '4', ..., with `sides` 'L12' and 'R12' are columns of their own).
  An AU outside a given vocabulary raises ValueError.
  """
  per_clip = [action_unit_numbers(a, sides=sides) for a in action_units]
  if vocabulary is None:
    vocabulary = sorted({a for aus in per_clip for a in aus}, key=_au_sort_key)
  vocabulary = tuple(str(v) for v in vocabulary)
  column = {a: i for i, a in enumerate(vocabulary)}
  hot = np.zeros((len(per_clip), len(vocabulary)), np.float32)
  for i, aus in enumerate(per_clip):
    for a in aus:
      if a not in column:
        raise ValueError(f"AU {a!r} of clip {i} is not in the vocabulary {vocabulary}.")
      hot[i, column[a]] = 1.0
  return hot, vocabulary


def au_arrays(action_units, *, sides: bool = False) -> dict[str, np.ndarray]:
  """The loaders' AU arrays: {'au': float32 [N, A] multi-hot, 'au_names': str [N, A]}.

  `au_names` repeats the column names on every row so that every array keeps a leading N (the
  engine subsets arrays by rows).
  """
  hot, names = au_multi_hot(action_units, sides=sides)
  return dict(au=hot, au_names=np.tile(np.array(names, dtype=str)[None], (len(hot), 1))
              if names else np.zeros((len(hot), 0), dtype=str))


def _format_filename(value: Any) -> str | None:
  if value is None:
    return None
  if isinstance(value, float) and value == int(value):
    value = int(value)
  text = str(value).strip()
  return text or None


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


def parse_coding_sheet(path) -> tuple[list[ClipRecord], list[str]]:
  """Reads the CASME II coding sheet.

  Args:
    path: the `CASME2-coding-*.xlsx` file.

  Returns:
    (records in sheet order, report): one report line per row fixed or dropped.
  """
  path = pathlib.Path(path)
  sheets = read_workbook(path, "Coding sheet")
  if SHEET_NAME not in sheets:
    raise CodingSheetError(f"{path}: no sheet named {SHEET_NAME!r} (sheets: {list(sheets)}).")
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

    frames, notes = check_frames(*(cell(f) for f in ("onset", "apex", "offset")), where)
    report.extend(notes)
    if frames is None:
      continue
    onset, apex, offset = frames

    key = (subject, filename)
    if key in seen:
      report.append(f"{where}: dropped: duplicate of row {seen[key]}.")
      continue
    seen[key] = excel_row
    records.append(ClipRecord(subject=subject, filename=filename, onset=onset, apex=apex,
                              offset=offset,
                              action_units=parse_action_units(cell("action_units")),
                              emotion=emotion))
  if not records:
    raise CodingSheetError(f"{path}: no usable rows in sheet {SHEET_NAME!r}.")
  return records, report


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
