"""Prints optical-flow cost per clip for each method, the per-frame-pair thread speed-up, and the
time of a full apex_flow build.

  python benchmarks/flow_speed.py [--frames=280x340] [--clips=3] [--workers=N] [--repeats=5]

Flow is timed on synthetic clips at the size of CASME II's cropped faces (one onset->apex pair and
a whole clip against its first frame). The thread rows time the per-pair loops that run on a
thread per core (`flow.map_threads`: `clip_flows`, and the heuristic spotter's contrast curve at
its 128 px work width) with 1 thread and with `flow.thread_workers()`, alternated, medians of
--repeats. The build is the synthetic CASME II (default generator settings) built into a
temporary data_dir with the apex_flow config.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def _clips(num_clips: int, size: tuple[int, int], num_frames: int) -> list[np.ndarray]:
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  clips = []
  for _ in range(num_clips):
    face = synthetic.make_face(rng, size)
    rgb = synthetic.render_clip(face, "happiness", num_frames, num_frames // 2, 1.0, rng)
    clips.append((rgb.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])).astype(np.uint8))
  return clips


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--frames", default="340x280", help="HxW of the timed frames")
  parser.add_argument("--clips", type=int, default=3)
  parser.add_argument("--clip_length", type=int, default=30)
  parser.add_argument("--workers", type=int, default=os.cpu_count())
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  import cv2  # pylint: disable=g-import-not-at-top
  from microexp.vision import flow  # pylint: disable=g-import-not-at-top
  from microexp.loaders import casme2 as loading  # pylint: disable=g-import-not-at-top

  h, w = (int(x) for x in args.frames.split("x"))
  clips = _clips(args.clips, (h, w), args.clip_length)
  print(f"cv2 {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads, {os.cpu_count()} cores; "
        f"{args.clips} clips of {args.clip_length} frames {h}x{w}")
  variants = [("farneback", {}), ("tvl1", {}), ("tvl1", dict(scales=3, warps=3)),
              ("dis", dict(preset="ultrafast")), ("dis", dict(preset="fast")),
              ("dis", dict(preset="medium"))]
  print(f"{'method':28s} {'apex pair (s)':>14s} {'whole clip (s)':>15s}")
  for method, kw in variants:
    start = time.perf_counter()
    for c in clips:
      flow.apex_flow_image(c[0], c[len(c) // 2], method=method, size=224, **kw)
    pair = (time.perf_counter() - start) / len(clips)
    start = time.perf_counter()
    flow.clip_flows(clips[0], method=method, **kw)
    whole = time.perf_counter() - start
    label = method + ("" if not kw else " " + ",".join(f"{k}={v}" for k, v in kw.items()))
    print(f"{label:28s} {pair:14.3f} {whole:15.2f}", flush=True)

  _thread_rows(flow, clips[0], args.repeats)

  with tempfile.TemporaryDirectory() as data_dir:
    for workers in sorted({1, args.workers}):
      cfg = dict(name="casme2", representation="apex_flow", synthetic=True, data_dir=data_dir,
                 image_size=224, flow_method="farneback", third_channel="magnitude",
                 workers=workers)
      root = loading.synthetic_root(data_dir, {})
      start = time.perf_counter()
      from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
      synthetic.write_synthetic_casme2(root)
      written = time.perf_counter() - start
      start = time.perf_counter()
      out = loading.load_casme2(cfg)
      built = time.perf_counter() - start
      print(f"synthetic CASME II ({len(out['clip'])} clips): written in {written:.1f} s; "
            f"apex_flow (farneback, 224) built + loaded with {workers} worker(s) in {built:.1f} s")
      import shutil  # pylint: disable=g-import-not-at-top
      shutil.rmtree(os.path.join(data_dir, "synthetic"))


def _thread_rows(flow, clip: np.ndarray, repeats: int) -> None:
  """clip_flows and the contrast curve with 1 thread and with thread_workers(), alternated."""
  import statistics  # pylint: disable=g-import-not-at-top
  from microexp.vision import spotting  # pylint: disable=g-import-not-at-top

  many = flow.thread_workers()
  faces = spotting.to_gray(clip)  # the spotter's 128 px work width
  jobs = {"clip_flows (farneback)": lambda: flow.clip_flows(clip),
          "contrast curve (spotting)": lambda: spotting.contrast_curve(faces, 3)}
  print(f"{'per-pair loop':28s} {'1 thread (s)':>14s} {f'{many} threads (s)':>15s} {'ratio':>7s}")
  default = flow.thread_workers
  try:
    for label, job in jobs.items():
      times = {1: [], many: []}
      for _ in range(repeats):
        for n in times:
          flow.thread_workers = lambda n=n: n
          start = time.perf_counter()
          job()
          times[n].append(time.perf_counter() - start)
      one, par = statistics.median(times[1]), statistics.median(times[many])
      print(f"{label:28s} {one:14.3f} {par:15.3f} {one / par:6.2f}x", flush=True)
  finally:
    flow.thread_workers = default


if __name__ == "__main__":
  main()
