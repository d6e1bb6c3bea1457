// JAX's function transformations in C++: grad, value_and_grad, jacrev (jacobian), jacfwd,
// hessian (transformations: they take a function and return one), and jvp, vjp, hvp
// (evaluations).
//
// The functions take and return a Tensor; grad, value_and_grad, jvp, vjp and hvp also take
// several arguments as a std::vector<Tensor> (JAX's argnums), and grad works on Var
// (f(Var) -> Var). They
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

// Arguments are one Tensor or a std::vector<Tensor> (several arguments, JAX's argnums):
// handled as a list, and the derivatives returned in the caller's form.
template <class X>
inline constexpr bool is_list = std::is_same_v<std::decay_t<X>, std::vector<Tensor>>;
inline std::vector<Tensor> as_list(const Tensor& x) { return {x}; }
inline std::vector<Tensor> as_list(const std::vector<Tensor>& xs) { return xs; }
inline bool any_requires_grad(const std::vector<Tensor>& xs) {
  for (const Tensor& x : xs)
    if (x.requires_grad()) return true;
  return false;
}
inline std::vector<Tensor> variables(const std::vector<Tensor>& xs) {
  std::vector<Tensor> r;
  r.reserve(xs.size());
  for (const Tensor& x : xs) r.push_back(variable(x));
  return r;
}
template <class X, class F>
Tensor call(F& f, const std::vector<Tensor>& vars) {
  if constexpr (is_list<X>) return f(vars);
  else return f(vars[0]);
}
template <class X>
auto unwrap(std::vector<Tensor> ts) {
  if constexpr (is_list<X>) return ts;
  else return ts[0];
}
// The gradients of <y, u> (u null: ones) with respect to vars; zeros for unused ones.
inline std::vector<Tensor> gradients(const Tensor& y, const std::vector<Tensor>& vars, const Tensor& u, bool record) {
  std::vector<Tensor> gs(vars.size());
  if (y.requires_grad()) gs = tapegrad::grad({y}, vars, u.defined() ? std::vector<Tensor>{u} : std::vector<Tensor>{}, record, true);
  for (std::size_t k = 0; k < vars.size(); ++k) gs[k] = gs[k].defined() ? result(gs[k], record) : zeros_like(vars[k]);
  return gs;
}
// J v for the list of tangents vs (one per variable); zeros where y does not depend on them.
inline Tensor tangent(const Tensor& y, const std::vector<Tensor>& vars, const std::vector<Tensor>& vs, bool record) {
  if (vs.size() != vars.size())
    throw Error("tapegrad: jvp: " + std::to_string(vs.size()) + " tangents for " + std::to_string(vars.size()) +
                " arguments");
  if (!y.requires_grad()) return zeros_like(y);
  return result(tapegrad::jvp({y}, vars, vs, record)[0], record);
}

template <class X, class F>
std::pair<Tensor, Tensor> jvp_impl(F& f, const X& x, const X& v) {
  const std::vector<Tensor> xs = as_list(x), vs = as_list(v);
  Transform level(any_requires_grad(xs) || any_requires_grad(vs));
  const std::vector<Tensor> vars = variables(xs);
  const Tensor y = call<X>(f, vars);
  return {result(y, level.record()), tangent(y, vars, vs, level.record())};
}

template <class X, class F>
auto vjp_impl(F& f, const X& x, const Tensor& u) {
  const std::vector<Tensor> xs = as_list(x);
  Transform level(any_requires_grad(xs) || u.requires_grad());
  const std::vector<Tensor> vars = variables(xs);
  const Tensor y = call<X>(f, vars);
  return std::make_pair(result(y, level.record()), unwrap<X>(gradients(y, vars, u, level.record())));
}

template <class X, class F>
auto hvp_impl(F& f, const X& x, const X& v) {
  const std::vector<Tensor> xs = as_list(x), vs = as_list(v);
  Transform level(any_requires_grad(xs) || any_requires_grad(vs));
  const std::vector<Tensor> vars = variables(xs);
  const Tensor y = call<X>(f, vars);
  require_one_element(y, "hvp");
  // forward over reverse: the recorded gradient, then one tangent sweep over it
  const std::vector<Tensor> gs = gradients(y, vars, Tensor(), true);
  std::vector<Tensor> hv;
  for (const Tensor& g : gs) hv.push_back(tangent(g, vars, vs, level.record()));
  return std::make_pair(result(y, level.record()), unwrap<X>(std::move(hv)));
}
}  // namespace detail

/// (f(x), df/dx) for f returning one element. x is a Tensor, or a std::vector<Tensor> of
/// several arguments (f then takes the vector, and the gradient is a vector).
template <class F>
auto value_and_grad(F f) {
  return [f](const auto& x) mutable {
    using X = std::decay_t<decltype(x)>;
    const std::vector<Tensor> xs = detail::as_list(x);
    detail::Transform level(detail::any_requires_grad(xs));
    const std::vector<Tensor> vars = detail::variables(xs);
    const Tensor y = detail::call<X>(f, vars);
    detail::require_one_element(y, "grad");
    return std::make_pair(detail::result(y, level.record()),
                          detail::unwrap<X>(detail::gradients(y, vars, Tensor(), level.record())));
  };
}

/// The gradient of f returning one element: of f(Tensor) (a Tensor of x's shape), of
/// f(std::vector<Tensor>) (a vector), or of f(Var) (a Var). Composes: grad(grad(f)) is the
/// second derivative.
template <class F>
auto grad(F f) {
  return [f](const auto& x) mutable {
    using X = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<X, Var>) {
      detail::Transform level(true);  // Vars record on the active tape
      const Var y = f(x);
      if (y.is_constant() || x.is_constant()) return Var::constant(0.0);
      if (detail::Transform::nested()) return tapegrad::grad(y, {x}, CreateGraph{})[0];
      return Var::constant(tapegrad::grad(y, {x})[0]);
    } else {
      return value_and_grad(f)(x).second;
    }
  };
}

/// (f(x), J v): one forward run and one tangent sweep (no reverse sweep). With several
/// arguments (vectors), v has one tangent per argument.
template <class F>
std::pair<Tensor, Tensor> jvp(F f, const Tensor& x, const Tensor& v) {
  return detail::jvp_impl<Tensor>(f, x, v);
}
template <class F>
std::pair<Tensor, Tensor> jvp(F f, const std::vector<Tensor>& xs, const std::vector<Tensor>& vs) {
  return detail::jvp_impl<std::vector<Tensor>>(f, xs, vs);
}

/// (f(x), J^T u): one forward run and one reverse sweep seeded with u (f(x)'s shape); with
/// several arguments, one J^T u per argument.
template <class F>
std::pair<Tensor, Tensor> vjp(F f, const Tensor& x, const Tensor& u) {
  return detail::vjp_impl<Tensor>(f, x, u);
}
template <class F>
std::pair<Tensor, std::vector<Tensor>> vjp(F f, const std::vector<Tensor>& xs, const Tensor& u) {
  return detail::vjp_impl<std::vector<Tensor>>(f, xs, u);
}

/// (f(x), H v) for f returning one element, forward over reverse: one recorded reverse
/// sweep, then one tangent sweep over it. With several arguments, v has one tangent per
/// argument and H v one block per argument.
template <class F>
std::pair<Tensor, Tensor> hvp(F f, const Tensor& x, const Tensor& v) {
  return detail::hvp_impl<Tensor>(f, x, v);
}
template <class F>
std::pair<Tensor, std::vector<Tensor>> hvp(F f, const std::vector<Tensor>& xs, const std::vector<Tensor>& vs) {
  return detail::hvp_impl<std::vector<Tensor>>(f, xs, vs);
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

/// JAX's name for jacrev.
template <class F>
auto jacobian(F f) {
  return jacrev(f);
}

}  // namespace tapegrad
