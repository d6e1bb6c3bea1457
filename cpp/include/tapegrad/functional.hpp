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

#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"
#include "tapegrad/var.hpp"

namespace tapegrad {

/// The transformations on lists of tensors, written once: the templates below wrap them for
/// C++ functions, and the Python module tapegrad.functional wraps them for Python functions
/// (adding pytrees, argnums, has_aux and Var results). A transformation opens a Level, makes
/// its arguments variables, calls the function and hands its outputs to one of these.
namespace transforms {

/// The extent of one transformation in this thread. It must record its derivatives
/// (create_graph) when it is nested in another one, or when an argument is already a
/// variable of an outer computation that records (the caller differentiates through the
/// result; not under the caller's no_grad).
/// Otherwise, with `own_tape`, it runs on a tape of its own, dropped when it ends, so that
/// nothing is left on the caller's tape (the Python module opens a Python tape instead).
/// Grad mode is on inside, whatever the caller's (no_grad around a transformation does not
/// switch it off, as with torch.func), and restored after.
class Level {
 public:
  explicit Level(bool argument_requires_grad, bool own_tape = true);
  ~Level();
  Level(const Level&) = delete;
  Level& operator=(const Level&) = delete;
  bool record() const noexcept { return record_; }
  /// Whether another transformation is running around the innermost one.
  static bool nested() noexcept;

 private:
  struct Scope;
  bool record_;
  bool grad_mode_;  // the caller's
  std::unique_ptr<Scope> scope_;
};

/// x as a variable to differentiate with respect to: itself if it requires grad already (an
/// outer transformation's variable), else the same memory as a leaf that requires grad
/// (converted to float64 when x is an integer or bool tensor).
Tensor variable(const Tensor& x);
std::vector<Tensor> variables(const std::vector<Tensor>& xs);

/// t as the result of a transformation: itself when recording, else cut from any graph.
Tensor result(const Tensor& t, bool record);

/// Raises TypeError (as JAX does) unless y has one element (what grad, hessian and hvp differentiate).
void require_one_element(const Tensor& y, const char* fn);

/// J^T u: for each variable, the sum over the outputs of d<output, cotangent>/d variable, by
/// one reverse sweep. No cotangents: every output must have one element and is seeded with
/// 1 (the gradient). Zeros for a variable the outputs do not use.
std::vector<Tensor> vjp(const std::vector<Tensor>& outputs, const std::vector<Tensor>& vars,
                        const std::vector<Tensor>& cotangents, bool record);

/// J v: for each output, its derivative along the tangents (one per variable, of its shape),
/// by one tangent sweep; with `batched`, every tangent and result has a leading axis of K
/// directions. Zeros for an output that does not depend on the variables.
std::vector<Tensor> jvp(const std::vector<Tensor>& outputs, const std::vector<Tensor>& vars,
                        const std::vector<Tensor>& tangents, bool record, bool batched = false);

enum class Mode { Forward, Reverse };

/// The Jacobian blocks: [o][i] is d outputs[o] / d vars[i], of shape outputs[o].shape +
/// vars[i].shape. Forward: one tangent sweep carrying every input direction at once (vector
/// forward mode). Reverse: one reverse sweep per output element.
std::vector<std::vector<Tensor>> jacobian(const std::vector<Tensor>& outputs, const std::vector<Tensor>& vars,
                                          Mode mode, bool record);

/// H v for y with one element, forward over reverse: one recorded reverse sweep, then one
/// tangent sweep over it.
std::vector<Tensor> hvp(const Tensor& y, const std::vector<Tensor>& vars, const std::vector<Tensor>& tangents,
                        bool record);

}  // namespace transforms

namespace detail {
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

// One transformation of f at x (a Tensor or a vector of them): the level, the variables, f's
// output; `derive` maps (output, variables, record) to the derivatives.
template <class X, class F, class D>
auto transform(F& f, const X& x, bool other_requires_grad, D derive) {
  const std::vector<Tensor> xs = as_list(x);
  transforms::Level level(any_requires_grad(xs) || other_requires_grad);
  const std::vector<Tensor> vars = transforms::variables(xs);
  const Tensor y = call<X>(f, vars);
  auto d = derive(y, vars, level.record());
  return std::make_pair(transforms::result(y, level.record()), std::move(d));
}

template <class X, class F>
std::pair<Tensor, Tensor> jvp_impl(F& f, const X& x, const X& v) {
  const std::vector<Tensor> vs = as_list(v);
  return transform(f, x, any_requires_grad(vs), [&](const Tensor& y, const std::vector<Tensor>& vars, bool record) {
    return transforms::jvp({y}, vars, vs, record)[0];
  });
}

template <class X, class F>
auto vjp_impl(F& f, const X& x, const Tensor& u) {
  return transform(f, x, u.requires_grad(), [&](const Tensor& y, const std::vector<Tensor>& vars, bool record) {
    return unwrap<X>(transforms::vjp({y}, vars, {u}, record));
  });
}

template <class X, class F>
auto hvp_impl(F& f, const X& x, const X& v) {
  const std::vector<Tensor> vs = as_list(v);
  return transform(f, x, any_requires_grad(vs), [&](const Tensor& y, const std::vector<Tensor>& vars, bool record) {
    return unwrap<X>(transforms::hvp(y, vars, vs, record));
  });
}

template <class F>
auto jacobian_of(F f, transforms::Mode mode) {
  return [f, mode](const Tensor& x) mutable {
    return transform(f, x, false, [&](const Tensor& y, const std::vector<Tensor>& vars, bool record) {
             return transforms::jacobian({y}, vars, mode, record)[0][0];
           }).second;
  };
}
}  // namespace detail

/// (f(x), df/dx) for f returning one element. x is a Tensor, or a std::vector<Tensor> of
/// several arguments (f then takes the vector, and the gradient is a vector).
template <class F>
auto value_and_grad(F f) {
  return [f](const auto& x) mutable {
    using X = std::decay_t<decltype(x)>;
    return detail::transform(f, x, false, [](const Tensor& y, const std::vector<Tensor>& vars, bool record) {
      transforms::require_one_element(y, "grad");
      return detail::unwrap<X>(transforms::vjp({y}, vars, {}, record));
    });
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
      transforms::Level level(true);  // Vars record on the active tape
      const Var y = f(x);
      if (y.is_constant() || x.is_constant()) return Var::constant(0.0);
      if (transforms::Level::nested()) return tapegrad::grad(y, {x}, CreateGraph{})[0];
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
  return detail::jacobian_of(std::move(f), transforms::Mode::Forward);
}

/// The Jacobian of f: Tensor -> Tensor by reverse mode: one reverse sweep per output element.
/// Shape: f(x).shape + x.shape. The same values as jacfwd.
template <class F>
auto jacrev(F f) {
  return detail::jacobian_of(std::move(f), transforms::Mode::Reverse);
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
