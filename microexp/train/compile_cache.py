"""XLA's persistent compilation cache, on by default for every command of the project.

Compilation is a large part of a short run on a CPU (the STSTNet epoch step alone takes ~20 s to
compile, about 40% of an 8-fold x 20-epoch protocol) and it repeats across runs: seeds, nested
candidates, ensemble members, a resumed or re-run config, predict on many videos. JAX keys each
entry by the program's HLO, the compile options, the backend and JAX's own version, so a hit is
the executable a fresh compile would give (same results, bit for bit).

    directory(flag_value)   the folder to use: the flag, else $MICROEXP_COMPILATION_CACHE, else
                            ~/.cache/microexp/xla; 'none' (or '') turns the cache off
    enable(folder)          points JAX at it (call before the first compilation)
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "MICROEXP_COMPILATION_CACHE"
DEFAULT = Path("~/.cache/microexp/xla")
OFF = ("", "none", "off")
# Programs that compile faster than this are not written (each entry costs a file write and read).
MIN_COMPILE_TIME_S = 0.2
# The cache evicts its least recently used entries beyond this size.
MAX_BYTES = 4 << 30


def directory(flag_value: str | None = None) -> Path | None:
  """The cache folder for `flag_value` (None: the environment or the default); None when off."""
  value = flag_value if flag_value is not None else os.environ.get(ENV, str(DEFAULT))
  if value.strip().lower() in OFF:
    return None
  return Path(value).expanduser()


def enable(folder: Path | None, min_compile_time_s: float = MIN_COMPILE_TIME_S) -> Path | None:
  """Points JAX's persistent compilation cache at `folder` (created); None leaves it off.
  Programs compiled in less than `min_compile_time_s` are not kept."""
  if folder is None:
    return None
  import jax  # pylint: disable=g-import-not-at-top

  folder = Path(folder)
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise OSError(f"Cannot create the compilation cache folder {folder}: {e}. Pass "
                  f"--compilation_cache=<a writable folder> or 'none', or set ${ENV}.") from e
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_s)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
  return folder
