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
