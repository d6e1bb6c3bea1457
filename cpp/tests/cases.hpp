// Shared by the tensor tests: random inputs, and one list of differentiable functions that
// covers every op (the table's elementwise ops, reductions, matmul, shapes, indexing), for
// the checks of second derivatives (tensor.test.cpp) and of tangents (forward.test.cpp).
#pragma once

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.hpp"

namespace tapegrad::testing {

inline Tensor random_tensor(const Shape& shape, std::mt19937& rng, double lo = -2.0, double hi = 2.0) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)));
  for (double& e : v) e = u(rng);
  return Tensor::from_values(v, shape);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Fresh leaves that require grad, with the values of xs.
inline std::vector<Tensor> leaves(const std::vector<Tensor>& xs) {
  std::vector<Tensor> r;
  for (const Tensor& x : xs) {
    Tensor c = Tensor::from_values(x.to_vector(), x.shape());
    c.requires_grad_();
    r.push_back(c);
  }
  return r;
}

struct Case {
  std::string name;
  Fn f;
  std::vector<Tensor> xs;  ///< where to differentiate (smooth points: no ties, no kinks)
};

/// The public function of op `op` (tapegrad::exp, ...) on any arguments (Var, Tensor, Dual,
/// double), found by argument-dependent lookup: `call_op<Op::Exp>(x)`.
template <Op op>
struct OpFunction;
#define TAPEGRAD_UNARY(Name, name, ...)                                                    \
  template <>                                                                              \
  struct OpFunction<Op::Name> {                                                            \
    template <class... A>                                                                  \
    static auto call(const A&... a) {                                                      \
      using tapegrad::name;                                                                \
      return name(a...);                                                                   \
    }                                                                                      \
  };
#define TAPEGRAD_BINARY(Name, name, ...) TAPEGRAD_UNARY(Name, name)
#include "tapegrad/ops.def"
template <Op op, class... A>
auto call_op(const A&... a) {
  return OpFunction<op>::call(a...);
}

/// A point of an interval (at fraction t from its low end).
inline double point_in(const Interval& d, double t) { return d.lo + t * (d.hi - d.lo); }
inline Tensor random_tensor(const Shape& shape, std::mt19937& rng, const Interval& d) {
  return random_tensor(shape, rng, d.lo, d.hi);
}

/// Every elementwise op of the table on (2, 3) (binary ones against (3,), and with a double),
/// sampled in the op's domain (ops.def).
inline std::vector<Case> elementwise_cases(std::mt19937& rng) {
  std::vector<Case> cases;
  for_each_rule([&](auto rule) {
    using R = decltype(rule);
    const Interval dx = R::domain[0];
    if constexpr (R::arity == 1) {
      cases.push_back({R::name, [](const std::vector<Tensor>& v) { return call_op<R::op>(v[0]); },
                       {random_tensor({2, 3}, rng, dx)}});
    } else {
      const double c = point_in(R::domain[1], 0.8);
      cases.push_back({std::string(R::name) + " (2,3) x (3,)",
                       [](const std::vector<Tensor>& v) { return call_op<R::op>(v[0], v[1]); },
                       {random_tensor({2, 3}, rng, dx), random_tensor({3}, rng, R::domain[1])}});
      cases.push_back({std::string(R::name) + " with a double",
                       [c](const std::vector<Tensor>& v) { return call_op<R::op>(v[0], c); },
                       {random_tensor({3}, rng, dx)}});
    }
  });
  return cases;
}

/// Reductions, matmul, shape ops, indexing, where and clip.
inline std::vector<Case> structural_cases(std::mt19937& rng) {
  using V = std::vector<Tensor>;
  const Tensor idx = Tensor::from_values({0, 2, 2, 5}, {4}, DType::Int64);
  const Tensor cond = Tensor::from_values({1, 0, 1}, {3}, DType::Bool);
  const Tensor gi = Tensor::from_values({2, 0, 2, 1, 1, -1}, {2, 3}, DType::Int64);  // (repeats)
  return {
      {"sum of squares", [](const V& v) { return sum(v[0] * v[0], 1); }, {random_tensor({2, 3}, rng)}},
      {"mean", [](const V& v) { return mean(exp(v[0]), 0, true); }, {random_tensor({3, 2}, rng)}},
      {"prod", [](const V& v) { return prod(v[0], 1); }, {random_tensor({2, 3}, rng)}},
      {"max", [](const V& v) { return amax(v[0] * v[0], 1); }, {random_tensor({2, 3}, rng)}},
      {"min of all", [](const V& v) { return amin(sin(v[0])); }, {random_tensor({2, 3}, rng)}},
      {"var", [](const V& v) { return var(v[0], 1, 1); }, {random_tensor({2, 4}, rng)}},
      {"std", [](const V& v) { return tapegrad::std(v[0]); }, {random_tensor({5}, rng)}},
      {"logsumexp", [](const V& v) { return logsumexp(v[0], 1); }, {random_tensor({2, 3}, rng)}},
      {"softmax", [](const V& v) { return softmax(v[0], -1); }, {random_tensor({2, 3}, rng)}},
      {"log_softmax", [](const V& v) { return log_softmax(v[0], 0); }, {random_tensor({3, 2}, rng)}},
      {"matmul", [](const V& v) { return tanh(matmul(v[0], v[1])); }, {random_tensor({2, 3}, rng), random_tensor({3, 2}, rng)}},
      {"linear", [](const V& v) { return tanh(linear(v[0], v[1], v[2])); },
       {random_tensor({4, 3}, rng), random_tensor({2, 3}, rng), random_tensor({2}, rng)}},
      {"linear, 3-d input, no bias", [](const V& v) { return sin(linear(v[0], v[1])); },
       {random_tensor({2, 2, 3}, rng), random_tensor({4, 3}, rng)}},
      {"batched matmul", [](const V& v) { return sin(matmul(v[0], v[1])); },
       {random_tensor({2, 2, 3}, rng), random_tensor({3}, rng)}},
      {"matmul, batch on the right", [](const V& v) { return sin(matmul(v[0], v[1])); },
       {random_tensor({2, 3}, rng), random_tensor({2, 3, 2}, rng)}},
      {"matrix-vector", [](const V& v) { return exp(matmul(v[0], v[1]) * 0.3); }, {random_tensor({3, 2}, rng), random_tensor({2}, rng)}},
      {"vector-matrix", [](const V& v) { return exp(matmul(v[0], v[1]) * 0.3); }, {random_tensor({3}, rng), random_tensor({3, 2}, rng)}},
      {"transpose, reshape, broadcast",
       [](const V& v) { return exp(broadcast_to(reshape(transpose(v[0]), {1, 6}), {2, 6})); },
       {random_tensor({2, 3}, rng)}},
      {"take", [idx](const V& v) { return sin(take(v[0], idx)); }, {random_tensor({2, 3}, rng)}},
      {"slice", [](const V& v) { return exp(slice(v[0], 1, 2, -10, -2)); }, {random_tensor({2, 4}, rng)}},
      {"contiguous slice", [](const V& v) { return exp(slice(v[0], 0, 1, 3)); }, {random_tensor({4}, rng)}},
      {"concatenate, stack",
       [](const V& v) { return concatenate({stack({sin(v[0]), v[1] * v[0]}, 0), reshape(v[1] * v[1], {1, 2})}, 0); },
       {random_tensor({2}, rng), random_tensor({2}, rng)}},
      {"where, clip", [cond](const V& v) { return where(cond, exp(v[0]), clip(v[0], -0.5, 0.5) * v[0]); },
       {random_tensor({3}, rng)}},
      {"cumsum", [](const V& v) { return sin(cumsum(v[0] * v[0], 1)); }, {random_tensor({2, 3, 2}, rng)}},
      {"cumsum of a 0-d tensor", [](const V& v) { return exp(cumsum(v[0], 0)); }, {random_tensor({}, rng)}},
      {"cumprod", [](const V& v) { return cumprod(v[0], 0); }, {random_tensor({4, 2}, rng)}},
      {"cumprod through zeros", [](const V& v) { return cumprod(v[0] * v[1], 1); },
       {Tensor::from_values({1.5, 0.0, -2.0, 0.0, 0.5, 0.0, 3.0, 0.7, 1.2, -0.4}, {2, 5}), random_tensor({5}, rng)}},
      {"sort", [](const V& v) { return sort(v[0], 0, true).values * v[0]; }, {random_tensor({3, 2}, rng)}},
      {"topk", [](const V& v) { return exp(topk(v[0], 2, -1, false).values); }, {random_tensor({2, 4}, rng)}},
      {"max along an axis", [](const V& v) { return max_along(v[0] * v[0], 1).values + min_along(v[0], 1, true).values; },
       {random_tensor({2, 3}, rng)}},
      {"gather, scatter_add", [gi](const V& v) { return scatter_add(v[0], 1, gi, sin(gather(v[0], 1, gi))); },
       {random_tensor({2, 3}, rng)}},
      {"norms", [](const V& v) { return norm(v[0], 2.0, 1) + norm(v[0], 3.0, 1) * norm(v[0], 1.0, 1); },
       {random_tensor({2, 3}, rng)}},
      // convolution and pooling (compositions of the entries above, checked as wholes)
      {"conv 2-d: stride, padding, dilation, groups, bias",
       [](const V& v) { return tanh(conv(v[0], v[1], v[2], {{2, 1}, {1, 2}, {1, 2}, 2, "conv2d"})); },
       {random_tensor({2, 4, 5, 4}, rng), random_tensor({2, 2, 3, 2}, rng), random_tensor({2}, rng)}},
      {"conv 1-d, overlapping windows", [](const V& v) { return sin(conv(v[0], v[1], Tensor(), {{1}, {0}, {1}, 1, "conv1d"})); },
       {random_tensor({1, 2, 6}, rng), random_tensor({3, 2, 3}, rng)}},
      {"conv_transpose 2-d: stride, padding, output_padding",
       [](const V& v) { return tanh(conv_transpose(v[0], v[1], v[2], {{2, 2}, {1, 0}, {1, 1}, 1, "conv_transpose2d"}, {1, 0})); },
       {random_tensor({1, 2, 3, 2}, rng), random_tensor({2, 3, 3, 2}, rng), random_tensor({3}, rng)}},
      {"pad, cropping too", [](const V& v) { return exp(pad(v[0] * v[0], {1, -1}, {0, 2})); }, {random_tensor({2, 3}, rng)}},
      {"max_pool: padded, ceil_mode", [](const V& v) { return max_pool(v[0] * v[0], {{3, 2}, {2, 2}, {1, 1}, {1, 1}, true, "max_pool2d"}).values; },
       {random_tensor({1, 2, 5, 4}, rng)}},
      {"avg_pool: padding left out", [](const V& v) {
         return sin(avg_pool(v[0], {{3, 3}, {2, 1}, {1, 1}, {1, 1}, true, "avg_pool2d"}, false)); },
       {random_tensor({2, 5, 4}, rng)}},
      // recurrent layers (compositions too): input, states and weights all differentiated
      {"LSTM layer with a projection, from given states",
       [](const V& v) { return rnn_layer(RNNMode::LSTM, v[0], v[1], v[2], {v[3], v[4], v[5], Tensor(), v[6]}).output; },
       {random_tensor({3, 2, 2}, rng), random_tensor({2, 2}, rng), random_tensor({2, 3}, rng), random_tensor({12, 2}, rng),
        random_tensor({12, 2}, rng), random_tensor({12}, rng), random_tensor({2, 3}, rng)}},
      {"GRU layer, reversed: its last state", [](const V& v) {
         return rnn_layer(RNNMode::GRU, v[0], Tensor(), Tensor(), {v[1], v[2], Tensor(), v[3], Tensor()}, true).h; },
       {random_tensor({3, 2, 2}, rng), random_tensor({9, 2}, rng), random_tensor({9, 3}, rng), random_tensor({9}, rng)}},
      {"Elman layer, tanh", [](const V& v) {
         return rnn_layer(RNNMode::Tanh, v[0], v[1], Tensor(), {v[2], v[3], v[4], v[5], Tensor()}).output; },
       {random_tensor({2, 1, 3}, rng), random_tensor({1, 2}, rng), random_tensor({2, 3}, rng), random_tensor({2, 2}, rng),
        random_tensor({2}, rng), random_tensor({2}, rng)}},
      {"attention with an added mask", [](const V& v) { return scaled_dot_product_attention(v[0], v[1], v[2], v[3]); },
       {random_tensor({2, 3, 2}, rng), random_tensor({2, 4, 2}, rng), random_tensor({2, 4, 3}, rng),
        random_tensor({3, 4}, rng)}},
      {"causal attention, scaled", [](const V& v) {
         return scaled_dot_product_attention(v[0], v[1], v[2], Tensor(), Tensor(), 0.7, true); },
       {random_tensor({3, 2}, rng), random_tensor({3, 2}, rng), random_tensor({3, 2}, rng)}},
      {"adaptive_avg_pool, 3 axes", [](const V& v) { return exp(adaptive_avg_pool(v[0] * v[0], {2, 3, 2})); },
       {random_tensor({1, 3, 4, 3}, rng)}},
  };
}

/// The Hessian of logsumexp(A x) + |x|^2 / 2 in closed form, A^T (diag p - p p^T) A + I with
/// p = softmax(A x), row-major (n x n) for A of shape (m, n).
inline std::vector<double> logsumexp_hessian(const Tensor& A, const Tensor& x) {
  NoGrad ng;
  const std::int64_t m = A.shape()[0], n = A.shape()[1];
  const std::vector<double> p = softmax(matmul(A, x)).to_vector(), a = A.to_vector();
  std::vector<double> h(static_cast<std::size_t>(n * n));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double v = i == j ? 1.0 : 0.0, pi = 0, pj = 0;
      for (std::int64_t r = 0; r < m; ++r) {
        v += a[static_cast<std::size_t>(r * n + i)] * p[static_cast<std::size_t>(r)] * a[static_cast<std::size_t>(r * n + j)];
        pi += p[static_cast<std::size_t>(r)] * a[static_cast<std::size_t>(r * n + i)];
        pj += p[static_cast<std::size_t>(r)] * a[static_cast<std::size_t>(r * n + j)];
      }
      h[static_cast<std::size_t>(i * n + j)] = v - pi * pj;
    }
  return h;
}

}  // namespace tapegrad::testing
