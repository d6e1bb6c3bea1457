// Dual<T>: forward mode from the op table, nested for higher orders, and over Var for
// Hessian-vector products; checked against finite differences and closed forms.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

namespace {

using D = Dual<double>;
using DD = Dual<D>;

// A point inside each op's domain (ops.def).
template <class R>
double point_for() {
  return R::domain[0].lo + 0.45 * (R::domain[0].hi - R::domain[0].lo);
}

double central(const std::function<double(double)>& f, double x) {
  const double h = 1e-4 * std::fmax(1.0, std::fabs(x));
  return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h);
}

void check_close(double got, double want, double tol, const std::string& what) {
  INFO(what << ": got " << got << ", want " << want);
  CHECK(std::fabs(got - want) <= tol * std::fmax(1.0, std::fabs(want)));
}

}  // namespace

TEST_CASE("every unary op: value, first and second derivative on nested duals") {
#define TAPEGRAD_UNARY(Name, name, ...)                                                                 \
  {                                                                                                  \
    const double x0 = point_for<Rule<Op::Name>>();                                                              \
    const D y = tapegrad::name(D::variable(x0));                                                     \
    CHECK(y.v == Rule<Op::Name>::forward(x0));                                                             \
    check_close(y.d, central([](double t) { return Rule<Op::Name>::forward(t); }, x0), 1e-8, #name "'");  \
    /* second derivative: a dual of duals seeded in both levels */                                   \
    const DD yy = tapegrad::name(DD(D(x0, 1.0), D(1.0, 0.0)));                                       \
    CHECK(yy.v.v == Rule<Op::Name>::forward(x0));                                                          \
    CHECK(yy.v.d == y.d);                                                                            \
    CHECK(yy.d.v == y.d);                                                                            \
    check_close(yy.d.d, central([](double t) { return tapegrad::name(D::variable(t)).d; }, x0), 1e-6, \
                #name "''");                                                                         \
  }
#include "tapegrad/ops.def"
}

TEST_CASE("every binary op: both partials, with plain numbers on either side") {
#define TAPEGRAD_BINARY(Name, name, ...)                                                                 \
  {                                                                                                       \
    const double x0 = 0.7, y0 = 1.3;                                                                      \
    const D zx = tapegrad::name(D::variable(x0), D(y0));                                                  \
    const D zy = tapegrad::name(D(x0), D::variable(y0));                                                  \
    CHECK(zx.v == Rule<Op::Name>::forward(x0, y0));                                                             \
    check_close(zx.d, central([](double t) { return Rule<Op::Name>::forward(t, 1.3); }, x0), 1e-8, #name "_x");  \
    check_close(zy.d, central([](double t) { return Rule<Op::Name>::forward(0.7, t); }, y0), 1e-8, #name "_y");  \
    CHECK(tapegrad::name(D::variable(x0), y0).d == zx.d);                                                 \
    CHECK(tapegrad::name(x0, D::variable(y0)).d == zy.d);                                                 \
    /* a direction (1, 2): the tangent is d/dx + 2 d/dy */                                               \
    const D both = tapegrad::name(D(x0, 1.0), D(y0, 2.0));                                                \
    check_close(both.d, zx.d + 2.0 * zy.d, 1e-14, #name " along (1, 2)");                                 \
  }
#include "tapegrad/ops.def"
}

TEST_CASE("higher derivatives of closed forms are exact") {
  // x^3 at 2: 8, 12, 12, 6 (the third derivative of a cubic is 6 everywhere)
  using DDD = Dual<DD>;
  const DDD x(DD(D(2.0, 1.0), D(1.0, 0.0)), DD(D(1.0, 0.0), D(0.0, 0.0)));
  const DDD y = x * x * x;
  CHECK(y.v.v.v == 8.0);
  CHECK(y.v.v.d == 12.0);
  CHECK(y.v.d.d == 12.0);
  CHECK(y.d.d.d == 6.0);
  // x^4 at 2 through pow with a constant exponent: 4x^3 = 32, 12x^2 = 48, 24x = 48
  const DDD p = pow(x, 4.0);
  CHECK(p.v.v.v == 16.0);
  CHECK(p.v.v.d == doctest::Approx(32.0).epsilon(1e-14));
  CHECK(p.v.d.d == doctest::Approx(48.0).epsilon(1e-14));
  CHECK(p.d.d.d == doctest::Approx(48.0).epsilon(1e-14));
  // exp: every derivative is exp(x); sin: cos, -sin, -cos
  const DDD e = exp(x);
  CHECK(e.d.d.d == doctest::Approx(std::exp(2.0)).epsilon(1e-15));
  const DDD s = sin(x);
  CHECK(s.v.v.d == doctest::Approx(std::cos(2.0)).epsilon(1e-15));
  CHECK(s.v.d.d == doctest::Approx(-std::sin(2.0)).epsilon(1e-15));
  CHECK(s.d.d.d == doctest::Approx(-std::cos(2.0)).epsilon(1e-15));
}

TEST_CASE("derivative() and jvp(): forward passes agree with reverse-mode gradients") {
  CHECK(derivative([](D x) { return x * sin(x); }, 1.5) == doctest::Approx(std::sin(1.5) + 1.5 * std::cos(1.5)));
  // F(x) = (x0 x1, sin(x0) + x1^2, exp(x0 - x1)): <u, J v> from jvp equals <J^T u, v> from grad
  auto F = [](const auto& x) {
    using T = std::decay_t<decltype(x[0])>;
    return std::vector<T>{x[0] * x[1], sin(x[0]) + x[1] * x[1], exp(x[0] - x[1])};
  };
  const std::vector<double> x0{0.4, -1.1}, v{0.3, 2.0}, u{1.5, -0.5, 0.25};
  const auto [fx, jv] = jvp(F, x0, v);
  Tape tape;
  ScopedTape scope(tape);
  std::vector<Var> xs{Var(x0[0]), Var(x0[1])};
  const std::vector<Var> ys = F(xs);
  Var dot = ys[0] * u[0] + ys[1] * u[1] + ys[2] * u[2];
  const std::vector<double> jtu = grad(dot, xs);
  double lhs = 0, rhs = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(fx[i] == ys[i].value());
    lhs += u[i] * jv[i];
  }
  for (std::size_t i = 0; i < 2; ++i) rhs += jtu[i] * v[i];
  CHECK(lhs == doctest::Approx(rhs).epsilon(1e-14));
  CHECK_THROWS_AS(jvp(F, x0, {1.0}), Error);
}

TEST_CASE("Dual<Var>: forward-over-reverse Hessian-vector products") {
  // f = x0^2 x1 + sin(x0) + log(x1) x2: H v against finite differences of the gradient
  auto f = [](const auto& x) { return x[0] * x[0] * x[1] + sin(x[0]) + log(x[1]) * x[2]; };
  const std::vector<double> x0{0.8, 1.7, -0.6}, v{1.0, -2.0, 0.5};
  const std::vector<double> hv = hvp(f, x0, v);
  auto gradient = [&](const std::vector<double>& at) {
    Tape tape;
    ScopedTape scope(tape);
    std::vector<Var> xs(at.begin(), at.end());
    return grad(f(xs), xs);
  };
  const double h = 1e-5;
  std::vector<double> plus = x0, minus = x0;
  for (std::size_t i = 0; i < 3; ++i) {
    plus[i] += h * v[i];
    minus[i] -= h * v[i];
  }
  const std::vector<double> gp = gradient(plus), gm = gradient(minus);
  for (std::size_t i = 0; i < 3; ++i) check_close(hv[i], (gp[i] - gm[i]) / (2 * h), 1e-7, "Hv");
  // and against the Hessian from nested duals, column by column
  for (std::size_t j = 0; j < 3; ++j) {
    for (std::size_t i = 0; i < 3; ++i) {
      std::vector<DD> xd(3);
      for (std::size_t k = 0; k < 3; ++k) xd[k] = DD(D(x0[k], k == i ? 1.0 : 0.0), D(k == j ? 1.0 : 0.0, 0.0));
      const double hij = f(xd).d.d;
      std::vector<double> ej(3, 0.0);
      ej[j] = 1.0;
      CHECK(hvp(f, x0, ej)[i] == doctest::Approx(hij).epsilon(1e-14));
    }
  }
}

TEST_CASE("duals compare by value and mix with their own number type") {
  const D a(2.0, 1.0), b(3.0, -1.0);
  CHECK(a < b);
  CHECK(a == 2.0);
  CHECK(3.0 > a);
  CHECK(value(DD(D(4.0, 1.0), D(0.0, 0.0))) == 4.0);
  Tape tape;
  ScopedTape scope(tape);
  Var w = 1.5;
  const Dual<Var> x(Var(2.0), Var::constant(1.0));
  const Dual<Var> y = x * w + w;  // tangent: w
  CHECK(y.v.value() == 4.5);
  CHECK(y.d.value() == 1.5);
  CHECK(grad(y.d, {w})[0] == 1.0);
}
