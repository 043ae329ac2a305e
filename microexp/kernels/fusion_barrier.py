"""A copy XLA cannot fuse through (fusion_barrier.cc), and the identity whose gradient passes
through it.

XLA:CPU fuses an elementwise producer into each of its consumers and recomputes it there. Two
places where that cost the zoo most of a train step (docs/training.md, "Thirteenth pass"):
- the gradient of a recurrence unrolled over time: the carry's cotangent at step t is an
  elementwise function of the one at step t + 1, so every step's fusion recomputed the chain from
  the last step back (the ConvLSTM's gradient fusions read up to 74 arrays each: half its step);
- a convolution followed by BatchNorm: BatchNorm's backward was fused into the transposing copy
  that feeds the kernel gradient's matmul, reading its inputs column by column (the CNN-LSTM's
  frame CNN: 98 ms for one 64 MB map).
`jax.lax.optimization_barrier` does not help: XLA:CPU removes it before fusing. A custom call is
not fusible, so what it copies is computed once, in memory order; it aliases its argument, so
where XLA can give it the argument's buffer it copies nothing.

Values are unchanged; gradients change at most by float rounding (XLA contracts multiply-adds
within a fusion, and the barrier moves fusion boundaries). Where the kernel is not available
(another backend, no compiler, `MICROEXP_NATIVE_KERNELS=0`) both functions are the identity.
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
  Reverse mode only (a `custom_vjp`)."""
  return x


def _cotangent_barrier_fwd(x):
  return x, None


def _cotangent_barrier_bwd(_, ct):
  return (fusion_barrier(ct),)


cotangent_barrier.defvjp(_cotangent_barrier_fwd, _cotangent_barrier_bwd)
