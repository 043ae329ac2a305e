"""steps._stacked: the ways stacked folds run (vmap, lax.map, the in-place fold loop) agree, and
the in-place loop keeps no second stacked copy of the state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from microexp.train import steps

FOLDS, SIZE = 4, 1 << 20  # 4 MiB of state per fold


def _epoch(state, plan, scale):
  """An epoch of one fold as the engine's: (new state, [steps] metrics) from a scan over steps
  that carries the fold's state, reading a per-fold and a shared argument."""
  def step(s, x):
    s = {"w": s["w"] * scale + x, "n": s["n"] + 1}
    return s, jnp.sum(s["w"])
  return jax.lax.scan(step, state, plan["x"])


def _inputs():
  rng = np.random.default_rng(0)
  state = {"w": jnp.asarray(rng.normal(size=(FOLDS, SIZE)), jnp.float32),
           "n": jnp.arange(FOLDS, dtype=jnp.int32)}
  plan = {"x": jnp.asarray(rng.normal(size=(FOLDS, 3)), jnp.float32)}
  return state, plan, jnp.float32(0.5)


def test_in_place_fold_loop_equals_lax_map_and_vmap():
  state, plan, scale = _inputs()
  ways = {"in place": steps._stacked(_epoch, 1, 2, updates_first=True),
          "lax.map": steps._stacked(_epoch, 1, 2),
          "lax.map in groups": steps._stacked(_epoch, 2, 2, updates_first=True),
          "vmap": steps._stacked(_epoch, None, 2, updates_first=True)}
  out = {name: jax.jit(fn)(state, plan, scale) for name, fn in ways.items()}
  ref = jax.tree.map(np.asarray, out.pop("lax.map"))
  assert ref[0]["n"].tolist() == [3, 4, 5, 6] and ref[1].shape == (FOLDS, 3)
  for name, got in out.items():
    jax.tree.map(lambda a, b, name=name: np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name),
                 ref, jax.tree.map(np.asarray, got))


def test_in_place_fold_loop_keeps_no_second_stacked_copy():
  state, plan, scale = _inputs()
  state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))

  def temp_bytes(fn):
    compiled = jax.jit(fn, donate_argnums=(0,)).lower(state, plan, scale).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  in_place = temp_bytes(steps._stacked(_epoch, 1, 2, updates_first=True))
  mapped = temp_bytes(steps._stacked(_epoch, 1, 2))
  # One fold's slice in flight (1/FOLDS of the state, a little more), not the whole stack again.
  assert in_place < 0.6 * state_bytes, (in_place, state_bytes)
  assert mapped >= state_bytes, (mapped, state_bytes)
