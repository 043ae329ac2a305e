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
// the same bit for bit from run to run. microexp/kernels/conv_pool.py is the JAX side.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "conv_geometry.h"
#include "conv_relu_pool16.h"
#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using microexp::ParallelFor;
using microexp::conv::Cotangents;
using microexp::conv::FillBuffer;
using microexp::conv::ForwardExample16;
using microexp::conv::Geometry;
using microexp::conv::GradientPixel;
using microexp::conv::GradientPixels;
using microexp::conv::ParamGradExample16;

// Channel counts up to this run through the generic (run-time width) path.
constexpr int64_t kMaxChannels = 256;

// A tile: TP output pixels computed together (independent accumulators, so the FMAs pipeline).
// PH, PW > 0: compile-time pool windows, one tile per window; 0: one pixel per tile.
template <int PH, int PW>
struct Tile {
  static constexpr int kPixels = PH > 0 ? PH * PW : 1;
  int64_t cell;                // the pool window's flat index; -1: a pixel no window covers
  int64_t offsets[kPixels];    // buffer offsets of each pixel's first tap
  int8_t positions[kPixels];   // the pixel's row-major position in its window
  bool valid[kPixels];         // the pixel is in the image (not pool padding, not a filler)
  int64_t pixels[kPixels];     // y * w + x of each valid pixel (0 for the others)
};

// Calls fn(tile) for every pool window (row-major; its pixels in row-major order), then for each
// pixel that no window covers (the rows and columns a VALID pool drops; their statistics count).
template <int PH, int PW, typename Fn>
void ForEachTile(const Geometry& g, const Fn& fn) {
  using T = Tile<PH, PW>;
  const int64_t ph = PH > 0 ? PH : g.ph, pw = PW > 0 ? PW : g.pw, np = ph * pw;
  T tile;
  for (int64_t wy = 0; wy < g.ho; ++wy) {
    for (int64_t wx = 0; wx < g.wo; ++wx) {
      tile.cell = wy * g.wo + wx;
      for (int64_t k0 = 0; k0 < np; k0 += T::kPixels) {
        for (int p = 0; p < T::kPixels; ++p) {
          const int64_t k = k0 + p < np ? k0 + p : k0;
          const int64_t y = wy * ph + k / pw - g.pool_top, x = wx * pw + k % pw - g.pool_left;
          tile.offsets[p] = g.offset(y, x);
          tile.positions[p] = static_cast<int8_t>(k);
          tile.valid[p] = k0 + p < np && y >= 0 && y < g.h && x >= 0 && x < g.w;
          tile.pixels[p] = tile.valid[p] ? y * g.w + x : 0;
        }
        fn(tile);
      }
    }
  }
  const int64_t covered_h = g.ho * ph - g.pool_top, covered_w = g.wo * pw - g.pool_left;
  for (int64_t y = 0; y < g.h; ++y) {
    for (int64_t x = 0; x < g.w; ++x) {
      if (y < covered_h && x < covered_w) continue;
      tile.cell = -1;
      for (int p = 0; p < T::kPixels; ++p) {
        tile.offsets[p] = g.offset(y, x);
        tile.positions[p] = 0;
        tile.valid[p] = p == 0;
        tile.pixels[p] = y * g.w + x;
      }
      fn(tile);
    }
  }
}

// z[p][c] = bias[c] + the convolution at the tile's pixels.
template <int CO, int PH, int PW, int KH = 0, int RT = 0>
inline void Convolve(const Geometry& g, const float* __restrict buffer,
                     const float* __restrict kernel, const float* __restrict bias,
                     const Tile<PH, PW>& tile,
                     float (&z)[Tile<PH, PW>::kPixels][CO > 0 ? CO : kMaxChannels]) {
  constexpr int TP = Tile<PH, PW>::kPixels;
  const int64_t co = CO > 0 ? CO : g.co, stride = g.cols() * g.ci;
  const int64_t kh = KH > 0 ? KH : g.kh, row_taps = RT > 0 ? RT : g.kw * g.ci;
#pragma GCC unroll 16
  for (int p = 0; p < TP; ++p) {
#pragma omp simd
    for (int64_t c = 0; c < co; ++c) z[p][c] = bias[c];
  }
  for (int64_t i = 0; i < kh; ++i) {
#pragma GCC unroll 1
    for (int64_t t = 0; t < row_taps; ++t) {
      const float* __restrict k = kernel + (i * row_taps + t) * co;
#pragma GCC unroll 16
      for (int p = 0; p < TP; ++p) {
        const float v = buffer[tile.offsets[p] + i * stride + t];
#pragma omp simd
        for (int64_t c = 0; c < co; ++c) z[p][c] += v * k[c];
      }
    }
  }
}

// Forward of one example: pooled max / min of s = relu(conv), their window positions (the first
// in row-major order, the library's rule), and the example's sums of s and s^2 per channel.
template <int CO, int PH, int PW, int KH = 0, int RT = 0>
void ForwardExample(const Geometry& g, const float* __restrict x, const float* __restrict kernel,
                    const float* __restrict bias, float* __restrict pmax,
                    float* __restrict pmin, int8_t* __restrict amax, int8_t* __restrict amin,
                    float* __restrict sum, float* __restrict sum_sq, float* __restrict zout,
                    bool stats) {
  constexpr int TP = Tile<PH, PW>::kPixels;
  constexpr int64_t CW = CO > 0 ? CO : kMaxChannels;
  const int64_t co = CO > 0 ? CO : g.co, cells = g.ho * g.wo * co;
  std::vector<float> buffer(g.buffer_size());
  FillBuffer(g, x, buffer.data());
  std::fill(pmax, pmax + cells, -std::numeric_limits<float>::infinity());
  std::fill(pmin, pmin + cells, std::numeric_limits<float>::infinity());
  std::fill(amax, amax + cells, 0);
  std::fill(amin, amin + cells, 0);
  float total[CW], total_sq[CW];
  for (int64_t c = 0; c < co; ++c) total[c] = total_sq[c] = 0.0f;
  ForEachTile<PH, PW>(g, [&](const Tile<PH, PW>& tile) {
    float z[TP][CW];
    Convolve<CO, PH, PW, KH, RT>(g, buffer.data(), kernel, bias, tile, z);
    // The pre-activation, kept for the backward (a store of the map instead of its recompute).
#pragma GCC unroll 16
    for (int p = 0; p < TP; ++p) {
      if (!tile.valid[p]) continue;
      float* __restrict out = zout + tile.pixels[p] * co;
#pragma omp simd
      for (int64_t c = 0; c < co; ++c) out[c] = z[p][c];
    }
    // The window's max and min over its valid pixels, then the first pixel holding each (scanned
    // last to first); positions are floats so that every select is one vector blend. Tiles of the
    // same window (run-time window sizes) meet in the outputs.
    float mx[CW], mn[CW], ix[CW], in[CW], own_max[CW], own_min[CW];
    const int64_t at = tile.cell >= 0 ? tile.cell * co : 0;
    const bool first = PH > 0 || tile.cell < 0;
#pragma omp simd
    for (int64_t c = 0; c < co; ++c) {
      mx[c] = first ? -std::numeric_limits<float>::infinity() : pmax[at + c];
      mn[c] = first ? std::numeric_limits<float>::infinity() : pmin[at + c];
    }
#pragma GCC unroll 16
    for (int p = 0; p < TP; ++p) {
      const float none = tile.valid[p] ? 0.0f : std::numeric_limits<float>::infinity();
#pragma omp simd
      for (int64_t c = 0; c < co; ++c) {
        z[p][c] = std::max(z[p][c], 0.0f);
        mx[c] = std::max(mx[c], z[p][c] - none);
        mn[c] = std::min(mn[c], z[p][c] + none);
      }
      if (stats && tile.valid[p]) {
#pragma omp simd
        for (int64_t c = 0; c < co; ++c) {
          total[c] += z[p][c];
          total_sq[c] += z[p][c] * z[p][c];
        }
      }
    }
    // A tile holds the window's first max if it raised the max (an earlier tile wins a tie).
#pragma omp simd
    for (int64_t c = 0; c < co; ++c) {
      own_max[c] = first || pmax[at + c] < mx[c] ? 1.0f : 0.0f;
      own_min[c] = first || pmin[at + c] > mn[c] ? 1.0f : 0.0f;
      ix[c] = first ? 0.0f : amax[at + c];
      in[c] = first ? 0.0f : amin[at + c];
    }
#pragma GCC unroll 16
    for (int p = TP - 1; p >= 0; --p) {
      if (!tile.valid[p]) continue;
      const float k = tile.positions[p];
#pragma omp simd
      for (int64_t c = 0; c < co; ++c) {
        ix[c] = own_max[c] > 0.0f && z[p][c] == mx[c] ? k : ix[c];
        in[c] = own_min[c] > 0.0f && z[p][c] == mn[c] ? k : in[c];
      }
    }
    if (tile.cell >= 0) {
#pragma omp simd
      for (int64_t c = 0; c < co; ++c) {
        pmax[at + c] = mx[c];
        pmin[at + c] = mn[c];
        amax[at + c] = static_cast<int8_t>(ix[c]);
        amin[at + c] = static_cast<int8_t>(in[c]);
      }
    }
  });
  for (int64_t c = 0; c < co; ++c) {
    sum[c] = total[c];
    sum_sq[c] = total_sq[c];
  }
}


// dL/dz at the tile's pixels (zero where z <= 0 or the pixel is not valid), z the forward's.
template <int CO, int PH, int PW>
inline void TileGradient(const Geometry& g, const Cotangents& ct, const Tile<PH, PW>& tile,
                         float (&dz)[Tile<PH, PW>::kPixels][CO > 0 ? CO : kMaxChannels]) {
  constexpr int TP = Tile<PH, PW>::kPixels;
  constexpr int64_t CW = CO > 0 ? CO : kMaxChannels;
  const int64_t co = CO > 0 ? CO : g.co;
#pragma GCC unroll 16
  for (int p = 0; p < TP; ++p) {
    const float* __restrict z = ct.z + tile.pixels[p] * co;
#pragma omp simd
    for (int64_t c = 0; c < co; ++c) dz[p][c] = z[c];
  }
  float gx[CW], gn[CW], ix[CW], in[CW];  // positions as floats, as in the forward
  const int64_t at = tile.cell * co;
  const bool pooled = tile.cell >= 0;
#pragma omp simd
  for (int64_t c = 0; c < co; ++c) {
    gx[c] = pooled ? ct.gmax[at + c] : 0.0f;
    gn[c] = pooled ? ct.gmin[at + c] : 0.0f;
    ix[c] = pooled ? ct.amax[at + c] : -1.0f;
    in[c] = pooled ? ct.amin[at + c] : -1.0f;
  }
#pragma GCC unroll 16
  for (int p = 0; p < TP; ++p) {
    const float k = tile.positions[p], valid = tile.valid[p] ? 1.0f : 0.0f;  // no branch
#pragma omp simd
    for (int64_t c = 0; c < co; ++c) {
      const float z = dz[p][c];
      const float d = ct.gsum[c] + 2.0f * z * ct.gsum_sq[c] + (ix[c] == k ? gx[c] : 0.0f) +
                      (in[c] == k ? gn[c] : 0.0f);
      dz[p][c] = z > 0.0f && valid > 0.0f ? d : 0.0f;
    }
  }
}

// Kernel and bias gradients of one example into dkernel [taps, co] and dbias [co].
template <int CO, int PH, int PW, int KH = 0, int RT = 0>
void ParamGradExample(const Geometry& g, const float* __restrict x, const Cotangents& ct,
                      float* __restrict dkernel, float* __restrict dbias) {
  constexpr int TP = Tile<PH, PW>::kPixels;
  constexpr int64_t CW = CO > 0 ? CO : kMaxChannels;
  const int64_t co = CO > 0 ? CO : g.co, stride = g.cols() * g.ci;
  const int64_t kh = KH > 0 ? KH : g.kh, row_taps = RT > 0 ? RT : g.kw * g.ci;
  std::vector<float> buffer(g.buffer_size());
  FillBuffer(g, x, buffer.data());
  std::fill(dkernel, dkernel + g.taps() * co, 0.0f);
  float db[CW];
  for (int64_t c = 0; c < co; ++c) db[c] = 0.0f;
  ForEachTile<PH, PW>(g, [&](const Tile<PH, PW>& tile) {
    float dz[TP][CW];
    TileGradient<CO, PH, PW>(g, ct, tile, dz);
#pragma GCC unroll 16
    for (int p = 0; p < TP; ++p) {
#pragma omp simd
      for (int64_t c = 0; c < co; ++c) db[c] += dz[p][c];
    }
    for (int64_t i = 0; i < kh; ++i) {
#pragma GCC unroll 32
      for (int64_t t = 0; t < row_taps; ++t) {
        float* __restrict k = dkernel + (i * row_taps + t) * co;
        float acc[CW];
#pragma omp simd
        for (int64_t c = 0; c < co; ++c) acc[c] = k[c];
#pragma GCC unroll 16
        for (int p = 0; p < TP; ++p) {
          const float v = buffer[tile.offsets[p] + i * stride + t];
#pragma omp simd
          for (int64_t c = 0; c < co; ++c) acc[c] += v * dz[p][c];
        }
#pragma omp simd
        for (int64_t c = 0; c < co; ++c) k[c] = acc[c];
      }
    }
  });
  for (int64_t c = 0; c < co; ++c) dbias[c] = db[c];
}

// Input gradient of one example into dx [h, w, ci]; kernel_t is the kernel as [co, taps].
template <int CO, int PH, int PW, int KH = 0, int RT = 0>
void InputGradExample(const Geometry& g, const float* __restrict kernel_t, const Cotangents& ct,
                      float* __restrict dx) {
  constexpr int TP = Tile<PH, PW>::kPixels;
  constexpr int64_t CW = CO > 0 ? CO : kMaxChannels;
  const int64_t co = CO > 0 ? CO : g.co, taps = g.taps(), row_taps = g.kw * g.ci,
                stride = g.cols() * g.ci;
  std::vector<float> dbuffer(g.buffer_size(), 0.0f), t(taps);
  ForEachTile<PH, PW>(g, [&](const Tile<PH, PW>& tile) {
    float dz[TP][CW];
    TileGradient<CO, PH, PW>(g, ct, tile, dz);
    for (int p = 0; p < TP; ++p) {
      if (!tile.valid[p]) continue;
      float* __restrict tt = t.data();
#pragma omp simd
      for (int64_t k = 0; k < taps; ++k) tt[k] = 0.0f;
      for (int64_t c = 0; c < co; ++c) {
        const float d = dz[p][c];
        const float* __restrict kt = kernel_t + c * taps;
#pragma omp simd
        for (int64_t k = 0; k < taps; ++k) tt[k] += d * kt[k];
      }
      for (int64_t i = 0; i < g.kh; ++i) {
        float* __restrict row = dbuffer.data() + tile.offsets[p] + i * stride;
#pragma omp simd
        for (int64_t k = 0; k < row_taps; ++k) row[k] += tt[i * row_taps + k];
      }
    }
  });
  for (int64_t y = 0; y < g.h; ++y) {
    std::memcpy(dx + y * g.w * g.ci, dbuffer.data() + ((y + g.top()) * g.cols() + g.left()) * g.ci,
                sizeof(float) * g.w * g.ci);
  }
}

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
    ParallelFor(pool, items, [&](int64_t i) {
      const int64_t f = i / g.batch;
      const float* xi = x.typed_data() + i * g.h * g.w * g.ci;
      const float* k = kernel.typed_data() + f * g.taps() * g.co;
      const float* b = bias.typed_data() + f * g.co;
      if constexpr (kVec16<CO, PH, KH>) {
        ForwardExample16<PH, PW, KH, RT>(
            g, xi, k, b,
            {z->typed_data() + i * g.h * g.w * g.co, pmax->typed_data() + i * cells,
             pmin->typed_data() + i * cells, amax->typed_data() + i * cells,
             amin->typed_data() + i * cells},
            sums.data() + i * g.co, sums_sq.data() + i * g.co, stats);
      } else {
        ForwardExample<CO, PH, PW, KH, RT>(
            g, xi, k, b, pmax->typed_data() + i * cells, pmin->typed_data() + i * cells,
            amax->typed_data() + i * cells, amin->typed_data() + i * cells,
            sums.data() + i * g.co, sums_sq.data() + i * g.co,
            z->typed_data() + i * g.h * g.w * g.co, stats);
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
    std::vector<GradientPixel> pixels;  // the 16-channel path's summation order
    if constexpr (kVec16<CO, PH, KH>) pixels = GradientPixels<PH, PW>(g);
    ParallelFor(pool, items, [&](int64_t i) {
      const float* xi = x.typed_data() + i * g.h * g.w * g.ci;
      const Cotangents ct = ExampleCotangents(g, i, amax, amin, z, gmax, gmin, gsum, gsum_sq);
      if constexpr (kVec16<CO, PH, KH>) {
        ParamGradExample16<KH, RT>(g, xi, ct, pixels, dk.data() + i * taps * g.co,
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
  std::vector<float> kernel_t(g.folds * g.co * taps);
  for (int64_t f = 0; f < g.folds; ++f) {
    for (int64_t t = 0; t < taps; ++t) {
      for (int64_t c = 0; c < g.co; ++c) {
        kernel_t[(f * g.co + c) * taps + t] = kernel.typed_data()[(f * taps + t) * g.co + c];
      }
    }
  }
  Dispatch(g, [&]<int CO, int PH, int PW, int KH, int RT>() {
    ParallelFor(pool, items, [&](int64_t i) {
      const int64_t f = i / g.batch;
      InputGradExample<CO, PH, PW, KH, RT>(
          g, kernel_t.data() + f * g.co * taps,
          ExampleCotangents(g, i, amax, amin, z, gmax, gmin, gsum, gsum_sq),
          dx->typed_data() + i * g.h * g.w * g.ci);
    });
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
