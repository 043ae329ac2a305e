"""DFME reader on its synthetic tree: three sheets, per-clip fps, official split, quirks."""

from __future__ import annotations

import pathlib
import shutil

import openpyxl
import pytest

from microexp.data import sheets as sheets_lib
from microexp.data import dfme
from microexp.synthetic import dfme as synthetic_dfme
from microexp.data.emotions import DFME_EMOTIONS, get_subset


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> pathlib.Path:
  """(train, testA, testB) = (3, 1, 1) subjects x 4 clips."""
  return synthetic_dfme.write_synthetic_dfme(tmp_path_factory.mktemp("dfme") / "DFME",
                                             num_subjects=(3, 1, 1), clips_per_subject=4)


def test_clips_splits_fps_and_report(root):
  clips, report = dfme.list_clips(root)
  assert len(clips) == 20
  splits = [r.split for _, r in clips]
  assert splits == ["train"] * 12 + ["testA"] * 4 + ["testB"] * 4
  assert {r.fps for _, r in clips} == {500.0, 300.0, 200.0}  # 500, '300', '200fps' all read
  assert {r.record.emotion for _, r in clips} <= set(DFME_EMOTIONS)
  text = "\n".join(report)
  assert "training_full_with_AU.xlsx row 2 (1/0001_01): apex None not a frame number" in text
  assert "EmotionId 99" in text and "the Emotion text is used" in text
  assert "emotion 'Happy' read as 'happiness'" in text
  assert "DFME train: 12 clips, 3 subjects" in text
  assert report[-1].startswith("DFME total: 20 clips, 5 subjects") and "7526" in report[-1]
  # The zero-padded folder (00255.jpg) is read like the others.
  padded = next(c for c, r in clips if r.record.filename == "0001_02")
  assert padded.frame_paths[0].name.startswith("00")
  assert padded.frame_numbers[0] == padded.record.onset


def test_some_sheets_only(root, tmp_path):
  copy = tmp_path / "DFME"
  shutil.copytree(root, copy)
  (copy / dfme.SHEETS["testB"]).unlink()
  clips, _ = dfme.list_clips(copy)
  assert {r.split for _, r in clips} == {"train", "testA"}


def _sheet(path, rows):
  wb = openpyxl.Workbook()
  wb.active.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion",
                    "EmotionId", "Fps", "AU"])
  for row in rows:
    wb.active.append(row)
  wb.save(path)


def test_sheet_policies(tmp_path):
  _sheet(tmp_path / dfme.SHEETS["testA"], [
      [7, "c1", 1, 5, 9, "Fear", 5, "500 FPS", "AU1+AU2+AU4"],
      [7, "c2", 1, 5, 9, "fear", 5, "fast", "4"],
      [7, "c1", 1, 5, 9, "fear", 5, 500, "4"],
      [7, "c3", 9, 5, 1, "fear", 5, 500, "4"],
      [7, "c4", 1, 5, 9, "", 5, 500, "4"],
  ])
  records, report = dfme.parse_sheets(dfme.find_sheets(tmp_path))
  assert [(r.record.filename, r.fps, r.split, r.record.action_units) for r in records] == [
      ("c1", 500.0, "testA", ("AU1", "AU2", "AU4"))]
  assert [line.split(": ", 1)[1].split(" ")[0:2] for line in report] == [
      ["dropped:", "Fps"], ["dropped:", "duplicate"], ["dropped:", "onset"],
      ["dropped:", "unknown"]]
  assert all(line.startswith("testA_full_with_AU.xlsx row ") for line in report)


def test_errors_name_the_file(root, tmp_path):
  with pytest.raises(FileNotFoundError, match="No DFME label sheet"):
    dfme.find_sheets(tmp_path)
  _sheet(tmp_path / dfme.SHEETS["train"], [[1, "nowhere", 1, 2, 3, "fear", 5, 500, "4"]])
  with pytest.raises(FileNotFoundError, match="1/nowhere .*no folder named 'nowhere'"):
    dfme.list_clips(tmp_path)
  wb = openpyxl.Workbook()
  wb.active.append(["Subject", "Filename", "Emotion"])
  wb.save(tmp_path / dfme.SHEETS["train"])
  with pytest.raises(sheets_lib.CodingSheetError, match="training_full_with_AU.xlsx: no header"):
    dfme.list_clips(tmp_path)
  copy = tmp_path / "twice"
  shutil.copytree(root, copy)
  shutil.copytree(copy / "train" / "0001_01", copy / "testA" / "0001_01")
  (copy / "train" / "0001_01").rename(copy / "train" / "x")
  (copy / "x").mkdir()
  shutil.copytree(copy / "train" / "x", copy / "x" / "0001_01")
  with pytest.raises(FileNotFoundError, match="2 folders named '0001_01'"):
    dfme.list_clips(copy)


def test_subsets():
  labels, keep = get_subset("dfme_3").map_emotions(list(DFME_EMOTIONS))
  assert keep.all() and list(labels) == [1, 0, 0, 0, 0, 0, 2]
  assert get_subset("dfme_7").class_names == DFME_EMOTIONS


def test_synthetic_needs_three_subject_counts(tmp_path):
  with pytest.raises(ValueError, match=r"subjects of \(train, testA, testB\)"):
    synthetic_dfme.write_synthetic_dfme(tmp_path, num_subjects=4)
