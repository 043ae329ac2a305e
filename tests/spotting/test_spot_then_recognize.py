"""Learning on the synthetic long videos (microexp/synthetic/long_videos.py, loaded by the
casme2_lv loader): the STR protocol of configs/str_megc.py:synthetic, trained once (module
fixture) on a few subjects for a few epochs, then

- the learned spotter's micro-expression F1 on held-out subjects (LOSO) beats the heuristic
  contrast spotter's on the same videos;
- STRS is well above a random spotter's (random intervals of micro-expression length, as many as
  the learned spotter spotted, recognised by the same fold recognisers);
- `python -m microexp.predict` on one of the long recordings uses the trained spotter and names
  every interval it spots.
"""

from __future__ import annotations

import importlib
import json

import cv2
import numpy as np
import pytest

from microexp import loaders
from microexp.loaders import long_videos
from microexp.predict import learned_spotting
from microexp.predict import run as predict_run
from microexp.predict import timeline as timeline_lib
from microexp.train import spotting_metrics
from microexp.train import str_protocol

pytestmark = pytest.mark.slow


def _config(data_dir):
  config = importlib.import_module("configs.str_megc").get_config("synthetic")
  config.dataset.data_dir = str(data_dir)
  config.dataset.synthetic_kwargs.update({"num_subjects": 4, "videos_per_subject": 2,
                                          "duration": 20.0})
  config.train.fold_parallel = False  # CPU: sequential (docs/training.md)
  return config


@pytest.fixture(scope="module")
def str_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("str")
  config = _config(root / "data")
  videos = loaders.load(config.dataset)["videos"]
  results = str_protocol.spot_then_recognize(config, videos, root / "work",
                                             long_videos.interval_flow)
  return config, videos, results, root / "work"


def test_learned_spotter_beats_the_heuristic_on_held_out_subjects(str_run):
  _, _, results, _ = str_run
  learned = results["metrics"]["micro"]["f1"]["mean"]
  heuristic = results["heuristic"]["micro"]["f1"]
  assert learned > heuristic + 0.1, (learned, heuristic)
  assert results["metrics"]["micro"]["recall"]["mean"] > 0.3


def _random_strs_bound(videos, results, seed=0):
  """A random spotter's overall F1: per video and kind, as many random intervals as the learned
  spotter spotted there, each as long as a random coded interval of that kind."""
  rng = np.random.default_rng(seed)
  counts = {r["video"]: {k: len(v) for k, v in r["spotted"].items()}
            for r in results["videos"] if r["seed"] == 0}
  scores = []
  for kind in ("micro", "macro"):
    lengths = [off - on for v in videos for (on, _, off), kd in zip(v["intervals"], v["kinds"])
               if kd == kind]
    spotted, truth = {}, {}
    for v in videos:
      key = f"{v['subject']}/{v['video']}"
      n = counts.get(key, {}).get(kind, 0)
      onsets = rng.integers(1, v["num_frames"] - max(lengths), n)
      spotted[key] = [(int(o), int(o) + int(rng.choice(lengths))) for o in onsets]
      truth[key] = [(on, off) for (on, _, off), kd in zip(v["intervals"], v["kinds"])
                    if kd == kind]
    scores.append(spotting_metrics.evaluate(spotted, truth)[0])
  pooled = spotting_metrics.SpottingScore(*(sum(getattr(s, f) for s in scores)
                                            for f in ("true_positives", "spotted", "truth")))
  return pooled.f1


def test_strs_well_above_a_random_spotter(str_run):
  _, videos, results, workdir = str_run
  random_f1 = _random_strs_bound(videos, results)
  rec_f1 = results["metrics"]["recognition"]["uf1"]["mean"]
  strs = results["metrics"]["strs"]["mean"]
  # The random spotter's STRS at best: its F1 times a perfect recogniser's.
  assert strs > 3 * random_f1 + 0.1, (strs, random_f1, rec_f1)
  assert rec_f1 > 0.45  # 3 classes: chance ~0.33
  assert 0 < results["metrics"]["strs_reference"]["mean"] <= 1
  summary = (workdir / "summary.md").read_text()
  assert "STRS" in summary and "heuristic" in summary


def test_protocol_timelines_draw_every_test_video(str_run):
  _, videos, _, workdir = str_run
  paths = timeline_lib.protocol_timelines(workdir)
  assert len(paths) == len(videos) and all(p.stat().st_size > 1000 for p in paths)


def test_predict_uses_the_trained_spotter_and_names_every_interval(str_run, tmp_path):
  _, videos, _, workdir = str_run
  assert learned_spotting.has_spotter(workdir)
  video = videos[0]
  first = cv2.imread(video["frame_files"][0])
  path = str(tmp_path / "long.mp4")  # the recording's first 15 s as a 30 fps video file
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), video["fps"],
                           (first.shape[1], first.shape[0]))
  for frame in video["frame_files"][:450]:
    writer.write(cv2.imread(frame))
  writer.release()
  result = predict_run.run(workdir, path, out=tmp_path / "out")
  record = json.loads((tmp_path / "out" / "timeline.json").read_text())
  assert result.curve_name.startswith("spotter")
  assert record["intervals"] and all(i["label"] in ("negative", "positive", "surprise")
                                     for i in record["intervals"])
  coded = [(on - 1, off - 1) for (on, _, off), kd in zip(video["intervals"], video["kinds"])
           if kd == "micro" and off <= 450]
  spotted = [(i["onset"], i["offset"]) for i in record["intervals"] if i["kind"] == "micro"]
  assert spotting_metrics.match(spotted, coded), (spotted, coded)
