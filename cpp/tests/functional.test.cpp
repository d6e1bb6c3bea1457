// The C++ functional API (functional.hpp): grad, value_and_grad, jacfwd, jacrev, hessian,
// jvp, vjp, hvp on Tensors (grad on Var too), their compositions, and the tape they leave.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cases.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;
using testing::random_tensor;

namespace {
void close(const Tensor& a, const Tensor& b, double tol) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  for (std::size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i << ": " << x[i] << " vs " << y[i]);
    CHECK(std::fabs(x[i] - y[i]) <= tol * std::fmax(1.0, std::fabs(y[i])));
  }
}
}  // namespace

TEST_CASE("functional: grad, value_and_grad and their compositions (x^3 at 2: 12, 12, 6)") {
  const auto cube = [](const Tensor& x) { return x * x * x; };
  const Tensor two = Tensor::full({}, 2.0);
  CHECK(grad(cube)(two).item() == 12.0);
  CHECK(grad(grad(cube))(two).item() == 12.0);
  CHECK(grad(grad(grad(cube)))(two).item() == 6.0);
  const auto [v, g] = value_and_grad([](const Tensor& x) { return sum(sin(x) * x); })(Tensor::from_values({0.5, -1.0}, {2}));
  CHECK(v.item() == doctest::Approx(std::sin(0.5) * 0.5 + std::sin(-1.0) * -1.0).epsilon(1e-15));
  CHECK(g.to_vector()[1] == doctest::Approx(std::sin(-1.0) - std::cos(-1.0)).epsilon(1e-15));
  CHECK(!g.requires_grad());
  CHECK_THROWS_WITH_AS(grad([](const Tensor& x) { return x * 2.0; })(Tensor::ones({2})),
                       doctest::Contains("one element, not shape (2,)"), TypeError);
}

TEST_CASE("functional: grad on Var, composed") {
  Tape tape;
  ScopedTape scope(tape);
  const auto cube = [](const Var& x) { return x * x * x; };
  const Var x = 2.0;
  CHECK(grad(cube)(x).value() == 12.0);
  CHECK(grad(grad(cube))(x).value() == 12.0);
  CHECK(grad(grad(grad(cube)))(x).value() == 6.0);
  CHECK(grad(cube)(x).is_constant());  // the outermost result is a plain number
}

TEST_CASE("functional: jacfwd == jacrev, hessian == jacrev(jacrev) == jacfwd(jacfwd) == closed form") {
  std::mt19937 rng(41);
  const Tensor A = random_tensor({4, 3}, rng);
  const Tensor x0 = random_tensor({3}, rng);
  const auto F = [A](const Tensor& x) { return tanh(matmul(A, x)) * sum(x); };
  const Tensor Jf = jacfwd(F)(x0), Jr = jacrev(F)(x0);
  CHECK(Jf.shape() == Shape{4, 3});
  close(Jf, Jr, 1e-14);
  const auto f = [A](const Tensor& x) { return logsumexp(matmul(A, x)) + sum(x * x) * 0.5; };
  const Tensor H = hessian(f)(x0);
  close(H, jacrev(jacrev(f))(x0), 1e-12);
  close(H, jacfwd(jacfwd(f))(x0), 1e-12);
  close(H, jacrev(jacfwd(f))(x0), 1e-12);
  const std::vector<double> h = H.to_vector(), want = testing::logsumexp_hessian(A, x0);
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(h[i] == doctest::Approx(want[i]).epsilon(1e-12));
  // matrix input: out.shape + in.shape
  const Tensor W0 = random_tensor({2, 3}, rng);
  const auto G = [](const Tensor& W) { return tanh(matmul(W, Tensor::ones({3}))); };
  CHECK(jacfwd(G)(W0).shape() == Shape{2, 2, 3});
  close(jacfwd(G)(W0), jacrev(G)(W0), 1e-14);
  // a matrix product straight on the input, from either side: the basis seed is copied
  // through instead of multiplied (and nested, it is multiplied as usual)
  const Tensor M = random_tensor({3, 4}, rng);
  const auto left = [M](const Tensor& v) { return sin(matmul(v, M)); };
  const auto right = [A](const Tensor& v) { return sin(matmul(A, v)); };
  close(jacfwd(left)(x0), jacrev(left)(x0), 1e-14);
  close(jacfwd(right)(x0), jacrev(right)(x0), 1e-14);
  close(jacfwd(jacfwd(left))(x0), jacrev(jacrev(left))(x0), 1e-13);
}

TEST_CASE("functional: jvp, vjp, hvp agree with the Jacobian and Hessian") {
  std::mt19937 rng(42);
  const Tensor A = random_tensor({3, 3}, rng);
  const Tensor x0 = random_tensor({3}, rng), v = random_tensor({3}, rng), u = random_tensor({3}, rng);
  const auto F = [A](const Tensor& x) { return exp(matmul(A, x) * 0.3) * x; };
  const Tensor J = jacrev(F)(x0);
  const auto [y, jv] = jvp(F, x0, v);
  close(jv, matmul(J, v), 1e-13);
  close(y, F(x0).detach(), 1e-15);
  close(vjp(F, x0, u).second, matmul(u, J), 1e-13);
  const auto f = [A](const Tensor& x) { return sum(sin(matmul(A, x)) * x); };
  close(hvp(f, x0, v).second, matmul(hessian(f)(x0), v), 1e-12);
}

TEST_CASE("functional: the outermost call leaves nothing on the active tape") {
  Tape tape;
  ScopedTape scope(tape);
  const auto f = [](const Tensor& x) { return sum(exp(x) * x); };
  const Tensor x0 = Tensor::from_values({0.1, 0.2}, {2});
  (void)hessian(f)(x0);
  (void)grad(f)(x0);
  CHECK(tape.size() == 0);
  // an argument that requires grad: the caller differentiates through the result
  Tensor x = Tensor::from_values({0.1, 0.2}, {2});
  x.requires_grad_();
  const Tensor g = grad(f)(x);  // (x + 2) e^x... as a recorded result
  CHECK(g.requires_grad());
  sum(g).backward();
  CHECK(x.grad().to_vector()[0] == doctest::Approx((0.1 + 2.0) * std::exp(0.1)).epsilon(1e-14));
}

TEST_CASE("functional: several arguments as a vector (JAX's argnums)") {
  std::mt19937 rng(43);
  const Tensor a0 = random_tensor({3}, rng), b0 = random_tensor({3}, rng);
  const auto f = [](const std::vector<Tensor>& v) { return sum(sin(v[0]) * v[1] * v[1]); };
  const std::vector<Tensor> g = grad(f)(std::vector<Tensor>{a0, b0});
  REQUIRE(g.size() == 2);
  const std::vector<double> a = a0.to_vector(), b = b0.to_vector(), ga = g[0].to_vector(), gb = g[1].to_vector();
  for (int i = 0; i < 3; ++i) {
    CHECK(ga[i] == doctest::Approx(std::cos(a[i]) * b[i] * b[i]).epsilon(1e-15));
    CHECK(gb[i] == doctest::Approx(2 * std::sin(a[i]) * b[i]).epsilon(1e-15));
  }
  const Tensor va = random_tensor({3}, rng), vb = random_tensor({3}, rng);
  const auto [y, jv] = jvp(f, std::vector<Tensor>{a0, b0}, std::vector<Tensor>{va, vb});
  CHECK(jv.item() == doctest::Approx(sum(g[0] * va + g[1] * vb).item()).epsilon(1e-14));
  CHECK(y.item() == doctest::Approx(f({a0, b0}).item()).epsilon(1e-15));
  const auto [y2, ju] = vjp(f, std::vector<Tensor>{a0, b0}, Tensor::full({}, 2.0));
  close(ju[1], g[1] * 2.0, 1e-15);
  // H v by blocks, against the second derivatives of the closed form
  const auto [y3, hv] = hvp(f, std::vector<Tensor>{a0, b0}, std::vector<Tensor>{va, vb});
  const std::vector<double> h0 = hv[0].to_vector(), h1 = hv[1].to_vector(), x = va.to_vector(), w = vb.to_vector();
  for (int i = 0; i < 3; ++i) {
    CHECK(h0[i] == doctest::Approx(-std::sin(a[i]) * b[i] * b[i] * x[i] + 2 * std::cos(a[i]) * b[i] * w[i]).epsilon(1e-14));
    CHECK(h1[i] == doctest::Approx(2 * std::cos(a[i]) * b[i] * x[i] + 2 * std::sin(a[i]) * w[i]).epsilon(1e-14));
  }
  CHECK_THROWS_WITH_AS(jvp(f, std::vector<Tensor>{a0, b0}, std::vector<Tensor>{va}), doctest::Contains("1 tangents for 2"), ValueError);
  const auto F = [](const Tensor& v) { return exp(v); };
  close(jacobian(F)(a0), jacfwd(F)(a0), 1e-15);
}

TEST_CASE("transforms: several outputs and arguments (the blocks the Python module calls)") {
  // y1 = a * b (2,), y2 = sum(a)^2 + b[0] (): closed-form Jacobian blocks
  const Tensor a0 = Tensor::from_values({0.5, -1.5}, {2}), b0 = Tensor::from_values({2.0, 3.0}, {2});
  transforms::Level level(false);
  CHECK(!level.record());
  const std::vector<Tensor> vars = transforms::variables({a0, b0});
  CHECK(vars[0].requires_grad());
  CHECK(!a0.requires_grad());  // the argument itself is untouched
  const Tensor y1 = vars[0] * vars[1];
  const Tensor y2 = sum(vars[0]) * sum(vars[0]) + take(vars[1], Tensor::from_values({0}, {}, DType::Int64));
  const double s = -1.0;  // sum(a0)
  for (const transforms::Mode mode : {transforms::Mode::Forward, transforms::Mode::Reverse}) {
    const auto J = transforms::jacobian({y1, y2}, vars, mode, false);
    REQUIRE(J.size() == 2);
    REQUIRE(J[0].size() == 2);
    close(J[0][0], Tensor::from_values({2.0, 0.0, 0.0, 3.0}, {2, 2}), 0);
    close(J[0][1], Tensor::from_values({0.5, 0.0, 0.0, -1.5}, {2, 2}), 0);
    close(J[1][0], Tensor::from_values({2 * s, 2 * s}, {2}), 0);
    close(J[1][1], Tensor::from_values({1.0, 0.0}, {2}), 0);
    CHECK(!J[1][1].requires_grad());
  }
  // J^T u summed over both outputs, and J v for each
  const Tensor u1 = Tensor::from_values({1.0, -2.0}, {2}), u2 = Tensor::full({}, 3.0);
  const std::vector<Tensor> g = transforms::vjp({y1, y2}, vars, {u1, u2}, false);
  close(g[0], Tensor::from_values({2.0 + 3 * 2 * s, -6.0 + 3 * 2 * s}, {2}), 0);
  close(g[1], Tensor::from_values({0.5 + 3.0, 3.0}, {2}), 0);
  const Tensor va = Tensor::from_values({1.0, 1.0}, {2}), vb = Tensor::from_values({0.0, 2.0}, {2});
  const std::vector<Tensor> jv = transforms::jvp({y1, y2}, vars, {va, vb}, false);
  close(jv[0], Tensor::from_values({2.0, 3.0 - 3.0}, {2}), 0);
  CHECK(jv[1].item() == 2 * s * 2.0 + 0.0);
  // an output off the graph: zeros
  const std::vector<Tensor> z = transforms::jvp({Tensor::ones({3})}, vars, {va, vb}, false);
  close(z[0], Tensor::zeros({3}), 0);
  // bad counts and shapes name the problem
  CHECK_THROWS_WITH_AS(transforms::vjp({y1, y2}, vars, {u1}, false), doctest::Contains("1 cotangents for 2 outputs"), ValueError);
  CHECK_THROWS_WITH_AS(transforms::vjp({y1}, vars, {u2}, false),
                       doctest::Contains("a cotangent of shape () for an output of shape (2,)"), ValueError);
  CHECK_THROWS_WITH_AS(transforms::jvp({y1}, vars, {va, u2}, false),
                       doctest::Contains("a tangent of shape () for a primal of shape (2,)"), ValueError);
  CHECK_THROWS_WITH_AS(transforms::jvp({y1}, vars, {va, vb}, false, true), doctest::Contains("batched"), ValueError);
  CHECK_THROWS_WITH_AS(transforms::vjp({y1}, vars, {}, false), doctest::Contains("one element, not shape (2,)"), TypeError);
}

TEST_CASE("transforms: levels nest, an empty argument gives empty blocks") {
  {
    transforms::Level outer(false);
    CHECK(!outer.record());
    CHECK(!transforms::Level::nested());
    transforms::Level inner(false);
    CHECK(inner.record());
    CHECK(transforms::Level::nested());
  }
  transforms::Level again(false);
  CHECK(!again.record());
  const std::vector<Tensor> vars = transforms::variables({Tensor::zeros({0}), Tensor::from_values({1, 2}, {2}, DType::Int64)});
  CHECK(vars[1].dtype() == DType::Float64);
  const Tensor y = sum(vars[1] * vars[1]);
  for (const transforms::Mode mode : {transforms::Mode::Forward, transforms::Mode::Reverse}) {
    const auto J = transforms::jacobian({y}, {vars[0]}, mode, false);
    CHECK(J[0][0].shape() == Shape{0});
  }
}
