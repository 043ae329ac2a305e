"""What the two builder families share: the CASME II builder (casme2/) and the apex-flow builders
of CAS(ME)^3, DFME, SAMM and SMIC-HS (apex_flow_base.py).

Both build from the user's licensed copy (manual_dir) into array_record files, in worker
processes from `MIN_CLIPS_FOR_WORKERS` clips on, name the expected layout when manual_dir lacks
a file, and store the same frame-number features, onset->apex flow and PNG images.
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
import tensorflow_datasets as tfds


class ManualBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A builder of a licensed dataset (manual download), built in worker processes."""

  MIN_CLIPS_FOR_WORKERS = 32

  def __init__(self, *, workers: int | None = None, **kwargs):
    """workers: processes for decoding and flow; 1 runs inline. None: os.cpu_count(), but inline
    below `MIN_CLIPS_FOR_WORKERS` clips (starting processes costs ~1 s)."""
    explicit_format = kwargs.get("file_format") is not None
    super().__init__(**kwargs)
    self._workers = workers
    # array_record unless asked otherwise: random access without TensorFlow (tfds.data_source).
    if not explicit_format and not self.info.splits:
      self.info.set_file_format("array_record", override=True)

  def num_workers(self, num_clips: int) -> int:
    """The worker processes for `num_clips` clips (the constructor's `workers`)."""
    workers = self._workers
    if workers is None:
      workers = (os.cpu_count() or 1) if num_clips >= self.MIN_CLIPS_FOR_WORKERS else 1
    return max(1, min(workers, num_clips))

  def layout_error(self, error: FileNotFoundError) -> FileNotFoundError:
    """`error` (a file of manual_dir missing) with the expected layout appended."""
    return FileNotFoundError(f"{error}\nExpected layout:\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")


def frame_features() -> dict[str, Any]:
  """The clip's frame numbers (onset, apex, offset as used) and its length on disk."""
  return dict(
      onset_frame=tfds.features.Scalar(np.int32, doc="Frame number of the onset used."),
      apex_frame=tfds.features.Scalar(np.int32, doc="Frame number of the apex used."),
      offset_frame=tfds.features.Scalar(np.int32, doc="Frame number of the offset used."),
      num_frames=tfds.features.Scalar(np.int32, doc="Frames onset..offset present on disk."))


def apex_flow_feature(cfg) -> tfds.features.Tensor:
  """The onset->apex flow [S, S, 3] of a config with image_size, flow_method, third_channel."""
  s = cfg.image_size
  return tfds.features.Tensor(
      shape=(s, s, 3), dtype=np.float32,
      doc=f"Onset->apex {cfg.flow_method} flow: u, v (px of this {s}x{s} image), "
      f"{cfg.third_channel}.")


def png(image: np.ndarray) -> bytes:
  """uint8 [H, W, C] RGB or gray -> PNG bytes (OpenCV: fast, and needs no TensorFlow)."""
  if image.shape[-1] == 3:
    image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
  ok, data = cv2.imencode(".png", image)
  if not ok:
    raise RuntimeError(f"PNG encoding failed for an image of shape {image.shape}.")
  return data.tobytes()
