// Dual<T>: forward-mode automatic differentiation by dual numbers, from the same op table.
//
// A Dual<T> carries a value and a tangent (the directional derivative along a seed). Every op
// of ops.def is a function on Dual<T>: its value is the table's forward formula evaluated on
// T, its tangent the table's derivative rule times the operand's tangent. T may be double,
// another Dual (Dual<Dual<double>> gives second derivatives; nest again for higher orders)
// or Var (Dual<Var> is forward-over-reverse: the tangent is recorded on the tape, so a
// reverse sweep from it gives a Hessian-vector product).
#pragma once

#include <type_traits>
#include <vector>

#include "tapegrad/op.hpp"
#include "tapegrad/var.hpp"

namespace tapegrad {

template <class T> struct Dual;

namespace detail {
// The constant c as a T: a plain number, an unrecorded Var, a Dual with zero tangent.
template <class T> struct ConstantOf {
  static T make(double c) { return T(c); }
};
template <class U> struct ConstantOf<Dual<U>> {
  static Dual<U> make(double c) { return Dual<U>(c); }
};
template <> struct ConstantOf<Var> {
  static Var make(double c) { return Var::constant(c); }
};
template <class T> T constant_of(double c) { return ConstantOf<T>::make(c); }
}  // namespace detail

template <class T>
struct Dual {
  T v{};  ///< the value
  T d{};  ///< the tangent

  Dual() = default;
  Dual(double value) : v(detail::constant_of<T>(value)), d() {}  // NOLINT: a constant converts implicitly
  template <class U, class = std::enable_if_t<std::is_same_v<U, T> && !std::is_arithmetic_v<U>>>
  Dual(const U& value) : v(value), d() {}  // NOLINT: a T (a Var, an inner Dual) is a constant here
  Dual(T value, T tangent) : v(std::move(value)), d(std::move(tangent)) {}

  /// A variable: value x, tangent 1 (seed the direction you differentiate along).
  static Dual variable(T x) { return Dual(std::move(x), detail::constant_of<T>(1.0)); }
  const T& value() const noexcept { return v; }
  const T& tangent() const noexcept { return d; }
};

template <class T> struct is_dual : std::false_type {};
template <class T> struct is_dual<Dual<T>> : std::true_type {};

/// The innermost plain value (found by the op table's rules through argument-dependent lookup).
template <class T>
double value(const Dual<T>& x) noexcept {
  using rules::value;
  return value(x.v);
}

// --- arithmetic -------------------------------------------------------------------------------
template <class T> Dual<T> operator+(const Dual<T>& x) { return x; }
template <class T> Dual<T> operator-(const Dual<T>& x) { return Dual<T>(-x.v, -x.d); }
template <class T> Dual<T> operator+(const Dual<T>& x, const Dual<T>& y) { return Dual<T>(x.v + y.v, x.d + y.d); }
template <class T> Dual<T> operator-(const Dual<T>& x, const Dual<T>& y) { return Dual<T>(x.v - y.v, x.d - y.d); }
template <class T> Dual<T> operator*(const Dual<T>& x, const Dual<T>& y) {
  return Dual<T>(x.v * y.v, x.d * y.v + x.v * y.d);
}
template <class T> Dual<T> operator/(const Dual<T>& x, const Dual<T>& y) {
  const T z = x.v / y.v;
  return Dual<T>(z, (x.d - z * y.d) / y.v);
}
// With a plain number on either side (no tangent on its side).
template <class T> Dual<T> operator+(const Dual<T>& x, double c) { return Dual<T>(x.v + c, x.d); }
template <class T> Dual<T> operator+(double c, const Dual<T>& y) { return Dual<T>(c + y.v, y.d); }
template <class T> Dual<T> operator-(const Dual<T>& x, double c) { return Dual<T>(x.v - c, x.d); }
template <class T> Dual<T> operator-(double c, const Dual<T>& y) { return Dual<T>(c - y.v, -y.d); }
template <class T> Dual<T> operator*(const Dual<T>& x, double c) { return Dual<T>(x.v * c, x.d * c); }
template <class T> Dual<T> operator*(double c, const Dual<T>& y) { return Dual<T>(c * y.v, c * y.d); }
template <class T> Dual<T> operator/(const Dual<T>& x, double c) { return Dual<T>(x.v / c, x.d / c); }
template <class T> Dual<T> operator/(double c, const Dual<T>& y) {
  const T z = c / y.v;
  return Dual<T>(z, -z * y.d / y.v);
}
// With a T on either side (a Var next to a Dual<Var>): a constant of the dual's kind.
#define TAPEGRAD_DUAL_MIXED(sym)                                                             \
  template <class T, class = std::enable_if_t<!std::is_arithmetic_v<T>>>                    \
  Dual<T> operator sym(const Dual<T>& x, const T& c) { return x sym Dual<T>(c, T{}); }      \
  template <class T, class = std::enable_if_t<!std::is_arithmetic_v<T>>>                    \
  Dual<T> operator sym(const T& c, const Dual<T>& y) { return Dual<T>(c, T{}) sym y; }
TAPEGRAD_DUAL_MIXED(+)
TAPEGRAD_DUAL_MIXED(-)
TAPEGRAD_DUAL_MIXED(*)
TAPEGRAD_DUAL_MIXED(/)
#undef TAPEGRAD_DUAL_MIXED

template <class T> Dual<T>& operator+=(Dual<T>& x, const Dual<T>& y) { return x = x + y; }
template <class T> Dual<T>& operator-=(Dual<T>& x, const Dual<T>& y) { return x = x - y; }
template <class T> Dual<T>& operator*=(Dual<T>& x, const Dual<T>& y) { return x = x * y; }
template <class T> Dual<T>& operator/=(Dual<T>& x, const Dual<T>& y) { return x = x / y; }

// Comparisons are by value.
#define TAPEGRAD_DUAL_COMPARE(sym)                                                                       \
  template <class T> bool operator sym(const Dual<T>& x, const Dual<T>& y) { return value(x) sym value(y); } \
  template <class T> bool operator sym(const Dual<T>& x, double y) { return value(x) sym y; }                \
  template <class T> bool operator sym(double x, const Dual<T>& y) { return x sym value(y); }
TAPEGRAD_DUAL_COMPARE(<)
TAPEGRAD_DUAL_COMPARE(<=)
TAPEGRAD_DUAL_COMPARE(>)
TAPEGRAD_DUAL_COMPARE(>=)
TAPEGRAD_DUAL_COMPARE(==)
TAPEGRAD_DUAL_COMPARE(!=)
#undef TAPEGRAD_DUAL_COMPARE

// --- the op table ---------------------------------------------------------------------------
// f(x) on duals: value by the row's forward formula (on T: the table's functions on Var and
// Dual are found by argument-dependent lookup), tangent = f'(x) * dx by the row's rule.
#define TAPEGRAD_UNARY(Name, name, ...)                             \
  template <class T>                                                \
  Dual<T> name(const Dual<T>& x) {                                  \
    T z = Rule<Op::Name>::forward(x.v);                             \
    T t = Rule<Op::Name>::dx(x.v, z) * x.d;                         \
    return Dual<T>(std::move(z), std::move(t));                     \
  }
// f(x, y): tangent = df/dx * dx + df/dy * dy; a plain number on either side has no tangent.
#define TAPEGRAD_BINARY(Name, name, ...)                                                     \
  template <class T>                                                                         \
  Dual<T> name(const Dual<T>& x, const Dual<T>& y) {                                         \
    T z = Rule<Op::Name>::forward(x.v, y.v);                                                 \
    T t = Rule<Op::Name>::dx(x.v, y.v, z) * x.d + Rule<Op::Name>::dy(x.v, y.v, z) * y.d;     \
    return Dual<T>(std::move(z), std::move(t));                                              \
  }                                                                                          \
  template <class T>                                                                         \
  Dual<T> name(const Dual<T>& x, double c) {                                                 \
    const T y = detail::constant_of<T>(c);                                                   \
    T z = Rule<Op::Name>::forward(x.v, y);                                                   \
    T t = Rule<Op::Name>::dx(x.v, y, z) * x.d;                                               \
    return Dual<T>(std::move(z), std::move(t));                                              \
  }                                                                                          \
  template <class T>                                                                         \
  Dual<T> name(double c, const Dual<T>& y) {                                                 \
    const T x = detail::constant_of<T>(c);                                                   \
    T z = Rule<Op::Name>::forward(x, y.v);                                                   \
    T t = Rule<Op::Name>::dy(x, y.v, z) * y.d;                                               \
    return Dual<T>(std::move(z), std::move(t));                                              \
  }
#include "tapegrad/ops.def"

// The helpers the table's forward formulas use, on duals: NaN-propagating min and max.
template <class T> Dual<T> minimum(const Dual<T>& x, const Dual<T>& y) { return min(x, y); }
template <class T> Dual<T> maximum(const Dual<T>& x, const Dual<T>& y) { return max(x, y); }

// --- forward-mode derivatives ------------------------------------------------------------------
/// df/dx at x for f: Dual<double> -> Dual<double> (one forward pass).
template <class F>
double derivative(F&& f, double x) {
  return f(Dual<double>::variable(x)).d;
}

/// The Jacobian-vector product of f: R^n -> R^m at x along v, by one forward pass:
/// f takes and returns std::vector<Dual<double>>. Returns (f(x), J v).
template <class F>
std::pair<std::vector<double>, std::vector<double>> jvp(F&& f, const std::vector<double>& x,
                                                        const std::vector<double>& v) {
  if (x.size() != v.size()) throw Error("tapegrad: jvp: x and v have different sizes");
  std::vector<Dual<double>> in(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) in[i] = Dual<double>(x[i], v[i]);
  const std::vector<Dual<double>> out = f(in);
  std::pair<std::vector<double>, std::vector<double>> r;
  for (const Dual<double>& o : out) {
    r.first.push_back(o.v);
    r.second.push_back(o.d);
  }
  return r;
}

/// The Hessian-vector product H v of f: R^n -> R at x, forward-over-reverse: f runs once on
/// Dual<Var> (values and tangents recorded on a tape of its own), then one reverse sweep
/// from the tangent gives H v. f takes std::vector<Dual<Var>> and returns a Dual<Var>.
template <class F>
std::vector<double> hvp(F&& f, const std::vector<double>& x, const std::vector<double>& v) {
  if (x.size() != v.size()) throw Error("tapegrad: hvp: x and v have different sizes");
  Tape tape;
  ScopedTape scope(tape);
  std::vector<Var> xs(x.begin(), x.end());
  std::vector<Dual<Var>> in;
  in.reserve(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) in.emplace_back(xs[i], Var::constant(v[i]));
  const Dual<Var> y = f(in);
  return grad(y.d, xs);  // d/dx (grad f . v) = H v
}

}  // namespace tapegrad
