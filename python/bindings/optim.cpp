// tapegrad._core._optim: the optimizers' update rules (cpp/include/tapegrad/optim.hpp) for
// tapegrad.optim. Conversion only.
#include <pybind11/pybind11.h>
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <functional>
#include <vector>


#include "tensor_conv.hpp"

namespace py = pybind11;
using tapegrad::Tensor;

namespace tgpy {
namespace {
// A state tensor that may be absent (None).
Tensor optional_state(const py::object& o, const char* fn) {
  return o.is_none() ? Tensor() : tensor_arg(o, fn, "a state");
}
}  // namespace

void register_optim(py::module_& m) {
  py::module_ o = m.def_submodule("_optim", "The optimizers' update rules (tapegrad.optim calls them)");
  o.def("sgd", [](py::handle p, py::handle g, const py::object& buf, double lr, double momentum, double dampening,
                  double weight_decay, bool nesterov, bool maximize) -> py::object {
    Tensor b = optional_state(buf, "optim.SGD");
    const bool fresh = !b.defined();
    tapegrad::optim::sgd_step(tensor_arg(p, "optim.SGD", "a parameter"), tensor_arg(g, "optim.SGD", "a gradient"), b,
                              {lr, momentum, dampening, weight_decay, nesterov, maximize});
    if (!b.defined()) return py::none();
    return fresh ? tensor_object(b) : py::reinterpret_borrow<py::object>(buf);
  }, "One SGD step in place; returns the momentum buffer (created on the first step), or None.");
  o.def("adam", [](py::handle p, py::handle g, py::handle m1, py::handle m2, const py::object& vmax, std::int64_t step,
                   double lr, double beta1, double beta2, double eps, double weight_decay, bool amsgrad, bool maximize,
                   bool decoupled) {
    tapegrad::optim::adam_step(tensor_arg(p, "optim.Adam", "a parameter"), tensor_arg(g, "optim.Adam", "a gradient"),
                               tensor_arg(m1, "optim.Adam", "exp_avg"), tensor_arg(m2, "optim.Adam", "exp_avg_sq"),
                               optional_state(vmax, "optim.Adam"), step,
                               {lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled});
  }, "One Adam (or, with decoupled weight decay, AdamW) step in place.");
  o.def("rmsprop", [](py::handle p, py::handle g, py::handle sq, const py::object& buf, const py::object& gavg,
                      double lr, double alpha, double eps, double weight_decay, double momentum, bool centered,
                      bool maximize) {
    tapegrad::optim::rmsprop_step(tensor_arg(p, "optim.RMSprop", "a parameter"),
                                  tensor_arg(g, "optim.RMSprop", "a gradient"),
                                  tensor_arg(sq, "optim.RMSprop", "square_avg"), optional_state(buf, "optim.RMSprop"),
                                  optional_state(gavg, "optim.RMSprop"),
                                  {lr, alpha, eps, weight_decay, momentum, centered, maximize});
  }, "One RMSprop step in place.");
  o.def("adagrad", [](py::handle p, py::handle g, py::handle sum, std::int64_t step, double lr, double lr_decay,
                      double weight_decay, double eps, bool maximize) {
    tapegrad::optim::adagrad_step(tensor_arg(p, "optim.Adagrad", "a parameter"),
                                  tensor_arg(g, "optim.Adagrad", "a gradient"),
                                  tensor_arg(sum, "optim.Adagrad", "sum"), step,
                                  {lr, lr_decay, weight_decay, eps, maximize});
  }, "One Adagrad step in place.");
  o.def("adadelta", [](py::handle p, py::handle g, py::handle sq, py::handle acc, double lr, double rho, double eps,
                       double weight_decay, bool maximize) {
    tapegrad::optim::adadelta_step(tensor_arg(p, "optim.Adadelta", "a parameter"),
                                   tensor_arg(g, "optim.Adadelta", "a gradient"),
                                   tensor_arg(sq, "optim.Adadelta", "square_avg"),
                                   tensor_arg(acc, "optim.Adadelta", "acc_delta"), {lr, rho, eps, weight_decay, maximize});
  }, "One Adadelta step in place.");
  o.def("adamax", [](py::handle p, py::handle g, py::handle m1, py::handle inf, std::int64_t step, double lr,
                     double beta1, double beta2, double eps, double weight_decay, bool maximize) {
    tapegrad::optim::adamax_step(tensor_arg(p, "optim.Adamax", "a parameter"), tensor_arg(g, "optim.Adamax", "a gradient"),
                                 tensor_arg(m1, "optim.Adamax", "exp_avg"), tensor_arg(inf, "optim.Adamax", "exp_inf"),
                                 step, {lr, beta1, beta2, eps, weight_decay, maximize});
  }, "One Adamax step in place.");
  o.def("nadam", [](py::handle p, py::handle g, py::handle m1, py::handle m2, std::int64_t step, double mu_product,
                    double lr, double beta1, double beta2, double eps, double weight_decay, double momentum_decay,
                    bool decoupled, bool maximize) {
    tapegrad::optim::nadam_step(tensor_arg(p, "optim.NAdam", "a parameter"), tensor_arg(g, "optim.NAdam", "a gradient"),
                                tensor_arg(m1, "optim.NAdam", "exp_avg"), tensor_arg(m2, "optim.NAdam", "exp_avg_sq"),
                                step, mu_product,
                                {lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize});
  }, "One NAdam step in place, given the product of the momentum coefficients up to this step.");
  o.def("nadam_mu", &tapegrad::optim::nadam_mu, "NAdam's momentum coefficient at step t.");
  using tapegrad::optim::LBFGSState;
  auto tensors_out = [](const std::vector<Tensor>& v) {
    py::list l;
    for (const Tensor& t : v) l.append(tensor_object(t));
    return l;
  };
  auto tensors_in = [](const py::iterable& l, const char* what) {
    std::vector<Tensor> v;
    for (py::handle h : l) v.push_back(tensor_arg(h, "optim.LBFGS", what));
    return v;
  };
  auto maybe = [](const Tensor& t) { return t.defined() ? tensor_object(t) : py::object(py::none()); };
  py::class_<LBFGSState>(o, "LBFGSState", "LBFGS's memory between steps (tapegrad::optim::LBFGSState).")
      .def(py::init<>())
      .def_readwrite("func_evals", &LBFGSState::func_evals)
      .def_readwrite("n_iter", &LBFGSState::n_iter)
      .def_readwrite("t", &LBFGSState::t)
      .def_readwrite("H_diag", &LBFGSState::H_diag)
      .def_readwrite("prev_loss", &LBFGSState::prev_loss)
      .def_readwrite("ro", &LBFGSState::ro)
      .def_property("d", [maybe](const LBFGSState& s) { return maybe(s.d); },
                    [](LBFGSState& s, const py::object& v) { s.d = optional_state(v, "optim.LBFGS"); })
      .def_property("prev_flat_grad", [maybe](const LBFGSState& s) { return maybe(s.prev_flat_grad); },
                    [](LBFGSState& s, const py::object& v) { s.prev_flat_grad = optional_state(v, "optim.LBFGS"); })
      .def_property("old_dirs", [tensors_out](const LBFGSState& s) { return tensors_out(s.old_dirs); },
                    [tensors_in](LBFGSState& s, const py::iterable& v) { s.old_dirs = tensors_in(v, "old_dirs"); })
      .def_property("old_stps", [tensors_out](const LBFGSState& s) { return tensors_out(s.old_stps); },
                    [tensors_in](LBFGSState& s, const py::iterable& v) { s.old_stps = tensors_in(v, "old_stps"); });
  o.def("lbfgs", [tensors_in](const py::iterable& params, const py::object& closure, LBFGSState& state, double lr,
                              std::int64_t max_iter, std::int64_t max_eval, double tolerance_grad,
                              double tolerance_change, std::int64_t history_size, bool strong_wolfe) {
    const std::vector<Tensor> ps = tensors_in(params, "a parameter");
    const std::function<double()> f = [&closure] { return py::float_(closure()).cast<double>(); };
    return tapegrad::optim::lbfgs_step(ps, f, state,
                                       {lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size,
                                        strong_wolfe});
  }, "One LBFGS step: closure() re-evaluates the loss and the gradients; returns its first value.");
  o.def("radam", [](py::handle p, py::handle g, py::handle m1, py::handle m2, std::int64_t step, double lr,
                    double beta1, double beta2, double eps, double weight_decay, bool decoupled, bool maximize) {
    tapegrad::optim::radam_step(tensor_arg(p, "optim.RAdam", "a parameter"), tensor_arg(g, "optim.RAdam", "a gradient"),
                                tensor_arg(m1, "optim.RAdam", "exp_avg"), tensor_arg(m2, "optim.RAdam", "exp_avg_sq"),
                                step, {lr, beta1, beta2, eps, weight_decay, decoupled, maximize});
  }, "One RAdam step in place.");
}

}  // namespace tgpy
