// The module tapegrad._core: it only registers the types and functions.
#include <pybind11/pybind11.h>

#include <string>

#include "core.hpp"

namespace py = pybind11;

namespace tgpy {
void register_tape(py::module_& m);
void register_tensor(py::module_& m);
void register_blas(py::module_& m);
void register_transforms(py::module_& m);
void register_optim(py::module_& m);
void register_custom(py::module_& m);
void register_index_ops(py::module_& ops);
void register_nn_ops(py::module_& ops);
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "tapegrad's compiled core (use the tapegrad package)";
  tgpy::register_tape(m);
  if (tgpy::register_var(m.ptr()) < 0) throw py::error_already_set();
  tgpy::register_tensor(m);
  {
    py::module_ ops = m.attr("tensor_ops");
    tgpy::register_index_ops(ops);
    tgpy::register_nn_ops(ops);
  }
  tgpy::register_blas(m);
  tgpy::register_transforms(m);
  tgpy::register_optim(m);
  tgpy::register_custom(m);

  // The op table, for tests and introspection: (name, arity, the values its rule reads as a
  // string of x, y, z, and the domain of each operand as (lo, hi)) for each primitive.
  py::list ops;
  tapegrad::for_each_rule([&](auto rule) {
    using R = decltype(rule);
    std::string reads;
    if (R::reads & tapegrad::reads::X) reads += 'x';
    if (R::reads & tapegrad::reads::Y) reads += 'y';
    if (R::reads & tapegrad::reads::Z) reads += 'z';
    py::list domain;
    for (const tapegrad::Interval& d : R::domain) domain.append(py::make_tuple(d.lo, d.hi));
    ops.append(py::make_tuple(R::name, R::arity, reads, py::tuple(domain)));
  });
  m.attr("op_table") = ops;
  m.attr("__version__") = tapegrad::version;
}
