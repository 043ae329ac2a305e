"""Streamed flow features: equal to the pairwise flow, chunk-size invariant, bounded memory,
atomic and resumable per-video cache."""

import json
import tracemalloc

import numpy as np
import pytest

from microexp.synthetic import long_videos as synthetic
from microexp.vision import flow_stream


def _plan(num_frames, fps=30.0, seed=0):
  return synthetic.plan_video(np.random.default_rng(seed), subject="s", video="v", fps=fps,
                              duration=num_frames / fps, face_seed=seed)


def test_flow_step_follows_the_frame_rate():
  assert flow_stream.flow_step(30.0) == 6  # CAS(ME)^2: 0.4 s / 2 at 30 fps
  assert flow_stream.flow_step(200.0) == 40  # SAMM
  with pytest.raises(ValueError, match="fps"):
    flow_stream.flow_step(0.0)


def test_rows_are_the_flow_from_t_to_t_plus_k_whatever_the_chunk():
  plan = _plan(40)
  frames = list(synthetic.render_frames(plan))
  k = 5
  blocks = list(flow_stream.stream_features(iter(frames), k, chunk=7))
  assert [len(b) for b in blocks] == [7, 7, 7, 7, 7]  # 40 - 5 = 35 rows
  features = np.concatenate(blocks)
  assert features.dtype == np.float32 and features.shape == (35, 28, 28, 3)
  whole = np.concatenate(list(flow_stream.stream_features(iter(frames), k, chunk=1000)))
  np.testing.assert_array_equal(features, whole)
  alignment = flow_stream.estimate_alignment(frames[0])
  from microexp.vision import align  # pylint: disable=g-import-not-at-top
  size = align.work_size(alignment.face.box, flow_stream.DEFAULT_WORK_WIDTH)
  for t in (0, 17, 34):
    expected = flow_stream.pair_feature(flow_stream.reduce_frame(frames[t], alignment, size),
                                        flow_stream.reduce_frame(frames[t + k], alignment, size))
    np.testing.assert_array_equal(features[t], expected)


def test_memory_does_not_grow_with_the_recording():
  # Peak numpy allocation while consuming the stream of a 4x longer recording (frames generated
  # lazily): the same up to noise, because only k + 1 faces and one chunk are ever held.
  def peak(num_frames):
    frames = synthetic.render_frames(_plan(num_frames), frame_size=(64, 56))
    tracemalloc.start()
    for _ in flow_stream.stream_features(frames, 6, chunk=32, work_width=32, size=16):
      pass
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top

  short, long = peak(100), peak(400)
  assert long < 1.2 * short, (short, long)


def test_cache_is_atomic_and_resumable(tmp_path, monkeypatch):
  plan = _plan(30)
  frames = list(synthetic.render_frames(plan))
  stem = tmp_path / "cache" / "v"
  settings = {"image_size": 28}

  def broken():  # a build killed after 20 frames
    yield from frames[:20]
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    flow_stream.cache_features(stem, broken(), range(1, 31), fps=30.0, k=4, settings=settings,
                               chunk=4)
  assert not flow_stream.is_cached(stem)
  assert not (tmp_path / "cache" / "v.npy").exists() and not (tmp_path / "cache" / "v.json").exists()
  meta = flow_stream.cache_features(stem, iter(frames), range(1, 31), fps=30.0, k=4,
                                    settings=settings, chunk=4)
  assert flow_stream.is_cached(stem, settings)
  assert meta["frames"] == list(range(1, 27)) and meta["k"] == 4
  assert json.loads((tmp_path / "cache" / "v.json").read_text())["alignment"]["method"] == "box"
  stored = np.load(tmp_path / "cache" / "v.npy")
  np.testing.assert_array_equal(
      stored, np.concatenate(list(flow_stream.stream_features(iter(frames), 4))))
  # Done: a rerun reads nothing (the frames are not even consumed).
  monkeypatch.setattr(flow_stream, "stream_features", lambda *a, **k: pytest.fail("recomputed"))
  again = flow_stream.cache_features(stem, iter(()), range(1, 31), fps=30.0, k=4,
                                     settings=settings)
  assert again == meta
  # Other settings: not cached.
  assert not flow_stream.is_cached(stem, {"image_size": 14})


def test_too_few_frames_is_an_error_naming_the_cache(tmp_path):
  frames = list(synthetic.render_frames(_plan(10)))
  with pytest.raises(ValueError, match="expected 16"):
    flow_stream.cache_features(tmp_path / "v", iter(frames), range(20), fps=30.0, k=4,
                               settings={})
  assert not flow_stream.is_cached(tmp_path / "v")
