"""Synthetic SAMM, SMIC-HS and precomputed MEGC2019 flow in their official layouts, with quirks.

Faces and motion come from `microexp.synthetic.casme2` (`make_face`, `render_clip`): the MEGC class
is visible in the onset->apex motion only. Layouts and quirks mirror the real releases (see
docs/megc.md):
- SAMM: `SAMM_Micro_FACS_Codes_v2.xlsx` with title rows above the header, numeric subject cells,
  an uncoded apex (-1), a macro-expression row, an 'Other' clip; frames
  `<subject>/<Filename>/<subject>_<frame:05d>.jpg`.
- SMIC-HS: `HS/s<N>/micro/<emotion>/s<N>_<ne|po|sur>_<k>/reg_image<frame>.bmp`, unpadded ids, a
  subject without a micro/ folder.
- precomputed flow: 28x28 PNGs (R=u, G=v, B=strain, per-channel min-max), `<subject>_<clip> .png`
  (space before the suffix), CSV `dataset,sub,filename_o,label,...` with SAMM subjects unpadded
  ('6') and SMIC ids unpadded ('s1', 's1_ne_01'), plus per-subject pre-split copies
  `<subject>/u_train|u_test/<label>/`.
Every writer is deterministic in `seed` and writes a `.complete` marker last.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np

from microexp.synthetic import casme2 as synthetic
from microexp.synthetic import megc_hard as synthetic_hard
from microexp.data.emotions import MEGC_CLASSES

COMPLETE_MARKER = synthetic.COMPLETE_MARKER
# (width, height) of the apex face crops of the HTNet release (combined_datasets_whole/).
FACE_CROP_SIZE = (224, 224)
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
SAMM_SUBJECTS = (6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 26, 28, 30,
                 31, 32, 33, 34, 35, 36, 37)
SMIC_SUBJECTS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)

# SAMM emotion per MEGC class (negative is drawn from its list); SMIC negative likewise.
_SAMM_BY_CLASS = {"negative": ("anger", "contempt", "disgust", "fear", "sadness"),
                  "positive": ("happiness",), "surprise": ("surprise",)}
# Synthetic motion of SAMM emotions absent from CASME II's: anger lowers the brows (AU4),
# contempt raises one lip corner (R14/R12).
_EXTRA_MOTIONS = {
    "anger": synthetic.EMOTION_MOTIONS["disgust"][:2],
    "contempt": [("mouth_corner_r", 0.13, 0.5, -1.0)],
}
# SAMM's 'Action Units' cell per emotion: the AUs its synthetic motion moves (the first of
# synthetic.EMOTION_AUS; anger AU4+AU7, contempt R14), so that the AU task can learn them.
_SAMM_AUS = {**{e: aus[0] for e, aus in synthetic.EMOTION_AUS.items()},
             "happiness": "6+12", "anger": "4+7", "contempt": "R14", "other": "4+7"}
_SMIC_NEGATIVE = ("disgust", "sadness", "fear", "repression")
_SMIC_SHORT = {"negative": "ne", "positive": "po", "surprise": "sur"}


def _fresh(root: pathlib.Path, params: dict) -> bool:
  """True if `root` holds a complete tree written with `params`.

  Otherwise empties `root` — only if it is absent, empty or one of ours (has a marker, possibly
  stale) — so that a user's folder is never deleted.
  """
  if synthetic.marker_matches(root, params):
    return True
  if (root / COMPLETE_MARKER).is_file():
    shutil.rmtree(root)
  elif root.is_dir() and any(root.iterdir()):
    raise FileExistsError(f"{root} is not empty and is not a synthetic dataset written here "
                          f"(no {COMPLETE_MARKER}); choose an empty folder.")
  root.mkdir(parents=True, exist_ok=True)
  return False


def _clip(face, emotion: str, num_frames: int, rng) -> tuple[np.ndarray, int]:
  """Renders `emotion` (CASME II, SAMM or 'other'); returns (frames [T, H, W, 3] uint8, apex)."""
  apex = int(rng.integers(max(2, int(0.3 * num_frames)), max(3, int(0.6 * num_frames)) + 1))
  blobs = _EXTRA_MOTIONS.get(emotion)
  name = {"other": "others"}.get(emotion, emotion)
  frames = synthetic.render_clip(face, name, num_frames, apex, float(rng.uniform(0.8, 1.2)), rng,
                                 blobs=blobs)
  return frames, apex


def _class_plan(rng, subjects: int, clips: int) -> list[list[str]]:
  """MEGC class per clip per subject: round-robin so every subject has every class."""
  plan = []
  for s in range(subjects):
    classes = [MEGC_CLASSES[(s + k) % 3] for k in range(clips)]
    rng.shuffle(classes)
    plan.append(classes)
  return plan


def _encode(path: pathlib.Path, rgb: np.ndarray, suffix: str, params=()) -> None:
  import cv2  # pylint: disable=g-import-not-at-top
  ok, data = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
  assert ok, path
  data.tofile(path)


def write_synthetic_samm(root, *, num_subjects: int = 4, clips_per_subject: int = 4,
                         image_size: tuple[int, int] = (96, 80),
                         num_frames: tuple[int, int] = (8, 12), seed: int = 0,
                         quirks: bool = True) -> pathlib.Path:
  """Writes a synthetic SAMM (sheet + frame folders) under `root`; returns root.

  With `quirks`, subject cells are numbers, the first clip's apex is -1 (spotted by the reader),
  and two extra rows are added: an 'Other' clip (no MEGC class) and a 'Macro' row (dropped).
  """
  import openpyxl  # pylint: disable=g-import-not-at-top
  import cv2  # pylint: disable=g-import-not-at-top

  root = pathlib.Path(root)
  params = dict(kind="samm", num_subjects=num_subjects, clips_per_subject=clips_per_subject,
                image_size=list(image_size), num_frames=list(num_frames), seed=seed, quirks=quirks,
                aus="per_emotion")
  if _fresh(root, params):
    return root
  if num_subjects > len(SAMM_SUBJECTS):
    raise ValueError(f"num_subjects {num_subjects} > {len(SAMM_SUBJECTS)} SAMM subjects.")
  rng = np.random.default_rng(seed)
  wb = openpyxl.Workbook()
  ws = wb.active
  ws.title = "FACS_Codes"
  ws.append(["SAMM Micro-Movement Dataset: FACS codes (synthetic)"])
  ws.append(["Moi Hoon Yap et al. -- title rows above the header, as in the official sheet"])
  ws.append([])
  ws.append(["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
             "Duration", "Type", "Action Units", "Estimated Emotion", "Objective Classes",
             "Notes"])
  for s, classes in enumerate(_class_plan(rng, num_subjects, clips_per_subject)):
    number = SAMM_SUBJECTS[s]
    subject = f"{number:03d}"
    face = synthetic.make_face(rng, image_size)
    emotions = [str(rng.choice(_SAMM_BY_CLASS[c])) for c in classes]
    kinds = ["Micro - 1/2"] * len(emotions)
    if quirks and s == 0:
      emotions.append("other")
      kinds.append("Micro - 1/2")
      emotions.append("happiness")
      kinds.append("Macro")
    for k, (emotion, kind) in enumerate(zip(emotions, kinds)):
      filename = f"{subject}_{k + 1}_{int(rng.integers(1, 9))}"
      t = int(rng.integers(num_frames[0], num_frames[1] + 1))
      frames, apex = _clip(face, emotion, t, rng)
      start = int(rng.integers(1000, 9000))
      folder = root / subject / filename
      folder.mkdir(parents=True)
      for i, frame in enumerate(frames):
        _encode(folder / f"{subject}_{start + i:05d}.jpg", frame, ".jpg",
                (cv2.IMWRITE_JPEG_QUALITY, 95))
      apex_cell = -1 if quirks and s == 0 and k == 0 else start + apex
      ws.append([number if quirks else subject, filename, k + 1, start, apex_cell,
                 start + t - 1, t, kind, _SAMM_AUS[emotion], emotion.capitalize(), "", None])
  wb.save(root / SAMM_SHEET)
  (root / COMPLETE_MARKER).write_text(json.dumps(params))
  return root


def write_synthetic_smic(root, *, num_subjects: int = 3, clips_per_subject: int = 4,
                         image_size: tuple[int, int] = (96, 80),
                         num_frames: tuple[int, int] = (8, 12), seed: int = 0,
                         quirks: bool = True) -> pathlib.Path:
  """Writes a synthetic SMIC-HS (`HS/s<N>/micro/<emotion>/<clip>/reg_image<frame>.bmp`); returns root.

  With `quirks`, one extra subject folder has no micro/ folder (skipped and reported).
  """
  root = pathlib.Path(root)
  params = dict(kind="smic", num_subjects=num_subjects, clips_per_subject=clips_per_subject,
                image_size=list(image_size), num_frames=list(num_frames), seed=seed, quirks=quirks)
  if _fresh(root, params):
    return root
  if num_subjects > len(SMIC_SUBJECTS) - 1:
    raise ValueError(f"num_subjects {num_subjects} > {len(SMIC_SUBJECTS) - 1}.")
  rng = np.random.default_rng(seed + 1)
  for s, classes in enumerate(_class_plan(rng, num_subjects, clips_per_subject)):
    number = SMIC_SUBJECTS[s]
    face = synthetic.make_face(rng, image_size)
    counts = dict.fromkeys(MEGC_CLASSES, 0)
    for megc in classes:
      counts[megc] += 1
      emotion = {"positive": "happiness", "surprise": "surprise"}.get(megc) or str(
          rng.choice(_SMIC_NEGATIVE))
      t = int(rng.integers(num_frames[0], num_frames[1] + 1))
      frames, _ = _clip(face, emotion, t, rng)
      folder = (root / "HS" / f"s{number}" / "micro" / megc /
                f"s{number}_{_SMIC_SHORT[megc]}_{counts[megc]:02d}")
      folder.mkdir(parents=True)
      start = int(rng.integers(10000, 90000))
      for i, frame in enumerate(frames):
        _encode(folder / f"reg_image{start + i:06d}.bmp", frame, ".bmp")
  if quirks:
    (root / "HS" / f"s{SMIC_SUBJECTS[num_subjects]}" / "non_micro").mkdir(parents=True)
  (root / COMPLETE_MARKER).write_text(json.dumps(params))
  return root


def write_synthetic_megc(root, *, num_subjects: tuple[int, int, int] = (4, 4, 3),
                         clips_per_subject: int = 4, image_size: tuple[int, int] = (96, 80),
                         num_frames: tuple[int, int] = (8, 12), seed: int = 0) -> pathlib.Path:
  """Writes `root/CASME2`, `root/SAMM`, `root/SMIC` (the composite's raw layouts); returns root.

  num_subjects: (CASME II, SAMM, SMIC). CASME II comes from `write_synthetic_casme2` (with its
  quirks); 'others' clips are included so that the composite's dropping of them is exercised.
  """
  root = pathlib.Path(root)
  synthetic.write_synthetic_casme2(
      root / "CASME2", num_subjects=num_subjects[0], clips_per_subject=clips_per_subject,
      image_size=image_size, num_frames=num_frames, seed=seed,
      emotions={"happiness": 0.3, "surprise": 0.3, "disgust": 0.15, "repression": 0.15,
                "others": 0.1})
  write_synthetic_samm(root / "SAMM", num_subjects=num_subjects[1],
                       clips_per_subject=clips_per_subject, image_size=image_size,
                       num_frames=num_frames, seed=seed)
  write_synthetic_smic(root / "SMIC", num_subjects=num_subjects[2],
                       clips_per_subject=clips_per_subject, image_size=image_size,
                       num_frames=num_frames, seed=seed)
  return root


def _minmax_uint8(x: np.ndarray) -> np.ndarray:
  """Per-channel min-max to 0..255, as the release does. x: [H, W, C] float -> uint8."""
  lo = x.min(axis=(0, 1), keepdims=True)
  hi = x.max(axis=(0, 1), keepdims=True)
  return np.round(255 * (x - lo) / np.maximum(hi - lo, 1e-6)).astype(np.uint8)


def write_synthetic_megc_flow(root, *, num_subjects: tuple[int, int, int] = (4, 4, 3),
                              clips_per_subject: int | None = None,
                              image_size: tuple[int, int] = (96, 80), size: int = 28,
                              seed: int = 0, quirks: bool = True, face_crops: bool = True,
                              difficulty: str = "easy",
                              hard_params: dict | None = None) -> pathlib.Path:
  """Writes a synthetic precomputed MEGC2019 flow release under `root`; returns root.

  Files: `root/combined_3_class2_for_optical_flow.csv`, the unsplit PNGs in
  `root/STSNet_whole_norm_u_v_os/` and, with `face_crops`, the 224x224 apex face crops the HTNet
  release ships, `root/combined_datasets_whole/<imagename>.jpg` (the CSV's `imagename` column; the
  crop has the flow's geometry: the whole rendered frame). With `quirks` the names carry a space
  before `.png`, the CSV writes SAMM subjects unpadded ('6') and SMIC ids unpadded ('s1',
  's1_ne_01'), and `root/<subject>/u_train|u_test/<label>/` pre-split copies are added.

  difficulty: 'easy' (every subject has every class, round-robin, one motion per class: UF1 ~0.99)
    or 'hard' (`microexp.synthetic.megc_hard`: real per-dataset class shares, subject styles, weak
    negatives, head motion, label noise; `hard_params` overrides fields of `synthetic_hard.HARD`).
  clips_per_subject: clips of every subject ('easy', default 6); for 'hard' the mean clips per
    subject of every dataset (default: the real means, 6.0 / 4.75 / 10.25).
  """
  import cv2  # pylint: disable=g-import-not-at-top
  from microexp.vision import flow as flow_lib  # pylint: disable=g-import-not-at-top

  if difficulty not in ("easy", "hard"):
    raise ValueError(f"difficulty must be 'easy' or 'hard', got {difficulty!r}.")
  hard = {**synthetic_hard.HARD, **(hard_params or {})}
  unknown = sorted(set(hard) - set(synthetic_hard.HARD))
  if unknown:
    raise ValueError(f"hard_params: unknown field(s) {unknown}; known: {sorted(synthetic_hard.HARD)}.")
  root = pathlib.Path(root)
  params = dict(kind="megc_flow", num_subjects=list(num_subjects),
                clips_per_subject=clips_per_subject, image_size=list(image_size), size=size,
                seed=seed, quirks=quirks, face_crops=face_crops, difficulty=difficulty,
                hard=hard if difficulty == "hard" else None)
  if _fresh(root, params):
    return root
  rng = np.random.default_rng(seed + 2)
  images = root / "STSNet_whole_norm_u_v_os"
  images.mkdir()
  crops = root / "combined_datasets_whole"
  if face_crops:
    crops.mkdir()
  rows = []
  for dataset, n in zip(("casme2", "samm", "smic"), num_subjects):
    if difficulty == "easy":
      plan = _class_plan(rng, n, 6 if clips_per_subject is None else clips_per_subject)
    else:
      plan = synthetic_hard.class_plan(rng, dataset, n, clips_per_subject)
    for s, classes in enumerate(plan):
      face = synthetic.make_face(rng, image_size)
      style = synthetic_hard.subject_style(rng, hard) if difficulty == "hard" else None
      if dataset == "casme2":
        subject, csv_subject = f"sub{s + 1:02d}", f"sub{s + 1:02d}"
      elif dataset == "samm":
        subject, csv_subject = f"{SAMM_SUBJECTS[s]:03d}", str(SAMM_SUBJECTS[s])
      else:
        subject, csv_subject = f"s{SMIC_SUBJECTS[s]:02d}", f"s{SMIC_SUBJECTS[s]}"
      if not quirks:
        csv_subject = subject
      for k, megc in enumerate(classes):
        label = MEGC_CLASSES.index(megc)
        if style is None:
          emotion = {"positive": "happiness", "surprise": "surprise"}.get(megc) or str(
              rng.choice(_SMIC_NEGATIVE))
          frames, apex = _clip(face, emotion, 10, rng)
          onset, apex_frame = frames[0], frames[apex]
        else:
          emotion = {"positive": "happiness", "surprise": "surprise"}.get(megc) or str(
              rng.choice(synthetic_hard.NEGATIVE_EMOTIONS))
          blobs = _EXTRA_MOTIONS.get(emotion) or synthetic.EMOTION_MOTIONS[emotion]
          onset, apex_frame = synthetic_hard.render_pair(
              face, synthetic_hard.styled_blobs(blobs, style, emotion, hard), megc, style, rng,
              hard)
          label = synthetic_hard.noisy_label(rng, label, hard)
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (onset, apex_frame)]
        uvs = flow_lib.apex_flow_image(*gray, method="farneback", third_channel="strain",
                                       size=size)
        clip = {"casme2": f"EP{k + 1:02d}_{s + 1:02d}", "samm": f"{subject}_{k + 1}_1",
                "smic": f"{subject}_{_SMIC_SHORT[megc]}_{k + 1:02d}"}[dataset]
        csv_clip = clip
        if quirks and dataset == "smic":
          csv_clip = f"{csv_subject}{clip[3:]}"
        name = f"{subject}_{clip}{' ' if quirks else ''}.png"
        _encode(images / name, _minmax_uint8(uvs), ".png")  # RGB = (u, v, strain)
        imagename = f"{subject}_{csv_clip}.jpg"  # as the release: 's01_s1_ne_01.jpg'
        if face_crops:
          _encode(crops / imagename, cv2.resize(apex_frame, FACE_CROP_SIZE,
                                                interpolation=cv2.INTER_AREA), ".jpg",
                  (cv2.IMWRITE_JPEG_QUALITY, 90))
        rows.append((dataset, csv_subject, csv_clip, label, name, subject, imagename))
  with open(root / "combined_3_class2_for_optical_flow.csv", "w") as f:
    f.write("dataset,sub,filename_o,label,apex,imagename,sub_filename\n")
    for dataset, subject, clip, label, _, _, imagename in rows:
      f.write(f"{dataset},{subject},{clip},{label},,{imagename},\n")
  if quirks:  # LOSO pre-split copies, as in norm_u_v_os/<subject>/u_train|u_test/<label>/
    for test_subject in sorted({r[5] for r in rows}):
      for _, _, _, label, name, subject, _ in rows:
        split = "u_test" if subject == test_subject else "u_train"
        dest = root / test_subject / split / str(label)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(images / name, dest / name)
  (root / COMPLETE_MARKER).write_text(json.dumps(params))
  return root
