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
  ops.def("_adaptive_avg_pool", [](py::handle x, const Ints& out, const std::string& name) {
    return tensor_call({x}, [&](const Tensors& a) { return Tensors{tapegrad::adaptive_avg_pool(a[0], out, name)}; });
  });
}

}  // namespace tgpy
