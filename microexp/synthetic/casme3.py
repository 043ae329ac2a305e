"""A synthetic CAS(ME)^3 part A in the official layout, with the real release's quirks.

`<subject>/<folder>/color/<frame>.jpg` (uncropped: the face sits at a random place of a larger
camera frame), `<subject>/<folder>/depth/<frame>.png` (ignored by the reader), and
`cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (`Subject, Filename, Onset, Apex, Offset, AU,
Objective class, emotion`, plus the full sheet's `Expression type`). Faces and motion come from
`microexp.synthetic.casme2` (the class is visible in the onset->apex motion only).

Quirks (`quirks=True`; the meb loader's hand fixes and the paper's description): folder `a` of each
subject holds two expressions; one apex lies outside onset..offset; one apex equals the onset; one
extra row has offset < onset (dropped); one macro-expression row (dropped); one frame missing
inside a clip (a frame drop); AU cells as numbers, with sides (the first happy clip 'L12', the first surprise
'R1+R2') and a full-width comma
('4，7'); emotions in mixed case ('Others').
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from microexp.synthetic import casme2 as synthetic
from microexp.synthetic import megc as synthetic_megc
from microexp.data.emotions import CASME3_EMOTIONS

SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
# CAS(ME)^3 emotion -> the renderer's motion (CASME II / SAMM names).
MOTION = {"happy": "happiness", "sad": "sadness", "others": "other"}
AUS = {"happy": ("12", "L12", "6+12"), "disgust": ("4+9", "4，7"), "fear": ("1+2+4+20",),
       "anger": ("4+7", "4"), "sad": ("1+15",), "surprise": ("1+2", "R1+R2"), "others": ("45",)}
SIDED = {"happy": "L12", "surprise": "R1+R2"}
GAP = 3  # neutral frames between two expressions of one folder


def _canvas(frames: np.ndarray, offset: tuple[int, int], size: tuple[int, int],
            background: np.ndarray) -> np.ndarray:
  """Pastes face frames [T, h, w, 3] at `offset` (y, x) into [T, H, W, 3] camera frames."""
  t, h, w, _ = frames.shape
  out = np.broadcast_to(background, (t, *size, 3)).copy()
  out[:, offset[0]:offset[0] + h, offset[1]:offset[1] + w] = frames
  return out


def write_synthetic_casme3(root, *, num_subjects: int = 4, clips_per_subject: int = 4,
                           image_size: tuple[int, int] = (96, 80),
                           num_frames: tuple[int, int] = (8, 12), seed: int = 0,
                           quirks: bool = True) -> pathlib.Path:
  """Writes a synthetic CAS(ME)^3 part A under `root`; returns root.

  Args:
    num_subjects, clips_per_subject: expressions per subject (>= 2; the first two share folder
      'a').
    image_size: (H, W) of the face; camera frames are 1.8 H x 3.2 W (landscape, uncropped).
    num_frames: inclusive range of expression lengths.
    seed: everything derives from it.
    quirks: the quirks of the module doc.

  The emotions cycle through all seven, offset per subject, so every subject has a spread.
  A `.complete` marker (the arguments) is written last; a matching tree is reused.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  import openpyxl  # pylint: disable=g-import-not-at-top

  root = pathlib.Path(root)
  params = dict(kind="casme3", num_subjects=num_subjects, clips_per_subject=clips_per_subject,
                image_size=list(image_size), num_frames=list(num_frames), seed=seed, quirks=quirks)
  if synthetic_megc._fresh(root, params):  # pylint: disable=protected-access
    return root
  if clips_per_subject < 2:
    raise ValueError("clips_per_subject must be >= 2 (folder 'a' holds two expressions).")
  rng = np.random.default_rng(seed)
  h, w = image_size
  size = (int(h * 1.8), int(w * 3.2))
  wb = openpyxl.Workbook()
  ws = wb.active
  ws.title = "label"
  ws.append(["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion",
             "Expression type"])
  jpeg = (cv2.IMWRITE_JPEG_QUALITY, 95)
  sided_written = set()
  for s in range(num_subjects):
    subject = f"spNO.{s + 1}"
    face = synthetic.make_face(rng, image_size)
    offset = (int(rng.integers(0, size[0] - h + 1)), int(rng.integers(0, size[1] - w + 1)))
    background = rng.integers(30, 110, 3).astype(np.uint8)
    # Folder 'a' holds expressions 0 and 1; then one folder per expression.
    folders = ["a", "a"] + [chr(ord("b") + k) for k in range(clips_per_subject - 2)]
    next_frame = {}
    for k, folder in enumerate(folders):
      emotion = CASME3_EMOTIONS[(s + k) % len(CASME3_EMOTIONS)]
      t = int(rng.integers(num_frames[0], num_frames[1] + 1))
      frames, apex = synthetic_megc._clip(face, MOTION.get(emotion, emotion), t, rng)  # pylint: disable=protected-access
      frames = _canvas(frames, offset, size, background)
      color = root / subject / folder / "color"
      if folder not in next_frame:
        color.mkdir(parents=True)
        (root / subject / folder / "depth").mkdir()
        next_frame[folder] = int(rng.integers(1, 30))
      else:  # neutral frames between two expressions of the same recording
        neutral = _canvas(np.repeat(np.clip(face.image + 0.5, 0, 255).astype(np.uint8)[None], GAP,
                                    0), offset, size, background)
        for i, frame in enumerate(neutral):
          synthetic_megc._encode(color / f"{next_frame[folder] + i}.jpg", frame, ".jpg", jpeg)  # pylint: disable=protected-access
        next_frame[folder] += GAP
      onset = next_frame[folder]
      for i, frame in enumerate(frames):
        synthetic_megc._encode(color / f"{onset + i}.jpg", frame, ".jpg", jpeg)  # pylint: disable=protected-access
      cv2.imwrite(str(root / subject / folder / "depth" / f"{onset}.png"),
                  np.full((8, 8), 1000, np.uint16))
      next_frame[folder] = onset + t
      apex_cell, aus = onset + apex, AUS[emotion][int(rng.integers(len(AUS[emotion])))]
      if quirks and emotion in SIDED and emotion not in sided_written:
        aus = SIDED[emotion]  # one-sided AUs, on the first clip of these emotions
        sided_written.add(emotion)
      label = emotion
      if quirks and s == 0 and k == 0:
        apex_cell = onset + t + 5  # outside onset..offset -> midpoint
      if quirks and s == 1 and k == 0:
        apex_cell = onset  # apex == onset -> midpoint
      if quirks and s == 0 and k == 1:
        # A frame drop inside the clip (never the onset, apex or offset).
        drop = next(i for i in range(1, t - 1) if i != apex)
        (color / f"{onset + drop}.jpg").unlink()
      if quirks and emotion == "others":
        label = "Others"
      ws.append([subject, folder, onset, apex_cell, onset + t - 1,
                 int(aus) if quirks and aus.isdigit() else aus, "", label, "Micro-expression"])
  if quirks:
    ws.append(["spNO.1", "a", 40, 41, 12, "12", "", "happy", "Micro-expression"])  # offset < onset
    ws.append(["spNO.1", "b", 2, 4, 30, "12+25", "", "happy", "Macro-expression"])
  wb.save(root / SHEET)
  (root / synthetic_megc.COMPLETE_MARKER).write_text(json.dumps(params))
  return root
