// Forward mode over the tape: tapegrad::jvp (the tangent sweep) for every op against finite
// differences; vector tangents (K directions in one sweep); adjointness with grad(); forward
// over reverse (Hessian-vector products, whole Hessians) and reverse over forward; errors.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cases.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;
using testing::Case;
using testing::Fn;
using testing::leaves;
using testing::random_tensor;

namespace {

// f at xs + s * v, unrecorded.
std::vector<double> shifted(const Fn& f, const std::vector<Tensor>& xs, const std::vector<Tensor>& v, double s) {
  NoGrad ng;
  std::vector<Tensor> p;
  for (std::size_t k = 0; k < xs.size(); ++k) p.push_back(xs[k] + v[k] * s);
  return f(p).to_vector();
}

double inner(const Tensor& a, const Tensor& b) {
  NoGrad ng;
  return sum(a * b).item();
}

void close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": " << got[i] << " vs " << want[i]);
    CHECK(std::fabs(got[i] - want[i]) <= tol * std::fmax(1.0, std::fabs(want[i])));
  }
}

// Every check of one function: the tangent against 5-point central differences, batched
// against single sweeps, adjointness, and both second-order compositions.
void check_tangents(const Case& c) {
  INFO(c.name);
  std::mt19937 rng(21);
  Tape tape;
  ScopedTape scope(tape);
  const std::vector<Tensor> xs = leaves(c.xs);
  std::vector<Tensor> v, v2;
  for (const Tensor& x : xs) {
    v.push_back(random_tensor(x.shape(), rng, -1.0, 1.0));
    v2.push_back(random_tensor(x.shape(), rng, -1.0, 1.0));
  }
  const Tensor y = c.f(xs);
  const Tensor jv = jvp({y}, xs, v)[0];
  CHECK(jv.shape() == y.shape());
  CHECK(!jv.requires_grad());
  // 1. finite differences along v
  const double h = 1e-3;
  std::vector<double> fd(static_cast<std::size_t>(y.numel()));
  {
    const auto p2 = shifted(c.f, c.xs, v, 2 * h), p1 = shifted(c.f, c.xs, v, h);
    const auto m1 = shifted(c.f, c.xs, v, -h), m2 = shifted(c.f, c.xs, v, -2 * h);
    for (std::size_t i = 0; i < fd.size(); ++i) fd[i] = (-p2[i] + 8 * p1[i] - 8 * m1[i] + m2[i]) / (12 * h);
  }
  close(jv.to_vector(), fd, 1e-7);
  // 2. two directions in one batched sweep: each equals its own sweep
  std::vector<Tensor> vb;
  for (std::size_t k = 0; k < xs.size(); ++k) vb.push_back(stack({v[k], v2[k]}, 0));
  const Tensor jb = jvp({y}, xs, vb, false, true)[0];
  Shape want{2};
  want.insert(want.end(), y.shape().begin(), y.shape().end());
  CHECK(jb.shape() == want);
  const Tensor jv2 = jvp({y}, xs, v2)[0];
  close(jb.to_vector(), concatenate({reshape(jv, {-1}), reshape(jv2, {-1})}, 0).to_vector(), 1e-12);
  // 3. <u, J v> == <J^T u, v>
  const Tensor u = random_tensor(y.shape(), rng, -1.0, 1.0);
  const std::vector<Tensor> jtu = grad({y}, xs, {u}, false, true);
  double rhs = 0;
  for (std::size_t k = 0; k < xs.size(); ++k)
    if (jtu[k].defined()) rhs += inner(jtu[k], v[k]);
  CHECK(inner(u, jv) == doctest::Approx(rhs).epsilon(1e-11));
  // 4. forward over reverse: the tangent of g = J^T u along v is d/dx <g, v>, the gradient of
  //    the recorded <J^T u, v> (reverse over reverse)
  const std::vector<Tensor> g = grad({y}, xs, {u}, true, true);
  std::vector<Tensor> gs, gin;
  std::vector<std::size_t> kept;
  for (std::size_t k = 0; k < xs.size(); ++k)
    if (g[k].defined() && g[k].requires_grad()) {
      gs.push_back(g[k]);
      kept.push_back(k);
    }
  if (!gs.empty()) {
    const std::vector<Tensor> fwd = jvp(gs, xs, v);
    Tensor inner = Tensor::zeros({});
    for (std::size_t j = 0; j < gs.size(); ++j) inner = inner + sum(gs[j] * v[kept[j]]);
    const std::vector<Tensor> rev = grad({inner}, xs, {}, false, true);
    for (std::size_t j = 0; j < gs.size(); ++j) {
      const std::size_t k = kept[j];  // H is symmetric: (H v)_k from either side
      INFO("forward over reverse, input " << k);
      close(fwd[j].to_vector(), rev[k].defined() ? rev[k].to_vector() : std::vector<double>(fwd[j].to_vector().size(), 0.0), 1e-10);
    }
  }
  // 5. reverse over forward: jvp with create_graph is recorded; its gradient in x equals
  //    d/dx <u, J v> = the gradient of <J^T u, v> (as in 4)
  const Tensor jvr = jvp({y}, xs, v, true)[0];
  if (jvr.requires_grad()) {
    const std::vector<Tensor> a = grad({sum(jvr * u)}, xs, {}, false, true);
    Tensor inner = Tensor::zeros({});
    for (std::size_t k = 0; k < xs.size(); ++k)
      if (g[k].defined()) inner = inner + sum(g[k] * v[k]);
    if (inner.requires_grad()) {
      const std::vector<Tensor> b = grad({inner}, xs, {}, false, true);
      for (std::size_t k = 0; k < xs.size(); ++k) {
        INFO("reverse over forward, input " << k);
        if (a[k].defined() && b[k].defined()) close(a[k].to_vector(), b[k].to_vector(), 1e-10);
      }
    }
  }
}

}  // namespace

TEST_CASE("tangent sweep: every elementwise op of the table") {
  std::mt19937 rng(31);
  for (const Case& c : testing::elementwise_cases(rng)) check_tangents(c);
}

TEST_CASE("tangent sweep: reductions, matmul, shapes, indexing, where, clip") {
  std::mt19937 rng(32);
  for (const Case& c : testing::structural_cases(rng)) check_tangents(c);
}

TEST_CASE("the whole Jacobian in one batched sweep, the Hessian by forward over reverse") {
  Tape tape;
  ScopedTape scope(tape);
  std::mt19937 rng(33);
  const Tensor A = random_tensor({4, 3}, rng);
  Tensor x = random_tensor({3}, rng);
  x.requires_grad_();
  // F(x) = tanh(A x): J = diag(1 - F^2) A
  const Tensor F = tanh(matmul(A, x));
  const Tensor J = jvp({F}, {x}, {Tensor::eye(3)}, false, true)[0];  // (3, 4): column j is J e_j
  const std::vector<double> Fv = F.to_vector(), Av = A.to_vector(), Jv = J.to_vector();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) CHECK(Jv[j * 4 + i] == doctest::Approx((1 - Fv[i] * Fv[i]) * Av[i * 3 + j]).epsilon(1e-13));
  // f(x) = logsumexp(A x) + |x|^2 / 2: H = A^T (diag p - p p^T) A + I with p = softmax(A x)
  const Tensor f = logsumexp(matmul(A, x)) + sum(x * x) * 0.5;
  const Tensor g = grad({f}, {x}, {}, true)[0];
  const Tensor H = jvp({g}, {x}, {Tensor::eye(3)}, false, true)[0];
  const std::vector<double> Hv = H.to_vector(), want = testing::logsumexp_hessian(A, x.detach());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(Hv[i] == doctest::Approx(want[i]).epsilon(1e-12));
}

TEST_CASE("jvp: third derivatives by forward over reverse over reverse, exactly") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({2.0}, {1});
  x.requires_grad_();
  const Tensor y = x * x * x * x;                                // x^4
  const Tensor g1 = grad({y}, {x}, {}, true)[0];                 // 4x^3 = 32
  const Tensor g2 = grad({g1}, {x}, {}, true)[0];                // 12x^2 = 48
  CHECK(jvp({g2}, {x}, {Tensor::ones({1})})[0].item() == 48.0);  // 24x = 48
  const Tensor g3 = jvp({g2}, {x}, {Tensor::ones({1})}, true)[0];
  CHECK(jvp({g3}, {x}, {Tensor::ones({1})})[0].item() == 24.0);  // the fourth derivative
  CHECK(jvp({y}, {x}, {Tensor::ones({1})})[0].item() == 32.0);
}

TEST_CASE("jvp: outputs that are inputs, outputs that do not depend on them, repeated inputs") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({1.0, 2.0}, {2});
  Tensor z = Tensor::from_values({3.0}, {1});
  x.requires_grad_();
  z.requires_grad_();
  const Tensor w = z * 2.0;
  const Tensor v = Tensor::from_values({0.5, -1.0}, {2});
  const std::vector<Tensor> r = jvp({x, w, exp(x)}, {x}, {v});
  CHECK(r[0].to_vector() == v.to_vector());
  CHECK(r[1].to_vector() == std::vector<double>{0.0});
  CHECK(r[2].to_vector()[1] == doctest::Approx(-std::exp(2.0)));
  // a leaf recorded again after its value changed: both records carry its tangent
  const Tensor a = sin(x);
  const Tensor s = a * x;
  CHECK(jvp({s}, {x}, {v})[0].to_vector()[0] == doctest::Approx(0.5 * (std::cos(1.0) * 1.0 + std::sin(1.0))));
}

TEST_CASE("jvp on Var records") {
  Tape tape;
  ScopedTape scope(tape);
  Var a = 1.5, b = -0.5;
  const Var y = sin(a * b) + exp(a) / b;
  const std::vector<double> t = jvp({y}, {a, b}, {1.0, 2.0});
  const double da = std::cos(a.value() * b.value()) * b.value() + std::exp(a.value()) / b.value();
  const double db = std::cos(a.value() * b.value()) * a.value() - std::exp(a.value()) / (b.value() * b.value());
  CHECK(t[0] == doctest::Approx(da + 2 * db).epsilon(1e-14));
  CHECK(jvp({y}, {a, b}, {1.0, 0.0})[0] == doctest::Approx(grad(y, {a})[0]).epsilon(1e-14));
  CHECK(jvp({Var::constant(1.0)}, {a}, {1.0})[0] == 0.0);
  const Var m = a * b;
  const Var w = sin(m) * a;
  // a seeded intermediate keeps its seed: the partial with m held as an input
  CHECK(jvp({w}, {m}, {1.0})[0] == doctest::Approx(std::cos(m.value()) * a.value()).epsilon(1e-15));
  CHECK(jvp({w, m, a}, {a}, {1.0})[2] == 1.0);  // an output that is an input: its seed
}

TEST_CASE("jvp errors name the problem") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({1.0, 2.0}, {2});
  const Tensor c = Tensor::from_values({1.0, 2.0}, {2});
  x.requires_grad_();
  const Tensor y = exp(x);
  CHECK_THROWS_WITH_AS(jvp({y}, {x}, {Tensor::ones({3})}), doctest::Contains("has shape (3,) but input 0 has shape (2,)"), Error);
  CHECK_THROWS_WITH_AS(jvp({y}, {c}, {Tensor::ones({2})}), doctest::Contains("does not require grad"), Error);
  CHECK_THROWS_WITH_AS(jvp({y}, {x}, {}), doctest::Contains("0 tangents for 1 inputs"), Error);
  CHECK_THROWS_WITH_AS(jvp({y}, {x}, {Tensor::ones({2})}, false, true), doctest::Contains("leading axis of K directions: tangents[0] has shape (2,) for input 0 of shape (2,) (expected (K, 2))"), ValueError);
  CHECK_THROWS_WITH_AS(jvp({y}, {x}, {Tensor::zeros({2}, DType::Int64)}), doctest::Contains("float32 or float64"), Error);
  tape.clear();
  CHECK_THROWS_WITH_AS(jvp({y}, {x}, {Tensor::ones({2})}), doctest::Contains("stale"), Error);
}
