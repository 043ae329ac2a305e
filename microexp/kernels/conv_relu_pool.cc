// A CPU kernel for conv (stride 1, 'same' size) -> ReLU -> max-pool (window == stride), the first
// layer of STSTNet and both layers of Off-ApexNet, as XLA FFI custom calls.
//
// Each example is computed inside the cache, one pool window at a time: the window's pixels are
// convolved together (independent accumulators), reduced to the window's max and min of
// s = relu(z) with the first position of each, and added into the per-channel sums of s and s^2
// that BatchNorm's statistics need. No patches and no pass over the full-resolution map: the
// pre-activation z is only written once, for the backward, which reads it back per window.
// Layouts are flax's: x [..., B, H, W, Ci] (NHWC), kernel [..., KH, KW, Ci, Co] (HWIO), bias
// [..., Co], pooled maps [..., B, Ho, Wo, Co], z [..., B, H, W, Co]; the leading dimensions are the
// stacked folds (none unstacked). Every sum runs in a fixed order whatever the threads: results are
// the same bit for bit from run to run. microexp/kernels/conv_pool.py is the JAX side. This file
// holds the FFI handlers and the dispatch; the per-example paths are conv_relu_pool16.h (16
// channels in vector registers), conv_relu_pool_narrow.h (the forward and kernel gradient of
// layers with few channels) and conv_relu_pool_tiles.h (every other shape and pass).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "conv_geometry.h"
#include "conv_relu_pool16.h"
#include "conv_relu_pool_narrow.h"
#include "conv_relu_pool_tiles.h"
#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using microexp::ParallelFor;
using microexp::conv::Cotangents;
using microexp::conv::ForwardExample;
using microexp::conv::ForwardExample16;
using microexp::conv::ForwardExampleNarrow;
using microexp::conv::ForwardKernelNarrow;
using microexp::conv::ForwardOutputs;
using microexp::conv::Geometry;
using microexp::conv::GradientPixel;
using microexp::conv::GradientPixels;
using microexp::conv::InputGradExample;
using microexp::conv::InputGradExample16;
using microexp::conv::InputGradKernel16;
using microexp::conv::kMaxChannels;
using microexp::conv::kNarrow;
using microexp::conv::kNarrowForward;
using microexp::conv::ParamGradExample;
using microexp::conv::ParamGradExample16;
using microexp::conv::ParamGradExampleNarrow;
using microexp::conv::Vec16;
using microexp::conv::Vectors16;

// Product of the leading `rank - trailing` dimensions (the stacked folds; 1 if none).
int64_t Leading(ffi::Span<const int64_t> dims, size_t trailing) {
  int64_t n = 1;
  for (size_t i = 0; i + trailing < dims.size(); ++i) n *= dims[i];
  return n;
}

// The geometry of x [..., B, H, W, Ci], kernel [..., KH, KW, Ci, Co] and pooled [..., B, Ho, Wo, Co]
// (the same leading dimensions on all three: vmap_method='broadcast_all').
ffi::Error MakeGeometry(const ffi::Buffer<ffi::F32>& x, const ffi::Buffer<ffi::F32>& kernel,
                        ffi::Span<const int64_t> pooled, int64_t ph, int64_t pw, int64_t pool_top,
                        int64_t pool_left, Geometry* g) {
  auto xd = x.dimensions();
  auto kd = kernel.dimensions();
  const size_t xr = xd.size(), kr = kd.size(), pr = pooled.size();
  if (xr < 4 || kr < 4 || pr < 4) {
    return ffi::Error::InvalidArgument("conv_relu_pool: x must be [..., B, H, W, Ci], kernel "
                                       "[..., KH, KW, Ci, Co]");
  }
  *g = Geometry{Leading(xd, 4), xd[xr - 4], xd[xr - 3], xd[xr - 2], xd[xr - 1], kd[kr - 4],
                kd[kr - 3], kd[kr - 1], pooled[pr - 3], pooled[pr - 2], ph, pw,
                (kd[kr - 4] - 1) / 2, (kd[kr - 3] - 1) / 2, pool_top, pool_left};
  if (Leading(kd, 4) != g->folds || Leading(pooled, 4) != g->folds || kd[kr - 2] != g->ci) {
    return ffi::Error::InvalidArgument("conv_relu_pool: kernel or pooled shape does not match x");
  }
  if (g->kh % 2 == 0 || g->kw % 2 == 0 || g->ph * g->pw > 127 || g->co > kMaxChannels) {
    return ffi::Error::InvalidArgument("conv_relu_pool: odd kernel sizes, pool windows of at "
                                       "most 127 elements and at most 256 channels only");
  }
  return ffi::Error::Success();
}

// Whether a `Dispatch` instantiation runs the 16-channel path (conv_relu_pool16.h): 16 channels,
// a compile-time pool window and kernel rows.
template <int CO, int PH, int KH>
constexpr bool kVec16 = CO == 16 && PH > 0 && KH > 0;

// Calls fn.template operator()<CO, PH, PW>() with compile-time channels and pool window for the
// zoo's layers (STSTNet: 16 channels, 3x3 pool; Off-ApexNet: 6 and 16 channels, 2x2 pools), so
// that a window's accumulators stay in vector registers; <0, 0, 0> (run-time sizes, one pixel at
// a time) otherwise.
template <typename Fn>
void Dispatch(const Geometry& g, const Fn& fn) {
  const int64_t row_taps = g.kw * g.ci;
  if (g.co == 16 && g.ph == 3 && g.pw == 3 && g.kh == 3 && row_taps == 9) {
    return fn.template operator()<16, 3, 3, 3, 9>();  // STSTNet
  }
  if (g.co == 6 && g.ph == 2 && g.pw == 2 && g.kh == 5 && row_taps == 5) {
    return fn.template operator()<6, 2, 2, 5, 5>();  // Off-ApexNet's first conv
  }
  if (g.co == 16 && g.ph == 2 && g.pw == 2 && g.kh == 5 && row_taps == 30) {
    return fn.template operator()<16, 2, 2, 5, 30>();  // Off-ApexNet's second conv
  }
  if (g.co == 16 && g.ph == 3 && g.pw == 3) return fn.template operator()<16, 3, 3, 0, 0>();
  if (g.co == 16 && g.ph == 2 && g.pw == 2) return fn.template operator()<16, 2, 2, 0, 0>();
  return fn.template operator()<0, 0, 0, 0, 0>();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                   ffi::Buffer<ffi::F32> bias, ffi::ResultBuffer<ffi::F32> pmax,
                   ffi::ResultBuffer<ffi::F32> pmin, ffi::ResultBuffer<ffi::S8> amax,
                   ffi::ResultBuffer<ffi::S8> amin, ffi::ResultBuffer<ffi::F32> sum,
                   ffi::ResultBuffer<ffi::F32> sum_sq, ffi::ResultBuffer<ffi::F32> z,
                   int64_t ph, int64_t pw, int64_t pool_top, int64_t pool_left, bool stats) {
  Geometry g;
  if (auto e = MakeGeometry(x, kernel, pmax->dimensions(), ph, pw, pool_top, pool_left, &g);
      e.failure()) {
    return e;
  }
  const int64_t items = g.folds * g.batch, cells = g.ho * g.wo * g.co;
  std::vector<float> sums(items * g.co), sums_sq(items * g.co);
  Dispatch(g, [&]<int CO, int PH, int PW, int KH, int RT>() {
    constexpr bool kNarrowX = kNarrowForward<CO, PH, PW, KH, RT>;
    const bool narrow = kNarrowX && g.ci == 1;
    std::vector<Vec16> narrow_kernel;  // per fold (`ForwardKernelNarrow`)
    if constexpr (kNarrowX) {
      if (narrow) {
        narrow_kernel.resize(g.folds * KH * RT);
        for (int64_t f = 0; f < g.folds; ++f) {
          ForwardKernelNarrow<CO, KH, RT>(kernel.typed_data() + f * g.taps() * g.co,
                                          narrow_kernel.data() + f * KH * RT);
        }
      }
    }
    ParallelFor(pool, items, [&](int64_t i) {
      const int64_t f = i / g.batch;
      const float* xi = x.typed_data() + i * g.h * g.w * g.ci;
      const float* k = kernel.typed_data() + f * g.taps() * g.co;
      const float* b = bias.typed_data() + f * g.co;
      const ForwardOutputs out{z->typed_data() + i * g.h * g.w * g.co,
                               pmax->typed_data() + i * cells, pmin->typed_data() + i * cells,
                               amax->typed_data() + i * cells, amin->typed_data() + i * cells};
      if constexpr (kVec16<CO, PH, KH>) {
        ForwardExample16<PH, PW, KH, RT>(g, xi, k, b, out, sums.data() + i * g.co,
                                         sums_sq.data() + i * g.co, stats);
      } else if (narrow) {
        if constexpr (kNarrowX) {
          ForwardExampleNarrow<CO, PH, KH, RT>(g, xi, narrow_kernel.data() + f * KH * RT, b, out,
                                               sums.data() + i * g.co, sums_sq.data() + i * g.co,
                                               stats);
        }
      } else {
        ForwardExample<CO, PH, PW, KH, RT>(g, xi, k, b, out, sums.data() + i * g.co,
                                           sums_sq.data() + i * g.co, stats);
      }
    });
  });
  // Per-example sums added in example order: the same bits whatever ran where.
  for (int64_t f = 0; f < g.folds; ++f) {
    float* s = sum->typed_data() + f * g.co;
    float* q = sum_sq->typed_data() + f * g.co;
    std::fill(s, s + g.co, 0.0f);
    std::fill(q, q + g.co, 0.0f);
    for (int64_t b = 0; b < g.batch; ++b) {
      for (int64_t c = 0; c < g.co; ++c) {
        s[c] += sums[(f * g.batch + b) * g.co + c];
        q[c] += sums_sq[(f * g.batch + b) * g.co + c];
      }
    }
  }
  return ffi::Error::Success();
}

// The backward's view of example i of the cotangent buffers.
Cotangents ExampleCotangents(const Geometry& g, int64_t i, const ffi::Buffer<ffi::S8>& amax,
                             const ffi::Buffer<ffi::S8>& amin, const ffi::Buffer<ffi::F32>& z,
                             const ffi::Buffer<ffi::F32>& gmax,
                             const ffi::Buffer<ffi::F32>& gmin, const ffi::Buffer<ffi::F32>& gsum,
                             const ffi::Buffer<ffi::F32>& gsum_sq) {
  const int64_t cells = g.ho * g.wo * g.co, f = i / g.batch;
  return Cotangents{amax.typed_data() + i * cells, amin.typed_data() + i * cells,
                    z.typed_data() + i * g.h * g.w * g.co, gmax.typed_data() + i * cells,
                    gmin.typed_data() + i * cells,
                    gsum.typed_data() + f * g.co, gsum_sq.typed_data() + f * g.co};
}

ffi::Error ParamGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                     ffi::Buffer<ffi::S8> amax,
                     ffi::Buffer<ffi::S8> amin, ffi::Buffer<ffi::F32> z,
                     ffi::Buffer<ffi::F32> gmax,
                     ffi::Buffer<ffi::F32> gmin, ffi::Buffer<ffi::F32> gsum,
                     ffi::Buffer<ffi::F32> gsum_sq, ffi::ResultBuffer<ffi::F32> dkernel,
                     ffi::ResultBuffer<ffi::F32> dbias, int64_t ph, int64_t pw, int64_t pool_top,
                     int64_t pool_left) {
  Geometry g;
  if (auto e = MakeGeometry(x, kernel, gmax.dimensions(), ph, pw, pool_top, pool_left, &g);
      e.failure()) {
    return e;
  }
  const int64_t items = g.folds * g.batch, taps = g.taps();
  std::vector<float> dk(items * taps * g.co), db(items * g.co);
  Dispatch(g, [&]<int CO, int PH, int PW, int KH, int RT>() {
    std::vector<GradientPixel> pixels;  // the order of the sums over the pixels
    if constexpr (kVec16<CO, PH, KH> || kNarrow<CO, PH, KH, RT>) {
      pixels = GradientPixels<PH, PW>(g);
    }
    ParallelFor(pool, items, [&](int64_t i) {
      const float* xi = x.typed_data() + i * g.h * g.w * g.ci;
      const Cotangents ct = ExampleCotangents(g, i, amax, amin, z, gmax, gmin, gsum, gsum_sq);
      if constexpr (kVec16<CO, PH, KH>) {
        ParamGradExample16<KH, RT>(g, xi, ct, pixels, dk.data() + i * taps * g.co,
                                   db.data() + i * g.co);
      } else if constexpr (kNarrow<CO, PH, KH, RT>) {
        ParamGradExampleNarrow<CO, KH, RT>(g, xi, ct, pixels, dk.data() + i * taps * g.co,
                                           db.data() + i * g.co);
      } else {
        ParamGradExample<CO, PH, PW, KH, RT>(g, xi, ct, dk.data() + i * taps * g.co,
                                             db.data() + i * g.co);
      }
    });
  });
  for (int64_t f = 0; f < g.folds; ++f) {
    float* k = dkernel->typed_data() + f * taps * g.co;
    float* b = dbias->typed_data() + f * g.co;
    std::fill(k, k + taps * g.co, 0.0f);
    std::fill(b, b + g.co, 0.0f);
    for (int64_t e = 0; e < g.batch; ++e) {
      const int64_t i = f * g.batch + e;
      for (int64_t t = 0; t < taps * g.co; ++t) k[t] += dk[i * taps * g.co + t];
      for (int64_t c = 0; c < g.co; ++c) b[c] += db[i * g.co + c];
    }
  }
  return ffi::Error::Success();
}

ffi::Error InputGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                     ffi::Buffer<ffi::S8> amax,
                     ffi::Buffer<ffi::S8> amin, ffi::Buffer<ffi::F32> z,
                     ffi::Buffer<ffi::F32> gmax,
                     ffi::Buffer<ffi::F32> gmin, ffi::Buffer<ffi::F32> gsum,
                     ffi::Buffer<ffi::F32> gsum_sq, ffi::ResultBuffer<ffi::F32> dx, int64_t ph,
                     int64_t pw, int64_t pool_top, int64_t pool_left) {
  Geometry g;
  if (auto e = MakeGeometry(x, kernel, gmax.dimensions(), ph, pw, pool_top, pool_left, &g);
      e.failure()) {
    return e;
  }
  const int64_t items = g.folds * g.batch, taps = g.taps();
  Dispatch(g, [&]<int CO, int PH, int PW, int KH, int RT>() {
    if constexpr (kVec16<CO, PH, KH>) {
      constexpr int64_t kKernel = 16 * KH * Vectors16(RT) * 16;
      std::vector<float> rows(g.folds * kKernel);
      for (int64_t f = 0; f < g.folds; ++f) {
        InputGradKernel16<KH, RT>(kernel.typed_data() + f * taps * 16, rows.data() + f * kKernel);
      }
      const std::vector<GradientPixel> pixels = GradientPixels<PH, PW>(g);
      ParallelFor(pool, items, [&](int64_t i) {
        InputGradExample16<KH, RT>(
            g, rows.data() + (i / g.batch) * kKernel,
            ExampleCotangents(g, i, amax, amin, z, gmax, gmin, gsum, gsum_sq), pixels,
            dx->typed_data() + i * g.h * g.w * g.ci);
      });
    } else {
      std::vector<float> kernel_t(g.folds * g.co * taps);  // [folds, co, taps]
      for (int64_t f = 0; f < g.folds; ++f) {
        for (int64_t t = 0; t < taps; ++t) {
          for (int64_t c = 0; c < g.co; ++c) {
            kernel_t[(f * g.co + c) * taps + t] = kernel.typed_data()[(f * taps + t) * g.co + c];
          }
        }
      }
      ParallelFor(pool, items, [&](int64_t i) {
        InputGradExample<CO, PH, PW, KH, RT>(
            g, kernel_t.data() + (i / g.batch) * g.co * taps,
            ExampleCotangents(g, i, amax, amin, z, gmax, gmin, gsum, gsum_sq),
            dx->typed_data() + i * g.h * g.w * g.ci);
      });
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MicroexpConvReluPoolForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S8>>()
                                  .Ret<ffi::Buffer<ffi::S8>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pool_h")
                                  .Attr<int64_t>("pool_w")
                                  .Attr<int64_t>("pool_top")
                                  .Attr<int64_t>("pool_left")
                                  .Attr<bool>("stats"));

// The backward's arguments: x, kernel, amax, amin, z, then the cotangents gmax, gmin, gsum, gsum_sq.
#define MICROEXP_GRAD_ARGS                   \
  .Ctx<ffi::ThreadPool>()                    \
      .Arg<ffi::Buffer<ffi::F32>>()          \
      .Arg<ffi::Buffer<ffi::F32>>()          \
      .Arg<ffi::Buffer<ffi::S8>>()           \
      .Arg<ffi::Buffer<ffi::S8>>()           \
      .Arg<ffi::Buffer<ffi::F32>>()          \
      .Arg<ffi::Buffer<ffi::F32>>()          \
      .Arg<ffi::Buffer<ffi::F32>>()          \
      .Arg<ffi::Buffer<ffi::F32>>()          \
      .Arg<ffi::Buffer<ffi::F32>>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(MicroexpConvReluPoolParamGrad, ParamGrad,
                              ffi::Ffi::Bind() MICROEXP_GRAD_ARGS
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pool_h")
                                  .Attr<int64_t>("pool_w")
                                  .Attr<int64_t>("pool_top")
                                  .Attr<int64_t>("pool_left"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(MicroexpConvReluPoolInputGrad, InputGrad,
                              ffi::Ffi::Bind() MICROEXP_GRAD_ARGS
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pool_h")
                                  .Attr<int64_t>("pool_w")
                                  .Attr<int64_t>("pool_top")
                                  .Attr<int64_t>("pool_left"));
