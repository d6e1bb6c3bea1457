#include <doctest/doctest.h>

#include <cmath>
#include <thread>

#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

TEST_CASE("a binary op records 12 bytes of record and 8 of value, constants go to the pool") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 1.0, y = 2.0;
  const auto before = tape.stats();
  Var z = x * y;
  auto after = tape.stats();
  CHECK(after.records == before.records + 1);
  CHECK(after.bytes_in_use - before.bytes_in_use == 20);
  Var w = z * 3.0;
  after = tape.stats();
  CHECK(after.constants == 1);
  CHECK(tape.record(w.index()).op == Op::MulVC);
  CHECK(tape.constant(tape.record(w.index()).b) == 3.0);
  Var u = 3.0 - w;
  CHECK(tape.record(u.index()).op == Op::SubCV);
  CHECK(grad(u, {x, y}) == std::vector<double>{-6.0, -3.0});
}

TEST_CASE("clear() rewinds in O(1) and reuses the memory") {
  Tape tape;
  ScopedTape scope(tape);
  for (int round = 0; round < 3; ++round) {
    Var x = 1.5;
    Var y = x;
    for (int i = 0; i < 100000; ++i) y = y * 1.0000001 + 0.0;
    CHECK(tape.stats().records == 200001);
    const auto reserved = tape.stats().bytes_reserved;
    tape.clear();
    CHECK(tape.stats().records == 0);
    CHECK(tape.stats().constants == 0);
    CHECK(tape.stats().bytes_reserved == reserved);  // memory kept for the next round
  }
}

TEST_CASE("the reverse sweep skips records that do not lead to the output") {
  Tape tape;
  ScopedTape scope(tape);
  Var w = 2.0;
  Var bad = log(w - w);  // slope 1/0 = inf, recorded before y but not on y's path
  (void)bad;
  Var y = w * 3.0;
  CHECK(grad(y, {w})[0] == 3.0);
}

TEST_CASE("roots survive collect(), everything else is reclaimed and goes stale") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 2.0;
  double x_grad = 0.0;
  const auto rx = tape.add_root(x.index(), &x_grad, true);
  Var garbage = x;
  for (int i = 0; i < 1000; ++i) garbage = sin(garbage);
  Var y = x * x + 1.0;
  const auto ry = tape.add_root(y.index(), nullptr, false);
  CHECK(tape.live_roots() == 2);
  CHECK(tape.live_nonleaf_roots() == 1);
  tape.collect();
  CHECK(tape.stats().records == 3);  // x, x*x, +1
  CHECK(tape.stats().constants == 1);
  CHECK_THROWS_AS(sin(garbage), Error);  // not a root: stale after collect
  tape.reverse(tape.root_record(ry));
  tape.accumulate_root_grads();
  CHECK(x_grad == 4.0);
  CHECK(tape.value(tape.root_record(ry)) == 5.0);
  tape.remove_root(ry);
  tape.remove_root(rx);
  CHECK(tape.live_roots() == 0);
  tape.collect();
  CHECK(tape.stats().records == 0);
}

TEST_CASE("each thread records on its own default tape") {
  double g_other = 0;
  std::thread t([&] {
    Var x = 3.0;
    Var y = x * x * x;
    g_other = grad(y, {x})[0];
  });
  Var x = 2.0;
  Var y = x * x;
  t.join();
  CHECK(grad(y, {x})[0] == 4.0);
  CHECK(g_other == 27.0);
}

TEST_CASE("scoped tapes nest and restore the previous tape") {
  Tape outer, inner;
  ScopedTape s1(outer);
  Var a = 1.0;
  {
    ScopedTape s2(inner);
    CHECK(&Tape::active() == &inner);
    Var b = 2.0;
    CHECK(b.tape() == &inner);
    CHECK_THROWS_AS(a * b, Error);  // a lives on another tape
  }
  CHECK(&Tape::active() == &outer);
  CHECK(a.tape() == &outer);
}

TEST_CASE("the collection policy: collect once the tape doubles past what the last collection left") {
  // (what the Python module runs after every op, for an embedder whose live handles are roots)
  Tape tape;
  ScopedTape scope(tape);
  Var x = 0.5;
  const auto rx = tape.add_root(x.index(), nullptr, true);
  Var y = x * x;  // kept: a root reaches it
  const auto ry = tape.add_root(y.index(), nullptr, false);
  std::uint32_t collections = 0;
  for (int i = 0; i < 3 * static_cast<int>(Tape::kMinCollect); ++i) {
    const Var garbage = sin(x) + 1.0;  // two records no root reaches
    (void)garbage;
    if (tape.maybe_collect()) {
      ++collections;
      CHECK(tape.size() == 2);  // x and x * x
      x = Var(tape.value(tape.root_record(rx)), tape.root_record(rx), tape.generation(), &tape);
    }
    CHECK(tape.size() <= Tape::kMinCollect + 2);
  }
  CHECK(collections >= 5);
  tape.reverse(tape.root_record(ry));
  CHECK(tape.adjoint(tape.root_record(rx)) == 1.0);  // d(x^2)/dx at 0.5
  tape.clear();  // the policy starts afresh: nothing to collect on an empty tape
  CHECK_FALSE(tape.maybe_collect());
}

TEST_CASE("leaf records deliver their adjoints into their sink, removed sinks are reused after collect()") {
  Tape tape;
  ScopedTape scope(tape);
  double grad_w = 0.0, grad_u = 0.0;
  const auto sw = tape.add_sink(&grad_w);
  // one variable, two leaf records (its value changed between two uses), one sink
  Var w1(2.0, tape.push_leaf(2.0, sw), tape.generation(), &tape);
  Var y1 = w1 * w1;  // dy1/dw = 4
  Var w2(3.0, tape.push_leaf(3.0, sw), tape.generation(), &tape);
  Var y = y1 + 10.0 * w2;  // + 10
  const auto root = tape.add_root(y.index(), nullptr, false);
  tape.reverse(y.index());
  CHECK(grad_w == 14.0);
  CHECK(tape.adjoint(w1.index()) == 4.0);

  const auto su = tape.add_sink(&grad_u);
  Var u(1.0, tape.push_leaf(1.0, su), tape.generation(), &tape);
  Var unused = u * 5.0;
  (void)unused;
  tape.remove_sink(su);  // u's owner is gone; its record is not reachable from a root
  tape.collect();
  CHECK(tape.add_sink(&grad_u) == su);  // the slot is free again
  tape.reverse(tape.root_record(root));
  CHECK(grad_w == 28.0);
  CHECK(grad_u == 0.0);
}

TEST_CASE("adjoint() of intermediates is complete, whether a contribution came through memory or the carry") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 1.5;
  Var a = x * x;   // consumed by the next record (carry) and by a later one (memory)
  Var b = a * 3.0;
  Var c = b * b;   // both operands are the previous record
  Var y = c + a;
  tape.reverse(y.index());
  CHECK(tape.adjoint(c.index()) == 1.0);
  CHECK(tape.adjoint(b.index()) == 2 * b.value());
  CHECK(tape.adjoint(a.index()) == 3 * 2 * b.value() + 1.0);
  CHECK(tape.adjoint(x.index()) == (3 * 2 * b.value() + 1.0) * 2 * x.value());
}

TEST_CASE("a sweep's adjoints are its own: sweeps into buffers of their own leave the records and the tape's last "
          "adjoints as they were") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 1.5;
  Var a = sin(x) * x;  // da/dx = cos(x) x + sin(x)
  Var y = a * a + 2.0 * x;
  const std::uint32_t n = tape.size();
  std::vector<double> values(n);
  for (std::uint32_t i = 0; i < n; ++i) values[i] = tape.value(i);
  tape.reverse(y.index());  // the tape's own buffer: kept as its last adjoints
  const double dy_dx = 2 * a.value() * (std::cos(1.5) * 1.5 + std::sin(1.5)) + 2.0;
  CHECK(tape.adjoint(x.index()) == doctest::Approx(dy_dx).epsilon(1e-15));
  // two sweeps of the same records, from different seeds, into two workspaces
  Adjoints from_y, from_a;
  ReverseSweep sy{tape, false, /*deliver=*/false};
  sy.adjoints = &from_y;
  ReverseSweep sa{tape, false, /*deliver=*/false};
  sa.adjoints = &from_a;
  tape.reverse(sy, y.index(), 3.0);
  tape.reverse(sa, a.index(), 1.0);
  CHECK(from_y[x.index()] == doctest::Approx(3 * dy_dx).epsilon(1e-15));
  CHECK(from_a[x.index()] == doctest::Approx(std::cos(1.5) * 1.5 + std::sin(1.5)).epsilon(1e-15));
  CHECK(from_a[y.index()] == 0.0);  // (past its seed: not covered)
  CHECK(tape.adjoint(x.index()) == doctest::Approx(dy_dx).epsilon(1e-15));  // the tape's, unchanged
  CHECK(tape.size() == n);
  for (std::uint32_t i = 0; i < n; ++i) CHECK(tape.value(i) == values[i]);
  CHECK(sy.adjoints == &from_y);  // (a front end's buffer stays its own)
}

TEST_CASE("a recorded backward hands each scalar leaf's recorded gradient to the tape's receiver, once per leaf") {
  Tape tape;
  ScopedTape scope(tape);
  double grad_w = 0.0;
  const auto sw = tape.add_sink(&grad_w);
  // one variable with two leaf records (its value changed between two uses), as Python's Var
  Var w1(2.0, tape.push_leaf(2.0, sw), tape.generation(), &tape);
  Var w2(3.0, tape.push_leaf(3.0, sw), tape.generation(), &tape);
  const Var y = w1 * w1 * w1 + 10.0 * w2 * w2;  // dy/dw1 = 3 w1^2 = 12, dy/dw2 = 20 w2 = 60
  struct Received {
    std::vector<std::pair<double*, Var>> got;
  } received;
  tape.set_recorded_sink(
      [](void* self, double* target, const Var& g) { static_cast<Received*>(self)->got.emplace_back(target, g); },
      &received);
  std::vector<Var> adj;
  std::vector<char> has;
  detail::recorded_backward_from(tape, y.index(), 1.0, adj, has);
  REQUIRE(received.got.size() == 1);  // one leaf: the sum over its records
  CHECK(received.got[0].first == &grad_w);
  CHECK(grad_w == 72.0);  // (the values go into the sink as in a plain backward)
  const Var g = received.got[0].second;
  CHECK(g.value() == 72.0);
  // the gradient is on the tape: d(dy/dw1 + dy/dw2)/dw1 = 6 w1, /dw2 = 20
  const std::vector<double> second = tapegrad::grad(g, {w1, w2});
  CHECK(second[0] == 12.0);
  CHECK(second[1] == 20.0);
  // without a receiver the values still reach the sink
  tape.set_recorded_sink(nullptr, nullptr);
  grad_w = 0.0;
  detail::recorded_backward_from(tape, y.index(), 1.0, adj, has);
  CHECK(grad_w == 72.0);
  CHECK(received.got.size() == 1);
}
