"""Video I/O: reading files and frame folders, the synthetic video, clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from microexp.vision import video
from microexp.synthetic import video as synthetic_video


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  path = tmp_path_factory.mktemp("video") / "clip.mp4"
  return synthetic_video.write_synthetic_video(path, num_frames=30, onset=6, apex=18, seed=3)


def test_synthetic_mp4_reads_back(synthetic):
  frames, fps = video.read_video(synthetic.path)
  assert frames.shape == (30, 288, 384, 3) and frames.dtype == np.uint8
  assert fps == pytest.approx(30.0)
  # The pasted face differs from the background around it (the frame is not blank or garbled).
  x, y, w, h = synthetic.face_box
  face = frames[0, y:y + h, x:x + w].astype(float)
  assert abs(face.mean() - frames[0].astype(float).mean()) > 1 or face.std() > 20
  assert video.read_video(synthetic.path, max_frames=5)[0].shape[0] == 5


def test_frame_folder_sorted_numerically(tmp_path):
  # img9 must come before img10 (lexical order would put img10 first).
  for number in (10, 9, 100):
    frame = np.full((8, 10, 3), number, np.uint8)
    cv2.imwrite(str(tmp_path / f"img{number}.png"), frame)
  frames, fps = video.read_video(tmp_path, fps=50)
  assert frames[:, 0, 0, 0].tolist() == [9, 10, 100]
  assert fps == 50


def test_write_video_rejects_float_frames(tmp_path):
  with pytest.raises(ValueError, match="uint8"):
    video.write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), 30)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.mp4", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no image files"),
    (lambda p: (p / "bad.mp4").write_bytes(b"\x00garbage" * 100) and p / "bad.mp4",
     "cannot open|no frame"),
])
def test_bad_inputs_name_the_path(tmp_path, make, message):
  path = make(tmp_path)
  with pytest.raises(video.VideoError, match=message) as error:
    video.read_video(path)
  assert str(path) in str(error.value)


def test_corrupt_image_in_folder_named(tmp_path):
  cv2.imwrite(str(tmp_path / "f1.png"), np.zeros((4, 4, 3), np.uint8))
  (tmp_path / "f2.png").write_bytes(b"not a png")
  with pytest.raises(video.VideoError, match="f2.png"):
    video.read_video(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
  # Root reads mode-000 files, so permission is denied by a stand-in `open` instead of chmod.
  path = tmp_path / "locked.mp4"
  path.write_bytes(b"x")

  def deny(*args, **kwargs):
    raise PermissionError(13, "Permission denied", str(path))

  monkeypatch.setattr("builtins.open", deny)
  with pytest.raises(video.VideoError, match="locked.mp4: cannot be read .Permission denied"):
    video.read_video(path)
