"""How the heuristic contrast spotter does on the synthetic long videos, and what it mistakes.

  python benchmarks/heuristic_spotting_synthetic.py [--seeds=0,1,2] [--duration=40] [--fps=30]

Per seed one recording (`microexp.synthetic.long_videos.plan_video` + `render_frames`, the default
movement rates) goes through `microexp.vision.spotting.spot_events` (defaults, the recording's
fps); printed: the micro-expression spotting score (IoU >= 0.5, one-to-one) and, for every
spotted interval, the planted movement it overlaps most (kind, IoU): the false positives' kinds.
"""

from __future__ import annotations

import argparse
import collections


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--duration", type=float, default=40.0)
  parser.add_argument("--fps", type=float, default=30.0)
  args = parser.parse_args()

  import numpy as np  # pylint: disable=g-import-not-at-top

  from microexp.synthetic import long_videos as synthetic  # pylint: disable=g-import-not-at-top
  from microexp.train import spotting_metrics  # pylint: disable=g-import-not-at-top
  from microexp.vision import spotting  # pylint: disable=g-import-not-at-top

  for seed in (int(s) for s in args.seeds.split(",")):
    plan = synthetic.plan_video(np.random.default_rng(seed), subject="s", video="v",
                                fps=args.fps, duration=args.duration, face_seed=seed)
    faces = spotting.to_gray(np.stack(list(synthetic.render_frames(plan))), None)
    spotted = [(i.onset, i.offset) for i in spotting.spot_events(faces, fps=args.fps).intervals]
    truth = [(m.onset, m.offset) for m in plan.movements if m.kind == "micro"]
    score, _ = spotting_metrics.evaluate({"v": spotted}, {"v": truth})
    nearest = collections.Counter()
    for s in spotted:
      best = max(plan.movements, key=lambda m: spotting_metrics.iou(s, (m.onset, m.offset)))
      hit = spotting_metrics.iou(s, (best.onset, best.offset)) >= 0.5
      nearest[f"{best.kind}{'' if hit else ' (IoU<0.5)'}"] += 1
    print(f"seed {seed}: micro {score.to_json()}; spotted intervals nearest: {dict(nearest)}",
          flush=True)


if __name__ == "__main__":
  main()
