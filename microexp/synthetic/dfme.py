"""A synthetic DFME: the three label sheets and `<split>/<Filename>/<frame>.jpg` clip folders.

Sheets `training_full_with_AU.xlsx`, `testA_full_with_AU.xlsx`, `testB_full_with_AU.xlsx` with the
columns `Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Emotion, EmotionId, Fps, AU`;
frames uncropped (the face at a random place of a larger frame). Subjects are disjoint between
splits. The frame folder layout of the real release is not published (docs/data.md): this one is a
plausible layout the reader must find, not a copy of the real one.

Quirks (`quirks=True`): frame rates 500 / 300 / 200 written as numbers, text ('300') and with a
unit ('200fps'); one apex not coded (blank); the first happiness clip's emotion spelled 'Happy'; one EmotionId that
disagrees with the others of its emotion; AU cells in every form the parser knows ('AU4+AU7',
'L12', '12(weak)', 'A1+B4', '4, 7', a lone number); one clip folder with zero-padded frame names.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from microexp.synthetic import casme2 as synthetic
from microexp.synthetic import megc as synthetic_megc
from microexp.data.dfme import SHEETS
from microexp.data.emotions import DFME_EMOTIONS
from microexp.synthetic.casme3 import _canvas

AUS = {"happiness": ("AU6+AU12", "L12", "12(weak)"), "anger": ("4, 7", "4"),
       "contempt": ("R14", "AU14"), "disgust": ("A9+B4", "9+10"), "fear": ("1+2+4+20",),
       "sadness": ("1+15", "AU15"), "surprise": ("1+2", "AU1 + AU2")}
FPS = (500, 300, 200)


def write_synthetic_dfme(root, *, num_subjects: tuple[int, int, int] = (6, 2, 2),
                         clips_per_subject: int = 7, image_size: tuple[int, int] = (96, 80),
                         num_frames: tuple[int, int] = (8, 12), seed: int = 0,
                         quirks: bool = True) -> pathlib.Path:
  """Writes a synthetic DFME under `root`; returns root.

  Args:
    num_subjects: subjects in (train, testA, testB).
    clips_per_subject: clips per subject; emotions cycle through all seven, offset per subject.
    image_size: (H, W) of the face; frames are 1.5 H x 2 W.
    num_frames, seed, quirks: as the other synthetic writers (module doc for the quirks).
  """
  import openpyxl  # pylint: disable=g-import-not-at-top
  import cv2  # pylint: disable=g-import-not-at-top

  if isinstance(num_subjects, int) or len(num_subjects) != 3:
    raise ValueError(f"num_subjects={num_subjects!r}: give the subjects of (train, testA, testB), "
                     "e.g. (6, 2, 2).")
  root = pathlib.Path(root)
  params = dict(kind="dfme", num_subjects=list(num_subjects), clips_per_subject=clips_per_subject,
                image_size=list(image_size), num_frames=list(num_frames), seed=seed, quirks=quirks)
  if synthetic_megc._fresh(root, params):  # pylint: disable=protected-access
    return root
  rng = np.random.default_rng(seed)
  h, w = image_size
  size = (int(h * 1.5), int(w * 2))
  jpeg = (cv2.IMWRITE_JPEG_QUALITY, 95)
  subject_number, happy_written = 0, False
  for (split, sheet), n in zip(SHEETS.items(), num_subjects):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion",
               "EmotionId", "Fps", "AU"])
    for _ in range(n):
      subject_number += 1
      face = synthetic.make_face(rng, image_size)
      offset = (int(rng.integers(0, size[0] - h + 1)), int(rng.integers(0, size[1] - w + 1)))
      background = rng.integers(30, 110, 3).astype(np.uint8)
      for k in range(clips_per_subject):
        emotion = DFME_EMOTIONS[(subject_number + k) % len(DFME_EMOTIONS)]
        t = int(rng.integers(num_frames[0], num_frames[1] + 1))
        frames, apex = synthetic_megc._clip(face, emotion, t, rng)  # pylint: disable=protected-access
        frames = _canvas(frames, offset, size, background)
        filename = f"{subject_number:04d}_{k + 1:02d}"
        folder = root / split / filename
        folder.mkdir(parents=True)
        onset = int(rng.integers(1, 400))
        padded = quirks and subject_number == 1 and k == 1
        for i, frame in enumerate(frames):
          name = f"{onset + i:05d}.jpg" if padded else f"{onset + i}.jpg"
          synthetic_megc._encode(folder / name, frame, ".jpg", jpeg)  # pylint: disable=protected-access
        fps = FPS[(subject_number + k) % 3]
        fps_cell = fps if not quirks else (fps, str(fps), f"{fps}fps")[k % 3]
        aus = AUS[emotion][int(rng.integers(len(AUS[emotion])))]
        aus_cell = int(aus) if quirks and aus.isdigit() else aus
        label, emotion_id = emotion, DFME_EMOTIONS.index(emotion) + 1
        apex_cell = onset + apex
        if quirks and subject_number == 1 and k == 0:
          apex_cell = None  # not coded -> midpoint
        if quirks and emotion == "happiness" and not happy_written:
          label, happy_written = "Happy", True
        if quirks and subject_number == 2 and k == 2:
          emotion_id = 99  # disagrees with the other rows of this emotion
        ws.append([subject_number, filename, onset, apex_cell, onset + t - 1,
                   label.capitalize() if label == emotion else label, emotion_id, fps_cell,
                   aus_cell])
    wb.save(root / sheet)
  (root / synthetic_megc.COMPLETE_MARKER).write_text(json.dumps(params))
  return root
