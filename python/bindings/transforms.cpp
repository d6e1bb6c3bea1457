// tapegrad._core.transforms: the transformations on lists of tensors (tapegrad::transforms),
// for the Python module tapegrad.functional, which adds pytrees, argnums and has_aux.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <vector>

#include "core.hpp"
#include "tensor_conv.hpp"

namespace py = pybind11;
using tapegrad::Tensor;
namespace transforms = tapegrad::transforms;

namespace tgpy {
namespace {

// One transformation's extent as a context manager. The Python module opens a Python tape
// itself when the level need not record (so its results are Python-rooted tensors).
struct PyLevel {
  bool argument_requires_grad;
  std::unique_ptr<transforms::Level> level;
  unsigned long thread = 0;

  explicit PyLevel(bool a) : argument_requires_grad(a) {}
  PyLevel(const PyLevel&) = delete;
  PyLevel& operator=(const PyLevel&) = delete;
  ~PyLevel() {
    // A level is counted per thread: one dropped on another thread is not uncounted there.
    if (level && thread != PyThread_get_thread_ident()) (void)level.release();
  }
};

// Records on the outputs' tape (a recorded sweep adds its gradients there).
template <class F>
py::tuple on_tape_of(const std::vector<Tensor>& outs, F f) {
  std::optional<TapeUse> use;
  std::optional<tapegrad::ScopedTape> scope;
  on_outputs_tape(outs, use, scope);
  return tensor_tuple(f());
}

std::vector<Tensor> tensors(const py::sequence& seq, const char* what) {
  return sweep_tensors(seq, "functional", what);
}
}  // namespace

void register_transforms(py::module_& m) {
  py::module_ t = m.def_submodule("transforms", "The transformations on lists of tensors (tapegrad.functional's core)");

  py::class_<PyLevel>(t, "Level", "One transformation's extent: whether it must record its derivatives.")
      .def(py::init<bool>(), py::arg("argument_requires_grad"))
      .def("__enter__", [](py::object self) {
            PyLevel& l = self.cast<PyLevel&>();
            if (l.level) throw py::value_error("this Level is already entered");
            l.level = std::make_unique<transforms::Level>(l.argument_requires_grad, false);
            l.thread = PyThread_get_thread_ident();
            return self;
          })
      .def("__exit__", [](PyLevel& l, const py::args&) {
            if (!l.level) throw py::value_error("this Level is not entered");
            if (l.thread != PyThread_get_thread_ident()) throw py::value_error("this Level was entered on another thread");
            l.level.reset();
            return false;
          })
      .def_property_readonly("record", [](const PyLevel& l) {
            if (!l.level) throw py::value_error("this Level is not entered");
            return l.level->record();
          });

  t.def("variables", [](const py::sequence& xs) {
        return tensor_tuple(transforms::variables(tensors(xs, "arguments")));
      }, py::arg("xs"));
  t.def("result", [](const py::sequence& ts, bool record) {
        std::vector<Tensor> r;
        for (const Tensor& x : tensors(ts, "outputs")) r.push_back(transforms::result(x, record));
        return tensor_tuple(r);
      }, py::arg("ts"), py::arg("record"));
  t.def("vjp", [](const py::sequence& outputs, const py::sequence& vars, const std::optional<py::sequence>& cotangents,
                  bool record) {
        std::vector<Tensor> cts;
        if (cotangents) cts = sweep_seeds(*cotangents);  // (may run Python code: before the tape is held)
        const std::vector<Tensor> outs = tensors(outputs, "outputs"), xs = tensors(vars, "arguments");
        return on_tape_of(outs, [&] { return transforms::vjp(outs, xs, cts, record); });
      }, py::arg("outputs"), py::arg("vars"), py::arg("cotangents"), py::arg("record"));
  t.def("jvp", [](const py::sequence& outputs, const py::sequence& vars, const py::sequence& tangents, bool record,
                  bool batched) {
        const std::vector<Tensor> ts = sweep_seeds(tangents);
        const std::vector<Tensor> outs = tensors(outputs, "outputs"), xs = tensors(vars, "arguments");
        return on_tape_of(outs, [&] { return transforms::jvp(outs, xs, ts, record, batched); });
      }, py::arg("outputs"), py::arg("vars"), py::arg("tangents"), py::arg("record"), py::arg("batched") = false);
  t.def("jacobian", [](const py::sequence& outputs, const py::sequence& vars, bool forward, bool record) {
        const std::vector<Tensor> outs = tensors(outputs, "outputs"), xs = tensors(vars, "arguments");
        std::optional<TapeUse> use;
        std::optional<tapegrad::ScopedTape> scope;
        on_outputs_tape(outs, use, scope);
        py::list rows;
        for (const std::vector<Tensor>& row :
             transforms::jacobian(outs, xs, forward ? transforms::Mode::Forward : transforms::Mode::Reverse, record))
          rows.append(tensor_tuple(row));
        return rows;
      }, py::arg("outputs"), py::arg("vars"), py::arg("forward"), py::arg("record"));
  t.def("hvp", [](const py::sequence& outputs, const py::sequence& vars, const py::sequence& tangents, bool record) {
        const std::vector<Tensor> ts = sweep_seeds(tangents);
        const std::vector<Tensor> outs = tensors(outputs, "outputs"), xs = tensors(vars, "arguments");
        if (outs.size() != 1) throw py::value_error("hvp: one output");
        return on_tape_of(outs, [&] { return transforms::hvp(outs[0], xs, ts, record); });
      }, py::arg("outputs"), py::arg("vars"), py::arg("tangents"), py::arg("record"));
}

}  // namespace tgpy
