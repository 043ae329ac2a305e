"""Label sheets of the long-video spotting sets: CAS(ME)^2 and SAMM Long Videos (MEGC spotting).

Both list every expression of every long recording as one row with onset / apex / offset frames and
its type (micro or macro). Layouts (as distributed, and as tvaranka/meb's and the MEGC spotting
baselines' loaders read them):

- **CAS(ME)^2** `CAS(ME)^2code_final.xlsx` (also `code_final.xlsx`): first sheet, *no header*,
  columns subject number, `<video name>_<expression number>` (`anger1_1`), onset, apex, offset, AUs,
  estimated emotion, type (`macro-expression` / `micro-expression`), self-reported emotion. Sheet 2
  names subjects (col 1 code `s15`, col 2 number 15), sheet 3 names videos (col 0 code `0401`, col 1
  name `anger1`). Frames: `rawpic/s15/15_0401<long name>/img<N>.jpg`, so a video is keyed
  `<number>_<code>` (`15_0401`) and found by that folder prefix. Quirk: an offset of 0 means 'not
  coded'; the apex stands in for it (the MEGC baselines' rule), one report line each.
- **SAMM Long Videos** `SAMM_LongVideos_V2_Release.xlsx`: first sheet, a title block of ~9 rows,
  then a header `Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action
  Units, Notes`. Filename `006_1_2` is video `006_1`, expression 2; frames
  `SAMM_longvideos/006_1/006_1_0001.jpg`. Type is `Micro - 1/2` or `Macro`. Quirk: apex -1 (not
  coded) -> the interval's middle, one report line each.

Every reader returns (intervals, report); an unreadable file or a missing column is an error naming
the file.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Iterable

from microexp.data import sheets as sheets_lib

CASME_SQ_SHEETS = ("CAS(ME)^2code_final.xlsx", "CAS(ME)^2code_final(Updated).xlsx",
                   "code_final.xlsx")
SAMM_LONG_SHEET = "SAMM_LongVideos_V2_Release.xlsx"
SAMM_LONG_COLUMNS = ("Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset",
                     "Duration", "Type", "Action Units", "Notes")


class LongVideoSheetError(ValueError):
  """A label sheet that cannot be read; the message names the file."""


@dataclasses.dataclass(frozen=True)
class LabelledInterval:
  """One coded expression of a long video (frames as in the sheet, inclusive)."""

  dataset: str  # 'casme_sq' or 'samm_long'
  subject: str
  video: str  # key of the recording: CAS(ME)^2 '15_0401', SAMM '006_1'
  onset: int
  apex: int
  offset: int
  kind: str  # 'micro' or 'macro'
  action_units: str
  emotion: str


def _read_rows(path: pathlib.Path) -> list[list[tuple]]:
  return list(sheets_lib.read_workbook(path, "Label sheet", LongVideoSheetError).values())


def _int(value: Any) -> int | None:
  if isinstance(value, bool) or value is None:
    return None
  try:
    number = float(str(value).strip())
  except ValueError:
    return None
  return int(number) if number == int(number) else None


def _kind(value: Any) -> str | None:
  text = str(value or "").strip().lower()
  return "micro" if text.startswith("micro") else "macro" if text.startswith("macro") else None


def _text(value: Any) -> str:
  if isinstance(value, float) and value == int(value):
    value = int(value)
  return "" if value is None else str(value).strip()


def find_sheet(root, names: Iterable[str]) -> pathlib.Path:
  """The first of `names` found in `root` (any case); error listing what was looked for."""
  root = pathlib.Path(root)
  wanted = {n.lower() for n in names}
  found = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower() in wanted)
  if not found:
    raise FileNotFoundError(f"No label sheet {sorted(names)} in {root}.")
  return found[0]


def read_casme_sq(path) -> tuple[list[LabelledInterval], list[str]]:
  """CAS(ME)^2 `code_final` sheet -> (intervals in sheet order, report)."""
  path = pathlib.Path(path)
  sheets = _read_rows(path)
  if len(sheets) < 3:
    raise LongVideoSheetError(f"{path}: expected 3 sheets (codes, subject names, video names), "
                              f"found {len(sheets)}.")
  subjects = {_int(r[2]): _text(r[1]) for r in sheets[1] if len(r) > 2 and _int(r[2]) is not None}
  videos = {_text(r[1]): _text(r[0]).zfill(4) for r in sheets[2] if len(r) > 1 and r[1]}
  intervals, report = [], []
  for number, row in enumerate(sheets[0], start=1):
    where = f"{path.name} row {number}"
    if not any(v not in (None, "") for v in row):
      continue
    if len(row) < 8:
      raise LongVideoSheetError(f"{path}: row {number} has {len(row)} columns, expected 9 "
                                "(subject, video_expression, onset, apex, offset, AUs, emotion, "
                                "type, self-report).")
    subject, name = _int(row[0]), _text(row[1]).rsplit("_", 1)[0]
    onset, apex, offset, kind = _int(row[2]), _int(row[3]), _int(row[4]), _kind(row[7])
    if subject is None or onset is None or apex is None or offset is None or kind is None:
      report.append(f"{where}: dropped (unreadable subject, frame or type: {row[:8]}).")
      continue
    if name not in videos:
      report.append(f"{where}: dropped (video {name!r} not in the video-name sheet).")
      continue
    if offset == 0:
      report.append(f"{where}: offset 0 (not coded) -> apex {apex}.")
      offset = apex
    intervals.append(LabelledInterval(
        "casme_sq", subjects.get(subject, f"s{subject}"), f"{subject}_{videos[name]}",
        onset, apex, offset, kind, _text(row[5]), _text(row[6])))
  return intervals, report


def read_samm_long(path) -> tuple[list[LabelledInterval], list[str]]:
  """SAMM Long Videos release sheet -> (intervals in sheet order, report)."""
  path = pathlib.Path(path)
  rows = _read_rows(path)[0]
  header = next((i for i, r in enumerate(rows)
                 if {"subject", "filename", "onset", "offset", "type"} <= {_text(v).lower()
                                                                             for v in r}), None)
  if header is None:
    raise LongVideoSheetError(f"{path}: no header row with {list(SAMM_LONG_COLUMNS)}.")
  cols = {_text(v).lower(): i for i, v in enumerate(rows[header]) if v is not None}
  missing = [c for c in ("subject", "filename", "onset", "apex", "offset", "type")
             if c not in cols]
  if missing:
    raise LongVideoSheetError(f"{path}: header row {header + 1} lacks columns {missing}.")
  cell = lambda row, name: row[cols[name]] if name in cols and cols[name] < len(row) else None
  intervals, report = [], []
  for number in range(header + 1, len(rows)):
    row, where = rows[number], f"{path.name} row {number + 1}"
    if not any(v not in (None, "") for v in row):
      continue
    filename = _text(cell(row, "filename"))
    onset, apex, offset = (_int(cell(row, c)) for c in ("onset", "apex", "offset"))
    kind = _kind(cell(row, "type"))
    parts = filename.split("_")
    if len(parts) < 3 or onset is None or offset is None or kind is None or offset < onset:
      report.append(f"{where}: dropped (unreadable filename, frames or type: "
                    f"{filename!r}, {onset}, {offset}, {cell(row, 'type')!r}).")
      continue
    if apex is None or apex < 0:
      apex = (onset + offset) // 2
      report.append(f"{where}: apex not coded -> the middle frame {apex}.")
    intervals.append(LabelledInterval(
        "samm_long", parts[0], "_".join(parts[:2]), onset, apex, offset, kind,
        _text(cell(row, "action units")), _text(cell(row, "notes"))))
  return intervals, report


def by_video(intervals: Iterable[LabelledInterval], kind: str | None = "micro"
             ) -> dict[str, list[tuple[int, int]]]:
  """{video: [(onset, offset), ...]} of one kind (None: all), for `spotting_eval.evaluate`."""
  out: dict[str, list[tuple[int, int]]] = {}
  for i in intervals:
    if kind is None or i.kind == kind:
      out.setdefault(i.video, []).append((i.onset, i.offset))
  return out


def write_casme_sq_sheet(path, intervals: Iterable[LabelledInterval], *,
                         video_names: dict[str, str]) -> pathlib.Path:
  """Writes a CAS(ME)^2-layout sheet (3 sheets, no header) for synthetic tests.

  video_names: {video code '0401': name 'anger1'}; interval.video is '<subject number>_<code>'.
  """
  import openpyxl  # pylint: disable=g-import-not-at-top

  workbook = openpyxl.Workbook()
  codes = workbook.active
  codes.title = "Sheet1"
  subjects, counts = {}, {}
  for i in intervals:
    number, code = i.video.split("_")
    subjects[int(number)] = i.subject
    counts[i.video] = counts.get(i.video, 0) + 1
    kind = "micro-expression" if i.kind == "micro" else "macro-expression"
    codes.append([int(number), f"{video_names[code]}_{counts[i.video]}", i.onset, i.apex,
                  i.offset, i.action_units, i.emotion, kind, i.emotion])
  naming = workbook.create_sheet("naming rule1")
  for number, code in sorted(subjects.items()):
    naming.append([f"subject {number}", code, number])
  videos = workbook.create_sheet("naming rule2")
  for code, name in sorted(video_names.items()):
    videos.append([code, name])
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  workbook.save(path)
  return path


def write_samm_long_sheet(path, intervals: Iterable[LabelledInterval]) -> pathlib.Path:
  """Writes a SAMM-Long-Videos-layout sheet (title block, header, rows) for synthetic tests."""
  import openpyxl  # pylint: disable=g-import-not-at-top

  workbook = openpyxl.Workbook()
  sheet = workbook.active
  sheet.append(["SAMM Long Videos - synthetic release"])
  for _ in range(8):
    sheet.append([])
  sheet.append(list(SAMM_LONG_COLUMNS))
  counts = {}
  for i in intervals:
    counts[i.video] = counts.get(i.video, 0) + 1
    kind = "Micro - 1/2" if i.kind == "micro" else "Macro"
    sheet.append([i.subject, f"{i.video}_{counts[i.video]}", f"{i.subject}_1", i.onset, i.apex,
                  i.offset, i.offset - i.onset + 1, kind, i.action_units, i.emotion])
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  workbook.save(path)
  return path
