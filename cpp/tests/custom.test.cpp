// Hooks, custom differentiable functions and checkpointed segments: records and steps that
// run a user's code inside the sweeps, against closed forms and against the same computation
// done without them.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

namespace {

Tensor vec(std::vector<double> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_values(v, {n});
}

void check_close(const Tensor& a, const Tensor& b, double tol = 1e-12) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(std::abs(x[i] - y[i]) <= tol * (1.0 + std::abs(y[i])));
}

// --- functions for the custom-op tests ---------------------------------------------------

struct MyExp : autograd::Function<MyExp> {
  static std::vector<Tensor> forward(autograd::Context& ctx, const std::vector<Tensor>& x) {
    Tensor y = exp(x[0]);
    ctx.save_for_backward({y});
    return {y};
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {g[0] * ctx.saved_tensors()[0]};  // tensor ops: recorded under create_graph
  }
  static std::vector<Tensor> jvp(autograd::Context& ctx, const std::vector<Tensor>& t) {
    return {t[0] * ctx.saved_tensors()[0]};
  }
};

struct NoJvpSquare : autograd::Function<NoJvpSquare> {
  static std::vector<Tensor> forward(autograd::Context& ctx, const std::vector<Tensor>& x) {
    ctx.save_for_backward({x[0]});
    return {x[0] * x[0]};
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    return {2.0 * g[0] * ctx.saved_tensors()[0]};
  }
};

// Two outputs (sin, cos) and a non-differentiable third (the sign of x, as a mask).
struct SinCos : autograd::Function<SinCos> {
  static std::vector<Tensor> forward(autograd::Context& ctx, const std::vector<Tensor>& x) {
    ctx.save_for_backward({x[0]});
    Tensor mask = greater(x[0], Tensor::zeros({}));
    ctx.mark_non_differentiable({mask});
    ctx.saved_data["calls"] = 0;
    return {sin(x[0]), cos(x[0]), mask};
  }
  static std::vector<Tensor> backward(autograd::Context& ctx, const std::vector<Tensor>& g) {
    ctx.saved_data["calls"] += 1;
    const Tensor& x = ctx.saved_tensors()[0];
    CHECK(g.size() == 3);
    return {g[0] * cos(x) - g[1] * sin(x)};
  }
};

struct WrongCount : autograd::Function<WrongCount> {
  static std::vector<Tensor> forward(autograd::Context&, const std::vector<Tensor>& x) { return {x[0] * 2.0}; }
  static std::vector<Tensor> backward(autograd::Context&, const std::vector<Tensor>& g) { return {g[0], g[0]}; }
};
struct WrongShape : autograd::Function<WrongShape> {
  static std::vector<Tensor> forward(autograd::Context&, const std::vector<Tensor>& x) { return {sum(x[0])}; }
  static std::vector<Tensor> backward(autograd::Context&, const std::vector<Tensor>&) {
    return {Tensor::ones({7})};
  }
};
// Returns its input unchanged, and a gradient that broadcasts (a (1,) gradient for a (3,) input
// is summed? no: a (2, 3) gradient for a (3,) input is summed over the leading axis).
struct Identity : autograd::Function<Identity> {
  static std::vector<Tensor> forward(autograd::Context&, const std::vector<Tensor>& x) { return {x[0]}; }
  static std::vector<Tensor> backward(autograd::Context&, const std::vector<Tensor>& g) {
    return {stack({g[0], g[0]}, 0) * 0.5};
  }
};

}  // namespace

TEST_CASE("tensor hooks: see and replace a result's and a leaf's gradient, in order, removable") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = vec({1.0, 2.0, 3.0});
  x.requires_grad_();
  Tensor y = x * x;
  int calls = 0;
  Tensor seen;
  const auto h1 = y.register_hook([&](const Tensor& g) {
    ++calls;
    seen = g;
    return g * 2.0;  // replaces y's gradient
  });
  Tensor seen2;
  y.register_hook([&](const Tensor& g) {
    seen2 = g;       // after the first hook
    return Tensor();  // keep it
  });
  sum(y).backward(Tensor::ones({}), false, true);
  CHECK(calls == 1);
  check_close(seen, vec({1.0, 1.0, 1.0}));
  check_close(seen2, vec({2.0, 2.0, 2.0}));
  check_close(x.grad(), vec({4.0, 8.0, 12.0}));  // 2 * 2x

  CHECK(y.remove_hook(h1));
  CHECK_FALSE(y.remove_hook(h1));
  x.zero_grad();
  sum(y).backward(Tensor::ones({}), false, true);
  check_close(x.grad(), vec({2.0, 4.0, 6.0}));
  CHECK(calls == 1);

  // A leaf's hook runs before its .grad accumulates; the post-accumulate hook after.
  x.zero_grad();
  x.register_hook([](const Tensor& g) { return g * 10.0; });
  std::vector<double> after;
  x.register_post_accumulate_grad_hook([&](const Tensor& leaf) { after = leaf.grad().to_vector(); });
  sum(x * 3.0).backward();
  check_close(x.grad(), vec({30.0, 30.0, 30.0}));
  CHECK(after == std::vector<double>{30.0, 30.0, 30.0});
  // backward() on the leaf itself goes through both as well
  x.zero_grad();
  x.backward(vec({1.0, 1.0, 1.0}));
  check_close(x.grad(), vec({10.0, 10.0, 10.0}));
}

TEST_CASE("tensor hooks: errors name the problem, and grad() sees the hooked gradient") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor c = vec({1.0, 2.0});
  CHECK_THROWS_WITH_AS(c.register_hook([](const Tensor& g) { return g; }),
                       doctest::Contains("does not require grad"), Error);
  Tensor x = vec({1.0, 2.0});
  x.requires_grad_();
  Tensor y = x * 3.0;
  CHECK_THROWS_WITH_AS(y.register_post_accumulate_grad_hook([](const Tensor&) {}),
                       doctest::Contains("only be registered on leaves"), Error);
  y.register_hook([](const Tensor&) { return Tensor::ones({5}); });
  CHECK_THROWS_WITH_AS(sum(y).backward(), doctest::Contains("shape (5,) for a tensor of shape (2,)"), Error);
  CHECK_FALSE(x.grad().defined());  // nothing half-delivered

  Tensor z = x * x;
  z.register_hook([](const Tensor& g) { return g * -1.0; });
  const auto gr = grad({sum(z)}, {x});
  check_close(gr[0], vec({-2.0, -4.0}));
}

TEST_CASE("tensor hooks under create_graph: what a hook does is recorded") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::full({}, 1.5);
  x.requires_grad_();
  Tensor y = x * x;                                                  // dy/dx = 2x
  y.register_hook([x](const Tensor& g) { return g * x; });           // the gradient times x
  const Tensor g = grad({y}, {x}, {}, /*create_graph=*/true)[0];     // 2x * x = 2x^2
  CHECK(g.item() == doctest::Approx(2 * 1.5 * 1.5));
  const Tensor h = grad({g}, {x})[0];                                // 4x
  CHECK(h.item() == doctest::Approx(4 * 1.5));
}

TEST_CASE("Var hooks: on a result and on a leaf, plain and recorded, kept by collect()") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 2.0;
  Var y = x * x;      // 4
  Var z = y * 3.0;    // dz/dx = 3 * 2x = 12
  int calls = 0;
  const auto id = tape.add_hook(y.index(), [&](const Var& g) {
    ++calls;
    CHECK(g.value() == 3.0);
    return g * 10.0;
  });
  CHECK(grad(z, {x})[0] == 120.0);
  CHECK(calls == 1);
  // Recorded: the hook's product is part of the gradient's graph (d/dx of 10 * 3 * 2x = 60).
  const Var gx = grad(z, {x}, CreateGraph{})[0];
  CHECK(gx.value() == 120.0);
  CHECK(grad(gx, {x})[0] == 60.0);
  CHECK(tape.remove_hook(id));
  CHECK(grad(z, {x})[0] == 12.0);
  // A leaf's record, and a hook that is never reached is never called.
  Var unused = x * 7.0;
  tape.add_hook(unused.index(), [](const Var&) -> Var { FAIL("an unreached record's hook ran"); return Var(); });
  tape.add_hook(x.index(), [](const Var& g) { return g + 1.0; });
  CHECK(grad(z, {x})[0] == 13.0);
  // collect() keeps the hooks of the records it keeps, where they moved.
  const std::uint32_t root = tape.add_root(z.index(), nullptr, false);
  tape.collect();
  tape.reverse(tape.root_record(root));
  CHECK(tape.stats().records == 3);
  // (x's record is 0 after collect; its hook still adds 1)
  CHECK(tape.adjoint(0) == 13.0);
}

TEST_CASE("autograd::Function: gradient, create_graph through a backward written with ops, jvp") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = vec({-0.5, 0.25, 1.0});
  x.requires_grad_();
  Tensor y = MyExp::apply({x})[0];
  check_close(y, exp(x.detach()));
  const Tensor g = grad({sum(y * y)}, {x}, {}, true)[0];  // 2 e^{2x}
  check_close(g, 2.0 * exp(2.0 * x.detach()));
  const Tensor h = grad({sum(g)}, {x})[0];  // 4 e^{2x}: the backward was recorded
  check_close(h, 4.0 * exp(2.0 * x.detach()));
  // forward mode through its jvp
  const Tensor t = jvp({y}, {x}, {vec({1.0, 2.0, 3.0})})[0];
  check_close(t, vec({1.0, 2.0, 3.0}) * exp(x.detach()));
  // and without one: a clear error
  Tensor s = NoJvpSquare::apply({x})[0];
  CHECK_THROWS_WITH_AS(jvp({s}, {x}, {vec({1.0, 1.0, 1.0})}), doctest::Contains("NoJvpSquareBackward needs a jvp"), Error);
  sum(s).backward();
  check_close(x.grad(), 2.0 * x.detach());
}

TEST_CASE("autograd::Function: several outputs, non-differentiable ones, reached or not") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = vec({0.3, -1.2});
  x.requires_grad_();
  std::vector<Tensor> out = SinCos::apply({x});
  REQUIRE(out.size() == 3);
  CHECK(out[0].requires_grad());
  CHECK(out[1].requires_grad());
  CHECK_FALSE(out[2].requires_grad());  // the mask
  CHECK(out[2].dtype() == DType::Bool);
  const Tensor xd = x.detach();
  check_close(grad({sum(out[0] * 2.0 + out[1])}, {x})[0], 2.0 * cos(xd) - sin(xd));
  check_close(grad({sum(out[1])}, {x})[0], -sin(xd));  // only the second output reached
  check_close(grad({sum(out[0])}, {x})[0], cos(xd));   // only the first
}

TEST_CASE("autograd::Function: wrong gradients are errors naming the function, and inputs returned as is") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = vec({1.0, 2.0, 3.0});
  x.requires_grad_();
  CHECK_THROWS_WITH_AS(sum(WrongCount::apply({x})[0]).backward(),
                       doctest::Contains("WrongCountBackward returned an incorrect number of gradients (expected 1, got 2)"),
                       Error);
  CHECK_THROWS_WITH_AS(WrongShape::apply({x})[0].backward(),
                       doctest::Contains("returned a gradient of shape (7,) for input 0 of shape (3,)"), ValueError);
  Tensor y = Identity::apply({x})[0];
  CHECK_FALSE(y.same(x));
  CHECK_FALSE(y.is_leaf());
  sum(y * vec({1.0, 2.0, 3.0})).backward();
  check_close(x.grad(), vec({1.0, 2.0, 3.0}));  // (2, 3) gradient summed to (3,)
  // a saved tensor changed in place: refused
  Tensor z = MyExp::apply({x})[0];
  z.assign(vec({0.0, 0.0, 0.0}));
  CHECK_THROWS_WITH_AS(sum(z).backward(), doctest::Contains("modified by an in-place operation"), Error);
  // no input requires grad: nothing is recorded
  Tensor c = MyExp::apply({vec({0.0})})[0];
  CHECK_FALSE(c.requires_grad());
}

namespace {
// A small tanh MLP as a list of layers; its weights are leaves the segment functions read.
struct Mlp {
  std::vector<Tensor> w;
  explicit Mlp(int layers, std::int64_t width) {
    for (int l = 0; l < layers; ++l) {
      std::vector<double> v(static_cast<std::size_t>(width * width));
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.7 * double(i) + l) / std::sqrt(double(width));
      Tensor t = Tensor::from_values(v, {width, width});
      t.requires_grad_();
      w.push_back(t);
    }
  }
  Tensor run(Tensor h, std::size_t from, std::size_t to) const {
    for (std::size_t l = from; l < to; ++l) h = tanh(matmul(h, w[l]));
    return h;
  }
};
}  // namespace

TEST_CASE("checkpoint: tensors, weights read from outside, equal gradients with a fraction of the saved bytes") {
  const int layers = 8;
  const std::int64_t width = 16, batch = 4;
  Mlp mlp(layers, width);
  std::vector<double> xv(static_cast<std::size_t>(batch * width));
  for (std::size_t i = 0; i < xv.size(); ++i) xv[i] = std::cos(0.3 * double(i));
  Tensor x = Tensor::from_values(xv, {batch, width});
  x.requires_grad_();

  std::vector<Tensor> plain_grads;
  std::size_t plain_bytes = 0;
  {
    Tape tape;
    ScopedTape scope(tape);
    Tensor loss = sum(mlp.run(x, 0, layers));
    plain_bytes = tape.node_bytes();
    loss.backward();
    plain_grads.push_back(x.grad());
    for (Tensor& w : mlp.w) plain_grads.push_back(w.grad()), w.zero_grad();
    x.zero_grad();
  }
  std::size_t ckpt_bytes = 0;
  {
    Tape tape;
    ScopedTape scope(tape);
    Tensor h = x;
    for (int s = 0; s < 4; ++s) {
      const std::size_t from = std::size_t(s) * 2;
      h = checkpoint([&mlp, from](const std::vector<Tensor>& in) { return std::vector<Tensor>{mlp.run(in[0], from, from + 2)}; },
                     {h})[0];
    }
    Tensor loss = sum(h);
    ckpt_bytes = tape.node_bytes();
    loss.backward();
    check_close(x.grad(), plain_grads[0]);
    for (std::size_t l = 0; l < mlp.w.size(); ++l) check_close(mlp.w[l].grad(), plain_grads[l + 1]);
  }
  MESSAGE("saved bytes: plain " << plain_bytes << ", checkpointed " << ckpt_bytes);
  CHECK(ckpt_bytes * 2 < plain_bytes);
}

TEST_CASE("checkpoint: create_graph gives the plain run's second derivatives, and outside results are refused") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = vec({0.2, -0.4, 0.9});
  x.requires_grad_();
  Tensor w = vec({1.5, -0.5, 0.25});
  w.requires_grad_();
  auto f = [&w](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{sin(in[0] * w) * in[1], in[0] * in[0]};
  };
  Tensor two = Tensor::full({}, 2.0);
  two.requires_grad_();
  // plain
  std::vector<Tensor> p = f({x, two});
  Tensor lp = sum(p[0] * p[0]) + sum(p[1]);
  std::vector<Tensor> gp = grad({lp}, {x, w, two}, {}, true);
  std::vector<Tensor> hp = grad({sum(gp[0]) + sum(gp[1]) + gp[2]}, {x, w, two});
  // checkpointed
  std::vector<Tensor> c = checkpoint(f, {x, two});
  Tensor lc = sum(c[0] * c[0]) + sum(c[1]);
  std::vector<Tensor> gc = grad({lc}, {x, w, two}, {}, true);
  std::vector<Tensor> hc = grad({sum(gc[0]) + sum(gc[1]) + gc[2]}, {x, w, two});
  for (int k = 0; k < 3; ++k) {
    check_close(gc[k], gp[k]);
    check_close(hc[k], hp[k]);
  }
  // a result computed outside the segment, used inside it: an error that names checkpoint
  Tensor outside = x * 2.0;
  CHECK_THROWS_WITH_AS(checkpoint([&outside](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] * outside}; },
                                  {x}),
                       doctest::Contains("checkpoint(): the checkpointed function used a tensor that requires grad"),
                       Error);
  // forward mode through a segment: a clear error
  Tensor y = checkpoint([](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] * 3.0}; }, {x})[0];
  CHECK_THROWS_WITH_AS(jvp({y}, {x}, {vec({1.0, 1.0, 1.0})}), doctest::Contains("through a checkpointed segment"), Error);
}

namespace {
// Euler steps of dy/dt = -k y + sin(t), dk/dt = 0: the state (y, k) after `steps` steps.
std::vector<Var> euler(const std::vector<Var>& s, int first, int steps, double dt) {
  Var y = s[0], k = s[1];
  for (int i = 0; i < steps; ++i) {
    const double t = (first + i) * dt;
    y = y + dt * (-k * y + std::sin(t));
  }
  return {y, k};
}
}  // namespace

TEST_CASE("checkpoint on Vars: an ODE solver's time steps, equal gradients and second derivatives, fewer records") {
  const int steps = 400, seg = 50;
  const double dt = 0.01;
  double plain_g[2], plain_h;
  std::size_t plain_records = 0;
  {
    Tape tape;
    ScopedTape scope(tape);
    Var y0 = 1.0, k = 0.7;
    Var y = euler({y0, k}, 0, steps, dt)[0];
    Var loss = y * y;
    plain_records = tape.size();
    const std::vector<Var> g = grad(loss, {y0, k}, CreateGraph{});
    plain_g[0] = g[0].value();
    plain_g[1] = g[1].value();
    plain_h = grad(g[1], {k})[0];
  }
  Tape tape;
  ScopedTape scope(tape);
  Var y0 = 1.0, k = 0.7;
  std::vector<Var> s{y0, k};
  for (int first = 0; first < steps; first += seg)
    s = checkpoint([first, seg, dt](const std::vector<Var>& in) { return euler(in, first, seg, dt); }, s);
  Var loss = s[0] * s[0];
  MESSAGE("records: plain " << plain_records << ", checkpointed " << tape.size());
  CHECK(tape.size() * 10 < plain_records);
  const std::vector<double> g = grad(loss, {y0, k});
  CHECK(std::abs(g[0] - plain_g[0]) <= 1e-12 * std::abs(plain_g[0]));
  CHECK(std::abs(g[1] - plain_g[1]) <= 1e-12 * std::abs(plain_g[1]));
  const std::vector<Var> gr = grad(loss, {y0, k}, CreateGraph{});
  CHECK(std::abs(gr[1].value() - plain_g[1]) <= 1e-12 * std::abs(plain_g[1]));
  const double h = grad(gr[1], {k})[0];
  CHECK(std::abs(h - plain_h) <= 1e-10 * std::abs(plain_h));
  // reading a Var of the graph from inside the segment is an error that says what to do
  Var outside = k * 2.0;
  CHECK_THROWS_WITH_AS(checkpoint([&outside](const std::vector<Var>& in) { return std::vector<Var>{in[0] * outside}; }, {y0}),
                       doctest::Contains("must come in as an input"), Error);
}
