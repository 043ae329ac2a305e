"""Synthetic long videos in the official layouts and the `casme2_lv` / `samm_lv` loaders' contract
(docs/ARCHITECTURE.md, "Long videos")."""

import dataclasses
import shutil

import ml_collections
import numpy as np
import pytest

from microexp import loaders
from microexp.data import long_videos as sheets
from microexp.data.emotions import MEGC_CLASSES
from microexp.loaders import long_videos
from microexp.synthetic import long_videos as synthetic

CASME_KW = dict(num_subjects=2, videos_per_subject=2, duration=6.0)
SAMM_KW = dict(num_subjects=2, videos_per_subject=1, duration=2.0)


def _config(name, data_dir, kwargs, **extra):
  return ml_collections.ConfigDict(dict(name=name, synthetic=True, synthetic_kwargs=kwargs,
                                        data_dir=str(data_dir), **extra))


@pytest.fixture(scope="module")
def casme(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("lv")
  return data_dir, loaders.load(_config("casme2_lv", data_dir, CASME_KW))


def test_plan_is_deterministic_and_holds_every_kind():
  plans = [synthetic.plan_video(np.random.default_rng(3), subject="s", video="v", fps=30.0,
                                duration=60.0) for _ in range(2)]
  assert plans[0] == plans[1]
  kinds = {m.kind for m in plans[0].movements}
  assert kinds == set(synthetic.CODED_KINDS + synthetic.DISTRACTOR_KINDS)
  for a, b in zip(plans[0].movements, plans[0].movements[1:]):
    assert b.onset - a.offset >= synthetic.MIN_GAP_S * 30  # rest between movements
  for m in plans[0].movements:
    seconds = (m.offset - m.onset + 1) / 30
    assert (m.kind == "micro") <= (seconds <= 0.5) and (m.kind == "macro") <= (seconds > 0.5)
    assert (m.emotion in MEGC_CLASSES) == (m.kind in synthetic.CODED_KINDS)
  frames = list(synthetic.render_frames(plans[0], stop=40))
  np.testing.assert_array_equal(np.stack(list(synthetic.render_frames(plans[0], start=25,
                                                                      stop=40))),
                                np.stack(frames[25:]))


def test_casme2_layout_and_sheet(casme):
  data_dir, _ = casme
  root = next((data_dir / "manual").iterdir())
  plans = synthetic.load_plans(root)
  assert len(plans) == 4
  intervals, report = sheets.read_casme_sq(root / "CAS(ME)^2code_final.xlsx")
  assert {i.video for i in intervals} <= {p.video for p in plans}
  for plan in plans:
    number, code = plan.video.split("_")
    folder = root / "rawpic" / f"s{number}" / f"{plan.video}clip{code}"
    assert (folder / "img1.jpg").is_file() and (folder / f"img{plan.num_frames}.jpg").is_file()
    coded = [i for i in intervals if i.video == plan.video]
    assert [(i.onset, i.apex, i.kind, i.emotion) for i in coded] == [
        (m.onset + 1, m.apex + 1, m.kind, m.emotion) for m in plan.coded()]
  # The offset-0 quirk: reported, and the apex stands in for the offset.
  quirked = [line for line in report if "offset 0" in line]
  assert len(quirked) == sum(any(m.kind == "macro" for m in p.coded()) for p in plans[1::2])


def test_contract(casme):
  _, data = casme
  assert data["dataset"] == "casme2_lv" and len(data["videos"]) == 4
  for v in data["videos"]:
    assert v["fps"] == 30.0 and v["k"] == 6 and v["num_frames"] == 180
    assert v["features"].dtype == np.float32 and v["features"].shape == (174, 28, 28, 3)
    np.testing.assert_array_equal(v["frames"], np.arange(1, 175))
    assert len(v["intervals"]) == len(v["kinds"]) == len(v["emotions"])
    for (onset, apex, offset), kind, emotion in zip(v["intervals"], v["kinds"], v["emotions"]):
      assert 1 <= onset <= apex <= offset <= v["num_frames"]
      assert kind in ("micro", "macro") and emotion in MEGC_CLASSES + ("",)
  assert [v["subject"] for v in data["videos"]] == ["s15", "s15", "s16", "s16"]


def test_features_see_the_planted_movements(casme):
  # Mean |flow| (3rd channel) over the rows inside coded micro-expressions is well above the rows
  # at rest (no movement of any kind within k frames).
  data_dir, data = casme
  plans = {p.video: p for p in synthetic.load_plans(next((data_dir / "manual").iterdir()))}
  inside, rest = [], []
  for v in data["videos"]:
    energy = v["features"][..., 2].mean(axis=(1, 2))
    busy = np.zeros(v["num_frames"] + 1, bool)
    for m in plans[v["video"]].movements:
      busy[max(0, m.onset + 1 - v["k"]):m.offset + 2] = True
    for (onset, apex, offset), kind in zip(v["intervals"], v["kinds"]):
      if kind == "micro":
        inside.append(energy[max(0, apex - v["k"] - 1):apex].max())
    rest += list(energy[~busy[v["frames"]]])
  assert inside and np.mean(inside) > 3 * np.median(rest)


def test_interval_flow_matches_the_stream(casme):
  data_dir, data = casme
  v = data["videos"][0]
  raw = loaders.load(_config("casme2_lv", data_dir, CASME_KW, flow_normalization="none"))
  entry = raw["videos"][0]
  np.testing.assert_allclose(long_videos.interval_flow(entry, 101, 107), v["features"][100],
                             atol=1e-5)
  scaled = long_videos.interval_flow(v, 101, 107)  # per_clip, like the MER flow loaders
  assert scaled.shape == (28, 28, 3) and scaled.min() == -1.0 and scaled.max() == 1.0
  with pytest.raises(ValueError, match="no frame 999"):
    long_videos.interval_flow(v, 1, 999)


def test_second_load_reads_the_cache(casme, monkeypatch):
  data_dir, data = casme
  from microexp.vision import flow_stream  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(flow_stream, "stream_features", lambda *a, **k: pytest.fail("recomputed"))
  again = loaders.load(_config("casme2_lv", data_dir, CASME_KW))
  np.testing.assert_array_equal(again["videos"][1]["features"], data["videos"][1]["features"])


def test_samm_lv(tmp_path):
  data = loaders.load(_config("samm_lv", tmp_path, SAMM_KW))
  root = next((tmp_path / "manual").iterdir())
  assert (root / "SAMM_longvideos" / "006_1" / "006_1_0001.jpg").is_file()
  assert [v["video"] for v in data["videos"]] == ["006_1", "007_1"]
  for v in data["videos"]:
    assert v["fps"] == 200.0 and v["k"] == 40 and v["features"].shape == (360, 28, 28, 3)
  plans = synthetic.load_plans(root)
  _, report = sheets.read_samm_long(root / "SAMM_LongVideos_V2_Release.xlsx")
  assert len([r for r in report if "apex not coded" in r]) == sum(
      any(m.kind == "micro" for m in p.coded()) for p in plans[1::2])


def test_bad_config_is_refused(tmp_path):
  with pytest.raises(ValueError, match="image_szie"):
    loaders.load(_config("casme2_lv", tmp_path, CASME_KW, image_szie=32))
  with pytest.raises(ValueError, match="manual_dir is not set"):
    loaders.load(ml_collections.ConfigDict(dict(name="samm_lv", data_dir=str(tmp_path))))
  with pytest.raises(FileNotFoundError, match="rawpic"):
    (tmp_path / "copy").mkdir()
    sheets.write_casme_sq_sheet(tmp_path / "copy" / "CAS(ME)^2code_final.xlsx", [],
                                video_names={})
    loaders.load(ml_collections.ConfigDict(dict(name="casme2_lv", data_dir=str(tmp_path),
                                                manual_dir=str(tmp_path / "copy"))))


def test_foreign_folder_is_never_overwritten(tmp_path):
  (tmp_path / "mine.txt").write_text("a real copy")
  with pytest.raises(FileExistsError, match="not written by"):
    synthetic.write_synthetic_samm_lv(tmp_path, **SAMM_KW)
  assert (tmp_path / "mine.txt").is_file()


@pytest.mark.slow  # two spawned worker processes (imports: ~5-15 s on a shared machine)
def test_workers_compute_the_same_features(tmp_path):
  # Two worker processes, a fresh cache: the same rows as an inline build (its own, so that the
  # fast tests' module fixture is not shared with this slow test).
  data = loaders.load(_config("casme2_lv", tmp_path / "inline", CASME_KW))
  parallel = loaders.load(_config("casme2_lv", tmp_path / "workers", CASME_KW, workers=2))
  for a, b in zip(data["videos"], parallel["videos"]):
    assert a["video"] == b["video"]
    np.testing.assert_array_equal(a["features"], b["features"])


@pytest.fixture(scope="module")
def samm_copy(tmp_path_factory):
  """A synthetic SAMM-LV user copy (written once; read-only: tests copy it before changing it)."""
  return synthetic.write_synthetic_samm_lv(tmp_path_factory.mktemp("samm_lv") / "copy", **SAMM_KW)


def test_repeated_frame_numbers_are_an_error(samm_copy, tmp_path):
  root = shutil.copytree(samm_copy, tmp_path / "copy")
  folder = root / "SAMM_longvideos" / "006_1"
  (folder / "006_1_0001 (1).jpg").write_bytes((folder / "006_1_0001.jpg").read_bytes())
  with pytest.raises(Exception, match=r"006_1: frame numbers \[1\]"):
    loaders.load(ml_collections.ConfigDict(dict(name="samm_lv", data_dir=str(tmp_path / "d"),
                                                manual_dir=str(root))))


def test_intervals_outside_the_frames_are_left_out(samm_copy, tmp_path):
  root = shutil.copytree(samm_copy, tmp_path / "copy")
  inside = sheets.LabelledInterval("samm_long", "006", "006_1", 10, 20, 30, "micro", "", "positive")
  outside = dataclasses.replace(inside, onset=390, apex=395, offset=420)  # the video has 400
  sheets.write_samm_long_sheet(root / sheets.SAMM_LONG_SHEET, [inside, outside])
  data = loaders.load(ml_collections.ConfigDict(dict(name="samm_lv", data_dir=str(tmp_path / "d"),
                                                     manual_dir=str(root))))
  assert data["videos"][0]["intervals"] == [(10, 20, 30)]
  assert data["videos"][0]["emotions"] == ["positive"]
