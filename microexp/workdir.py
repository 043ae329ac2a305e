"""Reading a training workdir's JSON files (results.json, final/model.json; docs/ARCHITECTURE.md)."""

from __future__ import annotations

import json
import pathlib


def read_json(path: str | pathlib.Path, *, required: tuple[str, ...], missing_hint: str) -> dict:
  """Reads one workdir JSON file; a clear error naming the file if absent, invalid or incomplete.

  Args:
    path: the file.
    required: top-level keys it must have.
    missing_hint: what to tell the user when the file does not exist.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: {missing_hint}")
  try:
    content = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e}).") from e
  missing = [k for k in required if k not in content]
  if missing:
    raise ValueError(f"{path}: missing keys {missing} (schema: docs/ARCHITECTURE.md).")
  return content
