"""models/batch_norm.BatchNorm against flax's nn.BatchNorm: train-mode forward + backward time.

    python benchmarks/batch_norm.py                 # the STSTNet / flow CNN map sizes, batch 32
    python benchmarks/batch_norm.py --repeats=50

Per shape [B, H, W, C]: one jitted value_and_grad (w.r.t. input, scale and bias) of a loss of the
ReLU'd output and the updated statistics, median of --repeats calls, both modules side by side.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np

SHAPES = ((32, 28, 28, 3), (32, 28, 28, 8), (32, 28, 28, 16), (32, 48, 48, 16),
          (32, 24, 24, 32), (32, 56, 56, 32), (32, 28, 28, 64))


def fwd_bwd_s(module, shape, repeats: int) -> float:
  """Median seconds of one train-mode forward + backward of `module` on `shape`."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  x = jnp.asarray(1.0 + 2.0 * rng.standard_normal(shape), jnp.float32)
  r = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  variables = module.init(jax.random.key(0), x)

  def loss(x, params):
    y, upd = module.apply({**variables, "params": params}, x, mutable=["batch_stats"])
    return jnp.sum(jax.nn.relu(y) * r) + sum(jnp.sum(v) for v in jax.tree.leaves(upd))

  fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  jax.block_until_ready(fn(x, variables["params"]))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x, variables["params"]))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main(argv=None) -> list[tuple]:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--repeats", type=int, default=20)
  args = p.parse_args(argv)
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from microexp.models import batch_norm  # pylint: disable=g-import-not-at-top

  rows = []
  print("| B x H x W x C | flax nn.BatchNorm ms | models.batch_norm ms | speed-up |\n"
        "|---|---:|---:|---:|")
  for shape in SHAPES:
    flax_s = fwd_bwd_s(nn.BatchNorm(use_running_average=False, momentum=0.9), shape,
                       args.repeats)
    ours_s = fwd_bwd_s(batch_norm.BatchNorm(use_running_average=False, momentum=0.9), shape,
                       args.repeats)
    rows.append((shape, flax_s, ours_s))
    print(f"| {' x '.join(map(str, shape))} | {1e3 * flax_s:.3f} | {1e3 * ours_s:.3f} | "
          f"{flax_s / ours_s:.2f}x |", flush=True)
  return rows


if __name__ == "__main__":
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  main()
