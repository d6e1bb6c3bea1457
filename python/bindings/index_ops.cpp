// The scans, sorts and selections of cpp/src/ops/index.cpp as private functions of
// tensor_ops; tapegrad/_torch.py gives them PyTorch's signatures and checks the axes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "tensor_conv.hpp"

namespace py = pybind11;
using tapegrad::Tensor;
using Tensors = std::vector<Tensor>;

namespace tgpy {

namespace {
Tensors both(const tapegrad::ValuesIndices& r) { return {r.values, r.indices}; }
}  // namespace

void register_index_ops(py::module_& ops) {
  ops.def("_cumsum", [](py::handle x, int axis) {
    return tensor_call({x}, [&](const Tensors& a) { return Tensors{tapegrad::cumsum(a[0], axis)}; });
  });
  ops.def("_cumprod", [](py::handle x, int axis) {
    return tensor_call({x}, [&](const Tensors& a) { return Tensors{tapegrad::cumprod(a[0], axis)}; });
  });
  // The index of the largest (smallest) element, of all (axis None) or along an axis.
  ops.def("_arg_extreme", [](py::handle x, std::optional<int> axis, bool keepdims, bool largest) {
    return tensor_call({x}, [&](const Tensors& a) {
      if (!axis) {
        Tensor r = largest ? tapegrad::argmax(a[0]) : tapegrad::argmin(a[0]);
        return Tensors{keepdims ? tapegrad::reshape(r, tapegrad::Shape(a[0].shape().size(), 1)) : r};
      }
      return Tensors{largest ? tapegrad::argmax(a[0], *axis, keepdims) : tapegrad::argmin(a[0], *axis, keepdims)};
    });
  });
  // (values, indices) of the largest (smallest) element along an axis.
  ops.def("_extreme_along", [](py::handle x, int axis, bool keepdims, bool largest) {
    return tensor_call({x}, [&](const Tensors& a) {
      return both(largest ? tapegrad::max_along(a[0], axis, keepdims) : tapegrad::min_along(a[0], axis, keepdims));
    });
  });
  ops.def("_sort", [](py::handle x, int axis, bool descending) {
    return tensor_call({x}, [&](const Tensors& a) { return both(tapegrad::sort(a[0], axis, descending)); });
  });
  ops.def("_topk", [](py::handle x, std::int64_t k, int axis, bool largest) {
    return tensor_call({x}, [&](const Tensors& a) { return both(tapegrad::topk(a[0], k, axis, largest)); });
  });
  ops.def("_gather", [](py::handle x, int axis, py::handle index) {
    return tensor_call({x, index}, [&](const Tensors& a) { return Tensors{tapegrad::gather(a[0], axis, a[1])}; });
  });
  ops.def("_scatter_add", [](py::handle x, int axis, py::handle index, py::handle src) {
    return tensor_call({x, index, src},
                       [&](const Tensors& a) { return Tensors{tapegrad::scatter_add(a[0], axis, a[1], a[2])}; });
  });
  // The vector ord-norm over `axes` (None: every element).
  ops.def("_vector_norm", [](py::handle x, double ord, std::optional<std::vector<int>> axes, bool keepdims) {
    const tapegrad::Axes ax = axes ? tapegrad::Axes(*axes) : tapegrad::Axes();
    return tensor_call({x}, [&](const Tensors& a) { return Tensors{tapegrad::norm(a[0], ord, ax, keepdims)}; });
  });
}

}  // namespace tgpy
