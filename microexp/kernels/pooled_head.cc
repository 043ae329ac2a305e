// A CPU kernel for what STSTNet does between its conv kernel and its dense layer, in train mode:
// BatchNorm's affine map of the max-pooled maps (the pool of s or of -s by the sign of the scale,
// models/ststnet.py), dropout, and an average pool whose window is its stride; forward and
// gradient as XLA FFI custom calls. XLA:CPU ran these as ~10 elementwise passes and column
// reductions over the pooled maps, each 20-80 us for 51k elements; here each direction is one
// pass. microexp/kernels/pooled_head.py is the JAX side, with the same function in pure JAX.
//
// Layouts: pmax, pmin [..., B, H, W, C]; a, shift [..., C]; words [..., N] uint32, the dropout
// fields of the elements in row-major order, `bits` each, 32 / bits per word from the low bits
// up (models/dropout.py's `keep_mask`: kept where the field < `threshold`); y [..., B, H / PH,
// W / PW, C]. The leading dimensions are the stacked folds. Sums run in a fixed order: the bits
// do not depend on threads.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Shape {
  int64_t b, h, w, c, ph, pw;
  int64_t ho() const { return h / ph; }
  int64_t wo() const { return w / pw; }
  int64_t size() const { return b * h * w * c; }
};

// 16 channels in one vector register (GCC / clang vector extension: AVX-512 where there is one);
// the channel count is a multiple of 16.
typedef float VF __attribute__((vector_size(64)));
typedef uint32_t VU __attribute__((vector_size(64)));
typedef int32_t VI __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;

inline VF Load(const float* p) {
  VF v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline void Store(float* p, VF v) { std::memcpy(p, &v, sizeof(v)); }

struct Dropout {
  const uint32_t* words;  // nullptr: no dropout
  uint32_t bits, threshold;
  float keep;
  // Lanes kept (all bits set) or dropped (0) of the 16 elements j .. j + 15 (row-major, j a
  // multiple of 16): element i's field is bits i * b .. i * b + b - 1 of the words read as one
  // bit string, low bits first. Fields of 1 or 2 bits (rates 1/2, 1/4, 3/4): 16 fields in one word.
  VI Kept(int64_t j) const {
    VU lane;
    for (uint32_t k = 0; k < kLanes; ++k) lane[k] = k;
    const int64_t bit = j * bits;
    VU word, shift;
    if (bits <= 2) {
      word = (VU){} + words[bit >> 5];
      shift = lane * bits + static_cast<uint32_t>(bit & 31);
    } else {
      for (int64_t k = 0; k < kLanes; ++k) {
        word[k] = words[(bit + k * bits) >> 5];
        shift[k] = static_cast<uint32_t>((bit + k * bits) & 31);
      }
    }
    const VU fields = (word >> shift) & ((1u << bits) - 1u);
    return (VI)(fields < threshold);
  }
};

// Calls fn(j, cell) for every 16 channels of an element of the pooled maps that an average-pool
// window covers (j: its offset; cell: its window's offset in y), window row by window row.
template <typename Fn>
inline void ForEachCovered(const Shape& s, const Fn& fn) {
  for (int64_t b = 0; b < s.b; ++b) {
    for (int64_t oy = 0; oy < s.ho(); ++oy) {
      for (int64_t y = oy * s.ph; y < (oy + 1) * s.ph; ++y) {
        for (int64_t ox = 0; ox < s.wo(); ++ox) {
          const int64_t cell = ((b * s.ho() + oy) * s.wo() + ox) * s.c;
          for (int64_t x = ox * s.pw; x < (ox + 1) * s.pw; ++x) {
            const int64_t j = ((b * s.h + y) * s.w + x) * s.c;
            for (int64_t k = 0; k < s.c; k += kLanes) fn(j + k, cell + k, k);
          }
        }
      }
    }
  }
}

// One instance (fold): y = avg_pool(dropout((a < 0 ? -pmin : pmax) * |a| + shift)).
void Forward(const Shape& s, const float* pmax, const float* pmin, const float* a,
             const float* shift, const Dropout& drop, float* y) {
  const int64_t cells = s.b * s.ho() * s.wo() * s.c;
  const float inv = 1.0f / static_cast<float>(s.ph * s.pw);
  const VF zero = {};
  std::fill(y, y + cells, 0.0f);
  ForEachCovered(s, [&](int64_t j, int64_t cell, int64_t k) {
    const VF ak = Load(a + k);
    const VI negative = ak < zero;
    VF v = (negative ? -Load(pmin + j) : Load(pmax + j)) * (negative ? -ak : ak) + Load(shift + k);
    if (drop.words != nullptr) v = drop.Kept(j) ? v / drop.keep : zero;
    Store(y + cell, Load(y + cell) + v);
  });
  for (int64_t i = 0; i < cells; ++i) y[i] *= inv;
}

// Its gradient: of pmax, pmin (zero where the other was used, and outside the windows), a and
// shift, from gy.
void Backward(const Shape& s, const float* pmax, const float* pmin, const float* a,
              const Dropout& drop, const float* gy, float* gmax, float* gmin, float* ga,
              float* gshift) {
  const float inv = 1.0f / static_cast<float>(s.ph * s.pw);
  const VF zero = {};
  if (s.h % s.ph != 0 || s.w % s.pw != 0) {  // elements no window covers: gradient 0
    std::fill(gmax, gmax + s.size(), 0.0f);
    std::fill(gmin, gmin + s.size(), 0.0f);
  }
  std::vector<float> sum_g(s.c, 0.0f), sum_gv(s.c, 0.0f);
  ForEachCovered(s, [&](int64_t j, int64_t cell, int64_t k) {
    VF g = Load(gy + cell) * inv;
    if (drop.words != nullptr) g = drop.Kept(j) ? g / drop.keep : zero;
    const VF ak = Load(a + k);
    const VI negative = ak < zero;
    const VF chosen = negative ? -Load(pmin + j) : Load(pmax + j), gm = g * (negative ? -ak : ak);
    Store(sum_g.data() + k, Load(sum_g.data() + k) + g);
    Store(sum_gv.data() + k, Load(sum_gv.data() + k) + g * chosen);
    Store(gmax + j, negative ? zero : gm);
    Store(gmin + j, negative ? -gm : zero);
  });
  for (int64_t k = 0; k < s.c; ++k) {
    const float sign = a[k] > 0.0f ? 1.0f : (a[k] < 0.0f ? -1.0f : 0.0f);  // d|a|/da
    ga[k] = sum_gv[k] * sign;
    gshift[k] = sum_g[k];
  }
}

// A call's instances (folds), each one's shape and its words per instance.
struct Layout {
  Shape s;
  int64_t instances, n_words;
  int64_t cells() const { return s.b * s.ho() * s.wo() * s.c; }
  // Instance i's dropout (words: the call's buffer).
  Dropout DropoutOf(const uint32_t* words, int64_t i, int64_t bits, int64_t threshold,
                    float keep) const {
    return Dropout{bits ? words + i * n_words : nullptr, static_cast<uint32_t>(bits),
                   static_cast<uint32_t>(threshold), keep};
  }
};

// The layout of pmax [..., B, H, W, C], a [..., C] and words [..., N], checked.
ffi::Error Check(ffi::Span<const int64_t> md, ffi::Span<const int64_t> ad,
                 ffi::Span<const int64_t> wd, int64_t ph, int64_t pw, int64_t bits,
                 Layout& layout) {
  Shape& s = layout.s;
  if (md.size() < 4 || ad.size() < 1 || wd.size() < 1 || ph < 1 || pw < 1) {
    return ffi::Error::InvalidArgument("pooled_head: maps must be [..., B, H, W, C], a [..., C]");
  }
  const size_t n = md.size();
  s = Shape{md[n - 4], md[n - 3], md[n - 2], md[n - 1], ph, pw};
  int64_t lead = 1, lead_a = 1, lead_w = 1;
  for (size_t i = 0; i + 4 < n; ++i) lead *= md[i];
  for (size_t i = 0; i + 1 < ad.size(); ++i) lead_a *= ad[i];
  for (size_t i = 0; i + 1 < wd.size(); ++i) lead_w *= wd[i];
  if (s.c % kLanes != 0) {
    return ffi::Error::InvalidArgument("pooled_head: the channels must be a multiple of 16");
  }
  if (ad[ad.size() - 1] != s.c || lead_a != lead || lead_w != lead) {
    return ffi::Error::InvalidArgument("pooled_head: a, shift and words need one row per map");
  }
  layout.n_words = wd[wd.size() - 1];
  if (bits != 0 && (bits < 0 || bits > 16 || (bits & (bits - 1)) != 0 ||
                    layout.n_words * (32 / bits) < s.size())) {
    return ffi::Error::InvalidArgument(
        "pooled_head: dropout fields must be 1, 2, 4, 8 or 16 bits, with words for every value");
  }
  layout.instances = lead;
  return ffi::Error::Success();
}

ffi::Error ForwardCall(ffi::Buffer<ffi::F32> pmax, ffi::Buffer<ffi::F32> pmin,
                       ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> shift,
                       ffi::Buffer<ffi::U32> words, ffi::ResultBuffer<ffi::F32> y, int64_t pool_h,
                       int64_t pool_w, int64_t bits, int64_t threshold, float keep) {
  Layout l;
  if (auto e = Check(pmax.dimensions(), a.dimensions(), words.dimensions(), pool_h, pool_w, bits,
                     l);
      e.failure()) {
    return e;
  }
  const Shape& s = l.s;
  const int64_t cells = l.cells();
  for (int64_t i = 0; i < l.instances; ++i) {
    const Dropout drop = l.DropoutOf(words.typed_data(), i, bits, threshold, keep);
    Forward(s, pmax.typed_data() + i * s.size(), pmin.typed_data() + i * s.size(),
            a.typed_data() + i * s.c, shift.typed_data() + i * s.c, drop,
            y->typed_data() + i * cells);
  }
  return ffi::Error::Success();
}

ffi::Error BackwardCall(ffi::Buffer<ffi::F32> pmax, ffi::Buffer<ffi::F32> pmin,
                        ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::U32> words,
                        ffi::Buffer<ffi::F32> gy, ffi::ResultBuffer<ffi::F32> gmax,
                        ffi::ResultBuffer<ffi::F32> gmin, ffi::ResultBuffer<ffi::F32> ga,
                        ffi::ResultBuffer<ffi::F32> gshift, int64_t pool_h, int64_t pool_w,
                        int64_t bits, int64_t threshold, float keep) {
  Layout l;
  if (auto e = Check(pmax.dimensions(), a.dimensions(), words.dimensions(), pool_h, pool_w, bits,
                     l);
      e.failure()) {
    return e;
  }
  const Shape& s = l.s;
  const int64_t cells = l.cells();
  for (int64_t i = 0; i < l.instances; ++i) {
    const Dropout drop = l.DropoutOf(words.typed_data(), i, bits, threshold, keep);
    Backward(s, pmax.typed_data() + i * s.size(), pmin.typed_data() + i * s.size(),
             a.typed_data() + i * s.c, drop, gy.typed_data() + i * cells,
             gmax->typed_data() + i * s.size(), gmin->typed_data() + i * s.size(),
             ga->typed_data() + i * s.c, gshift->typed_data() + i * s.c);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MicroexpPooledHeadForward, ForwardCall,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pool_h")
                                  .Attr<int64_t>("pool_w")
                                  .Attr<int64_t>("bits")
                                  .Attr<int64_t>("threshold")
                                  .Attr<float>("keep"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(MicroexpPooledHeadBackward, BackwardCall,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pool_h")
                                  .Attr<int64_t>("pool_w")
                                  .Attr<int64_t>("bits")
                                  .Attr<int64_t>("threshold")
                                  .Attr<float>("keep"));
