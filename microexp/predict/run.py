"""Run a trained model on your own video or folder of frames.

    python -m microexp.predict --model=WORKDIR --input=clip.mp4 [--onset=N --apex=N] [--out=DIR]

Pipeline: read the frames (`microexp.vision.video`) -> one face box for the clip (`microexp.vision.face`, on the
first frames) -> crop every frame to the training crop size -> spot the onset and apex
(`microexp.vision.spotting`; --onset / --apex override) -> the representation the model was trained on
(`microexp.vision.flow.apex_flow_image`, as the TFDS builder computes it; frame or flow sequences around
the apex for sequence models, `microexp.predict.sequences`) -> the model of WORKDIR/final
-> class probabilities, `prediction.json` and `prediction.png` in --out.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Sequence

import numpy as np

from microexp.vision import align as align_lib
from microexp.vision import face as face_lib
from microexp.vision import flow as flow_lib
from microexp.vision import spotting
from microexp.predict import timeline as timeline_lib
from microexp.vision import video
from microexp.train import workdir as workdir_lib
from microexp.train import compile_cache

# CASME II's cropped faces are ~280 x 340 (W x H); used when model.json records no crop size.
DEFAULT_CROP_SIZE = (340, 280)


@dataclasses.dataclass(frozen=True)
class FinalModel:
  """What WORKDIR/final holds: the module, its variables and how its inputs were made."""

  module: Any  # flax.linen.Module
  variables: dict
  class_names: tuple[str, ...]
  preprocessing: dict
  config: dict
  path: pathlib.Path


def load_final(workdir: str | pathlib.Path) -> FinalModel:
  """Loads WORKDIR/final (model.json + variables.msgpack, docs/ARCHITECTURE.md)."""
  from flax import serialization  # pylint: disable=g-import-not-at-top

  from microexp.models import builder  # pylint: disable=g-import-not-at-top

  final = pathlib.Path(workdir) / "final"
  spec_path, variables_path = final / "model.json", final / "variables.msgpack"
  missing_hint = ("missing; train with main.py first (the engine writes WORKDIR/final after the "
                  "LOSO folds).")
  spec = workdir_lib.read_json(spec_path, required=("config", "class_names", "preprocessing"),
                               missing_hint=missing_hint)
  if not variables_path.is_file():
    raise FileNotFoundError(f"{variables_path}: {missing_hint}")
  config, class_names = spec["config"], tuple(spec["class_names"])
  # A pretrained-weights path is only an initialiser: the trained variables replace it.
  module = builder.from_config({**config, "model": spec.get("model") or config["model"]},
                               len(class_names), pretrained=False)
  variables = serialization.msgpack_restore(variables_path.read_bytes())
  return FinalModel(module, variables, class_names, dict(spec["preprocessing"]), config, final)


def _crop_size(preprocessing: dict, aligned: align_lib.Alignment | None = None,
               ) -> tuple[int, int]:
  """(h, w) of the face crops flow is computed on, as in training: with model.json's `work_width`
  (apex-flow builders) the aligned face box shrunk to at most that width (`align.work_size`), else
  `crop_size`, else CASME II's DEFAULT_CROP_SIZE."""
  if preprocessing.get("work_width") and aligned is not None:
    return align_lib.work_size(aligned.face.box, int(preprocessing["work_width"]))
  size = preprocessing.get("crop_size") or DEFAULT_CROP_SIZE
  return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))


def model_input(onset: np.ndarray, apex: np.ndarray, preprocessing: dict) -> np.ndarray:
  """The model's input from gray onset / apex crops [H, W]: float32 [1, S, S, 3].

  The same function as the TFDS builder's apex_flow representation (`flow.apex_flow_image`, with
  the recorded `flow_kwargs`), then the loader's `flow_normalization` (`flow.normalize_flow`).
  """
  representation = preprocessing.get("representation", "apex_flow")
  if representation != "apex_flow":
    raise ValueError(f"model_input makes apex flow; this model was trained on {representation!r} "
                     "(sequence inputs: microexp.predict.sequences.sequence_input).")
  x = flow_lib.apex_flow_image(onset, apex, method=preprocessing.get("flow_method", "farneback"),
                               third_channel=preprocessing.get("third_channel", "magnitude"),
                               size=int(preprocessing["image_size"]),
                               **dict(preprocessing.get("flow_kwargs") or {}))
  # The loaders' scaling (config.dataset.flow_normalization); model.json files written before the
  # option existed were trained on raw flow.
  x = flow_lib.normalize_flow(x, preprocessing.get("flow_normalization") or "none")
  return x[None].astype(np.float32)


def trained_input(preprocessing: dict, crops: np.ndarray, gray: np.ndarray, onset: int,
                  apex: int) -> tuple[np.ndarray, np.ndarray | None]:
  """(x [1, ...], mask [1, T] | None): the representation the model was trained on, from the face
  crops uint8 [N, H, W, 3] and their gray [N, H, W]: apex flow, or a frame / flow sequence."""
  from microexp.predict import sequences as predict_sequences  # pylint: disable=g-import-not-at-top

  if preprocessing.get("representation") in predict_sequences.SEQUENCE_REPRESENTATIONS:
    return predict_sequences.sequence_input(crops, gray, onset, apex, preprocessing)
  return model_input(gray[onset], gray[apex], preprocessing), None


def classify(final: FinalModel, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  """Class probabilities [B, K] of model inputs x [B, ...] (inference mode, no dropout); mask
  [B, T] bool for clips. A model trained with `train.tta.flip_h` is evaluated as the engine
  evaluated it: the mean of the input's and its (flow-aware) mirror's probabilities."""
  import jax  # pylint: disable=g-import-not-at-top

  kwargs = {} if mask is None else {"mask": mask}
  logits_fn = lambda z: final.module.apply(final.variables, z, train=False, **kwargs)
  if ((final.config.get("train") or {}).get("tta") or {}).get("flip_h"):
    from microexp.train import tta as tta_lib  # pylint: disable=g-import-not-at-top

    is_flow = final.preprocessing.get("representation") in workdir_lib.FLOW_REPRESENTATIONS
    return np.asarray(tta_lib.flip_tta(logits_fn, np.asarray(x, np.float32), is_flow=is_flow))
  return np.asarray(jax.nn.softmax(np.asarray(logits_fn(x), np.float32), axis=-1))


@dataclasses.dataclass(frozen=True)
class Prediction:
  """Everything predict computed for one clip (pictures are drawn from it)."""

  probabilities: dict[str, float]
  label: str
  onset: int
  apex: int
  spotted: bool  # False when --onset and --apex were both given
  face: face_lib.FaceBox
  num_frames: int
  fps: float
  onset_crop: np.ndarray  # uint8 [H, W, 3]
  apex_crop: np.ndarray  # uint8 [H, W, 3]
  flow: np.ndarray  # float32 [H, W, 2] onset -> apex at crop resolution
  motion: np.ndarray  # [T] smoothed motion relative to the onset
  alignment: align_lib.Alignment | None = None

  def to_json(self) -> dict:
    return {
        "label": self.label,
        "probabilities": self.probabilities,
        "onset": self.onset, "apex": self.apex, "spotted": self.spotted,
        "face_box": list(self.face.box), "face_detector": self.face.detector,
        "num_frames": self.num_frames, "fps": self.fps,
        "motion": [round(float(m), 5) for m in self.motion],
        "alignment": self.alignment.to_json() if self.alignment else None,
    }


def find_face(frames: np.ndarray, *, onset: int | None = None, apex: int | None = None,
              detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS) -> face_lib.FaceBox:
  """Checks the clip and the given frames, then finds one face box (on the onset's frames)."""
  return find_alignment(frames, onset=onset, apex=apex, detectors=detectors).face


def find_alignment(frames: np.ndarray, *, onset: int | None = None, apex: int | None = None,
                   detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS,
                   alignment: str = "box") -> align_lib.Alignment:
  """Checks the clip and the given frames, then aligns the face on the onset's frames
  (`microexp.vision.align`; `alignment` is model.json's, see `alignment_method`)."""
  frames = np.asarray(frames)
  if len(frames) < 2:
    raise ValueError(f"Need at least 2 frames (onset and apex), got {len(frames)}.")
  for name, value in (("onset", onset), ("apex", apex)):
    if value is not None and not 0 <= value < len(frames):
      raise ValueError(f"--{name}={value} is outside the clip (frames 0..{len(frames) - 1}).")
  if onset is not None and apex is not None and onset >= apex:
    raise ValueError(f"--onset={onset} must come before --apex={apex}.")
  return align_lib.estimate(frames, method=alignment, start=onset or 0, detectors=detectors)


def alignment_method(preprocessing: dict | None,
                     detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS) -> str:
  """The alignment training used (model.json's `preprocessing.alignment`); 'box' when it records
  none or when --detector names the box explicitly (e.g. 'none' for already-cropped input)."""
  if tuple(detectors) != tuple(face_lib.DEFAULT_DETECTORS):
    return "box"
  return (preprocessing or {}).get("alignment") or align_lib.DEFAULT_PREDICT_ALIGNMENT


def _recorded_preprocessing(model) -> dict | None:
  """model.json's preprocessing read before the model (input errors come first); None if absent."""
  try:
    return json.loads((pathlib.Path(model) / "final" / "model.json").read_text())["preprocessing"]
  except (OSError, ValueError, KeyError, TypeError):
    return None  # load_final reports it


def predict_frames(final: FinalModel, frames: np.ndarray, *, fps: float = video.DEFAULT_FPS,
                   onset: int | None = None, apex: int | None = None,
                   face: align_lib.Alignment | face_lib.FaceBox | None = None,
                   detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS) -> Prediction:
  """Face alignment, spotting, representation and model on frames uint8 [T, H, W, 3] RGB."""
  frames = np.asarray(frames)
  if isinstance(face, face_lib.FaceBox):
    face = align_lib.Alignment("box", 0.0, (0.0, 0.0), face, onset or 0)
  aligned = face or find_alignment(frames, onset=onset, apex=apex, detectors=detectors,
                                   alignment=alignment_method(final.preprocessing, detectors))
  face = aligned.face
  method = final.preprocessing.get("flow_method") or "farneback"
  crops = align_lib.apply(frames, aligned, _crop_size(final.preprocessing, aligned))
  gray = spotting.to_gray(crops, width=None)
  spotted = spotting.spot(spotting.to_gray(crops), onset=onset, apex=apex, method=method)
  probs = classify(final, *trained_input(final.preprocessing, crops, gray, spotted.onset,
                                         spotted.apex))[0]
  return Prediction(
      probabilities={n: float(p) for n, p in zip(final.class_names, probs)},
      label=final.class_names[int(np.argmax(probs))], onset=spotted.onset, apex=spotted.apex,
      spotted=onset is None or apex is None, face=face, num_frames=len(frames), fps=float(fps),
      onset_crop=crops[spotted.onset], apex_crop=crops[spotted.apex],
      flow=flow_lib.dense_flow(gray[spotted.onset], gray[spotted.apex], method),
      motion=spotted.motion, alignment=aligned)


def predict_timeline(final: FinalModel, frames: np.ndarray, fps: float,
                     aligned: align_lib.Alignment,
                     spotter: FinalModel | None = None) -> timeline_lib.Timeline:
  """A long recording: every spotted candidate classified (`microexp.predict.timeline`); with a
  trained `spotter` (WORKDIR/spotter, `predict.learned_spotting`) its micro and macro intervals."""
  crops = align_lib.apply(frames, aligned, _crop_size(final.preprocessing, aligned))
  pair = lambda onset, apex: classify(final, model_input(onset, apex, final.preprocessing))[0]
  if spotter is not None:
    from microexp.predict import learned_spotting  # pylint: disable=g-import-not-at-top

    return learned_spotting.analyse(spotter, frames, spotting.to_gray(crops, width=None), fps,
                                    pair, final.class_names)
  return timeline_lib.analyse(crops, fps, pair, final.class_names,
                              method=final.preprocessing.get("flow_method") or "farneback")


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
  """Flow [H, W, 2] -> uint8 RGB [H, W, 3]: hue = direction, brightness = magnitude."""
  import cv2  # pylint: disable=g-import-not-at-top

  mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1])
  scale = max_magnitude or max(float(np.percentile(mag, 99)), 1e-6)
  hsv = np.zeros(flow.shape[:2] + (3,), np.uint8)
  hsv[..., 0] = (ang * 90 / np.pi).astype(np.uint8)  # OpenCV hue is 0..180
  hsv[..., 1] = 255
  hsv[..., 2] = np.clip(mag / scale * 255, 0, 255).astype(np.uint8)
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def plot_prediction(prediction: Prediction, path: str | pathlib.Path, title: str = "") -> pathlib.Path:
  """Onset / apex crops, the onset->apex flow, the motion curve and the probabilities, as a PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig = plt.figure(figsize=(11, 5.6))
  grid = fig.add_gridspec(2, 4, height_ratios=[1.25, 1])
  p = prediction
  for i, (image, name) in enumerate(((p.onset_crop, f"onset (frame {p.onset})"),
                                     (p.apex_crop, f"apex (frame {p.apex})"))):
    ax = fig.add_subplot(grid[0, i])
    ax.imshow(image)
    ax.set_title(name, fontsize=10)
    ax.axis("off")
  ax = fig.add_subplot(grid[0, 2])
  ax.imshow(flow_to_rgb(p.flow))
  height, width = p.flow.shape[:2]
  step = max(4, min(height, width) // 14)
  yy, xx = np.mgrid[step // 2:height:step, step // 2:width:step]
  u, v = p.flow[yy, xx, 0], p.flow[yy, xx, 1]
  ax.quiver(xx, yy, u, v, color="white", angles="xy", scale_units="xy",
            scale=max(float(np.hypot(u, v).max()), 1e-6) / (0.9 * step), width=0.006)
  ax.set_title(f"flow onset->apex (max {np.hypot(p.flow[..., 0], p.flow[..., 1]).max():.1f} px)",
               fontsize=10)
  ax.axis("off")
  ax = fig.add_subplot(grid[0, 3])
  names = list(p.probabilities)
  values = [p.probabilities[n] for n in names]
  colors = ["tab:red" if n == p.label else "tab:blue" for n in names]
  ax.barh(names[::-1], values[::-1], color=colors[::-1])
  ax.set_xlim(0, 1)
  ax.set_title(f"prediction: {p.label} ({p.probabilities[p.label]:.0%})", fontsize=10)
  ax.tick_params(labelsize=8)
  ax = fig.add_subplot(grid[1, :])
  ax.plot(np.arange(p.num_frames), p.motion, color="tab:blue",
          label="facial motion relative to the onset frame (smoothed)")
  ax.axvline(p.onset, color="tab:green", ls="--", label=f"onset {p.onset}")
  ax.axvline(p.apex, color="tab:red", ls="--",
             label=f"apex {p.apex} ({'spotted' if p.spotted else 'given'})")
  ax.set_xlabel(f"frame ({p.fps:g} fps)")
  ax.set_ylabel(f"p{spotting.MOTION_PERCENTILE} |flow - median| (px)", fontsize=8)
  ax.legend(fontsize=8, loc="upper right")
  fig.suptitle(title or f"face found by '{p.face.detector}' detector at {p.face.box}", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return pathlib.Path(path)


def run(model: str | pathlib.Path, input_path: str | pathlib.Path, *, out: str | pathlib.Path,
        onset: int | None = None, apex: int | None = None,
        detectors: Sequence[str] = face_lib.DEFAULT_DETECTORS, timeline: str = "auto",
        ) -> Prediction | timeline_lib.Timeline:
  """The CLI: reads, predicts, prints and writes prediction.json / prediction.png under `out`
  (a long recording, or timeline='always': timeline.json / timeline.png, see microexp.predict.timeline)."""
  # Input problems are reported before the (slower) model load.
  frames, fps = video.read_video(input_path)
  print(f"Read {len(frames)} frames {frames.shape[2]}x{frames.shape[1]} at {fps:g} fps from "
        f"{input_path}")
  aligned = find_alignment(frames, onset=onset, apex=apex, detectors=detectors,
                           alignment=alignment_method(_recorded_preprocessing(model), detectors))
  face = aligned.face
  print(f"Face found by the '{face.detector}' detector at x,y,w,h = {face.box} (on "
        f"{face.num_detected} of the first frames); alignment '{aligned.method}', eye line "
        f"rotated {aligned.angle:.1f} deg")
  final = load_final(model)
  long = timeline_lib.is_long(len(frames), fps) and onset is None and apex is None
  if timeline == "always" or (timeline == "auto" and long):
    return _run_timeline(final, frames, fps, aligned, input_path, model, out)
  prediction = predict_frames(final, frames, fps=fps, onset=onset, apex=apex, face=aligned)
  how = "spotted" if prediction.spotted else "given"
  print(f"Onset frame {prediction.onset}, apex frame {prediction.apex} ({how})")
  for name, p in sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]):
    print(f"  {name:12s} {p:6.1%}")
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  record = {"input": str(input_path), "model": str(model), **prediction.to_json()}
  (out / "prediction.json").write_text(json.dumps(record, indent=1))
  plot_prediction(prediction, out / "prediction.png",
                  f"{pathlib.Path(input_path).name}: face by '{prediction.face.detector}', "
                  f"model {final.config['model']['name']}")
  print(f"Wrote {out / 'prediction.json'} and {out / 'prediction.png'}")
  return prediction


def _run_timeline(final, frames, fps, aligned, input_path, model, out) -> timeline_lib.Timeline:
  from microexp.predict import learned_spotting  # pylint: disable=g-import-not-at-top

  spotter = None
  if learned_spotting.has_spotter(model):
    spotter = load_final(pathlib.Path(model) / learned_spotting.SPOTTER_DIR)
    print(f"Spotting with the trained spotter of {spotter.path}")
  result = predict_timeline(final, frames, fps, aligned, spotter)
  print(timeline_lib.summary(result))
  title = (f"{pathlib.Path(input_path).name}: model {final.config['model']['name']}"
           + (f", spotter {spotter.config['model']['name']}" if spotter else ""))
  paths = timeline_lib.write(result, out, {"input": str(input_path), "model": str(model),
                                           "alignment": aligned.to_json()}, title)
  print(f"Wrote {paths[0]} and {paths[1]}")
  return result


def main(argv: Sequence[str]) -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}.")
  f = flags.FLAGS
  if not f.model or not f.input:
    raise app.UsageError("--model=WORKDIR and --input=VIDEO_OR_FRAME_FOLDER are required.")
  detectors = [d.strip() for d in f.detector.split(",") if d.strip()]
  compile_cache.enable(compile_cache.directory(f.compilation_cache))
  try:
    run(f.model, f.input, out=f.out or pathlib.Path(f.model) / "predictions" /
        pathlib.Path(f.input).stem, onset=f.onset, apex=f.apex, detectors=detectors,
        timeline=f.timeline)
  except face_lib.NoFaceError as e:
    raise SystemExit(f"error: {f.input}: {e}") from None
  except (video.VideoError, FileNotFoundError, ValueError) as e:
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("model", None, "Training workdir holding final/ (model.json, variables).")
  flags.DEFINE_string("input", None, "A video file or a folder of frame images.")
  flags.DEFINE_integer("onset", None, "Onset frame index (0-based); spotted when not given.")
  flags.DEFINE_integer("apex", None, "Apex frame index (0-based); spotted when not given.")
  flags.DEFINE_string("out", None, "Output folder (default WORKDIR/predictions/<input name>).")
  flags.DEFINE_string("detector", ",".join(face_lib.DEFAULT_DETECTORS),
                      f"Face detectors tried in order, comma-separated; one of {face_lib.names()}.")
  flags.DEFINE_enum("timeline", "auto", ["auto", "always", "never"],
                    f"Spot and classify every candidate (timeline.json/png): 'auto' for recordings "
                    f"longer than {timeline_lib.LONG_RECORDING_S:g} s without --onset/--apex.")
  flags.DEFINE_string("compilation_cache", None,
                      "Folder of XLA's persistent compilation cache ('none': off). Default: "
                      f"${compile_cache.ENV}, else {compile_cache.DEFAULT}.")
  app.run(main)
