// tapegrad._core's side of user code inside the sweeps: tensor hooks, custom functions
// (tapegrad.autograd.Function) and checkpointed segments (tapegrad.utils.checkpoint). Python
// callables become the core's hooks, CustomRule and segment functions; the semantics are the
// core's (tapegrad/custom.hpp, Tensor::register_hook).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core.hpp"
#include "tapegrad/sweep.hpp"
#include "tensor_conv.hpp"

namespace py = pybind11;
using tapegrad::Tape;
using tapegrad::Tensor;

namespace tgpy {
namespace {

// A Python object kept by the core (in a hook, a rule, a segment): released with the GIL
// held, wherever the core drops it.
class Held {
 public:
  explicit Held(py::object o) : o_(std::make_shared<py::object>(std::move(o))) {}
  Held(const Held&) = default;
  Held& operator=(const Held&) = default;
  ~Held() {
    if (o_.use_count() == 1 && Py_IsInitialized()) {
      py::gil_scoped_acquire gil;
      o_.reset();
    } else if (o_.use_count() == 1) {
      (void)new std::shared_ptr<py::object>(std::move(o_));  // the interpreter is gone: leak it
    }
  }
  const py::object& get() const { return *o_; }

 private:
  std::shared_ptr<py::object> o_;
};

// A Python Tensor for t (a recorded result becomes a root of its tape).
py::object to_python(const Tensor& t) {
  if (!t.defined()) return py::none();
  return py::object(tensor_tuple({t})[0]);
}

// Tensors or None from a callable's result: a sequence of them, or one.
std::vector<Tensor> tensors_or_none(const py::object& r, const std::string& what) {
  std::vector<Tensor> out;
  auto one = [&](py::handle h, std::size_t k) {
    if (h.is_none()) {
      out.emplace_back();
      return;
    }
    try {
      out.push_back(tensor_arg(h, "autograd", "x"));
    } catch (py::type_error&) {
      throw py::type_error("tapegrad: " + what + " returned " + std::string(Py_TYPE(h.ptr())->tp_name) + " at position " +
                           std::to_string(k) + " (expected a Tensor or None)");
    }
  };
  if (py::isinstance<py::tuple>(r) || py::isinstance<py::list>(r)) {
    std::size_t k = 0;
    for (py::handle h : r) one(h, k++);
  } else {
    one(r, 0);
  }
  return out;
}

// A fresh Python tape for a segment (pinned: it is never cleared behind the core's back).
std::shared_ptr<Tape> segment_tape() {
  auto holder = std::make_unique<PyTape>();
  PyTape* p = holder.get();
  p->pinned = true;
  Held obj(py::cast(std::move(holder)));
  return std::shared_ptr<Tape>(&p->tape, [obj](Tape*) {});
}

// The tape the inputs' graph is on (a result's), else Python's active tape; held for this
// thread while the core runs (its kernels may release the GIL).
struct OnGraphTape {
  std::optional<TapeUse> use;
  std::optional<tapegrad::ScopedTape> scope;
  py::object keep;
  explicit OnGraphTape(const std::vector<Tensor>& inputs) {
    on_outputs_tape(inputs, use, scope);
    if (scope) return;
    ActiveTape t = active_tape();
    if (!t.obj) throw py::error_already_set();
    keep = py::reinterpret_borrow<py::object>(t.obj);
    use.emplace(t.tape);
    scope.emplace(t.tape->tape);
  }
};

class PyRule final : public tapegrad::CustomRule {
 public:
  PyRule(std::string name, py::object backward, py::object jvp, bool materialize)
      : name_(std::move(name)), backward_(std::move(backward)), jvp_(std::move(jvp)), materialize_(materialize) {}
  std::string name() const override { return name_; }
  bool materialize_grads() const override { return materialize_; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    py::gil_scoped_acquire gil;
    py::tuple args = tensor_tuple(g);
    py::object r;
    {
      UserCode user;
      r = backward_.get()(*args);
    }
    return tensors_or_none(r, "function " + name_ + ".backward");
  }
  bool has_jvp() const override { return !jvp_.get().is_none(); }
  std::vector<Tensor> jvp(const std::vector<Tensor>& t) override {
    if (!has_jvp()) return CustomRule::jvp(t);
    py::gil_scoped_acquire gil;
    py::tuple args = tensor_tuple(t);
    py::object r;
    {
      UserCode user;
      r = jvp_.get()(*args);
    }
    return tensors_or_none(r, "function " + name_ + ".jvp");
  }

 private:
  std::string name_;
  Held backward_, jvp_;
  bool materialize_;
};

}  // namespace

void register_custom(py::module_& m) {
  m.def(
      "_tensor_register_hook",
      [](py::handle self, py::object fn, bool post) -> std::uint64_t {
        Tensor t = tensor_arg(self, "Tensor", "self");
        if (!PyCallable_Check(fn.ptr()))
          throw py::type_error(std::string("tapegrad: the hook must be callable, not ") + Py_TYPE(fn.ptr())->tp_name);
        Held f(std::move(fn));
        if (post)
          return t.register_post_accumulate_grad_hook([f](const Tensor& leaf) {
            py::gil_scoped_acquire gil;
            py::object arg = tensor_object(leaf);
            UserCode user;
            f.get()(arg);
          });
        return t.register_hook([f](const Tensor& g) -> Tensor {
          py::gil_scoped_acquire gil;
          py::object arg = to_python(g), r;
          {
            UserCode user;
            r = f.get()(arg);
          }
          if (r.is_none()) return Tensor();
          try {
            return tensor_arg(r, "Tensor", "x");
          } catch (py::type_error&) {
            throw py::type_error(std::string("tapegrad: a tensor hook must return a Tensor or None, not ") +
                                 Py_TYPE(r.ptr())->tp_name);
          }
        });
      },
      py::arg("tensor"), py::arg("fn"), py::arg("post") = false,
      "Registers fn as a gradient hook (post=False) or a post-accumulate-grad hook of the tensor; its id.");
  m.def(
      "_tensor_remove_hook",
      [](py::handle self, std::uint64_t id) { return tensor_arg(self, "Tensor", "self").remove_hook(id); },
      py::arg("tensor"), py::arg("id"));

  m.def(
      "_custom_apply",
      [](std::string name, py::object backward, py::object jvp, py::sequence inputs, py::sequence outputs,
         std::vector<bool> differentiable, py::sequence saved, bool materialize_grads) {
        std::vector<Tensor> in = sweep_tensors(inputs, "autograd.Function", "inputs");
        std::vector<Tensor> out = sweep_tensors(outputs, "autograd.Function", "outputs of forward");
        std::vector<Tensor> sv = sweep_tensors(saved, "autograd.Function", "saved tensors");
        auto rule = std::make_shared<PyRule>(std::move(name), std::move(backward), std::move(jvp), materialize_grads);
        OnGraphTape on(in);
        const std::vector<Tensor> rec = tapegrad::record_custom(rule, in, out, differentiable, sv);
        // An output forward made (not an input passed through) stays the same Python object: it
        // becomes the recorded result, a root of its tape as every result is.
        py::list r;
        for (std::size_t j = 0; j < rec.size(); ++j) {
          py::handle h = outputs[j];
          r.append(rec[j].same(out[j]) && adopt_result(h) ? py::reinterpret_borrow<py::object>(h) : to_python(rec[j]));
        }
        return py::tuple(r);
      },
      py::arg("name"), py::arg("backward"), py::arg("jvp"), py::arg("inputs"), py::arg("outputs"),
      py::arg("differentiable"), py::arg("saved"), py::arg("materialize_grads") = true,
      "Records a custom function's outputs (tapegrad.autograd.Function.apply's core).");

  m.def(
      "_forward_at",
      [](const py::list& outputs, const py::list& leaves, const py::list& values, bool record) {
        if (leaves.size() != values.size())
          throw py::value_error("tapegrad._forward_at: " + std::to_string(leaves.size()) + " leaves and " +
                                std::to_string(values.size()) + " values");
        const std::size_t n_out = outputs.size(), n_leaf = leaves.size();
        if (n_out == 0) throw py::value_error("tapegrad._forward_at: no outputs");
        std::vector<py::handle> operands;
        for (py::handle h : outputs) operands.push_back(h);
        for (py::handle h : leaves) operands.push_back(h);
        for (py::handle h : values) operands.push_back(h);
        return tensor_call(operands, [&](const std::vector<Tensor>& a) {
          Tape* tape = nullptr;
          for (std::size_t k = 0; k < n_out; ++k) {
            const tapegrad::TensorImpl& i = a[k].impl();
            if (!i.requires_grad || i.released)
              throw py::value_error("tapegrad._forward_at: output " + std::to_string(k) +
                                    " is neither a recorded result nor a leaf (a constant, or a released result)");
            if (i.leaf) continue;  // (a leaf among the outputs is its new value, or itself)
            if (!tapegrad::detail::is_current(i.tape, i.gen))
              throw tapegrad::Error("tapegrad: output " + std::to_string(k) + " is stale: its tape was cleared after it was recorded");
            if (tape && tape != i.tape) throw py::value_error("tapegrad._forward_at: the outputs were recorded on different tapes");
            tape = i.tape;
          }
          for (std::size_t j = 0; j < n_leaf; ++j)
            if (!a[n_out + j].impl().leaf || !a[n_out + j].requires_grad())
              throw py::value_error("tapegrad._forward_at: leaf " + std::to_string(j) + " is not a leaf that requires grad");
          tapegrad::ForwardSweep fw(tape ? *tape : tapegrad::Tape::active(), record);
          for (std::size_t j = 0; j < n_leaf; ++j) fw.set(a[n_out + j], a[n_out + n_leaf + j]);
          const std::vector<Tensor> outs(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n_out));
          fw.run(outs);
          std::vector<Tensor> r;
          for (const Tensor& y : outs) r.push_back(fw.tensor(y));
          return r;
        });
      },
      py::arg("outputs"), py::arg("leaves"), py::arg("values"), py::arg("record") = false,
      "Runs the records that lead to `outputs` (recorded results of one tape) again with the leaves' new values "
      "(the forward sweep at new inputs, replay's engine; the tape must keep its constants, Tape.keep_constants): "
      "the outputs' new values, recorded (differentiable) with record=True.");

  m.def(
      "_op_table",
      [] {
        py::list r;
        for (const char* n : tapegrad::detail::tensor_op_names()) r.append(n);
        return r;
      },
      "The names of the entries of the table of tensor ops (cpp/src/ops/table.hpp), in op id order.");

  m.def(
      "_graph",
      [](py::handle y, bool grads) {
        Tape* tape = nullptr;
        std::uint32_t from = Tape::kNone;
        std::optional<TapeUse> use;
        std::optional<tapegrad::ScopedTape> scope;
        if (is_var_object(y.ptr())) {
          ActiveTape t = var_tape(y.ptr());
          if (!t.tape) throw py::value_error("tapegrad.viz: this Var is a leaf (or needs no gradient): it has no graph");
          from = var_record_on(y.ptr(), t);
          use.emplace(t.tape);
          scope.emplace(t.tape->tape);
          tape = &t.tape->tape;
        } else {
          Tensor t = tensor_arg(y, "viz.draw", "y");
          const tapegrad::TensorImpl& i = t.impl();
          if (i.released)
            throw py::value_error(
                "tapegrad.viz: this tensor's graph was released by backward(); draw it before backward(), or call "
                "backward(retain_graph=True)");
          if (i.leaf || !i.requires_grad)
            throw py::value_error("tapegrad.viz: this Tensor is a leaf (or needs no gradient): it has no graph");
          if (!tapegrad::detail::is_current(i.tape, i.gen))
            throw tapegrad::Error("tapegrad: this Tensor is stale: its tape was cleared after it was recorded");
          on_outputs_tape({t}, use, scope);
          tape = i.tape;
          from = i.rec;
        }
        const std::vector<tapegrad::detail::GraphRecord> recs = tapegrad::detail::graph_of(*tape, from, grads);
        py::list out;
        for (const auto& g : recs) {
          py::dict d;
          d["id"] = g.rec;
          d["name"] = g.name;
          d["op"] = g.op;
          d["entry"] = g.entry ? py::object(py::str(g.entry)) : py::object(py::none());
          d["leaf"] = g.leaf;
          d["inputs"] = g.inputs;
          d["constants"] = g.constants;
          d["constant_left"] = g.constant_left;
          // (a tensor record whose value nothing holds any more: None, with its shape and dtype)
          d["value"] = g.tensor ? tensor_object(Tensor(g.tensor).detach())
                                : g.tensor_record ? py::none() : py::object(py::float_(g.value));
          d["kept"] = g.kept;
          if (g.tensor_record) {
            d["shape"] = py::tuple(py::cast(g.shape));
            d["dtype"] = tapegrad::dtype_name(g.dtype);
          }
          py::object grad = py::none();
          if (g.has_grad) grad = g.grad.defined() ? tensor_object(g.grad.detach()) : py::object(py::float_(g.adjoint));
          d["grad"] = grad;
          py::object leaf_obj = py::none(), leaf_grad = py::none();
          if (g.leaf && g.sink != Tape::kNone)
            if (double* target = tape->sink_target(g.sink)) {
              leaf_obj = py::reinterpret_borrow<py::object>(var_of_sink(target));
              leaf_grad = py::float_(*target);
            }
          if (g.leaf && g.tensor && g.tensor->grad) leaf_grad = tensor_object(Tensor(g.tensor->grad).detach());
          d["leaf_object"] = leaf_obj;
          d["leaf_grad"] = leaf_grad;
          out.append(d);
        }
        return out;
      },
      py::arg("y"), py::arg("grads") = true,
      "The records of y's graph, in record order, as dicts (tapegrad.viz's core): id, name, op, leaf, inputs, "
      "constants, constant_left, value (a float or a Tensor), grad (d y / d record, summed for a tensor y; None "
      "where the sweep did not reach), leaf_object (a Var leaf), leaf_grad (a leaf's .grad).");

  m.def(
      "_unrooted",
      [](py::handle t) { return tensor_object(tensor_arg(t, "autograd.Function", "a saved tensor")); },
      py::arg("tensor"),
      "The same tensor in a handle that is no root of its tape (what a custom function's ctx keeps: a root "
      "there would keep the function's own record alive through the ctx, a cycle Python's gc cannot see).");

  m.def(
      "_checkpoint",
      [](py::object fn, py::sequence inputs) {
        std::vector<Tensor> in = sweep_tensors(inputs, "utils.checkpoint", "inputs");
        Held f(std::move(fn));
        tapegrad::TensorSegment seg = [f](const std::vector<Tensor>& xs) {
          py::gil_scoped_acquire gil;
          ActiveAsCore active;
          py::list args;
          for (const Tensor& x : xs) args.append(to_python(x));
          // (the graph's tape is let go while the function runs, as for a hook: a thread the
          // function starts and joins may record on it, and its records lie among the
          // recomputation's, where the segment's nested sweep finds them)
          py::object r;
          {
            UserCode user;
            r = f.get()(args);
          }
          return tensors_or_none(r, "checkpoint's function");
        };
        tapegrad::CheckpointOptions options;
        options.new_tape = segment_tape;
        OnGraphTape on(in);
        return tensor_tuple(tapegrad::checkpoint(seg, in, options));
      },
      py::arg("fn"), py::arg("inputs"),
      "Runs fn(list of tensors) -> list of tensors as a checkpointed segment (tapegrad.utils.checkpoint's core).");
}

}  // namespace tgpy
