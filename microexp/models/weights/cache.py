"""One-time conversion cache: a ported checkpoint is stored as a plain `.npz` and reused.

The cache sits next to the source (`<file>.microexp-<variant>.npz`) or, when that folder is not
writable or `cache_dir` is given, in `cache_dir` (default `~/.cache/microexp/weights`). It records the
source's size, mtime and SHA-256: a cache is used when size and mtime match, or when the source's
hash matches (a copied or touched file); otherwise the source is converted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
from typing import Callable

from absl import logging
import numpy as np

FORMAT_VERSION = 1
DEFAULT_CACHE_DIR = pathlib.Path("~/.cache/microexp/weights")
_META = "__meta__"

Flat = dict[tuple[str, ...], np.ndarray]


def sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      digest.update(chunk)
  return digest.hexdigest()


def cache_path(source: pathlib.Path, tag: str, cache_dir: str | pathlib.Path | None) -> pathlib.Path:
  """Where the conversion of `source` is cached (beside it if writable, else in the cache dir)."""
  name = f"{source.name}.microexp-{tag}.npz"
  if cache_dir is None and os.access(source.parent, os.W_OK):
    return source.parent / name
  return pathlib.Path(cache_dir or DEFAULT_CACHE_DIR).expanduser() / name


def _read(path: pathlib.Path, source: pathlib.Path) -> Flat | None:
  """The cached arrays if `path` is a valid cache of `source`, else None."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      meta = json.loads(str(npz[_META]))
      stat = source.stat()
      fresh = (meta["source_size"], meta["source_mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
      if meta["version"] != FORMAT_VERSION or not (fresh or meta["source_sha256"] == sha256(source)):
        return None
      return {tuple(k.split("/")): npz[k] for k in npz.files if k != _META}
  except (OSError, ValueError, KeyError) as e:
    logging.warning("Ignoring unreadable weight cache %s (%s); converting again.", path, e)
    return None


def _write(path: pathlib.Path, source: pathlib.Path, flat: Flat) -> None:
  stat = source.stat()
  meta = {"version": FORMAT_VERSION, "source": str(source), "source_size": stat.st_size,
          "source_mtime_ns": stat.st_mtime_ns, "source_sha256": sha256(source)}
  arrays = {"/".join(k): v for k, v in flat.items()}
  path.parent.mkdir(parents=True, exist_ok=True)
  # Write-then-rename so that an interrupted run never leaves a half-written cache.
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
  with os.fdopen(fd, "wb") as f:
    np.savez(f, **arrays, **{_META: np.asarray(json.dumps(meta))})
  os.replace(tmp, path)


def cached_conversion(source: pathlib.Path, tag: str, convert: Callable[[pathlib.Path], Flat], *,
                      cache_dir: str | pathlib.Path | None = None) -> Flat:
  """`convert(source)`, computed once and then read back from the `.npz` cache."""
  path = cache_path(source, tag, cache_dir)
  if path.exists():
    flat = _read(path, source)
    if flat is not None:
      logging.info("Using converted weights %s (from %s).", path, source)
      return flat
  logging.info("Converting %s (one time; cached as %s).", source, path)
  flat = convert(source)
  try:
    _write(path, source, flat)
  except OSError as e:
    logging.warning("Could not cache converted weights at %s: %s", path, e)
  return flat
