// Helpers that the op table's forward formulas and derivative rules are written with.
// Each is defined here for double; a number type that the rules are instantiated on (Var,
// Dual) supplies its own overloads, found by argument-dependent lookup.
#pragma once

#include <cmath>

namespace tapegrad::rules {

// Every function of <cmath> that a row may use on double (a new row needs nothing here).
using std::abs, std::acos, std::acosh, std::asin, std::asinh, std::atan, std::atan2, std::atanh, std::cbrt,
    std::ceil, std::cos, std::cosh, std::erf, std::erfc, std::exp, std::exp2, std::expm1, std::floor, std::hypot,
    std::lgamma, std::log, std::log10, std::log1p, std::log2, std::pow, std::sin, std::sinh,
    std::sqrt, std::tan, std::tanh, std::tgamma, std::trunc;

/// The plain value of a number (the identity on double).
inline double value(double x) noexcept { return x; }

inline double sigmoid(double x) noexcept {
  // Two branches so that neither exp can overflow.
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}
// ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|): exact for large |x|.
inline double softplus(double x) noexcept { return (x > 0 ? x : 0.0) + std::log1p(std::exp(-std::abs(x))); }
// To the nearest integer, half to even (NumPy's and PyTorch's round; std::round rounds half away from 0).
inline double round(double x) noexcept { return std::nearbyint(x); }
inline double relu(double x) noexcept { return x > 0 ? x : (x == x ? 0.0 : x); }
// NaN-propagating minimum and maximum (as NumPy's and PyTorch's); ties give the first operand.
inline double minimum(double x, double y) noexcept { return (x != x || x <= y) ? x : y; }
inline double maximum(double x, double y) noexcept { return (x != x || x >= y) ? x : y; }

// Piecewise-constant partial derivatives: plain doubles whatever the number type.
template <class T> double step(const T& x) noexcept { return value(x) > 0 ? 1.0 : 0.0; }
template <class T> double sign(const T& x) noexcept {
  const double v = value(x);
  return v > 0 ? 1.0 : (v < 0 ? -1.0 : v);  // 0 at 0 (PyTorch's choice), NaN stays NaN
}
// 1 where x < y, 1/2 on a tie (PyTorch's minimum/maximum split the gradient evenly), else 0.
template <class X, class Y> double lesser(const X& x, const Y& y) noexcept {
  const double a = value(x), b = value(y);
  return a < b ? 1.0 : (a == b ? 0.5 : 0.0);
}

// d x^y/dx = y x^(y-1), taken as 0 where y == 0 (so 0^0 has a zero slope, as in PyTorch).
template <class X, class Y> auto pow_dx(const X& x, const Y& y) {
  using R = decltype(y * pow(x, y - 1.0));
  return value(y) == 0 ? R{} : R(y * pow(x, y - 1.0));
}
// d x^y/dy = x^y ln x, taken as 0 where x == 0 and y >= 0 (the limit from the right; PyTorch).
template <class X, class Y, class Z> auto pow_dy(const X& x, const Y& y, const Z& z) {
  using R = decltype(z * log(x));
  return (value(x) == 0 && value(y) >= 0) ? R{} : R(z * log(x));
}

// 1 / (x^2 + y^2), atan2's slopes' common factor, taken as 0 where x^2 + y^2 is 0 (the
// origin, or both so small that the squares underflow): atan2 has a zero slope there, as in
// PyTorch, where the formula gives 0 * inf.
template <class X, class Y> auto inv_norm2(const X& x, const Y& y) {
  const auto n = x * x + y * y;
  using R = decltype(1.0 / n);
  return value(n) == 0 ? R{} : R(1.0 / n);
}

}  // namespace tapegrad::rules
