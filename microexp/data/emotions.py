"""Emotion vocabularies and class subsets.

Datasets keep their full emotion label (CASME II: 7 classes). A *class subset* is a function
applied at load time, never a rebuilt dataset: it maps each emotion to a class index of the
subset, or drops it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# CASME II's seven 'Estimated Emotion' values, in the order used for the stored 7-class label.
CASME2_EMOTIONS = ("happiness", "surprise", "disgust", "repression", "sadness", "fear", "others")

# MEGC2019 composite classes (label 0, 1, 2 in the challenge's ground-truth CSV).
MEGC_CLASSES = ("negative", "positive", "surprise")


@dataclasses.dataclass(frozen=True)
class ClassSubset:
  """A named view of the emotion labels: `mapping[emotion] -> class index` (absent = dropped)."""

  name: str
  class_names: tuple[str, ...]
  mapping: dict[str, int]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def map_emotions(self, emotions) -> tuple[np.ndarray, np.ndarray]:
    """emotions: [N] str -> (labels [N] int32, -1 where dropped; keep [N] bool)."""
    labels = np.array([self.mapping.get(str(e).lower(), -1) for e in emotions], np.int32)
    return labels, labels >= 0


def _identity(names):
  return {n: i for i, n in enumerate(names)}


_MEGC_MAPPING = {
    "disgust": 0, "repression": 0, "sadness": 0, "fear": 0,
    # SAMM spells some emotions differently; 'anger' and 'contempt' are negative in MEGC2019.
    "anger": 0, "contempt": 0, "negative": 0,
    "happiness": 1, "positive": 1,
    "surprise": 2,
}

# The thesis's five-class sets (docs/thesis.md): M2, M3 and M6; M5's second run.
THESIS5 = ("happiness", "surprise", "repression", "sadness", "disgust")
THESIS5_M5 = ("happiness", "surprise", "repression", "sadness", "fear")

SUBSETS = {
    "7": ClassSubset("7", CASME2_EMOTIONS, _identity(CASME2_EMOTIONS)),
    # The CASME II paper's standard five (Yan et al. 2014, the 63.41% LOSO baseline): the classes
    # with enough clips, 'others' included, sadness and fear left out.
    "5": ClassSubset("5", ("happiness", "surprise", "disgust", "repression", "others"),
                     _identity(("happiness", "surprise", "disgust", "repression", "others"))),
    "3": ClassSubset("3", ("happiness", "surprise", "repression"),
                     _identity(("happiness", "surprise", "repression"))),
    "megc": ClassSubset("megc", MEGC_CLASSES, _MEGC_MAPPING),
    # The thesis's five (M2, M3, M6): 'others' out, sadness in.
    "thesis5": ClassSubset("thesis5", THESIS5, _identity(THESIS5)),
    # The thesis's M5, second run: the seven minus 'others' and disgust.
    "thesis5_m5": ClassSubset("thesis5_m5", THESIS5_M5, _identity(THESIS5_M5)),
}

# Joins the emotions of an explicit subset: `classes=happiness+surprise+repression`.
LIST_SEPARATOR = "+"


def known_emotions() -> set[str]:
  """Every emotion name some subset maps (CASME II's seven, MEGC's spellings, ...)."""
  return set(CASME2_EMOTIONS).union(*(s.mapping for s in SUBSETS.values()))


# --- CAS(ME)^3 part A and DFME (issue 14). Subset names carry the dataset's name so that they never
# clash with CASME II's '7' / '5' / '3'.
# CAS(ME)^3's 'emotion' column values (lower case), in the order of the stored 7-class label.
CASME3_EMOTIONS = ("happy", "disgust", "fear", "anger", "sad", "surprise", "others")
# DFME's seven emotions (its sheets' 'Emotion' column, lower case).
DFME_EMOTIONS = ("happiness", "anger", "contempt", "disgust", "fear", "sadness", "surprise")
# CAS(ME)^3 spells happiness / sadness 'happy' / 'sad': MEGC classes for them too.
_MEGC_MAPPING.update({"happy": 1, "sad": 0})
_CASME3_NEGATIVE = ("disgust", "fear", "anger", "sad")
SUBSETS.update({
    "casme3_7": ClassSubset("casme3_7", CASME3_EMOTIONS, _identity(CASME3_EMOTIONS)),
    # The CAS(ME)^3 paper's 4 classes: negative, positive, surprise, others.
    "casme3_4": ClassSubset(
        "casme3_4", ("negative", "positive", "surprise", "others"),
        {**dict.fromkeys(_CASME3_NEGATIVE, 0), "happy": 1, "surprise": 2, "others": 3}),
    # The MEGC 3 classes ('others' dropped).
    "casme3_3": ClassSubset("casme3_3", MEGC_CLASSES,
                            {**dict.fromkeys(_CASME3_NEGATIVE, 0), "happy": 1, "surprise": 2}),
    "dfme_7": ClassSubset("dfme_7", DFME_EMOTIONS, _identity(DFME_EMOTIONS)),
    # MEGC-style 3 classes: anger, contempt, disgust, fear, sadness are negative.
    "dfme_3": ClassSubset("dfme_3", MEGC_CLASSES, {
        **dict.fromkeys(("anger", "contempt", "disgust", "fear", "sadness"), 0),
        "happiness": 1, "surprise": 2}),
})


def get_subset(name: str | int) -> ClassSubset:
  """Returns the class subset called `name` (a key of `SUBSETS`: '7', '5', '3', 'megc',
  'thesis5', 'casme3_7', 'dfme_3', ...), or the explicit one `'happiness+surprise+repression'` (class i = i-th name)."""
  key = str(name).lower().strip()
  if key in SUBSETS:
    return SUBSETS[key]
  if LIST_SEPARATOR in key:
    names = tuple(n.strip() for n in key.split(LIST_SEPARATOR))
    unknown = [n for n in names if n not in known_emotions()]
    if unknown or len(set(names)) != len(names) or "" in names:
      raise ValueError(f"Class subset {name!r}: " + (
          f"unknown emotion(s) {unknown}; known: {sorted(known_emotions())}." if unknown else
          "each emotion once, joined by '+' (e.g. 'happiness+surprise+repression')."))
    return ClassSubset(key, names, _identity(names))
  raise ValueError(f"Unknown class subset {name!r}; choose one of {sorted(SUBSETS)} or list "
                   "emotions joined by '+' (e.g. 'happiness+surprise+repression').")
