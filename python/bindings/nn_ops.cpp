// Convolution and pooling (cpp/src/ops/conv.cpp) as private functions of tensor_ops;
// tapegrad/nn/functional.py gives them PyTorch's signatures (conv2d, max_pool2d, ...).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "tensor_conv.hpp"

namespace py = pybind11;
using tapegrad::Tensor;
using Tensors = std::vector<Tensor>;
using Ints = std::vector<std::int64_t>;

namespace tgpy {

namespace {
/// The operands of an op with an optional last one (a bias): None is left out.
std::vector<py::handle> operands(py::handle x, py::handle w, py::handle b) {
  if (b.is_none()) return {x, w};
  return {x, w, b};
}
Tensor bias_of(const Tensors& a) { return a.size() > 2 ? a[2] : Tensor(); }
}  // namespace

void register_nn_ops(py::module_& ops) {
  ops.def("_pad", [](py::handle x, const Ints& before, const Ints& after) {
    return tensor_call({x}, [&](const Tensors& a) { return Tensors{tapegrad::pad(a[0], before, after)}; });
  });
  ops.def("_conv", [](py::handle x, py::handle w, py::handle b, const Ints& stride, const Ints& padding,
                      const Ints& dilation, std::int64_t groups, const std::string& name) {
    const tapegrad::ConvOptions o{stride, padding, dilation, groups, name};
    return tensor_call(operands(x, w, b),
                       [&](const Tensors& a) { return Tensors{tapegrad::conv(a[0], a[1], bias_of(a), o)}; });
  });
  ops.def("_conv_transpose", [](py::handle x, py::handle w, py::handle b, const Ints& stride, const Ints& padding,
                                const Ints& output_padding, std::int64_t groups, const Ints& dilation,
                                const std::string& name) {
    const tapegrad::ConvOptions o{stride, padding, dilation, groups, name};
    return tensor_call(operands(x, w, b), [&](const Tensors& a) {
      return Tensors{tapegrad::conv_transpose(a[0], a[1], bias_of(a), o, output_padding)};
    });
  });
  ops.def("_max_pool", [](py::handle x, const Ints& kernel, const Ints& stride, const Ints& padding,
                          const Ints& dilation, bool ceil_mode, const std::string& name) {
    const tapegrad::PoolOptions o{kernel, stride, padding, dilation, ceil_mode, name};
    return tensor_call({x}, [&](const Tensors& a) {
      const tapegrad::ValuesIndices r = tapegrad::max_pool(a[0], o);
      return Tensors{r.values, r.indices};
    });
  });
  ops.def("_avg_pool", [](py::handle x, const Ints& kernel, const Ints& stride, const Ints& padding, bool ceil_mode,
                          bool count_include_pad, std::int64_t divisor_override, const std::string& name) {
    const tapegrad::PoolOptions o{kernel, stride, padding, Ints(kernel.size(), 1), ceil_mode, name};
    return tensor_call({x}, [&](const Tensors& a) {
      return Tensors{tapegrad::avg_pool(a[0], o, count_include_pad, divisor_override)};
    });
  });
  // One recurrent layer: (output, h, c or None); None for an absent state, bias or projection.
  ops.def("_rnn_layer", [](const std::string& mode, py::handle x, py::handle h0, py::handle c0, py::handle w_ih,
                           py::handle w_hh, py::handle b_ih, py::handle b_hh, py::handle w_hr, bool reverse) {
    const tapegrad::RNNMode m = mode == "LSTM" ? tapegrad::RNNMode::LSTM
                                : mode == "GRU" ? tapegrad::RNNMode::GRU
                                : mode == "RNN_RELU" ? tapegrad::RNNMode::Relu
                                : mode == "RNN_TANH" ? tapegrad::RNNMode::Tanh
                                : throw py::value_error("tapegrad: _rnn_layer: mode must be LSTM, GRU, RNN_TANH or RNN_RELU");
    const py::handle all[] = {x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr};
    std::vector<py::handle> given;
    for (py::handle h : all)
      if (!h.is_none()) given.push_back(h);
    py::object r = tensor_call(given, [&](const Tensors& a) {
      Tensor t[8];
      std::size_t k = 0;
      for (std::size_t i = 0; i < 8; ++i)
        if (!all[i].is_none()) t[i] = a[k++];
      const tapegrad::RNNLayerOutput o = tapegrad::rnn_layer(m, t[0], t[1], t[2], {t[3], t[4], t[5], t[6], t[7]}, reverse);
      return o.c.defined() ? Tensors{o.output, o.h, o.c} : Tensors{o.output, o.h};
    });
    py::tuple t = r.cast<py::tuple>();
    return py::make_tuple(t[0], t[1], t.size() > 2 ? py::object(t[2]) : py::object(py::none()));
  });
  // Attention weights: mask (float, added) and allowed (bool) may be None; a NaN scale means 1/sqrt(E).
  ops.def("_attention_weights", [](py::handle q, py::handle k, py::handle v, py::handle mask, py::handle allowed, double scale,
                      bool causal) {
    std::vector<py::handle> given{q, k, v};
    if (!mask.is_none()) given.push_back(mask);
    if (!allowed.is_none()) given.push_back(allowed);
    return tensor_call(given, [&](const Tensors& a) {
      const Tensor m = mask.is_none() ? Tensor() : a[3];
      const Tensor ok = allowed.is_none() ? Tensor() : a[mask.is_none() ? 3 : 4];
      return Tensors{tapegrad::attention_weights(a[0], a[1], a[2], m, ok, scale, causal)};
    });
  });
  ops.def("_adaptive_avg_pool", [](py::handle x, const Ints& out, const std::string& name) {
    return tensor_call({x}, [&](const Tensors& a) { return Tensors{tapegrad::adaptive_avg_pool(a[0], out, name)}; });
  });
}

}  // namespace tgpy
