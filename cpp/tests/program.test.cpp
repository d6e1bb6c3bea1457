// The fourth question: every record runs forward at new inputs (ForwardSweep, the engine of
// replay). Each function of the op list (cases.hpp) and random chains of them are recorded
// once; the leaves get new values; the forward sweep recomputes every record natively and must
// give what a fresh recording at the new values gives: the values (plain sweep) and, through a
// recorded sweep, the gradients. Then the records that cannot run forward say so.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cases.hpp"
#include "tapegrad/sweep.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;
using testing::Case;
using testing::Fn;

namespace {

// xs moved by up to `by` per element (a new point near the recorded one, inside the domains).
std::vector<Tensor> moved(const std::vector<Tensor>& xs, std::mt19937& rng, double by) {
  std::uniform_real_distribution<double> u(-by, by);
  std::vector<Tensor> r;
  for (const Tensor& x : xs) {
    std::vector<double> v = x.to_vector();
    for (double& e : v)
      if (e != 0.0) e += u(rng);  // (zeros stay: a case's zeros are where it tests them)
    r.push_back(Tensor::from_values(v, x.shape()));
  }
  return r;
}

void same(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  CHECK(got.dtype() == want.dtype());
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": " << g[i] << " vs " << w[i]);
    if (std::isnan(w[i])) {
      CHECK(std::isnan(g[i]));
    } else {
      CHECK(std::fabs(g[i] - w[i]) <= tol * std::fmax(1.0, std::fabs(w[i])));
    }
  }
}

// Records f at xs0, then runs it forward at xs1 (plain and recorded) and compares the values
// and the gradients of sum(f * w) with a fresh recording at xs1.
void check_forward_at(const std::string& name, const Fn& f, const std::vector<Tensor>& xs0,
                      const std::vector<Tensor>& xs1) {
  INFO(name);
  Tape program;
  program.set_keep_constants(true);
  std::vector<std::uint32_t> leaf_recs;
  std::uint32_t out_rec = 0;
  Shape out_shape;
  {
    ScopedTape scope(program);
    const std::vector<Tensor> x = testing::leaves(xs0);
    const Tensor y = f(x);
    REQUIRE(y.requires_grad());
    for (const Tensor& xk : x) leaf_recs.push_back(detail::record_of(xk, program));
    out_rec = detail::record_of(y, program);
    out_shape = y.shape();
  }
  std::mt19937 rng(5);
  const Tensor w = testing::random_tensor(out_shape, rng);

  // the reference: a fresh recording at xs1
  Tape fresh;
  ScopedTape scope(fresh);
  const std::vector<Tensor> x1 = testing::leaves(xs1);
  const Tensor y1 = f(x1);
  const std::vector<Tensor> g1 = grad({sum(y1 * w)}, x1, {}, false, true);

  // the plain forward sweep: values only, nothing recorded
  {
    const std::uint32_t before = fresh.size();
    ForwardSweep fw(program);
    for (std::size_t k = 0; k < xs1.size(); ++k) fw.set(leaf_recs[k], xs1[k]);
    fw.run_records({out_rec});
    same(fw.tensor(out_rec), y1.detach(), 1e-13, "the value at the new inputs");
    CHECK(fresh.size() == before);  // (recorded nothing)
    CHECK_FALSE(fw.tensor(out_rec).requires_grad());
  }
  // the recorded forward sweep: its result is differentiable at the new inputs
  {
    const std::vector<Tensor> x1r = testing::leaves(xs1);
    ForwardSweep fw(program, /*record=*/true);
    for (std::size_t k = 0; k < xs1.size(); ++k) fw.set(leaf_recs[k], x1r[k]);
    fw.run_records({out_rec});
    const Tensor yr = fw.tensor(out_rec);
    same(yr.detach(), y1.detach(), 1e-13, "the recorded sweep's value");
    const std::vector<Tensor> gr = grad({sum(yr * w)}, x1r, {}, false, true);
    REQUIRE(gr.size() == g1.size());
    for (std::size_t k = 0; k < gr.size(); ++k) {
      REQUIRE(gr[k].defined() == g1[k].defined());
      if (g1[k].defined()) same(gr[k], g1[k], 1e-12, "the gradient of input " + std::to_string(k));
    }
  }
}

std::vector<Case> all_cases(std::mt19937& rng) {
  std::vector<Case> cases = testing::elementwise_cases(rng);
  for (Case& c : testing::structural_cases(rng)) cases.push_back(std::move(c));
  return cases;
}

struct Twice : autograd::Function<Twice> {
  static std::vector<Tensor> forward(autograd::Context&, const std::vector<Tensor>& x) { return {x[0] * 2.0}; }
  static std::vector<Tensor> backward(autograd::Context&, const std::vector<Tensor>& g) { return {g[0] * 2.0}; }
};

}  // namespace

TEST_CASE("every op runs forward at new inputs: values and gradients as a fresh recording") {
  std::mt19937 rng(11);
  for (const Case& c : all_cases(rng)) check_forward_at(c.name, c.f, c.xs, moved(c.xs, rng, 0.03));
}

TEST_CASE("a sort, a top-k and an extreme select afresh at new inputs") {
  // values far from the recorded ones: the order changes, and the replay follows it
  std::mt19937 rng(3);
  const Fn f = [](const std::vector<Tensor>& v) {
    return sort(v[0], 1, false).values * 2.0 + max_along(v[0], 1, true).values + sum(exp(topk(v[0], 2, 1, true).values));
  };
  const std::vector<Tensor> x0{Tensor::from_values({0.1, 0.5, -0.3, 0.9, 0.2, -0.8}, {2, 3})};
  const std::vector<Tensor> x1{Tensor::from_values({0.7, -0.5, 0.3, -0.9, 0.4, 0.1}, {2, 3})};
  check_forward_at("sort/topk/max with a new order", f, x0, x1);
}

TEST_CASE("random programs run forward at new inputs as a fresh recording would") {
  // Chains of random ops of the list, each fed the previous result through a map into its
  // first input's domain and shape, from two leaves.
  std::mt19937 rng(17);
  const std::vector<Case> cases = all_cases(rng);
  for (int trial = 0; trial < 60; ++trial) {
    std::uniform_int_distribution<std::size_t> pick(0, cases.size() - 1);
    std::vector<std::size_t> chain;
    for (int s = 0; s < 4; ++s) chain.push_back(pick(rng));
    const Case& first = cases[chain[0]];
    const Shape s0 = first.xs[0].shape();
    const Fn f = [&cases, chain, s0](const std::vector<Tensor>& v) {
      Tensor t = v[0];
      for (std::size_t step = 0; step < chain.size(); ++step) {
        const Case& c = cases[chain[step]];
        std::vector<Tensor> in = c.xs;  // constants: the case's own point
        // the running value, squashed into (lo, hi) of the case's first input and brought to its shape
        const std::vector<double> x0 = c.xs[0].to_vector();
        double lo = x0.empty() ? 0.0 : x0[0], hi = lo;
        for (double e : x0) lo = std::fmin(lo, e), hi = std::fmax(hi, e);
        const Tensor m = mean(t) + sum(t * 0.01, Axes(), false) * v[1];
        in[0] = sigmoid(m + c.xs[0] * 0.5) * (hi - lo + 1e-3) + lo;
        if (c.xs[0].ndim() == 0 || in[0].shape() != c.xs[0].shape()) in[0] = broadcast_to(in[0], c.xs[0].shape());
        t = c.f(in);
      }
      return t;
    };
    (void)s0;
    std::string name = "chain";
    for (std::size_t k : chain) name += " / " + cases[k].name;
    const std::vector<Tensor> xs0{testing::random_tensor({2}, rng), testing::random_tensor({}, rng)};
    check_forward_at(name, f, xs0, moved(xs0, rng, 0.05));
  }
}

TEST_CASE("scalar records and the bridges between Var and Tensor run forward at new inputs") {
  Tape program;
  program.set_keep_constants(true);
  ScopedTape scope(program);
  Var a(0.7), b(-1.2);
  Tensor x = Tensor::from_values({0.5, -0.25, 1.5}, {3});
  x.requires_grad_();
  // scalars into tensors and back: Tensor::from_var, a one-element tensor's Var (item)
  const Var s = sin(a) * b + exp(a) / 3.0 - 2.0 * b;
  const Tensor t = tanh(x * Tensor::from_var(s)) + Tensor::from_var(pow(a, 2.0));
  const Tensor y = sum(t * t);
  const std::uint32_t xr = detail::record_of(x, program), yr = detail::record_of(y, program);

  // the fresh recording at new values
  const double a1 = 0.4, b1 = -0.9;
  const std::vector<double> x1v{0.3, -0.6, 1.1};
  Tape fresh;
  double y1;
  std::vector<double> ga, gx;
  {
    ScopedTape s2(fresh);
    Var a2(a1), b2(b1);
    Tensor x2 = Tensor::from_values(x1v, {3});
    x2.requires_grad_();
    const Var s2v = sin(a2) * b2 + exp(a2) / 3.0 - 2.0 * b2;
    const Tensor t2 = tanh(x2 * Tensor::from_var(s2v)) + Tensor::from_var(pow(a2, 2.0));
    const Tensor y2 = sum(t2 * t2);
    y1 = y2.item();
    y2.backward();
    gx = x2.grad().to_vector();
  }
  ForwardSweep fw(program);
  fw.set(a.index(), a1);
  fw.set(b.index(), b1);
  fw.set(xr, Tensor::from_values(x1v, {3}));
  fw.run_records({yr, s.index()});
  CHECK(fw.value(yr) == doctest::Approx(y1).epsilon(1e-14));
  CHECK(fw.value(s.index()) == doctest::Approx(std::sin(a1) * b1 + std::exp(a1) / 3.0 - 2.0 * b1).epsilon(1e-15));
  CHECK(fw.var(yr).value() == doctest::Approx(y1).epsilon(1e-14));

  // recorded: new Var and tensor leaves on another tape, the result differentiable
  Tape other;
  ScopedTape s3(other);
  Var a3(a1), b3(b1);
  Tensor x3 = Tensor::from_values(x1v, {3});
  x3.requires_grad_();
  ForwardSweep fr(program, true);
  fr.set(a.index(), a3);
  fr.set(b.index(), b3);
  fr.set(xr, x3);
  fr.run_records({yr});
  const Tensor yt = fr.tensor(yr);
  CHECK(yt.item() == doctest::Approx(y1).epsilon(1e-14));
  yt.backward(Tensor::from_values({1.0}, {}), false, /*retain_graph=*/true);
  const std::vector<double> g3 = x3.grad().to_vector();
  for (std::size_t i = 0; i < 3; ++i) CHECK(g3[i] == doctest::Approx(gx[i]).epsilon(1e-13));
  // the scalar leaves' gradients through the bridges, against central differences of the plain
  // sweep (grad() of a Var leaves the tensor leaves' .grad alone, as autograd.grad does)
  const std::vector<double> gab = tapegrad::grad(fr.var(yr), {a3, b3});
  CHECK(x3.grad().to_vector() == g3);
  const double h = 1e-6;
  auto at = [&](double av, double bv) {
    ForwardSweep p(program);
    p.set(a.index(), av);
    p.set(b.index(), bv);
    p.set(xr, Tensor::from_values(x1v, {3}));
    p.run_records({yr});
    return p.value(yr);
  };
  CHECK(gab[0] == doctest::Approx((at(a1 + h, b1) - at(a1 - h, b1)) / (2 * h)).epsilon(1e-7));
  CHECK(gab[1] == doctest::Approx((at(a1, b1 + h) - at(a1, b1 - h)) / (2 * h)).epsilon(1e-7));
}

TEST_CASE("a leaf left alone keeps its value, and errors name what cannot run forward") {
  Tape program;
  program.set_keep_constants(true);
  ScopedTape scope(program);
  Tensor x = Tensor::from_values({1.0, 2.0}, {2});
  Tensor w = Tensor::from_values({3.0, -1.0}, {2});
  x.requires_grad_();
  w.requires_grad_();
  const Tensor y = sum(x * w + 1.0);
  const std::uint32_t xr = detail::record_of(x, program), yr = detail::record_of(y, program);
  ForwardSweep fw(program);
  fw.set(xr, Tensor::from_values({2.0, 0.0}, {2}));
  fw.run_records({yr});
  CHECK(fw.value(yr) == doctest::Approx(2.0 * 3.0 + 0.0 + 2.0));  // w as it is
  // the same by handles
  ForwardSweep by_handle(program);
  by_handle.set(x, Tensor::from_values({2.0, 0.0}, {2}));
  by_handle.run({y});
  CHECK(by_handle.tensor(y).item() == fw.value(yr));
  CHECK_THROWS_WITH_AS(by_handle.set(Tensor::from_values({1.0}, {1}), Tensor::from_values({1.0}, {1})),
                       doctest::Contains("does not require grad"), ValueError);
  CHECK_THROWS_WITH_AS(fw.value(Tape::kNone - 1), doctest::Contains("has no new value"), Error);
  // a new value of another shape or dtype than the recorded one: both named
  CHECK_THROWS_WITH_AS(fw.set(xr, Tensor::from_values({1.0, 2.0, 3.0}, {3})),
                       doctest::Contains("float64 tensor of shape (2,) when recorded, the new value is a float64 tensor of shape (3,)"),
                       ValueError);
  CHECK_THROWS_WITH_AS(fw.set(xr, Tensor::from_values({1.0, 2.0}, {2}, DType::Float32)),
                       doctest::Contains("the new value is a float32 tensor"), ValueError);
  CHECK_THROWS_WITH_AS(fw.run_records({program.size() + 5}), doctest::Contains("is not on the tape"), Error);

  // a tape recorded without keeping constants cannot run a record that had a constant input
  Tape plain;
  ScopedTape s2(plain);
  Tensor z = Tensor::from_values({1.0, 2.0}, {2});
  z.requires_grad_();
  const Tensor c = Tensor::from_values({5.0, 6.0}, {2});
  const Tensor u = z + c;
  ForwardSweep f2(plain);
  f2.set(detail::record_of(z, plain), Tensor::from_values({0.0, 0.0}, {2}));
  CHECK_THROWS_WITH_AS(f2.run_records({detail::record_of(u, plain)}), doctest::Contains("Tape::set_keep_constants(true)"), Error);

  // a custom function's record: its forward is user code
  Tape t3;
  t3.set_keep_constants(true);
  ScopedTape s3(t3);
  Tensor v = Tensor::from_values({0.5}, {1});
  v.requires_grad_();
  const Tensor o = Twice::apply({v})[0];
  ForwardSweep f3(t3);
  f3.set(detail::record_of(v, t3), Tensor::from_values({1.0}, {1}));
  CHECK_THROWS_WITH_AS(f3.run_records({detail::record_of(o, t3)}), doctest::Contains("cannot run forward at new inputs"), Error);
}

TEST_CASE("grad_records: one sweep for scalar and tensor outputs with respect to scalar and tensor inputs") {
  // L = s + sum(w * t), s = sin(a) b a Var, t = tanh(x a) a tensor: dL/da, dL/db (scalar
  // records) and dL/dx (a tensor leaf's record) from one sweep, plain and recorded.
  Tape tape;
  ScopedTape scope(tape);
  const double av = 0.7, bv = -1.3;
  const std::vector<double> xv{0.5, -0.25, 1.5}, w{0.3, -1.0, 2.0};
  Var a(av), b(bv);
  Tensor x = Tensor::from_values(xv, {3});
  x.requires_grad_();
  const Var s = sin(a) * b;
  const Tensor t = tanh(x * Tensor::from_var(a));
  const std::vector<std::pair<std::uint32_t, Tensor>> seeds{{detail::record_of(t, tape), Tensor::from_values(w, {3})}};
  const std::vector<std::vector<std::uint32_t>> xs{{a.index()}, {b.index()}, {detail::record_of(x, tape)}};
  double dla = std::cos(av) * bv, dlb = std::sin(av);
  std::vector<double> dlx(3);
  for (std::size_t i = 0; i < 3; ++i) {
    const double th = std::tanh(xv[i] * av);
    dla += w[i] * xv[i] * (1 - th * th);
    dlx[i] = w[i] * av * (1 - th * th);
  }
  const std::vector<detail::GradOfRecords> g = detail::grad_records(tape, s.index(), seeds, xs, false);
  REQUIRE(g.size() == 3);
  CHECK(g[0].used);
  CHECK(g[0].value == doctest::Approx(dla).epsilon(1e-14));
  CHECK(g[1].value == doctest::Approx(dlb).epsilon(1e-14));
  REQUIRE(g[2].tensor.defined());
  for (std::size_t i = 0; i < 3; ++i) CHECK(g[2].tensor.to_vector()[i] == doctest::Approx(dlx[i]).epsilon(1e-14));
  CHECK(!x.grad().defined());  // (no .grad changes)

  // recorded: the same values, and d(dL/db)/da = cos(a) on the graph
  const std::vector<detail::GradOfRecords> r = detail::grad_records(tape, s.index(), seeds, xs, true);
  CHECK(r[0].var.value() == doctest::Approx(dla).epsilon(1e-14));
  CHECK(r[1].var.value() == doctest::Approx(dlb).epsilon(1e-14));
  CHECK(r[2].tensor.requires_grad());
  const std::vector<double> second = tapegrad::grad(r[1].var, {a, b});
  CHECK(second[0] == doctest::Approx(std::cos(av)).epsilon(1e-14));
  CHECK(second[1] == 0.0);

  // an input no output reaches is unused; a constant output alone sweeps nothing
  Var c(2.0);
  const std::vector<detail::GradOfRecords> u = detail::grad_records(tape, s.index(), {}, {{c.index()}}, false);
  CHECK(!u[0].used);
  CHECK(!detail::grad_records(tape, Tape::kNone, {}, {{a.index()}}, false)[0].used);
}

TEST_CASE("every entry of the table of tensor ops is recorded by the op list's cases (or by their gradients)") {
  // The C++ suites' rows are the op list (cases.hpp), by name; this ties them to the table: a
  // table entry that no case records (nor the create_graph gradient of one) fails here.
  std::mt19937 rng(5);
  std::set<std::string> seen;
  auto note = [&](const Tensor& y, Tape& tape) {
    for (const detail::GraphRecord& r : detail::graph_of(tape, detail::record_of(y, tape), false))
      if (r.entry) seen.insert(r.entry);
  };
  for (const Case& c : testing::structural_cases(rng)) {
    Tape tape;
    ScopedTape scope(tape);
    std::vector<Tensor> xs;
    for (const Tensor& x : c.xs) {
      Tensor v = x.clone();
      if (is_floating(v.dtype())) v.requires_grad_();
      xs.push_back(v);
    }
    const Tensor y = c.f(xs);
    if (!y.requires_grad() || y.is_leaf()) continue;
    note(y, tape);
    std::vector<Tensor> wrt;
    for (const Tensor& x : xs)
      if (x.requires_grad()) wrt.push_back(x);
    const Tensor s = sum(y * y * y);  // (a nonlinear loss: its gradient's graph reaches the rules' own records)
    for (const Tensor& g : grad({s}, wrt, {}, /*create_graph=*/true, /*allow_unused=*/true))
      if (g.defined() && g.requires_grad() && !g.is_leaf()) note(g, tape);
  }
  {  // a cast rounds, so it is no row of the float64 op list: half.test.cpp checks its gradients
    Tape tape;
    ScopedTape scope(tape);
    Tensor x = Tensor::from_values({0.5, -1.5}, {2});
    x.requires_grad_();
    note(astype(x * x, DType::Float32), tape);
  }
  std::string missing;
  for (const char* name : detail::tensor_op_names())
    if (!seen.count(name)) missing += std::string(" ") + name;
  INFO("table entries no case records:" << missing);
  CHECK(missing.empty());
}
