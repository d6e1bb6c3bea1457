// Tensor memory: aligned blocks from a cache of size classes (a loop that makes the same tensors
// each step stops calling the allocator), fresh tensors, views and dtype conversion.
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "tensor/internal.hpp"

namespace tapegrad {

// --- storage -------------------------------------------------------------------------------
// Blocks are recycled by size class (powers of two from 64 bytes), so a training loop that
// makes the same tensors each step stops allocating after the first one.
namespace {

constexpr std::size_t kMinBlock = 64;
constexpr std::size_t kMaxCached = std::size_t(1) << 30;  // bytes kept for reuse, at most

struct BlockCache {
  std::mutex mutex;
  std::vector<void*> free[64];
  std::size_t cached = 0;
};
BlockCache& block_cache() {
  static BlockCache* c = new BlockCache;  // never destroyed: tensors may outlive statics
  return *c;
}

int size_class(std::size_t bytes) {
  int c = 6;  // 64 bytes
  while ((std::size_t(1) << c) < bytes) ++c;
  return c;
}

// 64-byte aligned (a cache line, an AVX-512 vector). Not huge-page advised: on first touch
// a huge page costs a 2 MiB clear (measured here: the first steps of a 10^6-element loop took
// 150 ms instead of 44), and streaming kernels gain little from fewer TLB misses.
[[noreturn]] void out_of_memory(std::size_t bytes) {
  char size[32];
  std::snprintf(size, sizeof size, "%.1f GiB", static_cast<double>(bytes) / double(1ull << 30));
  throw MemoryError(std::string("tapegrad: out of memory: a tensor needs ") + size + " (" + std::to_string(bytes) +
                    " bytes) that cannot be allocated");
}

void* raw_alloc(std::size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) out_of_memory(bytes);
  return p;
}

struct BlockDeleter {
  int cls;
  void operator()(void* p) const noexcept {
    BlockCache& c = block_cache();
    const std::size_t bytes = std::size_t(1) << cls;
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      if (c.cached + bytes <= kMaxCached) {
        try {
          c.free[cls].push_back(p);
          c.cached += bytes;
          return;
        } catch (...) {
        }
      }
    }
    std::free(p);
  }
};

std::shared_ptr<void> allocate_storage(std::size_t bytes) {
  const int cls = size_class(std::max(bytes, kMinBlock));
  if (cls >= 63) out_of_memory(bytes);
  void* p = nullptr;
  {
    BlockCache& c = block_cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (!c.free[cls].empty()) {
      p = c.free[cls].back();
      c.free[cls].pop_back();
      c.cached -= std::size_t(1) << cls;
    }
  }
  if (!p) p = raw_alloc(std::size_t(1) << cls);
  try {
    return std::shared_ptr<void>(p, BlockDeleter{cls});
  } catch (...) {
    BlockDeleter{cls}(p);
    throw;
  }
}


}  // namespace


namespace detail {

Tensor empty_tensor(const Shape& shape, DType dtype) {
  const std::int64_t n = checked_numel(shape, "");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = allocate_storage(static_cast<std::size_t>(n) * dtype_size(dtype));
  impl->data = impl->storage.get();
  impl->dtype = dtype;
  impl->shape = shape;
  impl->numel = n;
  return Tensor(std::move(impl));
}

Tensor view_as_shape(const Tensor& x, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->version = version_of(x);  // views of the same memory share its version
  impl->storage = x.impl().storage;
  impl->data = x.impl().data;
  impl->dtype = x.dtype();
  impl->shape = shape;
  impl->numel = shape_numel(shape);  // x's, or fewer (a view of a contiguous run)
  impl->basis = x.impl().basis && impl->numel == x.numel() && !shape.empty() && shape[0] == x.shape()[0];
  return Tensor(std::move(impl));
}

Tensor reshaped(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (grad_enabled() && x.requires_grad()) return reshape(x, shape);
  return view_as_shape(x, shape);
}

Tensor convert(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor r = empty_tensor(x.shape(), dtype);
  const std::int64_t n = x.numel();
  TG_ANY_DISPATCH(x.dtype(), S, {
    const S* s = x.data<S>();
    TG_ANY_DISPATCH(dtype, D, {
      D* d = r.data<D>();
      for (std::int64_t i = 0; i < n; ++i) d[i] = detail::cast_to<D>(s[i]);
    });
  });
  return r;
}

}  // namespace detail

}  // namespace tapegrad
