// tapegrad::Tensor: every tensor op's gradient against central finite differences in double,
// over shapes with broadcasting, empty and 0-d tensors; autograd semantics; errors.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cases.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;

namespace {

using testing::Fn;
using testing::call_op;
using testing::point_in;
using testing::random_tensor;

// The loss sum(w * f(xs)) with fixed random weights w, as a double (no recording).

double weighted(const Fn& f, const std::vector<Tensor>& xs, const Tensor& w) {
  NoGrad ng;
  return sum(f(xs) * w).item();
}

// Checks the gradient of sum(w * f(xs)) w.r.t. every input against 5-point central differences.
void check_gradients(const std::string& what, const Fn& f, std::vector<Tensor> xs, double tol = 1e-6) {
  INFO(what);
  std::mt19937 rng(7);
  for (Tensor& x : xs) x.requires_grad_(true);
  Tape tape;
  ScopedTape scope(tape);
  Tensor y = f(xs);
  const Tensor w = random_tensor(y.shape(), rng, 0.5, 1.5);
  Tensor loss = sum(y * w);
  loss.backward();
  for (std::size_t k = 0; k < xs.size(); ++k) {
    Tensor& x = xs[k];
    double* p = x.data<double>();
    const Tensor g = x.grad();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const double x0 = p[i];
      const double h = 1e-4 * std::fmax(1.0, std::fabs(x0));
      auto at = [&](double t) {
        p[i] = t;
        const double r = weighted(f, xs, w);
        p[i] = x0;
        return r;
      };
      const double fd = (-at(x0 + 2 * h) + 8 * at(x0 + h) - 8 * at(x0 - h) + at(x0 - 2 * h)) / (12 * h);
      const double got = g.defined() ? g.data<double>()[i] : 0.0;
      INFO("input " << k << " element " << i << " of shape " << shape_str(x.shape()) << ": got " << got
                    << ", finite differences " << fd);
      CHECK(std::fabs(got - fd) <= tol * std::fmax(1.0, std::fabs(fd)));
    }
  }
}

}  // namespace

TEST_CASE("the example: x*x*3 + 2 at 2 has gradient 12") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({2.0}, {1});
  x.requires_grad_();
  Tensor z = x * x * 3.0 + 2.0;
  z.backward();
  CHECK(z.item() == 14.0);
  CHECK(x.grad().item() == 12.0);
}

TEST_CASE("every elementwise op of the table, with broadcasting") {
  std::mt19937 rng(1);
  using V = std::vector<Tensor>;
  for_each_rule([&](auto rule) {  // each operand sampled in the op's domain (ops.def)
    using R = decltype(rule);
    const Interval dx = R::domain[0];
    if constexpr (R::arity == 1) {
      check_gradients(R::name, [](const V& v) { return call_op<R::op>(v[0]); }, {random_tensor({2, 3}, rng, dx)});
    } else {
      const Interval dy = R::domain[1];
      const std::string name = R::name;
      check_gradients(name + " (2,3) x (3,)", [](const V& v) { return call_op<R::op>(v[0], v[1]); },
                      {random_tensor({2, 3}, rng, dx), random_tensor({3}, rng, dy)});
      check_gradients(name + " (4,1) x (1,2)", [](const V& v) { return call_op<R::op>(v[0], v[1]); },
                      {random_tensor({4, 1}, rng, dx), random_tensor({1, 2}, rng, dy)});
      const double cy = point_in(dy, 0.8), cx = point_in(dx, 0.8);
      check_gradients(name + " with a double", [cy](const V& v) { return call_op<R::op>(v[0], cy); },
                      {random_tensor({3}, rng, dx)});
      check_gradients(name + " double first", [cx](const V& v) { return call_op<R::op>(cx, v[0]); },
                      {random_tensor({3}, rng, dy)});
    }
  });
}

TEST_CASE("reductions over all axes, some axes, keepdims") {
  std::mt19937 rng(2);
  using V = std::vector<Tensor>;
  check_gradients("sum all", [](const V& v) { return sum(v[0]); }, {random_tensor({2, 3, 4}, rng)});
  check_gradients("sum axis 1", [](const V& v) { return sum(v[0], 1); }, {random_tensor({2, 3, 4}, rng)});
  check_gradients("sum axes 0,2 keepdims", [](const V& v) { return sum(v[0], {0, -1}, true); },
                  {random_tensor({2, 3, 4}, rng)});
  check_gradients("mean axis -1", [](const V& v) { return mean(v[0], -1); }, {random_tensor({2, 3}, rng)});
  check_gradients("max axis 0", [](const V& v) { return amax(v[0], 0); }, {random_tensor({4, 3}, rng)});
  check_gradients("min all", [](const V& v) { return amin(v[0]); }, {random_tensor({4, 3}, rng)});
  check_gradients("prod axis 1", [](const V& v) { return prod(v[0], 1); }, {random_tensor({3, 4}, rng)});
  check_gradients("var axis 0 ddof 1", [](const V& v) { return var(v[0], 0, 1); }, {random_tensor({5, 2}, rng)});
  check_gradients("std all", [](const V& v) { return tapegrad::std(v[0]); }, {random_tensor({5, 2}, rng)});
  check_gradients("logsumexp axis 1", [](const V& v) { return logsumexp(v[0], 1); }, {random_tensor({3, 4}, rng)});
  check_gradients("softmax", [](const V& v) { return softmax(v[0], -1); }, {random_tensor({3, 4}, rng)});
  check_gradients("softmax axis 0", [](const V& v) { return softmax(v[0], 0); }, {random_tensor({3, 4}, rng)});
  check_gradients("log_softmax", [](const V& v) { return log_softmax(v[0], 1); }, {random_tensor({3, 4}, rng)});
}

TEST_CASE("prod with zeros: the gradient is the product of the others") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({2.0, 0.0, 3.0, 0.0, 0.0, 5.0, 1.0, 2.0, 4.0}, {3, 3});
  x.requires_grad_();
  sum(prod(x, 1)).backward();
  const std::vector<double> g = x.grad().to_vector();
  CHECK(g == std::vector<double>{0.0, 6.0, 0.0, 0.0, 0.0, 0.0, 8.0, 4.0, 2.0});
}

TEST_CASE("max shares the gradient between ties, as torch.amax") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({1.0, 3.0, 3.0, 2.0}, {4});
  x.requires_grad_();
  amax(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0.0, 0.5, 0.5, 0.0});
}

TEST_CASE("matmul: 2-d, 1-d, batched with broadcasting, dot, outer") {
  std::mt19937 rng(3);
  using V = std::vector<Tensor>;
  auto mm = [](const V& v) { return matmul(v[0], v[1]); };
  check_gradients("(3,4)@(4,2)", mm, {random_tensor({3, 4}, rng), random_tensor({4, 2}, rng)});
  check_gradients("(4,)@(4,2)", mm, {random_tensor({4}, rng), random_tensor({4, 2}, rng)});
  check_gradients("(3,4)@(4,)", mm, {random_tensor({3, 4}, rng), random_tensor({4}, rng)});
  check_gradients("(4,)@(4,)", mm, {random_tensor({4}, rng), random_tensor({4}, rng)});
  check_gradients("(2,3,4)@(4,2)", mm, {random_tensor({2, 3, 4}, rng), random_tensor({4, 2}, rng)});
  check_gradients("(2,1,3,4)@(3,4,5)", mm, {random_tensor({2, 1, 3, 4}, rng), random_tensor({3, 4, 5}, rng)});
  check_gradients("dot", [](const V& v) { return dot(v[0], v[1]); }, {random_tensor({5}, rng), random_tensor({5}, rng)});
  check_gradients("linear", [](const V& v) { return linear(v[0], v[1], v[2]); },
                  {random_tensor({5, 3}, rng), random_tensor({4, 3}, rng), random_tensor({4}, rng)});
  check_gradients("linear, 3-d input", [](const V& v) { return linear(v[0], v[1]); },
                  {random_tensor({2, 5, 3}, rng), random_tensor({4, 3}, rng)});
  {  // linear is x W^T + b exactly; shapes and dtypes checked
    const Tensor x = random_tensor({3, 4}, rng), w = random_tensor({2, 4}, rng), b = random_tensor({2}, rng);
    const std::vector<double> got = linear(x, w, b).to_vector(), want = (matmul(x, transpose(w)) + b).to_vector();
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
    CHECK_THROWS_WITH_AS(linear(x, Tensor::zeros({2, 3})), doctest::Contains("(3, 4) and the weight of shape (2, 3)"),
                         ValueError);
    CHECK_THROWS_WITH_AS(linear(x, w, Tensor::zeros({3})), doctest::Contains("bias has shape (3,)"), ValueError);
    CHECK(linear(Tensor::zeros({0, 4}), w, b).shape() == Shape{0, 2});
    CHECK(linear(Tensor::zeros({3, 0}), Tensor::zeros({2, 0}), b).to_vector() ==
          (Tensor::zeros({3, 2}) + b).to_vector());
  }
  check_gradients("outer", [](const V& v) { return outer(v[0], v[1]); },
                  {random_tensor({3}, rng), random_tensor({2}, rng)});
  // values: [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]
  Tensor c = matmul(Tensor::from_values({1, 2, 3, 4}, {2, 2}), Tensor::from_values({5, 6, 7, 8}, {2, 2}));
  CHECK(c.to_vector() == std::vector<double>{19, 22, 43, 50});
  Tensor cf = matmul(Tensor::from_values({1, 2, 3, 4}, {2, 2}, DType::Float32),
                     Tensor::from_values({5, 6, 7, 8}, {2, 2}, DType::Float32));
  CHECK(cf.dtype() == DType::Float32);
  CHECK(cf.to_vector() == std::vector<double>{19, 22, 43, 50});
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 3}), Tensor::zeros({2, 3})),
                       "tapegrad: matmul: shapes (2, 3) and (2, 3) do not match (3 != 2)", Error);
}

TEST_CASE("shape ops: reshape, transpose, squeeze, unsqueeze, broadcast_to") {
  std::mt19937 rng(4);
  using V = std::vector<Tensor>;
  check_gradients("reshape", [](const V& v) { return reshape(v[0], {3, -1}); }, {random_tensor({2, 3, 2}, rng)});
  check_gradients("transpose", [](const V& v) { return transpose(v[0]); }, {random_tensor({2, 3, 4}, rng)});
  check_gradients("permute", [](const V& v) { return permute(v[0], {1, 2, 0}); }, {random_tensor({2, 3, 4}, rng)});
  check_gradients("squeeze", [](const V& v) { return squeeze(v[0]); }, {random_tensor({1, 3, 1}, rng)});
  check_gradients("unsqueeze", [](const V& v) { return unsqueeze(v[0], -1); }, {random_tensor({3}, rng)});
  check_gradients("broadcast_to", [](const V& v) { return broadcast_to(v[0], {2, 3, 4}); },
                  {random_tensor({3, 1}, rng)});
  Tensor t = transpose(Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3}));
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("indexing: take (with repeats), strided slices, concatenate, stack, where, clip") {
  std::mt19937 rng(5);
  using V = std::vector<Tensor>;
  const Tensor idx = Tensor::from_values({0, 2, 2, -1, 0}, {5}, DType::Int64);
  check_gradients("take", [idx](const V& v) { return take(v[0], idx); }, {random_tensor({2, 2}, rng)});
  check_gradients("slice step -2", [](const V& v) { return slice(v[0], 1, 4, -10, -2); }, {random_tensor({2, 5}, rng)});
  check_gradients("slice 1:", [](const V& v) { return slice(v[0], 0, 1, 100); }, {random_tensor({4}, rng)});
  check_gradients("concatenate", [](const V& v) { return concatenate({v[0], v[1]}, 1); },
                  {random_tensor({2, 1}, rng), random_tensor({2, 3}, rng)});
  check_gradients("stack", [](const V& v) { return stack({v[0], v[1]}, 1); },
                  {random_tensor({2, 3}, rng), random_tensor({2, 3}, rng)});
  const Tensor cond = Tensor::from_values({1, 0, 1}, {3}, DType::Bool);
  check_gradients("where", [cond](const V& v) { return where(cond, v[0], v[1]); },
                  {random_tensor({2, 3}, rng), random_tensor({1}, rng)});
  check_gradients("clip", [](const V& v) { return clip(v[0], -0.5, 0.5); }, {random_tensor({6}, rng)});

  Tensor x = Tensor::from_values({1, 2, 3}, {3});
  x.requires_grad_();
  {
    Tape tape;
    ScopedTape scope(tape);
    sum(take(x, Tensor::from_values({1, 1, 1, 0}, {4}, DType::Int64))).backward();
  }
  CHECK(x.grad().to_vector() == std::vector<double>{1, 3, 0});
  CHECK_THROWS_AS(take(x, Tensor::from_values({3}, {1}, DType::Int64)), IndexError);
  CHECK(slice(Tensor::arange(0, 10), 0, 8, 1, -3).to_vector() == std::vector<double>{8, 5, 2});
}

TEST_CASE("scans, sorts and selections: values as PyTorch's, gradients against finite differences") {
  std::mt19937 rng(21);
  for (const testing::Case& c : testing::structural_cases(rng))
    if (c.name.find("cum") != std::string::npos || c.name.find("sort") != std::string::npos ||
        c.name.find("topk") != std::string::npos || c.name.find("along") != std::string::npos ||
        c.name.find("gather") != std::string::npos || c.name.find("norm") != std::string::npos)
      check_gradients(c.name, c.f, c.xs);
  const double nan = std::nan("");
  const Tensor x = Tensor::from_values({1.0, nan, 0.0, nan, 2.0, 1.0}, {6});
  // NaN above every number; equal elements keep their order (PyTorch's stable sort)
  const ValuesIndices up = sort(x), down = sort(x, 0, true);
  CHECK(up.indices.to_vector() == std::vector<double>{2, 0, 5, 4, 1, 3});
  CHECK(down.indices.to_vector() == std::vector<double>{1, 3, 4, 0, 5, 2});
  CHECK(argsort(x, -1, true).to_vector() == down.indices.to_vector());
  CHECK(topk(x, 2).indices.to_vector() == std::vector<double>{1, 3});
  CHECK(topk(x, 3, 0, false).indices.to_vector() == std::vector<double>{2, 0, 5});
  CHECK(argmax(x).item() == 1);
  CHECK(argmin(x).item() == 1);  // (a NaN wins both, the first one)
  const Tensor m = Tensor::from_values({3, 1, 3, 0, 5, 5}, {2, 3});
  CHECK(argmax(m, 1).to_vector() == std::vector<double>{0, 1});  // the first of ties
  CHECK(argmin(m, 0, true).shape() == Shape{1, 3});
  const ValuesIndices mx = max_along(m, 1, true);
  CHECK(mx.values.to_vector() == std::vector<double>{3, 5});
  CHECK(mx.values.shape() == Shape{2, 1});
  CHECK_THROWS_AS(argmax(Tensor::zeros({0})), ValueError);
  CHECK_THROWS_AS(max_along(Tensor::zeros({2, 0}), 1), ValueError);
  CHECK(max_along(Tensor::zeros({0, 2}), 1).values.shape() == Shape{0});
  // integer scans are exact int64 (2^53 + 1 is not a double)
  const std::int64_t big = (std::int64_t(1) << 53);
  Tensor ints = Tensor::zeros({2}, DType::Int64);
  ints.data<std::int64_t>()[0] = big;
  ints.data<std::int64_t>()[1] = 1;
  const Tensor cs = cumsum(ints, 0);
  CHECK(cs.dtype() == DType::Int64);
  CHECK(cs.data<std::int64_t>()[1] == big + 1);
  CHECK(cumprod(Tensor::from_values({1, 0, 1}, {3}, DType::Bool), 0).to_vector() == std::vector<double>{1, 0, 0});
  // O(n): a cumsum over a million elements and its gradient (a triangular product would need 8 TB)
  Tensor big_x = Tensor::ones({1000000});
  big_x.requires_grad_();
  {
    Tape tape;
    ScopedTape scope(tape);
    const Tensor c = cumsum(big_x, 0);
    CHECK(c.data<double>()[999999] == 1e6);
    sum(c).backward();
    CHECK(big_x.grad().data<double>()[0] == 1e6);
    CHECK(big_x.grad().data<double>()[999999] == 1.0);
  }
  // gather/scatter_add: PyTorch's examples, and the errors that name the shapes
  const Tensor t = Tensor::from_values({1, 2, 3, 4}, {2, 2});
  const Tensor gi = Tensor::from_values({0, 0, 1, 0}, {2, 2}, DType::Int64);
  CHECK(gather(t, 1, gi).to_vector() == std::vector<double>{1, 1, 4, 3});
  CHECK(scatter_add(Tensor::zeros({2, 2}), 1, gi, t).to_vector() == std::vector<double>{3, 0, 4, 3});
  CHECK_THROWS_AS(gather(t, 1, Tensor::from_values({2}, {1, 1}, DType::Int64)), IndexError);
  CHECK_THROWS_AS(gather(t, 1, Tensor::zeros({3, 1}, DType::Int64)), ValueError);
  CHECK_THROWS_AS(gather(t, 1, Tensor::zeros({2, 1})), TypeError);
  CHECK_THROWS_AS(topk(t, 3), ValueError);
  CHECK(norm(Tensor::from_values({3, -4}, {2})).item() == 5.0);
  CHECK(norm(Tensor::from_values({3, -4}, {2}), std::numeric_limits<double>::infinity()).item() == 4.0);
  CHECK(norm(Tensor::from_values({3, 0}, {2}), 0.0).item() == 1.0);
}

TEST_CASE("records keep only what their rules read: a product's operands as needed, not an unread result") {
  Tensor x = Tensor::from_values({1, -2, 3, 4, -5, 6}, {3, 2});  // data: no gradient wanted
  Tensor w = Tensor::from_values({0.5, -1, 2, 0.25}, {2, 2});
  w.requires_grad_();
  Tape tape;
  ScopedTape scope(tape);
  const std::size_t before = tape.stats().saved_bytes;
  std::weak_ptr<TensorImpl> pre;
  Tensor y;
  {
    Tensor h = linear(x, w);  // keeps x (for w's gradient); w itself needs no copy kept (x has no gradient)
    pre = h.impl_ptr();
    y = relu(h);  // reads its output only
  }
  CHECK(pre.expired());  // the linear's result: no rule reads it, nothing holds it
  CHECK(tape.stats().saved_bytes == before + 2 * 6 * sizeof(double));  // x and relu's result
  sum(y * y).backward();
  // d/dw sum(relu(x w^T)^2) = 2 (relu(x w^T))^T x ... against the same sum computed directly
  const std::vector<double> g = w.grad().to_vector();
  std::vector<double> want(4, 0.0);
  const std::vector<double> xv = x.to_vector(), wv = {0.5, -1, 2, 0.25};
  for (int r = 0; r < 3; ++r)
    for (int o = 0; o < 2; ++o) {
      const double z = xv[r * 2] * wv[o * 2] + xv[r * 2 + 1] * wv[o * 2 + 1];
      if (z > 0)
        for (int i = 0; i < 2; ++i) want[static_cast<std::size_t>(o * 2 + i)] += 2 * z * xv[r * 2 + i];
    }
  for (std::size_t i = 0; i < 4; ++i) CHECK(g[i] == doctest::Approx(want[i]).epsilon(1e-14));
  // a hook registered on a result keeps it with its record, as PyTorch's graph keeps hooks
  Tensor a = Tensor::from_values({1, 2}, {2});
  a.requires_grad_();
  int calls = 0;
  Tensor loss;
  {
    Tensor m = a * 3.0;
    m.register_hook([&calls](const Tensor& gr) {
      ++calls;
      return gr * 2.0;
    });
    loss = sum(exp(m));
  }
  loss.backward();
  CHECK(calls == 1);
  CHECK(a.grad().to_vector()[0] == doctest::Approx(6 * std::exp(3.0)));
}

TEST_CASE("empty and 0-d tensors") {
  std::mt19937 rng(6);
  using V = std::vector<Tensor>;
  check_gradients("0-d exp", [](const V& v) { return exp(v[0]) * v[0]; }, {random_tensor({}, rng)});
  check_gradients("0-d with (2,)", [](const V& v) { return v[0] * v[1]; },
                  {random_tensor({}, rng), random_tensor({2}, rng)});
  Tape tape;
  ScopedTape scope(tape);
  Tensor e = Tensor::zeros({0, 3});
  e.requires_grad_();
  Tensor s = sum(exp(e) * 2.0);
  CHECK(s.item() == 0.0);
  s.backward();
  CHECK(e.grad().shape() == Shape{0, 3});
  CHECK(sum(Tensor::zeros({0})).item() == 0.0);
  CHECK_THROWS_AS(amax(Tensor::zeros({0})), Error);
}

TEST_CASE("float32: same results as float64 to float precision, promotion") {
  std::mt19937 rng(8);
  Tensor a = random_tensor({4, 5}, rng), b = random_tensor({5, 3}, rng);
  Tensor af = astype(a, DType::Float32), bf = astype(b, DType::Float32);
  CHECK(af.dtype() == DType::Float32);
  CHECK((af * 2.0).dtype() == DType::Float32);  // a double is a weak scalar
  CHECK((af + a).dtype() == DType::Float64);    // NumPy's promotion
  CHECK((af + Tensor::ones({1}, DType::Int64)).dtype() == DType::Float64);  // as NumPy
  CHECK((af + Tensor::ones({1}, DType::Bool)).dtype() == DType::Float32);
  af.requires_grad_();
  a.requires_grad_();
  Tape tape;
  ScopedTape scope(tape);
  Tensor lf = sum(softmax(tanh(matmul(af, bf)), 1) * 3.0);
  Tensor l = sum(softmax(tanh(matmul(a, b)), 1) * 3.0);
  lf.backward();
  l.backward();
  CHECK(af.grad().dtype() == DType::Float32);
  const auto g32 = af.grad().to_vector(), g64 = a.grad().to_vector();
  for (std::size_t i = 0; i < g32.size(); ++i) CHECK(std::fabs(g32[i] - g64[i]) <= 1e-5 * std::fmax(1.0, std::fabs(g64[i])));
}

TEST_CASE("autograd semantics: accumulation, retain_grad, detach, no_grad, seeds, Var mixing") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({1.0, 2.0}, {2});
  x.requires_grad_();
  Tensor y = x * x;
  y.retain_grad();
  Tensor z = sum(y);
  z.backward(Tensor::ones({}), false, /*retain_graph=*/true);
  z.backward();  // accumulates again, and releases z's graph (PyTorch's default)
  CHECK(x.grad().to_vector() == std::vector<double>{4.0, 8.0});
  CHECK(y.grad().to_vector() == std::vector<double>{2.0, 2.0});
  CHECK_THROWS_WITH_AS(z.backward(), doctest::Contains("retain_graph=True"), Error);
  CHECK(std::string(detail::grad_fn_name(z)) == "SumBackward0");
  // A released result stays usable as an operand; a sweep that reaches it raises.
  Tensor z2 = z * 2.0;
  CHECK(z2.item() == 10.0);
  CHECK_THROWS_WITH_AS(z2.backward(), doctest::Contains("a second time"), Error);
  x.zero_grad();
  CHECK(!x.grad().defined());

  // z's releasing backward freed what y's record kept too (as PyTorch frees every node's saved
  // values as its backward passes): y's graph is gone, its value stays.
  CHECK_THROWS_WITH_AS(y.backward(Tensor::from_values({1.0, 10.0}, {2})), doctest::Contains("a second time"), Error);
  CHECK(y.to_vector() == std::vector<double>{1.0, 4.0});
  Tensor y2 = x * x;
  CHECK_THROWS_WITH_AS(y2.backward(), doctest::Contains("pass gradient="), Error);
  y2.backward(Tensor::from_values({1.0, 10.0}, {2}));
  CHECK(x.grad().to_vector() == std::vector<double>{2.0, 40.0});

  Tensor d = x.detach();
  CHECK(!d.requires_grad());
  CHECK(d.raw_data() == x.raw_data());
  {
    NoGrad ng;
    Tensor w = x * 2.0;
    CHECK(!w.requires_grad());
  }
  // A Var mixes with tensors as a 0-d tensor; its gradient reaches the Var.
  Var v = 3.0;
  Tensor m = sum(x * v);  // v * (1 + 2)
  x.zero_grad();
  m.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{3.0, 3.0});
  CHECK(tape.adjoint(v.index()) == 3.0);
}

TEST_CASE("stale results raise, values stay readable, leaves are recorded again") {
  Tensor x = Tensor::from_values({1.0, 2.0}, {2});
  x.requires_grad_();
  Tape tape;
  ScopedTape scope(tape);
  Tensor y = x * 3.0;
  tape.clear();
  CHECK(y.to_vector() == std::vector<double>{3.0, 6.0});
  CHECK_THROWS_WITH_AS(y * 2.0, doctest::Contains("stale"), Error);
  CHECK_THROWS_WITH_AS(y.backward(Tensor::ones({2})), doctest::Contains("stale"), Error);
  Tensor z = sum(x * x);  // the leaf is recorded on the rewound tape afresh
  z.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2.0, 4.0});
}

TEST_CASE("collect() keeps tensors that roots reach and drops the rest") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({1.0, 2.0}, {2});
  x.requires_grad_();
  for (int i = 0; i < 10; ++i) (void)(x * 2.0);  // dead results
  Tensor y = sum(x * x);
  const std::uint32_t root = tape.add_root(y.impl().rec, nullptr, false);
  tape.collect();
  CHECK(tape.stats().nodes == 3);  // the leaf, x * x, the sum
  y.impl().rec = tape.root_record(root);
  y.impl().gen = tape.generation();
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2.0, 4.0});
}

TEST_CASE("errors name the op and both shapes") {
  CHECK_THROWS_WITH_AS(Tensor::zeros({2, 3}) + Tensor::zeros({4}),
                       "tapegrad: add: shapes (2, 3) and (4,) cannot be broadcast together", Error);
  CHECK_THROWS_WITH_AS(reshape(Tensor::zeros({2, 3}), {4}),
                       "tapegrad: reshape: cannot reshape a tensor of shape (2, 3) (6 elements) into (4,)", Error);
  CHECK_THROWS_AS(sum(Tensor::zeros({2}), 1), Error);
  Tensor i = Tensor::zeros({2}, DType::Int64);
  CHECK_THROWS_WITH_AS(i.requires_grad_(), "tapegrad: only float32 and float64 tensors can require grad, not int64",
                       Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({2}).data<float>(), "tapegrad: data<float32>() on a tensor of dtype float64",
                       Error);
}

TEST_CASE("matmul agrees with a naive product on sizes that exercise blocking, both dtypes, transposes") {
  // The Release suite runs this on the CBLAS found at build time, the sanitizer suite on the
  // portable kernel (TAPEGRAD_BLAS=OFF): both must agree with the textbook loop.
  INFO("gemm backend: " << gemm_backend());
  std::mt19937 rng(9);
  const std::int64_t m = 67, k = 129, n = 33;
  Tensor a = random_tensor({m, k}, rng), b = random_tensor({k, n}, rng);
  std::vector<double> want(static_cast<std::size_t>(m * n), 0.0);
  const double* ap = a.data<double>();
  const double* bp = b.data<double>();
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t p = 0; p < k; ++p) want[static_cast<std::size_t>(i * n + j)] += ap[i * k + p] * bp[p * n + j];
  for (DType dt : {DType::Float64, DType::Float32}) {
    const double tol = dt == DType::Float64 ? 1e-12 : 1e-4;
    const std::vector<double> got = matmul(astype(a, dt), astype(b, dt)).to_vector();
    // (B^T A^T)^T = A B: the transposed operands go through the other gemm paths
    const std::vector<double> via_t =
        transpose(matmul(transpose(astype(b, dt)), transpose(astype(a, dt)))).to_vector();
    for (std::size_t i = 0; i < want.size(); ++i) {
      CHECK(std::fabs(got[i] - want[i]) <= tol * std::fmax(1.0, std::fabs(want[i])));
      CHECK(std::fabs(via_t[i] - want[i]) <= tol * std::fmax(1.0, std::fabs(want[i])));
    }
  }
  // The gradients use the transposed products: checked against finite differences.
  using V = std::vector<Tensor>;
  check_gradients("(5,9)@(9,4)", [](const V& v) { return matmul(v[0], v[1]); },
                  {random_tensor({5, 9}, rng), random_tensor({9, 4}, rng)});
}

TEST_CASE("a view of part of a tensor has its own element count") {
  Tensor x = Tensor::from_values({1, 2, 3, 4}, {2, 2});
  Tensor row = slice(x, 0, 1, 2);  // x[1:2]: a view of the second row
  CHECK(row.numel() == 2);
  CHECK(row.raw_data() == static_cast<double*>(x.raw_data()) + 2);
  Tensor e = reshape(slice(row, 1, 0, 1), {});  // x[1:2, 0:1] then a 0-d view
  CHECK(e.numel() == 1);
  CHECK(e.item() == 3.0);
}

TEST_CASE("matmul errors name the shapes as given, 1-d operands too") {
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({3}), Tensor::zeros({2, 2})),
                       "tapegrad: matmul: shapes (3,) and (2, 2) do not match (3 != 2)", Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 4}), Tensor::zeros({3})),
                       "tapegrad: matmul: shapes (2, 4) and (3,) do not match (4 != 3)", Error);
  CHECK_THROWS_WITH_AS(dot(Tensor::zeros({3}), Tensor::zeros({4})),
                       "tapegrad: matmul: shapes (3,) and (4,) do not match (3 != 4)", Error);
}

namespace {
// <grad of sum(w * f(xs)), v> at xs, by a plain first-order sweep (for finite differences).
double grad_dot(const Fn& f, std::vector<Tensor> xs, const Tensor& w, const std::vector<Tensor>& v) {
  Tape tape;
  ScopedTape scope(tape);
  std::vector<Tensor> ls;
  for (Tensor& x : xs) {
    x = Tensor::from_values(x.to_vector(), x.shape());
    x.requires_grad_();
  }
  sum(f(xs) * w).backward();
  double r = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) r += sum(xs[k].grad() * v[k]).item();
  return r;
}

// Second derivatives through create_graph: d/dx <grad L, v> (a Hessian-vector product)
// against central differences of the first-order <grad L, v>.
void check_second_derivatives(const std::string& what, const Fn& f, std::vector<Tensor> xs, double tol = 2e-5) {
  INFO(what);
  std::mt19937 rng(11);
  std::vector<Tensor> v;
  for (Tensor& x : xs) {
    x.requires_grad_(true);
    v.push_back(random_tensor(x.shape(), rng, -1.0, 1.0));
  }
  Tape tape;
  ScopedTape scope(tape);
  Tensor y = f(xs);
  const Tensor w = random_tensor(y.shape(), rng, 0.5, 1.5);
  sum(y * w).backward(Tensor::ones({}), true);  // create_graph: each x.grad() is on the tape
  Tensor u = Tensor::zeros({});
  for (std::size_t k = 0; k < xs.size(); ++k)
    if (xs[k].grad().defined()) u = u + sum(xs[k].grad() * v[k]);
  for (Tensor& x : xs) x.zero_grad();
  // A gradient that does not depend on x (a linear f) is not on the tape: H v = 0.
  if (u.requires_grad()) u.backward();  // x.grad() = H v
  for (std::size_t k = 0; k < xs.size(); ++k) {
    for (std::int64_t i = 0; i < xs[k].numel(); ++i) {
      std::vector<Tensor> at = xs;
      const double x0 = xs[k].data<double>()[i], h = 1e-4 * std::fmax(1.0, std::fabs(x0));
      auto phi = [&](double t) {
        std::vector<Tensor> p;
        for (const Tensor& x : xs) p.push_back(Tensor::from_values(x.to_vector(), x.shape()));
        p[k].data<double>()[i] = t;
        return grad_dot(f, p, w, v);
      };
      const double fd = (-phi(x0 + 2 * h) + 8 * phi(x0 + h) - 8 * phi(x0 - h) + phi(x0 - 2 * h)) / (12 * h);
      const Tensor hv = xs[k].grad();
      const double got = hv.defined() ? hv.to_vector()[static_cast<std::size_t>(i)] : 0.0;
      INFO("input " << k << " element " << i << ": H v = " << got << ", finite differences " << fd);
      CHECK(std::fabs(got - fd) <= tol * std::fmax(1.0, std::fabs(fd)));
    }
  }
}
}  // namespace

TEST_CASE("create_graph: second derivatives of every elementwise op (gradgradcheck)") {
  std::mt19937 rng(12);
  for (const testing::Case& c : testing::elementwise_cases(rng)) check_second_derivatives(c.name, c.f, c.xs);
}

TEST_CASE("create_graph: second derivatives of reductions, matmul, shapes and indexing") {
  std::mt19937 rng(13);
  for (const testing::Case& c : testing::structural_cases(rng)) check_second_derivatives(c.name, c.f, c.xs);
}

TEST_CASE("create_graph: the issue's example, and third derivatives") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({2.0}, {1});
  x.requires_grad_();
  Tensor y = x * x * x;
  y.backward(Tensor::ones({1}), true);
  Tensor g = x.grad();  // 3x^2 = 12, on the tape
  CHECK(g.item() == 12.0);
  CHECK(g.requires_grad());
  x.zero_grad();
  g.backward(Tensor::ones({1}), true);
  Tensor h = x.grad();  // 6x = 12
  CHECK(h.item() == 12.0);
  x.zero_grad();
  h.backward();
  CHECK(x.grad().item() == 6.0);  // the third derivative of x^3
  // Without create_graph the gradient is a plain tensor
  Tensor z = Tensor::from_values({2.0}, {1});
  z.requires_grad_();
  (z * z).backward(Tensor::ones({1}));
  CHECK(!z.grad().requires_grad());
}

TEST_CASE("create_graph: a recorded .grad is a root of its tape (collect keeps it) until replaced") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({1.5, -0.5}, {2});
  x.requires_grad_();
  for (int i = 0; i < 5; ++i) (void)(x * 3.0);  // garbage for collect() to drop
  sum(sin(x) * x).backward(Tensor::ones({}), true);
  const std::size_t roots = tape.stats().roots;
  CHECK(roots == 1);  // x.grad
  tape.collect();
  Tensor g = x.grad();  // refreshed from its root
  x.zero_grad();
  CHECK(tape.stats().roots == 0);
  sum(g).backward();  // d/dx sum(cos x * x + sin x) = -sin x * x + 2 cos x
  const std::vector<double> h = x.grad().to_vector();
  CHECK(h[0] == doctest::Approx(-std::sin(1.5) * 1.5 + 2 * std::cos(1.5)).epsilon(1e-14));
  CHECK(h[1] == doctest::Approx(-std::sin(-0.5) * -0.5 + 2 * std::cos(-0.5)).epsilon(1e-14));
  // a plain backward afterwards adds to a recorded grad without touching its graph
  Tensor y = Tensor::from_values({2.0}, {1});
  y.requires_grad_();
  (y * y).backward(Tensor::ones({1}), true);
  (y * y).backward(Tensor::ones({1}));
  CHECK(y.grad().item() == 8.0);
  CHECK(!y.grad().requires_grad());
}

TEST_CASE("grad(): PyTorch's autograd.grad, to any order, leaving .grad alone") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({2.0}, {1});
  x.requires_grad_();
  Tensor y = x * x * x;
  const std::vector<Tensor> g = grad({y}, {x}, {}, true);  // 3x^2 = 12, differentiable
  CHECK(g[0].item() == 12.0);
  CHECK(g[0].requires_grad());
  const std::vector<Tensor> h = grad({g[0]}, {x}, {}, true);  // 6x = 12
  CHECK(h[0].item() == 12.0);
  CHECK(grad({h[0]}, {x})[0].item() == 6.0);  // 6
  CHECK(!x.grad().defined());                  // never touched

  // several outputs with weights; a non-leaf input; the same input twice
  Tensor a = Tensor::from_values({1.0, 2.0}, {2});
  a.requires_grad_();
  Tensor m = a * 3.0;                 // non-leaf
  Tensor o1 = sum(m * m), o2 = m;     // d o1/dm = 2m = (6, 12); o2 weighted by (1, -1)
  const std::vector<Tensor> gs = grad({o1, o2}, {m, a, m}, {Tensor::ones({}), Tensor::from_values({1, -1}, {2})});
  CHECK(gs[0].to_vector() == std::vector<double>{7.0, 11.0});
  CHECK(gs[1].to_vector() == std::vector<double>{21.0, 33.0});
  CHECK(gs[2].to_vector() == gs[0].to_vector());
  CHECK(!a.grad().defined());

  // an input the outputs do not use
  Tensor unused = Tensor::from_values({1.0}, {1});
  unused.requires_grad_();
  CHECK_THROWS_WITH_AS(grad({o1}, {unused}), doctest::Contains("allow_unused"), Error);
  CHECK(!grad({o1}, {unused}, {}, false, true)[0].defined());
  CHECK_THROWS_WITH_AS(grad({sum(m)}, {a}, {Tensor::ones({2})}), doctest::Contains("has shape (2,)"), Error);
}

TEST_CASE("create_graph after collect(): saved values keep their records") {
  Tape tape;
  ScopedTape scope(tape);
  Tensor x = Tensor::from_values({0.3, -1.2}, {2});
  x.requires_grad_();
  for (int i = 0; i < 4; ++i) (void)exp(x);  // garbage
  Tensor y = sum(sin(x) * x);
  const std::uint32_t root = tape.add_root(y.impl().rec, nullptr, false);
  tape.collect();  // moves every record; nodes tell their saved tensors where
  y.impl().rec = tape.root_record(root);
  y.impl().gen = tape.generation();
  const Tensor g = grad({y}, {x}, {}, true)[0];  // sin x + x cos x, recorded from saved values
  const Tensor h = grad({sum(g)}, {x})[0];       // 2 cos x - x sin x
  for (int i = 0; i < 2; ++i) {
    const double xi = x.to_vector()[static_cast<std::size_t>(i)];
    CHECK(h.to_vector()[static_cast<std::size_t>(i)] == doctest::Approx(2 * std::cos(xi) - xi * std::sin(xi)).epsilon(1e-14));
  }
}

TEST_CASE("create_graph through a Var mixed into tensors: the Var's gradient is recorded too") {
  Tape tape;
  ScopedTape scope(tape);
  Var x = 1.5;
  Tensor t = Tensor::from_values({3.0, 4.0}, {2});
  t.requires_grad_();
  const Tensor c = Tensor::from_values({1.0, 2.0}, {2});
  // y = sum(c x^2 t) + sin(x) x: dy/dx = 2x <c, t> + cos(x) x + sin(x), d2y/dx2 = 2 <c, t> - sin(x) x + 2 cos(x)
  const Var sx = sin(x) * x;
  const Tensor y = sum(c * x * x * t) + Tensor::from_var(sx);
  std::vector<Var> adj;
  std::vector<char> has;
  detail::recorded_backward(y, Tensor::ones({}), adj, has);
  REQUIRE(has[x.index()]);
  const Var g = adj[x.index()];  // a Var that depends on x through tensor records
  const double xv = 1.5, ct = 11.0;
  CHECK(g.value() == doctest::Approx(2 * xv * ct + std::cos(xv) * xv + std::sin(xv)).epsilon(1e-14));
  CHECK(t.grad().requires_grad());  // tensor leaves' gradients are recorded as usual
  CHECK(t.grad().to_vector() == std::vector<double>{2.25, 4.5});
  const double d2 = 2 * ct - std::sin(xv) * xv + 2 * std::cos(xv);
  CHECK(grad(g, {x})[0] == doctest::Approx(d2).epsilon(1e-13));          // reverse through tensors
  CHECK(jvp({g}, {x}, {1.0})[0] == doctest::Approx(d2).epsilon(1e-13));  // forward through tensors
  const Var g2 = grad(g, {x}, CreateGraph{})[0];                          // and recorded again
  const double d3 = -std::cos(xv) * xv - 3 * std::sin(xv);
  CHECK(g2.value() == doctest::Approx(d2).epsilon(1e-13));
  CHECK(grad(g2, {x})[0] == doctest::Approx(d3).epsilon(1e-12));
  const Var j2 = jvp({g}, {x}, {Var::constant(1.0)}, CreateGraph{})[0];  // recorded forward, through tensors
  CHECK(j2.value() == doctest::Approx(d2).epsilon(1e-13));
  CHECK(grad(j2, {x})[0] == doctest::Approx(d3).epsilon(1e-12));
  // the tensor side: d/dt of dy/dx = 2x c, through the Var's recorded gradient
  t.zero_grad();
  const Tensor gt = grad({sum(t * t) * 0.0 + Tensor::from_var(g)}, {t})[0];
  CHECK(gt.to_vector() == std::vector<double>{3.0, 6.0});
  CHECK(!t.grad().defined());  // grad() changes no .grad
}

TEST_CASE("hardening: shapes checked before any work, an empty inner dimension in forward mode") {
  const Tensor t = Tensor::ones({2});
  CHECK_THROWS_WITH_AS(reshape(t, {3, 6148914691236517206}), doctest::Contains("is too large"), ValueError);
  CHECK_THROWS_WITH_AS(reshape(t, {-1, std::int64_t(1) << 62, 4}), doctest::Contains("is too large"), ValueError);
  CHECK_THROWS_WITH_AS(reshape(t, {-2}), doctest::Contains("negative dimension"), ValueError);
  CHECK_THROWS_WITH_AS(Tensor::zeros({std::int64_t(1) << 62, 4}), doctest::Contains("is too large"), ValueError);
  CHECK_THROWS_WITH_AS(Tensor::zeros({-1, 2}), doctest::Contains("negative dimension"), ValueError);
  CHECK_THROWS_WITH_AS(Tensor::zeros({std::int64_t(1) << 20, std::int64_t(1) << 20}),
                       doctest::Contains("out of memory: a tensor needs 8192.0 GiB"), MemoryError);
  // (3, 0) @ (0, 2) @ x: the tangent of an empty product is zeros (it divided by the inner 0)
  Tensor x = Tensor::ones({2});
  x.requires_grad_();
  const Tensor y = matmul(matmul(Tensor::zeros({3, 0}), Tensor::zeros({0, 2})), x);
  const Tensor jv = jvp({y}, {x}, {Tensor::ones({2})})[0];
  CHECK(jv.shape() == Shape{3});
  CHECK(jv.to_vector() == std::vector<double>{0.0, 0.0, 0.0});
  const Tensor y2 = matmul(Tensor::zeros({2, 0}), matmul(Tensor::zeros({0, 2}), x));
  CHECK(jvp({y2}, {x}, {Tensor::eye(2, 2)}, false, true)[0].to_vector() == std::vector<double>(4, 0.0));
  // softmax over an empty axis: empty, as log_softmax
  CHECK(softmax(Tensor::ones({2, 0}), 1).shape() == Shape{2, 0});
}

TEST_CASE("hardening: a leaf's recorded gradient outliving its tape") {
  Tensor x = Tensor::from_values({1.0, 2.0}, {2});
  x.requires_grad_();
  {
    Tape tape;
    ScopedTape scope(tape);
    sum(x * x * x).backward(Tensor::full({}, 1.0), true);  // create_graph: x.grad is a result on `tape`, rooted there
    CHECK(x.grad().requires_grad());
  }
  Tape other;  // may take the destroyed tape's memory
  ScopedTape scope(other);
  const Tensor g = x.grad();  // its values stay readable; using it as a result is an error
  CHECK(g.to_vector() == std::vector<double>{3.0, 12.0});
  CHECK_THROWS_WITH_AS(sum(g).backward(), doctest::Contains("destroyed"), Error);
  x.zero_grad();  // drops the root it no longer has: nothing to do on a destroyed tape
  CHECK(!x.grad().defined());
}

namespace {
std::vector<int> g_told;  // what the fake BLAS's thread control was told
void fake_threads(int n) { g_told.push_back(n); }
}  // namespace

TEST_CASE("matmul's threads: one below the threshold, set_num_threads above, the BLAS told only of changes") {
  const int before = get_num_threads();
  CHECK_THROWS_WITH_AS(set_num_threads(0), doctest::Contains("must be positive"), Error);
  set_num_threads(3);
  CHECK(get_num_threads() == 3);
  CHECK(gemm_threads(8, 8, 8) == 1);
  CHECK(gemm_threads(63, 128, 128) == 1);  // just below 2^20 multiply-adds
  const int big = gemm_threads(64, 128, 128);
  CHECK((big >= 1 && big <= 3));  // (fewer where other processes keep the cores busy)
  CHECK(gemm_threads(std::int64_t(1) << 40, std::int64_t(1) << 40, std::int64_t(1) << 40) >= 1);  // no overflow
  g_told.clear();
  set_gemm_threads(&fake_threads, 2);
  const Tensor a = Tensor::ones({300, 300}), s = Tensor::ones({8, 8});
  (void)matmul(s, s);
  CHECK(g_told == std::vector<int>{1});  // 2 -> 1: told
  (void)matmul(s, s);
  CHECK(g_told.size() == 1);  // unchanged: not told again
  const Tensor c = matmul(a, a);
  CHECK(c.to_vector()[0] == 300.0);
  // 2^24.7 multiply-adds: told of its threads unless they are still 1 (other processes busy)
  CHECK((g_told.size() == 1 || (g_told.size() == 2 && g_told[1] >= 2 && g_told[1] <= 3)));
  set_gemm_threads(nullptr, 0);
  set_num_threads(before);
}

TEST_CASE("convolution and pooling: values of small known cases, and the errors") {
  const Tensor x = Tensor::arange(0, 16, 1, DType::Float64);
  const Tensor img = reshape(x, {1, 1, 4, 4});
  // each output is the sum of a 2 x 2 window
  CHECK(conv(img, Tensor::ones({1, 1, 2, 2}), Tensor(), {{1, 1}, {0, 0}, {1, 1}, 1, "conv2d"}).to_vector() ==
        std::vector<double>{10, 14, 18, 26, 30, 34, 42, 46, 50});
  // stride 2 and a bias; padding 1 adds zeros around
  CHECK(conv(img, Tensor::ones({1, 1, 2, 2}), Tensor::from_values({0.5}, {1}), {{2, 2}, {0, 0}, {1, 1}, 1, "conv2d"})
            .to_vector() == std::vector<double>{10.5, 18.5, 42.5, 50.5});
  CHECK(conv(img, Tensor::ones({1, 1, 3, 3}), Tensor(), {{3, 3}, {1, 1}, {1, 1}, 1, "conv2d"}).to_vector() ==
        std::vector<double>{0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15});
  // the transposed convolution spreads each input over a window, the overlaps summed
  const Tensor small = Tensor::from_values({1, 2, 3, 4}, {1, 1, 2, 2});
  CHECK(conv_transpose(small, Tensor::ones({1, 1, 2, 2}), Tensor(), {{1, 1}, {0, 0}, {1, 1}, 1, "conv_transpose2d"}, {0, 0})
            .to_vector() == std::vector<double>{1, 3, 2, 4, 10, 6, 3, 7, 4});
  const ValuesIndices mp = max_pool(img, {{2, 2}, {2, 2}, {0, 0}, {1, 1}, false, "max_pool2d"});
  CHECK(mp.values.to_vector() == std::vector<double>{5, 7, 13, 15});
  CHECK(mp.indices.to_vector() == std::vector<double>{5, 7, 13, 15});
  CHECK(mp.values.shape() == Shape{1, 1, 2, 2});
  CHECK(avg_pool(img, {{2, 2}, {2, 2}, {0, 0}, {1, 1}, false, "avg_pool2d"}).to_vector() ==
        std::vector<double>{2.5, 4.5, 10.5, 12.5});
  CHECK(adaptive_avg_pool(img, {1, 1}).to_vector() == std::vector<double>{7.5});
  CHECK(pad(Tensor::from_values({1, 2}, {2}), {1}, {2}).to_vector() == std::vector<double>{0, 1, 2, 0, 0});
  CHECK_THROWS_WITH_AS(conv(img, Tensor::ones({2, 3, 2, 2}), Tensor(), {{1, 1}, {0, 0}, {1, 1}, 1, "conv2d"}),
                       "tapegrad: conv2d: with groups=1, weight of shape (2, 3, 2, 2) expects 3 input channels, but the "
                       "input of shape (1, 1, 4, 4) has 1",
                       ValueError);
  CHECK_THROWS_WITH_AS(conv(img, Tensor::ones({1, 1, 5, 5}), Tensor(), {{1, 1}, {0, 0}, {1, 1}, 1, "conv2d"}),
                       "tapegrad: conv2d: input of shape (1, 1, 4, 4) (padding (0, 0)) is smaller than the (dilated) "
                       "kernel of the weight (1, 1, 5, 5)",
                       ValueError);
  CHECK_THROWS_WITH_AS(conv(img, Tensor::ones({1, 1, 2, 2}, DType::Float32), Tensor(), {{1, 1}, {0, 0}, {1, 1}, 1, "conv2d"}),
                       "tapegrad: conv2d: input (float64) and weight (float32) must have the same dtype", TypeError);
  CHECK_THROWS_WITH_AS(max_pool(img, {{2, 2}, {2}, {0, 0}, {1, 1}, false, "max_pool2d"}),
                       "tapegrad: max_pool2d: stride needs 2 value(s), one per spatial axis, got (2,)", ValueError);
  CHECK_THROWS_WITH_AS(max_pool(img, {{2, 2}, {2, 2}, {2, 0}, {1, 1}, false, "max_pool2d"}),
                       "tapegrad: max_pool2d: padding (2, 0) must be at most half of kernel_size (2, 2) (dilated)",
                       ValueError);
}

TEST_CASE("recurrent layers: an LSTM step by hand, and the errors") {
  // one step, one unit, input 1: gates = w_ih x + w_hh h + b (i, f, g, o), c' = f c + i g, h' = o tanh(c')
  const Tensor x = Tensor::from_values({0.5}, {1, 1, 1});
  const Tensor w_ih = Tensor::from_values({0.1, 0.2, 0.3, 0.4}, {4, 1}), w_hh = Tensor::from_values({-0.1, 0.5, 0.2, 0.3}, {4, 1});
  const Tensor h0 = Tensor::from_values({0.2}, {1, 1}), c0 = Tensor::from_values({-0.3}, {1, 1});
  const RNNLayerOutput r = rnn_layer(RNNMode::LSTM, x, h0, c0, {w_ih, w_hh, Tensor(), Tensor(), Tensor()});
  auto s = [](double v) { return 1 / (1 + std::exp(-v)); };
  const double i = s(0.05 - 0.02), f = s(0.1 + 0.1), g = std::tanh(0.15 + 0.04), o = s(0.2 + 0.06);
  const double c = f * -0.3 + i * g;
  CHECK(r.c.item() == doctest::Approx(c).epsilon(1e-14));
  CHECK(r.h.item() == doctest::Approx(o * std::tanh(c)).epsilon(1e-14));
  CHECK(r.output.shape() == Shape{1, 1, 1});
  CHECK_THROWS_WITH_AS(rnn_layer(RNNMode::GRU, x, Tensor(), Tensor(), {w_ih, w_hh, Tensor(), Tensor(), Tensor()}),
                       "tapegrad: GRU: weight_hh of shape (4, 1) must be (3 hidden_size, hidden_size or proj_size)",
                       ValueError);
  CHECK_THROWS_WITH_AS(rnn_layer(RNNMode::LSTM, reshape(x, {1, 1}), h0, c0, {w_ih, w_hh, Tensor(), Tensor(), Tensor()}),
                       "tapegrad: LSTM: the input must be (L, N, input_size), got (1, 1)", ValueError);
}

TEST_CASE("attention: weights by hand, causal rows, rows that may attend to nothing") {
  // one query, two keys: scores q.k / sqrt(2) = (1, 0) / sqrt(2)... weights softmax, output the weighted values
  const Tensor q = Tensor::from_values({1, 1}, {1, 2}), k = Tensor::from_values({1, 0, 0, 0}, {2, 2});
  const Tensor v = Tensor::from_values({10, 20}, {2, 1});
  const double a = std::exp(1 / std::sqrt(2.0)), w0 = a / (a + 1);
  CHECK(scaled_dot_product_attention(q, k, v).item() == doctest::Approx(10 * w0 + 20 * (1 - w0)).epsilon(1e-14));
  // causal: query 0 sees key 0 only
  const Tensor q2 = Tensor::from_values({1, 1, 1, 1}, {2, 2});
  const std::vector<double> c = scaled_dot_product_attention(q2, k, v, Tensor(), Tensor(), std::nan(""), true).to_vector();
  CHECK(c[0] == 10.0);
  // a query whose every key is masked out gets zeros, not NaN (PyTorch's)
  const Tensor none = Tensor::zeros({2, 2}, DType::Bool);
  CHECK(scaled_dot_product_attention(q2, k, v, Tensor(), none).to_vector() == std::vector<double>{0.0, 0.0});
  CHECK_THROWS_AS(scaled_dot_product_attention(q2, k, v, Tensor(), none, std::nan(""), true), ValueError);
  CHECK_THROWS_AS(scaled_dot_product_attention(q2, Tensor::zeros({2, 3}), v), ValueError);
}
