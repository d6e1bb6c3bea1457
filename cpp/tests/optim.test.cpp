// tapegrad::optim's update rules, against hand-computed steps (the Python suite checks them
// against torch.optim over 100 steps); put_add, integer reductions and graph release.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

namespace {
Tensor vec(std::vector<double> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_values(v, {n});
}
}  // namespace

TEST_CASE("optim: SGD with momentum and Nesterov, step by step") {
  Tensor p = vec({1.0, -2.0}), g = vec({0.5, 1.0});
  Tensor buf;
  optim::SGDOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  optim::sgd_step(p, g, buf, o);  // the buffer starts as the gradient
  CHECK(p.to_vector() == std::vector<double>{1.0 - 0.05, -2.0 - 0.1});
  optim::sgd_step(p, g, buf, o);  // buf = 0.9 * g + g
  CHECK(buf.to_vector()[0] == doctest::Approx(0.95).epsilon(1e-15));
  CHECK(p.to_vector()[0] == doctest::Approx(0.95 - 0.095).epsilon(1e-15));
  Tensor q = vec({1.0}), nb;
  o.nesterov = true;
  optim::sgd_step(q, vec({0.5}), nb, o);  // d = g + 0.9 * buf = 0.95
  CHECK(q.item() == doctest::Approx(1.0 - 0.095).epsilon(1e-15));
  o = optim::SGDOptions{};
  o.lr = 0.1;
  o.weight_decay = 0.5;
  o.maximize = true;
  Tensor r = vec({2.0}), none;
  optim::sgd_step(r, vec({1.0}), none, o);  // d = -1 + 0.5 * 2 = 0
  CHECK(r.item() == 2.0);
  CHECK(!none.defined());
}

TEST_CASE("optim: the first step of Adam, AdamW, RMSprop and Adagrad") {
  const double lr = 0.01, g = -0.3, eps = 1e-8;
  Tensor p = vec({1.0}), m = Tensor::zeros({1}), v = Tensor::zeros({1});
  optim::AdamOptions a;
  a.lr = lr;
  optim::adam_step(p, vec({g}), m, v, Tensor(), 1, a);  // bias-corrected: lr * g / (|g| + eps)
  CHECK(p.item() == doctest::Approx(1.0 - lr * g / (std::abs(g) + eps)).epsilon(1e-14));
  CHECK(m.item() == doctest::Approx(0.1 * g).epsilon(1e-15));
  CHECK(v.item() == doctest::Approx(0.001 * g * g).epsilon(1e-15));
  Tensor pw = vec({1.0}), mw = Tensor::zeros({1}), vw = Tensor::zeros({1});
  a.decoupled_weight_decay = true;
  a.weight_decay = 0.1;
  optim::adam_step(pw, vec({g}), mw, vw, Tensor(), 1, a);  // p *= 1 - lr * wd first
  CHECK(pw.item() == doctest::Approx(1.0 * (1 - lr * 0.1) - lr * g / (std::abs(g) + eps)).epsilon(1e-14));

  Tensor pr = vec({1.0}), sq = Tensor::zeros({1});
  optim::RMSpropOptions ro;
  ro.lr = lr;
  optim::rmsprop_step(pr, vec({g}), sq, Tensor(), Tensor(), ro);  // sq = 0.01 g^2
  CHECK(pr.item() == doctest::Approx(1.0 - lr * g / (0.1 * std::abs(g) + eps)).epsilon(1e-14));

  Tensor pa = vec({1.0}), sum = Tensor::zeros({1});
  optim::AdagradOptions ao;
  ao.lr = lr;
  optim::adagrad_step(pa, vec({g}), sum, 1, ao);
  CHECK(pa.item() == doctest::Approx(1.0 - lr * g / (std::abs(g) + 1e-10)).epsilon(1e-14));
}

TEST_CASE("optim: bad arguments name the problem, a step moves the version") {
  Tensor p = vec({1.0, 2.0}), buf;
  CHECK_THROWS_WITH_AS(optim::sgd_step(p, vec({1.0}), buf, {}), doctest::Contains("shape (1,)"), ValueError);
  CHECK_THROWS_WITH_AS(optim::adam_step(p, vec({1.0, 1.0}), Tensor::zeros({3}), Tensor::zeros({2}), Tensor(), 1, {}),
                       doctest::Contains("exp_avg"), ValueError);
  CHECK_THROWS_AS(optim::adam_step(p, vec({1.0, 1.0}), Tensor::zeros({2}), Tensor::zeros({2}), Tensor(), 0, {}),
                  ValueError);
  // a graph that saved p refuses to sweep once a step changed it
  Tensor w = vec({1.0, 2.0});
  w.requires_grad_();
  Tape tape;
  ScopedTape scope(tape);
  Tensor y = sum(w * w);
  Tensor b2;
  {
    NoGrad ng;
    optim::sgd_step(w, vec({1.0, 1.0}), b2, {});
  }
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("in-place"), Error);
}

TEST_CASE("integer reductions are exact and integer, and put_add is take's reverse") {
  Tensor b = Tensor::from_values({1, 0, 1, 1}, {4}, DType::Bool);
  CHECK(sum(b).dtype() == DType::Int64);
  CHECK(sum(b).item() == 3.0);
  CHECK(amax(b).dtype() == DType::Bool);
  Tensor i = Tensor::from_values({3, -7, 2, 9, 0, -4}, {2, 3}, DType::Int64);
  CHECK(sum(i, 1).to_vector() == std::vector<double>{-2.0, 5.0});
  CHECK(prod(i, 0).to_vector() == std::vector<double>{27.0, 0.0, -8.0});
  CHECK(amin(i).item() == -7.0);

  Tensor src = vec({1.0, 2.0, 3.0});
  src.requires_grad_();
  Tape tape;
  ScopedTape scope(tape);
  Tensor idx = Tensor::from_values({4, 0, 4}, {3}, DType::Int64);
  Tensor out = put_add(src, idx, {5});  // repeated offsets accumulate
  CHECK(out.to_vector() == std::vector<double>{2.0, 0.0, 0.0, 0.0, 4.0});
  sum(out * vec({1.0, 0.0, 0.0, 0.0, 10.0})).backward();
  CHECK(src.grad().to_vector() == std::vector<double>{10.0, 1.0, 10.0});
  CHECK_THROWS_AS(put_add(src, Tensor::from_values({5, 0, 1}, {3}, DType::Int64), {5}), IndexError);
  CHECK_THROWS_AS(put_add(src, Tensor::from_values({4}, {1}, DType::Int64), {5}), ValueError);  // 1 index, 3 values
  CHECK_THROWS_AS(put_add(src, idx, {5, 1, 0}), IndexError);
}

TEST_CASE("optim: Adadelta, Adamax, NAdam and RAdam, their first steps by hand") {
  using doctest::Approx;
  {  // Adadelta: delta = sqrt(0 + eps) / sqrt(0.1 g^2 + eps) g
    Tensor p = vec({1.0}), sq = vec({0.0}), acc = vec({0.0});
    optim::AdadeltaOptions o;
    optim::adadelta_step(p, vec({2.0}), sq, acc, o);
    const double delta = std::sqrt(1e-6) / std::sqrt(0.4 + 1e-6) * 2.0;
    CHECK(sq.item() == Approx(0.4).epsilon(1e-15));
    CHECK(acc.item() == Approx(0.1 * delta * delta).epsilon(1e-14));
    CHECK(p.item() == Approx(1.0 - delta).epsilon(1e-15));
  }
  {  // Adamax: step 1 moves by lr g / (|g| + eps) (the bias correction undoes 1 - beta1)
    Tensor p = vec({1.0, 1.0}), m = vec({0.0, 0.0}), u = vec({0.0, 0.0});
    optim::AdamaxOptions o;
    o.lr = 0.1;
    optim::adamax_step(p, vec({3.0, -0.5}), m, u, 1, o);
    CHECK(u.to_vector()[0] == Approx(3.0 + 1e-8).epsilon(1e-15));
    CHECK(p.to_vector()[0] == Approx(1.0 - 0.1 * 3.0 / (3.0 + 1e-8)).epsilon(1e-15));
    CHECK(p.to_vector()[1] == Approx(1.0 + 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-15));
  }
  {  // NAdam: step 1 with mu_product = mu_1
    const double mu1 = optim::nadam_mu(0.9, 4e-3, 1), mu2 = optim::nadam_mu(0.9, 4e-3, 2);
    CHECK(mu1 == Approx(0.9 * (1 - 0.5 * std::pow(0.96, 4e-3))).epsilon(1e-15));
    Tensor p = vec({1.0}), m = vec({0.0}), v = vec({0.0});
    optim::NAdamOptions o;
    o.lr = 0.01;
    optim::nadam_step(p, vec({2.0}), m, v, 1, mu1, o);
    const double denom = std::sqrt(0.001 * 4.0 / 0.001) + 1e-8;  // exp_avg_sq / bias_correction2
    const double expected = 1.0 - 0.01 * (1 - mu1) / (1 - mu1) * 2.0 / denom - 0.01 * mu2 / (1 - mu1 * mu2) * 0.2 / denom;
    CHECK(p.item() == Approx(expected).epsilon(1e-14));
  }
  {  // RAdam: while rho_t <= 5 (the first steps), plain momentum: step 1 moves by lr g
    Tensor p = vec({1.0}), m = vec({0.0}), v = vec({0.0});
    optim::RAdamOptions o;
    o.lr = 0.1;
    optim::radam_step(p, vec({2.0}), m, v, 1, o);
    CHECK(p.item() == Approx(1.0 - 0.1 * 2.0).epsilon(1e-15));
  }
  Tensor p = vec({1.0}), m = vec({0.0});
  CHECK_THROWS_AS(optim::adamax_step(p, vec({1.0}), m, vec({0.0, 0.0}), 1, {}), ValueError);
  CHECK_THROWS_AS(optim::radam_step(p, vec({1.0}), m, vec({0.0}), 0, {}), ValueError);
}

TEST_CASE("optim: LBFGS minimises a quadratic, with and without the line search") {
  // 0.5 x'Ax - b'x is least at A x = b: x = (2/9, 1/9, 13/9)
  const Tensor A = Tensor::from_values({4, 1, 0, 1, 3, 1, 0, 1, 2}, {3, 3}), b = vec({1, 2, 3});
  for (bool wolfe : {false, true}) {
    INFO("strong_wolfe " << wolfe);
    Tape tape;
    ScopedTape scope(tape);
    Tensor x = vec({0, 0, 0});
    x.requires_grad_(true);
    int calls = 0;
    auto closure = [&] {
      ++calls;
      x.zero_grad();
      Tensor loss = 0.5 * sum(x * matmul(A, x)) - sum(b * x);
      loss.backward();
      return loss.item();
    };
    optim::LBFGSState state;
    optim::LBFGSOptions o;
    o.strong_wolfe = wolfe;
    o.tolerance_grad = 1e-12;
    o.tolerance_change = 0.0;  // (only the gradient's size or max_iter stops it)
    CHECK(optim::lbfgs_step({x}, closure, state, o) == 0.0);  // the first evaluation's loss, at 0
    const std::vector<double> got = x.to_vector();
    // (near the minimum the loss changes below its rounding: x is as exact as 0.5 x'Ax - b'x can tell)
    CHECK(got[0] == doctest::Approx(2.0 / 9).epsilon(1e-7));
    CHECK(got[1] == doctest::Approx(1.0 / 9).epsilon(1e-7));
    CHECK(got[2] == doctest::Approx(13.0 / 9).epsilon(1e-7));
    CHECK(state.func_evals == calls);
    CHECK(state.n_iter <= o.max_iter);
    CHECK(!state.old_dirs.empty());
  }
  Tensor x = vec({1.0}), y = Tensor::from_values({1.0}, {1}, DType::Float32);
  optim::LBFGSState state;
  CHECK_THROWS_AS(optim::lbfgs_step({x, y}, [] { return 0.0; }, state, {}), TypeError);
  CHECK_THROWS_AS(optim::lbfgs_step({x}, std::function<double()>(), state, {}), ValueError);
}
