// The Python Tensor type's internals, shared by its two files: tensor_type.cpp (conversion
// between Python objects and tapegrad::Tensor, argument parsing, grad_fn) and
// tensor_methods.cpp (the methods and functions registered on the module). Conversion only:
// semantics live in cpp/src/.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core.hpp"
#include "tensor_conv.hpp"

namespace tgpy {

namespace py = pybind11;
using tapegrad::Axes;
using tapegrad::DType;
using tapegrad::Shape;
using tapegrad::Tape;
using tapegrad::Tensor;

// A Python Tensor: the C++ handle, plus a root on its tape when it is a recorded result (so
// that collect() keeps its graph and the tape is not cleared while it lives).
struct PyTensor {
  Tensor t;
  PyObject* tape_obj = nullptr;  // strong reference while rooted
  PyTape* tape = nullptr;
  std::uint32_t root = Tape::kNone;
  std::uint32_t epoch = 0;

  explicit PyTensor(Tensor x) : t(std::move(x)) {}
  PyTensor(const PyTensor&) = delete;
  PyTensor& operator=(const PyTensor&) = delete;
  ~PyTensor() {
    release();
    Py_XDECREF(tape_obj);
  }
  bool live_root() const { return tape && root != Tape::kNone && epoch == tape->tape.epoch(); }
  // The record may have moved (collect()): refresh the handle from the root.
  const Tensor& sync() {
    enter(tape);
    if (live_root() && !t.impl().released) {
      tapegrad::TensorImpl& i = t.impl();
      i.rec = tape->tape.root_record(root);
      i.gen = tape->tape.generation();
    }
    return t;
  }
  void release() {
    enter(tape);
    if (live_root()) {
      Tape& tp = tape->tape;
      tp.remove_root(root);
      if (tp.live_nonleaf_roots() == 0 && tape->may_clear()) {
        tp.clear();
      }
    }
    root = Tape::kNone;
  }
};

extern py::handle g_tensor_type;  // the Python type of PyTensor
extern py::handle g_np_array;     // numpy.array
extern py::handle g_np_generic;   // numpy.generic (NumPy scalars)
extern py::handle g_real;         // numbers.Real
/// The floating dtype of factories without dtype= and of Python floats (PyTorch's default
/// dtype; tapegrad's is float64: see set_default_dtype in tapegrad/_tensor.py).
extern DType g_default_float;

/// A Python Tensor for t; a recorded result (a create_graph gradient) becomes a root of its
/// tape, as every result does.
py::object wrap_tensor(Tensor t);

// --- dtypes (tensor_type.cpp) ---------------------------------------------------------------
py::dtype numpy_dtype(DType d);
/// A tensor's .dtype: NumPy's dtype, or tapegrad.bfloat16's marker without ml_dtypes.
py::object dtype_object(DType d);
/// The tensor dtype for a NumPy dtype. `asked`: the user named it (dtype=, astype), and a
/// dtype tapegrad does not have is a TypeError; inferred from an array, other integers widen
/// to int64 (and long double narrows to float64). Complex and object arrays are refused.
DType tensor_dtype(const py::dtype& dt, bool asked = false);
/// A dtype= argument: None, a NumPy dtype or anything numpy.dtype() takes, or bfloat16 as
/// tapegrad.bfloat16 or 'bfloat16' (with or without ml_dtypes).
std::optional<DType> dtype_arg(const py::object& o);
DType dtype_or_default(const py::object& o);

// --- conversion -------------------------------------------------------------------------------
/// Wraps a C-contiguous, writeable ndarray of a tensor dtype without copying; anything else is
/// converted (copied) first. `copy` forces a copy.
Tensor tensor_from_array(py::handle obj, std::optional<DType> want, bool copy);
/// The strides, in bytes, of t's C-contiguous layout (NumPy's and the buffer protocol's).
std::vector<py::ssize_t> byte_strides(const Tensor& t);
/// numpy.ndarray viewing t's memory; it keeps the memory (not the graph) alive.
py::array to_numpy(const Tensor& t);
/// The single element of t as a Python number: an int64 exactly (not through a double).
py::object item_object(const Tensor& t);
bool is_number(py::handle o);
/// A Python number as a double; OverflowError naming it when it does not fit (10**400).
double number_value(py::handle o);

// --- arguments --------------------------------------------------------------------------------
/// The dtype numbers take against operands a and b: the first tensor's, else float64.
DType like_of(py::handle a, py::handle b);
/// An int (anything with __index__, bool excluded), or a TypeError naming `what`.
std::int64_t index_arg(py::handle o, const char* what);
/// One int or a sequence of them (not a string), or a TypeError naming `what`.
std::vector<std::int64_t> ints_arg(py::handle o, const char* what);
/// One axis (an int; anything with __index__).
int one_axis(const py::object& axis);
std::vector<int> axis_ints(const std::vector<std::int64_t>& v);
/// None (every axis), one axis or a sequence of them.
Axes axes_arg(const py::object& axis);
/// NumPy's axis= or PyTorch's dim= (not both).
py::object axis_or_dim(const py::object& axis, const py::object& dim);
/// The axes of a reduction given as its first positional argument, axis= or dim=.
Axes reduce_axes(const char* name, const py::object& first, const py::object& axis, const py::object& dim);
/// NumPy's keepdims= or PyTorch's keepdim=.
bool keep_arg(const py::object& keepdims, const py::object& keepdim);
/// A shape given as one sequence or as several ints.
Shape shape_arg(const py::args& args);
Shape shape_of(const py::object& o);
std::vector<int> axes_list(const py::args& args);
/// A reduction's NumPy arguments: out= must be None (results are new tensors); dtype= the
/// dtype to reduce in.
std::optional<DType> reduction_options(const char* name, const py::object& dtype, const py::object& out);

// --- backward, in-place, grad_fn ------------------------------------------------------------
py::object do_backward(PyTensor& self, const py::object& gradient, const py::object& retain_graph, bool create_graph);
/// NumPy's kind of an operand, as a rank: 0 bool, 1 integer, 2 floating.
int operand_kind(py::handle o);
/// Values of kind `k` stored into `target` (in place, or by .data =): refused where NumPy's
/// same_kind casting refuses (floats into an integer or bool tensor, integers into a bool one).
void check_same_kind(int k, const Tensor& target, const std::string& what);
/// Whether == may compare with o elementwise (a tensor, Var, number, array or sequence).
bool comparable(py::handle o);
/// An in-place change of p (`name` for the errors), refused where PyTorch refuses it.
void check_inplace(const PyTensor& p, const std::string& name);
/// tensor.grad_fn (None for a leaf), and the GraphNode type's registration.
py::object grad_fn_of(PyTensor& p);
void register_grad_fn(py::module_& m);

inline PyTensor* as_pytensor(py::handle o) {
  if (!py::isinstance(o, g_tensor_type)) return nullptr;
  return &o.cast<PyTensor&>();
}

// One op from Python: picks the tape (that of a recorded operand, else the active one),
// converts the operands, and wraps the result (a root of its tape when recorded).
class Call {
 public:
  explicit Call(std::initializer_list<py::handle> operands) {
    for (py::handle o : operands) note(o);
    begin();
  }
  explicit Call(const std::vector<py::handle>& operands) {
    for (py::handle o : operands) note(o);
    begin();
  }

  // A tensor operand; numbers become 0-d tensors of dtype `like` (weak scalars). Converting
  // one may run any Python code (__array__, __float__): the tape is held meanwhile, and the
  // op validates every operand's record again when it records.
  Tensor arg(py::handle o, DType like = DType::Float64) {
    if (PyTensor* p = as_pytensor(o)) return p->sync();
    if (is_var_object(o.ptr())) {
      enter(tape_.tape);
      const std::uint32_t rec = var_record_on(o.ptr(), tape_);
      Tensor t = tapegrad::detail::scalar_record_tensor(&tape_.tape->tape, rec, var_value(o.ptr()));
      return tapegrad::is_floating(like) ? tapegrad::astype(t, like) : t;
    }
    // Python numbers are weak (they take the tensor's dtype); NumPy scalars keep their own
    // dtype, as NumPy 2 does (NEP 50).
    if (PyFloat_CheckExact(o.ptr()) || PyLong_Check(o.ptr()) ||
        (!PyObject_IsInstance(o.ptr(), g_np_generic.ptr()) && !py::isinstance<py::array>(o) && is_number(o))) {
      const double v = number_value(o);
      const DType d = (PyLong_Check(o.ptr()) && !tapegrad::is_floating(like) && !PyBool_Check(o.ptr()))
                          ? DType::Float64
                          : (tapegrad::is_floating(like) ? like : DType::Float64);
      return Tensor::full({}, v, d);
    }
    return tensor_from_array(o, std::nullopt, false);
  }

  // The op itself, once its operands are converted: the tape is this thread's while it runs
  // (its kernels may release the GIL), and its result is wrapped.
  template <class F>
  py::object run(F f) {
    TapeUse use(tape_.tape);
    return wrap(f());
  }
  /// The same for an op of several results: a tuple of them.
  py::object run_all(const std::function<std::vector<Tensor>()>& f) {
    std::vector<Tensor> rs;
    {
      TapeUse use(tape_.tape);
      rs = f();
    }
    py::list r;
    for (Tensor& t : rs) r.append(wrap(std::move(t)));
    return rs.size() == 1 ? py::object(r[0]) : py::object(py::tuple(r));
  }

 private:
  py::object wrap(Tensor r) {
    auto holder = std::make_unique<PyTensor>(std::move(r));
    PyTensor& p = *holder;
    const tapegrad::TensorImpl& i = p.t.impl();
    // (an op may return an operand itself, astype to its own dtype: a result of this tape
    // only if its generation is the tape's, not a stale one of an earlier use)
    if (i.requires_grad && !i.leaf && i.tape == &tape_.tape->tape && i.gen == i.tape->generation()) {
      PyTape* pt = tape_.tape;
      p.root = pt->tape.add_root(i.rec, nullptr, false);
      p.epoch = pt->tape.epoch();
      p.tape = pt;
      Py_INCREF(tape_.obj);
      p.tape_obj = tape_.obj;
      pt->maybe_collect();
      p.sync();
    }
    return py::cast(std::move(holder));
  }

  void note(py::handle o) {
    ActiveTape t{nullptr, nullptr};
    if (PyTensor* p = as_pytensor(o)) {
      // (a result whose graph backward() released is an operand like a leaf: the core records it
      // as a node that refuses gradients)
      if (p->t.requires_grad() && !p->t.is_leaf() && !p->t.impl().released) {
        const tapegrad::TensorImpl& i = p->t.impl();
        if (p->live_root()) {
          t = {p->tape_obj, p->tape};
        } else if (tapegrad::detail::is_current(i.tape, i.gen)) {
          // a handle that is no root (a custom function's saved tensor): its graph is alive
          PyTape* pt = reinterpret_cast<PyTape*>(i.tape);  // every tape Python sees is a PyTape
          keep_.push_back(py::cast(pt, py::return_value_policy::reference));
          t = {keep_.back().ptr(), pt};
        } else {
          throw tapegrad::Error(
              "tapegrad: this Tensor is stale: its tape was cleared after it was recorded (its value is "
              "still readable; detach() it to use it as a constant)");
        }
      }
    } else if (is_var_object(o.ptr())) {
      t = var_tape(o.ptr());
    }
    if (!t.tape) return;
    if (chosen_.tape && chosen_.tape != t.tape) {
      if (tapegrad::detail::running_segment_tape())
        throw tapegrad::Error(
            "tapegrad: checkpoint(): the checkpointed function used a tensor that requires grad and was computed "
            "outside it; pass it to checkpoint() as an argument, so that its gradient can flow");
      throw tapegrad::Error("tapegrad: the operands were recorded on different tapes");
    }
    chosen_ = t;
  }
  void begin() {
    tape_ = chosen_.tape ? chosen_ : active_tape();
    if (!tape_.obj) throw py::error_already_set();
    tape_ref_ = py::reinterpret_borrow<py::object>(tape_.obj);  // a conversion may close a `with` block
    scope_.emplace(tape_.tape->tape);
  }

  ActiveTape chosen_{nullptr, nullptr};
  ActiveTape tape_{nullptr, nullptr};
  std::vector<py::object> keep_;  // tape objects of operands that are no roots
  py::object tape_ref_;
  std::optional<tapegrad::ScopedTape> scope_;
};

template <class F>
py::object unary_call(py::handle x, F f) {
  Call c({x});
  const Tensor a = c.arg(x);
  return c.run([&] { return f(a); });
}

template <class F>
py::object binary_call(py::handle x, py::handle y, F f) {
  Call c({x, y});
  const DType like = like_of(x, y);
  Tensor a = c.arg(x, like);
  Tensor b = c.arg(y, like);
  // PyTorch's promotion between two tensors of float dtypes: a 0-d one takes the dtype of an
  // n-d one (float32[n] + float64[] is float32, as torch gives), where NumPy would widen.
  const bool zero_d_float = a.dtype() != b.dtype() && (a.ndim() == 0) != (b.ndim() == 0) &&
                            tapegrad::is_floating(a.dtype()) && tapegrad::is_floating(b.dtype()) &&
                            as_pytensor(x) && as_pytensor(y);
  return c.run([&] {
    if (zero_d_float) {
      if (a.ndim() == 0) a = tapegrad::astype(a, b.dtype());
      else b = tapegrad::astype(b, a.dtype());
    }
    return f(a, b);
  });
}

template <class F>
py::object inplace(py::object self, py::handle other, const char* name, bool true_div, F f) {
  PyTensor& p = self.cast<PyTensor&>();
  check_same_kind(std::max(operand_kind(other), true_div ? 2 : 0), p.t, std::string("in-place ") + name);
  check_inplace(p, std::string("in-place ") + name);
  Tensor r;
  {
    Call c({self, other});
    r = f(p.t, c.arg(other, p.t.dtype()));
  }
  const Shape& s = p.t.shape();
  if (r.shape() != s)
    throw tapegrad::Error("tapegrad: in-place op: the result has shape " + tapegrad::shape_str(r.shape()) +
                          " but the tensor has shape " + tapegrad::shape_str(s));
  p.t.assign(r);
  return self;
}

}  // namespace tgpy
