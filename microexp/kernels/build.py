"""Compiles the C++ kernels beside this file into a cached shared library and loads it.

The library is built once per (source, compiler, flags, jaxlib, CPU) and kept under
$MICROEXP_KERNEL_CACHE (default ~/.cache/microexp/kernels): a few seconds the first time, nothing
after. It is compiled for this CPU (-march=native), so the CPU's model and flags are part of the key.
`MICROEXP_NATIVE_KERNELS=0` turns the kernels off; a missing or failing compiler does too, with one
warning that names the reason (the models then use their pure-JAX layers).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile

from absl import logging
import jax
import jaxlib

ENV_SWITCH = "MICROEXP_NATIVE_KERNELS"
ENV_CACHE = "MICROEXP_KERNEL_CACHE"
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-std=c++20", "-shared", "-fPIC")
_HERE = pathlib.Path(__file__).resolve().parent


def enabled() -> bool:
  """False when $MICROEXP_NATIVE_KERNELS is '0' (or 'false', 'off')."""
  return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


def cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get(ENV_CACHE) or
                      pathlib.Path.home() / ".cache" / "microexp" / "kernels")


def _cpu_fingerprint() -> str:
  """The CPU's model name and feature flags (what -march=native compiles for)."""
  try:
    lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
  except OSError:
    return platform.machine() + platform.processor()
  keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
  return "\n".join(sorted(set(keep))) + platform.machine()


def _compiler() -> str | None:
  for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
    if name and shutil.which(name):
      return shutil.which(name)
  return None


def library_path(name: str) -> pathlib.Path:
  """Builds `<name>.cc` if its cached library is missing; returns the library's path.

  Raises RuntimeError (the compiler's message included) when it cannot be built.
  """
  source = _HERE / f"{name}.cc"
  compiler = _compiler()
  if compiler is None:
    raise RuntimeError("no C++ compiler found (set $CXX, or install g++)")
  version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                           check=False).stdout
  headers = [h.read_text() for h in sorted(_HERE.glob("*.h"))]  # the sources' own includes
  key = hashlib.sha256("\0".join([source.read_text(), *headers, compiler, version,
                                  " ".join(FLAGS), jaxlib.__version__,
                                  _cpu_fingerprint()]).encode()).hexdigest()
  folder = cache_dir()
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:  # e.g. a read-only home: a folder of this user's under the temp dir
    folder = pathlib.Path(tempfile.gettempdir()) / f"microexp-kernels-{os.getuid()}"
    logging.warning("Cannot use %s for the CPU kernels (%s); building into %s.", cache_dir(), e,
                    folder)
    folder.mkdir(parents=True, exist_ok=True)
  out = folder / f"{name}-{key[:16]}.so"
  if out.exists():
    return out
  # Compiled beside its final name, then renamed: a killed build leaves no library that looks done.
  fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=out.parent)
  os.close(fd)
  cmd = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(source), "-o", tmp]
  try:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
      raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    os.replace(tmp, out)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  logging.info("Built the CPU kernel %s: %s", name, out)
  return out


@functools.lru_cache(maxsize=None)
def register(name: str, targets: tuple[tuple[str, str], ...]) -> bool:
  """Loads library `name` and registers its handlers as XLA:CPU FFI targets (target name, symbol);
  False if the library is not available (see `load`)."""
  lib = load(name)
  if lib is None:
    return False
  for target, symbol in targets:
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
  return True


def available(name: str, targets: tuple[tuple[str, str], ...]) -> bool:
  """Whether library `name`'s targets run here: the default backend is the CPU and they
  registered (`register`)."""
  return jax.default_backend() == "cpu" and register(name, targets)


def require(name: str, targets: tuple[tuple[str, str], ...]) -> None:
  """Registers library `name`'s targets; RuntimeError where it could not be built or is off."""
  if not register(name, targets):
    raise RuntimeError(f"The CPU kernel {name} could not be built or is switched off "
                       f"(${ENV_SWITCH}); see the warning logged above.")


@functools.lru_cache(maxsize=None)
def load(name: str) -> ctypes.CDLL | None:
  """The built library `<name>`, or None (kernels switched off, or the build failed: warned once)."""
  if not enabled():
    return None
  try:
    return ctypes.cdll.LoadLibrary(str(library_path(name)))
  except (OSError, RuntimeError) as e:
    logging.warning("The CPU kernel %s is not available, using the pure-JAX layers: %s", name, e)
    return None
