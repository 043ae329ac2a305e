// ParallelFor: items of a custom call spread over XLA's intra-op thread pool (shared by the
// kernels of this folder).
#ifndef MICROEXP_KERNELS_PARALLEL_FOR_H_
#define MICROEXP_KERNELS_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace microexp {

// Runs fn(item) for item in [0, n) on the caller and on up to `max_threads` - 1 tasks of the XLA
// intra-op pool. Items are claimed from a shared counter, so a task that starts late finds none
// left and returns: the caller waits only for items that were claimed, never on a task that has
// not started (no deadlock when the pool is busy). What an item computes must not depend on the
// thread that runs it.
template <typename Fn>
void ParallelFor(xla::ffi::ThreadPool& pool, int64_t n, const Fn& fn,
                 int64_t max_threads = 1 << 30) {
  const int64_t threads = std::min({pool.num_threads(), n, max_threads});
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0}, done{0};
  };
  auto shared = std::make_shared<Shared>();
  const Fn* f = &fn;
  auto work = [shared, n, f]() {
    for (int64_t i; (i = shared->next.fetch_add(1)) < n;) {
      (*f)(i);
      shared->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t t = 1; t < threads; ++t) pool.Schedule(decltype(work)(work));
  work();
  while (shared->done.load(std::memory_order_acquire) < n) std::this_thread::yield();
}

}  // namespace microexp

#endif  // MICROEXP_KERNELS_PARALLEL_FOR_H_
