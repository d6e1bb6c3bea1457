// tapegrad.Var: the scalar type, written against the CPython API so that one operation from
// Python costs a few tens of nanoseconds (micrograd's Value costs microseconds). Every
// arithmetic slot converts its operands and records one op of the table on a tape.
// (Its sweeps, hooks and graph walk: var_graph.cpp.)
#include <algorithm>
#include <cmath>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "var_object.hpp"

namespace tgpy {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
PyTypeObject VarType = {PyVarObject_HEAD_INIT(nullptr, 0)};
#pragma GCC diagnostic pop
PyObject* g_numbers_real = nullptr;  // numbers.Real, for NumPy scalars and friends
PyObject* g_tensor_ops = nullptr;    // tapegrad._core.tensor_ops (set by register_tensor)


// Converts a real number to double: 1 on success, 0 if `o` is not a real number (no error
// set), -1 with an error set.
int as_double(PyObject* o, double* out) {
  if (PyFloat_Check(o)) {  // float, numpy.float64
    *out = PyFloat_AS_DOUBLE(o);
    return 1;
  }
  if (PyLong_Check(o)) {  // int, bool
    *out = PyLong_AsDouble(o);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 1;
  }
  const int real = PyObject_IsInstance(o, g_numbers_real);  // numpy.float32, numpy.int64, ...
  if (real <= 0) return real;
  *out = PyFloat_AsDouble(o);
  return (*out == -1.0 && PyErr_Occurred()) ? -1 : 1;
}


VarObject* alloc_var(double data, std::uint8_t flags) {
  auto* v = PyObject_New(VarObject, &VarType);
  if (!v) return nullptr;
  v->data = data;
  v->grad = 0.0;
  v->tape_obj = nullptr;
  v->tape = nullptr;
  v->root = Tape::kNone;
  v->epoch = 0;
  v->flags = flags;
  if (has_records(v)) new (v->records_storage) tapegrad::detail::LeafRecords();
  v->grad_var = nullptr;
  v->hooks = nullptr;
  return v;
}


// Drops v's root on its tape. A tape left with no non-leaf Var is cleared: O(1), and
// nothing that Python can still reach needs its records.
void release_root(VarObject* v) {
  enter(v->tape);  // (while another thread sweeps the tape, its roots stay as they are)
  if (has_live_root(v)) {
    Tape& t = v->tape->tape;
    t.remove_root(v->root);
    if (!(v->flags & kLeaf) && t.live_nonleaf_roots() == 0 && v->tape->may_clear()) {
      t.clear();
    }
  }
  v->root = Tape::kNone;
}

void set_tape(VarObject* v, PyObject* obj, PyTape* tape) {
  Py_XINCREF(obj);
  Py_XSETREF(v->tape_obj, obj);
  v->tape = tape;
}

void var_dealloc(PyObject* self) {
  auto* v = reinterpret_cast<VarObject*>(self);
  // (an entry of an older generation is dropped with the whole cache on its next use)
  if ((v->flags & kCached) && v->tape && v->tape->prev_cache && v->tape->prev_cache_gen == v->tape->tape.generation()) {
    auto& cache = *v->tape->prev_cache;
    auto it = has_live_root(v) ? cache.find(v->tape->tape.root_record(v->root)) : cache.end();
    if (it == cache.end() || it->second != self)
      for (it = cache.begin(); it != cache.end() && it->second != self; ++it) {
      }
    if (it != cache.end()) cache.erase(it);
  }
  release_root(v);
  Py_CLEAR(v->tape_obj);
  Py_CLEAR(v->grad_var);
  delete v->hooks;  // (hooks attached to records stay with them: the graph may still reach them)
  if (has_records(v)) {
    v->records().drop(EnterTape{});  // (a sweep of another thread may be about to deliver into .grad)
    v->records().~LeafRecords();
  }
  PyObject_Free(self);
}

void throw_stale() {
  throw tapegrad::Error(
      "tapegrad: this Var is stale: its tape was cleared after the Var was recorded "
      "(Tape.clear() invalidates every non-leaf Var recorded on it)");
}

// The record of operand v on tape t. A leaf is recorded on first use (and again after its
// value changed, or on another tape); all its records deliver into its .grad.
std::uint32_t operand_record(VarObject* v, PyObject* tobj, PyTape* t) {
  if (!(v->flags & kLeaf)) {
    if (has_live_root(v) && v->tape == t) return t->tape.root_record(v->root);
    throw_stale();
  }
  Tape& tape = t->tape;
  if (TAPEGRAD_LIKELY(v->records().current_on(tape))) return v->records().record_on(tape, v->data, &v->grad);
  const std::uint32_t rec = v->records().record_on(tape, v->data, &v->grad, EnterTape{});  // a new record
  if (v->tape != t) set_tape(v, tobj, t);  // (the leaf keeps the tape of its current record alive)
  if (v->hooks) attach_hooks(v, tobj, t, rec);
  return rec;
}

// Where an op records: on the tape of its non-leaf operands, else on the active tape.
ActiveTape op_tape(VarObject* a, VarObject* b) {
  VarObject* n = nullptr;
  for (VarObject* v : {a, b}) {
    if (!v || (v->flags & kLeaf)) continue;
    if (!has_live_root(v)) throw_stale();
    if (n && n->tape != v->tape)
      throw tapegrad::Error("tapegrad: the two operands were recorded on different tapes");
    n = v;
  }
  if (n) {
    enter(n->tape);
    return {n->tape_obj, n->tape};
  }
  ActiveTape t = active_tape();
  if (!t.obj) throw std::bad_alloc();
  enter(t.tape);
  return t;
}

// A non-leaf Var for record `rec` of t. With `collect`, the tape may be collected after
// (which makes other handles to it stale): callers wrapping several records pass false.
PyObject* new_result(ActiveTape t, std::uint32_t rec, double z, bool collect) {
  // Every Var has its gradient, as micrograd's Value does: a result's root adds the adjoint
  // each backward() gives its record into .grad.
  VarObject* r = alloc_var(z, kRequiresGrad | kRetainGrad);
  if (!r) return nullptr;
  set_tape(r, t.obj, t.tape);
  r->epoch = t.tape->tape.epoch();
  try {
    r->root = t.tape->tape.add_root(rec, &r->grad, false);
    if (collect) t.tape->maybe_collect();
  } catch (...) {
    Py_DECREF(r);
    throw;
  }
  return reinterpret_cast<PyObject*>(r);
}

// A Python Var for a C++ Var recorded on t (no collection): a constant becomes a leaf that
// does not require grad.
PyObject* wrap_recorded(const tapegrad::Var& x, ActiveTape t) {
  if (x.is_constant()) return reinterpret_cast<PyObject*>(alloc_var(x.value(), kLeaf));
  return new_result(t, x.index(), x.value(), false);
}

// --- the ops -----------------------------------------------------------------------------

template <Op op>
PyObject* unary(VarObject* a) {
  const double z = tapegrad::Rule<op>::forward(a->data);
  if (!needs_grad(a)) return reinterpret_cast<PyObject*>(alloc_var(z, kLeaf));
  return guarded([&] {
    ActiveTape t = op_tape(a, nullptr);
    const std::uint32_t ra = operand_record(a, t.obj, t.tape);
    return new_result(t, t.tape->tape.push(op, ra, 0, z), z);
  });
}

// a or b is a Var; the other may be a real number. NotImplemented for anything else.
template <Op op>
PyObject* binary(PyObject* a, PyObject* b) {
  VarObject* va = is_var(a) ? reinterpret_cast<VarObject*>(a) : nullptr;
  VarObject* vb = is_var(b) ? reinterpret_cast<VarObject*>(b) : nullptr;
  double x, y;
  if (va) {
    x = va->data;
  } else if (int r = as_double(a, &x); r <= 0) {
    if (r < 0) return nullptr;
    Py_RETURN_NOTIMPLEMENTED;
  }
  if (vb) {
    y = vb->data;
  } else if (int r = as_double(b, &y); r <= 0) {
    if (r < 0) return nullptr;
    Py_RETURN_NOTIMPLEMENTED;
  }
  const double z = tapegrad::Rule<op>::forward(x, y);
  const bool ga = needs_grad(va), gb = needs_grad(vb);
  if (!ga && !gb) return reinterpret_cast<PyObject*>(alloc_var(z, kLeaf));
  return guarded([&] {
    ActiveTape t = op_tape(va, vb);
    Tape& tp = t.tape->tape;
    const std::uint32_t ra = ga ? operand_record(va, t.obj, t.tape) : Tape::kNone;
    const std::uint32_t rb = gb ? operand_record(vb, t.obj, t.tape) : Tape::kNone;
    const std::uint32_t rec = tapegrad::detail::push_binary(tp, op, ra, rb, x, y, z);
    return new_result(t, rec, z);
  });
}

PyObject* type_error(const char* fn, PyObject* o) {
  PyErr_Format(PyExc_TypeError, "tapegrad.%s: expected a Var or a real number, got %.100s", fn,
               Py_TYPE(o)->tp_name);
  return nullptr;
}

// The tensor version of a module function (tapegrad._core.tensor_ops.<name>): arguments
// that are neither Vars nor numbers (Tensors, arrays, lists) go there.
PyObject* tensor_function(PyObject* const* args, Py_ssize_t nargs, const char* name) {
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    PyObject* o = args[i];
    double unused;
    if (is_var(o) || PyObject_CheckBuffer(o) || PyList_Check(o) || PyTuple_Check(o)) continue;
    const int r = as_double(o, &unused);
    if (r < 0) return nullptr;
    if (r == 0) {
      PyErr_Format(PyExc_TypeError, "tapegrad.%s: expected a Var, a Tensor, an array or a real number, got %.100s",
                   name, Py_TYPE(o)->tp_name);
      return nullptr;
    }
  }
  if (!g_tensor_ops) {
    PyErr_Format(PyExc_TypeError, "tapegrad.%s: expected a Var or a real number", name);
    return nullptr;
  }
  PyObject* f = PyObject_GetAttrString(g_tensor_ops, name);
  if (!f) return nullptr;
  PyObject* r = PyObject_Vectorcall(f, args, static_cast<std::size_t>(nargs), nullptr);
  Py_DECREF(f);
  return r;
}

// Module functions: tapegrad.exp(x) for a Var or a plain number (a float comes back); other
// arguments (Tensors, arrays) go to the tensor version.
template <Op op>
PyObject* unary_function(PyObject*, PyObject* x) {
  if (is_var(x)) return unary<op>(reinterpret_cast<VarObject*>(x));
  double v;
  const int r = as_double(x, &v);
  if (r < 0) return nullptr;
  if (r == 0) return tensor_function(&x, 1, tapegrad::op_info(op).name);
  return PyFloat_FromDouble(tapegrad::Rule<op>::forward(v));
}

template <Op op>
PyObject* binary_function(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  const char* name = tapegrad::op_info(op).name;
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "tapegrad.%s() takes 2 arguments (%zd given)", name, nargs);
    return nullptr;
  }
  if (!is_var(args[0]) && !is_var(args[1])) {
    double x, y;
    for (int i = 0; i < 2; ++i) {
      const int r = as_double(args[i], i ? &y : &x);
      if (r < 0) return nullptr;
      if (r == 0) return tensor_function(args, 2, name);
    }
    return PyFloat_FromDouble(tapegrad::Rule<op>::forward(x, y));
  }
  PyObject* out = binary<op>(args[0], args[1]);
  if (out == Py_NotImplemented) {
    Py_DECREF(out);
    return tensor_function(args, 2, name);
  }
  return out;
}

template <Op op>
PyObject* unary_method(PyObject* self, PyObject*) {
  return unary<op>(reinterpret_cast<VarObject*>(self));
}
template <Op op>
PyObject* binary_method(PyObject* self, PyObject* other) {
  PyObject* out = binary<op>(self, other);
  if (out == Py_NotImplemented) {
    Py_DECREF(out);
    return type_error(tapegrad::op_info(op).name, other);
  }
  return out;
}

// --- number protocol --------------------------------------------------------------------
// A Var and a NumPy array, on either side: the tensor op (the Var broadcast), as a Var and a
// Tensor give; NotImplemented for what is neither a number nor an array.
template <Op op>
PyObject* number_slot(PyObject* a, PyObject* b) {
  PyObject* out = binary<op>(a, b);
  PyObject* other = is_var(a) ? b : a;
  if (out != Py_NotImplemented || !PyObject_CheckBuffer(other) || PyBytes_Check(other) || PyByteArray_Check(other))
    return out;
  Py_DECREF(out);
  PyObject* args[2] = {a, b};
  return tensor_function(args, 2, tapegrad::op_info(op).name);
}
PyObject* nb_add(PyObject* a, PyObject* b) { return number_slot<Op::Add>(a, b); }
PyObject* nb_sub(PyObject* a, PyObject* b) { return number_slot<Op::Sub>(a, b); }
PyObject* nb_mul(PyObject* a, PyObject* b) { return number_slot<Op::Mul>(a, b); }
PyObject* nb_div(PyObject* a, PyObject* b) { return number_slot<Op::Div>(a, b); }
PyObject* nb_pow(PyObject* a, PyObject* b, PyObject* mod) {
  if (mod != Py_None) {
    PyErr_SetString(PyExc_TypeError, "pow() with a modulus is not defined for tapegrad.Var");
    return nullptr;
  }
  return number_slot<Op::Pow>(a, b);
}
PyObject* nb_neg(PyObject* a) { return unary<Op::Neg>(reinterpret_cast<VarObject*>(a)); }
PyObject* nb_pos(PyObject* a) {
  Py_INCREF(a);
  return a;
}
PyObject* nb_abs(PyObject* a) { return unary<Op::Abs>(reinterpret_cast<VarObject*>(a)); }
PyObject* nb_float(PyObject* a) { return PyFloat_FromDouble(reinterpret_cast<VarObject*>(a)->data); }
PyObject* nb_int(PyObject* a) { return PyLong_FromDouble(reinterpret_cast<VarObject*>(a)->data); }  // truncates
int nb_bool(PyObject* a) { return reinterpret_cast<VarObject*>(a)->data != 0.0; }

PyNumberMethods var_as_number = [] {
  PyNumberMethods m{};
  m.nb_add = nb_add;
  m.nb_subtract = nb_sub;
  m.nb_multiply = nb_mul;
  m.nb_true_divide = nb_div;
  m.nb_power = nb_pow;
  m.nb_negative = nb_neg;
  m.nb_positive = nb_pos;
  m.nb_absolute = nb_abs;
  m.nb_float = nb_float;
  m.nb_int = nb_int;
  m.nb_bool = nb_bool;
  return m;
}();

PyObject* var_richcompare(PyObject* a, PyObject* b, int op) {
  double x, y;
  for (auto [o, out] : {std::pair{a, &x}, std::pair{b, &y}}) {
    if (is_var(o)) {
      *out = reinterpret_cast<VarObject*>(o)->data;
    } else if (int r = as_double(o, out); r <= 0) {
      if (r < 0) return nullptr;
      Py_RETURN_NOTIMPLEMENTED;
    }
  }
  Py_RETURN_RICHCOMPARE(x, y, op);
}

Py_hash_t var_hash(PyObject* self) { return PyBaseObject_Type.tp_hash(self); }  // identity

PyObject* var_repr(PyObject* self) {
  auto* v = reinterpret_cast<VarObject*>(self);
  auto fmt = [](double d) {
    char* s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, nullptr);
    std::string out = s ? s : "?";
    PyMem_Free(s);
    return out;
  };
  std::string r = "Var(data=" + fmt(v->data);
  if ((v->flags & kLeaf) || (v->flags & kRetainGrad)) r += ", grad=" + fmt(v->grad);
  if (!(v->flags & kRequiresGrad)) r += ", requires_grad=False";
  r += ")";
  return PyUnicode_FromStringAndSize(r.data(), Py_ssize_t(r.size()));
}

PyObject* var_new(PyTypeObject*, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"data", "requires_grad", nullptr};
  PyObject* data = nullptr;
  int requires_grad = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Op:Var", const_cast<char**>(kw), &data, &requires_grad))
    return nullptr;
  double d = 0.0;
  if (data) {
    if (is_var(data)) {
      d = reinterpret_cast<VarObject*>(data)->data;
    } else if (int r = as_double(data, &d); r <= 0) {
      if (r == 0) return type_error("Var", data);
      return nullptr;
    }
  }
  return reinterpret_cast<PyObject*>(alloc_var(d, std::uint8_t(kLeaf | (requires_grad ? kRequiresGrad : 0))));
}

// --- attributes -----------------------------------------------------------------------
PyObject* get_data(PyObject* self, void*) { return PyFloat_FromDouble(reinterpret_cast<VarObject*>(self)->data); }
int set_data(PyObject* self, PyObject* value, void*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  if (!value) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete Var.data");
    return -1;
  }
  if (!(v->flags & kLeaf)) {
    PyErr_SetString(PyExc_AttributeError,
                    "Var.data can only be set on a leaf (a Var created directly), not on the result of an operation");
    return -1;
  }
  double d;
  const int r = is_var(value) ? (d = reinterpret_cast<VarObject*>(value)->data, 1) : as_double(value, &d);
  if (r == 0) {
    type_error("Var.data", value);
    return -1;
  }
  if (r < 0) return -1;
  // Graphs recorded before keep the old value (and still deliver gradients to this leaf);
  // the next operation records the new one.
  if (has_records(v)) v->records().forget(EnterTape{});
  v->data = d;
  return 0;
}
PyObject* get_grad(PyObject* self, void*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  if (!(v->flags & (kLeaf | kRetainGrad))) Py_RETURN_NONE;
  if (v->grad_var) {
    // The recorded gradient, while it is still the gradient (a later plain backward() that
    // reached this leaf changed the value: then the float) and its tape still has it.
    auto* g = reinterpret_cast<VarObject*>(v->grad_var);
    if (g->data == v->grad && ((g->flags & kLeaf) || has_live_root(g))) {
      Py_INCREF(v->grad_var);
      return v->grad_var;
    }
    Py_CLEAR(v->grad_var);
  }
  return PyFloat_FromDouble(v->grad);
}
int set_grad(PyObject* self, PyObject* value, void*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  if (!(v->flags & (kLeaf | kRetainGrad))) {
    PyErr_SetString(PyExc_AttributeError,
                    "Var.grad of a non-leaf is not kept; call retain_grad() on it before backward()");
    return -1;
  }
  double d = 0.0;
  PyObject* recorded = nullptr;  // a recorded Var given as the gradient (kept, as backward keeps one)
  if (value && is_var(value)) {
    auto* g = reinterpret_cast<VarObject*>(value);
    d = g->data;
    if (!(g->flags & kLeaf) && has_live_root(g)) recorded = value;
  } else if (value && value != Py_None) {
    const int r = as_double(value, &d);
    if (r == 0) type_error("Var.grad", value);
    if (r <= 0) return -1;
  }
  v->grad = d;
  Py_XINCREF(recorded);
  Py_XSETREF(v->grad_var, recorded);
  return 0;
}
PyObject* get_is_leaf(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<VarObject*>(self)->flags & kLeaf);
}
PyObject* get_requires_grad(PyObject* self, void*) {
  return PyBool_FromLong(reinterpret_cast<VarObject*>(self)->flags & kRequiresGrad);
}
PyObject* get_tape(PyObject* self, void*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  if (!has_live_root(v) || (v->flags & kLeaf)) Py_RETURN_NONE;
  Py_INCREF(v->tape_obj);
  return v->tape_obj;
}

PyGetSetDef var_getset[] = {
    {"data", get_data, set_data, "The value (a float). Settable on leaves.", nullptr},
    {"grad", get_grad, set_grad,
     "The accumulated gradient (a float): what every backward() through this Var gave it (micrograd's semantics, for results too).", nullptr},
    {"is_leaf", get_is_leaf, nullptr, "True for a Var created directly rather than by an operation.", nullptr},
    {"requires_grad", get_requires_grad, nullptr, "Whether gradients flow to and through this Var.", nullptr},
    {"tape", get_tape, nullptr, "The Tape a non-leaf Var is recorded on (None for leaves).", nullptr},
    {"_prev", get_prev, nullptr,
     "The Vars this one was computed from (a set; empty for a leaf), as micrograd's Value._prev: one object per "
     "record, so that a walk of the graph by identity (micrograd's draw_dot) sees each once.",
     nullptr},
    {"_op", get_op, nullptr, "The op that made this Var, in micrograd's spelling ('+', '*', '**2', 'tanh'; '' for a leaf).",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyObject* var_detach(PyObject* self, PyObject*) {
  return reinterpret_cast<PyObject*>(alloc_var(reinterpret_cast<VarObject*>(self)->data, kLeaf));
}
PyObject* var_item(PyObject* self, PyObject*) { return nb_float(self); }
// Pickling and copy.copy/deepcopy give a leaf with the same value (a graph is not copied).
PyObject* var_reduce(PyObject* self, PyObject*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  return Py_BuildValue("(O(dO))", reinterpret_cast<PyObject*>(&VarType), v->data,
                       (v->flags & kRequiresGrad) ? Py_True : Py_False);
}
// round(v) and round(v, n) round the value, as for a float (no gradient flows).
PyObject* var_round(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "Var.__round__ takes at most 1 argument");
    return nullptr;
  }
  PyObject* f = nb_float(self);
  if (!f) return nullptr;
  PyObject* out = nargs ? PyObject_CallMethod(f, "__round__", "O", args[0]) : PyObject_CallMethod(f, "__round__", nullptr);
  Py_DECREF(f);
  return out;
}
PyObject* var_format(PyObject* self, PyObject* spec) {
  if (!PyUnicode_Check(spec)) {
    PyErr_Format(PyExc_TypeError, "Var.__format__: the format spec must be a str, not %.100s", Py_TYPE(spec)->tp_name);
    return nullptr;
  }
  PyObject* f = nb_float(self);
  if (!f) return nullptr;
  PyObject* out = PyObject_Format(f, spec);
  Py_DECREF(f);
  return out;
}

#define TAPEGRAD_METHOD_DOC(name) "The op `" #name "` of tapegrad's op table."
PyMethodDef var_methods[] = {
#define TAPEGRAD_UNARY(Name, name, ...) \
  {#name, unary_method<Op::Name>, METH_NOARGS, TAPEGRAD_METHOD_DOC(name)},
#define TAPEGRAD_BINARY(Name, name, ...) \
  {#name, binary_method<Op::Name>, METH_O, TAPEGRAD_METHOD_DOC(name)},
#include "tapegrad/ops.def"
    {"backward", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(var_backward)),
     METH_VARARGS | METH_KEYWORDS,
     "backward(gradient=1.0, retain_graph=None, create_graph=False)\n\nAccumulates d(self)/d(leaf) * gradient "
     "into the .grad of every leaf this Var depends on (and of non-leaves that called retain_grad()). With "
     "create_graph=True the sweep is recorded: each leaf's .grad is then a Var that can be differentiated again."},
    {"retain_grad", var_retain_grad, METH_NOARGS,
     "Kept for PyTorch's spelling: every Var keeps its .grad already (as micrograd's Value does)."},
    {"register_hook", var_register_hook, METH_O,
     "register_hook(hook)\n\nCalls hook(grad) with this Var's gradient each time a backward() (or grad()) has summed "
     "it, before it flows on to the Vars it was computed from (for a leaf: before it is added into .grad). "
     "The gradient is a float, or a Var under create_graph=True; returning a number or a Var replaces it, "
     "None keeps it. Returns a handle whose remove() unregisters the hook."},
    {"_remove_hook", var_remove_hook, METH_O, "Unregisters hook id (see register_hook's handle)."},
    {"detach", var_detach, METH_NOARGS, "A new leaf with the same value that does not require grad."},
    {"item", var_item, METH_NOARGS, "The value as a float."},
    {"__reduce__", var_reduce, METH_NOARGS, "Pickles as a leaf with the same value and requires_grad."},
    {"__format__", var_format, METH_O, "Formats the value like a float."},
    {"__round__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(var_round)), METH_FASTCALL,
     "Rounds the value like a float."},
    {nullptr, nullptr, 0, nullptr},
};

PyMethodDef module_functions[] = {
    {"_set_hook_handle_type", set_hook_handle_type, METH_O,
     "The class register_hook() returns (called with the object and the hook's id)."},
    {"_var_grad", var_grad_function, METH_VARARGS, "tapegrad.autograd.grad for Vars."},
    {"_var_jvp", var_jvp_function, METH_VARARGS, "tapegrad.autograd.jvp for Vars."},
#define TAPEGRAD_UNARY(Name, name, ...) \
  {#name, unary_function<Op::Name>, METH_O, TAPEGRAD_METHOD_DOC(name) " Takes a Var or a real number."},
#define TAPEGRAD_BINARY(Name, name, ...)                                                              \
  {#name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(binary_function<Op::Name>)), \
   METH_FASTCALL, TAPEGRAD_METHOD_DOC(name) " Takes Vars or real numbers."},
#include "tapegrad/ops.def"
    {nullptr, nullptr, 0, nullptr},
};

bool is_var_object(PyObject* o) { return is_var(o); }

void set_tensor_ops(PyObject* module) {
  Py_XINCREF(module);
  Py_XSETREF(g_tensor_ops, module);
}

double var_value(PyObject* o) { return reinterpret_cast<VarObject*>(o)->data; }

ActiveTape var_tape(PyObject* o) {
  auto* v = reinterpret_cast<VarObject*>(o);
  if (!needs_grad(v) || (v->flags & kLeaf)) return {nullptr, nullptr};
  if (!has_live_root(v)) throw_stale();
  return {v->tape_obj, v->tape};
}

std::uint32_t var_record_on(PyObject* o, ActiveTape t) {
  auto* v = reinterpret_cast<VarObject*>(o);
  if (!needs_grad(v)) return Tape::kNone;
  return operand_record(v, t.obj, t.tape);
}

PyObject* var_of_sink(double* target) { return reinterpret_cast<PyObject*>(sink_owner(target)); }

int register_var(PyObject* module) {
  PyObject* numbers = PyImport_ImportModule("numbers");
  if (!numbers) return -1;
  g_numbers_real = PyObject_GetAttrString(numbers, "Real");
  Py_DECREF(numbers);
  if (!g_numbers_real) return -1;

  VarType.tp_name = "tapegrad.Var";
  VarType.tp_basicsize = sizeof(VarObject);
  VarType.tp_flags = Py_TPFLAGS_DEFAULT;
  VarType.tp_doc =
      "Var(data=0.0, requires_grad=True)\n\n"
      "A scalar that records the operations applied to it, so that backward() can compute "
      "gradients. Operators and the functions of tapegrad's op table work with plain "
      "numbers on either side.";
  VarType.tp_new = var_new;
  VarType.tp_dealloc = var_dealloc;
  VarType.tp_repr = var_repr;
  VarType.tp_as_number = &var_as_number;
  VarType.tp_richcompare = var_richcompare;
  VarType.tp_hash = var_hash;
  VarType.tp_methods = var_methods;
  VarType.tp_getset = var_getset;
  if (PyType_Ready(&VarType) < 0) return -1;
  // NumPy must defer to Var's reflected operators: ndarray * Var is not an object array.
  if (PyDict_SetItemString(VarType.tp_dict, "__array_ufunc__", Py_None) < 0) return -1;
  PyType_Modified(&VarType);
  Py_INCREF(&VarType);
  if (PyModule_AddObject(module, "Var", reinterpret_cast<PyObject*>(&VarType)) < 0) return -1;
  return PyModule_AddFunctions(module, module_functions);
}

}  // namespace tgpy
