"""The heuristic spotter (`vision.spotting.spot_events`: flow contrast, MEGC threshold rule,
fps-aware macro guard) on a long-video loader's recordings, scored like the learned one.

It reads each recording's frames one at a time, reduces them to the aligned gray face at the
stream's work size (vision.flow_stream, the same faces the features come from) and spots on them:
a baseline that learns nothing, so every subject is a test subject.
"""

from __future__ import annotations

import numpy as np

from microexp.train import spot_decode
from microexp.train import spot_labels
from microexp.vision import flow_stream
from microexp.vision import spotting


def spot_video(video: dict, *, max_duration: float = 0.5,
               rate: float = 30.0) -> spot_decode.Decoded:
  """The heuristic on one loader entry (needs frame_files, alignment, work_size): micro
  candidates and the macro movements it set apart, in the sheet's frame numbers."""
  alignment = flow_stream.alignment_from_json(video["alignment"])
  faces = np.stack([flow_stream.reduce_frame(f, alignment, tuple(video["work_size"]))
                    for f in flow_stream.iter_frame_files(video["frame_files"])])
  fps = float(video["fps"])
  found = spotting.spot_events(faces, fps=fps, max_duration=max_duration,
                               stride=max(1, int(fps // rate)))
  numbers = np.asarray(video["frame_numbers"])
  at = lambda i: spotting.Interval(int(numbers[i.onset]), int(numbers[i.apex]),
                                   int(numbers[i.offset]), i.score)
  return spot_decode.Decoded({"micro": [at(i) for i in found.intervals],
                              "macro": [at(i) for i in found.macros]}, [],
                             found.curve[None], found.level)


def spot_videos(videos, **kwargs) -> dict[str, spot_decode.Decoded]:
  """{'subject/video': Decoded} of the heuristic on every video."""
  return {spot_labels.video_key(v): spot_video(v, **kwargs) for v in videos}
