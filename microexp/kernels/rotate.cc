// A CPU kernel for the rotation augmentation: maps [..., H, W, P] resampled bilinearly at their
// rotation about the centre (zeros outside), as an XLA FFI custom call. Each output pixel reads its
// 2x2 source corners directly: the work is 4 multiply-adds per element, where XLA:CPU's gather or
// shifted sums of the same cost one or many passes over the maps. microexp/kernels/rotate.py is the
// JAX side; the values are `map_coordinates(order=1, mode='constant')` at microexp/train/augment.py's
// source coordinates.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// One map [h, w, p] rotated by (cos, sin), read from `padded`: the map inside a zero border of 2
// pixels, [h + 4, w + 4, p], so that every (clipped) 2x2 source patch lies inside it, as in
// augment._rotation_sampler. The coordinates of a row are computed first (a loop the compiler
// vectorises), then each pixel's 4 corners are read without a bounds check.
void RotateMap(int64_t h, int64_t w, int64_t p, float c, float s, const float* __restrict padded,
               float* __restrict out) {
  const float cy = (h - 1) / 2.0f, cx = (w - 1) / 2.0f;
  const int64_t row = (w + 4) * p;
  std::vector<int64_t> base(w);
  std::vector<float> w00(w), w01(w), w10(w), w11(w);
  for (int64_t r = 0; r < h; ++r) {
    const float gy = static_cast<float>(r) - cy;
    for (int64_t q = 0; q < w; ++q) {
      const float gx = static_cast<float>(q) - cx;
      // As augment._source_coords: the column and row terms, then the centre.
      const float src_x = (c * gx + s * gy) + cx, src_y = (-s * gx + c * gy) + cy;
      const float y0 = std::floor(src_y), x0 = std::floor(src_x);
      const float fy = src_y - y0, fx = src_x - x0;
      const float py = std::clamp(y0 + 2.0f, 0.0f, static_cast<float>(h + 2));
      const float px = std::clamp(x0 + 2.0f, 0.0f, static_cast<float>(w + 2));
      base[q] = static_cast<int64_t>(py) * row + static_cast<int64_t>(px) * p;
      w00[q] = (1 - fy) * (1 - fx);
      w01[q] = (1 - fy) * fx;
      w10[q] = fy * (1 - fx);
      w11[q] = fy * fx;
    }
    for (int64_t q = 0; q < w; ++q) {
      const float* __restrict v = padded + base[q];
      float* __restrict o = out + (r * w + q) * p;
      for (int64_t k = 0; k < p; ++k) {
        o[k] = w00[q] * v[k] + w01[q] * v[p + k] + w10[q] * v[row + k] + w11[q] * v[row + p + k];
      }
    }
  }
}

ffi::Error Rotate(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> maps, ffi::Buffer<ffi::F32> cos_sin,
                  ffi::ResultBuffer<ffi::F32> out) {
  auto md = maps.dimensions();
  auto cd = cos_sin.dimensions();
  if (md.size() < 3 || cd.size() < 1 || cd[cd.size() - 1] != 2) {
    return ffi::Error::InvalidArgument("rotate: maps must be [..., H, W, P], cos_sin [..., 2]");
  }
  int64_t items = 1, angles = 1;
  for (size_t i = 0; i + 3 < md.size(); ++i) items *= md[i];
  for (size_t i = 0; i + 1 < cd.size(); ++i) angles *= cd[i];
  if (items != angles) {
    return ffi::Error::InvalidArgument("rotate: one (cos, sin) per map");
  }
  const int64_t h = md[md.size() - 3], w = md[md.size() - 2], p = md[md.size() - 1];
  const int64_t size = h * w * p;
  auto one = [&](int64_t i) {
    std::vector<float> padded((h + 4) * (w + 4) * p, 0.0f);
    const float* map = maps.typed_data() + i * size;
    for (int64_t r = 0; r < h; ++r) {
      std::copy(map + r * w * p, map + (r + 1) * w * p, padded.data() + ((r + 2) * (w + 4) + 2) * p);
    }
    RotateMap(h, w, p, cos_sin.typed_data()[2 * i], cos_sin.typed_data()[2 * i + 1],
              padded.data(), out->typed_data() + i * size);
  };
  // Batches of a few small maps stay on the caller's thread.
  microexp::ParallelFor(pool, items, one, items * size >= (1 << 15) ? items : 1);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MicroexpRotate, Rotate,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
