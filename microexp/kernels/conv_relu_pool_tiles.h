// The conv -> ReLU -> max-pool kernel's per-tile path (conv_relu_pool.cc's `Dispatch`): any channel
// count up to 256 at run-time width, and Off-ApexNet's 6-channel first layer with a compile-time
// 2x2 window. A tile is a pool window's pixels computed together (or one pixel); forward, kernel
// gradient and input gradient of one example at a time, every sum in a fixed order.
#ifndef MICROEXP_KERNELS_CONV_RELU_POOL_TILES_H_
#define MICROEXP_KERNELS_CONV_RELU_POOL_TILES_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "conv_geometry.h"

namespace microexp::conv {

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
  ForEachUncovered(g, [&](int64_t at, int64_t pixel) {
    tile.cell = -1;
    for (int p = 0; p < T::kPixels; ++p) {
      tile.offsets[p] = at;
      tile.positions[p] = 0;
      tile.valid[p] = p == 0;
      tile.pixels[p] = pixel;
    }
    fn(tile);
  });
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
                    const float* __restrict bias, const ForwardOutputs& out,
                    float* __restrict sum, float* __restrict sum_sq, bool stats) {
  float* __restrict pmax = out.pmax;
  float* __restrict pmin = out.pmin;
  int8_t* __restrict amax = out.amax;
  int8_t* __restrict amin = out.amin;
  float* __restrict zout = out.z;
  constexpr int TP = Tile<PH, PW>::kPixels;
  constexpr int64_t CW = CO > 0 ? CO : kMaxChannels;
  const int64_t co = CO > 0 ? CO : g.co, cells = g.ho * g.wo * co;
  const std::vector<float> buffer = InputBuffer(g, x);
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
      float* __restrict zp = zout + tile.pixels[p] * co;
#pragma omp simd
      for (int64_t c = 0; c < co; ++c) zp[c] = z[p][c];
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
  const std::vector<float> buffer = InputBuffer(g, x);
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

}  // namespace microexp::conv

#endif  // MICROEXP_KERNELS_CONV_RELU_POOL_TILES_H_
