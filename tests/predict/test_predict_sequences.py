"""Prediction for sequence models: the input predict builds from a clip's frames is the input the
loader trained on (frames and flow sequences), and predict_frames runs a CNN-LSTM end to end."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from microexp.vision import face as face_lib
from microexp import models
from microexp.predict import run as predict
from microexp.predict import sequences as predict_sequences
from microexp.data import casme2
from microexp.loaders import casme2 as loading
from microexp.train import workdir

SIZE = 16


def _dataset(root, data_dir, representation, **sequence):
  return ml_collections.ConfigDict(dict(
      name="casme2", representation=representation, classes="7", synthetic=False,
      manual_dir=str(root), data_dir=str(data_dir), image_size=SIZE, flow_method="farneback",
      third_channel="magnitude", flow_normalization="per_clip", workers=1,
      sequence=dict(dict(mode="pad", length=0, grayscale=True, subtract_onset=False,
                         mask_padding=True, padding="post"), **sequence)))


def _clips(root):
  clips, _ = casme2.list_clips(root)
  return sorted(clips, key=lambda c: (c.record.subject, c.record.filename))


@pytest.mark.parametrize("representation,sequence,atol", [
    ("sequences", dict(mode="apex_window", length=6, subtract_onset=True), 2.5 / 255),
    ("sequences", dict(grayscale=False, padding="last_frame", mask_padding=False), 1e-6),
    # Flow from RGB->gray frames vs the builder's gray-decoded JPEGs: ~1e-3 apart.
    ("flow_sequences", dict(padding="pre"), 1e-2),
])
def test_predict_input_is_the_training_input(synthetic_casme2_root, tmp_path_factory,
                                             representation, sequence, atol):
  ds = _dataset(synthetic_casme2_root, tmp_path_factory.mktemp("seq"), representation, **sequence)
  arrays = loading.load_casme2(ds)
  spec = workdir.preprocessing_spec(ds, arrays["inputs"].shape)
  for i, clip in list(enumerate(_clips(synthetic_casme2_root)))[:4]:
    assert arrays["clip"][i] == f"{clip.record.subject}/{clip.record.filename}"
    # The video: a neutral lead-in (the onset frame repeated), then the clip from its onset.
    frames = casme2.read_frames(clip.frame_paths[clip.onset_index:clip.offset_index + 1])
    lead = 3
    video = np.concatenate([np.repeat(frames[:1], lead, 0), frames])
    gray = np.stack([casme2_gray(f) for f in video])
    x, mask = predict_sequences.sequence_input(
        video, gray, lead, lead + clip.apex_index - clip.onset_index, spec)
    assert x.shape == (1,) + arrays["inputs"].shape[1:]
    np.testing.assert_array_equal(mask[0], arrays["mask"][i])
    real = mask[0] if sequence.get("mask_padding", True) else slice(None)
    np.testing.assert_allclose(x[0][real], arrays["inputs"][i][real], atol=atol)


def casme2_gray(frame):
  import cv2  # pylint: disable=g-import-not-at-top

  return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def test_sequence_input_needs_the_trained_shape():
  with pytest.raises(ValueError, match="input_shape"):
    predict_sequences.sequence_input(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8)), 0, 2,
                                     {"representation": "sequences", "image_size": 8,
                                      "input_shape": [10, 8, 8, 3]})


@pytest.mark.slow
def test_predict_frames_runs_a_cnn_lstm(tmp_path):
  """A (random) CNN-LSTM in a FinalModel: spotting -> frame sequence -> probabilities."""
  classes = ("happiness", "surprise", "repression")
  kwargs = dict(frame_features=(4,), lstm_features=(4,), dense_features=(4,))
  module = models.get("cnn_lstm", num_classes=3, **kwargs)
  shape = (1, 5, SIZE, SIZE, 3)
  variables = jax.jit(lambda k, x, m: module.init(k, x, train=False, mask=m))(
      jax.random.key(0, impl="rbg"), jnp.zeros(shape), jnp.ones(shape[:2], bool))
  preprocessing = {"representation": "sequences", "image_size": SIZE, "input_shape": list(shape),
                   "crop_size": [40, 32], "flow_method": "farneback",
                   "sequence": {"mode": "apex_window", "length": 5, "grayscale": False}}
  final = predict.FinalModel(module, variables, classes, preprocessing,
                             {"model": {"name": "cnn_lstm"}}, tmp_path)
  frames = np.random.default_rng(0).integers(0, 255, (12, 60, 50, 3), dtype=np.uint8)
  box = face_lib.FaceBox((5, 5, 40, 50), "given", 1)
  p = predict.predict_frames(final, frames, onset=2, apex=6, face=box)
  assert (p.onset, p.apex) == (2, 6)
  assert abs(sum(p.probabilities.values()) - 1) < 1e-5 and p.label in classes
