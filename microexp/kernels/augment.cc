// A CPU kernel for the geometric augmentation of a batch: each example's flips, rotation and crop
// (microexp/train/augment.py's `apply_one`) in one pass, as an XLA FFI custom call. Each output
// pixel reads its 2x2 source corners straight from the input frame (the flips and the crop folded
// into where it reads): 4 multiply-adds per element, where XLA:CPU ran a flip, a rotation, a pad
// and a dynamic slice, each a pass over the batch.
// microexp/kernels/augment.py is the JAX side; the values equal augment.py's pure-JAX transforms
// (flip, `map_coordinates(order=1, mode='constant')` at its source coordinates, crop) to rounding.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Columns of an example's parameters (train/augment.py's `_kernel_augment`).
enum { kFlipH, kFlipV, kCos, kSin, kShiftY, kShiftX, kParams };

struct Options {
  int64_t t, h, w, c;  // frames per example, and each frame's [h, w, c]
  int64_t crop;        // the crop's padding (0: no crop)
  bool flow;           // optical flow: zero padding, the (u, v) vectors turn with the rotation
  bool signed_flips;   // a flip negates u (horizontal) or v (vertical)
  bool rotate;         // rotation on (else the parameters' angle is ignored)
};

// Where each output pixel of an example reads its frames: the offset of a 2x2 patch of the
// (unflipped) frame and the weights of its corners. The crop picks the pixel of the rotated map
// that the output pixel shows (edge padding clamps it into the map; flow's zero padding zeroes its
// weights), the rotation that pixel's source point in the flipped frame (its bilinear corners,
// zero outside the frame: `map_coordinates`' zeros), the flips the frame's pixels. The patch is
// clamped into the frame, its weights moved onto the corners that remain, so that every read is
// inside the frame (no padded copy). Without a rotation the angle is 0: one corner of weight 1.
// A zero weight hides only finite values: the engine checks its inputs are (train/inputs.py).
struct Sampler {
  std::vector<int32_t> base;
  std::vector<float> w00, w01, w10, w11;

  void Build(const Options& o, const float* prm) {
    const bool flip_h = prm[kFlipH] > 0.5f, flip_v = prm[kFlipV] > 0.5f;
    if (flip_h) {
      flip_v ? BuildFlipped<true, true>(o, prm) : BuildFlipped<true, false>(o, prm);
    } else {
      flip_v ? BuildFlipped<false, true>(o, prm) : BuildFlipped<false, false>(o, prm);
    }
  }

  // One frame [h, w, c] resampled into `out`, flow's (u, v) negated by the flips and turned by
  // the rotation: after the resampling (linear) where augment.py does it before.
  template <int C>
  void Sample(const Options& o, const float* prm, const float* __restrict frame,
              float* __restrict out) const {
    const int64_t c = C > 0 ? C : o.c, row = o.w * c, stride = Stride(o.w);
    const float su = prm[kFlipH] > 0.5f && o.signed_flips ? -1.0f : 1.0f;
    const float sv = prm[kFlipV] > 0.5f && o.signed_flips ? -1.0f : 1.0f;
    const bool turn = o.flow && o.rotate && c >= 2;
    const float cs = turn ? prm[kCos] : 1.0f, sn = turn ? prm[kSin] : 0.0f;
    for (int64_t y = 0; y < o.h; ++y) {
      for (int64_t x = 0; x < o.w; ++x) {
        const int64_t j = y * stride + x;
        const float* __restrict p = frame + base[j];
        float* __restrict to = out + (y * o.w + x) * c;
#pragma GCC unroll 4
        for (int64_t k = 0; k < c; ++k) {
          to[k] = w00[j] * p[k] + w01[j] * p[c + k] + w10[j] * p[row + k] +
                  w11[j] * p[row + c + k];
        }
        Vectors(c, su, sv, turn, cs, sn, to);
      }
    }
  }

  // Flow's (u, v) = v[0], v[1] of a pixel's c channels negated by the flips (su, sv = -1) and
  // turned (turn: c >= 2): as augment._rotate, (c u - s v, s u + c v) of the flipped vectors.
  static inline void Vectors(int64_t c, float su, float sv, bool turn, float cs, float sn,
                             float* v) {
    const float u = su * v[0];
    if (c < 2) {
      v[0] = u;
      return;
    }
    const float w = sv * v[1];
    v[0] = turn ? cs * u - sn * w : u;
    v[1] = turn ? sn * u + cs * w : w;
  }

 private:
  // 16 pixels of a row at a time (GCC / clang vector extension: AVX-512 where there is one).
  typedef float VF __attribute__((vector_size(64)));
  typedef int32_t VI __attribute__((vector_size(64)));
  static constexpr int32_t kLanes = 16;

  static int64_t Stride(int64_t w) { return (w + kLanes - 1) / kLanes * kLanes; }

  // The patch row (column) `on` = clamp(i, 0, n - 2) for the corners i, i + 1 of weights (a, b),
  // each zero outside 0 .. n - 1, and the weights (lo, hi) of its rows on, on + 1; flipped: the
  // frame's row n - 2 - on, the weights swapped.
  template <bool FLIP>
  static inline VI Axis(VI i, VF a, VF b, int32_t n, VF& lo, VF& hi) {
    const VF zero = {};
    const VI none = {};
    a = (i >= 0) & (i < n) ? a : zero;
    b = (i + 1 >= 0) & (i + 1 < n) ? b : zero;
    VI on = i < 0 ? none : i;
    on = on > n - 2 ? none + (n - 2) : on;
    const VF first = (on == i ? a : zero) + (on == i + 1 ? b : zero);
    const VF second = (on + 1 == i ? a : zero) + (on + 1 == i + 1 ? b : zero);
    lo = FLIP ? second : first;
    hi = FLIP ? first : second;
    return FLIP ? (n - 2) - on : on;
  }

  static inline VF Floor(VF x) {  // std::floor for |x| < 2^31
    const VF t = __builtin_convertvector(__builtin_convertvector(x, VI), VF);
    return x < t ? t - 1.0f : t;
  }

  template <bool FLIP_H, bool FLIP_V>
  void BuildFlipped(const Options& o, const float* prm) {
    const int32_t h = o.h, w = o.w, c = o.c;
    const int64_t size = h * Stride(w);  // rows padded to whole vectors
    base.resize(size), w00.resize(size), w01.resize(size), w10.resize(size), w11.resize(size);
    const float cs = o.rotate ? prm[kCos] : 1.0f, sn = o.rotate ? prm[kSin] : 0.0f;
    const float cy = (h - 1) / 2.0f, cx = (w - 1) / 2.0f;
    const int32_t dy = static_cast<int32_t>(prm[kShiftY]) - o.crop;
    const int32_t dx = static_cast<int32_t>(prm[kShiftX]) - o.crop;
    VI lane;
    for (int32_t k = 0; k < kLanes; ++k) lane[k] = k;
    const VF zero = {}, one = zero + 1.0f;
    const VI none = {};
    for (int32_t r = 0; r < h; ++r) {
      const int32_t ry = r + dy, my = std::clamp(ry, 0, h - 1);
      const bool row_kept = !o.flow || (ry >= 0 && ry < h);  // flow's zero padding
      const float gy = static_cast<float>(my) - cy;
      for (int32_t q0 = 0; q0 < w; q0 += kLanes) {
        const VI rx = lane + (q0 + dx);
        VI mx = rx < 0 ? none : rx;
        mx = mx > w - 1 ? none + (w - 1) : mx;
        const VF keep = !row_kept ? zero : !o.flow ? one : ((rx >= 0) & (rx < w) ? one : zero);
        // As augment._source_coords: the column and row terms, then the centre.
        const VF gx = __builtin_convertvector(mx, VF) - cx;
        const VF src_x = (cs * gx + sn * gy) + cx, src_y = (-sn * gx + cs * gy) + cy;
        const VF y0 = Floor(src_y), x0 = Floor(src_x);
        const VF fy = src_y - y0, fx = src_x - x0;
        // Far points have all their corners outside (weight 0) whatever the clamp.
        const float fh = static_cast<float>(h), fw = static_cast<float>(w);
        const VF cy0 = y0 < -2.0f ? zero - 2.0f : (y0 > fh ? zero + fh : y0);
        const VF cx0 = x0 < -2.0f ? zero - 2.0f : (x0 > fw ? zero + fw : x0);
        VF t0, t1, l0, l1;
        const VI py = Axis<FLIP_V>(__builtin_convertvector(cy0, VI), 1.0f - fy, fy, h, t0, t1);
        const VI px = Axis<FLIP_H>(__builtin_convertvector(cx0, VI), 1.0f - fx, fx, w, l0, l1);
        const VI b = (py * w + px) * c;
        const VF v00 = t0 * l0 * keep, v01 = t0 * l1 * keep, v10 = t1 * l0 * keep,
                 v11 = t1 * l1 * keep;
        const int64_t at = r * Stride(w) + q0;
        std::memcpy(base.data() + at, &b, sizeof(b));
        std::memcpy(w00.data() + at, &v00, sizeof(v00));
        std::memcpy(w01.data() + at, &v01, sizeof(v01));
        std::memcpy(w10.data() + at, &v10, sizeof(v10));
        std::memcpy(w11.data() + at, &v11, sizeof(v11));
      }
    }
  }
};

ffi::Error Augment(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> params,
                   ffi::ResultBuffer<ffi::F32> out, int64_t crop, int64_t flow,
                   int64_t signed_flips, int64_t rotate) {
  auto xd = x.dimensions();
  auto pd = params.dimensions();
  if (xd.size() < 5 || pd.size() < 2 || pd[pd.size() - 1] != kParams) {
    return ffi::Error::InvalidArgument(
        "augment: x must be [..., B, T, H, W, C], params [..., B, 6]");
  }
  int64_t items = 1, rows = 1;
  for (size_t i = 0; i + 4 < xd.size(); ++i) items *= xd[i];
  for (size_t i = 0; i + 1 < pd.size(); ++i) rows *= pd[i];
  if (items != rows) return ffi::Error::InvalidArgument("augment: one parameter row per example");
  const size_t n = xd.size();
  const Options o{xd[n - 4], xd[n - 3], xd[n - 2], xd[n - 1], crop, flow != 0, signed_flips != 0,
                  rotate != 0};
  if (o.h < 2 || o.w < 2 || o.c < 1 || crop < 0 || o.h * o.w * o.c >= (int64_t{1} << 31)) {
    return ffi::Error::InvalidArgument(
        "augment: frames must be at least 2 x 2, under 2^31 elements, the crop >= 0");
  }
  const int64_t frame = o.h * o.w * o.c, example = o.t * frame;
  auto run = [&](auto channels) {
    constexpr int C = decltype(channels)::value;
    auto one = [&](int64_t i) {
      thread_local Sampler sampler;
      const float* prm = params.typed_data() + i * kParams;
      sampler.Build(o, prm);
      for (int64_t f = 0; f < o.t; ++f) {
        const int64_t at = i * example + f * frame;
        sampler.Sample<C>(o, prm, x.typed_data() + at, out->typed_data() + at);
      }
    };
    // Small batches stay on the caller's thread: STSTNet's (32 x 28x28x3) takes ~0.1 ms, and
    // spread over the pool while the other CPU devices' folds run it was 0.02 ms per fold-step
    // slower (docs/training.md, "Tenth pass").
    microexp::ParallelFor(pool, items, one, items * example >= (1 << 20) ? items : 1);
  };
  // Compile-time channel counts for images (1: grey, 2: u, v; 3: u, v, magnitude or RGB).
  switch (o.c) {
    case 1: run(std::integral_constant<int, 1>()); break;
    case 2: run(std::integral_constant<int, 2>()); break;
    case 3: run(std::integral_constant<int, 3>()); break;
    default: run(std::integral_constant<int, 0>());
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MicroexpAugment, Augment,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("crop")
                                  .Attr<int64_t>("flow")
                                  .Attr<int64_t>("signed_flips")
                                  .Attr<int64_t>("rotate"));
