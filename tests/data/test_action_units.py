"""One AU parser for every sheet: tokens, normalised AU numbers, sides, multi-hot arrays."""

from __future__ import annotations

import numpy as np
import pytest

from microexp.data import action_units as au_lib


@pytest.mark.parametrize("cell, tokens, numbers, with_sides", [
    ("4+7", ("4", "7"), ("4", "7"), ("4", "7")),
    ("L12", ("L12",), ("12",), ("L12",)),
    ("R12", ("R12",), ("12",), ("R12",)),
    ("AU4", ("AU4",), ("4",), ("4",)),
    ("12(weak)", ("12(weak)",), ("12",), ("12",)),
    ("A1+B4", ("A1", "B4"), ("1", "4"), ("1", "4")),
    ("1, 2", ("1", "2"), ("1", "2"), ("1", "2")),
    ("AU4\uff0cAU7", ("AU4", "AU7"), ("4", "7"), ("4", "7")),  # full-width comma (CAS(ME)^3)
    ("AU1 + AU2", ("AU1", "AU2"), ("1", "2"), ("1", "2")),
    ("AU 4", ("AU 4",), ("4",), ("4",)),
    ("L4 R4", ("L4", "R4"), ("4",), ("L4", "R4")),
    ("AU12R", ("AU12R",), ("12",), ("R12",)),
    ("12B", ("12B",), ("12",), ("12",)),  # FACS intensity letter
    ("R14A+ L12", ("R14A", "L12"), ("12", "14"), ("L12", "R14")),
    (4.0, ("4",), ("4",), ("4",)),
    ("1+2.0", ("1", "2"), ("1", "2"), ("1", "2")),
    ("?", ("?",), (), ()),
    (None, (), (), ()),
    ("/", ("/",), (), ()),
])
def test_every_sheet_form(cell, tokens, numbers, with_sides):
  assert au_lib.parse_action_units(cell) == tokens
  assert au_lib.action_unit_numbers(cell) == numbers
  assert au_lib.action_unit_numbers(cell, sides=True) == with_sides
  assert au_lib.action_unit_numbers(tokens) == numbers  # tokens as stored by the builders


def test_multi_hot_vocabulary_and_sides():
  cells = ["4+7", "L12", "?", "12+R12", "AU10"]
  hot, names = au_lib.au_multi_hot(cells)
  assert names == ("4", "7", "10", "12")  # numeric order, not '10' < '4'
  np.testing.assert_array_equal(hot, [[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1],
                                      [0, 0, 1, 0]])
  assert hot.dtype == np.float32
  _, names = au_lib.au_multi_hot(cells, sides=True)
  assert names == ("4", "7", "10", "12", "L12", "R12")
  hot, names = au_lib.au_multi_hot(cells, vocabulary=[1, 4, 7, 10, 12])
  assert names == ("1", "4", "7", "10", "12") and hot[:, 0].sum() == 0
  with pytest.raises(ValueError, match="AU '12' of clip 1 is not in the vocabulary"):
    au_lib.au_multi_hot(cells, vocabulary=["4", "7", "10"])


def test_au_arrays_keep_a_leading_n():
  arrays = au_lib.au_arrays([("4", "L10"), (), ("?",)])
  assert arrays["au"].shape == (3, 2) and arrays["au_names"].shape == (3, 2)
  assert (arrays["au_names"] == np.array(["4", "10"])).all()
  empty = au_lib.au_arrays([(), ()])
  assert empty["au"].shape == (2, 0) and empty["au_names"].shape == (2, 0)
