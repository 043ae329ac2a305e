"""Long recordings: the MEGC spotting evaluation, the long-video label sheets, the spotter on a
synthetic long video (planted micro-expressions found, the macro movement set apart), and the
timeline predict writes for it."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest

from microexp.vision import align
from microexp.predict import run as predict
from microexp.vision import spotting
from microexp.train import spotting_metrics as spotting_eval
from microexp.predict import timeline
from microexp.vision import video
from microexp.synthetic import video as synthetic_video
from microexp.data import long_videos

CROP = (85, 70)  # small crops keep the spotting test fast (2 flows per frame)


def test_iou_and_matching():
  assert spotting_eval.iou((10, 19), (10, 19)) == 1.0
  assert spotting_eval.iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
  assert spotting_eval.iou((0, 4), (5, 9)) == 0.0
  # Each ground truth is hit once, by the best-overlapping spot.
  assert spotting_eval.match([(0, 10), (1, 11), (50, 60)], [(0, 10)]) == [(0, 0)]


def test_pooled_precision_recall_f1():
  truth = {"a": [(10, 20), (40, 50)], "b": [(5, 15)], "c": [(0, 5)]}
  spotted = {"a": [(11, 21), (70, 80)], "b": [(5, 15)], "d": [(1, 2)]}
  pooled, per_video = spotting_eval.evaluate(spotted, truth)
  # TP 2 (a's first, b's), spotted 4, truth 4.
  assert (pooled.true_positives, pooled.spotted, pooled.truth) == (2, 4, 4)
  assert pooled.precision == pooled.recall == pooled.f1 == 0.5
  assert per_video["c"].f1 == 0.0 and per_video["d"].spotted == 1
  assert spotting_eval.SpottingScore(0, 0, 3).f1 == 0.0


def _labelled(dataset, video_key, subject, events):
  return [long_videos.LabelledInterval(dataset, subject, video_key, e.onset, e.apex, e.offset,
                                       e.kind, "12", e.emotion) for e in events]


def test_casme_sq_sheet_round_trip_and_quirks(tmp_path):
  events = [synthetic_video.PlantedEvent("happiness", 30, 35, 45, "micro"),
            synthetic_video.PlantedEvent("disgust", 100, 120, 0, "macro")]  # offset 0: not coded
  rows = _labelled("casme_sq", "15_0401", "s15", events)
  path = long_videos.write_casme_sq_sheet(tmp_path / "CAS(ME)^2code_final.xlsx", rows,
                                          video_names={"0401": "anger1"})
  assert long_videos.find_sheet(tmp_path, long_videos.CASME_SQ_SHEETS) == path
  intervals, report = long_videos.read_casme_sq(path)
  assert [(i.subject, i.video, i.onset, i.apex, i.offset, i.kind) for i in intervals] == [
      ("s15", "15_0401", 30, 35, 45, "micro"), ("s15", "15_0401", 100, 120, 120, "macro")]
  assert len(report) == 1 and "row 2: offset 0" in report[0]
  assert long_videos.by_video(intervals) == {"15_0401": [(30, 45)]}
  assert long_videos.by_video(intervals, "macro") == {"15_0401": [(100, 120)]}


def test_samm_long_sheet_round_trip_and_quirks(tmp_path):
  events = [synthetic_video.PlantedEvent("surprise", 500, 540, 580, "micro"),
            synthetic_video.PlantedEvent("happiness", 900, -1, 1400, "macro")]  # apex -1: not coded
  path = long_videos.write_samm_long_sheet(tmp_path / long_videos.SAMM_LONG_SHEET,
                                           _labelled("samm_long", "006_1", "006", events))
  intervals, report = long_videos.read_samm_long(path)
  assert [(i.subject, i.video, i.apex, i.kind) for i in intervals] == [
      ("006", "006_1", 540, "micro"), ("006", "006_1", 1150, "macro")]
  assert len(report) == 1 and "apex not coded" in report[0] and "row 12" in report[0]


def test_unreadable_sheets_name_the_file(tmp_path):
  bad = tmp_path / long_videos.SAMM_LONG_SHEET
  bad.write_bytes(b"not a workbook")
  with pytest.raises(long_videos.LongVideoSheetError, match="SAMM_LongVideos_V2_Release.xlsx"):
    long_videos.read_samm_long(bad)
  with pytest.raises(FileNotFoundError, match="missing.xlsx"):
    long_videos.read_casme_sq(tmp_path / "missing.xlsx")
  # A workbook without the naming sheets is refused with what it lacks.
  import openpyxl  # pylint: disable=g-import-not-at-top
  openpyxl.Workbook().save(tmp_path / "code_final.xlsx")
  with pytest.raises(long_videos.LongVideoSheetError, match="expected 3 sheets"):
    long_videos.read_casme_sq(tmp_path / "code_final.xlsx")


@pytest.fixture(scope="module", params=[0, 1])
def long_recording(request, tmp_path_factory):
  path = tmp_path_factory.mktemp("long") / f"long{request.param}.mp4"
  planted = synthetic_video.write_synthetic_long_video(path, frame_size=(144, 192), face_size=(102, 84),
                                             seed=request.param)
  frames, fps = video.read_video(path)
  crops, _ = align.align_clip(frames, CROP)
  return planted, frames, fps, crops


@pytest.mark.slow
def test_spotter_finds_planted_micro_expressions_and_sets_the_macro_apart(long_recording,
                                                                          tmp_path):
  planted, _, fps, crops = long_recording
  assert len(planted.of_kind("micro")) == 4 and len(planted.of_kind("macro")) == 1
  spotted = spotting.spot_events(spotting.to_gray(crops, None), fps=fps)
  # Scored as MEGC does, through the SAMM long-video sheet (written, then read back).
  sheet = long_videos.write_samm_long_sheet(
      tmp_path / long_videos.SAMM_LONG_SHEET,
      _labelled("samm_long", "001_1", "001", planted.events))
  truth, _ = long_videos.read_samm_long(sheet)
  score, _ = spotting_eval.evaluate({"001_1": [(i.onset, i.offset) for i in spotted.intervals]},
                                    long_videos.by_video(truth, "micro"))
  assert score.f1 >= 0.75, (score.to_json(), spotted.intervals)
  macro = planted.of_kind("macro")[0]
  # No micro candidate inside the macro movement; the macro movement is reported as such.
  assert all(i.offset < macro.onset or i.onset > macro.offset for i in spotted.intervals)
  assert spotted.macros and all(macro.onset - 10 <= m.apex <= macro.offset + 10
                                for m in spotted.macros)
  # Without the guard the macro movement's rise and fall are taken as micro-expressions.
  unguarded = spotting.spot_events(spotting.to_gray(crops, None), fps=fps, macro_guard=False)
  assert any(macro.onset <= i.apex <= macro.offset for i in unguarded.intervals)


def _untrained_final(workdir, class_names=("happiness", "surprise", "repression")):
  """An STSTNet with random weights behind a model.json recording landmark alignment: enough to
  test predict's dispatch and outputs (the labels themselves mean nothing)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from microexp import models  # pylint: disable=g-import-not-at-top

  preprocessing = {"representation": "apex_flow", "image_size": 28, "flow_method": "farneback",
                   "third_channel": "magnitude", "flow_normalization": "per_clip",
                   "crop_size": list(CROP), "alignment": "landmarks"}
  (workdir / "final").mkdir(parents=True)
  (workdir / "final" / "model.json").write_text(json.dumps({"preprocessing": preprocessing}))
  module = models.get("ststnet", num_classes=len(class_names), dtype=jnp.float32)
  variables = jax.jit(lambda k, x: module.init(k, x, train=False))(jax.random.key(0, impl="rbg"),
                                                                    jnp.zeros((1, 28, 28, 3)))
  return predict.FinalModel(module, variables, class_names, preprocessing,
                            {"model": {"name": "ststnet"}}, workdir / "final")


@pytest.mark.slow
@pytest.mark.skipif(not align.available(), reason="dlib not installed: the model records "
                    "'landmarks' and the fallback box would be a different crop")
def test_predict_writes_a_timeline_for_a_long_recording(long_recording, tmp_path, monkeypatch,
                                                        capsys):
  planted, *_ = long_recording
  final = _untrained_final(tmp_path / "workdir")
  monkeypatch.setattr(predict, "load_final", lambda model: final)
  result = predict.run(tmp_path / "workdir", planted.path, out=tmp_path / "out")
  printed = capsys.readouterr().out
  assert isinstance(result, timeline.Timeline)
  assert "alignment 'landmarks'" in printed and "candidate micro-expression(s)" in printed
  record = json.loads((tmp_path / "out" / "timeline.json").read_text())
  assert record["alignment"]["method"] == "landmarks" and record["fps"] == planted.fps
  assert len(record["curve"]) == planted.num_frames
  assert len(record["intervals"]) == len(result.entries) >= 3
  for entry in record["intervals"]:
    assert entry["label"] in final.class_names
    assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert entry["onset_s"] == pytest.approx(entry["onset"] / planted.fps, abs=1e-3)
  micro = [(e.onset, e.offset) for e in planted.of_kind("micro")]
  hits = spotting_eval.match([(e["onset"], e["offset"]) for e in record["intervals"]], micro)
  assert len(hits) >= 3
  assert record["macro_movements"] and record["macro_movements"][0]["duration_s"] > 0.5
  image = matplotlib.image.imread(tmp_path / "out" / "timeline.png")
  assert image.shape[1] > 600 and image[..., :3].std() > 0.05
  # A short clip still gets one onset/apex prediction; --timeline=always forces the timeline.
  assert timeline.is_long(planted.num_frames, planted.fps)
  assert not timeline.is_long(48, 30.0)


def test_macro_guard_follows_the_frame_rate():
  """The same two 15-frame movements: micro-expressions at 30 fps (0.23 s at half height), macro
  movements when the recording is declared at 8 fps (0.9 s)."""
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  neutral = synthetic.make_face(rng, (80, 64))
  frames = synthetic.render_clip(neutral, "happiness", 90, 1, 0.0, rng)
  for apex in (25, 65):
    # Rises to its apex and comes back (synthetic profile ends at 0.2 of the apex motion).
    frames[apex - 7:apex + 8] = synthetic.render_clip(neutral, "surprise", 15, 7, 2.0, rng)
  gray = spotting.to_gray(frames, None)
  fast = spotting.spot_events(gray, fps=30)
  assert len(fast.intervals) == 2 and not fast.macros
  slow = spotting.spot_events(gray, fps=8)
  assert not slow.intervals and len(slow.macros) == 2
  assert all(m.offset - m.onset + 1 > 0.5 * 8 for m in slow.macros)
  # The rise, the fall and the step back of each movement merge into one macro movement each.
  assert [m.onset <= apex <= m.offset for m, apex in zip(slow.macros, (25, 65))] == [True, True]


def test_a_still_recording_has_no_candidates():
  """The noise floor: without it the relative threshold always finds a 'movement'."""
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  still = synthetic.render_clip(synthetic.make_face(rng, (80, 64)), "happiness", 90, 1, 0.0, rng)
  gray = spotting.to_gray(still, None)
  spotted = spotting.spot_events(gray, fps=30)
  assert spotted.intervals == [] and spotted.macros == []
  # The old rule (relative threshold only) takes noise peaks for candidates.
  assert spotting.spot_events(gray, fps=30, noise_factor=0.0, macro_guard=False).intervals
