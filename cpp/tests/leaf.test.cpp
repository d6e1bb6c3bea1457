// Leaf: a variable that keeps its value and gradient across tapes (the Python Var's model).
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

TEST_CASE("Leaf: micrograd's loop in C++: fresh tapes, leaves recorded on first use, backward adds into grad()") {
  // fit y = 3 x + 1 by gradient descent on the mean squared error, a tape per step
  const std::vector<double> xs{-1.0, -0.5, 0.0, 0.5, 1.0, 1.5};
  Leaf w = 0.5, b = 0.0;
  double first_dw = 0.0, first_db = 0.0;
  for (int step = 0; step < 300; ++step) {
    Tape tape;
    ScopedTape scope(tape);
    Var loss = Var::constant(0.0);
    for (double x : xs) {
      Var e = w * x + b - (3.0 * x + 1.0);
      loss = loss + e * e;
    }
    loss = loss / static_cast<double>(xs.size());
    CHECK(tape.stats().records < 60);  // w and b recorded once each, not once per use
    backward(loss);
    if (step == 0) {
      first_dw = w.grad();
      first_db = b.grad();
    }
    w.set_value(w.value() - 0.1 * w.grad());
    b.set_value(b.value() - 0.1 * b.grad());
    w.zero_grad();
    b.zero_grad();
  }
  // the first step's gradient: d/dw mean((w x + b - 3x - 1)^2) at w = 0.5, b = 0
  double dw = 0.0, db = 0.0;
  for (double x : xs) {
    const double e = 0.5 * x - (3.0 * x + 1.0);
    dw += 2 * e * x / xs.size();
    db += 2 * e / xs.size();
  }
  CHECK(first_dw == doctest::Approx(dw).epsilon(1e-14));
  CHECK(first_db == doctest::Approx(db).epsilon(1e-14));
  CHECK(w.value() == doctest::Approx(3.0).epsilon(1e-9));
  CHECK(b.value() == doctest::Approx(1.0).epsilon(1e-9));
}

TEST_CASE("Leaf: one record per value on a tape, and records of older values still deliver into the one grad") {
  Tape tape;
  ScopedTape scope(tape);
  Leaf w = 2.0;
  Var a = w, a2 = w;
  CHECK(a.index() == a2.index());  // the same record while the value stands
  Var y1 = w * w;  // d/dw = 2 w = 4
  w.set_value(3.0);
  Var c = w;
  CHECK(c.index() != a.index());  // a new value: a new record
  CHECK(c.value() == 3.0);
  Var y = y1 + 10.0 * w;  // + 10
  backward(y);
  CHECK(w.grad() == 14.0);
  CHECK(w.records_on(tape).size() == 2);
  // grad_of_leaves() sums over the records without touching grad()
  CHECK(grad_of_leaves(y, {&w})[0] == 14.0);
  CHECK(w.grad() == 14.0);
  backward(y, 0.5);
  CHECK(w.grad() == 21.0);
}

TEST_CASE("Leaf: used on two tapes, each backward adds its share, and clear() and collect() keep it right") {
  Leaf x = 1.5;
  Tape t1, t2;
  Var y1, y2;
  {
    ScopedTape s(t1);
    y1 = sin(x) * x;  // cos(x) x + sin(x)
  }
  {
    ScopedTape s(t2);
    y2 = exp(x);
  }
  backward(y1);
  CHECK(x.grad() == doctest::Approx(std::cos(1.5) * 1.5 + std::sin(1.5)).epsilon(1e-15));
  backward(y2);
  CHECK(x.grad() == doctest::Approx(std::cos(1.5) * 1.5 + std::sin(1.5) + std::exp(1.5)).epsilon(1e-15));
  x.zero_grad();
  // after clear(): recorded afresh on the rewound tape, a new sink there
  t1.clear();
  {
    ScopedTape s(t1);
    Var y = x * x * x;
    backward(y);
  }
  CHECK(x.grad() == doctest::Approx(3 * 1.5 * 1.5).epsilon(1e-15));
  // collect(): the leaf's record is a root, so it survives and moves; the next use finds it
  x.zero_grad();
  {
    ScopedTape s(t2);
    t2.clear();
    for (int i = 0; i < 100; ++i) {
      [[maybe_unused]] Var garbage = cos(Var::constant(1.0) + 2.0 * exp(Var(0.5)));
    }
    Var first = x;
    const std::uint32_t root = t2.add_root(first.index(), nullptr, false);
    t2.collect();
    Var again = x;  // (the handle `first` is stale after collect: the leaf is not)
    CHECK(again.index() == t2.root_record(root));
    Var y = again * 4.0;
    backward(y);
    CHECK(x.grad() == 4.0);
  }
}

TEST_CASE("Leaf: tapes and leaves may go in either order, and a Leaf may move while tapes deliver into it") {
  auto tape = std::make_unique<Tape>();
  std::vector<Leaf> params;
  params.emplace_back(1.0);
  Var y;
  {
    ScopedTape s(*tape);
    y = params[0] * 5.0;
  }
  for (int i = 0; i < 100; ++i) params.emplace_back(static_cast<double>(i));  // (the vector reallocates)
  backward(y);
  CHECK(params[0].grad() == 5.0);
  {
    Leaf gone = 7.0;
    ScopedTape s(*tape);
    Var z = gone * gone + y;
    // the leaf goes away: its sink on the tape is removed, and a sweep delivers nowhere
    Leaf moved(std::move(gone));
    CHECK(moved.value() == 7.0);
    backward(z);
    CHECK(moved.grad() == 14.0);
    CHECK(params[0].grad() == 10.0);
    y = z;
  }
  backward(y);  // (its leaf is gone: no write into freed memory, which ASan would catch)
  CHECK(params[0].grad() == 15.0);
  tape.reset();  // the tape goes first: the leaf's sinks on it are not touched again
  Tape other;  // (it may live at the destroyed tape's address: the leaf records afresh)
  ScopedTape s(other);
  Var z = params[0] * 2.0;
  backward(z);
  CHECK(params[0].grad() == 17.0);
  CHECK(params[0].records_on(other).size() == 1);
}

TEST_CASE("Leaf: backward of a constant does nothing, and grad_of_leaves() of leaves the output does not reach is 0") {
  Tape tape;
  ScopedTape scope(tape);
  Leaf a = 1.0, b = 2.0;
  backward(Var::constant(3.0));
  CHECK(a.grad() == 0.0);
  Var y = a * 3.0;
  const std::vector<double> g = grad_of_leaves(y, {&a, &b});
  CHECK(g[0] == 3.0);
  CHECK(g[1] == 0.0);
  CHECK_THROWS_AS(grad_of_leaves(y, {nullptr}), Error);
  tape.clear();
  CHECK_THROWS_AS(backward(y), Error);  // a stale output
}
