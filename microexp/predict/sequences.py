"""Inputs of sequence models (CNN-LSTM, ConvLSTM) for prediction: the representation they were
trained on, around the spotted apex.

The clip starts at the onset (frame 0 of the clip, as CASME II's onset..offset clips do), is
cut to the trained length T around the apex (`loading.pad_sequences`, the loader's own windowing),
and is made exactly as the TFDS builder and the loader made the training clips:
- 'sequences': every frame resized to S x S (area interpolation), RGB or gray
  (`sequence.grayscale`), in [0, 1], minus the onset frame with `sequence.subtract_onset`;
- 'flow_sequences': the flow of the onset frame to every frame (`flow.clip_flow_images`, the
  recorded flow method / parameters / third channel), scaled by `flow_normalization` over the
  frames used (training scaled over the whole onset..offset clip; the video has no offset);
then padded as in training (`sequence.padding`; `sequence.mask_padding=False` marks the padding
real, M1). T comes from the trained input shape (model.json's `preprocessing.input_shape`), so a
model trained on clips padded to the longest clip found gets that many frames.
"""

from __future__ import annotations

import numpy as np

from microexp.vision import flow as flow_lib

SEQUENCE_REPRESENTATIONS = ("sequences", "flow_sequences")


def trained_length(preprocessing: dict) -> int:
  """T of the training inputs [N, T, S, S, C] recorded in model.json."""
  shape = preprocessing.get("input_shape") or []
  if len(shape) != 5:
    raise ValueError(f"model.json records input_shape {shape}; a sequence model needs "
                     "[N, T, S, S, C] (retrain with this version to record it).")
  return int(shape[1])


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top

  return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def _to_gray(frames: np.ndarray) -> np.ndarray:
  """uint8 RGB [T, H, W, 3] -> uint8 [T, H, W] (OpenCV's luminance, as its gray decoding)."""
  import cv2  # pylint: disable=g-import-not-at-top

  return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def sequence_input(crops: np.ndarray, gray: np.ndarray, onset: int, apex: int,
                   preprocessing: dict) -> tuple[np.ndarray, np.ndarray]:
  """The model's input around the apex: (x [1, T, S, S, C] float32, mask [1, T] bool).

  crops: uint8 RGB face crops [N, H, W, 3] of the whole video; gray: their gray [N, H, W] (flow);
  onset < apex: frame indices in the video.
  """
  from microexp.loaders import casme2 as loading  # pylint: disable=g-import-not-at-top

  representation = preprocessing.get("representation")
  if representation not in SEQUENCE_REPRESENTATIONS:
    raise ValueError(f"sequence_input makes {SEQUENCE_REPRESENTATIONS}; got {representation!r}.")
  sequence = dict(preprocessing.get("sequence") or {})
  length, size = trained_length(preprocessing), int(preprocessing["image_size"])
  # Frames the window can reach: from the onset to `length` frames around the apex.
  start, stop = loading.window(len(crops) - onset, apex - onset, length)
  clip = slice(onset, onset + stop)
  if representation == "sequences":
    frames = np.asarray(crops[clip])
    # Gray first, then resize: the builder decodes gray frames and resizes them.
    frames = _resize(_to_gray(frames), size)[..., None] if sequence.get("grayscale") else (
        _resize(frames, size))
    x = frames.astype(np.float32) / 255.0
    if sequence.get("subtract_onset"):
      x = x - x[:1]
  else:
    x = flow_lib.clip_flow_images(
        np.asarray(gray[clip]), method=preprocessing.get("flow_method") or "farneback",
        third_channel=preprocessing.get("third_channel") or "magnitude", size=size,
        reference="first", **dict(preprocessing.get("flow_kwargs") or {}))
    x = flow_lib.normalize_flow(x, preprocessing.get("flow_normalization") or "none")
  mode = "apex_window" if sequence.get("mode") == "apex_window" else "pad"
  x, mask = loading.pad_sequences([x[start:]], [apex - onset - start], mode=mode, length=length,
                                  padding=sequence.get("padding") or "post")
  if not sequence.get("mask_padding", True):
    mask = np.ones_like(mask)
  return x.astype(np.float32), mask
