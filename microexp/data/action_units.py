"""Action Units: one parser for every sheet's AU cells, normalised AU numbers, multi-hot arrays."""

from __future__ import annotations

import re
from typing import Any

import numpy as np



# Separators between AUs in the sheets: '+', ',', the full-width comma, ';', '、', and spaces.
_AU_SEPARATORS = r"[+,;\uff0c\u3001]+|(?<=[\d)])\s+(?=[A-Za-z]{0,2}\d)"


# One AU token once normalised: optional side, the AU number, an optional FACS intensity letter.
_AU_TOKEN = re.compile(
    r"(?:AU)?\s*(?P<pre>[A-Z]{0,2}?)\s*(?:AU)?\s*(?P<num>\d+)(?:\.0+)?\s*(?P<post>[A-Z]{0,2})")


SIDES = ("L", "R")  # left / right; other letters (FACS intensity A-E, 'U', 'T', 'B') are dropped


def parse_action_units(value: Any) -> tuple[str, ...]:
  """An AU cell split into its tokens, kept as written (one parser for every sheet).

  4 / 4.0 / '4+L10+R12' / '?' / '1, 2' / 'AU4，AU7' -> ('4',) / ('4',) / ('4', 'L10', 'R12') /
  ('?',) / ('1', '2') / ('AU4', 'AU7'). `action_unit_numbers` normalises the tokens.
  """
  if value is None:
    return ()
  if isinstance(value, float) and value == int(value):
    value = int(value)
  units = []
  for part in re.split(_AU_SEPARATORS, str(value).strip()):
    part = part.strip()
    if re.fullmatch(r"\d+\.0+", part):  # '4.0' typed by Excel
      part = part.split(".")[0]
    if part:
      units.append(part)
  return tuple(units)


def normalize_action_unit(token: str, *, sides: bool = False) -> str | None:
  """One AU token -> its number as a string, or None when it names no AU.

  'AU4', '4', '4.0', '12(weak)', '12B' (FACS intensity), 'A1', 'B4', 'T12' -> '4', '4', '4', '12',
  '12', '1', '4', '12'; 'L12', 'R12', 'AU12R', 'AU12L' -> '12', or 'L12' / 'R12' with `sides`;
  '?', '', 'none', '/' -> None.
  """
  text = re.sub(r"\(.*?\)|\[.*?\]", "", str(token)).strip().upper()
  m = _AU_TOKEN.fullmatch(text)
  if m is None:
    return None
  side = next((c for c in m.group("pre") + m.group("post") if c in SIDES), "")
  number = str(int(m.group("num")))
  return f"{side}{number}" if sides and side else number


def action_unit_numbers(value: Any, *, sides: bool = False) -> tuple[str, ...]:
  """An AU cell (or parsed tokens) -> normalised AUs, unique, in numeric order.

  '4+L10+R12' -> ('4', '10', '12'); with `sides` -> ('4', 'L10', 'R12'). Tokens naming no AU
  ('?') are left out.
  """
  tokens = value if isinstance(value, (tuple, list)) else parse_action_units(value)
  found = {a for a in (normalize_action_unit(t, sides=sides) for t in tokens) if a}
  return tuple(sorted(found, key=_au_sort_key))


def _au_sort_key(name: str) -> tuple[int, str]:
  return int(re.sub(r"\D", "", name)), name


def au_multi_hot(action_units, *, sides: bool = False,
                 vocabulary=None) -> tuple[np.ndarray, tuple[str, ...]]:
  """Per-clip AU cells or token tuples -> (multi-hot float32 [N, A], AU names [A]).

  `vocabulary` fixes the columns (e.g. a union over datasets); by default it is every AU present,
  in numeric order ('1', '2', '4', ..., with `sides` 'L12' and 'R12' are columns of their own).
  An AU outside a given vocabulary raises ValueError.
  """
  per_clip = [action_unit_numbers(a, sides=sides) for a in action_units]
  if vocabulary is None:
    vocabulary = sorted({a for aus in per_clip for a in aus}, key=_au_sort_key)
  vocabulary = tuple(str(v) for v in vocabulary)
  column = {a: i for i, a in enumerate(vocabulary)}
  hot = np.zeros((len(per_clip), len(vocabulary)), np.float32)
  for i, aus in enumerate(per_clip):
    for a in aus:
      if a not in column:
        raise ValueError(f"AU {a!r} of clip {i} is not in the vocabulary {vocabulary}.")
      hot[i, column[a]] = 1.0
  return hot, vocabulary


def au_arrays(action_units, *, sides: bool = False) -> dict[str, np.ndarray]:
  """The loaders' AU arrays: {'au': float32 [N, A] multi-hot, 'au_names': str [N, A]}.

  `au_names` repeats the column names on every row so that every array keeps a leading N (the
  engine subsets arrays by rows).
  """
  hot, names = au_multi_hot(action_units, sides=sides)
  return dict(au=hot, au_names=np.tile(np.array(names, dtype=str)[None], (len(hot), 1))
              if names else np.zeros((len(hot), 0), dtype=str))
