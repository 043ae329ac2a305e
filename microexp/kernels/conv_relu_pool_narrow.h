// The conv -> ReLU -> max-pool kernel for narrow layers (conv_relu_pool.cc's `Dispatch`: few
// output channels and short kernel rows, such as Off-ApexNet's first conv: 1 input channel, 5x5,
// 6 filters), where a vector of one pixel's 6 channels would fill few lanes. The kernel gradient
// fills the lanes with a kernel row's taps x channels (30 for Off-ApexNet): a pixel's whole kernel
// gradient is a few FMAs of permutes of an input row and of the pixel's dL/dz. The forward (one
// input channel) fills them with two pixels' channels: a window row per vector, each tap one
// permute of an input row. Every sum runs in the per-tile path's order (the same bits).
#ifndef MICROEXP_KERNELS_CONV_RELU_POOL_NARROW_H_
#define MICROEXP_KERNELS_CONV_RELU_POOL_NARROW_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "conv_geometry.h"
#include "conv_windows.h"

namespace microexp::conv {

// Whether a `Dispatch` instantiation's kernel gradient takes the narrow path: compile-time sizes,
// under 16 channels, a kernel row within one vector and its accumulators within the registers.
template <int CO, int PH, int KH, int RT>
constexpr bool kNarrow = CO > 0 && CO < 16 && PH > 0 && KH > 0 && RT <= 16 &&
                         KH * Vectors16(CO * RT) <= 24;

// out[l] = v[idx[l]] for the 16 lanes (one vpermps where AVX-512 is targeted).
inline Vec16 Permute16(Vec16 v, Int16 idx) {
#if defined(__AVX512F__)
  return reinterpret_cast<Vec16>(
      _mm512_permutexvar_ps(reinterpret_cast<__m512i>(idx), reinterpret_cast<__m512>(v)));
#else
  Vec16 out;
  for (int l = 0; l < 16; ++l) out[l] = v[idx[l]];
  return out;
#endif
}

// The narrow kernel and bias gradients of one example (`ParamGradExample`'s outputs). Lane l of a
// kernel row's vector s is tap (16 s + l) / CO, channel (16 s + l) % CO: dkernel's own layout, so
// the accumulators are stored as they are.
template <int CO, int KH, int RT>
void ParamGradExampleNarrow(const Geometry& g, const float* __restrict x, const Cotangents& ct,
                            const std::vector<GradientPixel>& pixels, float* __restrict dkernel,
                            float* __restrict dbias) {
  constexpr int kRowVectors = Vectors16(CO * RT), kVectors = KH * kRowVectors;
  const std::vector<float> buffer = InputBuffer(g, x, 16);  // a row's load reads up to 16 floats
  const float* __restrict b = buffer.data();
  Int16 taps[kRowVectors], channels[kRowVectors];
  for (int s = 0; s < kRowVectors; ++s) {
    for (int l = 0; l < 16; ++l) {
      const int lane = std::min(16 * s + l, CO * RT - 1);  // padding lanes repeat the last
      taps[s][l] = lane / CO;
      channels[s][l] = lane % CO;
    }
  }
  const int64_t stride = g.cols() * g.ci, n = static_cast<int64_t>(pixels.size());
  const GradientPixel* __restrict px = pixels.data();
  const Cotangents c = ct;
  const Vec16 gsum = LoadLanes<CO>(c.gsum), gsum_sq = LoadLanes<CO>(c.gsum_sq);
  Vec16 acc[kVectors] = {}, db = {};
  for (int64_t j = 0; j < n; ++j) {
    const Vec16 dz = PixelGradient<CO>(c, px[j], gsum, gsum_sq);
    db += dz;
    Vec16 d[kRowVectors];
#pragma GCC unroll 4
    for (int s = 0; s < kRowVectors; ++s) d[s] = Permute16(dz, channels[s]);
#pragma GCC unroll 16
    for (int i = 0; i < KH; ++i) {
      const Vec16 row = Load16(b + px[j].at + i * stride);
#pragma GCC unroll 4
      for (int s = 0; s < kRowVectors; ++s) {
        acc[i * kRowVectors + s] += Permute16(row, taps[s]) * d[s];
      }
    }
  }
  float out[kVectors * 16];
#pragma GCC unroll 32
  for (int r = 0; r < kVectors; ++r) Store16(out + r * 16, acc[r]);
  for (int i = 0; i < KH; ++i) {
    std::memcpy(dkernel + i * RT * CO, out + i * kRowVectors * 16, sizeof(float) * RT * CO);
  }
  std::memcpy(dbias, &db, sizeof(float) * CO);
}

// 8 floats (a pixel's channels in the forward's layout).
typedef float Vec8 __attribute__((vector_size(32)));

// Lanes [8 Q, 8 Q + 8) of v.
template <int Q>
[[gnu::always_inline]] inline Vec8 Half(Vec16 v) {
#if defined(__AVX512DQ__)
  return reinterpret_cast<Vec8>(_mm512_extractf32x8_ps(reinterpret_cast<__m512>(v), Q));
#else
  Vec8 h;
  std::memcpy(&h, reinterpret_cast<const char*>(&v) + Q * 32, 32);
  return h;
#endif
}

// Stores lanes [0, N) of v (a masked store where AVX-512 is targeted).
template <int N>
[[gnu::always_inline]] inline void StoreLanes(float* p, Vec8 v) {
#if defined(__AVX512F__) && defined(__AVX512VL__)
  _mm256_mask_storeu_ps(p, (1u << N) - 1, reinterpret_cast<__m256>(v));
#else
  std::memcpy(p, &v, sizeof(float) * N);
#endif
}

// Stores lanes [0, N) of v (small whole numbers) as int8.
template <int N>
[[gnu::always_inline]] inline void StorePositionLanes(int8_t* p, Vec8 v) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  _mm_mask_storeu_epi8(p, (1u << N) - 1,
                       _mm256_cvtepi32_epi8(_mm256_cvttps_epi32(reinterpret_cast<__m256>(v))));
#else
  for (int c = 0; c < N; ++c) p[c] = static_cast<int8_t>(v[c]);
#endif
}

// Whether a `Dispatch` instantiation's forward takes the narrow path (with one input channel,
// checked at run time): up to 8 channels, windows 2 pixels wide, and a kernel row within a vector.
template <int CO, int PH, int PW, int KH, int RT>
constexpr bool kNarrowForward = CO > 0 && CO <= 8 && PH > 0 && PW == 2 && KH > 0 && RT < 16;

// BatchNorm's moments of up to 8 channels, by value so that they stay in registers (`Sums16`).
struct Sums8 {
  Vec8 total, total_sq;
};

// CO values in lanes [0, CO) and again in [8, 8 + CO) (the two pixels of a window's row), zero
// elsewhere.
template <int CO>
inline Vec16 TwoPixelLanes(const float* v) {
  float lanes[16] = {};
  for (int c = 0; c < CO; ++c) lanes[c] = lanes[8 + c] = v[c];
  return Load16(lanes);
}

// The kernel [KH, KW, 1, CO] as the narrow forward reads it: per tap, its CO weights as
// `TwoPixelLanes`.
template <int CO, int KH, int RT>
void ForwardKernelNarrow(const float* __restrict kernel, Vec16* __restrict out) {
  for (int t = 0; t < KH * RT; ++t) out[t] = TwoPixelLanes<CO>(kernel + t * CO);
}

// One pool window of the narrow forward (`ForwardWindow16`'s outputs and order): a vector per
// window row holds its two pixels' channels (lanes [0, 8) and [8, 16)); tap t of a kernel row is
// a row of the input broadcast by one permute (pixel 0 reads input column t, pixel 1 column
// t + 1). Pixels outside the image (`Inside`) are convolved but neither stored nor pooled.
template <int CO, int PH, int KH, int RT, int RM, int CM>
[[gnu::always_inline]] inline Sums8 ForwardWindowNarrow(
    int64_t row_stride, int64_t width, const float* __restrict buffer,
    const Vec16* __restrict kernel, Vec16 bias, const Int16* __restrict taps, int64_t cell,
    int64_t at, int64_t pixel, int rm, int cm, ForwardOutputs out, Sums8 sums, bool stats) {
  Vec16 z[PH];
#pragma GCC unroll 8
  for (int r = 0; r < PH; ++r) z[r] = bias;
  // Input row u serves window row r as kernel row u - r: each broadcast once, and every z still
  // sums its taps in kernel order.
#pragma GCC unroll 16
  for (int u = 0; u < PH + KH - 1; ++u) {
    const Vec16 row = Load16(buffer + at + u * row_stride);
#pragma GCC unroll 16
    for (int t = 0; t < RT; ++t) {
      const Vec16 v = Permute16(row, taps[t]);
#pragma GCC unroll 8
      for (int r = 0; r < PH; ++r) {
        if (u - r >= 0 && u - r < KH) z[r] += v * kernel[(u - r) * RT + t];
      }
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  const Vec8 zero = {};
  Vec8 s[PH * 2], mx = zero - inf, mn = zero + inf, ix = zero, in = zero;
#pragma GCC unroll 16
  for (int p = 0; p < PH * 2; ++p) {
    s[p] = p % 2 == 0 ? Half<0>(z[p / 2]) : Half<1>(z[p / 2]);
    if (!Inside<RM, CM>(p / 2, p % 2, rm, cm)) continue;
    StoreLanes<CO>(out.z + (pixel + (p / 2) * width + p % 2) * CO, s[p]);
    s[p] = s[p] < zero ? zero : s[p];  // std::max(z, 0)
    mx = mx < s[p] ? s[p] : mx;
    mn = s[p] < mn ? s[p] : mn;
    if (stats) {
      sums.total += s[p];
      sums.total_sq += s[p] * s[p];
    }
  }
#pragma GCC unroll 16
  for (int p = PH * 2 - 1; p >= 0; --p) {
    if (!Inside<RM, CM>(p / 2, p % 2, rm, cm)) continue;
    ix = s[p] == mx ? zero + static_cast<float>(p) : ix;
    in = s[p] == mn ? zero + static_cast<float>(p) : in;
  }
  if (cell < 0) return sums;
  StoreLanes<CO>(out.pmax + cell * CO, mx);
  StoreLanes<CO>(out.pmin + cell * CO, mn);
  StorePositionLanes<CO>(out.amax + cell * CO, ix);
  StorePositionLanes<CO>(out.amin + cell * CO, in);
  return sums;
}

// The narrow forward of one example with one input channel (`ForwardExample`'s outputs, the same
// bits): windows row-major, then the pixels no window covers (a one-pixel window each).
template <int CO, int PH, int KH, int RT>
void ForwardExampleNarrow(const Geometry& g, const float* __restrict x,
                          const Vec16* __restrict kernel, const float* __restrict bias,
                          const ForwardOutputs& out, float* __restrict sum,
                          float* __restrict sum_sq, bool stats) {
  const std::vector<float> buffer = InputBuffer(g, x, 16);  // a row's load reads up to 16 floats
  const float* __restrict b = buffer.data();
  const Vec16 bias2 = TwoPixelLanes<CO>(bias);
  Int16 taps[RT];
  for (int t = 0; t < RT; ++t) {
    for (int l = 0; l < 16; ++l) taps[t][l] = t + (l >= 8 ? 1 : 0);
  }
  const int64_t stride = g.cols();
  const ForwardOutputs o = out;
  Sums8 sums = {};
  ForEachWindow<PH, 2>(g, [&](int64_t cell, int64_t at, int64_t pixel, int rm, int cm) {
    sums = WithMasks<PH, 2>(rm, cm, [&]<int RM, int CM>() {
      return ForwardWindowNarrow<CO, PH, KH, RT, RM, CM>(stride, g.w, b, kernel, bias2, taps,
                                                         cell, at, pixel, rm, cm, o, sums, stats);
    });
  });
  ForEachUncovered(g, [&](int64_t at, int64_t pixel) {
    sums = ForwardWindowNarrow<CO, 1, KH, RT, 1, 1>(stride, g.w, b, kernel, bias2, taps, -1, at,
                                                    pixel, 1, 1, o, sums, stats);
  });
  std::memcpy(sum, &sums.total, sizeof(float) * CO);
  std::memcpy(sum_sq, &sums.total_sq, sizeof(float) * CO);
}

}  // namespace microexp::conv

#endif  // MICROEXP_KERNELS_CONV_RELU_POOL_NARROW_H_
