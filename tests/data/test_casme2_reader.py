"""CASME II layout reader: frame resolution policies, reports, errors, frame loading."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from microexp.data import casme2
from microexp.synthetic import casme2 as synthetic


def write_clip(root, frames, subject="sub01", filename="EP01_01", prefix="reg_img",
               folder="Cropped", names=None):
  """Writes tiny JPEGs whose grey level encodes the frame number; returns the clip folder."""
  clip = root / folder / subject / filename
  clip.mkdir(parents=True, exist_ok=True)
  for n in frames:
    cv2.imwrite(str(clip / f"{prefix}{n}.jpg"), np.full((8, 6, 3), n, np.uint8))
  for name in names or ():
    cv2.imwrite(str(clip / name), np.full((8, 6, 3), 200, np.uint8))
  return clip


def make_root(write_coding_sheet, tmp_path, onset, apex, offset, frames, **kwargs):
  write_coding_sheet(tmp_path, [[1, "EP01_01", onset, apex, offset, None, 12, "happiness"]])
  clip_folder = write_clip(tmp_path, frames, **kwargs)
  return tmp_path, clip_folder


def only_clip(root, **kwargs):
  clips, report = casme2.list_clips(root, **kwargs)
  assert len(clips) == 1
  return clips[0], report


def test_frames_sorted_numerically(write_coding_sheet, tmp_path):
  root, _ = make_root(write_coding_sheet, tmp_path, 8, 10, 12, range(8, 13))
  clip, report = only_clip(root)
  assert clip.frame_numbers == (8, 9, 10, 11, 12)  # not '10' < '8' string order
  assert (clip.onset_index, clip.apex_index, clip.offset_index) == (0, 2, 4)
  assert report == []
  assert casme2.read_frames(clip.frame_paths)[:, 0, 0, 0].tolist() == [8, 9, 10, 11, 12]


def test_missing_apex_uses_nearest_frame(write_coding_sheet, tmp_path):
  root, _ = make_root(write_coding_sheet, tmp_path, 1, 5, 9, [1, 2, 3, 4, 6, 7, 8, 9])
  clip, report = only_clip(root)
  assert clip.frame_numbers[clip.apex_index] == 4  # 4 and 6 tie: the earlier one
  assert any("apex frame 5 missing; nearest frame 4" in line for line in report)


def test_missing_onset_offset_use_first_last_present(write_coding_sheet, tmp_path):
  root, _ = make_root(write_coding_sheet, tmp_path, 1, 5, 9, range(3, 8))
  clip, report = only_clip(root)
  assert clip.frame_numbers == (3, 4, 5, 6, 7)
  assert (clip.onset_index, clip.offset_index) == (0, 4)
  assert any("onset frame 1 missing; first frame present 3" in line for line in report)
  assert any("offset frame 9 missing; last frame present 7" in line for line in report)


def test_frames_outside_onset_offset_ignored_and_reported(write_coding_sheet, tmp_path):
  root, _ = make_root(write_coding_sheet, tmp_path, 5, 7, 9, range(1, 15))
  clip, report = only_clip(root)
  assert clip.frame_numbers == (5, 6, 7, 8, 9)
  assert len(report) == 1 and "9 frame(s) outside onset..offset 5..9 ignored" in report[0]


def test_duplicates_keep_canonical_name_and_non_images_ignored(write_coding_sheet, tmp_path):
  root, folder = make_root(write_coding_sheet, tmp_path, 1, 2, 3, [1, 2, 3],
                           names=["reg_img2 (1).jpg", "reg_img3.JPG"])
  (folder / "Thumbs.db").write_bytes(b"\0" * 10)
  (folder / "notes.txt").write_text("x")
  clip, report = only_clip(root)
  assert [p.name for p in clip.frame_paths] == ["reg_img1.jpg", "reg_img2.jpg", "reg_img3.jpg"]
  assert len(report) == 2
  assert any("2 files for frame 2" in line and "kept reg_img2.jpg" in line for line in report)
  assert any("kept reg_img3.jpg" in line for line in report)


def test_raw_layout(write_coding_sheet, tmp_path):
  root, _ = make_root(write_coding_sheet, tmp_path, 46, 50, 52, range(46, 53), prefix="img",
                      folder="CASME2_RAW_selected")
  clip, _ = only_clip(root, layout="raw")
  assert clip.frame_paths[0].name == "img46.jpg" and clip.apex_index == 4
  with pytest.raises(FileNotFoundError, match="Cropped"):
    casme2.list_clips(root, layout="cropped")
  with pytest.raises(ValueError, match="Unknown CASME II layout"):
    casme2.list_clips(root, layout="flow")


def test_missing_clip_folder_names_path(write_coding_sheet, tmp_path):
  write_coding_sheet(tmp_path, [[1, "EP01_01", 1, 2, 3, None, 12, "happiness"],
                         [1, "EP09_09", 1, 2, 3, None, 12, "happiness"]])
  write_clip(tmp_path, [1, 2, 3])
  with pytest.raises(FileNotFoundError, match=r"Cropped/sub01/EP09_09"):
    casme2.list_clips(tmp_path)


def test_empty_clip_folder_names_path(write_coding_sheet, tmp_path):
  root, folder = make_root(write_coding_sheet, tmp_path, 1, 2, 3, [])
  with pytest.raises(FileNotFoundError, match=str(folder)):
    casme2.list_clips(root)


def test_no_frame_within_onset_offset(write_coding_sheet, tmp_path):
  root, folder = make_root(write_coding_sheet, tmp_path, 10, 12, 14, [1, 2])
  with pytest.raises(FileNotFoundError, match="none within"):
    casme2.list_clips(root)


@pytest.mark.parametrize("name, number", [
    ("reg_img46.jpg", 46), ("img46 (1).JPG", 46), ("006_05562.jpg", 5562), ("image046.bmp", 46)])
def test_frame_number(name, number):
  assert casme2.frame_number(name) == number
  assert casme2.frame_number(f"/data/sub01/EP01_1/{name}") == number


def test_read_frames_rgb_gray_resize(tmp_path):
  path = tmp_path / "red.png"
  cv2.imwrite(str(path), np.dstack([np.zeros((4, 6)), np.zeros((4, 6)), np.full((4, 6), 255)]))
  rgb = casme2.read_frames([path, path])
  assert rgb.shape == (2, 4, 6, 3) and rgb.dtype == np.uint8
  assert rgb[0, 0, 0].tolist() == [255, 0, 0]  # RGB order, not cv2's BGR
  gray = casme2.read_frames([path], grayscale=True, size=(8, 12))
  assert gray.shape == (1, 8, 12, 1) and 70 < gray[0, 4, 6, 0] < 80  # 0.299 * 255


def test_read_frames_errors_name_the_file(tmp_path):
  bad = tmp_path / "reg_img3.jpg"
  bad.write_bytes(b"not a jpeg")
  with pytest.raises(ValueError, match="reg_img3.jpg"):
    casme2.read_frames([bad])
  with pytest.raises(ValueError, match="missing.jpg"):
    casme2.read_frames([tmp_path / "missing.jpg"])
  small, big = tmp_path / "a.png", tmp_path / "b.png"
  cv2.imwrite(str(small), np.zeros((4, 4), np.uint8))
  cv2.imwrite(str(big), np.zeros((5, 4), np.uint8))
  with pytest.raises(ValueError, match="pass size"):
    casme2.read_frames([small, big])
  assert casme2.read_frames([small, big], size=(3, 3)).shape == (2, 3, 3, 3)


def test_synthetic_tree_reads(synthetic_casme2_root):
  clips, report = casme2.list_clips(synthetic_casme2_root)
  assert len(clips) == 36 and len(report) == 2
  assert "apex '/'" in report[0] and "files for frame" in report[1]
  for clip in clips:
    numbers = clip.frame_numbers
    assert list(numbers) == list(range(clip.record.onset, clip.record.offset + 1))
    assert 0 < clip.apex_index < clip.offset_index == len(numbers) - 1
  frames = casme2.read_frames(clips[0].frame_paths)
  assert frames.shape == (len(clips[0].frame_paths), 85, 70, 3)


def test_synthetic_raw_layout(tmp_path):
  root = synthetic.write_synthetic_casme2(tmp_path, num_subjects=2, clips_per_subject=2,
                                          image_size=(40, 32), num_frames=(6, 8), raw=True)
  cropped, _ = casme2.list_clips(root)
  raw, _ = casme2.list_clips(root, layout="raw")
  assert [c.frame_numbers for c in raw] == [c.frame_numbers for c in cropped]
  assert casme2.read_frames(raw[0].frame_paths[:1]).shape[1:] == (56, 57, 3)


def test_broken_synthetic_frame_is_named(synthetic_casme2_root, tmp_path):
  root = shutil.copytree(synthetic_casme2_root, tmp_path / "copy")
  clips, _ = casme2.list_clips(root)
  victim = clips[3].frame_paths[2]
  victim.write_bytes(b"")
  with pytest.raises(ValueError, match=victim.name):
    casme2.read_frames(clips[3].frame_paths)
