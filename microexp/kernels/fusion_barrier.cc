// A copy that XLA cannot fuse through: an FFI custom call that copies its argument (nothing
// where XLA gave it the argument's buffer: the JAX side aliases them). XLA:CPU fuses an
// elementwise producer into every consumer and recomputes it there; a chain of them (an RNN's
// carry gradients over the time steps of an unrolled loop) is then recomputed inside each later
// step's fusion, a cost quadratic in the sequence length. `optimization_barrier` does not stop
// it (XLA:CPU removes the barriers before fusing); a custom call is not fusible, so its argument
// is computed once and its result read from memory. microexp/kernels/fusion_barrier.py is the
// JAX side.

#include <cstring>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

ffi::Error Copy(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y) {
  if (x.size_bytes() != y->size_bytes()) {
    return ffi::Error::InvalidArgument(
        "fusion_barrier: the result's size differs from the argument's");
  }
  if (x.size_bytes() > 0 && x.untyped_data() != y->untyped_data()) {
    std::memcpy(y->untyped_data(), x.untyped_data(), x.size_bytes());
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MicroexpFusionBarrier, Copy,
                              ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>());
