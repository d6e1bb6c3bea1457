// Every op of the table against central finite differences in double, at several points,
// near domain edges too. A new op fails `every op has a test row` until it gets one here.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

namespace {

struct Unary {
  Var (*var)(const Var&);
  double (*fwd)(double);
};
struct Binary {
  Var (*vv)(const Var&, const Var&);
  Var (*vc)(const Var&, double);
  Var (*cv)(double, const Var&);
  double (*fwd)(double, double);
};

const std::map<std::string, Unary>& unary_ops() {
  static const std::map<std::string, Unary> m = {
#define TAPEGRAD_UNARY(Name, name, ...) \
  {#name, {&tapegrad::name, [](double x) { return Rule<Op::Name>::forward(x); }}},
#include "tapegrad/ops.def"
  };
  return m;
}
const std::map<std::string, Binary>& binary_ops() {
  static const std::map<std::string, Binary> m = {
#define TAPEGRAD_BINARY(Name, name, ...)                                            \
  {#name,                                                                            \
   {&tapegrad::name, &tapegrad::name, &tapegrad::name,                              \
    [](double x, double y) { return Rule<Op::Name>::forward(x, y); }}},
#include "tapegrad/ops.def"
  };
  return m;
}

// The test rows: points inside each op's domain, including points near its edges.
const std::map<std::string, std::vector<double>> kUnaryPoints = {
    {"neg", {-2.0, 0.0, 3.5}},           {"exp", {-30.0, -1.0, 0.0, 2.5, 20.0}},
    {"log", {1e-6, 0.3, 1.0, 1e6}},      {"log2", {1e-6, 0.3, 1.0, 1e6}},      {"log1p", {-0.999, -0.5, 1e-9, 3.0}},
    {"expm1", {-20.0, -1e-8, 0.5, 5.0}}, {"sqrt", {1e-6, 0.25, 4.0, 1e8}},
    {"sin", {-3.0, 0.0, 1.0, 100.0}},    {"cos", {-3.0, 0.0, 1.0, 100.0}},
    {"tan", {-1.5, 0.0, 0.7, 1.5}},      {"asin", {-0.999, -0.3, 0.0, 0.999}},
    {"acos", {-0.999, -0.3, 0.0, 0.999}}, {"atan", {-50.0, -1.0, 0.0, 2.0}},
    {"sinh", {-5.0, 0.0, 0.5, 10.0}},    {"cosh", {-5.0, 0.0, 0.5, 10.0}},
    {"tanh", {-10.0, -0.5, 0.0, 3.0}},   {"sigmoid", {-40.0, -2.0, 0.0, 1.5, 40.0}},
    {"softplus", {-40.0, -2.0, 0.0, 1.5, 40.0}},
    {"relu", {-2.0, -1e-3, 1e-3, 5.0}},  {"abs", {-3.0, -1e-3, 1e-3, 2.0}},
    {"erf", {-3.0, -0.2, 0.0, 0.7, 4.0}},
    {"floor", {-2.5, -0.3, 0.4, 3.7}},   {"ceil", {-2.5, -0.3, 0.4, 3.7}},
    {"round", {-2.7, -0.3, 0.4, 3.2}},   {"trunc", {-2.5, -0.3, 0.4, 3.7}},
};
const std::map<std::string, std::vector<std::pair<double, double>>> kBinaryPoints = {
    {"add", {{1.0, 2.0}, {-3.0, 0.5}}},
    {"sub", {{1.0, 2.0}, {-3.0, 0.5}}},
    {"mul", {{1.5, -2.0}, {0.0, 3.0}, {1e5, 1e-5}}},
    {"div", {{1.0, 2.0}, {-3.0, 0.01}, {2.0, -1e3}}},
    {"pow", {{2.0, 3.0}, {0.5, -1.5}, {3.0, 0.5}, {1e-3, 2.0}, {1.7, 0.0}}},
    {"atan2", {{1.0, 2.0}, {-1.0, -0.5}, {0.3, -2.0}, {2.0, 1e-3}}},
    {"min", {{1.0, 2.0}, {-1.0, -3.0}}},
    {"max", {{1.0, 2.0}, {-1.0, -3.0}}},
};

// A relative step, so that it stays inside the domain near its edges (log at 1e-6, ...).
double fd_step(double x) { return x == 0 ? 1e-6 : 1e-5 * std::fabs(x); }

// Five-point central difference: error O(h^4), so the step can stay small near domain edges.
template <class F>
double central_difference(F f, double x, double h) {
  return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h);
}

void check_close(double got, double want, double x) {
  INFO("at x = " << x << ": got " << got << ", finite differences give " << want);
  REQUIRE(std::isfinite(want));
  CHECK(std::fabs(got - want) <= 2e-6 * std::fmax(1.0, std::fabs(want)));
}

}  // namespace

TEST_CASE("every op of the table has a test row") {
  for (const auto& [name, op] : unary_ops()) {
    INFO(name);
    CHECK(kUnaryPoints.count(name) == 1);
  }
  for (const auto& [name, op] : binary_ops()) {
    INFO(name);
    CHECK(kBinaryPoints.count(name) == 1);
  }
}

TEST_CASE("unary ops: value and derivative against central finite differences") {
  for (const auto& [name, points] : kUnaryPoints) {
    const Unary& op = unary_ops().at(name);
    for (double x0 : points) {
      INFO(name << "(" << x0 << ")");
      Tape tape;
      ScopedTape scope(tape);
      Var x = x0;
      Var y = op.var(x);
      CHECK(y.value() == op.fwd(x0));
      const double h = fd_step(x0);
      const double fd = central_difference([&](double t) { return op.fwd(t); }, x0, h);
      check_close(grad(y, {x})[0], fd, x0);
    }
  }
}

TEST_CASE("binary ops: both partials, in the (var, var), (var, const) and (const, var) forms") {
  for (const auto& [name, points] : kBinaryPoints) {
    const Binary& op = binary_ops().at(name);
    for (auto [x0, y0] : points) {
      INFO(name << "(" << x0 << ", " << y0 << ")");
      Tape tape;
      ScopedTape scope(tape);
      const double hx = fd_step(x0), hy = fd_step(y0);
      const double fdx = central_difference([&](double t) { return op.fwd(t, y0); }, x0, hx);
      const double fdy = central_difference([&](double t) { return op.fwd(x0, t); }, y0, hy);
      Var x = x0, y = y0;
      Var z = op.vv(x, y);
      CHECK(z.value() == op.fwd(x0, y0));
      auto g = grad(z, {x, y});
      check_close(g[0], fdx, x0);
      check_close(g[1], fdy, y0);
      Var zl = op.vc(x, y0);
      CHECK(zl.value() == op.fwd(x0, y0));
      check_close(grad(zl, {x})[0], fdx, x0);
      Var zr = op.cv(x0, y);
      CHECK(zr.value() == op.fwd(x0, y0));
      check_close(grad(zr, {y})[0], fdy, y0);
    }
  }
}

TEST_CASE("derivatives at the kinks and edges follow PyTorch") {
  Tape tape;
  ScopedTape scope(tape);
  Var z = 0.0;
  CHECK(grad(relu(z), {z})[0] == 0.0);
  CHECK(grad(abs(z), {z})[0] == 0.0);
  CHECK(std::isinf(grad(sqrt(z), {z})[0]));
  Var a = 2.0, b = 2.0;
  auto gmin = grad(min(a, b), {a, b});
  CHECK(gmin[0] == 0.5);
  CHECK(gmin[1] == 0.5);
  auto gmax = grad(max(a, b), {a, b});
  CHECK(gmax[0] == 0.5);
  CHECK(gmax[1] == 0.5);
  // 0^y: d/dy is 0 for y >= 0; x^0: d/dx is 0.
  Var x0 = 0.0, y2 = 2.0;
  auto gp = grad(pow(x0, y2), {x0, y2});
  CHECK(gp[0] == 0.0);
  CHECK(gp[1] == 0.0);
  Var x1 = 0.0;
  CHECK(grad(pow(x1, 0.0), {x1})[0] == 0.0);
  // sigmoid and softplus stay finite far out
  Var big = 800.0;
  CHECK(sigmoid(big).value() == 1.0);
  CHECK(softplus(big).value() == 800.0);
  CHECK(grad(softplus(-big), {big})[0] == doctest::Approx(0.0));
}

TEST_CASE("NaN and infinity propagate as IEEE says") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = -1.0;
  Var y = log(x);
  CHECK(std::isnan(y.value()));
  CHECK(std::isnan(grad(sqrt(x), {x})[0]));
  Var zero = 0.0;
  Var l = log(zero);
  CHECK(std::isinf(l.value()));
  CHECK(l.value() < 0);
  CHECK(std::isinf(grad(l, {zero})[0]));
  Var n = std::nan("");
  Var s = n * 2.0 + 1.0;
  CHECK(std::isnan(s.value()));
  CHECK(grad(s, {n})[0] == 2.0);
  Var inf = INFINITY;
  CHECK(std::isinf(exp(inf).value()));
  CHECK(exp(-inf).value() == 0.0);
}

TEST_CASE("each rule reads only what its row declares (ops.def's reads column)") {
  // A value the rule does not declare may be anything: NaN in its place changes nothing. (A
  // tensor node keeps only the declared values alive, so an undeclared read would be wrong.)
  const double nan = std::nan("");
  auto same = [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); };
  for_each_rule([&](auto rule) {
    using R = decltype(rule);
    INFO(R::name);
    const double x = R::domain[0].lo + 0.4 * (R::domain[0].hi - R::domain[0].lo);
    const bool rx = R::reads & reads::X, rz = R::reads & reads::Z;
    if constexpr (R::arity == 1) {
      const double z = R::forward(x);
      const double d = R::dx(x, z);
      CHECK(std::isfinite(d));
      if (!rx) CHECK(same(R::dx(nan, z), d));
      if (!rz) CHECK(same(R::dx(x, nan), d));
    } else {
      const bool ry = R::reads & reads::Y;
      const double y = R::domain[1].lo + 0.7 * (R::domain[1].hi - R::domain[1].lo);
      const double z = R::forward(x, y);
      const double dx = R::dx(x, y, z), dy = R::dy(x, y, z);
      CHECK(std::isfinite(dx));
      CHECK(std::isfinite(dy));
      if (!rx) CHECK((same(R::dx(nan, y, z), dx) && same(R::dy(nan, y, z), dy)));
      if (!ry) CHECK((same(R::dx(x, nan, z), dx) && same(R::dy(x, nan, z), dy)));
      if (!rz) CHECK((same(R::dx(x, y, nan), dx) && same(R::dy(x, y, nan), dy)));
    }
  });
}

TEST_CASE("each rule's declared reads are needed: NaN in a declared slot shows") {
  // The converse, where the value matters at the domain point: a declaration is not wider than
  // the rule (a node would keep memory alive for nothing). Piecewise-constant rules (relu's
  // step, abs's sign, min/max's tie split) read their operand only for its sign or order.
  const double nan = std::nan("");
  for_each_rule([&](auto rule) {
    using R = decltype(rule);
    INFO(R::name);
    const double x = R::domain[0].lo + 0.4 * (R::domain[0].hi - R::domain[0].lo);
    if constexpr (R::arity == 1) {
      const double z = R::forward(x);
      const bool piecewise = std::string(R::name) == "relu";
      if ((R::reads & reads::Z) && !piecewise) CHECK(std::isnan(static_cast<double>(R::dx(x, nan))));
      if ((R::reads & reads::X) && !piecewise)
        CHECK(std::isnan(static_cast<double>(R::dx(nan, z))));
    } else {
      const double y = R::domain[1].lo + 0.7 * (R::domain[1].hi - R::domain[1].lo);
      const double z = R::forward(x, y);
      auto any_nan = [](double a, double b) { return std::isnan(a) || std::isnan(b); };
      const bool piecewise = std::string(R::name) == "min" || std::string(R::name) == "max";
      if (R::reads & reads::Z) CHECK(any_nan(R::dx(x, y, nan), R::dy(x, y, nan)));
      if ((R::reads & reads::X) && !piecewise) CHECK(any_nan(R::dx(nan, y, z), R::dy(nan, y, z)));
      if ((R::reads & reads::Y) && !piecewise) CHECK(any_nan(R::dx(x, nan, z), R::dy(x, nan, z)));
    }
  });
}
