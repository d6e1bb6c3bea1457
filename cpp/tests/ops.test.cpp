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
#define TAPEGRAD_UNARY(Name, name, f, dx) {#name, {&tapegrad::name, &table::fwd_##name}},
#include "tapegrad/ops.def"
  };
  return m;
}
const std::map<std::string, Binary>& binary_ops() {
  static const std::map<std::string, Binary> m = {
#define TAPEGRAD_BINARY(Name, name, f, dx, dy) \
  {#name, {&tapegrad::name, &tapegrad::name, &tapegrad::name, &table::fwd_##name}},
#include "tapegrad/ops.def"
  };
  return m;
}

// The test rows: points inside each op's domain, including points near its edges.
const std::map<std::string, std::vector<double>> kUnaryPoints = {
    {"neg", {-2.0, 0.0, 3.5}},           {"exp", {-30.0, -1.0, 0.0, 2.5, 20.0}},
    {"log", {1e-6, 0.3, 1.0, 1e6}},      {"log1p", {-0.999, -0.5, 1e-9, 3.0}},
    {"expm1", {-20.0, -1e-8, 0.5, 5.0}}, {"sqrt", {1e-6, 0.25, 4.0, 1e8}},
    {"sin", {-3.0, 0.0, 1.0, 100.0}},    {"cos", {-3.0, 0.0, 1.0, 100.0}},
    {"tan", {-1.5, 0.0, 0.7, 1.5}},      {"asin", {-0.999, -0.3, 0.0, 0.999}},
    {"acos", {-0.999, -0.3, 0.0, 0.999}}, {"atan", {-50.0, -1.0, 0.0, 2.0}},
    {"sinh", {-5.0, 0.0, 0.5, 10.0}},    {"cosh", {-5.0, 0.0, 0.5, 10.0}},
    {"tanh", {-10.0, -0.5, 0.0, 3.0}},   {"sigmoid", {-40.0, -2.0, 0.0, 1.5, 40.0}},
    {"softplus", {-40.0, -2.0, 0.0, 1.5, 40.0}},
    {"relu", {-2.0, -1e-3, 1e-3, 5.0}},  {"abs", {-3.0, -1e-3, 1e-3, 2.0}},
    {"erf", {-3.0, -0.2, 0.0, 0.7, 4.0}},
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
