// tapegrad.Tensor: conversion between Python objects and tapegrad::Tensor, and the same
// memory policy as Var (results are roots of their tape; the tape is cleared when its last
// live result dies). Semantics live in cpp/src/ (tensor/, ops/, autograd.cpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <optional>
#include <type_traits>
#include <string>
#include <vector>

#include "core.hpp"
#include "tensor_conv.hpp"

namespace py = pybind11;
using tapegrad::Axes;
using tapegrad::DType;
using tapegrad::Shape;
using tapegrad::Tape;
using tapegrad::Tensor;

namespace tgpy {
namespace {

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

py::handle g_tensor_type;  // the Python type of PyTensor
py::handle g_np_array;     // numpy.array (these module globals are never released:
                           // static destructors run after the interpreter is gone)

// PyTape is standard-layout with its Tape first: a Tape* of a Python tape is its PyTape*.
static_assert(std::is_standard_layout_v<PyTape>, "PyTape must start with its Tape");

// A Python Tensor for t; a recorded result (a create_graph gradient) becomes a root of its
// tape, as every result does.
py::object wrap_tensor(Tensor t) {
  auto holder = std::make_unique<PyTensor>(std::move(t));
  PyTensor& p = *holder;
  const tapegrad::TensorImpl& i = p.t.impl();
  if (i.requires_grad && !i.leaf && tapegrad::detail::is_current(i.tape, i.gen)) {
    PyTape* pt = reinterpret_cast<PyTape*>(i.tape);
    py::object tobj = py::cast(pt, py::return_value_policy::reference);
    p.root = pt->tape.add_root(i.rec, nullptr, false);
    p.epoch = pt->tape.epoch();
    p.tape = pt;
    p.tape_obj = tobj.release().ptr();
  }
  return py::cast(std::move(holder));
}

inline PyTensor* as_pytensor(py::handle o) {
  if (!py::isinstance(o, g_tensor_type)) return nullptr;
  return &o.cast<PyTensor&>();
}


// --- dtypes -----------------------------------------------------------------------------------

// tapegrad._dtypes: bfloat16's Python objects (ml_dtypes' NumPy type, or tapegrad's marker).
py::handle dtypes_module() {
  static PyObject* m = py::module_::import("tapegrad._dtypes").release().ptr();  // never released
  return m;
}
bool have_ml_dtypes() { return dtypes_module().attr("have_ml_dtypes").cast<bool>(); }

py::dtype numpy_dtype(DType d) {
  switch (d) {
    case DType::Bool: return py::dtype("bool");
    case DType::Int64: return py::dtype("int64");
    case DType::Float32: return py::dtype("float32");
    case DType::Float64: return py::dtype("float64");
    case DType::Float16: return py::dtype("float16");
    case DType::BFloat16:
      if (!have_ml_dtypes())
        throw py::type_error(
            "tapegrad: NumPy has no bfloat16: install ml_dtypes (pip install ml_dtypes, or tapegrad[bf16]) for "
            "bfloat16 arrays, or convert first with .astype('float32')");
      return py::reinterpret_borrow<py::dtype>(dtypes_module().attr("bfloat16_dtype"));
  }
  return py::dtype("float64");
}

// Whether a NumPy dtype is ml_dtypes' bfloat16 (kind 'V', like any user dtype, named bfloat16).
bool is_bfloat16_dtype(const py::dtype& dt) {
  return dt.kind() == 'V' && dt.itemsize() == 2 && std::string(py::str(dt.attr("name"))) == "bfloat16";
}

// A tensor's .dtype: NumPy's dtype, or tapegrad.bfloat16's marker without ml_dtypes.
py::object dtype_object(DType d) {
  if (d == DType::BFloat16 && !have_ml_dtypes()) return dtypes_module().attr("bfloat16_dtype");
  return numpy_dtype(d);
}

// The tensor dtype for a NumPy dtype. `asked`: the user named it (dtype=, astype), and a dtype
// tapegrad does not have is a TypeError; inferred from an array, other integers widen to int64
// (and long double narrows to float64). Complex and object arrays are refused.
DType tensor_dtype(const py::dtype& dt, bool asked = false) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'b') return DType::Bool;
  if (kind == 'f' && size == 2) return DType::Float16;
  if (kind == 'f' && size == 4) return DType::Float32;
  if (kind == 'f' && size == 8) return DType::Float64;
  if (is_bfloat16_dtype(dt)) return DType::BFloat16;
  if (kind == 'i' && size == 8) return DType::Int64;
  if (!asked && (kind == 'i' || kind == 'u')) return DType::Int64;
  if (!asked && kind == 'f') return DType::Float64;
  throw py::type_error("tapegrad: tensors hold float16, bfloat16, float32, float64, int64 or bool, not " +
                       std::string(py::str(dt)) + (asked ? " (convert the data to one of them first)" : ""));
}

// A dtype= argument: None, a NumPy dtype or anything numpy.dtype() takes, or bfloat16 as
// tapegrad.bfloat16 or 'bfloat16' (with or without ml_dtypes).
std::optional<DType> dtype_arg(const py::object& o) {
  if (o.is_none()) return std::nullopt;
  if (PyUnicode_Check(o.ptr()) && o.cast<std::string>() == "bfloat16") return DType::BFloat16;
  const py::handle m = dtypes_module();
  if (o.is(m.attr("bfloat16")) || o.is(m.attr("bfloat16_dtype"))) return DType::BFloat16;
  return tensor_dtype(py::dtype::from_args(o), true);
}

// The floating dtype of factories without dtype= and of Python floats (PyTorch's default
// dtype; tapegrad's is float64: see set_default_dtype in tapegrad/_tensor.py).
DType g_default_float = DType::Float64;
DType dtype_or_default(const py::object& o) { return dtype_arg(o).value_or(g_default_float); }

// --- conversion ------------------------------------------------------------------------------

// Wraps a C-contiguous, writeable ndarray of a tensor dtype without copying; anything else is
// converted (copied) first. `copy` forces a copy.
// Integers bound for an int64 tensor that do not fit: NumPy made them uint64 (2**63) or
// objects (2**64 and more); an OverflowError instead of wrapping them or a dtype error.
void check_int64_range(const py::array& a) {
  const char kind = a.dtype().kind();
  bool over = false;
  if (kind == 'u' && a.dtype().itemsize() == 8) {
    over = a.size() > 0 && py::int_(a.attr("max")()).cast<unsigned long long>() > 9223372036854775807ull;
  } else if (kind == 'O') {
    const py::object flat = a.attr("flat");
    for (py::handle e : flat)
      if (PyLong_Check(e.ptr()) && !PyBool_Check(e.ptr())) {
        int overflow = 0;
        (void)PyLong_AsLongLongAndOverflow(e.ptr(), &overflow);
        over = over || overflow != 0;
      }
  }
  if (over) {
    PyErr_SetString(PyExc_OverflowError, "tapegrad: an integer does not fit in int64, the tensors' integer dtype");
    throw py::error_already_set();
  }
}

Tensor tensor_from_array(py::handle obj, std::optional<DType> want, bool copy) {
  py::array a = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array(g_np_array(obj));
  if (!want || *want == DType::Int64) check_int64_range(a);
  const DType dt = want ? *want : tensor_dtype(a.dtype());
  if (dt == DType::BFloat16 && !is_bfloat16_dtype(a.dtype())) {
    // to bfloat16 from another dtype: rounded by tapegrad (without ml_dtypes NumPy cannot)
    const bool f32 = a.dtype().kind() == 'f' && a.dtype().itemsize() == 4;
    return tapegrad::astype(tensor_from_array(a, f32 ? DType::Float32 : DType::Float64, copy), DType::BFloat16);
  }
  const py::dtype target = numpy_dtype(dt);
  const bool ok = !copy && a.dtype().is(target) && (a.flags() & py::array::c_style) && a.writeable();
  if (!ok) a = py::array(g_np_array(a, target, py::arg("copy") = true, py::arg("order") = "C"));
  Shape shape(a.shape(), a.shape() + a.ndim());
  void* data = a.mutable_data();
  PyObject* owner = a.release().ptr();
  return Tensor::from_blob(data, shape, dt, [owner] {
    if (!Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    Py_DECREF(owner);
  });
}

// numpy.ndarray viewing t's memory; it keeps the memory (not the graph) alive.
py::array to_numpy(const Tensor& t) {
  const std::size_t es = tapegrad::dtype_size(t.dtype());
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides(shape.size());
  py::ssize_t s = static_cast<py::ssize_t>(es);
  for (std::size_t d = shape.size(); d-- > 0;) {
    strides[d] = s;
    s *= shape[d];
  }
  auto* keep = new std::shared_ptr<void>(t.impl().storage);
  py::capsule base(keep, [](void* p) { delete static_cast<std::shared_ptr<void>*>(p); });
  return py::array(numpy_dtype(t.dtype()), shape, strides, t.raw_data(), base);
}

// The single element of t as a Python number: an int64 exactly (not through a double).
py::object item_object(const Tensor& t) {
  const double v = t.item();  // checks that there is one element
  if (t.dtype() == DType::Int64) return py::int_(static_cast<long long>(*static_cast<const std::int64_t*>(t.raw_data())));
  if (t.dtype() == DType::Bool) return py::bool_(v != 0);
  return py::float_(v);
}

py::handle g_real;        // numbers.Real
py::handle g_np_generic;  // numpy.generic (NumPy scalars)
bool is_number(py::handle o) {
  return PyFloat_Check(o.ptr()) || PyLong_Check(o.ptr()) || PyObject_IsInstance(o.ptr(), g_real.ptr()) == 1;
}

// A Python number as a double; OverflowError naming it when it does not fit (10**400).
double number_value(py::handle o) {
  const double v = PyFloat_Check(o.ptr()) ? PyFloat_AS_DOUBLE(o.ptr()) : PyFloat_AsDouble(o.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
      PyErr_Clear();
      std::string text = py::str(o);
      if (text.size() > 24) text = text.substr(0, 12) + "... (" + std::to_string(text.size()) + " digits)";
      PyErr_SetString(PyExc_OverflowError,
                      ("tapegrad: the number " + text + " is too large for a float64 operand").c_str());
    }
    throw py::error_already_set();
  }
  return v;
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

DType like_of(py::handle a, py::handle b) {
  if (PyTensor* p = as_pytensor(a)) return p->t.dtype();
  if (PyTensor* p = as_pytensor(b)) return p->t.dtype();
  return DType::Float64;
}

// An int (anything with __index__, bool excluded), or a TypeError naming `what`.
std::int64_t index_arg(py::handle o, const char* what) {
  if (PyBool_Check(o.ptr()) || !PyIndex_Check(o.ptr()))
    throw py::type_error(std::string("tapegrad: ") + what + " must be an int or a sequence of ints, not " +
                         Py_TYPE(o.ptr())->tp_name);
  const Py_ssize_t v = PyNumber_AsSsize_t(o.ptr(), PyExc_OverflowError);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

// One int or a sequence of them (not a string).
// An ndarray of one or more dimensions has __index__ (which refuses it): a sequence here.
bool is_one_int(py::handle o) {
  if (!PyIndex_Check(o.ptr()) || PyBool_Check(o.ptr())) return false;
  if (PyTensor* p = as_pytensor(o)) return p->t.ndim() == 0;
  return !py::isinstance<py::array>(o) || py::reinterpret_borrow<py::array>(o).ndim() == 0;
}

std::vector<std::int64_t> ints_arg(py::handle o, const char* what) {
  if (is_one_int(o)) return {index_arg(o, what)};
  if (PyUnicode_Check(o.ptr()) || PyBytes_Check(o.ptr()) || !PySequence_Check(o.ptr()))
    throw py::type_error(std::string("tapegrad: ") + what + " must be an int or a sequence of ints, not " +
                         Py_TYPE(o.ptr())->tp_name);
  // Its length first: __len__ may raise, or claim more entries than any shape has.
  const Py_ssize_t n = PySequence_Size(o.ptr());
  if (n < 0) throw py::error_already_set();
  if (n > 64)
    throw py::value_error(std::string("tapegrad: ") + what + " has " + std::to_string(n) +
                          " entries: tensors have at most 64 dimensions");
  std::vector<std::int64_t> r;
  for (Py_ssize_t k = 0; k < n; ++k) {
    // an owned item: a sequence that builds its items on access (an ndarray, a Tensor) gives
    // new references, which a borrowed handle would not keep alive
    py::object e = py::reinterpret_steal<py::object>(PySequence_GetItem(o.ptr(), k));
    if (!e) throw py::error_already_set();
    r.push_back(index_arg(e, what));
  }
  return r;
}

// An axis as the core's int: one beyond int's range is out of bounds for any tensor (it is
// refused here, where it would otherwise be truncated to another axis).
int axis_int(std::int64_t a) {
  if (a < INT_MIN || a > INT_MAX)
    throw tapegrad::IndexError("tapegrad: axis " + std::to_string(a) + " is out of bounds for any tensor");
  return static_cast<int>(a);
}
std::vector<int> axis_ints(const std::vector<std::int64_t>& v) {
  std::vector<int> r;
  r.reserve(v.size());
  for (std::int64_t a : v) r.push_back(axis_int(a));
  return r;
}

// One axis (an int; anything with __index__).
int one_axis(const py::object& axis) { return axis_int(index_arg(axis, "axis")); }

Axes axes_arg(const py::object& axis) {
  if (axis.is_none()) return Axes();
  if (is_one_int(axis)) return Axes(axis_int(index_arg(axis, "axis")));
  return Axes(axis_ints(ints_arg(axis, "axis")));
}

// NumPy's axis= or PyTorch's dim= (not both).
py::object axis_or_dim(const py::object& axis, const py::object& dim) {
  if (!dim.is_none() && !axis.is_none()) throw py::type_error("tapegrad: give axis= or dim=, not both");
  return dim.is_none() ? axis : dim;
}
// The axes of a reduction given as its first positional argument, axis= or dim=. The three
// agree but for an empty sequence: NumPy's axis=() reduces over no axis, PyTorch's dim=()
// over every axis; a positional () is PyTorch's (t.sum(()) is t.sum(dim=())).
Axes reduce_axes(const char* name, const py::object& first, const py::object& axis, const py::object& dim) {
  py::object d = dim;
  if (!first.is_none()) {
    if (!axis.is_none() || !dim.is_none())
      throw py::type_error(std::string("tapegrad: ") + name + "() got the axes both positionally and as " +
                           (axis.is_none() ? "dim=" : "axis="));
    d = first;
  }
  if (!d.is_none() && (py::isinstance<py::tuple>(d) || py::isinstance<py::list>(d)) && py::len(d) == 0) {
    if (!axis.is_none()) throw py::type_error("tapegrad: give axis= or dim=, not both");
    return Axes();
  }
  return axes_arg(axis_or_dim(axis, d));
}
// NumPy's keepdims= or PyTorch's keepdim=.
bool keep_arg(const py::object& keepdims, const py::object& keepdim) {
  if (!keepdim.is_none() && !keepdims.is_none()) throw py::type_error("tapegrad: give keepdims= or keepdim=, not both");
  const py::object& k = keepdim.is_none() ? keepdims : keepdim;
  return !k.is_none() && py::bool_(k).cast<bool>();
}

Shape shape_arg(const py::args& args) {
  if (args.size() == 1) return ints_arg(args[0], "shape");
  Shape s;
  for (py::handle a : args) s.push_back(index_arg(a, "shape"));
  return s;
}

Shape shape_of(const py::object& o) { return ints_arg(o, "shape"); }

std::vector<int> axes_list(const py::args& args) { return axis_ints(shape_arg(args)); }

// A reduction's NumPy arguments: out= must be None (results are new tensors); dtype= the
// dtype to reduce in.
std::optional<DType> reduction_options(const char* name, const py::object& dtype, const py::object& out) {
  if (!out.is_none())
    throw py::type_error(std::string("tapegrad: ") + name + ": out= is not supported (the result is a new tensor: " +
                         "write r = t." + name + "(...))");
  return dtype_arg(dtype);
}

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

py::object do_backward(PyTensor& self, const py::object& gradient, const py::object& retain_graph,
                       bool create_graph) {
  // PyTorch's default: the graph is released unless create_graph.
  const bool retain = retain_graph.is_none() ? create_graph : py::bool_(retain_graph).cast<bool>();
  const Tensor& t = self.sync();
  if (t.impl().released) tapegrad::detail::throw_released();
  if (t.requires_grad() && !t.is_leaf() && !self.live_root())
    throw tapegrad::Error("tapegrad: backward() on a stale Tensor: its tape was cleared after it was recorded");
  Tensor g;
  if (gradient.is_none()) {
    if (t.numel() != 1) {
      t.backward();  // raises: a gradient is needed
      return py::none();
    }
    g = Tensor::ones(t.shape(), t.dtype());
  } else {
    PyTensor* pg = as_pytensor(gradient);
    g = pg ? pg->sync() : tensor_from_array(gradient, std::nullopt, false);
    if (!tapegrad::is_floating(g.dtype())) g = tapegrad::astype(g, t.dtype());
  }
  {
    // The sweep's kernels release the GIL: the tape is this thread's meanwhile (taken after
    // the conversions above, which may run Python code that uses it). With create_graph, the
    // Var leaves it reaches get recorded gradients (Tape::recorded_sink).
    TapeUse use(self.tape);
    t.backward(g, create_graph, retain);
    if (create_graph && self.tape) self.tape->maybe_collect();
  }
  // A released graph: this handle no longer keeps it (the tape frees it when no other does).
  if (t.impl().released) self.release();
  return py::none();
}

// NumPy's kind of an operand, as a rank: 0 bool, 1 integer, 2 floating.
int kind_rank(DType d) { return d == DType::Bool ? 0 : d == DType::Int64 ? 1 : 2; }
int operand_kind(py::handle o) {
  if (PyTensor* p = as_pytensor(o)) return kind_rank(p->t.dtype());
  if (PyBool_Check(o.ptr())) return 0;
  if (PyLong_Check(o.ptr())) return 1;
  if (PyFloat_Check(o.ptr()) || is_var_object(o.ptr())) return 2;
  const char k = py::array(g_np_array(o)).dtype().kind();
  return k == 'b' ? 0 : (k == 'i' || k == 'u') ? 1 : 2;
}
const char* kind_word(int k) { return k == 0 ? "bool" : k == 1 ? "integer" : "floating-point"; }

// Values of kind `k` stored into `target` (in place, or by .data =): refused where NumPy's
// same_kind casting refuses (floats into an integer or bool tensor, integers into a bool one).
void check_same_kind(int k, const Tensor& target, const std::string& what) {
  if (k > kind_rank(target.dtype()))
    throw py::type_error("tapegrad: " + what + ": " + kind_word(k) + " values cannot be stored in " +
                         (target.dtype() == DType::Int64 ? "an " : "a ") + tapegrad::dtype_name(target.dtype()) +
                         " tensor without loss (NumPy's same_kind casting); convert with astype(), or make a new " +
                         "tensor (t = t + ...)");
}

// Whether == may compare with o elementwise (a tensor, Var, number, array or sequence).
bool comparable(py::handle o) {
  return as_pytensor(o) || is_var_object(o.ptr()) || is_number(o) || py::isinstance<py::array>(o) ||
         PyList_Check(o.ptr()) || PyTuple_Check(o.ptr()) || PyObject_IsInstance(o.ptr(), g_np_generic.ptr()) == 1;
}

// t op= other: in place, for tensors outside the graph (an optimiser step under no_grad).
// `true_div`: the result is floating whatever the operands (t /= 2).
// An in-place change of p (`name` for the errors) is refused where PyTorch refuses it (a leaf
// that requires grad, outside no_grad), and on recorded results (which tapegrad does not
// change in place).
void check_inplace(const PyTensor& p, const std::string& name) {
  const bool recording = tapegrad::grad_enabled() && p.t.requires_grad();
  if (recording && p.t.is_leaf())
    throw tapegrad::Error("tapegrad: " + name + ": a leaf that requires grad cannot be changed in place outside no_grad "
                          "(do it under `with tapegrad.no_grad():`, as an optimizer step does)");
  if (recording)
    throw tapegrad::Error("tapegrad: " + name + ": in-place ops on recorded results are not supported; write y = y + ... "
                          "instead");
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

// A record of a graph seen from Python (tensor.grad_fn, and its next_functions): PyTorch's
// autograd Node, enough to walk and print a graph. Valid while its tape's generation lasts.
struct GradFn {
  py::object tape_obj;  // the tape (None: a released graph's top, known by name only)
  PyTape* tape = nullptr;
  std::uint32_t rec = Tape::kNone;
  std::uint32_t gen = 0;
  std::string name;
  std::shared_ptr<tapegrad::TensorImpl> variable;  // AccumulateGrad of a tensor leaf

  tapegrad::detail::GraphNode node() const {
    enter(tape);
    if (!tape || tape->tape.generation() != gen || rec >= tape->tape.size())
      throw tapegrad::Error("tapegrad: this graph node is stale: its tape was cleared or collected since "
                            "(walk a graph right after building it)");
    return tapegrad::detail::graph_node(tape->tape, rec);
  }
  static py::object at(const py::object& tape_obj, PyTape* tape, std::uint32_t rec) {
    GradFn f;
    f.tape_obj = tape_obj;
    f.tape = tape;
    f.rec = rec;
    f.gen = tape->tape.generation();
    tapegrad::detail::GraphNode g = f.node();
    f.name = g.name;
    f.variable = std::move(g.variable);
    return py::cast(std::move(f));
  }
};

py::object grad_fn_of(PyTensor& p) {
  const Tensor& t = p.sync();
  const tapegrad::TensorImpl& i = t.impl();
  if (i.leaf || !i.requires_grad) return py::none();
  if (i.released) {
    GradFn f;
    f.name = i.released_name ? i.released_name : "Node";
    return py::cast(std::move(f));
  }
  if (!tapegrad::detail::is_current(i.tape, i.gen)) return py::none();
  PyTape* pt = reinterpret_cast<PyTape*>(i.tape);  // every tape Python sees is a PyTape
  return GradFn::at(py::cast(pt, py::return_value_policy::reference), pt, i.rec);
}

void register_grad_fn(py::module_& m) {
  py::class_<GradFn>(m, "GraphNode", R"doc(
A record of a recorded graph (``tensor.grad_fn``), as PyTorch's autograd ``Node``: its
``name()`` (``"MulBackward0"``, ``"AccumulateGrad"`` for a leaf), and ``next_functions``,
one ``(node, 0)`` pair per input (``(None, 0)`` for an input that needs no gradient), enough
to walk the graph. A leaf's ``AccumulateGrad`` has the leaf as ``variable``.
)doc")
      .def("name", [](const GradFn& f) { return f.name; })
      .def_property_readonly("next_functions", [](const GradFn& f) {
        py::list r;
        if (!f.tape) return py::tuple(r);  // a released graph: its inputs are gone
        for (std::uint32_t j : f.node().inputs)
          r.append(py::make_tuple(j == Tape::kNone ? py::none() : GradFn::at(f.tape_obj, f.tape, j), 0));
        return py::tuple(r);
      })
      .def_property_readonly("variable", [](const GradFn& f) -> py::object {
        if (!f.variable) throw py::attribute_error("'" + f.name + "' has no variable (only a tensor leaf's AccumulateGrad has)");
        return py::cast(std::make_unique<PyTensor>(Tensor(f.variable)));
      })
      .def("__repr__", [](const GradFn& f) {
        return "<" + f.name + " object at " + std::to_string(reinterpret_cast<std::uintptr_t>(&f)) + ">";
      });
}

}  // namespace

// --- conversion for the sweeps and transformations (tensor_conv.hpp) --------------------
// The Tensors of a sequence given to autograd.grad / autograd.jvp (current handles).
std::vector<Tensor> sweep_tensors(const py::sequence& seq, const char* fn, const char* what) {
  std::vector<Tensor> r;
  for (py::object h : seq) {  // an object: the item may be new (see ints_arg)
    PyTensor* p = as_pytensor(h);
    if (!p)
      throw py::type_error(std::string("tapegrad.") + fn + ": " + what + " must be Tensors, not " +
                           Py_TYPE(h.ptr())->tp_name);
    if (p->t.impl().released) tapegrad::detail::throw_released();
    if (p->t.requires_grad() && !p->t.is_leaf() && !p->live_root())
      throw tapegrad::Error(std::string("tapegrad.") + fn + ": one of the " + what +
                            " is stale: its tape was cleared after it was recorded");
    r.push_back(p->sync());
  }
  return r;
}
// Seeds or tangents: Tensors, arrays or numbers (None: a null tensor), as floats.
std::vector<Tensor> sweep_seeds(const py::sequence& seq) {
  std::vector<Tensor> r;
  for (py::object h : seq) {  // an object: the item may be new (see ints_arg)
    if (h.is_none()) {
      r.emplace_back();
      continue;
    }
    PyTensor* p = as_pytensor(h);
    Tensor g = p ? p->sync() : tensor_from_array(h, std::nullopt, false);
    if (!tapegrad::is_floating(g.dtype())) g = tapegrad::astype(g, DType::Float64);
    r.push_back(g);
  }
  return r;
}
// A sweep from the outputs runs on their tape: it is this thread's meanwhile (its kernels
// release the GIL), and a recorded sweep (create_graph) records there.
void on_outputs_tape(const std::vector<Tensor>& outs, std::optional<TapeUse>& use,
                     std::optional<tapegrad::ScopedTape>& scope) {
  for (const Tensor& y : outs)
    if (!y.is_leaf() && tapegrad::detail::is_current(y.impl().tape, y.impl().gen)) {
      use.emplace(reinterpret_cast<PyTape*>(y.impl().tape));  // every tape Python sees is a PyTape
      scope.emplace(*y.impl().tape);
      return;
    }
}
Tensor tensor_arg(py::handle o, const char* fn, const char* what) {
  PyTensor* p = as_pytensor(o);
  if (!p)
    throw py::type_error(std::string("tapegrad.") + fn + ": " + what + " must be a Tensor, not " + Py_TYPE(o.ptr())->tp_name);
  return p->sync();
}
py::object tensor_object(Tensor t) { return py::cast(std::make_unique<PyTensor>(std::move(t))); }
py::object tensor_call(const std::vector<py::handle>& operands,
                       const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& f) {
  Call c(operands);
  std::vector<Tensor> args;
  args.reserve(operands.size());
  for (py::handle o : operands) args.push_back(c.arg(o));
  return c.run_all([&] { return f(args); });
}
bool adopt_result(py::handle h) {
  PyTensor* p = as_pytensor(h);
  if (!p || p->live_root()) return p != nullptr;
  const tapegrad::TensorImpl& i = p->t.impl();
  if (!i.requires_grad || i.leaf || !tapegrad::detail::is_current(i.tape, i.gen)) return false;
  PyTape* pt = reinterpret_cast<PyTape*>(i.tape);  // every tape Python sees is a PyTape
  py::object tobj = py::cast(pt, py::return_value_policy::reference);
  p->root = pt->tape.add_root(i.rec, nullptr, false);
  p->epoch = pt->tape.epoch();
  p->tape = pt;
  Py_XDECREF(p->tape_obj);
  p->tape_obj = tobj.release().ptr();
  return true;
}
py::tuple tensor_tuple(const std::vector<Tensor>& ts) {
  py::list r;
  for (const Tensor& g : ts) r.append(g.defined() ? wrap_tensor(g) : py::none());
  return py::tuple(r);
}


// Registers one op once, from one callable, as a method of Tensor (its first argument is self)
// and as a function of tensor_ops (its first argument named x); `names` are the other
// arguments' names and defaults, the same for both.
template <class F, class... Names>
void def_op(py::class_<PyTensor>& cls, py::module_& ops, const char* name, const F& f, const Names&... names) {
  cls.def(name, f, names...);
  if constexpr (sizeof...(Names) > 0)
    ops.def(name, f, py::arg("x"), names...);
  else
    ops.def(name, f);
}

void register_tensor(py::module_& m) {
  g_np_array = py::object(py::module_::import("numpy").attr("array")).release();
  g_real = py::object(py::module_::import("numbers").attr("Real")).release();
  g_np_generic = py::object(py::module_::import("numpy").attr("generic")).release();
  py::module_ ops = m.def_submodule("tensor_ops", "Tensor versions of tapegrad's functions");
  set_tensor_ops(ops.ptr());

  py::class_<PyTensor> cls(m, "Tensor", py::buffer_protocol(), R"doc(
An n-d array (float32, float64, int64 or bool) that records the operations applied to it.

Create one with ``tapegrad.tensor(data, dtype=None, requires_grad=False)`` (copies) or
``tapegrad.from_numpy(a)`` (shares memory). Results of operations on tensors that require
grad are recorded on the tape; ``backward()`` fills ``.grad`` of the leaves, as in PyTorch.
)doc");
  g_tensor_type = cls;

  cls.def_buffer([](PyTensor& p) {
    const Tensor& t = p.t;
    const std::size_t es = tapegrad::dtype_size(t.dtype());
    std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides(shape.size());
    py::ssize_t s = static_cast<py::ssize_t>(es);
    for (std::size_t d = shape.size(); d-- > 0;) {
      strides[d] = s;
      s *= shape[d];
    }
    if (t.dtype() == DType::BFloat16)
      throw py::buffer_error("tapegrad: bfloat16 has no buffer-protocol format; use .numpy() (with ml_dtypes) or "
                             ".astype('float32')");
    const char* fmt = t.dtype() == DType::Bool      ? "?"
                      : t.dtype() == DType::Int64   ? "q"
                      : t.dtype() == DType::Float32 ? "f"
                      : t.dtype() == DType::Float16 ? "e"
                                                    : "d";
    return py::buffer_info(t.raw_data(), static_cast<py::ssize_t>(es), fmt, static_cast<py::ssize_t>(shape.size()),
                           shape, strides);
  });

  cls.def_property_readonly("shape", [](const PyTensor& p) { return py::tuple(py::cast(p.t.shape())); })
      .def_property_readonly("ndim", [](const PyTensor& p) { return p.t.ndim(); })
      .def_property_readonly("size", [](const PyTensor& p) { return p.t.numel(); })
      .def_property_readonly("dtype", [](const PyTensor& p) { return dtype_object(p.t.dtype()); })
      .def_property_readonly("is_leaf", [](const PyTensor& p) { return p.t.is_leaf(); })
      .def_property_readonly("grad_fn", &grad_fn_of,
                             "The record that made this result (None for a leaf): PyTorch's grad_fn.")
      .def_property(
          "requires_grad", [](const PyTensor& p) { return p.t.requires_grad(); },
          [](PyTensor& p, const py::object& on) {
            if (!PyBool_Check(on.ptr()))
              throw py::type_error(std::string("tapegrad: requires_grad must be a bool, not ") + Py_TYPE(on.ptr())->tp_name);
            p.t.requires_grad_(on.ptr() == Py_True);
          })
      .def_property(
          "grad",
          [](const PyTensor& p) -> py::object {
            Tensor g = p.t.grad();
            if (!g.defined()) return py::none();
            return wrap_tensor(std::move(g));
          },
          [](PyTensor& p, const py::object& g) {
            if (g.is_none()) return p.t.set_grad(Tensor());
            PyTensor* pg = as_pytensor(g);
            p.t.set_grad(pg ? pg->t : tensor_from_array(g, p.t.dtype(), false));
          })
      .def_property(
          "data", [](const PyTensor& p) { return py::cast(std::make_unique<PyTensor>(p.t.detach())); },
          [](PyTensor& p, const py::object& v) {
            check_same_kind(operand_kind(v), p.t, ".data =");
            PyTensor* pv = as_pytensor(v);
            Tensor t = pv ? pv->t : tensor_from_array(v, p.t.dtype(), false);
            if (t.raw_data() != p.t.raw_data()) p.t.assign(t);
          })
      .def("_assign_", [](py::object self, const py::object& values, const std::string& name) {
        // zero_, fill_, copy_, clamp_, uniform_, ...: values (a number, or a tensor or array of
        // this shape) written in place, as an in-place op: checked, and the version moves.
        PyTensor& p = self.cast<PyTensor&>();
        check_same_kind(operand_kind(values), p.t, name);
        check_inplace(p, name);
        PyTensor* pv = as_pytensor(values);
        Tensor v = pv ? pv->t
                      : is_number(values) ? Tensor::full(p.t.shape(), number_value(values), p.t.dtype())
                                          : tensor_from_array(values, p.t.dtype(), false);
        if (v.shape() != p.t.shape() && v.numel() == 1) v = Tensor::full(p.t.shape(), v.item(), p.t.dtype());
        if (v.raw_data() != p.t.raw_data()) {
          tapegrad::NoGrad ng;
          p.t.assign(v);  // (checks the shape, naming both)
        }
        return self;
      }, py::arg("values"), py::arg("name") = "in-place assignment")
      .def("numpy", [](const PyTensor& p) { return to_numpy(p.t); },
           "The values as a numpy.ndarray that shares this tensor's memory (no copy).")
      .def("__array__", [](const PyTensor& p, const py::object& dtype, const py::object& copy) -> py::object {
        // (NumPy reads the buffer protocol first; this serves the dtype it has no format for,
        // bfloat16, rather than NumPy's fallback to an object array of elements)
        // NumPy 2's protocol: copy=True always copies, copy=False never (a ValueError where a
        // dtype change needs one), None copies only for a dtype change
        py::object a = to_numpy(p.t);
        const int cp = copy.is_none() ? -1 : PyObject_IsTrue(copy.ptr());
        if (cp < 0 && !copy.is_none()) throw py::error_already_set();
        if (!dtype.is_none() && !py::object(a.attr("dtype")).equal(py::dtype::from_args(dtype))) {
          if (cp == 0)
            throw py::value_error("tapegrad: Tensor.__array__: a " + std::string(tapegrad::dtype_name(p.t.dtype())) +
                                  " tensor cannot become an array of another dtype without a copy (copy=False)");
          return a.attr("astype")(dtype);
        }
        if (cp == 1) return a.attr("copy")();
        return a;
      }, py::arg("dtype") = py::none(), py::kw_only(), py::arg("copy") = py::none())
      .def("item", [](const PyTensor& p) { return item_object(p.t); }, "The single element as a Python number.")
      .def("backward", &do_backward, py::arg("gradient") = py::none(), py::arg("retain_graph") = py::none(),
           py::arg("create_graph") = false,
           "Reverse sweep from this tensor: leaves that require grad accumulate into .grad. A "
           "tensor with more than one element needs gradient= (d(loss)/d(this), its shape).")
      .def("retain_grad", [](PyTensor& p) { p.t.retain_grad(); },
           "Keep this result's gradient in .grad on the next backward().")
      .def("requires_grad_", [](py::object self, bool on) {
        self.cast<PyTensor&>().t.requires_grad_(on);
        return self;
      }, py::arg("requires_grad") = true)
      .def("detach", [](const PyTensor& p) { return py::cast(std::make_unique<PyTensor>(p.t.detach())); },
           "The same memory as a tensor outside the graph (requires_grad=False).")
      .def("zero_grad", [](PyTensor& p) { p.t.zero_grad(); }, "Drop the accumulated gradient (.grad becomes None).")
      .def("clone", [](py::handle self) { return unary_call(self, [](const Tensor& x) { return x.clone(); }); })
      .def("astype", [](py::handle self, const py::object& dt) {
        if (dt.is_none()) throw py::type_error("tapegrad: astype() needs a dtype, not None");
        const DType d = *dtype_arg(dt);
        return unary_call(self, [d](const Tensor& x) { return tapegrad::astype(x, d); });
      })
      .def("__len__", [](const PyTensor& p) {
        if (p.t.ndim() == 0) throw py::type_error("len() of a 0-d tensor");
        return p.t.shape()[0];
      })
      .def("__float__", [](const PyTensor& p) { return p.t.item(); })
      .def("__int__", [](const PyTensor& p) {
        // as Python's int() of the number: NaN is a ValueError, an infinity an OverflowError
        PyObject* r = PyNumber_Long(item_object(p.t).ptr());
        if (!r) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(r);
      })
      .def("__index__", [](const PyTensor& p) {
        if (p.t.numel() != 1 || tapegrad::is_floating(p.t.dtype()))
          throw py::type_error("tapegrad: only integer tensors of a single element can be converted to an index "
                               "(this one is " + std::string(tapegrad::dtype_name(p.t.dtype())) + " of shape " +
                               tapegrad::shape_str(p.t.shape()) + ")");
        return item_object(p.t);
      })
      .def("__bool__", [](const PyTensor& p) {
        if (p.t.numel() == 0)
          throw py::value_error("the truth value of an empty tensor is ambiguous; use .numel() > 0 or .any()");
        if (p.t.numel() != 1)
          throw py::value_error("the truth value of a tensor with more than one element is ambiguous; use .any() or .all()");
        return p.t.item() != 0.0;
      })
      ;

  // Operators: Tensor, Var, number, ndarray or list on either side.
#define TG_BINOP(pyname, rpyname, fn)                                                                        \
  cls.def(pyname, [](py::handle a, py::handle b) {                                                            \
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return fn(x, y); });                       \
  }, py::is_operator());                                                                                      \
  cls.def(rpyname, [](py::handle a, py::handle b) {                                                           \
    return binary_call(b, a, [](const Tensor& x, const Tensor& y) { return fn(x, y); });                       \
  }, py::is_operator());
  TG_BINOP("__add__", "__radd__", tapegrad::add)
  TG_BINOP("__sub__", "__rsub__", tapegrad::sub)
  TG_BINOP("__mul__", "__rmul__", tapegrad::mul)
  TG_BINOP("__truediv__", "__rtruediv__", tapegrad::div)
  TG_BINOP("__pow__", "__rpow__", tapegrad::pow)
  TG_BINOP("__matmul__", "__rmatmul__", tapegrad::matmul)
#undef TG_BINOP
#define TG_CMP(pyname, fn)                                                                        \
  cls.def(pyname, [](py::handle a, py::handle b) {                                                 \
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::fn(x, y); }); \
  }, py::is_operator());
  TG_CMP("__lt__", less)
  TG_CMP("__le__", less_equal)
  TG_CMP("__gt__", greater)
  TG_CMP("__ge__", greater_equal)
  // == and != with None or an object that is no number or array: NotImplemented, so that
  // Python answers by identity (t == None is False), as PyTorch does.
#define TG_EQ(pyname, fn)                                                                            \
  cls.def(pyname, [](py::handle a, py::handle b) -> py::object {                                     \
    if (b.is_none() || !comparable(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);  \
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::fn(x, y); });   \
  }, py::is_operator());
  TG_EQ("__eq__", equal)
  TG_EQ("__ne__", not_equal)
#undef TG_EQ
#undef TG_CMP
#define TG_INPLACE(pyname, symbol, fn, true_div)                                                              \
  cls.def(pyname, [](py::object self, py::handle b) {                                                          \
    return inplace(self, b, symbol, true_div, [](const Tensor& x, const Tensor& y) { return tapegrad::fn(x, y); }); \
  }, py::is_operator());
  TG_INPLACE("__iadd__", "+=", add, false)
  TG_INPLACE("__isub__", "-=", sub, false)
  TG_INPLACE("__imul__", "*=", mul, false)
  TG_INPLACE("__itruediv__", "/=", div, true)
#undef TG_INPLACE
  cls.def("__neg__", [](py::handle a) { return unary_call(a, [](const Tensor& x) { return tapegrad::neg(x); }); });
  cls.def("__pos__", [](py::handle a) { return py::reinterpret_borrow<py::object>(a); });
  cls.def("__abs__", [](py::handle a) { return unary_call(a, [](const Tensor& x) { return tapegrad::abs(x); }); });

  // Every op of the table: a method and a function of tensor_ops.
#define TAPEGRAD_UNARY(Name, name, ...)                                                        \
  def_op(cls, ops, #name,                                                                       \
         [](py::handle a) { return unary_call(a, [](const Tensor& x) { return tapegrad::name(x); }); });
#define TAPEGRAD_BINARY(Name, name, ...)                                                              \
  def_op(cls, ops, #name, [](py::handle a, py::handle b) {                                             \
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::name(x, y); });   \
  });
#include "tapegrad/ops.def"

  // --- reductions (methods and functions) ---------------------------------------------------
  // NumPy's functions call these methods with out= (np.sum(t) is t.sum(axis=None, out=None))
  // and dtype= (the dtype to reduce in). Results are new tensors: out= must be None.
#define TG_REDUCE(name, call)                                                                                    \
  {                                                                                                               \
    auto f = [](py::handle x, const py::object& first, const py::object& keepdims, const py::object& dtype,     \
                const py::object& out, const py::object& axis, const py::object& dim, const py::object& keepdim) { \
      const Axes ax = reduce_axes(name, first, axis, dim);                                                        \
      const bool keep = keep_arg(keepdims, keepdim);                                                              \
      const std::optional<DType> dt = reduction_options(name, dtype, out);                                        \
      return unary_call(x, [&](const Tensor& t) { return call(dt ? tapegrad::astype(t, *dt) : t, ax, keep); });  \
    };                                                                                                            \
    def_op(cls, ops, name, f, py::arg("dim_or_axis") = py::none(), py::pos_only(), py::arg("keepdims") = py::none(), \
           py::arg("dtype") = py::none(), py::arg("out") = py::none(), py::kw_only(), py::arg("axis") = py::none(), \
           py::arg("dim") = py::none(), py::arg("keepdim") = py::none());                                         \
  }
  TG_REDUCE("sum", tapegrad::sum)
  TG_REDUCE("mean", tapegrad::mean)
  TG_REDUCE("amax", tapegrad::amax)
  TG_REDUCE("amin", tapegrad::amin)
  TG_REDUCE("prod", tapegrad::prod)
  TG_REDUCE("logsumexp", tapegrad::logsumexp)
#undef TG_REDUCE
  {
    // var and std: PyTorch's (unbiased: correction=1) when spelled as PyTorch's, with
    // positional arguments (dim, unbiased, keepdim; or unbiased alone), dim=, unbiased= or
    // correction=; NumPy's (ddof=0) with none of them (t.var(), axis=, ddof=). x.var(1) and
    // x.var(dim=1) are then one answer, as torch.var(x, 1) is.
    auto spread = [](const char* name, auto fn) {
      return [name, fn](py::handle x, const py::args& pos, const py::kwargs& kw) {
        const std::string fn_name = std::string("tapegrad: ") + name + "()";
        // keywords: NumPy's axis, ddof, keepdims, dtype, out; PyTorch's dim, keepdim, unbiased,
        // correction (dim=None is PyTorch's too: every axis, unbiased)
        py::object axis = py::none(), ddof = py::none(), keepdims = py::none(), dtype = py::none(), out = py::none();
        py::object dim = py::none(), keepdim = py::none(), unbiased = py::none(), correction = py::none();
        bool dim_given = false;
        for (auto item : kw) {
          const std::string key = py::str(item.first);
          py::object v = py::reinterpret_borrow<py::object>(item.second);
          if (key == "axis") axis = v;
          else if (key == "ddof") ddof = v;
          else if (key == "keepdims") keepdims = v;
          else if (key == "dtype") dtype = v;
          else if (key == "out") out = v;
          else if (key == "dim") dim = v, dim_given = true;
          else if (key == "keepdim") keepdim = v;
          else if (key == "unbiased") unbiased = v;
          else if (key == "correction") correction = v;
          else throw py::type_error(fn_name + " got an unexpected keyword argument '" + key + "'");
        }
        auto twice = [&](const char* what) {
          throw py::type_error(fn_name + " got " + what + " both as a positional and as a keyword argument");
        };
        std::size_t k = 0;
        if (pos.size() > 3) throw py::type_error(fn_name + " takes at most 3 positional arguments (dim, unbiased, keepdim)");
        if (pos.size() >= 1 && PyBool_Check(pos[0].ptr())) {  // var(unbiased): PyTorch's overload
          if (pos.size() > 1)
            throw py::type_error(fn_name + ": a bool as the first positional argument is unbiased (PyTorch's " + name +
                                 "(unbiased)), which takes no other positional argument");
          if (!unbiased.is_none()) twice("unbiased");
          unbiased = pos[0];
          k = 1;
        }
        const bool positional_dim = k == 0 && !pos.empty();
        if (positional_dim) {
          if (dim_given || !axis.is_none()) twice("dim");
          dim = pos[0];
          dim_given = true;
          if (pos.size() >= 2) {
            if (!PyBool_Check(pos[1].ptr()))
              throw py::type_error(fn_name + ": the second positional argument is unbiased, a bool (PyTorch's " + name +
                                   "(dim, unbiased, keepdim)), not " + Py_TYPE(pos[1].ptr())->tp_name +
                                   "; NumPy's ddof is a keyword: ddof=");
            if (!unbiased.is_none()) twice("unbiased");
            unbiased = pos[1];
          }
          if (pos.size() == 3) {
            if (!keepdim.is_none() || !keepdims.is_none()) twice("keepdim");
            keepdim = pos[2];
          }
        }
        const bool torch_style = dim_given || !unbiased.is_none() || !correction.is_none();
        if (torch_style && !ddof.is_none())
          throw py::type_error(fn_name + ": ddof= is NumPy's spelling and cannot be mixed with PyTorch's (positional "
                               "dim, dim=, unbiased=, correction=); use correction=");
        if (!unbiased.is_none() && !correction.is_none())
          throw py::type_error(fn_name + ": unbiased and correction both given; give one");
        int d = torch_style ? 1 : 0;
        if (!correction.is_none()) d = static_cast<int>(index_arg(correction, "correction"));
        else if (!unbiased.is_none()) d = py::bool_(unbiased).cast<bool>() ? 1 : 0;
        else if (!ddof.is_none()) d = PyBool_Check(ddof.ptr()) ? (ddof.ptr() == Py_True) : static_cast<int>(index_arg(ddof, "ddof"));
        const Axes ax = reduce_axes(name, py::none(), axis, dim);
        const bool keep = keep_arg(keepdims, keepdim);
        const std::optional<DType> dt = reduction_options(name, dtype, out);
        return unary_call(x, [&](const Tensor& t) { return fn(dt ? tapegrad::astype(t, *dt) : t, ax, d, keep); });
      };
    };
    auto spread_def = [&](const char* name, auto f) {
      const std::string doc = std::string(name) +
          "(*args, **kwargs): PyTorch's spread, unbiased by default, when spelled as PyTorch's (positional dim, "
          "unbiased, keepdim; or unbiased alone; dim=, keepdim=, unbiased=, correction=); NumPy's (ddof=0 by "
          "default) with NumPy's keywords only (axis=, ddof=, keepdims=) or no argument. dtype= reduces in that dtype.";
      cls.def(name, f, doc.c_str());
      ops.def(name, f, py::arg("x"), doc.c_str());
    };
    spread_def("var", spread("var", [](const Tensor& t, const Axes& a, int d, bool k) { return tapegrad::var(t, a, d, k); }));
    spread_def("std", spread("std", [](const Tensor& t, const Axes& a, int d, bool k) { return tapegrad::std(t, a, d, k); }));
    auto smf = [](py::handle x, const py::object& axis_obj, const py::object& dim, const py::object& dtype) {
      const py::object a = axis_or_dim(axis_obj, dim);
      const int axis = a.is_none() ? -1 : one_axis(a);
      const std::optional<DType> dt = dtype_arg(dtype);
      return unary_call(x, [&](const Tensor& t) { return tapegrad::softmax(dt ? tapegrad::astype(t, *dt) : t, axis); });
    };
    auto lsmf = [](py::handle x, const py::object& axis_obj, const py::object& dim, const py::object& dtype) {
      const py::object a = axis_or_dim(axis_obj, dim);
      const int axis = a.is_none() ? -1 : one_axis(a);
      const std::optional<DType> dt = dtype_arg(dtype);
      return unary_call(x, [&](const Tensor& t) { return tapegrad::log_softmax(dt ? tapegrad::astype(t, *dt) : t, axis); });
    };
    def_op(cls, ops, "softmax", smf, py::arg("axis") = py::none(), py::kw_only(), py::arg("dim") = py::none(),
           py::arg("dtype") = py::none());
    def_op(cls, ops, "log_softmax", lsmf, py::arg("axis") = py::none(), py::kw_only(), py::arg("dim") = py::none(),
           py::arg("dtype") = py::none());
  }

  // --- shapes and linear algebra -----------------------------------------------------------
  cls.def("reshape", [](py::handle self, const py::args& args) {
    const Shape s = shape_arg(args);
    return unary_call(self, [&](const Tensor& t) { return tapegrad::reshape(t, s); });
  });
  auto transpose_m = [](py::handle self, const py::args& args) {
    const std::vector<int> axes = args.size() == 0 ? std::vector<int>{} : axes_list(args);
    return unary_call(self, [&](const Tensor& t) { return tapegrad::transpose(t, axes); });
  };
  cls.def("transpose", transpose_m);
  cls.def("permute", transpose_m);
  cls.def_property_readonly("T", [](py::handle self) {
    return unary_call(self, [](const Tensor& t) { return tapegrad::transpose(t); });
  });
  auto squeeze_f = [](py::handle x, const py::object& first, const py::object& axis, const py::object& dim0) {
    py::object dim = dim0;
    if (!first.is_none()) {  // a positional axis is PyTorch's dim (as t.sum(1) is)
      if (!axis.is_none() || !dim.is_none())
        throw py::type_error("tapegrad: squeeze() got the axis both positionally and as a keyword");
      dim = first;
    }
    Axes ax = axes_arg(axis_or_dim(axis, dim));
    if (!dim.is_none() && !ax.all) {
      // PyTorch's squeeze(d) and squeeze(dim=d): a no-op for an axis whose length is not 1
      // (NumPy's squeeze(axis=d) raises)
      PyTensor* p = as_pytensor(x);
      const Shape& s = p ? p->t.shape() : Shape{};
      std::vector<int> keep;
      for (int a : ax.list) {
        const int n = static_cast<int>(s.size());
        if (p && a >= -n && a < n && s[static_cast<std::size_t>(a < 0 ? a + n : a)] != 1) continue;
        keep.push_back(a);
      }
      ax = Axes(keep);
    }
    return unary_call(x, [&](const Tensor& t) { return tapegrad::squeeze(t, ax); });
  };
  auto unsqueeze_f = [](py::handle x, const py::object& axis_obj, const py::object& dim) {
    const int axis = one_axis(axis_or_dim(axis_obj, dim));
    return unary_call(x, [axis](const Tensor& t) { return tapegrad::unsqueeze(t, axis); });
  };
  auto broadcast_f = [](py::handle x, const py::object& shape) {
    const Shape s = shape_of(shape);
    return unary_call(x, [&](const Tensor& t) { return tapegrad::broadcast_to(t, s); });
  };
  def_op(cls, ops, "squeeze", squeeze_f, py::arg("dim_or_axis") = py::none(), py::pos_only(), py::kw_only(),
         py::arg("axis") = py::none(), py::arg("dim") = py::none());
  def_op(cls, ops, "unsqueeze", unsqueeze_f, py::arg("axis") = py::none(), py::kw_only(), py::arg("dim") = py::none());
  def_op(cls, ops, "expand_dims", unsqueeze_f, py::arg("axis") = py::none(), py::kw_only(), py::arg("dim") = py::none());
  def_op(cls, ops, "broadcast_to", broadcast_f, py::arg("shape"));
  cls.def("flatten", [](py::handle self) {
    return unary_call(self, [](const Tensor& t) { return tapegrad::reshape(t, {-1}); });
  });
  ops.def("reshape", [](py::handle x, const py::object& shape) {
    const Shape s = shape_of(shape);
    return unary_call(x, [&](const Tensor& t) { return tapegrad::reshape(t, s); });
  }, py::arg("x"), py::arg("shape"));
  auto transpose_f = [](py::handle x, const py::object& axes) {
    std::vector<int> ax;
    if (!axes.is_none())
      for (std::int64_t a : ints_arg(axes, "axes")) ax.push_back(static_cast<int>(a));
    return unary_call(x, [&](const Tensor& t) { return tapegrad::transpose(t, ax); });
  };
  ops.def("transpose", transpose_f, py::arg("x"), py::arg("axes") = py::none());
  ops.def("permute", transpose_f, py::arg("x"), py::arg("axes"));
  ops.def("matmul", [](py::handle a, py::handle b) {
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::matmul(x, y); });
  });
  def_op(cls, ops, "dot", [](py::handle a, py::handle b) {
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::dot(x, y); });
  });
  ops.def("linear", [](py::handle x, py::handle w, py::handle b) {
    Call c({x, w, b});
    Tensor xt = c.arg(x), wt = c.arg(w);
    Tensor bt = b.is_none() ? Tensor() : c.arg(b);
    return c.run([&] { return tapegrad::linear(xt, wt, bt); });
  }, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(),
     "x @ weight.T + bias without a transposed copy of weight (torch.nn.functional.linear).");
  ops.def("outer", [](py::handle a, py::handle b) {
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::outer(x, y); });
  });
  def_op(cls, ops, "clip", [](py::handle x, double lo, double hi) {
    return unary_call(x, [&](const Tensor& t) { return tapegrad::clip(t, lo, hi); });
  }, py::arg("a_min"), py::arg("a_max"));
  ops.def("where", [](py::handle cond, py::handle a, py::handle b) {
    Call c({cond, a, b});
    const DType like = like_of(a, b);
    Tensor ct = c.arg(cond), at = c.arg(a, like), bt = c.arg(b, like);
    return c.run([&] { return tapegrad::where(ct, at, bt); });
  });
  auto seq_f = [](const py::object& xs, int axis, bool stack) {
    // Any iterable (a list, an ndarray, a generator); its items held, as an ndarray or a
    // Tensor builds them on access (a borrowed handle would dangle).
    if (PyUnicode_Check(xs.ptr()) || PyBytes_Check(xs.ptr()) || !py::isinstance<py::iterable>(xs))
      throw py::type_error(std::string("tapegrad.") + (stack ? "stack" : "concatenate") +
                           ": tensors must be a sequence or iterable of tensors, not " + Py_TYPE(xs.ptr())->tp_name);
    std::vector<py::object> items;
    for (py::handle h : py::iter(xs)) items.push_back(py::reinterpret_borrow<py::object>(h));
    const std::vector<py::handle> hs(items.begin(), items.end());
    Call c(hs);
    DType like = DType::Float64;
    for (py::handle h : hs)
      if (PyTensor* p = as_pytensor(h)) like = p->t.dtype();
    std::vector<Tensor> ts;
    for (py::handle h : hs) ts.push_back(c.arg(h, like));
    return c.run([&] { return stack ? tapegrad::stack(ts, axis) : tapegrad::concatenate(ts, axis); });
  };
  ops.def("concatenate", [seq_f](const py::object& xs, const py::object& axis) { return seq_f(xs, one_axis(axis), false); },
          py::arg("tensors"), py::arg("axis") = 0);
  ops.def("stack", [seq_f](const py::object& xs, const py::object& axis) { return seq_f(xs, one_axis(axis), true); },
          py::arg("tensors"), py::arg("axis") = 0);

  // --- methods written in Python (tapegrad/_tensor.py): indexing keys, printing, pickling -----
  // The type is defined here alone; these methods call their Python implementations.
  auto python_method = [&cls](const char* name, const char* impl) {
    if (cls.attr("__dict__").contains(name)) py::delattr(cls, name);  // (max, min: the table's binary method)
    cls.def(name, [impl](const py::args& args, const py::kwargs& kwargs) {
      // (imported once; never released: it must outlive static destruction)
      static PyObject* impls = py::module_::import("tapegrad._tensor").release().ptr();
      return py::handle(impls).attr(impl)(*args, **kwargs);
    });
  };
  python_method("__getitem__", "_getitem");
  python_method("__iter__", "_iter");
  python_method("__repr__", "_repr");
  python_method("__str__", "_repr");
  python_method("tolist", "_tolist");
  // max and min: the table's binary methods give way to tapegrad/_torch.py's (a reduction,
  // PyTorch's (values, indices) along a dim, or elementwise with a tensor).
  py::delattr(cls, "max");
  py::delattr(cls, "min");
  python_method("__reduce__", "_reduce");
  python_method("__format__", "_format");
  cls.attr("__hash__") = py::module_::import("builtins").attr("object").attr("__hash__");  // identity, as torch
  cls.attr("__array_ufunc__") = py::none();  // NumPy defers: ndarray + Tensor calls Tensor.__radd__
  cls.attr("__array_priority__") = 1000;

  // --- indexing primitives (tapegrad/_tensor.py parses the key) -----------------------------
  ops.def("_take", [](py::handle x, py::handle index) {
    Call c({x});
    Tensor t = c.arg(x);
    PyTensor* pi = as_pytensor(index);
    Tensor idx = pi ? pi->t : tensor_from_array(index, DType::Int64, false);
    return c.run([&] { return tapegrad::take(t, idx); });
  });
  ops.def("_strided", [](py::handle x, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& step,
                         const Shape& shape) {
    return unary_call(x, [&](const Tensor& t) { return tapegrad::strided(t, start, step, shape); });
  });

  // --- creation ----------------------------------------------------------------------------------
  auto make = [](const py::object& data, const py::object& dtype, bool requires_grad) {
    std::optional<DType> dt = dtype_arg(dtype);
    Tensor t;
    if (PyTensor* p = as_pytensor(data)) {
      const Tensor src = p->t.detach();  // a copy (in dtype= if given)
      t = dt && *dt != src.dtype() ? tapegrad::astype(src, *dt) : src.clone();
    } else if (is_var_object(data.ptr())) {
      t = Tensor::full({}, var_value(data.ptr()), dt ? *dt : DType::Float64);
    } else {
      if (!dt && !py::isinstance<py::array>(data) && PyObject_IsInstance(data.ptr(), g_np_generic.ptr()) != 1) {
        // Python numbers and (nested) lists: a floating result takes the default dtype
        py::array a(g_np_array(data));
        if (a.dtype().kind() == 'f') dt = g_default_float;
        t = tensor_from_array(a, dt, false);  // (a fresh array: no copy needed)
      } else {
        t = tensor_from_array(data, dt, true);
      }
    }
    if (requires_grad) t.requires_grad_(true);
    return std::make_unique<PyTensor>(std::move(t));
  };
  m.def("tensor", make, py::arg("data"), py::arg("dtype") = py::none(), py::arg("requires_grad") = false,
        "A tensor holding a copy of data (a number, nested lists, an ndarray or a Tensor).");
  // tapegrad.Tensor(data) copies as tensor() does; tapegrad.Tensor(2, 3), as torch.Tensor(2, 3),
  // is a tensor of that shape in the default dtype (zeros, where torch leaves memory unset).
  cls.def(py::init([make](const py::args& args, const py::kwargs& kwargs) {
    bool sizes = args.size() > 0;
    for (py::handle a : args) sizes = sizes && PyLong_Check(a.ptr()) && !PyBool_Check(a.ptr());
    if (sizes) {
      if (args.size() == 1)
        throw py::type_error("tapegrad.Tensor(n): ambiguous between torch.Tensor(n) (n uninitialised elements) and a "
                             "number; write tapegrad.zeros(n) or tapegrad.empty(n) for the first, tapegrad.tensor(n) "
                             "for the second");
      Shape shape;
      for (py::handle a : args) shape.push_back(index_arg(a, "shape"));
      Tensor t = Tensor::zeros(shape, g_default_float);
      if (kwargs.contains("requires_grad") && py::bool_(kwargs["requires_grad"]).cast<bool>()) t.requires_grad_(true);
      return std::make_unique<PyTensor>(std::move(t));
    }
    if (args.size() > 3) throw py::type_error("tapegrad.Tensor(data, dtype=None, requires_grad=False): too many arguments");
    py::object data = args.size() > 0 ? py::reinterpret_borrow<py::object>(args[0])
                                      : (kwargs.contains("data") ? py::object(kwargs["data"]) : py::object(py::none()));
    py::object dtype = args.size() > 1 ? py::reinterpret_borrow<py::object>(args[1])
                                       : (kwargs.contains("dtype") ? py::object(kwargs["dtype"]) : py::object(py::none()));
    const bool rg = args.size() > 2 ? py::bool_(args[2]).cast<bool>()
                                    : (kwargs.contains("requires_grad") && py::bool_(kwargs["requires_grad"]).cast<bool>());
    for (auto kv : kwargs) {
      const std::string k = py::str(kv.first);
      if (k != "data" && k != "dtype" && k != "requires_grad")
        throw py::type_error("tapegrad.Tensor() got an unexpected keyword argument '" + k + "'");
    }
    if (data.is_none()) return std::make_unique<PyTensor>(Tensor::zeros({0}, dtype_or_default(dtype)));
    return make(data, dtype, rg);
  }));
  m.def("from_numpy", [](const py::object& a) {
    if (!py::isinstance<py::array>(a))
      throw py::type_error(std::string("tapegrad.from_numpy: expected a numpy.ndarray, got ") +
                           Py_TYPE(a.ptr())->tp_name + " (tapegrad.tensor copies any array-like)");
    return py::cast(std::make_unique<PyTensor>(tensor_from_array(a, std::nullopt, false)));
  }, py::arg("array"),
     "A tensor sharing the ndarray's memory. Arrays that are not C-contiguous, are read-only, "
     "or hold another dtype are copied (other integers -> int64).\n\n"
     "Writes through the array between a forward pass and backward() change what backward "
     "sees (as with torch.from_numpy): copy with tapegrad.tensor(a) if the array will change.");
  m.def("_full", [](const py::object& shape, double value, const py::object& dtype, bool requires_grad) {
    Tensor t = Tensor::full(shape_of(shape), value, dtype_or_default(dtype));
    if (requires_grad) t.requires_grad_(true);
    return py::cast(std::make_unique<PyTensor>(std::move(t)));
  });
  m.def("_arange", [](double start, double stop, double step, const py::object& dtype) {
    return py::cast(std::make_unique<PyTensor>(Tensor::arange(start, stop, step, dtype_or_default(dtype))));
  });
  m.def("_eye", [](std::int64_t n, std::int64_t k, const py::object& dtype) {
    return py::cast(std::make_unique<PyTensor>(Tensor::eye(n, k, dtype_or_default(dtype))));
  });
  register_grad_fn(m);
  ops.def("_put_add", [](py::handle src, py::handle index, const py::object& shape) {
    Call c({src});
    Tensor s = c.arg(src);
    PyTensor* pi = as_pytensor(index);
    Tensor idx = pi ? pi->t : tensor_from_array(index, DType::Int64, false);
    const Shape sh = shape_of(shape);
    return c.run([&] { return tapegrad::put_add(s, idx, sh); });
  });
  m.def("get_default_dtype", [] { return numpy_dtype(g_default_float); },
        "The floating dtype of factories and of Python floats (float64 unless set_default_dtype changed it).");
  m.def("_set_default_dtype", [](const py::object& dt) {
    const DType d = tensor_dtype(py::dtype::from_args(dt), true);
    if (d != DType::Float32 && d != DType::Float64)
      throw py::type_error(std::string("tapegrad.set_default_dtype: only float32 and float64 can be the default, not ") +
                           tapegrad::dtype_name(d));
    g_default_float = d;
  });
  m.def("_set_autocast", [](bool enabled, const py::object& dtype) {
    if (dtype.is_none()) throw py::type_error("tapegrad.autocast: dtype must be float16 or bfloat16, not None");
    tapegrad::set_autocast(enabled, *dtype_arg(dtype));
  });
  m.def("_autocast_state", [] {
    const tapegrad::AutocastState s = tapegrad::autocast_state();
    return py::make_tuple(s.enabled, dtype_object(s.dtype));
  });
  m.def("is_grad_enabled", &tapegrad::grad_enabled, "Whether operations are recorded (see no_grad).");
  m.def("_set_grad_enabled", &tapegrad::set_grad_enabled);
  m.def("gemm_backend", &tapegrad::gemm_backend, "Which matrix-product kernel matmul uses.");
  m.def("_grad", [](const py::sequence& outputs, const py::sequence& inputs,
                    const std::optional<py::sequence>& grad_outputs, bool create_graph, bool allow_unused) {
    const std::vector<Tensor> outs = sweep_tensors(outputs, "autograd.grad", "outputs"), ins = sweep_tensors(inputs, "autograd.grad", "inputs");
    std::vector<Tensor> seeds;
    if (grad_outputs) seeds = sweep_seeds(*grad_outputs);
    std::optional<TapeUse> use;
    std::optional<tapegrad::ScopedTape> scope;
    on_outputs_tape(outs, use, scope);
    return tensor_tuple(tapegrad::grad(outs, ins, seeds, create_graph, allow_unused));
  });
  m.def("_jvp", [](const py::sequence& outputs, const py::sequence& inputs, const py::sequence& tangents,
                   bool create_graph, bool batched) {
    const std::vector<Tensor> outs = sweep_tensors(outputs, "autograd.jvp", "outputs"), ins = sweep_tensors(inputs, "autograd.jvp", "inputs");
    const std::vector<Tensor> tans = sweep_seeds(tangents);
    std::optional<TapeUse> use;
    std::optional<tapegrad::ScopedTape> scope;
    on_outputs_tape(outs, use, scope);
    return tensor_tuple(tapegrad::jvp(outs, ins, tans, create_graph, batched));
  });

  // Exceptions: IndexError, ValueError and TypeError for the core's kinds of bad argument
  // (the rest are RuntimeError, as for Var).
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tapegrad::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const tapegrad::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const tapegrad::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const tapegrad::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
}

}  // namespace tgpy
