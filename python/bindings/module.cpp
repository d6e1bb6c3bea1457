// The module tapegrad._core: it only registers the types and functions.
#include <pybind11/pybind11.h>

#include "core.hpp"

namespace py = pybind11;

namespace tgpy {
void register_tape(py::module_& m);
void register_tensor(py::module_& m);
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "tapegrad's compiled core (use the tapegrad package)";
  tgpy::register_tape(m);
  if (tgpy::register_var(m.ptr()) < 0) throw py::error_already_set();
  tgpy::register_tensor(m);

  // The op table, for tests and introspection: (name, arity) of each primitive.
  py::list ops;
#define TAPEGRAD_UNARY(Name, name, f, d) ops.append(py::make_tuple(#name, 1));
#define TAPEGRAD_BINARY(Name, name, f, dx, dy) ops.append(py::make_tuple(#name, 2));
#include "tapegrad/ops.def"
  m.attr("op_table") = ops;
  m.attr("__version__") = tapegrad::version;
}
