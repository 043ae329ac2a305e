"""The thesis's table and figures in the report: Table 1, Figs 1/8/9, the Keras-named curves, and a
report that still writes when the dataset is not on the machine."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from microexp.report import figures as report_figures


def test_class_count_table_counts_the_subset():
  emotion = ["happiness", "happiness", "surprise", "others", "repression", "fear"]
  subject = ["sub01", "sub02", "sub01", "sub01", "sub03", "sub02"]
  table = report_figures.class_count_table(emotion, subject, "3")
  assert "| happiness | 2 | 2 |" in table
  assert "| surprise | 1 | 1 |" in table
  assert "| repression | 1 | 1 |" in table
  assert "| **total** | **4** | **3** |" in table
  assert "2 clips (fear, others)" in table


def test_figures_are_written(tmp_path):
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 255, (14, 16, 16, 3), dtype=np.uint8)
  flow = rng.normal(size=(14, 16, 16, 3)).astype(np.float32)
  paths = [report_figures.plot_frame_strip(frames, tmp_path / "f1.png", "clip", {0: "onset"}),
           report_figures.plot_frame_strip(frames[..., :1], tmp_path / "gray.png"),
           report_figures.plot_flow_sequence(flow, tmp_path / "f8.png"),
           report_figures.plot_flow_channels(flow[3], tmp_path / "f9.png"),
           report_figures.plot_curves(
               {"seed0/sub01": {"train/epoch_loss": [2.0, 1.0], "test/epoch_loss": [2.1, 1.5],
                                "train/epoch_categorical_accuracy": [0.3, 0.6]}},
               tmp_path / "curves.png", report_figures.KERAS_CURVES, raw_titles=True)]
  for path in paths:
    assert path.stat().st_size > 1000


def test_curves_skip_unevaluated_epochs_and_empty_panels(tmp_path):
  """Test monitoring every `eval_every` epochs leaves NaN between evaluations: the mean is over
  the evaluated epochs (not NaN), and a panel with nothing to plot draws no (empty) legend."""
  nan = float("nan")
  history = {"seed0/s01": {"train/epoch_loss": [2.0, 1.0, 0.5], "test/epoch_loss": [nan, nan, 1.0],
                           "test/epoch_uf1": [nan, nan, nan]},
             "seed0/s02": {"train/epoch_loss": [3.0, 2.0, 1.5], "test/epoch_loss": [nan, nan, 2.0],
                           "test/epoch_uf1": [nan, nan, nan], "test/epoch_uar": []}}
  c = report_figures.curve(history, "test/epoch_loss")
  assert c.epochs.tolist() == [3] and c.mean.tolist() == [1.5] and c.runs == 2
  assert (c.low.tolist(), c.high.tolist()) == ([1.0], [2.0])
  assert report_figures.curve(history, "train/epoch_loss").mean.tolist() == [2.5, 1.5, 1.0]
  assert report_figures.curve(history, "test/epoch_uf1") is None
  assert report_figures.curve(history, "val/epoch_loss") is None
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # numpy's 'Mean of empty slice', matplotlib's empty legend
    for names in (None, report_figures.KERAS_CURVES):  # history.png, keras_curves.png
      path = report_figures.plot_curves(history, tmp_path / "curves.png", names)
      assert path.stat().st_size > 1000


def test_sections_say_why_figures_are_missing(tmp_path):
  config = {"dataset": {"name": "casme2", "synthetic": False, "manual_dir": str(tmp_path / "gone"),
                        "classes": "5"}}
  history = {"seed0/sub01": {"train/epoch_loss": [1.0, 0.5]}}
  sections = "\n".join(report_figures.thesis_sections(config, history, tmp_path))
  assert "epoch_loss" in sections and (tmp_path / "keras_curves.png").is_file()
  assert "Left out: the dataset could not be read here" in sections and "gone" in sections


@pytest.mark.slow
def test_samples_come_from_the_workdirs_synthetic_dataset(tmp_path):
  dataset = {"name": "casme2", "synthetic": True, "data_dir": str(tmp_path), "classes": "3",
             "flow_method": "farneback", "third_channel": "magnitude",
             "synthetic_kwargs": {"num_subjects": 3, "clips_per_subject": 3,
                                  "image_size": [48, 40], "num_frames": [6, 8], "seed": 0}}
  samples = report_figures.dataset_samples(dataset)
  assert len(samples["emotion"]) == 9 and samples["emotion_of_clip"] in (
      "happiness", "surprise", "repression")
  t = len(samples["frames"])
  assert samples["frames"].shape == (t, 64, 64, 3) and samples["frames"].dtype == np.uint8
  assert samples["flow_sequence"].shape == (t, 64, 64, 3)
  assert samples["apex_flow"].shape == (224, 224, 3)
  assert 0 <= samples["onset_index"] < samples["apex_index"] < t
  sections = "\n".join(report_figures.thesis_sections({"dataset": dataset}, {}, tmp_path))
  assert "Table 1" in sections
  for name in ("clip_frames.png", "clip_flow_sequence.png", "apex_flow_channels.png"):
    assert (tmp_path / name).is_file()
