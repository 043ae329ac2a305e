"""Peak memory of the streamed spotting features against the length of the recording.

  python benchmarks/stream_memory.py [--frames=2000,5000,20000] [--fps=200] [--out=/tmp/stream_mem]

For each length, a fresh process renders a synthetic SAMM-like recording lazily
(`microexp.synthetic.long_videos.render_frames`, 200 fps, 128 x 112 frames, the default movement
rates) and caches its features exactly as the loader does (`flow_stream.cache_features`: k from the
fps, 28 x 28 x 3 per frame, 256-row chunks). Printed per length: the process's peak RSS before the
stream (imports and the face), after it, their difference, the size of the feature file, and what
the frames alone would take in memory (T x 128 x 112 x 3 bytes). Flat peak = bounded memory.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time


def _peak_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(num_frames: int, fps: float, out: pathlib.Path) -> dict:
  """Renders and caches one recording in this process; returns the measurements."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from microexp.synthetic import long_videos as synthetic  # pylint: disable=g-import-not-at-top
  from microexp.vision import flow_stream  # pylint: disable=g-import-not-at-top

  plan = synthetic.plan_video(np.random.default_rng(0), subject="001", video="001_1", fps=fps,
                              duration=num_frames / fps, face_seed=0)
  frames = synthetic.render_frames(plan)
  first = next(frames)  # the face is drawn: count it in the baseline
  before = _peak_mb()
  start = time.time()

  def all_frames():
    yield first
    yield from frames

  k = flow_stream.flow_step(fps)
  flow_stream.cache_features(out / f"len{num_frames}", all_frames(), range(1, plan.num_frames + 1),
                             fps=fps, k=k, settings={"benchmark": num_frames})
  after = _peak_mb()
  return dict(frames=plan.num_frames, k=k, peak_before_mb=round(before, 1),
              peak_after_mb=round(after, 1), stream_mb=round(after - before, 1),
              features_mb=round((out / f"len{num_frames}.npy").stat().st_size / 2**20, 1),
              frames_in_memory_mb=round(plan.num_frames * 128 * 112 * 3 / 2**20, 1),
              seconds=round(time.time() - start, 1))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--frames", default="2000,5000,20000")
  parser.add_argument("--fps", type=float, default=200.0)
  parser.add_argument("--out", default=None)
  parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="stream_memory_"))
  out.mkdir(parents=True, exist_ok=True)
  if args.one is not None:
    print(json.dumps(run_one(args.one, args.fps, out)))
    return
  print(f"{'frames':>7} {'k':>3} {'peak before':>12} {'peak after':>11} {'stream':>7} "
        f"{'features':>9} {'frames in RAM':>14} {'s':>6}")
  for n in (int(x) for x in args.frames.split(",")):
    line = subprocess.run([sys.executable, __file__, f"--one={n}", f"--fps={args.fps}",
                           f"--out={out}"], check=True, capture_output=True, text=True)
    r = json.loads(line.stdout.strip().splitlines()[-1])
    print(f"{r['frames']:>7} {r['k']:>3} {r['peak_before_mb']:>9.1f} MB {r['peak_after_mb']:>8.1f} MB"
          f" {r['stream_mb']:>4.1f} MB {r['features_mb']:>6.1f} MB {r['frames_in_memory_mb']:>11.1f} MB"
          f" {r['seconds']:>6.1f}", flush=True)


if __name__ == "__main__":
  main()
