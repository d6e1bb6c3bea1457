// tapegrad::Tensor: construction, element access, .grad, requires_grad, detach, clone and the
// in-place updates (assign, sgd_step).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "tensor/internal.hpp"

namespace tapegrad {

// --- Tensor ------------------------------------------------------------------------------------


TensorImpl& Tensor::impl() const {
  if (!p_) throw_error("tapegrad: this Tensor is null (default-constructed)");
  return *p_;
}

std::int64_t Tensor::dim(int axis) const {
  return shape()[static_cast<std::size_t>(detail::normalize_axis(axis, ndim(), "dim"))];
}

template <class T>
T* Tensor::data() const {
  constexpr DType want = std::is_same_v<T, float>          ? DType::Float32
                         : std::is_same_v<T, double>       ? DType::Float64
                         : std::is_same_v<T, float16>      ? DType::Float16
                         : std::is_same_v<T, bfloat16>     ? DType::BFloat16
                         : std::is_same_v<T, std::int64_t> ? DType::Int64
                                                           : DType::Bool;
  if (impl().dtype != want)
    throw_error(std::string("tapegrad: data<") + dtype_name(want) + ">() on a tensor of dtype " +
                dtype_name(impl().dtype));
  return static_cast<T*>(impl().data);
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template std::int64_t* Tensor::data<std::int64_t>() const;
template bool* Tensor::data<bool>() const;
template float16* Tensor::data<float16>() const;
template bfloat16* Tensor::data<bfloat16>() const;

Tensor Tensor::empty(const Shape& shape, DType dtype) { return empty_tensor(shape, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor r = empty_tensor(shape, dtype);
  const std::int64_t n = r.numel();
  TG_ANY_DISPATCH(dtype, T, {
    T* p = r.data<T>();
    const T v = static_cast<T>(value);
    for (std::int64_t i = 0; i < n; ++i) p[i] = v;
  });
  return r;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::from_values(const std::vector<double>& values, const Shape& shape, DType dtype) {
  Tensor r = empty_tensor(shape, dtype);
  if (static_cast<std::int64_t>(values.size()) != r.numel())
    throw_error("tapegrad: from_values: " + std::to_string(values.size()) + " values for shape " + shape_str(shape));
  TG_ANY_DISPATCH(dtype, T, {
    T* p = r.data<T>();
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
  });
  return r;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, std::function<void()> release) {
  auto impl = std::make_shared<TensorImpl>();
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw_error("tapegrad: negative dimension in shape " + shape_str(shape));
    n *= d;
  }
  impl->storage = std::shared_ptr<void>(data, [release = std::move(release)](void*) {
    if (release) release();
  });
  impl->data = data;
  impl->dtype = dtype;
  impl->shape = shape;
  impl->numel = n;
  return Tensor(std::move(impl));
}

Tensor Tensor::arange(double start, double stop, double step, DType dtype) {
  if (step == 0 || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
    throw_error("tapegrad: arange: the step must be nonzero and the bounds finite");
  const double len = std::ceil((stop - start) / step);
  if (!(len < static_cast<double>(detail::kMaxElements)))  // (also NaN: inf - inf)
    throw ValueError("tapegrad: arange: " + std::to_string(len) + " elements is too large");
  const std::int64_t n = len > 0 ? static_cast<std::int64_t>(len) : 0;
  Tensor r = empty_tensor({n}, dtype);
  TG_ANY_DISPATCH(dtype, T, {
    T* p = r.data<T>();
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return r;
}

Tensor Tensor::eye(std::int64_t n, std::int64_t m, DType dtype) {
  if (m < 0) m = n;
  Tensor r = zeros({n, m}, dtype);
  TG_ANY_DISPATCH(dtype, T, {
    T* p = r.data<T>();
    for (std::int64_t i = 0; i < std::min(n, m); ++i) p[i * m + i] = static_cast<T>(1);
  });
  return r;
}

Tensor Tensor::from_var(const Var& v) {
  if (v.is_constant()) return detail::scalar_record_tensor(nullptr, Tape::kNone, v.value());
  Tape& tape = detail::checked_tape(v, "Tensor::from_var");
  return detail::scalar_record_tensor(&tape, v.index(), v.value());
}

double Tensor::item() const {
  if (numel() != 1)
    throw_error("tapegrad: item() needs a tensor with one element, not shape " + shape_str(shape()));
  double r = 0;
  TG_ANY_DISPATCH(dtype(), T, { r = static_cast<double>(*data<T>()); });
  return r;
}

std::vector<double> Tensor::to_vector() const {
  std::vector<double> r(static_cast<std::size_t>(numel()));
  TG_ANY_DISPATCH(dtype(), T, {
    const T* p = data<T>();
    for (std::size_t i = 0; i < r.size(); ++i) r[i] = static_cast<double>(p[i]);
  });
  return r;
}

Tensor& Tensor::requires_grad_(bool on) {
  TensorImpl& p = impl();
  if (!p.leaf) {
    if (on) return *this;
    throw_error(
        "tapegrad: requires_grad_(False) on a result of a recorded op; use detach() to get a "
        "tensor without a graph");
  }
  if (on && !is_floating(p.dtype))
    throw_error(std::string("tapegrad: only float32 and float64 tensors can require grad, not ") +
                dtype_name(p.dtype));
  p.requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  TensorImpl& p = impl();
  std::lock_guard<std::recursive_mutex> lock(detail::leaf_mutex(&p));
  return detail::current_grad(p);
}

namespace detail {
Tensor current_grad(TensorImpl& p) {
  // A recorded gradient may have moved (collect()): refresh its handle from its root.
  if (p.grad && grad_root_live(p)) {
    p.grad->rec = p.grad_tape->root_record(p.grad_root);
    p.grad->gen = p.grad_tape->generation();
  }
  return Tensor(p.grad);
}
}  // namespace detail

void Tensor::set_grad(const Tensor& g) {
  if (g.defined() && g.shape() != shape())
    throw_error("tapegrad: a gradient of shape " + shape_str(g.shape()) + " for a tensor of shape " +
                shape_str(shape()));
  if (g.defined() && g.impl_ptr() == impl_ptr())
    throw_error("tapegrad: a tensor cannot be its own gradient (x.grad = x); assign x.detach().clone()");
  // A gradient of another dtype is converted; one that requires grad is refused (a recorded
  // conversion would have to be recorded somewhere: PyTorch refuses any other dtype).
  if (g.defined() && g.dtype() != dtype() && g.requires_grad())
    throw_error(std::string("tapegrad: a gradient of dtype ") + dtype_name(g.dtype()) + " for a tensor of dtype " +
                dtype_name(dtype()) + ": a gradient that requires grad must have the tensor's dtype");
  std::shared_ptr<TensorImpl> v =
      g.defined() ? (g.dtype() == dtype() ? g : detail::convert(g, dtype())).impl_ptr() : nullptr;
  std::lock_guard<std::recursive_mutex> lock(detail::leaf_mutex(&impl()));
  detail::assign_grad(impl(), std::move(v));
}

void Tensor::retain_grad() {
  TensorImpl& p = impl();
  if (p.leaf) return;  // leaves keep their gradient anyway
  p.retains_grad = true;
  detail::pin_result(*this);
}

Tensor Tensor::detach() const {
  Tensor r = detail::view_as_shape(*this, shape());
  return r;
}

Tensor Tensor::clone() const {
  // x + 0 records a copy whose gradient passes through unchanged.
  if (!requires_grad() || !grad_enabled()) return detail::clone_values(*this);
  return add(*this, 0.0);
}

void Tensor::assign(const Tensor& values) {
  TensorImpl& p = impl();
  if (values.shape() != p.shape)
    throw_error("tapegrad: assign(): values of shape " + shape_str(values.shape()) + " for a tensor of shape " +
                shape_str(p.shape));
  Tensor v = detail::convert(values, p.dtype);
  std::memmove(p.data, v.raw_data(), static_cast<std::size_t>(p.numel) * dtype_size(p.dtype));
  ++p.version_counter();
  // Its records hold the old values: record it afresh on next use.
  if (p.leaf) p.gen = 0;
}

void Tensor::sgd_step(double lr) {
  TensorImpl& p = impl();
  if (!p.grad) return;
  const std::int64_t n = p.numel;
  TG_FLOAT_DISPATCH(p.dtype, T, {
    T* a = p.ptr<T>();
    const T* g = p.grad->ptr<T>();
    const T s = static_cast<T>(lr);
    for (std::int64_t i = 0; i < n; ++i) a[i] -= s * g[i];
  });
  ++p.version_counter();
  if (p.leaf) p.gen = 0;
}

Tensor astype(const Tensor& x, DType dtype);  // ops/elementwise.cpp
Tensor zeros_like(const Tensor& x) { return Tensor::zeros(x.shape(), x.dtype()); }
Tensor ones_like(const Tensor& x) { return Tensor::ones(x.shape(), x.dtype()); }
Tensor full_like(const Tensor& x, double value) { return Tensor::full(x.shape(), value, x.dtype()); }

}  // namespace tapegrad


namespace tapegrad {

namespace {
std::atomic<std::uint64_t> g_next_hook_id{1};
}  // namespace

std::uint64_t Tensor::register_hook(std::function<Tensor(const Tensor&)> fn) {
  TensorImpl& p = impl();
  if (!fn) throw_error("tapegrad: register_hook(): the hook is empty");
  if (!p.requires_grad)
    throw_error("tapegrad: register_hook(): cannot register a hook on a tensor that does not require grad");
  std::lock_guard<std::recursive_mutex> lock(detail::leaf_mutex(&p));
  if (!p.hooks) p.hooks = std::make_shared<TensorHooks>();
  const std::uint64_t id = g_next_hook_id.fetch_add(1);
  p.hooks->pre.push_back(TensorHooks::Pre{id, std::move(fn)});
  detail::pin_result(*this);  // (its record runs the hook even once the tensor is gone, as PyTorch's)
  return id;
}

std::uint64_t Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> fn) {
  TensorImpl& p = impl();
  if (!fn) throw_error("tapegrad: register_post_accumulate_grad_hook(): the hook is empty");
  if (!p.leaf)
    throw_error("tapegrad: register_post_accumulate_grad_hook(): post-accumulate-grad hooks can only be "
                "registered on leaves (this tensor is the result of an operation)");
  if (!p.requires_grad)
    throw_error("tapegrad: register_post_accumulate_grad_hook(): cannot register a hook on a tensor that does not "
                "require grad");
  std::lock_guard<std::recursive_mutex> lock(detail::leaf_mutex(&p));
  if (!p.hooks) p.hooks = std::make_shared<TensorHooks>();
  const std::uint64_t id = g_next_hook_id.fetch_add(1);
  p.hooks->post.push_back(TensorHooks::Post{id, std::move(fn)});
  return id;
}

bool Tensor::remove_hook(std::uint64_t id) {
  TensorImpl& p = impl();
  std::lock_guard<std::recursive_mutex> lock(detail::leaf_mutex(&p));
  if (!p.hooks) return false;
  auto drop = [id](auto& v) {
    for (auto it = v.begin(); it != v.end(); ++it)
      if (it->id == id) {
        v.erase(it);
        return true;
      }
    return false;
  };
  return drop(p.hooks->pre) || drop(p.hooks->post);
}

}  // namespace tapegrad
