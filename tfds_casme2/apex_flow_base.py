"""The apex-flow TFDS builder shared by CAS(ME)^3, DFME, SAMM and SMIC-HS (see docs/tfds.md).

A dataset builder lists its clips (`_list_clips(manual_dir) -> (clips, report)`, each a
`FlowClip`: a stable key, the onset and apex frame files, metadata features); this base class
reads each onset/apex pair, aligns the face on the onset frame (`microexp.vision.align`, the config's
`alignment`: 'landmarks' = dlib landmarks -> eye-line rotation -> one box; 'box' = Haar / skin box;
'none' = the whole frame; one transform for onset and apex, the central box when no face is found)
and stores the onset->apex flow (`microexp.vision.flow.apex_flow_image`, as the CASME II builder) with the
two face crops and the alignment used per clip. Configs are named like CASME II's apex_flow configs
('apex_flow', 'apex_flow_dis_strain_28'); an alignment other than the builder's default
(`default_alignment`: 'landmarks' for uncropped frames, 'none' for face crops) adds '_align<name>'.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import pathlib
from typing import Any, Iterator

from absl import logging
import cv2
import numpy as np
import tensorflow_datasets as tfds

from microexp.vision import align
from microexp.vision import face as face_lib
from microexp.vision import flow
from microexp.data import casme2
from tfds_casme2 import builder_base


@dataclasses.dataclass(eq=False)
class ApexFlowConfig(tfds.core.BuilderConfig):
  """Onset->apex flow at `image_size`; `flow_kwargs` as sorted (name, value) pairs; `alignment`
  one of `microexp.vision.align.ALIGNMENTS`, or None for the builder's default (`default_alignment`)."""

  image_size: int = 224
  flow_method: str = "farneback"
  third_channel: str = "magnitude"
  flow_kwargs: tuple[tuple[str, Any], ...] = ()
  alignment: str | None = None


def default_alignment(builder_cls) -> str:
  """'landmarks' for uncropped frames (the face is a small part of the frame and head roll would
  become flow), 'none' for frames that are already face crops (SMIC-HS)."""
  return "landmarks" if builder_cls.CROP_FACES else "none"


def config_name(image_size: int, flow_method: str, third_channel: str,
                flow_kwargs: dict[str, Any] | None = None, alignment: str | None = None) -> str:
  """'apex_flow' for (224, farneback, magnitude), else 'apex_flow_<method>_<third>_<size>[_kw..]';
  then '_align<alignment>' unless it is None (the builder's default)."""
  extras = [f"{k}{v}" for k, v in sorted((flow_kwargs or {}).items())]
  suffix = [f"align{alignment}"] if alignment else []
  if (image_size, flow_method, third_channel) == (224, "farneback", "magnitude") and not extras:
    return "_".join(["apex_flow"] + suffix)
  return "_".join(["apex_flow", flow_method, third_channel, str(image_size)] + extras + suffix)


def _new_config(dataset: str, image_size: int, flow_method: str, third_channel: str,
                flow_kwargs: dict[str, Any] | None, alignment: str | None = None,
                ) -> ApexFlowConfig:
  if flow_method not in flow.METHODS:
    raise ValueError(f"Unknown flow method {flow_method!r}; choose one of {sorted(flow.METHODS)}.")
  if third_channel not in flow.THIRD_CHANNELS:
    raise ValueError(f"Unknown third channel {third_channel!r}; choose one of "
                     f"{flow.THIRD_CHANNELS}.")
  if int(image_size) < 8:
    raise ValueError(f"image_size must be >= 8, got {image_size}.")
  if alignment is not None and alignment not in align.ALIGNMENTS:
    raise ValueError(f"Unknown alignment {alignment!r}; choose one of {align.ALIGNMENTS}.")
  name = config_name(int(image_size), flow_method, third_channel, flow_kwargs, alignment)
  aligned = f", alignment {alignment!r}" if alignment else ""
  return ApexFlowConfig(
      name=name, description=f"{dataset}: onset->apex {flow_method} flow (u, v, {third_channel}) "
      f"and the onset/apex face crops, {image_size}x{image_size}{aligned}.",
      image_size=int(image_size), flow_method=flow_method, third_channel=third_channel,
      flow_kwargs=tuple(sorted((flow_kwargs or {}).items())), alignment=alignment)


def builder_configs(dataset: str) -> list[ApexFlowConfig]:
  """'apex_flow' first (the default), then every method x third channel at 224, 48, 28."""
  configs = [_new_config(dataset, 224, "farneback", "magnitude", None)]
  for method in sorted(flow.METHODS):
    for third in flow.THIRD_CHANNELS:
      for size in (224, 48, 28):
        if (size, method, third) != (224, "farneback", "magnitude"):
          configs.append(_new_config(dataset, size, method, third, None))
  return configs


def make_config(builder_cls, *, image_size: int | None = None, flow_method: str | None = None,
                third_channel: str | None = None, flow_kwargs: dict[str, Any] | None = None,
                alignment: str | None = None) -> ApexFlowConfig:
  """The registered config of `builder_cls` with these parameters, else a new custom one.

  alignment: None or the builder's default -> the registered (default-aligned) configs; any other
  name is part of the config name, so builds with different alignments never share a cache.
  """
  params = (int(image_size or 224), flow_method or "farneback", third_channel or "magnitude")
  if alignment == default_alignment(builder_cls):
    alignment = None
  name = config_name(*params, flow_kwargs, alignment)
  for config in builder_cls.BUILDER_CONFIGS:
    if config.name == name:
      return config
  return _new_config(builder_cls.DATASET_TITLE, *params, flow_kwargs, alignment)


@dataclasses.dataclass(frozen=True)
class FlowClip:
  """One clip for the builder: `key` unique and stable; `meta` the metadata features' values."""

  key: str
  onset_path: pathlib.Path
  apex_path: pathlib.Path
  meta: dict[str, Any]


def pair_flow(onset_path, apex_path, *, alignment: str, size: int, method: str,
              third_channel: str, **flow_kwargs) -> dict[str, Any]:
  """One clip's stored values; the face aligned on the onset (`microexp.vision.align.align_for_flow`).

  Returns:
    {'flow': float32 [S, S, 3], 'onset', 'apex': uint8 [S, S, 3] RGB face crops, 'alignment':
    the method that ran ('landmarks', or 'box' when no landmarks were found), 'alignment_angle':
    degrees, 'alignment_centre': float32 [2], 'face_box': int32 [4] (x, y, w, h in the frame on
    disk rotated by the angle about the centre; the whole frame for 'none'), 'face_detector': str}.
  """
  pair = casme2.read_frames([onset_path, apex_path])
  faces, aligned = align.align_for_flow(pair, alignment)
  gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in faces]
  result = flow.apex_flow_image(gray[0], gray[1], method=method, third_channel=third_channel,
                                size=size, **flow_kwargs)
  rgb = face_lib.crop(faces, (0, 0, faces.shape[2], faces.shape[1]), size)
  return dict(flow=result.astype(np.float32), onset=rgb[0], apex=rgb[1],
              alignment=aligned.method, alignment_angle=np.float32(aligned.angle),
              alignment_centre=np.asarray(aligned.centre, np.float32),
              face_box=np.asarray(aligned.face.box, np.int32), face_detector=aligned.face.detector)


def found_report(methods: dict[tuple[str, str], int], asked: str) -> str:
  """'alignment 'landmarks': landmarks 40/42 (dlib-hog 38, dlib-in-skin 2), box 2/42 (center 2)'
  from clip counts per (method that ran, detector)."""
  total = sum(methods.values())
  parts = []
  for method in align.ALIGNMENTS:
    detectors = {d: n for (m, d), n in sorted(methods.items()) if m == method}
    if detectors:
      inner = ", ".join(f"{d} {n}" for d, n in detectors.items())
      parts.append(f"{method} {sum(detectors.values())}/{total} ({inner})")
  return f"alignment {asked!r}: " + ", ".join(parts)


class ApexFlowBuilder(builder_base.ManualBuilder, skip_registration=True):
  """Base of the apex-flow builders; a subclass sets the class attributes and `_list_clips`."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: apex_flow configs.",
                   "1.1.0": "Face alignment (microexp.vision.align): landmarks by default on uncropped "
                            "frames, the config's `alignment`; per-clip alignment features."}
  DATASET_TITLE = ""  # 'CAS(ME)^3 part A'
  EMOTIONS: tuple[str, ...] = ()
  CROP_FACES = True  # frames on disk are uncropped: default alignment 'landmarks', else 'none'
  HOMEPAGE = ""
  CITATION = ""

  @abc.abstractmethod
  def _list_clips(self, manual_dir: pathlib.Path) -> tuple[list[FlowClip], list[str]]:
    """The dataset's clips and the reader's report."""

  def _extra_features(self) -> dict[str, Any]:
    """Dataset-specific metadata features (their values come in `FlowClip.meta`)."""
    return {}

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    cfg = self.builder_config
    features = dict(
        subject=tfds.features.Text(doc="The dataset's own subject id."),
        filename=tfds.features.Text(doc="Clip folder name as in the sheet."),
        clip=tfds.features.Text(doc="Clip id, unique within the subject."),
        **builder_base.frame_features(),
        fps=tfds.features.Scalar(np.float32, doc="Frame rate of the recording."),
        action_units=tfds.features.Text(doc="The sheet's AU tokens joined by '+'."),
        emotion=tfds.features.ClassLabel(names=self.EMOTIONS),
        alignment=tfds.features.Text(
            doc="Alignment that ran (microexp.vision.align): 'landmarks', 'box' (also the fallback when "
            "no landmarks were found) or 'none'."),
        alignment_angle=tfds.features.Scalar(
            np.float32, doc="Eye-line rotation (degrees, counter-clockwise) before the crop."),
        alignment_centre=tfds.features.Tensor(
            shape=(2,), dtype=np.float32, doc="Rotation centre (x, y) px: the eye midpoint."),
        face_box=tfds.features.Tensor(
            shape=(4,), dtype=np.int32,
            doc="Face box (x, y, w, h) in the frame on disk rotated by alignment_angle."),
        face_detector=tfds.features.Text(
            doc="What found the face: 'dlib-hog', 'dlib-in-haar', 'dlib-in-skin' (landmarks), "
            "'haar', 'skin', 'center' (box) or 'none' (whole frame)."),
        flow=builder_base.apex_flow_feature(cfg),
        onset=tfds.features.Image(shape=(s, s, 3), doc="Onset face crop, RGB."),
        apex=tfds.features.Image(shape=(s, s, 3), doc="Apex face crop, RGB."),
        **self._extra_features())
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features), supervised_keys=None,
        homepage=self.HOMEPAGE, citation=self.CITATION)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = pathlib.Path(dl_manager.manual_dir)
    try:
      clips, report = self._list_clips(root)
    except FileNotFoundError as e:
      raise self.layout_error(e) from e
    logging.info("%s at %s: %d clips kept; report:", self.DATASET_TITLE, root, len(clips))
    for line in report:
      logging.info("  %s", line)
    return {"train": self._generate_examples(clips)}

  def _generate_examples(self, clips) -> Iterator[tuple[str, dict[str, Any]]]:
    cfg = self.builder_config
    asked = cfg.alignment or default_alignment(type(self))
    fn = functools.partial(pair_flow, alignment=asked, size=cfg.image_size,
                           method=cfg.flow_method, third_channel=cfg.third_channel,
                           **dict(cfg.flow_kwargs))
    workers = self.num_workers(len(clips))
    results = flow.map_clips(fn, ((c.onset_path, c.apex_path) for c in clips), workers=workers)
    found: dict[tuple[str, str], int] = {}
    stored = ("alignment", "alignment_angle", "alignment_centre", "face_box", "face_detector")
    for i, (clip, result) in enumerate(zip(clips, results)):
      key = (result["alignment"], result["face_detector"])
      found[key] = found.get(key, 0) + 1
      if (i + 1) % 50 == 0 or i + 1 == len(clips):
        logging.info("%s %s: %d/%d clips; %s.", self.DATASET_TITLE, cfg.name, i + 1, len(clips),
                     found_report(found, asked))
      yield clip.key, dict(clip.meta, flow=result["flow"], onset=builder_base.png(result["onset"]),
                           apex=builder_base.png(result["apex"]), **{k: result[k] for k in stored})


def clip_meta(clip: casme2.Clip, *, clip_id: str, fps: float, **extra) -> dict[str, Any]:
  """The common metadata features of a reader's `Clip`."""
  r = clip.record
  numbers = clip.frame_numbers or tuple(casme2.frame_number(p) for p in clip.frame_paths)
  return dict(subject=r.subject, filename=r.filename, clip=clip_id,
              onset_frame=numbers[clip.onset_index], apex_frame=numbers[clip.apex_index],
              offset_frame=numbers[clip.offset_index], num_frames=len(numbers), fps=float(fps),
              action_units="+".join(r.action_units), emotion=r.emotion, **extra)


def flow_clip(clip: casme2.Clip, key: str, meta: dict[str, Any]) -> FlowClip:
  return FlowClip(key=key, onset_path=clip.frame_paths[clip.onset_index],
                  apex_path=clip.frame_paths[clip.apex_index], meta=meta)
