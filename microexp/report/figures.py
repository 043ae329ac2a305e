"""The thesis's figures for a workdir's report: Table 1 (class counts of the dataset as loaded),
Fig 1 (a clip's frames), Fig 8 (its flow sequence), Fig 9 (the apex flow's u, v and magnitude side
by side), and the training curves under Keras' names (`epoch_loss`, `epoch_categorical_accuracy`).

The sample clip is read from the workdir's dataset through the TFDS builders (random access: one
clip decoded, `microexp.data.loading`): the synthetic set is rebuilt from its generator settings,
a real copy is read from `config.dataset.manual_dir`. When neither is there (another machine, a
moved copy) the report says so and leaves these figures out.
"""

from __future__ import annotations

import pathlib
from typing import Any, NamedTuple, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from microexp.data import emotions as emotions_lib  # noqa: E402

# Small sizes are enough for pictures and cheap to build when the workdir's own size was not built.
FIGURE_SEQUENCE_SIZE = 64
KERAS_CURVES = ("epoch_loss", "epoch_categorical_accuracy")


def class_count_table(emotion: Sequence[str], subject: Sequence[str], classes: str) -> str:
  """Table 1: clips and subjects per class of the subset `classes`, and the clips it drops.

  emotion, subject: [N] str, every clip of the dataset.
  """
  subset = emotions_lib.get_subset(classes)
  labels, keep = subset.map_emotions(emotion)
  subject = np.asarray(subject)
  lines = ["| class | clips | subjects |", "|---|---|---|"]
  for k, name in enumerate(subset.class_names):
    rows = labels == k
    lines.append(f"| {name} | {int(rows.sum())} | {len(set(subject[rows]))} |")
  lines.append(f"| **total** | **{int(keep.sum())}** | **{len(set(subject[keep]))}** |")
  dropped = sorted(set(map(str, np.asarray(emotion)[~keep])))
  if dropped:
    lines += ["", f"Left out by the class subset `{classes}`: {int((~keep).sum())} clips "
              f"({', '.join(dropped)})."]
  return "\n".join(lines)


def _pick(num_frames: int, max_frames: int) -> np.ndarray:
  return np.unique(np.linspace(0, num_frames - 1, min(num_frames, max_frames)).round().astype(int))


def _strip(num_frames: int, image, path, title: str, marks: dict[int, str] | None,
           max_frames: int, **imshow) -> pathlib.Path:
  """`image(i)` of up to `max_frames` evenly spaced frames in a row, titled by index (and mark)."""
  idx = _pick(num_frames, max_frames)
  fig, axes = plt.subplots(1, len(idx), figsize=(1.3 * len(idx), 1.7), squeeze=False)
  for ax, i in zip(axes[0], idx):
    ax.imshow(image(i), **imshow)
    ax.set_title(f"{i}" + (f" {marks[i]}" if marks and i in marks else ""), fontsize=7)
    ax.axis("off")
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return pathlib.Path(path)


def plot_frame_strip(frames: np.ndarray, path, title: str = "", marks: dict[int, str] | None = None,
                     max_frames: int = 10) -> pathlib.Path:
  """Fig 1: frames [T, H, W, C] uint8 (C = 1 or 3), up to `max_frames` evenly spaced, in a row.

  marks: frame index -> label ('onset', 'apex') written under that frame when shown.
  """
  frames = np.asarray(frames)
  gray = frames.shape[-1] == 1
  return _strip(len(frames), lambda i: frames[i, ..., 0] if gray else frames[i], path, title,
                marks, max_frames, cmap="gray", vmin=0, vmax=255)


def plot_flow_sequence(flow: np.ndarray, path, title: str = "", max_frames: int = 10,
                       marks: dict[int, str] | None = None) -> pathlib.Path:
  """Fig 8: flow [T, H, W, >=2] (first frame -> frame t) as colour (hue = direction, brightness =
  speed, one scale for the whole clip), up to `max_frames` evenly spaced."""
  from microexp.predict.run import flow_to_rgb  # pylint: disable=g-import-not-at-top

  flow = np.asarray(flow, np.float32)
  speed = np.hypot(flow[..., 0], flow[..., 1])
  scale = max(float(np.percentile(speed, 99)), 1e-6)
  return _strip(len(flow), lambda i: flow_to_rgb(flow[i, ..., :2], max_magnitude=scale), path,
                title, marks, max_frames)


def plot_flow_channels(flow: np.ndarray, path,
                       channel_names: Sequence[str] = ("u", "v", "magnitude"),
                       title: str = "") -> pathlib.Path:
  """Fig 9: the apex flow image [H, W, 3] channel by channel, side by side, each with its scale."""
  flow = np.asarray(flow, np.float32)
  fig, axes = plt.subplots(1, flow.shape[-1], figsize=(2.6 * flow.shape[-1], 2.6), squeeze=False)
  for c, ax in enumerate(axes[0]):
    plane = flow[..., c]
    signed = plane.min() < 0
    bound = max(float(np.abs(plane).max()), 1e-6)
    im = ax.imshow(plane, cmap="RdBu_r" if signed else "viridis",
                   vmin=-bound if signed else 0, vmax=bound)
    ax.set_title(channel_names[c] if c < len(channel_names) else f"channel {c}", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return pathlib.Path(path)


class Curve(NamedTuple):
  """One curve over seed/fold runs: epochs [E] (1-based) and the mean / min / max [E] there."""
  epochs: np.ndarray
  mean: np.ndarray
  low: np.ndarray
  high: np.ndarray
  runs: int


def curve(history: dict[str, dict[str, list]], key: str) -> Curve | None:
  """`key` over the seed/fold runs that have it (truncated to the shortest), on the epochs with a
  value: test monitoring runs only every `eval_every` epochs and writes NaN between. None when
  no run has a value."""
  runs = [np.asarray(h[key], np.float64) for h in history.values() if h.get(key)]
  if not runs:
    return None
  length = min(len(r) for r in runs)
  stacked = np.stack([r[:length] for r in runs])
  seen = np.isfinite(stacked).any(axis=0)
  if not seen.any():
    return None
  stacked = stacked[:, seen]
  return Curve(np.arange(1, length + 1)[seen], np.nanmean(stacked, axis=0),
               np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0), len(runs))


def plot_curves(history: dict[str, dict[str, list]], path, names: Sequence[str] | None = None,
                *, raw_titles: bool = False) -> pathlib.Path:
  """Curves per epoch, one panel per name: train, val and test, the mean over seed/fold runs with
  a min-max band, on the evaluated epochs only (`curve`); a panel with nothing to plot has no
  legend. Test curves are for monitoring only (the engine never selects on them).

  names: the curves ('epoch_loss', ...); None: every one in `history`, losses first.
  raw_titles: titles are the names as written (the thesis's Keras names), not prettified.
  """
  if names is None:
    names = sorted({k.split("/", 1)[1] for h in history.values() for k in h if "/" in k},
                   key=lambda k: ("loss" not in k, k))
  fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.2 * max(1, len(names)), 3.2),
                           squeeze=False)
  for ax, name in zip(axes[0], names):
    for split, color in (("train", "tab:blue"), ("val", "tab:green"), ("test", "tab:orange")):
      c = curve(history, f"{split}/{name}")
      if c is None:
        continue
      # Dots where epochs were skipped (or a single evaluation): a line alone would hide them.
      sparse = len(c.epochs) < 2 or bool(np.any(np.diff(c.epochs) != 1))
      ax.plot(c.epochs, c.mean, color=color, marker="." if sparse else None,
              label=f"{split} (mean of {c.runs})")
      ax.fill_between(c.epochs, c.low, c.high, color=color, alpha=0.15)
    ax.set_xlabel("epoch")
    if raw_titles:
      ax.set_title(name, fontsize=10, family="monospace")
    else:
      ax.set_title(name.replace("epoch_", "").replace("_", " "), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return pathlib.Path(path)


# ----------------------------------------------------------------------------------------------
# Sample clips from the workdir's dataset.


def _source(dataset: dict) -> tuple[pathlib.Path, pathlib.Path]:
  """(manual_dir, TFDS data_dir) of the workdir's CASME II, as the loader resolves them."""
  from microexp.loaders import casme2 as loading  # pylint: disable=g-import-not-at-top

  data_dir = loading.resolve_data_dir(dataset)
  if dataset.get("synthetic"):
    from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top

    kwargs = dict(dataset.get("synthetic_kwargs") or {})
    for key, value in kwargs.items():  # JSON lists -> the generator's tuples
      kwargs[key] = tuple(value) if isinstance(value, list) else value
    manual_dir = loading.synthetic_root(data_dir, kwargs)
    if not (manual_dir / synthetic.COMPLETE_MARKER).is_file():
      synthetic.write_synthetic_casme2(manual_dir, **kwargs)
    return manual_dir, data_dir / "synthetic" / manual_dir.name.split("-")[-1]
  manual_dir = dataset.get("manual_dir")
  if not manual_dir or not pathlib.Path(manual_dir).expanduser().is_dir():
    raise FileNotFoundError(f"the dataset copy (config.dataset.manual_dir={manual_dir!r}) is not "
                            "on this machine")
  return pathlib.Path(manual_dir).expanduser(), data_dir


def dataset_samples(dataset: dict, clip: str | None = None) -> dict[str, Any]:
  """Reads the figures' inputs from the workdir's CASME II (`config.dataset` as a dict).

  Returns {'emotion' [N], 'subject' [N], 'clip' (name), 'emotion_of_clip', 'frames' [T, S, S, 3]
  uint8, 'flow_sequence' [T, S, S, 3], 'apex_flow' [224, 224, 3], 'third_channel', 'onset_index',
  'apex_index'}; `clip` ('sub01/EP02_01f') defaults to the first clip of the class subset.
  Raises (FileNotFoundError, ValueError...) when the dataset cannot be read here.
  """
  if dataset.get("name", "casme2") != "casme2":
    raise ValueError("sample figures read CASME II; this workdir trained on "
                     f"{dataset.get('name')!r}")
  from microexp.loaders import casme2 as loading  # pylint: disable=g-import-not-at-top
  from tfds_casme2.casme2 import casme2_dataset_builder as cb  # pylint: disable=g-import-not-at-top

  manual_dir, tfds_dir = _source(dataset)
  flow_args = dict(flow_method=dataset.get("flow_method"),
                   third_channel=dataset.get("third_channel"),
                   flow_kwargs=dict(dataset.get("flow_kwargs") or {}) or None)

  def source(representation, **kwargs):
    builder = loading.build_casme2(manual_dir, tfds_dir, cb.make_config(representation, **kwargs),
                                   workers=1)
    return builder, builder.as_data_source(split="train")

  apex_builder, apex = source("apex_flow", image_size=224, **flow_args)
  names = apex_builder.info.features["emotion"].names
  text = lambda x: x.decode() if isinstance(x, bytes) else str(x)
  # Metadata of every clip (each read decodes one apex-flow example: small).
  meta = [(text(e["subject"]), text(e["filename"]), names[int(e["emotion"])]) for e in apex]
  keys = [f"{s}/{f}" for s, f, _ in meta]
  emotion = np.array([m[2] for m in meta])
  if clip is None:
    _, keep = emotions_lib.get_subset(dataset.get("classes") or "7").map_emotions(emotion)
    clip = keys[int(np.argmax(keep))]
  if clip not in keys:
    raise ValueError(f"clip {clip!r} is not in the dataset")
  index = keys.index(clip)
  _, frames_source = source("sequences", image_size=FIGURE_SEQUENCE_SIZE, grayscale=False)
  _, flows_source = source("flow_sequences", image_size=FIGURE_SEQUENCE_SIZE, **flow_args)
  clip_frames, clip_flows = frames_source[index], flows_source[index]
  return {"emotion": emotion, "subject": np.array([m[0] for m in meta]), "clip": clip,
          "emotion_of_clip": emotion[index], "frames": np.stack(clip_frames["frames"]),
          "flow_sequence": np.asarray(clip_flows["flow"], np.float32),
          "apex_flow": np.asarray(apex[index]["flow"], np.float32),
          "third_channel": dataset.get("third_channel") or "magnitude",
          "onset_index": int(clip_frames["onset_index"]),
          "apex_index": int(clip_frames["apex_index"])}


def thesis_sections(config: dict, history: dict, out: pathlib.Path) -> list[str]:
  """Markdown sections (and their PNGs in `out`) for the thesis's table and figures."""
  sections = []
  if history:
    plot_curves(history, out / "keras_curves.png", KERAS_CURVES, raw_titles=True)
    sections += ["## `epoch_loss` and `epoch_categorical_accuracy` (the thesis's curves)", "",
                 "![keras curves](keras_curves.png)", ""]
  dataset = config.get("dataset") or {}
  try:
    samples = dataset_samples(dataset)
  except Exception as e:  # pylint: disable=broad-except
    # Figures are a courtesy: a report without them beats no report.
    return sections + ["## Dataset figures", "",
                       f"Left out: the dataset could not be read here ({type(e).__name__}: {e}).",
                       ""]
  marks = {samples["onset_index"]: "onset", samples["apex_index"]: "apex"}
  name = f"{samples['clip']} ({samples['emotion_of_clip']})"
  plot_frame_strip(samples["frames"], out / "clip_frames.png", f"{name}: frames", marks)
  plot_flow_sequence(samples["flow_sequence"], out / "clip_flow_sequence.png",
                     f"{name}: flow from the first frame", marks=marks)
  plot_flow_channels(samples["apex_flow"], out / "apex_flow_channels.png",
                     ("u", "v", samples["third_channel"]), f"{name}: onset -> apex flow")
  return sections + [
      "## The dataset as loaded (thesis Table 1)", "",
      class_count_table(samples["emotion"], samples["subject"], dataset.get("classes") or "7"), "",
      "## A clip (thesis Fig 1), its flow sequence (Fig 8) and apex flow (Fig 9)", "",
      "![frames](clip_frames.png)", "", "![flow sequence](clip_flow_sequence.png)", "",
      "![apex flow](apex_flow_channels.png)", ""]
