"""Coding sheet parsing: every quirk of the official sheet has a policy and a report line."""

from __future__ import annotations

import pytest

from microexp.data import casme2_sheet
from microexp.data import sheets as sheets_lib
from microexp.data.casme2_sheet import COLUMNS

HEADER = [COLUMNS["subject"], COLUMNS["filename"], COLUMNS["onset"], COLUMNS["apex"],
          COLUMNS["offset"], None, COLUMNS["action_units"], COLUMNS["emotion"]]


@pytest.fixture(name="parse_rows")
def fixture_parse_rows(write_coding_sheet):
  def parse(tmp_path, rows, **kwargs):
    return casme2_sheet.parse_coding_sheet(write_coding_sheet(tmp_path, rows, **kwargs))
  return parse


def test_clean_row(parse_rows, tmp_path):
  records, report = parse_rows(tmp_path, [["01", "EP02_01f", 46, 59, 86, None, "12", "happiness"]])
  assert records == [sheets_lib.ClipRecord("sub01", "EP02_01f", 46, 59, 86, ("12",), "happiness")]
  assert report == []


@pytest.mark.parametrize("cell", [1, 1.0, "01", "1", "sub01", " 01 "])
def test_subject_int_or_text(parse_rows, tmp_path, cell):
  records, _ = parse_rows(tmp_path, [[cell, "EP02_01f", 46, 59, 86, None, 12, "happiness"]])
  assert records[0].subject == "sub01"


@pytest.mark.parametrize("cell, expected", [
    (4, ("4",)), (4.0, ("4",)), ("4+L10+R12", ("4", "L10", "R12")), ("?", ("?",)),
    (None, ()), ("1+2.0", ("1", "2")), (" 6 + 12 ", ("6", "12")),
])
def test_action_units_are_strings(parse_rows, tmp_path, cell, expected):
  records, _ = parse_rows(tmp_path, [[1, "EP02_01f", 46, 59, 86, None, cell, "others"]])
  assert records[0].action_units == expected


@pytest.mark.parametrize("filename", ["EP01_2", "EP06_02_01", "EP09f", "EP02_01f"])
def test_irregular_filenames_verbatim(parse_rows, tmp_path, filename):
  records, report = parse_rows(tmp_path, [[1, filename, 1, 5, 9, None, 12, "happiness"]])
  assert records[0].filename == filename and report == []


def test_slash_apex_becomes_midpoint(parse_rows, tmp_path):
  records, report = parse_rows(tmp_path, [[2, "EP01_01", 10, "/", 31, None, 4, "disgust"]])
  assert records[0].apex == 20
  assert len(report) == 1 and "row 2 (sub02/EP01_01)" in report[0] and "midpoint 20" in report[0]


def test_apex_at_onset_moves_to_midpoint_apex_at_offset_kept(parse_rows, tmp_path):
  records, report = parse_rows(tmp_path, [
      [1, "EP01", 10, 10, 20, None, 4, "disgust"],
      [1, "EP02", 10, 20, 20, None, 4, "disgust"],
      [1, "EP03", 10, 25, 20, None, 4, "disgust"],  # outside onset..offset
  ])
  assert [r.apex for r in records] == [15, 20, 15]
  assert len(report) == 3
  assert "apex == onset" in report[0] and "apex == offset" in report[1]
  assert "outside" in report[2]
  assert all(r.apex > r.onset for r in records)


def test_dropped_rows_are_reported(parse_rows, tmp_path):
  records, report = parse_rows(tmp_path, [
      [1, "EP01", 10, 12, 20, None, 4, "happiness"],
      [1, "EP02", 30, 25, 20, None, 4, "happiness"],  # onset > offset
      [1, "EP03", 10, 12, 20, None, 4, "contempt"],  # unknown emotion
      [1, "EP04", 10, 12, "/", None, 4, "happiness"],  # no offset
      [1, "EP05", 10, 10, 10, None, 4, "happiness"],  # single frame
      [1, "EP01", 10, 12, 20, None, 4, "happiness"],  # duplicate
      [None, None, None, None, None, None, None, None],  # blank: skipped silently
      ["x", "EP06", 10, 12, 20, None, 4, "happiness"],  # unreadable subject
  ])
  assert [r.filename for r in records] == ["EP01"]
  assert len(report) == 6
  assert all("dropped" in line for line in report)
  assert "onset 30 > offset 20" in report[0]
  assert "unknown emotion 'contempt'" in report[1]
  assert "duplicate of row 2" in report[4]


def test_emotion_case_and_spaces(parse_rows, tmp_path):
  records, _ = parse_rows(tmp_path, [[1, "EP01", 1, 2, 3, None, 4, " Repression "]])
  assert records[0].emotion == "repression"


def test_columns_found_by_name_not_position(parse_rows, tmp_path):
  header = [None, "Estimated Emotion", "Filename", None, "ApexFrame", "Subject", "OffsetFrame",
            "Action Units", "OnsetFrame", None]
  records, _ = parse_rows(tmp_path, [[None, "surprise", "EP07", None, 15, 3, 20, "1+2", 10, None]],
                          header=header)
  assert records == [sheets_lib.ClipRecord("sub03", "EP07", 10, 15, 20, ("1", "2"), "surprise")]


def test_missing_sheet_names_file(write_coding_sheet, tmp_path):
  path = write_coding_sheet(tmp_path, [[1, "EP01", 1, 2, 3, None, 4, "others"]], sheet="Data")
  with pytest.raises(sheets_lib.CodingSheetError, match=r"CASME2-coding-20140508\.xlsx.*Sheet1"):
    casme2_sheet.parse_coding_sheet(path)


def test_missing_column_names_file_and_column(write_coding_sheet, tmp_path):
  header = [h for h in HEADER if h != "ApexFrame"]
  path = write_coding_sheet(tmp_path, [[1, "EP01", 1, 3, None, 4, "others"]], header=header)
  with pytest.raises(sheets_lib.CodingSheetError) as e:
    casme2_sheet.parse_coding_sheet(path)
  assert str(path) in str(e.value) and "ApexFrame" in str(e.value)


def test_not_an_xlsx(tmp_path):
  path = tmp_path / "CASME2-coding-1.xlsx"
  path.write_text("not a workbook")
  with pytest.raises(sheets_lib.CodingSheetError, match="CASME2-coding-1.xlsx"):
    casme2_sheet.parse_coding_sheet(path)


def test_find_coding_sheet(write_coding_sheet, tmp_path):
  with pytest.raises(FileNotFoundError, match="No coding sheet"):
    casme2_sheet.find_coding_sheet(tmp_path)
  path = write_coding_sheet(tmp_path, [])
  assert casme2_sheet.find_coding_sheet(tmp_path) == path
  write_coding_sheet(tmp_path, [], name="CASME2-coding-20130101.xlsx")
  with pytest.raises(sheets_lib.CodingSheetError, match="Several coding sheets"):
    casme2_sheet.find_coding_sheet(tmp_path)
