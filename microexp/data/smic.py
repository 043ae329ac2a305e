"""SMIC-HS: `HS/s<N>/micro/<negative|positive|surprise>/<clip>/reg_image<frame>.bmp`.

SMIC has no annotated apex. The clip runs onset..offset (first..last frame on disk) and the apex
is *spotted*: the frame whose facial motion relative to the onset (mean |flow - median flow|, the
median being head translation) is largest after a 3-frame moving average
(`microexp.vision.spotting.spot` with the onset fixed at the first frame). Subjects are canonical 's01'
(disk: 's1'); clips 's01_ne_01' (disk: 's1_ne_01'). The emotion is the folder name.
"""

from __future__ import annotations

import pathlib
import re

from microexp.vision import spotting
from microexp.data import casme2
from microexp.data import sheets as sheets_lib
from microexp.data.megc_flow import canonical_clip, canonical_subject

SMIC_EMOTIONS = ("negative", "positive", "surprise")
FRAME_PREFIX = "reg_image"


def find_hs_root(root) -> pathlib.Path:
  """`root` itself if it holds s<N>/ folders, else `root/HS` (any case)."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"SMIC root {root} is not a directory.")
  subjects = lambda p: [q for q in p.iterdir() if q.is_dir() and re.fullmatch(r"s\d+", q.name, re.I)]
  if subjects(root):
    return root
  for child in root.iterdir():
    if child.is_dir() and child.name.lower() == "hs" and subjects(child):
      return child
  raise FileNotFoundError(f"No SMIC-HS layout under {root}: expected HS/s<N>/micro/<emotion>/<clip>/"
                          f"{FRAME_PREFIX}<frame>.bmp.")


def spot_apex(frame_paths, *, method: str = "dis", window: int = 3) -> int:
  """Index (into `frame_paths`) of the apex spotted relative to frame 0; see the module doc."""
  frames = casme2.read_frames(frame_paths, grayscale=True)
  faces = spotting.to_gray(frames[..., 0])
  return spotting.spot(faces, method=method, onset=0, window=window).apex


def list_clips(root, *, spot_method: str = "dis") -> tuple[list[casme2.Clip], list[str]]:
  """Lists the SMIC-HS micro-expression clips.

  Args:
    root: the SMIC-HS root (holding `HS/` or the `s<N>/` folders).
    spot_method: flow method for apex spotting.

  Returns:
    (clips sorted by subject and clip, report). `record.subject` 's01', `record.filename`
    's01_ne_01', `record.emotion` the folder's emotion, onset/offset the first/last frame on disk.
  """
  hs = find_hs_root(root)
  clips, report, renamed = [], [], 0
  subject_dirs = sorted((p for p in hs.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name, re.I)),
                        key=lambda p: int(p.name[1:]))
  for subject_dir in subject_dirs:
    micro = next((p for p in subject_dir.iterdir() if p.is_dir() and p.name.lower() == "micro"), None)
    if micro is None:
      report.append(f"{subject_dir}: no micro/ folder; subject has no micro-expressions.")
      continue
    subject = canonical_subject("smic", subject_dir.name)
    for emotion_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
      emotion = emotion_dir.name.lower()
      if emotion not in SMIC_EMOTIONS:
        raise ValueError(f"{emotion_dir}: unknown SMIC emotion folder; expected {SMIC_EMOTIONS}.")
      for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
        frames = sorted(p for p in clip_dir.iterdir() if p.is_file()
                        and p.suffix.lower() in casme2.IMAGE_SUFFIXES)
        numbers = [casme2.frame_number(p) for p in frames]
        if not frames:
          raise FileNotFoundError(f"SMIC clip folder {clip_dir} holds no {FRAME_PREFIX}<frame> images.")
        record = sheets_lib.ClipRecord(
            subject=subject, filename=canonical_clip("smic", clip_dir.name), onset=min(numbers),
            apex=min(numbers), offset=max(numbers), action_units=(), emotion=emotion)
        clip, notes = casme2.resolve_clip(record, clip_dir, FRAME_PREFIX)
        apex_index = spot_apex(clip.frame_paths, method=spot_method)
        clip = casme2.Clip(
            record=sheets_lib.ClipRecord(**{**record.__dict__,
                                              "apex": clip.frame_numbers[apex_index]}),
            frame_paths=clip.frame_paths, onset_index=0, apex_index=apex_index,
            offset_index=clip.offset_index)
        renamed += clip_dir.name != record.filename
        clips.append(clip)
        report.extend(notes)
  if not clips:
    raise FileNotFoundError(f"No SMIC-HS micro-expression clips under {hs}.")
  if renamed:
    report.append(f"{hs}: {renamed} clip id(s) re-padded to the canonical form (s1_ne_01 -> "
                  "s01_ne_01), as in the MEGC2019 CSV.")
  report.append(f"{hs}: {len(clips)} clips, apex spotted for each (no apex in SMIC).")
  return clips, report
