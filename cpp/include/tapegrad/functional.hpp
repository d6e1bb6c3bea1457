// JAX's function transformations in C++: grad, value_and_grad, jacrev, jacfwd, hessian
// (transformations: they take a function and return one), and jvp, vjp, hvp (evaluations).
//
// The functions take and return a Tensor (grad also works on Var: f(Var) -> Var). They
// compose: grad(grad(f)), jacfwd(jacrev(f)) (that is hessian(f)), jacrev(jacfwd(f)). A
// transformation called inside another records its derivatives (create_graph) on the
// active tape, so that the outer one can differentiate them; the outermost one runs on a
// tape of its own, which it drops on return, so nothing is left on the caller's tape. (An
// argument that already requires grad makes a transformation record on the active tape
// too: its caller differentiates through the result.)
#pragma once

#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"
#include "tapegrad/var.hpp"

namespace tapegrad {

namespace detail {
// How many transformations are running in this thread.
inline thread_local int tls_transform_depth = 0;

// The extent of one transformation: whether it must record (it is nested, or its argument is
// already a variable of an outer computation), and, when it need not, a tape of its own.
class Transform {
 public:
  explicit Transform(bool argument_requires_grad)
      : record_(tls_transform_depth > 0 || argument_requires_grad) {
    ++tls_transform_depth;
    if (!record_) scope_ = std::make_unique<Scope>();
  }
  ~Transform() { --tls_transform_depth; }
  Transform(const Transform&) = delete;
  Transform& operator=(const Transform&) = delete;
  bool record() const noexcept { return record_; }
  /// Whether another transformation is running around this one.
  static bool nested() noexcept { return tls_transform_depth > 1; }

 private:
  struct Scope {
    Tape tape;
    ScopedTape active{tape};
  };
  bool record_;
  std::unique_ptr<Scope> scope_;
};

// x as the variable to differentiate with respect to: itself if it requires grad already (an
// outer transformation's variable), else the same memory as a leaf that requires grad.
inline Tensor variable(const Tensor& x) {
  if (x.requires_grad()) return x;
  Tensor v = is_floating(x.dtype()) ? x.detach() : astype(x, DType::Float64);
  v.requires_grad_();
  return v;
}

// The values of t, cut from any graph (the result of an outermost transformation).
inline Tensor result(const Tensor& t, bool record) { return record ? t : t.detach(); }

// (n, *out) -> (*out, *in) where n = numel(in): the leading axis moved last and split.
inline Tensor leading_to_trailing(const Tensor& t, const Shape& out, const Shape& in) {
  std::vector<int> perm(static_cast<std::size_t>(t.ndim()));
  std::iota(perm.begin(), perm.end(), 0);
  if (!perm.empty()) std::rotate(perm.begin(), perm.begin() + 1, perm.end());
  Shape s = out;
  s.insert(s.end(), in.begin(), in.end());
  return reshape(transpose(t, perm), s);
}

inline void require_one_element(const Tensor& y, const char* fn) {
  if (y.numel() != 1)
    throw Error(std::string("tapegrad: ") + fn + ": the function must return one element, not shape " +
                shape_str(y.shape()));
}
}  // namespace detail

/// (f(x), df/dx) for f: Tensor -> one-element Tensor.
template <class F>
auto value_and_grad(F f) {
  return [f](const Tensor& x) -> std::pair<Tensor, Tensor> {
    detail::Transform level(x.requires_grad());
    const Tensor xv = detail::variable(x);
    const Tensor y = f(xv);
    detail::require_one_element(y, "grad");
    if (!y.requires_grad()) return {detail::result(y, level.record()), zeros_like(xv)};
    const Tensor g = tapegrad::grad({y}, {xv}, {}, level.record(), true)[0];
    return {detail::result(y, level.record()), g.defined() ? detail::result(g, level.record()) : zeros_like(xv)};
  };
}

/// The gradient of f: Tensor -> one-element Tensor (a Tensor of x's shape), or of
/// f: Var -> Var (a Var). Composes: grad(grad(f)) is the second derivative.
template <class F>
auto grad(F f) {
  return [f](const auto& x) {
    using X = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<X, Var>) {
      detail::Transform level(true);  // Vars record on the active tape
      const Var y = f(x);
      if (y.is_constant() || x.is_constant()) return Var::constant(0.0);
      if (detail::Transform::nested()) return tapegrad::grad(y, {x}, CreateGraph{})[0];
      return Var::constant(tapegrad::grad(y, {x})[0]);
    } else {
      return value_and_grad(f)(Tensor(x)).second;
    }
  };
}

/// The Jacobian of f: Tensor -> Tensor by forward mode: one tangent sweep carrying every
/// input direction (vector forward mode). Shape: f(x).shape + x.shape.
template <class F>
auto jacfwd(F f) {
  return [f](const Tensor& x) {
    detail::Transform level(x.requires_grad());
    const Tensor xv = detail::variable(x);
    const Tensor y = f(xv);
    const std::int64_t n = xv.numel();
    Shape ts{n};
    ts.insert(ts.end(), xv.shape().begin(), xv.shape().end());
    const Tensor eye = reshape(Tensor::eye(n, n, xv.dtype()), ts);
    Tensor cols;
    if (y.requires_grad()) {
      cols = jvp({y}, {xv}, {eye}, level.record(), true)[0];
    } else {
      Shape cs{n};
      cs.insert(cs.end(), y.shape().begin(), y.shape().end());
      cols = Tensor::zeros(cs, is_floating(y.dtype()) ? y.dtype() : DType::Float64);
    }
    return detail::result(detail::leading_to_trailing(cols, y.shape(), xv.shape()), level.record());
  };
}

/// The Jacobian of f: Tensor -> Tensor by reverse mode: one reverse sweep per output element.
/// Shape: f(x).shape + x.shape. The same values as jacfwd.
template <class F>
auto jacrev(F f) {
  return [f](const Tensor& x) {
    detail::Transform level(x.requires_grad());
    const Tensor xv = detail::variable(x);
    const Tensor y = f(xv);
    Shape s = y.shape();
    s.insert(s.end(), xv.shape().begin(), xv.shape().end());
    if (!y.requires_grad()) return Tensor::zeros(s, xv.dtype());
    std::vector<Tensor> rows;
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      std::vector<double> one(static_cast<std::size_t>(y.numel()), 0.0);
      one[static_cast<std::size_t>(i)] = 1.0;
      const Tensor e = Tensor::from_values(one, y.shape(), y.dtype());
      const Tensor g = tapegrad::grad({y}, {xv}, {e}, level.record(), true)[0];
      rows.push_back(g.defined() ? g : zeros_like(xv));
    }
    if (rows.empty()) return Tensor::zeros(s, xv.dtype());
    return detail::result(reshape(stack(rows, 0), s), level.record());
  };
}

/// The Hessian of f: Tensor -> one-element Tensor: jacfwd(jacrev(f)), forward over reverse
/// (one recorded reverse sweep, one vector tangent sweep over it). Shape: x.shape + x.shape.
template <class F>
auto hessian(F f) {
  return jacfwd(jacrev(f));
}

/// (f(x), J v): one forward run and one tangent sweep (no reverse sweep).
template <class F>
std::pair<Tensor, Tensor> jvp(F f, const Tensor& x, const Tensor& v) {
  detail::Transform level(x.requires_grad() || v.requires_grad());
  const Tensor xv = detail::variable(x);
  const Tensor y = f(xv);
  if (!y.requires_grad()) return {detail::result(y, level.record()), zeros_like(y)};
  return {detail::result(y, level.record()), detail::result(jvp({y}, {xv}, {v}, level.record())[0], level.record())};
}

/// (f(x), J^T u): one forward run and one reverse sweep seeded with u (f(x)'s shape).
template <class F>
std::pair<Tensor, Tensor> vjp(F f, const Tensor& x, const Tensor& u) {
  detail::Transform level(x.requires_grad() || u.requires_grad());
  const Tensor xv = detail::variable(x);
  const Tensor y = f(xv);
  if (!y.requires_grad()) return {detail::result(y, level.record()), zeros_like(xv)};
  const Tensor g = tapegrad::grad({y}, {xv}, {u}, level.record(), true)[0];
  return {detail::result(y, level.record()), g.defined() ? detail::result(g, level.record()) : zeros_like(xv)};
}

/// (f(x), H v) for f: Tensor -> one-element Tensor, forward over reverse: one recorded
/// reverse sweep, then one tangent sweep over it.
template <class F>
std::pair<Tensor, Tensor> hvp(F f, const Tensor& x, const Tensor& v) {
  detail::Transform level(x.requires_grad() || v.requires_grad());
  const Tensor xv = detail::variable(x);
  const Tensor y = f(xv);
  detail::require_one_element(y, "hvp");
  if (!y.requires_grad()) return {detail::result(y, level.record()), zeros_like(xv)};
  const Tensor g = tapegrad::grad({y}, {xv}, {}, true, true)[0];
  if (!g.defined() || !g.requires_grad()) return {detail::result(y, level.record()), zeros_like(xv)};
  return {detail::result(y, level.record()), detail::result(jvp({g}, {xv}, {v}, level.record())[0], level.record())};
}

}  // namespace tapegrad
