#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <sstream>

#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

TEST_CASE("the README's C++ quick start") {
  tapegrad::Var x = 3.0;
  auto y = x * x;
  auto g = tapegrad::grad(y, {x});
  CHECK(g[0] == 6.0);
}

TEST_CASE("plain numbers on either side, compound assignment, unary minus") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 2.0, y = 5.0;
  Var f = 1.0 + x;    // 3
  f -= 0.5;           // 2.5
  f *= y;             // 12.5   d/dx = y = 5, d/dy = x + 0.5 = 2.5
  f /= 2.0;           // 6.25   d/dx = 2.5, d/dy = 1.25
  f += x * y;         // 16.25  d/dx = 7.5, d/dy = 3.25
  f -= -y;            // 21.25  d/dy = 4.25
  f = 10.0 / f + f;   // d/df = 1 - 10/f^2
  CHECK(f.value() == doctest::Approx(10.0 / 21.25 + 21.25));
  auto g = grad(f, {x, y});
  const double s = 1 - 10.0 / (21.25 * 21.25);
  CHECK(g[0] == doctest::Approx(7.5 * s));
  CHECK(g[1] == doctest::Approx(4.25 * s));
}

TEST_CASE("constants are not recorded and have no derivative") {
  Tape tape;
  ScopedTape scope(tape);
  Var c = Var::constant(4.0);
  Var d;  // the constant 0
  CHECK(d.value() == 0.0);
  Var e = exp(c) + d * c;
  CHECK(e.is_constant());
  CHECK(tape.stats().records == 0);
  Var x = 1.0;
  Var y = x * c + d;
  CHECK(tape.stats().records == 3);  // leaf, x*4, +0
  CHECK(grad(y, {x, c})[0] == 4.0);
  CHECK(grad(y, {x, c})[1] == 0.0);
}

TEST_CASE("comparisons are by value") {
  Tape tape;
  ScopedTape scope(tape);
  Var a = 1.0, b = 2.0;
  CHECK(a < b);
  CHECK(a <= 1.0);
  CHECK(3.0 > b);
  CHECK(a != b);
  CHECK(a == Var::constant(1.0));
  std::ostringstream os;
  os << b;
  CHECK(os.str() == "Var(2)");
}

TEST_CASE("a Var of a cleared tape is stale: a clear error, never a read of old records") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 3.0;
  Var y = x * x;
  tape.clear();
  CHECK_FALSE(y.valid());
  CHECK_THROWS_WITH_AS(y + 1.0, doctest::Contains("stale"), Error);
  CHECK_THROWS_WITH_AS(grad(y, {x}), doctest::Contains("cleared"), Error);
  Var z = 1.0;  // the tape itself works on
  CHECK(grad(z * z, {z})[0] == 2.0);
  CHECK_THROWS_AS(grad(z * z, {x}), Error);
}

TEST_CASE("a Var of a destroyed tape raises, without touching freed memory") {
  Var y;
  auto tape = std::make_unique<Tape>();
  {
    ScopedTape scope(*tape);
    Var x = 3.0;
    y = x * x;
  }
  tape.reset();
  CHECK_FALSE(y.valid());
  CHECK_THROWS_WITH_AS(grad(y, {}), doctest::Contains("destroyed"), Error);
  CHECK_THROWS_WITH_AS(exp(y), doctest::Contains("destroyed"), Error);
}

TEST_CASE("a chain of 1,000,000 operations differentiates without recursion") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 0.5;
  Var y = x;
  for (int i = 0; i < 1000000; ++i) y = y * 0.999999 + 1e-7;
  CHECK(grad(y, {x})[0] == doctest::Approx(std::pow(0.999999, 1000000)).epsilon(1e-9));
}

TEST_CASE("grad is with respect to the path through every use") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 0.7, y = -1.3;
  Var f = sin(x * y) + x / (1.0 + y * y) - pow(x, 3.0) * tanh(y);
  auto g = grad(f, {x, y});
  const double xv = 0.7, yv = -1.3;
  CHECK(g[0] == doctest::Approx(std::cos(xv * yv) * yv + 1 / (1 + yv * yv) - 3 * xv * xv * std::tanh(yv)));
  CHECK(g[1] == doctest::Approx(std::cos(xv * yv) * xv - xv * 2 * yv / std::pow(1 + yv * yv, 2) -
                                std::pow(xv, 3) * (1 - std::pow(std::tanh(yv), 2))));
}

// --- higher order: the recorded sweep on Var -----------------------------------------------

namespace {
// d/dx of the first derivative f'(x) (a plain sweep) by the five-point stencil.
template <class F>
double second_by_differences(F f, double x) {
  auto first = [&](double t) {
    Tape tape;
    ScopedTape scope(tape);
    Var v = t;
    return grad(f(v), {v})[0];
  };
  const double h = 1e-4 * std::fmax(1.0, std::fabs(x));
  return (-first(x + 2 * h) + 8 * first(x + h) - 8 * first(x - h) + first(x - 2 * h)) / (12 * h);
}

template <class F>
void check_second(const char* what, F f, double x0) {
  INFO(what << " at " << x0);
  Tape tape;
  ScopedTape scope(tape);
  Var x = x0;
  const Var g = grad(f(x), {x}, CreateGraph{})[0];
  CHECK(g.value() == doctest::Approx(grad(f(x), {x})[0]).epsilon(1e-14));
  const double h = g.is_constant() ? 0.0 : grad(g, {x})[0];
  CHECK(h == doctest::Approx(second_by_differences(f, x0)).epsilon(2e-7));
}
}  // namespace

TEST_CASE("create_graph on Var: second derivatives of every op of the table, all three forms") {
#define TAPEGRAD_UNARY(Name, name, ...)                                                           \
  {                                                                                              \
    /* a point of the op's domain (ops.def), scaled back by the 1.1 below */                     \
    const Interval d = Rule<Op::Name>::domain[0];                                                \
    const double x0 = (d.lo + 0.35 * (d.hi - d.lo)) / 1.1;                                       \
    check_second(#name, [](const Var& x) { return tapegrad::name(x * 1.1); }, x0);              \
  }
#define TAPEGRAD_BINARY(Name, name, ...)                                                                 \
  {                                                                                                       \
    check_second(#name " (x, x^2)", [](const Var& x) { return tapegrad::name(x, x * x + 0.5); }, 0.8);   \
    check_second(#name " (x, c)", [](const Var& x) { return tapegrad::name(x * x, 1.3); }, 0.9);         \
    check_second(#name " (c, x)", [](const Var& x) { return tapegrad::name(1.3, x * x); }, 0.9);         \
  }
#include "tapegrad/ops.def"
}

TEST_CASE("create_graph on Var: x^3 and x^4 to the fourth derivative, exactly") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 2.0;
  const Var y = x * x * x;
  const Var d1 = grad(y, {x}, CreateGraph{})[0];   // 3x^2 = 12
  const Var d2 = grad(d1, {x}, CreateGraph{})[0];  // 6x = 12
  const Var d3 = grad(d2, {x}, CreateGraph{})[0];  // 6
  CHECK(d1.value() == 12.0);
  CHECK(d2.value() == 12.0);
  CHECK(d3.value() == 6.0);
  CHECK(grad(d3, {x})[0] == 0.0);
  const Var q = pow(x, 4.0);
  const Var q3 = grad(grad(grad(q, {x}, CreateGraph{})[0], {x}, CreateGraph{})[0], {x}, CreateGraph{})[0];
  CHECK(q3.value() == 48.0);       // 24x
  CHECK(grad(q3, {x})[0] == 24.0);  // the fourth derivative
}

TEST_CASE("create_graph on Var: a Hessian, mixed partials symmetric, unused inputs get 0, constants") {
  Tape tape;
  ScopedTape scope(tape);
  Var a = 0.7, b = -1.2, c = 3.0;
  const Var f = sin(a * b) + exp(a) * b * b;
  const std::vector<Var> g = grad(f, {a, b, c}, CreateGraph{});
  CHECK(g[2].is_constant());
  CHECK(g[2].value() == 0.0);
  const std::vector<double> ha = grad(g[0], {a, b}), hb = grad(g[1], {a, b});
  const double s = std::sin(a.value() * b.value()), co = std::cos(a.value() * b.value()), e = std::exp(a.value());
  CHECK(ha[0] == doctest::Approx(-s * b.value() * b.value() + e * b.value() * b.value()).epsilon(1e-14));
  CHECK(ha[1] == doctest::Approx(co - s * a.value() * b.value() + 2 * e * b.value()).epsilon(1e-14));
  CHECK(hb[0] == doctest::Approx(ha[1]).epsilon(1e-14));
  CHECK(hb[1] == doctest::Approx(-s * a.value() * a.value() + 2 * e).epsilon(1e-14));
  CHECK(grad(Var::constant(2.0), {a}, CreateGraph{})[0].is_constant());
}

TEST_CASE("forward mode on Var: recorded tangents compose with both modes, exactly") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 2.0;
  const Var y = x * x * x * x;                                                    // x^4
  const Var t1 = jvp({y}, {x}, {Var::constant(1.0)}, CreateGraph{})[0];           // 4x^3 = 32
  const Var t2 = jvp({t1}, {x}, {Var::constant(1.0)}, CreateGraph{})[0];          // 12x^2 = 48
  const Var t3 = grad(t2, {x}, CreateGraph{})[0];                                 // 24x = 48
  CHECK(t1.value() == 32.0);
  CHECK(t2.value() == 48.0);
  CHECK(t3.value() == 48.0);
  CHECK(jvp({t3}, {x}, {1.0})[0] == 24.0);                                        // the fourth derivative
  // forward over reverse on Vars: the tangent of the recorded gradient is H v
  Var a = 0.7, b = -1.2;
  const Var f = sin(a * b) + exp(a) * b * b;
  const std::vector<Var> g = grad(f, {a, b}, CreateGraph{});
  const std::vector<double> hv = jvp({g[0], g[1]}, {a, b}, {1.0, 2.0});
  const std::vector<double> ha = grad(g[0], {a, b}), hb = grad(g[1], {a, b});
  CHECK(hv[0] == doctest::Approx(ha[0] + 2 * ha[1]).epsilon(1e-14));
  CHECK(hv[1] == doctest::Approx(hb[0] + 2 * hb[1]).epsilon(1e-14));
  // a tangent that is itself a variable: d/dv of J v is J
  Var v = 0.5;
  const Var jv = jvp({f}, {a}, {v}, CreateGraph{})[0];
  CHECK(grad(jv, {v})[0] == doctest::Approx(grad(f, {a})[0]).epsilon(1e-15));
  CHECK(jvp({Var::constant(3.0)}, {a}, {v}, CreateGraph{})[0].is_constant());
}

TEST_CASE("grad over several outputs: grad_outputs, allow_unused, create_graph, no delivery") {
  Tape tape;
  ScopedTape scope(tape);
  double sink = 0.0;
  Var x(tape.size() == 0 ? 1.5 : 0.0);  // a leaf
  const std::uint32_t slot = tape.add_sink(&sink);
  Var y = Var(2.0, tape.push_leaf(2.0, slot), tape.generation(), &tape);  // a leaf delivering into `sink`
  Var unused = 7.0;
  const Var a = x * y, b = sin(x);
  // d(3a + 2b)/dx = 3y + 2cos x, d/dy = 3x
  auto g = grad({a, b}, {x, y, unused}, {Var::constant(3.0), Var::constant(2.0)}, GradOptions{false, true});
  REQUIRE(g.size() == 3);
  CHECK(g[0]->value() == doctest::Approx(3 * 2.0 + 2 * std::cos(1.5)));
  CHECK(g[1]->value() == doctest::Approx(3 * 1.5));
  CHECK(g[0]->is_constant());
  CHECK_FALSE(g[2].has_value());
  CHECK(sink == 0.0);  // nothing delivered
  CHECK_THROWS_WITH_AS(grad({a, b}, {unused}, {}, GradOptions{}), doctest::Contains("input 0 was not used"), Error);
  CHECK_THROWS_WITH_AS(grad({a}, {x}, {Var::constant(1.0), Var::constant(1.0)}, GradOptions{}),
                       doctest::Contains("2 grad_outputs for 1 outputs"), Error);
  // create_graph: the gradient differentiates again; a recorded seed is differentiated through
  auto h = grad({a, b}, {x}, {y, Var::constant(1.0)}, GradOptions{true, false});  // y*y + cos x
  REQUIRE(h[0].has_value());
  CHECK(h[0]->value() == doctest::Approx(4.0 + std::cos(1.5)));
  const auto second = grad({*h[0]}, {x, y}, {}, GradOptions{});
  CHECK(second[0]->value() == doctest::Approx(-std::sin(1.5)));
  CHECK(second[1]->value() == doctest::Approx(2 * 2.0));
  CHECK(sink == 0.0);
  // an input of another tape
  Tape other;
  Var z = 0.0;
  {
    ScopedTape s2(other);
    z = Var(1.0);
  }
  CHECK_THROWS_WITH_AS(grad({a}, {z}, {}, GradOptions{}), doctest::Contains("input 0 was recorded on another tape"),
                       Error);
  CHECK_THROWS_WITH_AS(grad({a}, {x}, {z}, GradOptions{}),
                       doctest::Contains("grad_outputs[0] was recorded on another tape"), Error);
}

TEST_CASE("accumulate_recorded_grad: a leaf's recorded .grad under create_graph") {
  Tape tape;
  ScopedTape scope(tape);
  const Var x = 1.5;
  const Var prev = 2.0 * x, g = 3.0 * x * x;
  const double now = prev.value() + g.value();
  // the previous recorded gradient current: accumulated into, differentiable through both
  const Var total = detail::accumulate_recorded_grad(tape, now, &prev, g);
  CHECK(total.value() == now);
  CHECK(grad(total, {x})[0] == doctest::Approx(2.0 + 6.0 * 1.5).epsilon(1e-15));
  // none, or one whose value is not what the gradient held (reset, changed): a constant
  CHECK(grad(detail::accumulate_recorded_grad(tape, now, nullptr, g), {x})[0] == doctest::Approx(9.0).epsilon(1e-15));
  const Var stale = 5.0 * x;
  const Var t2 = detail::accumulate_recorded_grad(tape, now, &stale, g);
  CHECK(t2.value() == now);
  CHECK(grad(t2, {x})[0] == doctest::Approx(9.0).epsilon(1e-15));
  // the first gradient (0 before): g itself
  const Var first = detail::accumulate_recorded_grad(tape, g.value(), nullptr, g);
  CHECK(first.index() == g.index());
  // a previous gradient of another tape is not this one's
  Tape other;
  Var foreign;
  {
    ScopedTape s2(other);
    const Var z = 1.0;
    foreign = z * 3.0;
  }
  const Var t3 = detail::accumulate_recorded_grad(tape, foreign.value() + g.value(), &foreign, g);
  CHECK(grad(t3, {x})[0] == doctest::Approx(9.0).epsilon(1e-15));
}

TEST_CASE("a zero adjoint times an infinite partial is NaN, as IEEE says, and a record off the path passes nothing") {
  auto grad_at = [](double x0, auto f) {
    Tape tape;
    ScopedTape scope(tape);
    Var x = x0;
    return grad(f(x), {x})[0];
  };
  CHECK(std::isnan(grad_at(0.0, [](const Var& x) { return sqrt(x) * 0.0; })));
  CHECK(std::isnan(grad_at(800.0, [](const Var& x) { return log(exp(x)); })));
  CHECK(std::isnan(grad_at(0.0, [](const Var& x) { return 0.0 * log(x); })));
  CHECK(std::isnan(grad_at(1.0, [](const Var& x) { return asin(x) * 0.0; })));
  CHECK(grad_at(0.0, [](const Var& x) { return exp(x) * 0.0; }) == 0.0);  // finite partials: exact zeros
  // sqrt(x) recorded but not on the output's path: x's gradient is 2, not NaN
  {
    Tape tape;
    ScopedTape scope(tape);
    Var x = 0.0;
    [[maybe_unused]] Var unused = sqrt(x);  // (recorded: on the tape, not on the path)
    Var y = x * 2.0;
    CHECK(grad(y, {x})[0] == 2.0);
    tape.reverse(y.index());
    CHECK(tape.adjoint(x.index()) == 2.0);
  }
}

TEST_CASE("atan2's slope at the origin is zero (PyTorch's), elsewhere y/(x^2+y^2) and -x/(x^2+y^2)") {
  Tape tape;
  ScopedTape scope(tape);
  Var a = 0.0, b = 0.0;
  auto g = grad(atan2(a, b), {a, b});
  CHECK(g[0] == 0.0);
  CHECK(g[1] == 0.0);
  Var c = 1.0, d = 2.0;
  g = grad(atan2(c, d), {c, d});
  CHECK(g[0] == doctest::Approx(0.4));
  CHECK(g[1] == doctest::Approx(-0.2));
}
