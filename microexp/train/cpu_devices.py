"""How many JAX devices the CPU is split into: by default one per core, so that stacked folds run
side by side.

XLA:CPU runs a device's program one op after another, each op spread over a pool of the cores. A
small model's ops are too short to keep the cores busy (STSTNet on 2 cores: 1.48 ms of op time in
1.03 ms of wall time per fold-step). With one device per core, the fold-parallel engine gives each
device its own folds (`parallel.make_mesh`, `steps._per_device`) and the devices' programs run at
the same time: 0.79 ms per fold-step on the same 2 cores, the same bits (docs/training.md, "Ninth
pass"). Sequential runs (one job per chunk) use one device, as before.

Each device that trains holds its own fold's temporaries at once (one fold's activations and
gradients per device): on a CPU with many cores and a large model, pass fewer devices.

    count(value)   'auto' (or None: $MICROEXP_CPU_DEVICES, else 'auto') = the cores this process
                   may run on; or a number >= 1
    configure(n)   sets JAX's CPU device count; call before JAX's first use of a device
"""

from __future__ import annotations

import os
import re

ENV = "MICROEXP_CPU_DEVICES"


def count(value: str | int | None = None) -> int:
  """The CPU device count that `value` asks for (see the module docstring). 'auto' keeps a count
  set by XLA's own flag (`XLA_FLAGS=--xla_force_host_platform_device_count=N`), which JAX's
  setting would otherwise override."""
  value = os.environ.get(ENV, "auto") if value is None else value
  if str(value).strip().lower() == "auto":
    forced = re.search(r"--xla_force_host_platform_device_count=(\d+)",
                       os.environ.get("XLA_FLAGS", ""))
    if forced:
      return max(int(forced.group(1)), 1)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
  try:
    n = int(value)
  except ValueError:
    n = 0
  if n < 1:
    raise ValueError(f"CPU devices must be 'auto' or a whole number >= 1, got {value!r} "
                     f"(--cpu_devices or ${ENV}).")
  return n


def configure(n: int) -> int:
  """Splits the CPU into `n` JAX devices; the count JAX's CPU backend will have.

  Before JAX's backends start, this sets it. After (something already asked JAX for a device), the
  count cannot change: a different one is an error that says so."""
  import jax  # pylint: disable=g-import-not-at-top

  try:
    jax.config.update("jax_num_cpu_devices", int(n))
    return int(n)  # before the backends start; or after, where they started with this count
  except RuntimeError:  # JAX refuses another count once its backends have started
    have = jax.device_count("cpu")
  if have != n:
    raise RuntimeError(f"JAX's CPU backend already started with {have} device(s); {n} were asked "
                       "for. Set the count before anything uses JAX (main.py does it first).")
  return have
