// tapegrad.Tensor: conversion between Python objects and tapegrad::Tensor, and the same
// memory policy as Var (results are roots of their tape; the tape is cleared when its last
// live result dies). Semantics live in cpp/src/ (tensor/, ops/, autograd.cpp).
#include <climits>
#include <optional>
#include <type_traits>
#include <string>
#include <vector>

#include "tensor_py.hpp"

namespace tgpy {

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
DType tensor_dtype(const py::dtype& dt, bool asked) {
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

std::vector<py::ssize_t> byte_strides(const Tensor& t) {
  std::vector<py::ssize_t> strides(t.shape().size());
  py::ssize_t s = static_cast<py::ssize_t>(tapegrad::dtype_size(t.dtype()));
  for (std::size_t d = strides.size(); d-- > 0;) {
    strides[d] = s;
    s *= t.shape()[d];
  }
  return strides;
}

// numpy.ndarray viewing t's memory; it keeps the memory (not the graph) alive.
py::array to_numpy(const Tensor& t) {
  const std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides = byte_strides(t);
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

}  // namespace tgpy
