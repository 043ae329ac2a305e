// The conv -> ReLU -> max-pool kernel's shared pieces (conv_relu_pool.cc): an example's geometry
// and its zero-margin input buffer, the backward's view of an example, 16-lane vectors and their
// partial loads, and the forward's outputs of an example.
#ifndef MICROEXP_KERNELS_CONV_GEOMETRY_H_
#define MICROEXP_KERNELS_CONV_GEOMETRY_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace microexp::conv {

struct Geometry {
  int64_t folds, batch, h, w, ci, kh, kw, co, ho, wo, ph, pw, conv_top, conv_left, pool_top,
      pool_left;
  int64_t taps() const { return kh * kw * ci; }
  // The example's input is copied into a zero buffer with margins such that every pixel of every
  // pool window (in the image or in the pool's padding) reads its taps inside it.
  int64_t top() const { return conv_top + pool_top; }
  int64_t left() const { return conv_left + pool_left; }
  int64_t rows() const { return pool_top + std::max(h, ho * ph - pool_top) + kh - 1; }
  int64_t cols() const { return pool_left + std::max(w, wo * pw - pool_left) + kw - 1; }
  int64_t buffer_size() const { return rows() * cols() * ci; }
  // The buffer offset of the first tap of output pixel (y, x) (y >= -pool_top, x >= -pool_left).
  int64_t offset(int64_t y, int64_t x) const {
    return ((y + pool_top) * cols() + x + pool_left) * ci;
  }
};

// The example's input x [h, w, ci] in a zeroed margin buffer, with `slack` zeros after it.
inline std::vector<float> InputBuffer(const Geometry& g, const float* x, int64_t slack = 0) {
  std::vector<float> buffer(g.buffer_size() + slack);
  for (int64_t y = 0; y < g.h; ++y) {
    std::memcpy(buffer.data() + ((y + g.top()) * g.cols() + g.left()) * g.ci, x + y * g.w * g.ci,
                sizeof(float) * g.w * g.ci);
  }
  return buffer;
}

// Calls fn(buffer offset, pixel) for each pixel that no pool window covers (the rows and columns
// a VALID pool drops; their statistics count), row-major: after the windows, in both paths.
template <typename Fn>
inline void ForEachUncovered(const Geometry& g, const Fn& fn) {
  const int64_t covered_h = g.ho * g.ph - g.pool_top, covered_w = g.wo * g.pw - g.pool_left;
  for (int64_t y = 0; y < g.h; ++y) {
    for (int64_t x = 0; x < g.w; ++x) {
      if (y < covered_h && x < covered_w) continue;
      fn(g.offset(y, x), y * g.w + x);
    }
  }
}

// What the backward reads of one example: the forward's pool positions and pre-activation z
// [h, w, co], and the gradients of the pooled outputs and of the channel sums.
struct Cotangents {
  const int8_t* amax;
  const int8_t* amin;
  const float* z;
  const float* gmax;
  const float* gmin;
  const float* gsum;
  const float* gsum_sq;
};

// 16 channels in one vector register (GCC / clang vector extension).
typedef float Vec16 __attribute__((vector_size(64)));

inline Vec16 Load16(const float* p) {
  Vec16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline void Store16(float* p, Vec16 v) { std::memcpy(p, &v, sizeof(v)); }

// Vectors of 16 lanes that hold n floats.
constexpr int Vectors16(int n) { return (n + 15) / 16; }

// Lanes [0, N) of p, zeros above (a masked load where AVX-512 is targeted: nothing past p[N - 1]
// is read).
template <int N>
[[gnu::always_inline]] inline Vec16 LoadLanes(const float* p) {
#if defined(__AVX512F__)
  return reinterpret_cast<Vec16>(_mm512_maskz_loadu_ps((1u << N) - 1, p));
#else
  float f[16] = {};
  std::memcpy(f, p, sizeof(float) * N);
  return Load16(f);
#endif
}

// The int8 window positions of lanes [0, N) as floats, zeros above.
template <int N>
[[gnu::always_inline]] inline Vec16 LoadPositionLanes(const int8_t* p) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  return reinterpret_cast<Vec16>(
      _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8((1u << N) - 1, p))));
#else
  float f[16] = {};
  for (int c = 0; c < N; ++c) f[c] = p[c];
  return Load16(f);
#endif
}

typedef int32_t Int16 __attribute__((vector_size(64)));

// The forward's outputs of one example (layouts in conv_relu_pool.cc).
struct ForwardOutputs {
  float* __restrict z;
  float* __restrict pmax;
  float* __restrict pmin;
  int8_t* __restrict amax;
  int8_t* __restrict amin;
};

}  // namespace microexp::conv

#endif  // MICROEXP_KERNELS_CONV_GEOMETRY_H_
