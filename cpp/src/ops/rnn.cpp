// Recurrent layers and attention. One layer of an Elman RNN, an LSTM or a GRU run over a sequence
// (rnn_layer), as compositions of recorded ops, so every sweep differentiates them. PyTorch's
// CPU path step for step: the input projections of every time step in one product first, then
// per step the hidden projection and the gates, with PyTorch's formulas and order of rounding
// (aten/src/ATen/native/RNN.cpp: LSTMCell, GRUCell, SimpleCell with pre-computed input).
// Scaled dot-product attention: softmax(q k^T scale + mask) v, as PyTorch's math backend.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tensor/internal.hpp"

namespace tapegrad {

namespace {

std::int64_t gates_of(RNNMode mode) { return mode == RNNMode::LSTM ? 4 : mode == RNNMode::GRU ? 3 : 1; }

const char* mode_name(RNNMode mode) {
  switch (mode) {
    case RNNMode::Tanh: return "RNN";
    case RNNMode::Relu: return "RNN";
    case RNNMode::LSTM: return "LSTM";
    case RNNMode::GRU: return "GRU";
  }
  return "RNN";
}

void check_shape(const char* who, const char* what, const Tensor& t, const Shape& want) {
  if (t.shape() != want)
    throw ValueError(std::string("tapegrad: ") + who + ": " + what + " has shape " + shape_str(t.shape()) + ", expected " +
                     shape_str(want));
}

}  // namespace

RNNLayerOutput rnn_layer(RNNMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0, const RNNWeights& w,
                         bool reverse) {
  const char* who = mode_name(mode);
  if (x.ndim() != 3)
    throw ValueError(std::string("tapegrad: ") + who + ": the input must be (L, N, input_size), got " + shape_str(x.shape()));
  if (!is_floating(x.dtype()))
    throw TypeError(std::string("tapegrad: ") + who + ": the input must be a floating tensor, not " + dtype_name(x.dtype()));
  const std::int64_t L = x.shape()[0], N = x.shape()[1], I = x.shape()[2];
  const std::int64_t G = gates_of(mode);
  if (w.w_hh.ndim() != 2 || w.w_hh.shape()[0] % G != 0)
    throw ValueError(std::string("tapegrad: ") + who + ": weight_hh of shape " + shape_str(w.w_hh.shape()) + " must be (" +
                     std::to_string(G) + " hidden_size, hidden_size or proj_size)");
  const std::int64_t H = w.w_hh.shape()[0] / G;               // the cell's size
  const std::int64_t P = w.w_hr.defined() ? w.w_hr.shape()[0] : H;  // the output's (proj_size, LSTM only)
  check_shape(who, "weight_ih", w.w_ih, {G * H, I});
  check_shape(who, "weight_hh", w.w_hh, {G * H, P});
  if (w.b_ih.defined()) check_shape(who, "bias_ih", w.b_ih, {G * H});
  if (w.b_hh.defined()) check_shape(who, "bias_hh", w.b_hh, {G * H});
  if (w.w_hr.defined()) {
    if (mode != RNNMode::LSTM) throw ValueError(std::string("tapegrad: ") + who + ": only an LSTM has a projection");
    check_shape(who, "weight_hr", w.w_hr, {P, H});
  }
  for (const Tensor* t : {&w.w_ih, &w.w_hh, &w.b_ih, &w.b_hh, &w.w_hr, &h0, &c0})
    if (t->defined() && t->dtype() != x.dtype())
      throw TypeError(std::string("tapegrad: ") + who + ": the input (" + dtype_name(x.dtype()) +
                      ") and the weights and states (" + dtype_name(t->dtype()) + ") must have one dtype");
  Tensor h = h0.defined() ? h0 : Tensor::zeros({N, P}, x.dtype());
  check_shape(who, "the hidden state", h, {N, P});
  Tensor c;
  if (mode == RNNMode::LSTM) {
    c = c0.defined() ? c0 : Tensor::zeros({N, H}, x.dtype());
    check_shape(who, "the cell state", c, {N, H});
  }
  // every step's input projection at once: (L, N, G H)
  const Tensor xw = linear(x, w.w_ih, w.b_ih);
  std::vector<Tensor> out(static_cast<std::size_t>(L));
  auto gate = [H](const Tensor& g, std::int64_t k) { return slice(g, 1, k * H, (k + 1) * H); };
  for (std::int64_t s = 0; s < L; ++s) {
    const std::int64_t t = reverse ? L - 1 - s : s;
    const Tensor xt = reshape(slice(xw, 0, t, t + 1), {N, G * H});
    const Tensor hw = linear(h, w.w_hh, w.b_hh);
    switch (mode) {
      case RNNMode::Tanh: h = tanh(hw + xt); break;
      case RNNMode::Relu: h = relu(hw + xt); break;
      case RNNMode::LSTM: {
        const Tensor gates = hw + xt;  // i, f, g, o
        const Tensor i = sigmoid(gate(gates, 0)), f = sigmoid(gate(gates, 1)), g = tanh(gate(gates, 2)),
                     o = sigmoid(gate(gates, 3));
        c = f * c + i * g;
        h = o * tanh(c);
        if (w.w_hr.defined()) h = matmul(h, transpose(w.w_hr));
        break;
      }
      case RNNMode::GRU: {  // r, z, n
        const Tensor r = sigmoid(gate(hw, 0) + gate(xt, 0)), z = sigmoid(gate(hw, 1) + gate(xt, 1));
        const Tensor n = tanh(gate(xt, 2) + gate(hw, 2) * r);
        h = (h - n) * z + n;
        break;
      }
    }
    out[static_cast<std::size_t>(t)] = h;
  }
  return {L == 0 ? Tensor::zeros({0, N, P}, x.dtype()) : stack(out, 0), h, c};
}

}  // namespace tapegrad

namespace tapegrad {

Tensor attention_weights(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& allowed,
                         double scale, bool causal) {
  const char* who = "scaled_dot_product_attention";
  for (const Tensor* t : {&q, &k, &v})
    if (t->ndim() < 2)
      throw ValueError(std::string("tapegrad: ") + who + ": query, key and value need at least 2 axes (..., L, E), got " +
                       shape_str(t->shape()));
  const std::int64_t L = q.shape()[static_cast<std::size_t>(q.ndim() - 2)], S = k.shape()[static_cast<std::size_t>(k.ndim() - 2)];
  if (q.shape().back() != k.shape().back() || S != v.shape()[static_cast<std::size_t>(v.ndim() - 2)])
    throw ValueError(std::string("tapegrad: ") + who + ": query " + shape_str(q.shape()) + ", key " + shape_str(k.shape()) +
                     " and value " + shape_str(v.shape()) + " do not fit: query and key need one E, key and value one S");
  if (allowed.defined() && allowed.dtype() != DType::Bool)
    throw TypeError(std::string("tapegrad: ") + who + ": the mask of allowed positions must be bool, not " +
                    dtype_name(allowed.dtype()));
  const double s = std::isnan(scale) ? 1.0 / std::sqrt(static_cast<double>(q.shape().back())) : scale;
  std::vector<int> swap(static_cast<std::size_t>(k.ndim()));
  for (std::size_t i = 0; i < swap.size(); ++i) swap[i] = static_cast<int>(i);
  std::swap(swap[swap.size() - 1], swap[swap.size() - 2]);
  Tensor scores = matmul(q, transpose(k, swap)) * s;
  if (mask.defined()) scores = scores + mask;
  Tensor ok = allowed;
  if (causal) {  // position j <= i
    if (mask.defined() || allowed.defined())
      throw ValueError(std::string("tapegrad: ") + who + ": give a mask or causal, not both (as PyTorch)");
    ok = Tensor::zeros({L, S}, DType::Bool);
    bool* p = ok.data<bool>();
    for (std::int64_t i = 0; i < L; ++i)
      for (std::int64_t j = 0; j <= std::min(i, S - 1); ++j) p[i * S + j] = true;
  }
  if (ok.defined()) scores = where(ok, scores, -std::numeric_limits<double>::infinity());
  Tensor w = softmax(scores, -1);
  if (ok.defined() || mask.defined()) {  // a query that may attend to nothing: zeros (PyTorch's), not NaN
    Tensor dead;
    {
      NoGrad ng;
      dead = equal(amax(scores, -1, true), detail::weak_scalar(-std::numeric_limits<double>::infinity(), scores.dtype()));
    }
    w = where(dead, 0.0, w);
  }
  return w;
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                    const Tensor& allowed, double scale, bool causal) {
  return matmul(attention_weights(q, k, v, mask, allowed, scale, causal), v);
}

}  // namespace tapegrad
