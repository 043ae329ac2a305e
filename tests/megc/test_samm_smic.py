"""SAMM and SMIC-HS readers, apex spotting, and the MEGC2019 composite."""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import openpyxl
import pytest

from microexp.data import casme2
from microexp.data import sheets as sheets_lib
from microexp.loaders import megc_frames as megc
from microexp.data import samm
from microexp.data import smic
from microexp.synthetic import casme2 as synthetic
from microexp.synthetic import megc as synthetic_megc


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> pathlib.Path:
  """CASME2/ (4x4), SAMM/ (4x4 + 'Other' + 'Macro' rows), SMIC/ (3x4) at 96x80, 8-12 frames."""
  return synthetic_megc.write_synthetic_megc(tmp_path_factory.mktemp("megc") / "raw")


def test_samm_sheet_with_title_rows(raw):
  records, report = samm.parse_sheet(samm.find_sheet(raw / "SAMM"))
  assert "header found in row 4" in report[0]
  assert len(records) == 17  # 16 + 'Other'; the Macro row is dropped
  assert any("dropped: Type 'Macro'" in line for line in report)
  assert records[0].subject == "006" and records[0].apex == -1  # -1 apex -> spotted
  assert {r.emotion for r in records} <= set(samm.SAMM_EMOTIONS)
  assert "other" in {r.emotion for r in records}


def test_samm_clips(raw):
  clips, report = samm.list_clips(raw / "SAMM")
  assert len(clips) == 17
  first = clips[0]
  assert 0 < first.apex_index < len(first.frame_paths)
  assert any("apex spotted at frame" in line for line in report)
  for clip in clips[1:]:
    assert casme2.frame_number(clip.frame_paths[clip.apex_index]) == clip.record.apex
    assert clip.frame_paths[0].name.startswith(clip.record.subject + "_")


def test_samm_missing_header_names_file(tmp_path):
  wb = openpyxl.Workbook()
  wb.active.append(["Subject", "Filename", "Onset"])
  wb.save(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx")
  with pytest.raises(sheets_lib.CodingSheetError, match="SAMM_Micro_FACS_Codes_v2.xlsx: no header"):
    samm.parse_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx")


def test_smic_clips(raw):
  clips, report = smic.list_clips(raw / "SMIC")
  assert len(clips) == 12
  assert {c.record.subject for c in clips} == {"s01", "s02", "s03"}
  assert all(c.record.filename.startswith(c.record.subject + "_") for c in clips)
  assert {c.record.emotion for c in clips} == {"negative", "positive", "surprise"}
  assert any("no micro/ folder" in line for line in report)
  assert any("re-padded" in line for line in report)


def test_spot_apex_finds_rendered_apex(tmp_path):
  rng = np.random.default_rng(3)
  face = synthetic.make_face(rng, (96, 80))
  hits = []
  for apex in (4, 6, 8):
    frames = synthetic.render_clip(face, "surprise", 14, apex, 1.2, rng)
    paths = []
    for t, frame in enumerate(frames):
      paths.append(tmp_path / f"{apex}_{t:02d}.png")
      import cv2
      cv2.imwrite(str(paths[-1]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    hits.append(abs(smic.spot_apex(paths) - apex))
  assert max(hits) <= 1, hits


def test_smic_bad_emotion_folder(raw, tmp_path):
  root = tmp_path / "SMIC"
  shutil.copytree(raw / "SMIC", root)
  (root / "HS" / "s1" / "micro" / "happy").mkdir()
  with pytest.raises(ValueError, match="happy: unknown SMIC emotion folder"):
    smic.list_clips(root)


def test_composite(raw):
  arrays, report = megc.build_composite(raw, image_size=28)
  n = len(arrays["clip"])
  assert arrays["inputs"].shape == (n, 28, 28, 3) and arrays["inputs"].dtype == np.float32
  counts = {d: int((arrays["dataset"] == d).sum()) for d in ("casme2", "samm", "smic")}
  # CASME II: 16 written, 'others' dropped; SAMM: 16 (+ 'Other' dropped); SMIC: 12.
  assert counts["samm"] == 16 and counts["smic"] == 12
  casme_others = sum("others" in line for line in report if line.startswith("casme2: dropped"))
  assert 0 < counts["casme2"] < 16 and casme_others == 1
  assert any(line.startswith("samm: dropped (no MEGC class): {'other': 1}") for line in report)
  assert set(arrays["emotion"]) == {"negative", "positive", "surprise"}
  for s, d in zip(arrays["subject"], arrays["dataset"]):
    assert s.split("/")[0] == d
  assert len(set(arrays["subject"])) == 11
  assert any(line.startswith("total:") and "(real: 442, 68)" in line for line in report)
  x = arrays["inputs"]
  assert np.allclose(x.min(axis=(1, 2)), -1) and np.allclose(x.max(axis=(1, 2)), 1)


def test_composite_with_csv(raw, tmp_path):
  arrays, _ = megc.build_composite(raw, image_size=16)
  keep = [i for i in range(len(arrays["clip"])) if i % 2 == 0]
  rows = ["dataset,sub,filename_o,label"]
  for i in keep:
    dataset, subject = arrays["subject"][i].split("/")
    subject = str(int(subject)) if dataset == "samm" else subject  # the CSV's unpadded '6'
    rows.append(f"{dataset},{subject},{arrays['clip'][i]},2")
  (tmp_path / "gt.csv").write_text("\n".join(rows) + "\n")
  sub, report = megc.build_composite(raw, image_size=16, gt_csv=tmp_path / "gt.csv")
  assert len(sub["clip"]) == len(keep) and set(sub["emotion"]) == {"surprise"}
  assert any("label(s) differ from the emotion mapping (CSV wins)" in line for line in report)
  (tmp_path / "gt.csv").write_text(rows[0] + "\nsamm,6,006_9_9,0\n")
  with pytest.raises(ValueError, match="samm/006/006_9_9"):
    megc.build_composite(raw, image_size=16, gt_csv=tmp_path / "gt.csv")


def test_composite_missing_folder(tmp_path):
  (tmp_path / "CASME2").mkdir()
  with pytest.raises(FileNotFoundError, match="Expected one samm folder"):
    megc.find_dataset_dirs(tmp_path)
