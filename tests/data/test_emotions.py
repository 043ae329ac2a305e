"""Class subsets: which emotions each keeps, in which order."""

from __future__ import annotations

import numpy as np
import pytest

from microexp.data import emotions


def test_seven_classes_are_casme2_emotions_in_order():
  subset = emotions.get_subset("7")
  assert subset.class_names == emotions.CASME2_EMOTIONS
  labels, keep = subset.map_emotions(list(emotions.CASME2_EMOTIONS))
  np.testing.assert_array_equal(labels, np.arange(7))
  assert keep.all()


@pytest.mark.parametrize("name, dropped", [
    ("5", {"sadness", "fear"}),
    ("3", {"disgust", "sadness", "fear", "others"}),
])
def test_subsets_drop_the_small_classes(name, dropped):
  subset = emotions.get_subset(name)
  labels, keep = subset.map_emotions(list(emotions.CASME2_EMOTIONS))
  assert {e for e, k in zip(emotions.CASME2_EMOTIONS, keep) if not k} == dropped
  assert (labels[~keep] == -1).all()
  kept = [e for e, k in zip(emotions.CASME2_EMOTIONS, keep) if k]
  assert [subset.class_names[i] for i in labels[keep]] == kept
  assert subset.num_classes == len(kept)


def test_megc_groups_negative_emotions_and_accepts_case():
  subset = emotions.get_subset("MEGC")
  labels, keep = subset.map_emotions(
      ["Disgust", "repression", "anger", "happiness", "surprise", "others", "sadness"])
  assert subset.class_names == ("negative", "positive", "surprise")
  np.testing.assert_array_equal(labels, [0, 0, 0, 1, 2, -1, 0])
  np.testing.assert_array_equal(keep, [True] * 5 + [False, True])


def test_get_subset_accepts_int_and_rejects_unknown():
  assert emotions.get_subset(3).name == "3"
  with pytest.raises(ValueError, match="Unknown class subset '4'"):
    emotions.get_subset("4")
