"""Long recordings with a trained spotter: `python -m microexp.predict` uses WORKDIR/spotter/final
(written by the spotting and STR protocols, microexp/train/spot_protocol.py) when it exists, the
heuristic contrast spotter (timeline.analyse) otherwise.

The recording's frames are streamed into the flow rows the spotter was trained on
(vision.flow_stream.stream_features, with the settings of its config.dataset: k from the fps and
`micro_duration`, the face at `work_width`, S x S rows), scored, and turned into micro and macro
intervals (train.spot_decode); the classifier of WORKDIR/final names every interval.
"""

from __future__ import annotations

import pathlib

import numpy as np

from microexp.predict import timeline as timeline_lib
from microexp.train import fold_models
from microexp.train import spot_decode
from microexp.vision import flow_stream

SPOTTER_DIR = "spotter"


def has_spotter(model_dir: str | pathlib.Path) -> bool:
  """Whether WORKDIR holds a trained spotter (spotter/final/model.json)."""
  return (pathlib.Path(model_dir) / SPOTTER_DIR / "final" / "model.json").is_file()


def spot(spotter, frames, fps: float) -> spot_decode.Decoded:
  """A trained spotter (predict.run.FinalModel of WORKDIR/spotter) on frames uint8 [T, H, W, 3]."""
  ds, spot_cfg = spotter.config["dataset"], spotter.config.get("spot") or {}
  k = flow_stream.flow_step(fps, float(ds.get("micro_duration") or
                                       flow_stream.DEFAULT_MICRO_DURATION))
  chunks = list(flow_stream.stream_features(
      iter(frames), k, size=int(ds.get("image_size") or flow_stream.DEFAULT_SIZE),
      work_width=int(ds.get("work_width") or flow_stream.DEFAULT_WORK_WIDTH),
      method=ds.get("flow_method") or "farneback",
      third_channel=ds.get("third_channel") or "magnitude", alignment=ds.get("alignment") or "box"))
  if not chunks:
    raise ValueError(f"The recording has {len(frames)} frames: fewer than k + 1 = {k + 1}, no flow "
                     "row to spot on.")
  rows = np.concatenate(chunks)
  scores = 1.0 / (1.0 + np.exp(-fold_models.predict(spotter.module, spotter.variables, rows)))
  return spot_decode.decode(scores, np.arange(len(rows)), k=k, num_frames=len(frames), fps=fps,
                            threshold=float(spot_cfg.get("threshold", 0.5)),
                            max_duration=float(spot_cfg.get("max_duration", 0.5)),
                            max_macro_duration=float(spot_cfg.get("max_macro_duration", 4.0)))


def analyse(spotter, frames, gray, fps: float, classify, class_names) -> timeline_lib.Timeline:
  """Every interval the spotter finds in `frames`, named by `classify(onset, apex)` on the gray
  crops `gray` [T, H, W] (-> probabilities [K]); a timeline of the micro-expression probability."""
  decoded = spot(spotter, frames, fps)
  entries = []
  for kind, intervals in decoded.spotted.items():
    for i in intervals:
      apex = i.apex if i.apex > i.onset else min(i.onset + 1, len(gray) - 1)
      probs = np.asarray(classify(gray[i.onset], gray[apex]))
      entries.append(timeline_lib.Entry(i, class_names[int(np.argmax(probs))],
                                        {n: float(p) for n, p in zip(class_names, probs)}, kind))
  entries.sort(key=lambda e: e.interval.onset)
  max_duration = float((spotter.config.get("spot") or {}).get("max_duration", 0.5))
  return timeline_lib.Timeline(entries, decoded.rejected, decoded.curves[0], decoded.threshold,
                               float(fps), max_duration,
                               curve_name="spotter: micro-expression probability")
