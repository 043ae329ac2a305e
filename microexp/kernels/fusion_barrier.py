"""A copy XLA cannot fuse through (fusion_barrier.cc), and the identity whose gradient passes
through it.

XLA:CPU fuses an elementwise producer into each of its consumers and recomputes it there. In the
gradient of a recurrence unrolled over time that compounds: the carry's cotangent at step t is an
elementwise function of the one at step t + 1, so every step's fusion recomputed the whole chain
from the last step back (the ConvLSTM's gradient fusions read up to 67 arrays each and took ~60%
of its train step; docs/training.md, "Thirteenth pass"). `jax.lax.optimization_barrier` does not
help: XLA:CPU removes it before fusing. A custom call is not fusible, so what it copies is
computed once, at its step.

Where the kernel is not available (another backend, no compiler, `MICROEXP_NATIVE_KERNELS=0`)
both functions are the identity: the same values, only the CPU's recomputation comes back.
"""

from __future__ import annotations

import jax

from microexp.kernels import build

_NAME = "fusion_barrier"
_TARGETS = (("microexp_fusion_barrier", "MicroexpFusionBarrier"),)


def available() -> bool:
  """Whether the barrier runs here: the default backend is the CPU and the library built."""
  return build.available(_NAME, _TARGETS)


def fusion_barrier(x: jax.Array) -> jax.Array:
  """`x`, copied by a custom call where `available()` (so computed once, not fused into its
  consumers); `x` itself elsewhere. Not differentiable (see `cotangent_barrier`)."""
  if not available():
    return x
  return jax.ffi.ffi_call("microexp_fusion_barrier", jax.ShapeDtypeStruct(x.shape, x.dtype),
                          vmap_method="broadcast_all", input_output_aliases={0: 0})(x)


@jax.custom_vjp
def cotangent_barrier(x: jax.Array) -> jax.Array:
  """The identity, whose cotangent passes through `fusion_barrier`: put on a recurrence's carry,
  each step's carry gradient is computed once instead of inside every earlier step's fusion.
  Values and gradients are unchanged bit for bit. Reverse mode only (a `custom_vjp`)."""
  return x


def _cotangent_barrier_fwd(x):
  return x, None


def _cotangent_barrier_bwd(_, ct):
  return (fusion_barrier(ct),)


cotangent_barrier.defvjp(_cotangent_barrier_fwd, _cotangent_barrier_bwd)
