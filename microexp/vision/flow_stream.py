"""Flow features of a long recording in bounded memory, cached once per video on disk.

`stream_features` reads frames from any iterator, aligns every frame with one transform estimated
on the first frame (`microexp.vision.align`), shrinks the face to `work_width` px (gray) and
computes the flow from frame t to frame t + k for every t (as the MEAN / SoftNet spotting
baselines: k about half the mean micro-expression length in frames, `flow_step`). Only the last
k + 1 reduced faces and one chunk of features (and of its frame pairs, whose flows run on a thread
per core, `flow.map_threads`) are held: memory depends on k and `chunk`, never on the length of
the recording. Features: float32 [S, S, 3] per frame = (u, v, magnitude | strain)
of `flow.flow_image` at side S, raw (pixels of the S image).

`cache_features` writes them to `<stem>.npy` chunk by chunk under a temporary name, then renames
it, then writes `<stem>.json` (frames, k, alignment, settings) the same way: a video counts as
cached only when both exist (`is_cached`), so a killed build never leaves a cache that looks
complete, and a rerun skips what is done.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import pathlib
from typing import Any, Iterable, Iterator, Sequence

import cv2
import numpy as np

from microexp.vision import align as align_lib
from microexp.vision import face as face_lib
from microexp.vision import flow as flow_lib
from microexp.vision import video as video_lib

DEFAULT_SIZE = 28  # S: feature side
DEFAULT_WORK_WIDTH = 64  # face width (px) the flow is computed at
DEFAULT_CHUNK = 256  # feature rows per write
# Mean micro-expression duration (s) that sets k = round(fps * duration / 2): 6 at CAS(ME)^2's
# 30 fps, 40 at SAMM's 200 fps (SoftNet's k: 6 and 37, half the datasets' mean lengths).
DEFAULT_MICRO_DURATION = 0.4


def flow_step(fps: float, micro_duration: float = DEFAULT_MICRO_DURATION) -> int:
  """k: frames between the two ends of a flow, half the expected micro-expression length."""
  if fps <= 0 or micro_duration <= 0:
    raise ValueError(f"flow_step needs fps > 0 and micro_duration > 0, got {fps}, "
                     f"{micro_duration}.")
  return max(1, int(round(fps * micro_duration / 2)))


def iter_frame_files(paths: Iterable[os.PathLike | str]) -> Iterator[np.ndarray]:
  """Reads image files one at a time: uint8 [H, W, 3] RGB; an unreadable file is a VideoError
  naming it."""
  for path in paths:
    image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if image is None:
      raise video_lib.VideoError(f"{path}: not a readable image (corrupt or unsupported format).")
    yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def estimate_alignment(frame: np.ndarray, method: str = "box",
                       detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS
                       ) -> align_lib.Alignment:
  """One alignment for a recording, from its first frame (uint8 [H, W, 3] RGB); the central box
  when no face is found (`align.estimate_clip`)."""
  return align_lib.estimate_clip(np.asarray(frame)[None], method, detectors=detectors)


def reduce_frame(frame: np.ndarray, alignment: align_lib.Alignment,
                 work_size: tuple[int, int]) -> np.ndarray:
  """uint8 [H, W, 3] RGB -> the aligned gray face uint8 [h, w] at `work_size` (h, w)."""
  crop = align_lib.apply(np.asarray(frame)[None], alignment, work_size)[0]
  return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 and crop.shape[-1] == 3 else crop


def pair_feature(prev: np.ndarray, next: np.ndarray, *, size: int = DEFAULT_SIZE,
                 method: str = "farneback", third_channel: str = "magnitude") -> np.ndarray:
  """Two reduced gray faces -> float32 [size, size, 3] flow image (raw, `flow.flow_image`)."""
  return flow_lib.flow_image(flow_lib.dense_flow(prev, next, method),
                             third_channel=third_channel, size=size)


def stream_features(frames: Iterable[np.ndarray], k: int, *, size: int = DEFAULT_SIZE,
                    work_width: int = DEFAULT_WORK_WIDTH, method: str = "farneback",
                    third_channel: str = "magnitude", alignment: str = "box",
                    detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS,
                    chunk: int = DEFAULT_CHUNK,
                    on_alignment=None) -> Iterator[np.ndarray]:
  """Yields float32 [<= chunk, size, size, 3]: row t is the flow from frame t to frame t + k.

  A recording of T frames gives max(0, T - k) rows. `on_alignment(Alignment, work_size)` is called
  once, after the first frame (the cache records it)."""
  if k < 1 or chunk < 1:
    raise ValueError(f"stream_features needs k >= 1 and chunk >= 1, got k={k}, chunk={chunk}.")
  frames = iter(frames)
  first = next(frames, None)
  if first is None:
    return
  found = estimate_alignment(first, alignment, detectors)
  work_size = align_lib.work_size(found.face.box, work_width)
  if on_alignment is not None:
    on_alignment(found, work_size)
  window: collections.deque[np.ndarray] = collections.deque(maxlen=k + 1)
  pairs: list[tuple[np.ndarray, np.ndarray]] = []  # one chunk's (frame t, frame t + k)
  features = lambda pair: pair_feature(*pair, size=size, method=method,
                                       third_channel=third_channel)
  for frame in itertools.chain([first], frames):
    window.append(reduce_frame(frame, found, work_size))
    if len(window) == k + 1:
      pairs.append((window[0], window[-1]))
      if len(pairs) == chunk:
        yield np.stack(flow_lib.map_threads(features, pairs))
        pairs = []
  if pairs:
    yield np.stack(flow_lib.map_threads(features, pairs))


def _paths(stem: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  return stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".json")


def is_cached(stem, settings: dict[str, Any] | None = None) -> bool:
  """Whether `cache_features(stem, ...)` finished (with these settings, when given)."""
  features, meta = _paths(pathlib.Path(stem))
  if not (features.is_file() and meta.is_file()):
    return False
  try:
    recorded = json.loads(meta.read_text())
  except json.JSONDecodeError:
    return False
  return settings is None or recorded.get("settings") == json.loads(json.dumps(settings))


def _replace(tmp: pathlib.Path, final: pathlib.Path) -> None:
  with open(tmp, "rb+") as f:
    os.fsync(f.fileno())
  os.replace(tmp, final)


def cache_features(stem, frames: Iterable[np.ndarray], frame_numbers: Sequence[int],
                   *, fps: float, k: int, settings: dict[str, Any], size: int = DEFAULT_SIZE,
                   work_width: int = DEFAULT_WORK_WIDTH, method: str = "farneback",
                   third_channel: str = "magnitude", alignment: str = "box",
                   detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS,
                   chunk: int = DEFAULT_CHUNK) -> dict[str, Any]:
  """Streams one recording's features to `<stem>.npy` (float32 [N, size, size, 3], N = T - k) and
  writes `<stem>.json`; returns the json's dict. Skips the work when `is_cached(stem, settings)`.

  frames: the recording's frames in order, uint8 [H, W, 3] RGB, read lazily (`iter_frame_files`;
  not consumed when the cache is complete); frame_numbers: their numbers (as the label sheet counts
  them), one per frame; the json's `frames` [N] = the numbers of the first frame of each row."""
  stem = pathlib.Path(stem)
  features_path, meta_path = _paths(stem)
  if is_cached(stem, settings):
    return json.loads(meta_path.read_text())
  stem.parent.mkdir(parents=True, exist_ok=True)
  meta_path.unlink(missing_ok=True)  # whatever was there is stale now
  num_frames = len(frame_numbers)
  rows = max(0, num_frames - k)
  found: dict[str, Any] = {}

  def record(alignment_found, work_size):
    found.update(alignment=alignment_found.to_json(), work_size=list(work_size))

  tmp = features_path.with_name(features_path.name + ".tmp")
  written = 0
  with open(tmp, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
            "shape": (rows, size, size, 3)})
    for block in stream_features(frames, k, size=size,
                                 work_width=work_width, method=method,
                                 third_channel=third_channel, alignment=alignment,
                                 detectors=detectors, chunk=chunk, on_alignment=record):
      f.write(np.ascontiguousarray(block, np.float32).tobytes())
      written += len(block)
  if written != rows:
    tmp.unlink(missing_ok=True)
    raise ValueError(f"{stem}: the frames gave {written} feature rows, expected {rows} "
                     f"({num_frames} frame numbers, k={k}).")
  _replace(tmp, features_path)
  meta = dict(fps=float(fps), k=int(k), num_frames=num_frames,
              frames=[int(n) for n in frame_numbers[:rows]],
              first_frame=int(frame_numbers[0]) if len(frame_numbers) else 0,
              settings=settings, **found)
  tmp = meta_path.with_name(meta_path.name + ".tmp")
  tmp.write_text(json.dumps(meta))
  _replace(tmp, meta_path)
  return meta


def alignment_from_json(record: dict[str, Any]) -> align_lib.Alignment:
  """The `Alignment` a cache's json recorded (`Alignment.to_json`)."""
  return align_lib.Alignment(
      record["method"], float(record["angle"]), tuple(record["centre"]),
      face_lib.FaceBox(tuple(int(v) for v in record["face_box"]), record["face_detector"], 1),
      int(record["frame"]))
