"""CAS(ME)^3 part A reader on its synthetic tree: every quirk has a policy and a report line."""

from __future__ import annotations

import pathlib
import shutil

import openpyxl
import pytest

from microexp.data import casme2
from microexp.data import casme3
from microexp.data import sheets as sheets_lib
from microexp.synthetic import casme3 as synthetic_casme3
from microexp.data.emotions import CASME3_EMOTIONS, get_subset


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> pathlib.Path:
  """3 subjects x 4 expressions (folder 'a' holds two), 96x80 faces in 172x256 frames."""
  return synthetic_casme3.write_synthetic_casme3(tmp_path_factory.mktemp("casme3") / "partA",
                                                 num_subjects=3, clips_per_subject=4)


def test_clips_and_report(root):
  clips, report = casme3.list_clips(root)
  assert len(clips) == 12
  assert [casme3.clip_key(c) for c in clips][:2] == [
      f"spNO.1/a_{clips[0].record.onset}", f"spNO.1/a_{clips[1].record.onset}"]
  assert len({casme3.clip_key(c) for c in clips}) == 12  # two expressions share folder a
  assert {c.record.emotion for c in clips} <= set(CASME3_EMOTIONS)
  assert all(c.frame_paths[0].parent.name == "color" for c in clips)
  text = "\n".join(report)
  assert "apex" in text and "outside onset..offset" in text and "set to the midpoint" in text
  assert "apex == onset" in text
  assert "dropped: onset 40 > offset 12" in text
  assert "dropped: Expression type 'Macro-expression'" in text
  assert "1 frame(s) missing inside" in text  # the frame drop
  assert "ignored (" not in text  # frames of the rest of the recording are normal, not reported
  assert report[-1].startswith("CAS(ME)^3 part A: 12 clips, 3 subjects") and "860" in report[-1]
  # Every line names the sheet row or the folder it is about.
  assert all("row" in line or str(root) in line for line in report[:-1])


def test_frames_are_uncropped_and_numbered_from_the_name(root):
  clips, _ = casme3.list_clips(root)
  clip = clips[2]
  frames = casme2.read_frames(clip.frame_paths[:1])
  assert frames.shape[1:] == (172, 256, 3)
  assert clip.frame_numbers[0] == clip.record.onset
  assert casme2.frame_number(clip.frame_paths[clip.apex_index]) == clip.record.apex


@pytest.mark.parametrize("cell, expected", [
    ("spNO.1", "spNO.1"), ("spNO. 12", "spNO.12"), ("SPNO.01", "spNO.1"), (7, "spNO.7"),
    ("7.0", "spNO.7"), ("sub7", None), (None, None)])
def test_subject_ids(cell, expected):
  assert casme3.subject_id(cell) == expected


def test_subsets():
  labels, keep = get_subset("casme3_4").map_emotions(list(CASME3_EMOTIONS))
  assert keep.all() and list(labels) == [1, 0, 0, 0, 0, 2, 3]
  labels, keep = get_subset("casme3_3").map_emotions(list(CASME3_EMOTIONS))
  assert list(keep) == [True] * 6 + [False]
  assert get_subset("casme3_7").class_names == CASME3_EMOTIONS
  assert get_subset("megc").map_emotions(["happy", "sad"])[0].tolist() == [1, 0]


def _sheet(path, rows):
  wb = openpyxl.Workbook()
  wb.active.append(["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class",
                    "emotion"])
  for row in rows:
    wb.active.append(row)
  wb.save(path)
  return path


def test_sheet_policies(tmp_path):
  path = _sheet(tmp_path / "labels.xlsx", [
      ["spNO.2", "A", 10, 12, 20, "4+7", "", "Happiness"],
      ["spNO.2", "a", 10, 13, 20, "4", "", "happy"],  # same clip again
      ["spNO.2", "a", 30, "/", 40, "L12", "", "sad"],
      ["spNO.2", "1", 30, 31, 40, "4", "", "sad"],  # filename is not a letter
      ["spNO.2", "b", 30, 31, 40, "4", "", "contempt"],
  ])
  records, report = casme3.parse_sheet(path)
  assert [(r.filename, r.onset, r.apex, r.emotion) for r in records] == [
      ("a", 10, 12, "happy"), ("a", 30, 35, "sad")]
  assert records[1].action_units == ("L12",)
  expected = ["row 2 (spNO.2/a): emotion 'Happiness' read as 'happy'",
              "row 3 (spNO.2/a): dropped: same subject, folder and onset as row 2",
              "row 4 (spNO.2/a): apex '/' not a frame number; set to the midpoint 35",
              "row 5: dropped: unreadable subject 'spNO.2' or filename '1'",
              "row 6 (spNO.2/b): dropped: unknown emotion 'contempt'"]
  assert len(report) == len(expected)
  for line, start in zip(report, expected):
    assert line.startswith(f"labels.xlsx {start}"), line


def test_errors_name_the_file(root, tmp_path):
  with pytest.raises(FileNotFoundError, match="label sheet"):
    casme3.find_sheet(tmp_path)
  (tmp_path / "CAS(ME)3_part_A_v2.xls").write_bytes(b"legacy")
  with pytest.raises(sheets_lib.CodingSheetError, match=r"CAS\(ME\)3_part_A_v2.xls.*as \.xlsx"):
    casme3.find_sheet(tmp_path)
  bad = tmp_path / "bad.xlsx"
  openpyxl.Workbook().save(bad)
  with pytest.raises(sheets_lib.CodingSheetError, match="bad.xlsx: no header row"):
    casme3.parse_sheet(bad)
  copy = tmp_path / "copy"
  shutil.copytree(root, copy)
  shutil.rmtree(copy / "spNO.2" / "b")
  with pytest.raises(FileNotFoundError, match=r"spNO.2/b/color .*does not exist"):
    casme3.list_clips(copy)


def test_subject_folders_found_below_the_root(root, tmp_path):
  nested = tmp_path / "casme3" / "data" / "part_A"
  shutil.copytree(root, nested, ignore=shutil.ignore_patterns("*.xlsx"))
  shutil.copy(root / synthetic_casme3.SHEET, tmp_path / "casme3")
  assert casme3.find_frames_root(tmp_path / "casme3") == nested
  clips, _ = casme3.list_clips(tmp_path / "casme3")
  assert len(clips) == 12
