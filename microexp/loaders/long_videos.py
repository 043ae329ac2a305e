"""The long-video spotting datasets of the registry: "casme2_lv" (CAS(ME)^2) and "samm_lv" (SAMM
Long Videos), as streamed flow features per recording (docs/ARCHITECTURE.md, "Long videos").

`load(config.dataset)` returns {'dataset': name, 'videos': [entry, ...]}, one entry per recording
(sorted by subject, video):

  subject str, video str, fps float, num_frames int, k int (flow step, frames),
  features float32 [N, S, S, 3] (row i = flow from frame frames[i] to frames[i] + k; memory-mapped
    from the cache, read-only), frames int [N] (frame numbers as the label sheet counts them),
  intervals [(onset, apex, offset)] int (sheet frame numbers, inclusive), kinds ['micro'|'macro'],
  emotions [MEGC class or ''],
  and for `interval_flow`: frame_files [str], frame_numbers int [T], alignment (dict), work_size
  (h, w), settings (dict).

Features are computed once per recording (`microexp.vision.flow_stream.cache_features`, bounded
memory, atomic, resumable) under `<data_dir>/spotting/<name>-<digest>/` (synthetic:
`<data_dir>/synthetic/<name>-<digest>/spotting-<digest>/`), the digest naming every feature
setting. Fields of config.dataset (`FIELDS`): synthetic, synthetic_kwargs, manual_dir, data_dir,
image_size (S, 28), flow_method ('farneback'), third_channel ('magnitude'), work_width (64),
micro_duration (0.4 s: k = round(fps * micro_duration / 2)), alignment ('box'; 'landmarks' needs
dlib; the central box when nothing is found), chunk_size (rows per write), workers (recordings
computed in parallel processes, 1) and flow_normalization (of `interval_flow`, 'per_clip' like the
MER flow loaders).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
from typing import Any

import numpy as np
from absl import logging

from microexp.data import long_videos as sheets
from microexp.data.emotions import MEGC_CLASSES, SUBSETS
from microexp.loaders import check_fields, field, register, required_manual_dir, resolve_data_dir
from microexp.synthetic import long_videos as synthetic
from microexp.vision import align as align_lib
from microexp.vision import flow as flow_lib
from microexp.vision import flow_stream
from microexp.vision import video as video_lib

FIELDS = ("synthetic", "synthetic_kwargs", "manual_dir", "data_dir", "image_size", "flow_method",
          "third_channel", "work_width", "micro_duration", "alignment", "chunk_size",
          "flow_normalization", "workers")
FPS = {"casme2_lv": 30.0, "samm_lv": 200.0}
TITLES = {"casme2_lv": "CAS(ME)^2", "samm_lv": "SAMM Long Videos"}
WRITERS = {"casme2_lv": synthetic.write_synthetic_casme2_lv,
           "samm_lv": synthetic.write_synthetic_samm_lv}
# Settings whose change makes a new cache (the digest of the cache folder).
_FEATURE_DEFAULTS = dict(image_size=flow_stream.DEFAULT_SIZE, flow_method="farneback",
                         third_channel="magnitude", work_width=flow_stream.DEFAULT_WORK_WIDTH,
                         micro_duration=flow_stream.DEFAULT_MICRO_DURATION, alignment="box")


def _digest(value: Any) -> str:
  return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


def megc_class(emotion: str) -> str:
  """A sheet's emotion cell as a MEGC 3-class name ('' when it is none of them, e.g. 'others')."""
  label = SUBSETS["megc"].mapping.get(str(emotion).strip().lower(), -1)
  return MEGC_CLASSES[label] if label >= 0 else ""


def _frame_number(path: pathlib.Path) -> int:
  numbers = re.findall(r"\d+", path.stem)
  if not numbers:
    raise video_lib.VideoError(f"{path}: no frame number in the file name.")
  return int(numbers[-1])


def _recordings(name: str, root: pathlib.Path) -> list[tuple[str, str, pathlib.Path]]:
  """(subject, video key, frame folder) of every recording under `root`, in the official layout."""
  if name == "casme2_lv":
    base = root / "rawpic"
    if not base.is_dir():
      raise FileNotFoundError(f"{base} does not exist: a CAS(ME)^2 copy holds rawpic/sNN/"
                              "NN_<code><name>/img<N>.jpg (docs/spotting.md).")
    out = []
    for folder in sorted(p for s in base.iterdir() if s.is_dir() for p in s.iterdir()
                         if p.is_dir()):
      match = re.match(r"(\d+)_(\d{4})", folder.name)
      if match is None:
        raise ValueError(f"{folder}: a CAS(ME)^2 video folder is named NN_<4-digit code><name>.")
      out.append((folder.parent.name, f"{int(match.group(1))}_{match.group(2)}", folder))
    return out
  base = root / "SAMM_longvideos"
  if not base.is_dir():
    raise FileNotFoundError(f"{base} does not exist: a SAMM Long Videos copy holds "
                            "SAMM_longvideos/<vid>/<vid>_<NNNN>.jpg (docs/spotting.md).")
  return [(p.name.split("_")[0], p.name, p) for p in sorted(base.iterdir()) if p.is_dir()]


def _read_intervals(name: str, root: pathlib.Path) -> list[sheets.LabelledInterval]:
  if name == "casme2_lv":
    intervals, report = sheets.read_casme_sq(sheets.find_sheet(root, sheets.CASME_SQ_SHEETS))
  else:
    intervals, report = sheets.read_samm_long(sheets.find_sheet(root, [sheets.SAMM_LONG_SHEET]))
  for line in report:
    logging.info("%s: %s", TITLES[name], line)
  return intervals


def _root_and_cache(dataset_config, name: str, settings: dict) -> tuple[pathlib.Path, pathlib.Path]:
  data_dir = resolve_data_dir(dataset_config)
  if field(dataset_config, "synthetic", False):
    kwargs = dict(field(dataset_config, "synthetic_kwargs", {}))
    digest = _digest(kwargs)
    root = WRITERS[name](data_dir / "manual" / f"synthetic_{name}-{digest}", **kwargs)
    return root, data_dir / "synthetic" / f"{name}-{digest}" / f"spotting-{_digest(settings)}"
  manual_dir = required_manual_dir(dataset_config, f"{TITLES[name]} copy (docs/spotting.md)")
  root = pathlib.Path(manual_dir).expanduser()
  if not root.is_dir():
    raise FileNotFoundError(f"{TITLES[name]} manual_dir {root} does not exist.")
  key = _digest(dict(settings, root=os.fspath(root.resolve())))
  return root, data_dir / "spotting" / f"{name}-{key}"


def load(dataset_config, name: str) -> dict[str, Any]:
  """`config.dataset` -> {'dataset': name, 'videos': [...]} (module doc)."""
  check_fields(dataset_config, name, FIELDS)
  settings = {k: field(dataset_config, k, v) for k, v in _FEATURE_DEFAULTS.items()}
  normalization = flow_lib.flow_normalization(dataset_config)
  if settings["alignment"] not in align_lib.ALIGNMENTS:
    raise ValueError(f"config.dataset.alignment={settings['alignment']!r}; choose one of "
                     f"{align_lib.ALIGNMENTS}.")
  fps = float(dict(field(dataset_config, "synthetic_kwargs", {})).get("fps", FPS[name])
              if field(dataset_config, "synthetic", False) else FPS[name])
  k = flow_stream.flow_step(fps, float(settings["micro_duration"]))
  root, cache = _root_and_cache(dataset_config, name, settings)
  intervals = _read_intervals(name, root)
  by_video: dict[str, list[sheets.LabelledInterval]] = {}
  for i in intervals:
    by_video.setdefault(i.video, []).append(i)
  recordings = []
  for subject, video, folder in _recordings(name, root):
    files = video_lib.list_frame_files(folder)
    numbers = [_frame_number(p) for p in files]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1}) if len(set(numbers)) < len(
        numbers) else []
    if repeated:
      raise video_lib.VideoError(f"{folder}: frame numbers {repeated[:5]} appear in more than one "
                                 "file name; keep one file per frame.")
    recordings.append((subject, video, files, numbers))
  options = dict(fps=fps, k=k, settings=settings, size=int(settings["image_size"]),
                 work_width=int(settings["work_width"]), method=settings["flow_method"],
                 third_channel=settings["third_channel"], alignment=settings["alignment"],
                 chunk=int(field(dataset_config, "chunk_size", flow_stream.DEFAULT_CHUNK)))
  todo = [(cache / video, [os.fspath(p) for p in files], numbers, options)
          for _, video, files, numbers in recordings
          if not flow_stream.is_cached(cache / video, settings)]
  if todo:
    logging.info("%s: computing the features of %d of %d recordings into %s ...", TITLES[name],
                 len(todo), len(recordings), cache)
  for _ in flow_lib.map_clips(_cache_recording, todo, workers=int(field(dataset_config, "workers",
                                                                         1))):
    pass
  videos = []
  for subject, video, files, numbers in recordings:
    meta = json.loads((cache / f"{video}.json").read_text())
    coded = []
    for i in sorted(by_video.pop(video, []), key=lambda i: i.onset):
      if numbers[0] <= i.onset <= i.apex <= i.offset <= numbers[-1]:
        coded.append(i)
      else:
        logging.warning("%s: %s interval (%d, %d, %d) is not inside its frames %d..%d with onset "
                        "<= apex <= offset; left out.", TITLES[name], video, i.onset, i.apex,
                        i.offset, numbers[0], numbers[-1])
    videos.append(dict(
        subject=coded[0].subject if coded else subject, video=video, fps=fps,
        num_frames=len(files), k=k,
        features=np.load(cache / f"{video}.npy", mmap_mode="r"),
        frames=np.asarray(meta["frames"], np.int64),
        intervals=[(i.onset, i.apex, i.offset) for i in coded],
        kinds=[i.kind for i in coded], emotions=[megc_class(i.emotion) for i in coded],
        frame_files=[os.fspath(p) for p in files], frame_numbers=np.asarray(numbers, np.int64),
        alignment=meta["alignment"], work_size=tuple(meta["work_size"]),
        settings=dict(settings, flow_normalization=normalization)))
  for video in sorted(by_video):
    logging.warning("%s: %d coded intervals of video %s have no frame folder; left out.",
                    TITLES[name], len(by_video[video]), video)
  videos.sort(key=lambda v: (v["subject"], v["video"]))
  logging.info("%s: %d recordings of %d subjects, %d coded intervals, k=%d, features %s.",
               TITLES[name], len(videos), len({v["subject"] for v in videos}),
               sum(len(v["intervals"]) for v in videos), k, cache)
  return {"dataset": name, "videos": videos}


def _cache_recording(stem, files, numbers, options) -> None:
  """One recording's features (`flow_stream.cache_features`), in a worker process of `load`."""
  flow_stream.cache_features(stem, flow_stream.iter_frame_files(files), numbers, **options)


@register("casme2_lv")
def load_casme2_lv(dataset_config) -> dict[str, Any]:
  return load(dataset_config, "casme2_lv")


@register("samm_lv")
def load_samm_lv(dataset_config) -> dict[str, Any]:
  return load(dataset_config, "samm_lv")


def interval_flow(video_entry: dict[str, Any], onset: int, apex: int) -> np.ndarray:
  """Onset -> apex flow of a (spotted) interval, for a recogniser: float32 [S, S, 3].

  Reads just those two frames (sheet frame numbers) from disk, aligns them with the recording's
  alignment at its work size (as the stream did), and returns the flow image normalised like the
  MER flow loaders (`settings['flow_normalization']`)."""
  numbers = np.asarray(video_entry["frame_numbers"])
  paths = []
  for frame in (onset, apex):
    where = np.flatnonzero(numbers == int(frame))
    if not len(where):
      raise ValueError(f"{video_entry['video']}: no frame {frame} (frames {numbers[0]}.."
                       f"{numbers[-1]}).")
    paths.append(video_entry["frame_files"][int(where[0])])
  alignment = flow_stream.alignment_from_json(video_entry["alignment"])
  settings = video_entry["settings"]
  prev, next = (flow_stream.reduce_frame(f, alignment, tuple(video_entry["work_size"]))
                for f in flow_stream.iter_frame_files(paths))
  image = flow_stream.pair_feature(prev, next, size=int(settings["image_size"]),
                                   method=settings["flow_method"],
                                   third_channel=settings["third_channel"])
  return flow_lib.normalize_flow(image, settings["flow_normalization"])
