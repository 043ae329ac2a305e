"""Reading a video file or a folder of frames; writing an .mp4.

Frames are RGB uint8 `[T, H, W, 3]` everywhere in microexp. Every failure names the path and says
what was wrong: a missing path, a folder without images, a file OpenCV cannot decode.
"""

from __future__ import annotations

import pathlib
import re

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

# Fallback frame rate for frame folders (CASME II records at 200 fps).
DEFAULT_FPS = 200.0


class VideoError(ValueError):
  """A video or frame folder that cannot be read; the message names the path."""


def _frame_number(path: pathlib.Path) -> tuple[int, str]:
  # 'reg_img46.jpg' < 'reg_img100.jpg': sort on the last number in the name, then on the name.
  numbers = re.findall(r"\d+", path.stem)
  return (int(numbers[-1]) if numbers else -1, path.name)


def list_frame_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """Image files of `folder`, sorted by the last number in their name (numeric, not lexical)."""
  folder = pathlib.Path(folder)
  files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
  if not files:
    raise VideoError(f"{folder}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
  return sorted(files, key=_frame_number)


def _read_image(path: pathlib.Path) -> np.ndarray:
  image = cv2.imread(str(path), cv2.IMREAD_COLOR)
  if image is None:
    raise VideoError(f"{path}: not a readable image (corrupt or unsupported format).")
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_video_file(path: pathlib.Path, max_frames: int | None) -> tuple[np.ndarray, float]:
  capture = cv2.VideoCapture(str(path))
  try:
    if not capture.isOpened():
      raise VideoError(f"{path}: OpenCV cannot open this file as a video (corrupt or unsupported "
                       "codec); convert it to .mp4 or extract its frames into a folder.")
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or DEFAULT_FPS
    frames = []
    while max_frames is None or len(frames) < max_frames:
      ok, frame = capture.read()
      if not ok:
        break
      frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  finally:
    capture.release()
  if not frames:
    raise VideoError(f"{path}: no frame could be decoded (corrupt or empty video).")
  return np.stack(frames), fps


def read_video(path: str | pathlib.Path, *, max_frames: int | None = None,
               fps: float | None = None) -> tuple[np.ndarray, float]:
  """Reads a video file or a folder of frame images.

  Args:
    path: a video file (anything OpenCV's FFmpeg backend decodes) or a folder of images, read in
      numeric order of the last number in each name ('img2.jpg' before 'img10.jpg').
    max_frames: read at most this many frames.
    fps: frame rate to report for a folder (default 200, CASME II's); a file reports its own.

  Returns:
    (frames: uint8 [T, H, W, 3] RGB, fps).
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise VideoError(f"{path}: no such file or folder.")
  if path.is_dir():
    files = list_frame_files(path)[:max_frames]
    frames = [_read_image(f) for f in files]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
      raise VideoError(f"{path}: frames differ in size ({sorted(shapes)}); expected one size.")
    return np.stack(frames), float(fps or DEFAULT_FPS)
  try:
    with open(path, "rb"):
      pass
  except OSError as e:
    raise VideoError(f"{path}: cannot be read ({e.strerror}).") from e
  return _read_video_file(path, max_frames)


def write_video(path: str | pathlib.Path, frames: np.ndarray, fps: float) -> pathlib.Path:
  """Writes RGB uint8 `frames` [T, H, W, 3] as an MPEG-4 Part 2 ('mp4v') .mp4 file."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}.")
  height, width = frames.shape[1:3]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
  if not writer.isOpened():
    raise VideoError(f"{path}: OpenCV cannot write an 'mp4v' video here.")
  try:
    for frame in frames:
      writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  finally:
    writer.release()
  return path
