"""CASME II -> arrays in memory (the "casme2" dataset of the registry).

Builds the TFDS dataset (tfds_casme2/casme2) on first use, from the user's copy or from a generated
synthetic copy, then reads it into numpy arrays following the contract in docs/ARCHITECTURE.md.

Values of `inputs` (the TFDS dataset stores raw flow, docs/tfds.md; the loader then applies
`config.dataset.flow_normalization` through `microexp.vision.flow.normalize_flow`, as predict does):
- apex_flow, flow_sequences: float32 (u, v, magnitude|strain); 'per_clip' (default): each channel
  min-max scaled per clip to -1..1; 'none': u, v and magnitude in pixels of the stored
  `image_size` image, strain dimensionless.
- sequences: float32 frames in [0, 1] (uint8 / 255), RGB or one gray channel; with
  `sequence.subtract_onset`, each frame minus the clip's onset frame (in [-1, 1]).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any, Mapping

from absl import logging
import numpy as np

from microexp.data import action_units as au_lib
from microexp.data import casme2_sheet
from microexp.loaders import check_fields
from microexp.loaders import prepare
from microexp.loaders import field as _get
from microexp.loaders import flow_settings
from microexp.loaders import read_examples as _read_examples
from microexp.loaders import register
from microexp.loaders import required_manual_dir
from microexp.loaders import resolve_data_dir

SEQUENCE_MODES = ("pad", "apex_window", "ragged")
# config.dataset fields this module's loader reads (any other set field is refused).
FIELDS = {"casme2": ("representation", "synthetic", "synthetic_kwargs", "manual_dir", "data_dir",
                     "image_size", "flow_method", "flow_kwargs", "third_channel",
                     "flow_normalization", "sequence", "workers", "au_sides")}
PADDINGS = ("post", "pre", "last_frame")


def synthetic_root(data_dir, synthetic_kwargs: Mapping[str, Any] | None) -> pathlib.Path:
  """`data_dir/manual/synthetic_casme2-<hash of the kwargs>`: one tree per generator setting."""
  kwargs = dict(synthetic_kwargs or {})
  digest = hashlib.sha1(json.dumps(kwargs, sort_keys=True, default=str).encode()).hexdigest()[:8]
  return pathlib.Path(data_dir) / "manual" / f"synthetic_casme2-{digest}"


def build_casme2(manual_dir, data_dir, config="apex_flow", *, workers: int | None = None,
                 file_format: str | None = None):
  """Builds (once) and returns the CASME II TFDS builder: the Python equivalent of `tfds build`.

  Args:
    manual_dir: the CASME II copy (coding sheet + Cropped/), see docs/tfds.md.
    data_dir: TFDS data_dir; the dataset goes to data_dir/casme2/<config name>/<version>/.
    config: a config name ('apex_flow', 'apex_flow_tvl1_strain_28', ...) or a `Casme2Config`
      (`tfds_casme2.casme2.casme2_dataset_builder.make_config(...)`).
    workers: processes for flow/decoding (None: all cores for >= 32 clips).
    file_format: 'array_record' (default) or 'tfrecord' (for tf.data / tfds.load).

  Returns:
    The prepared `Builder`.
  """
  from tfds_casme2.casme2 import casme2_dataset_builder as cb  # pylint: disable=g-import-not-at-top

  kwargs = {} if file_format is None else dict(file_format=file_format)
  builder = cb.Builder(config=config, data_dir=os.fspath(data_dir), workers=workers, **kwargs)
  if not builder.data_path.exists() and pathlib.Path(manual_dir).expanduser().is_dir():
    casme2_sheet.find_coding_sheet(pathlib.Path(manual_dir).expanduser())  # clear error: no sheet
  return prepare(builder, manual_dir, "CASME II", **kwargs)


def read_examples(builder) -> list[dict[str, Any]]:
  """All 'train' examples as numpy dicts, sorted by (subject, filename)."""
  examples = _read_examples(builder, ("subject", "filename", "action_units"))
  return sorted(examples, key=lambda ex: (ex["subject"], ex["filename"]))


def window(num_frames: int, apex_index: int, length: int) -> tuple[int, int]:
  """[start, stop) of `length` frames centred on the apex, inside 0..num_frames (shorter if the
  clip is shorter)."""
  if num_frames <= length:
    return 0, num_frames
  start = min(max(apex_index - length // 2, 0), num_frames - length)
  return start, start + length


def pad_sequences(sequences, apex_indices, *, mode: str = "pad", length: int | None = None,
                  padding: str = "post") -> tuple[np.ndarray, np.ndarray]:
  """Variable-length clips -> one padded array and its mask.

  Args:
    sequences: list of [T_i, H, W, C] arrays.
    apex_indices: apex position in each clip.
    mode: 'pad' (to `length`, or the longest clip found if 0/None; longer clips are cut to `length`
      frames centred on the apex), 'apex_window' (`length` frames centred on the apex, required),
      'ragged' (to the longest clip; `length` ignored).
    length: T.
    padding: 'post' (zeros after the real frames), 'pre' (zeros before them, as Keras'
      `pad_sequences` does by default: an LSTM then reads the real frames last) or 'last_frame'
      (after the real frames, copies of the clip's last frame: the thesis's M1).

  Returns:
    (x [N, T, H, W, C] padded, mask [N, T] bool, True = real frame).
  """
  if mode not in SEQUENCE_MODES:
    raise ValueError(f"Unknown sequence mode {mode!r}; choose one of {SEQUENCE_MODES}.")
  if padding not in PADDINGS:
    raise ValueError(f"Unknown sequence padding {padding!r}; choose one of {PADDINGS}.")
  if mode == "apex_window" and not length:
    raise ValueError("sequence.mode='apex_window' needs sequence.length (e.g. 6).")
  longest = max(len(s) for s in sequences)
  t = longest if mode == "ragged" or not length else int(length)
  x = np.zeros((len(sequences), t) + sequences[0].shape[1:], sequences[0].dtype)
  mask = np.zeros((len(sequences), t), bool)
  for i, (seq, apex) in enumerate(zip(sequences, apex_indices)):
    start, stop = window(len(seq), int(apex), t)
    at = slice(t - (stop - start), t) if padding == "pre" else slice(0, stop - start)
    x[i, at] = seq[start:stop]
    mask[i, at] = True
    if padding == "last_frame":
      x[i, stop - start:] = seq[stop - 1]
  return x, mask


@register("casme2")
def load_casme2(dataset_config) -> dict[str, np.ndarray]:
  """`config.dataset` -> {'inputs', 'mask'?, 'emotion', 'subject', 'dataset', 'clip', 'au',
  'au_names'} (AUs: `au_lib.au_arrays`, L/R kept apart with `au_sides`).

  Fields read: representation, synthetic, synthetic_kwargs, manual_dir, data_dir, image_size,
  flow_method, flow_kwargs, third_channel, flow_normalization, sequence (mode, length, grayscale,
  subtract_onset, mask_padding: False = every padded frame counts as real, mask all True,
  padding: 'post' | 'pre' | 'last_frame'),
  workers.
  """
  from microexp.vision import flow as flow_lib  # pylint: disable=g-import-not-at-top
  from tfds_casme2.casme2 import casme2_dataset_builder as cb  # pylint: disable=g-import-not-at-top

  check_fields(dataset_config, "casme2", FIELDS["casme2"])
  normalization = flow_lib.flow_normalization(dataset_config)

  data_dir = resolve_data_dir(dataset_config)
  representation = _get(dataset_config, "representation", "apex_flow")
  sequence = _get(dataset_config, "sequence", {})
  if _get(dataset_config, "synthetic", False):
    from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
    kwargs = dict(_get(dataset_config, "synthetic_kwargs", {}))
    manual_dir = synthetic_root(data_dir, kwargs)
    if not (manual_dir / synthetic.COMPLETE_MARKER).is_file():
      logging.info("Writing the synthetic CASME II to %s ...", manual_dir)
    synthetic.write_synthetic_casme2(manual_dir, **kwargs)
    # Separate TFDS data_dir: a synthetic build must never be taken for the real one.
    tfds_dir = data_dir / "synthetic" / manual_dir.name.split("-")[-1]
  else:
    manual_dir = required_manual_dir(
        dataset_config, "CASME II copy (coding sheet + Cropped/, see docs/tfds.md)")
    tfds_dir = data_dir

  config = cb.make_config(
      representation, **flow_settings(dataset_config),
      grayscale=_get(sequence, "grayscale") if representation == "sequences" else None)
  builder = build_casme2(manual_dir, tfds_dir, config,
                         workers=_get(dataset_config, "workers"))
  examples = read_examples(builder)
  out = dict(
      emotion=np.array([builder.info.features["emotion"].int2str(int(e["emotion"]))
                        for e in examples]),
      subject=np.array([e["subject"] for e in examples]),
      dataset=np.array(["casme2"] * len(examples)),
      clip=np.array([f"{e['subject']}/{e['filename']}" for e in examples]),
      **au_lib.au_arrays([e["action_units"].split("+") if e["action_units"] else ()
                                for e in examples],
                               sides=bool(_get(dataset_config, "au_sides", False))),
  )
  if representation == "apex_flow":
    out["inputs"] = flow_lib.normalize_flows(np.stack([e["flow"] for e in examples]),
                                             normalization)
  else:
    if representation == "sequences":
      clips = [np.stack(e["frames"]).astype(np.float32) / 255.0 for e in examples]
      if _get(sequence, "subtract_onset", False):
        # Onset-relative frames (the clip's first frame, before any windowing): removes the face's
        # identity and keeps what moved; padding frames stay zero.
        clips = [c - c[:1] for c in clips]
    else:
      # Whole clip, before padding/windowing (padding frames stay zero, never scaled).
      clips = [flow_lib.normalize_flow(e["flow"], normalization) for e in examples]
    mode = _get(sequence, "mode", "pad")
    out["inputs"], out["mask"] = pad_sequences(
        clips, [e["apex_index"] for e in examples], mode=mode, length=_get(sequence, "length"),
        padding=_get(sequence, "padding", "post"))
    if mode == "pad" and not _get(sequence, "length"):
      print(f"CASME II: clips padded to the longest clip found, {out['inputs'].shape[1]} frames "
            f"({_get(sequence, 'padding', 'post')} padding).", flush=True)
    if not _get(sequence, "mask_padding", True):
      # M1: the padding frames are fed to the model as frames (no mask), as in the thesis.
      out["mask"] = np.ones_like(out["mask"])
    cut = sum(len(c) > out["inputs"].shape[1] for c in clips)
    if cut:
      logging.info("CASME II: %d clip(s) longer than %d frames cut to a window centred on the "
                   "apex.", cut, out["inputs"].shape[1])
  logging.info("CASME II %s: %d clips loaded, inputs %s %s%s", config.name, len(examples),
               out["inputs"].shape, out["inputs"].dtype,
               f", mask {out['mask'].shape} ({out['mask'].mean():.0%} real frames)"
               if "mask" in out else "")
  return out
