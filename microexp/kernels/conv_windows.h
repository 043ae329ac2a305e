// The pool windows of an example as the vector paths walk them (conv_relu_pool16.h,
// conv_relu_pool_narrow.h): which of a window's pixels lie in the image, as compile-time masks
// where possible, the order of the pixels in which the gradients are summed, and a pixel's dL/dz.
#ifndef MICROEXP_KERNELS_CONV_WINDOWS_H_
#define MICROEXP_KERNELS_CONV_WINDOWS_H_

#include <cstdint>
#include <vector>

#include "conv_geometry.h"

namespace microexp::conv {

// The rows (or columns) of pool window `index` that lie in the image, as bits: bit r is set when
// index * window + r - pad is in [0, size).
inline int InsideMask(int64_t index, int window, int64_t pad, int64_t size) {
  int mask = 0;
  for (int r = 0; r < window; ++r) {
    const int64_t y = index * window + r - pad;
    mask |= (y >= 0 && y < size ? 1 : 0) << r;
  }
  return mask;
}

// Whether pixel (r, c) of a window is in the image: from the compile-time masks RM, CM, or (-1)
// from the run-time ones.
template <int RM, int CM>
[[gnu::always_inline]] inline bool Inside(int r, int c, int rm, int cm) {
  if constexpr (RM >= 0) {
    return ((RM >> r) & (CM >> c) & 1) != 0;
  } else {
    return ((rm >> r) & (cm >> c) & 1) != 0;
  }
}

// Calls fn.template operator()<RM, CM>() with the window's masks as compile-time constants where
// they are the whole window or all but its first or last row / column (the windows of 'SAME' and
// 'VALID' pools whose padding is under a window), else with RM = CM = -1 (run-time masks).
template <int PH, int PW, typename Fn>
[[gnu::always_inline]] inline auto WithMasks(int rm, int cm, const Fn& fn) {
  constexpr int kRows = (1 << PH) - 1, kCols = (1 << PW) - 1;
  const auto cols = [&]<int RM>() {
    if (cm == kCols) return fn.template operator()<RM, kCols>();
    if (cm == (kCols & ~1)) return fn.template operator()<RM, (kCols & ~1)>();
    if (cm == (kCols >> 1)) return fn.template operator()<RM, (kCols >> 1)>();
    return fn.template operator()<-1, -1>();
  };
  if (rm == kRows) return cols.template operator()<kRows>();
  if (rm == (kRows & ~1)) return cols.template operator()<(kRows & ~1)>();
  if (rm == (kRows >> 1)) return cols.template operator()<(kRows >> 1)>();
  return fn.template operator()<-1, -1>();
}

// Calls fn(cell, buffer offset, pixel, rm, cm) for every pool window of an example in row-major
// order: its flat index, the buffer offset of its top-left pixel's first tap, that pixel's
// y * w + x (it may lie in the pool's padding) and its row / column masks (`InsideMask`).
template <int PH, int PW, typename Fn>
[[gnu::always_inline]] inline void ForEachWindow(const Geometry& g, const Fn& fn) {
  for (int64_t wy = 0; wy < g.ho; ++wy) {
    const int rm = InsideMask(wy, PH, g.pool_top, g.h);
    const int64_t y = wy * PH - g.pool_top;
    for (int64_t wx = 0; wx < g.wo; ++wx) {
      const int cm = InsideMask(wx, PW, g.pool_left, g.w);
      const int64_t x = wx * PW - g.pool_left;
      fn(wy * g.wo + wx, g.offset(y, x), y * g.w + x, rm, cm);
    }
  }
}

// A pixel of the image in the order the gradients are summed: window by window (row-major, each
// window's pixels inside the image row-major), then the pixels no window covers.
struct GradientPixel {
  int32_t at;      // buffer offset of its first tap
  int32_t pixel;   // y * w + x
  int32_t cell;    // its window's flat index; -1: no window covers it
  float position;  // its row-major position in the window (0 if none)
};

// The image's pixels in that order (built once per call, shared by its examples).
template <int PH, int PW>
std::vector<GradientPixel> GradientPixels(const Geometry& g) {
  std::vector<GradientPixel> out;
  out.reserve(g.h * g.w);
  ForEachWindow<PH, PW>(g, [&](int64_t cell, int64_t at, int64_t pixel, int rm, int cm) {
    for (int p = 0; p < PH * PW; ++p) {
      if (!Inside<-1, -1>(p / PW, p % PW, rm, cm)) continue;
      out.push_back({static_cast<int32_t>(at + ((p / PW) * g.cols() + p % PW) * g.ci),
                     static_cast<int32_t>(pixel + (p / PW) * g.w + p % PW),
                     static_cast<int32_t>(cell), static_cast<float>(p)});
    }
  });
  ForEachUncovered(g, [&](int64_t at, int64_t pixel) {
    out.push_back({static_cast<int32_t>(at), static_cast<int32_t>(pixel), -1, 0.0f});
  });
  return out;
}

// dL/dz at one pixel of `GradientPixels`, its CO channels (at most 16) in lanes [0, CO), zero above
// and where z <= 0: BatchNorm's moments' gradients (gsum, gsum_sq: `LoadLanes<CO>` of the
// cotangents) and, where the pixel is its window's first max / min, the pooled outputs'. The
// per-tile path's expression (`TileGradient`), so the same bits.
template <int CO>
[[gnu::always_inline]] inline Vec16 PixelGradient(const Cotangents& ct, const GradientPixel& q,
                                                  Vec16 gsum, Vec16 gsum_sq) {
  const Vec16 zero = {};
  Vec16 gx = zero, gn = zero, ix = zero - 1.0f, in = zero - 1.0f;
  if (q.cell >= 0) {
    gx = LoadLanes<CO>(ct.gmax + q.cell * CO);
    gn = LoadLanes<CO>(ct.gmin + q.cell * CO);
    ix = LoadPositionLanes<CO>(ct.amax + q.cell * CO);
    in = LoadPositionLanes<CO>(ct.amin + q.cell * CO);
  }
  const Vec16 z = LoadLanes<CO>(ct.z + q.pixel * CO);
  const float k = q.position;
  const Vec16 d = gsum + 2.0f * z * gsum_sq + (ix == k ? gx : zero) + (in == k ? gn : zero);
  return z > zero ? d : zero;
}

}  // namespace microexp::conv

#endif  // MICROEXP_KERNELS_CONV_WINDOWS_H_
