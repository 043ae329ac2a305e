// The conv -> ReLU -> max-pool kernel's 16-channel path (conv_relu_pool.cc's `Dispatch`: STSTNet's
// layer, Off-ApexNet's second), compile-time kernel rows and pool windows, every sum in the order
// of the per-tile code it replaced (the same bits, docs/training.md). Forward: a window's pixels
// inside the image convolved in registers, pooled, and added to BatchNorm's moments, which stay in
// registers from window to window. Kernel gradient: the taps' accumulators in registers, pixel
// gradients computed as they are used. Input gradient: a pixel's taps in registers, its gradient
// broadcast channel by channel. Windows with padding get their own instantiations (`WithMasks`),
// so that no pixel of the pool's padding is convolved or branched on.
#ifndef MICROEXP_KERNELS_CONV_RELU_POOL16_H_
#define MICROEXP_KERNELS_CONV_RELU_POOL16_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "conv_geometry.h"
#include "conv_windows.h"

namespace microexp::conv {

// What a window's pixels need of the geometry, by value so that it stays in registers.
struct Strides16 {
  int64_t row;    // buffer floats per row (cols * ci)
  int64_t pixel;  // buffer floats per pixel (ci)
  int64_t width;  // pixels per row of the image (w)
  explicit Strides16(const Geometry& g) : row(g.cols() * g.ci), pixel(g.ci), width(g.w) {}
};

typedef int8_t Byte16 __attribute__((vector_size(16)));

// The window positions of 16 channels (small whole numbers as floats) stored as int8.
inline void StorePositions16(int8_t* p, Vec16 v) {
  const Byte16 b = __builtin_convertvector(__builtin_convertvector(v, Int16), Byte16);
  std::memcpy(p, &b, sizeof(b));
}

// Per-channel sums of s and s^2 (BatchNorm's moments), carried by value from window to window so
// that they stay in registers.
struct Sums16 {
  Vec16 total, total_sq;
};

// One pool window of the 16-channel forward: its pixels inside the image (`Inside`) convolved in
// vector registers, their pre-activation stored for the backward, s = relu(z) pooled (max, min and
// the first position of each) and added to `sums` (returned).
template <int PH, int PW, int KH, int RT, int RM, int CM>
[[gnu::always_inline]] inline Sums16 ForwardWindow16(Strides16 st, const float* __restrict buffer,
                                                     const float* __restrict kernel, Vec16 bias,
                                                     int64_t cell, int64_t at, int64_t pixel,
                                                     int rm, int cm, ForwardOutputs out,
                                                     Sums16 sums) {
  constexpr int TP = PH * PW;
  Vec16 z[TP];
#pragma GCC unroll 16
  for (int p = 0; p < TP; ++p) z[p] = bias;
  for (int64_t i = 0; i < KH; ++i) {
#pragma GCC unroll 1
    for (int64_t t = 0; t < RT; ++t) {
      const Vec16 k = Load16(kernel + (i * RT + t) * 16);
#pragma GCC unroll 16
      for (int p = 0; p < TP; ++p) {
        if (!Inside<RM, CM>(p / PW, p % PW, rm, cm)) continue;
        z[p] += buffer[at + (p / PW + i) * st.row + (p % PW) * st.pixel + t] * k;
      }
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  const Vec16 zero = {};
  Vec16 mx = zero - inf, mn = zero + inf, ix = zero, in = zero;
#pragma GCC unroll 16
  for (int p = 0; p < TP; ++p) {
    if (!Inside<RM, CM>(p / PW, p % PW, rm, cm)) continue;
    Store16(out.z + (pixel + (p / PW) * st.width + p % PW) * 16, z[p]);  // for the backward
    z[p] = z[p] < zero ? zero : z[p];  // std::max(z, 0)
    mx = mx < z[p] ? z[p] : mx;        // std::max(mx, s)
    mn = z[p] < mn ? z[p] : mn;        // std::min(mn, s)
    sums.total += z[p];
    sums.total_sq += z[p] * z[p];
  }
  // The first pixel holding the max and the min (scanned last to first).
#pragma GCC unroll 16
  for (int p = TP - 1; p >= 0; --p) {
    if (!Inside<RM, CM>(p / PW, p % PW, rm, cm)) continue;
    ix = z[p] == mx ? zero + static_cast<float>(p) : ix;
    in = z[p] == mn ? zero + static_cast<float>(p) : in;
  }
  Store16(out.pmax + cell * 16, mx);
  Store16(out.pmin + cell * 16, mn);
  StorePositions16(out.amax + cell * 16, ix);
  StorePositions16(out.amin + cell * 16, in);
  return sums;
}

// The 16-channel forward of one example (`ForwardExample`'s outputs).
template <int PH, int PW, int KH, int RT>
void ForwardExample16(const Geometry& g, const float* __restrict x, const float* __restrict kernel,
                      const float* __restrict bias, const ForwardOutputs& out,
                      float* __restrict sum, float* __restrict sum_sq, bool stats) {
  const std::vector<float> buffer = InputBuffer(g, x);
  const float* __restrict b = buffer.data();
  const Vec16 bias16 = Load16(bias);
  const Strides16 st(g);
  Sums16 sums = {};
  ForEachWindow<PH, PW>(g, [&](int64_t cell, int64_t at, int64_t pixel, int rm, int cm) {
    sums = WithMasks<PH, PW>(rm, cm, [&]<int RM, int CM>() {
      return ForwardWindow16<PH, PW, KH, RT, RM, CM>(st, b, kernel, bias16, cell, at, pixel, rm,
                                                     cm, out, sums);
    });
  });
  ForEachUncovered(g, [&](int64_t at, int64_t pixel) {
    // A window of one pixel (the same arithmetic), its pooled outputs to a scratch cell.
    float scratch_f[32];
    int8_t scratch_i[32];
    const ForwardOutputs o{out.z, scratch_f, scratch_f + 16, scratch_i, scratch_i + 16};
    sums = ForwardWindow16<1, 1, KH, RT, 1, 1>(st, b, kernel, bias16, 0, at, pixel, 1, 1, o, sums);
  });
  // Without stats the sums are not wanted: zeros, as the other paths give.
  Store16(sum, stats ? sums.total : Vec16{});
  Store16(sum_sq, stats ? sums.total_sq : Vec16{});
}

// The largest divisor of n that is at most 28: a block of kernel-gradient taps whose 16-channel
// accumulators fit in the 32 vector registers beside the gradient and a product.
constexpr int TapBlock(int n) {
  for (int b = 28; b > 1; --b) {
    if (n % b == 0) return b;
  }
  return 1;
}

// The 16-channel kernel and bias gradients of one example (`ParamGradExample`'s outputs), the
// kernel gradient's accumulators in registers, a block of taps at a time (one block: the pixel
// gradients computed as they are used; more: computed once into a scratch first). Every sum runs
// over `pixels` in order, as in the other paths.
template <int KH, int RT>
void ParamGradExample16(const Geometry& g, const float* __restrict x, const Cotangents& ct,
                        const std::vector<GradientPixel>& pixels, float* __restrict dkernel,
                        float* __restrict dbias) {
  constexpr int kTaps = KH * RT, kBlock = TapBlock(kTaps);
  const std::vector<float> buffer = InputBuffer(g, x);
  const float* __restrict b = buffer.data();
  const int64_t stride = g.cols() * g.ci, n = static_cast<int64_t>(pixels.size());
  const GradientPixel* __restrict px = pixels.data();
  const Cotangents c = ct;
  const Vec16 gsum = LoadLanes<16>(c.gsum), gsum_sq = LoadLanes<16>(c.gsum_sq);
  Vec16 db = {};
  if constexpr (kBlock == kTaps) {
    Vec16 acc[kTaps] = {};
    for (int64_t j = 0; j < n; ++j) {
      const Vec16 v = PixelGradient<16>(c, px[j], gsum, gsum_sq);
      db += v;
      const float* __restrict src = b + px[j].at;
#pragma GCC unroll 32
      for (int u = 0; u < kTaps; ++u) acc[u] += src[(u / RT) * stride + u % RT] * v;
    }
#pragma GCC unroll 32
    for (int u = 0; u < kTaps; ++u) Store16(dkernel + u * 16, acc[u]);
  } else {
    thread_local std::vector<float> scratch;  // not zeroed: each entry is written before it is read
    if (scratch.size() < static_cast<size_t>(n * 16)) scratch.resize(n * 16);
    float* __restrict dz = scratch.data();
    for (int64_t j = 0; j < n; ++j) {
      const Vec16 v = PixelGradient<16>(c, px[j], gsum, gsum_sq);
      db += v;
      Store16(dz + j * 16, v);
    }
    for (int block = 0; block < kTaps; block += kBlock) {
      Vec16 acc[kBlock] = {};
      for (int64_t j = 0; j < n; ++j) {
        const Vec16 v = Load16(dz + j * 16);
        const float* __restrict src = b + px[j].at;
#pragma GCC unroll 32
        for (int u = 0; u < kBlock; ++u) {
          const int tap = block + u;
          acc[u] += src[(tap / RT) * stride + tap % RT] * v;
        }
      }
#pragma GCC unroll 32
      for (int u = 0; u < kBlock; ++u) Store16(dkernel + (block + u) * 16, acc[u]);
    }
  }
  Store16(dbias, db);
}

// The kernel [taps, 16] (HWIO, one fold) as the input gradient reads it: per output channel, its
// KH rows of taps, each zero-padded to whole vectors ([16][KH][Vectors16(RT) * 16]).
template <int KH, int RT>
void InputGradKernel16(const float* __restrict kernel, float* __restrict out) {
  constexpr int kRow = Vectors16(RT) * 16;
  std::fill(out, out + 16 * KH * kRow, 0.0f);
  for (int c = 0; c < 16; ++c) {
    for (int i = 0; i < KH; ++i) {
      for (int t = 0; t < RT; ++t) out[(c * KH + i) * kRow + t] = kernel[(i * RT + t) * 16 + c];
    }
  }
}

// The 16-channel input gradient of one example into dx [h, w, ci] (`InputGradExample`'s output,
// the same sums in the same order): per pixel of `pixels`, its dL/dz broadcast channel by channel
// against the kernel rows (`InputGradKernel16`), all of the pixel's taps in registers, then added
// into the pixel's rows of a margin buffer. A row's padding lanes add +0.0 past its end (the buffer
// has a vector of slack; a sum from +0.0 is never -0.0, so the bits are those of the unpadded sum).
template <int KH, int RT>
void InputGradExample16(const Geometry& g, const float* __restrict kernel_rows,
                        const Cotangents& ct, const std::vector<GradientPixel>& pixels,
                        float* __restrict dx) {
  constexpr int kRowVectors = Vectors16(RT), kVectors = KH * kRowVectors;
  std::vector<float> dbuffer(g.buffer_size() + 16, 0.0f);
  float* __restrict db = dbuffer.data();
  const int64_t stride = g.cols() * g.ci, n = static_cast<int64_t>(pixels.size());
  const GradientPixel* __restrict px = pixels.data();
  const Cotangents c = ct;
  const Vec16 gsum = LoadLanes<16>(c.gsum), gsum_sq = LoadLanes<16>(c.gsum_sq);
  for (int64_t j = 0; j < n; ++j) {
    float d[16];
    Store16(d, PixelGradient<16>(c, px[j], gsum, gsum_sq));
    Vec16 acc[kVectors] = {};
#pragma GCC unroll 16
    for (int ch = 0; ch < 16; ++ch) {
      const Vec16 dc = Vec16{} + d[ch];
#pragma GCC unroll 32
      for (int r = 0; r < kVectors; ++r) {
        acc[r] += dc * Load16(kernel_rows + (ch * kVectors + r) * 16);
      }
    }
    float* __restrict row = db + px[j].at;
#pragma GCC unroll 32
    for (int r = 0; r < kVectors; ++r) {
      float* at = row + (r / kRowVectors) * stride + (r % kRowVectors) * 16;
      Store16(at, Load16(at) + acc[r]);
    }
  }
  for (int64_t y = 0; y < g.h; ++y) {
    std::memcpy(dx + y * g.w * g.ci, db + ((y + g.top()) * g.cols() + g.left()) * g.ci,
                sizeof(float) * g.w * g.ci);
  }
}

}  // namespace microexp::conv

#endif  // MICROEXP_KERNELS_CONV_RELU_POOL16_H_
