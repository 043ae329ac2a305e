"""End to end: train a tiny STSTNet on synthetic apex flow with the engine, then predict the planted
emotion of synthetic videos through face detection, spotting and WORKDIR/final."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from microexp.vision import flow
from microexp.predict import run as predict
from microexp.vision import video
from microexp.synthetic import video as synthetic_video
from microexp.train import engine

CLASSES = ("happiness", "surprise", "repression")  # class subset '3'
FRAME_SIZE = (170, 140)  # synthetic CASME II crops (H, W)


def _training_arrays(num_subjects=5, clips_per_class=4, seed=0):
  """Apex flow (farneback, magnitude, 28x28, per-clip scaled) of synthetic clips, as the CASME II
  loader returns it with the default `flow_normalization`."""
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  inputs, emotions, subjects = [], [], []
  for s in range(num_subjects):
    face = synthetic.make_face(rng, FRAME_SIZE)
    for emotion in CLASSES:
      for _ in range(clips_per_class):
        frames = synthetic.render_clip(face, emotion, 6, 3, rng.uniform(0.7, 1.3), rng)
        gray = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        gray = np.clip(gray + 0.5, 0, 255).astype(np.uint8)
        inputs.append(flow.apex_flow_image(gray[0], gray[3], method="farneback", size=28))
        emotions.append(emotion)
        subjects.append(f"sub{s + 1:02d}")
  n = len(inputs)
  return {"inputs": flow.normalize_flows(np.stack(inputs)), "emotion": np.array(emotions), "subject": np.array(subjects),
          "dataset": np.full(n, "casme2"), "clip": np.array([f"clip{i}" for i in range(n)])}


def _config():
  """The CASME II defaults (configs/common.py) with a small STSTNet, a fixed split and no
  augmentation."""
  from configs import common  # pylint: disable=g-import-not-at-top

  config = common.casme2_config(classes="3", synthetic=True)
  config.dataset.image_size = 28
  config.model.name = "ststnet"
  t = config.train
  t.protocol, t.test_subjects, t.num_val_subjects, t.select_metric = "split", ["sub05"], 0, "loss"
  t.epochs, t.batch_size, t.learning_rate, t.weight_decay = 20, 16, 3e-3, 1e-4
  t.warmup_epochs, t.label_smoothing, t.class_balanced, t.grad_clip = 0.0, 0.0, False, 0.0
  t.augment.update({"flip_h": False, "crop": 0, "rotation": 0.0, "mixup": 0.0})
  t.seeds, t.final_seeds, t.fold_parallel, t.tensorboard = [0], [0], False, False
  t.checkpoint_every_s = 1e9
  return config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ststnet_synthetic")
  engine.train_and_evaluate(_config(), _training_arrays(), workdir)
  return workdir


@pytest.mark.slow
def test_final_model_loads(workdir):
  final = predict.load_final(workdir)
  assert final.class_names == CLASSES
  assert final.preprocessing["representation"] == "apex_flow"
  results = json.loads((workdir / "results.json").read_text())
  assert results["metrics"]["accuracy"]["mean"] > 0.6  # held-out subject, 3 classes: chance 1/3


@pytest.mark.slow
@pytest.mark.parametrize("seed, emotion", [(11, "happiness"), (12, "surprise"),
                                           (13, "repression")])
def test_predicts_planted_emotion(workdir, tmp_path, seed, emotion):
  clip = synthetic_video.write_synthetic_video(tmp_path / f"{emotion}.mp4", emotion=emotion, num_frames=36,
                                     onset=8, apex=22, seed=seed)
  result = predict.run(workdir, clip.path, out=tmp_path / "out")
  assert result.face.detector == "haar"
  assert abs(result.apex - clip.apex) <= 3
  assert result.label == emotion, result.probabilities
  assert result.probabilities[emotion] > 0.5
  record = json.loads((tmp_path / "out" / "prediction.json").read_text())
  assert record["label"] == emotion and record["apex"] == result.apex
  assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
  image = matplotlib.image.imread(tmp_path / "out" / "prediction.png")
  assert image.shape[0] > 300 and image.shape[1] > 600 and image[..., :3].std() > 0.05


@pytest.mark.slow
def test_cli_with_given_onset_apex_and_frame_folder(workdir, tmp_path):
  clip = synthetic_video.write_synthetic_video(tmp_path / "v.mp4", emotion="surprise", num_frames=30,
                                     onset=5, apex=18, seed=21)
  frames, _ = video.read_video(clip.path)
  folder = tmp_path / "frames"
  folder.mkdir()
  import cv2  # pylint: disable=g-import-not-at-top
  for i, frame in enumerate(frames):
    cv2.imwrite(str(folder / f"img{i + 1}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  out = tmp_path / "cli"
  result = subprocess.run(
      [sys.executable, "-m", "microexp.predict", f"--model={workdir}", f"--input={folder}",
       "--onset=3", "--apex=18", f"--out={out}"], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  assert "Face found by the 'haar' detector" in result.stdout
  assert "apex frame 18 (given)" in result.stdout
  record = json.loads((out / "prediction.json").read_text())
  assert (record["onset"], record["apex"], record["spotted"]) == (3, 18, False)
  assert record["label"] == "surprise"


@pytest.mark.parametrize("make_input, message", [
    (lambda p: p / "missing.mp4", "no such file"),
    (lambda p: (p / "bad.mp4").write_bytes(b"\x00" * 512) and p / "bad.mp4", "cannot open|no frame"),
    (lambda p: video.write_video(p / "noface.mp4", np.random.default_rng(0).integers(
        0, 40, (6, 96, 128, 3)).astype(np.uint8), 30), "No face found"),
])
def test_cli_input_errors_are_clear(tmp_path, make_input, message):
  # Input problems are reported before the model is loaded: no trained workdir needed.
  path = make_input(tmp_path)
  result = subprocess.run(
      [sys.executable, "-m", "microexp.predict", f"--model={tmp_path}", f"--input={path}"],
      capture_output=True, text=True)
  assert result.returncode != 0
  assert "Traceback" not in result.stderr, result.stderr
  assert re.search(message, result.stderr), result.stderr
  assert f"error: {path}" in result.stderr


def test_missing_final_model(tmp_path):
  with pytest.raises(FileNotFoundError, match="model.json: missing"):
    predict.load_final(tmp_path)
