// tapegrad.Var: the scalar type, written against the CPython API so that one operation from
// Python costs a few tens of nanoseconds (micrograd's Value costs microseconds). Every
// arithmetic slot converts its operands and records one op of the table on a tape.
#include <algorithm>
#include <new>
#include <vector>
#include <string>

#include "core.hpp"

using tapegrad::Op;
using tapegrad::Tape;

namespace tgpy {
namespace {

enum : std::uint8_t {
  kLeaf = 1,          // created by the user (or detached): owns its value and .grad
  kRequiresGrad = 2,  // takes part in differentiation (leaves: recorded on first use)
  kRetainGrad = 4,    // a non-leaf whose .grad is kept (retain_grad())
};

// Where a leaf's records on one tape deliver their adjoints: its .grad, through a sink slot.
struct SinkRef {
  PyObject* tape_obj;  // strong reference
  PyTape* tape;
  std::uint32_t epoch;
  std::uint32_t slot;
  bool live() const { return tape && epoch == tape->tape.epoch(); }
};

struct VarObject {
  PyObject_HEAD
  double data;
  double grad;
  PyObject* tape_obj;  // strong reference to the tape holding our current record, or null
  PyTape* tape;
  std::uint32_t root;   // the root of our current record on that tape (Tape::kNone: none)
  std::uint32_t epoch;  // the tape's epoch when the root was made
  std::uint8_t flags;
  // Leaves: one sink per tape they were recorded on (a leaf shared by threads, or used
  // inside and outside a `with Tape()` block, collects its gradient from all of them).
  SinkRef sink;                     // the first; the rest in more_sinks
  std::vector<SinkRef>* more_sinks;
  // A recorded gradient (backward(create_graph=True)): a Var whose value is `grad`, on the
  // tape, so that it can be differentiated again. Dropped when .grad is set or changes.
  PyObject* grad_var;
};

PyTypeObject VarType = {PyVarObject_HEAD_INIT(nullptr, 0)};
PyObject* g_numbers_real = nullptr;  // numbers.Real, for NumPy scalars and friends
PyObject* g_tensor_ops = nullptr;    // tapegrad._core.tensor_ops (set by register_tensor)

inline bool is_var(PyObject* o) { return Py_TYPE(o) == &VarType; }

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

// Runs f, turning C++ exceptions into Python ones.
template <class F>
PyObject* guarded(F&& f) {
  try {
    return f();
  } catch (const tapegrad::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
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
  v->sink = SinkRef{nullptr, nullptr, 0, 0};
  v->more_sinks = nullptr;
  v->grad_var = nullptr;
  return v;
}

inline bool has_live_root(const VarObject* v) {
  return v->tape && v->root != Tape::kNone && v->epoch == v->tape->tape.epoch();
}

// Drops v's root on its tape. A tape left with no non-leaf Var is cleared: O(1), and
// nothing that Python can still reach needs its records.
void release_root(VarObject* v) {
  if (has_live_root(v)) {
    Tape& t = v->tape->tape;
    t.remove_root(v->root);
    if (!(v->flags & kLeaf) && t.live_nonleaf_roots() == 0) {
      t.clear();
      v->tape->reset_policy();
    }
  }
  v->root = Tape::kNone;
}

void set_tape(VarObject* v, PyObject* obj, PyTape* tape) {
  Py_XINCREF(obj);
  Py_XSETREF(v->tape_obj, obj);
  v->tape = tape;
}

void drop_sink(SinkRef& s) {
  if (s.live()) s.tape->tape.remove_sink(s.slot);
  Py_CLEAR(s.tape_obj);
  s.tape = nullptr;
}

void var_dealloc(PyObject* self) {
  auto* v = reinterpret_cast<VarObject*>(self);
  release_root(v);
  Py_CLEAR(v->tape_obj);
  Py_CLEAR(v->grad_var);
  drop_sink(v->sink);
  if (v->more_sinks) {
    for (SinkRef& s : *v->more_sinks) drop_sink(s);
    delete v->more_sinks;
  }
  PyObject_Free(self);
}

// The sink slot of leaf v on tape t (made on first use in each epoch of t).
std::uint32_t sink_on(VarObject* v, PyObject* tobj, PyTape* t) {
  SinkRef* spare = nullptr;  // an entry that is empty or from a tape's older epoch
  auto visit = [&](SinkRef& s) -> bool {
    if (s.tape == t && s.live()) return true;
    if (!spare && !s.live()) spare = &s;
    return false;
  };
  if (visit(v->sink)) return v->sink.slot;
  if (v->more_sinks)
    for (SinkRef& s : *v->more_sinks)
      if (visit(s)) return s.slot;
  if (!spare) {
    if (!v->more_sinks) v->more_sinks = new std::vector<SinkRef>();
    v->more_sinks->push_back(SinkRef{nullptr, nullptr, 0, 0});
    spare = &v->more_sinks->back();
  }
  const std::uint32_t slot = t->tape.add_sink(&v->grad);
  if (spare->tape_obj != tobj) {
    Py_INCREF(tobj);
    Py_XSETREF(spare->tape_obj, tobj);
  }
  *spare = SinkRef{spare->tape_obj, t, t->tape.epoch(), slot};
  return slot;
}

[[noreturn]] void throw_stale() {
  throw tapegrad::Error(
      "tapegrad: this Var is stale: its tape was cleared after the Var was recorded "
      "(Tape.clear() invalidates every non-leaf Var recorded on it)");
}

// The record of operand v on tape t. A leaf is recorded on first use (and again after its
// value changed, or on another tape); all its records deliver into its .grad.
std::uint32_t operand_record(VarObject* v, PyObject* tobj, PyTape* t) {
  if (has_live_root(v) && v->tape == t) return t->tape.root_record(v->root);
  if (!(v->flags & kLeaf)) throw_stale();
  const std::uint32_t slot = sink_on(v, tobj, t);
  release_root(v);  // older records stay (if reachable), delivering through the same sink
  const std::uint32_t rec = t->tape.push_leaf(v->data, slot);
  v->root = t->tape.add_root(rec, nullptr, true);
  v->epoch = t->tape.epoch();
  set_tape(v, tobj, t);
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
  if (n) return {n->tape_obj, n->tape};
  ActiveTape t = active_tape();
  if (!t.obj) throw std::bad_alloc();
  return t;
}

// A non-leaf Var for record `rec` of t. With `collect`, the tape may be collected after
// (which makes other handles to it stale): callers wrapping several records pass false.
PyObject* new_result(ActiveTape t, std::uint32_t rec, double z, bool collect = true) {
  VarObject* r = alloc_var(z, kRequiresGrad);
  if (!r) return nullptr;
  set_tape(r, t.obj, t.tape);
  r->epoch = t.tape->tape.epoch();
  try {
    r->root = t.tape->tape.add_root(rec, nullptr, false);
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

inline bool needs_grad(const VarObject* v) { return v && (v->flags & kRequiresGrad) && tapegrad::grad_enabled(); }

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
    std::uint32_t rec;
    if (ga && gb) {
      const std::uint32_t ra = operand_record(va, t.obj, t.tape);
      const std::uint32_t rb = operand_record(vb, t.obj, t.tape);
      rec = tp.push(op, ra, rb, z);
    } else if (ga) {
      const std::uint32_t ra = operand_record(va, t.obj, t.tape);
      rec = tp.push(tapegrad::with_const_right(op), ra, tp.push_constant(y), z);
    } else {
      const std::uint32_t rb = operand_record(vb, t.obj, t.tape);
      rec = tp.push(tapegrad::with_const_left(op), rb, tp.push_constant(x), z);
    }
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
PyObject* nb_add(PyObject* a, PyObject* b) { return binary<Op::Add>(a, b); }
PyObject* nb_sub(PyObject* a, PyObject* b) { return binary<Op::Sub>(a, b); }
PyObject* nb_mul(PyObject* a, PyObject* b) { return binary<Op::Mul>(a, b); }
PyObject* nb_div(PyObject* a, PyObject* b) { return binary<Op::Div>(a, b); }
PyObject* nb_pow(PyObject* a, PyObject* b, PyObject* mod) {
  if (mod != Py_None) {
    PyErr_SetString(PyExc_TypeError, "pow() with a modulus is not defined for tapegrad.Var");
    return nullptr;
  }
  return binary<Op::Pow>(a, b);
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
  release_root(v);
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
  if (value && value != Py_None) {
    const int r = as_double(value, &d);
    if (r == 0) type_error("Var.grad", value);
    if (r <= 0) return -1;
  }
  v->grad = d;
  Py_CLEAR(v->grad_var);
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
     "The accumulated gradient (a float) of a leaf; None for a non-leaf unless retain_grad() was called.", nullptr},
    {"is_leaf", get_is_leaf, nullptr, "True for a Var created directly rather than by an operation.", nullptr},
    {"requires_grad", get_requires_grad, nullptr, "Whether gradients flow to and through this Var.", nullptr},
    {"tape", get_tape, nullptr, "The Tape a non-leaf Var is recorded on (None for leaves).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// --- methods --------------------------------------------------------------------------
// The leaf whose .grad is sink target `target` (sinks always point into a VarObject).
VarObject* sink_owner(double* target) {
  return reinterpret_cast<VarObject*>(reinterpret_cast<char*>(target) - offsetof(VarObject, grad));
}

}  // namespace

void set_recorded_leaf_grads(ActiveTape t, std::uint32_t from, const std::vector<tapegrad::Var>& adj,
                             const std::vector<char>& has) {
  Tape& tape = t.tape->tape;
  // Each reached leaf: the sum over its records.
  std::vector<std::pair<VarObject*, tapegrad::Var>> sums;
  for (std::uint32_t i = 0; i <= from; ++i) {
    const tapegrad::Record r = tape.record(i);
    if (!has[i] || r.op != Op::Leaf || r.a == Tape::kNone) continue;
    double* target = tape.sink_target(r.a);
    if (!target) continue;
    VarObject* leaf = sink_owner(target);
    bool found = false;
    for (auto& [v, g] : sums)
      if (v == leaf) {
        tapegrad::ScopedTape scope(tape);
        g = g + adj[i];
        found = true;
      }
    if (!found) sums.emplace_back(leaf, adj[i]);
  }
  tapegrad::ScopedTape scope(tape);
  for (auto& [leaf, g] : sums) {
    // The new gradient: the recorded one it had (if still current on this tape), or the
    // value it had before this sweep, plus this sweep's.
    tapegrad::Var before = tapegrad::Var::constant(leaf->grad - g.value());
    if (leaf->grad_var) {
      auto* old = reinterpret_cast<VarObject*>(leaf->grad_var);
      if (old->tape == t.tape && has_live_root(old) && old->data == before.value())
        before = tapegrad::Var(old->data, tape.root_record(old->root), tape.generation(), &tape);
    }
    const tapegrad::Var total = before.is_constant() && before.value() == 0.0 ? g : before + g;
    PyObject* obj = wrap_recorded(total, t);
    if (!obj) throw std::bad_alloc();
    Py_XSETREF(leaf->grad_var, obj);
    leaf->grad = total.value();
  }
  t.tape->maybe_collect();
}

namespace {
// backward(create_graph=True) from non-leaf `out` (record `from`): the recorded sweep (it
// also delivers the values), then each reached leaf's .grad becomes a Var on the tape.
void recorded_var_backward(VarObject* out, std::uint32_t from, double seed) {
  std::vector<tapegrad::Var> adj(from + 1);
  std::vector<char> has(from + 1, 0);
  adj[from] = tapegrad::Var::constant(seed);
  has[from] = 1;
  tapegrad::detail::recorded_backward_sweep(out->tape->tape, from, adj, has);
  set_recorded_leaf_grads(ActiveTape{out->tape_obj, out->tape}, from, adj, has);
}

PyObject* var_backward(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"gradient", "retain_graph", "create_graph", nullptr};
  PyObject* gradient = Py_None;
  PyObject* retain_graph = Py_None;  // accepted for PyTorch compatibility: graphs are always kept
  int create_graph = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOp:backward", const_cast<char**>(kw), &gradient, &retain_graph,
                                   &create_graph))
    return nullptr;
  double seed = 1.0;
  if (gradient != Py_None) {
    const int r = is_var(gradient) ? (seed = reinterpret_cast<VarObject*>(gradient)->data, 1) : as_double(gradient, &seed);
    if (r == 0) return type_error("Var.backward(gradient=...)", gradient);
    if (r < 0) return nullptr;
  }
  auto* v = reinterpret_cast<VarObject*>(self);
  if (!(v->flags & kRequiresGrad)) {
    PyErr_SetString(PyExc_RuntimeError,
                    "backward(): this Var does not require grad (it was made with requires_grad=False, "
                    "detached, or computed from such Vars only)");
    return nullptr;
  }
  return guarded([&]() -> PyObject* {
    if (v->flags & kLeaf) {
      v->grad += seed;  // d v/d v
      Py_RETURN_NONE;
    }
    if (!has_live_root(v)) throw_stale();
    Tape& t = v->tape->tape;
    const std::uint32_t from = t.root_record(v->root);
    if (create_graph) {
      recorded_var_backward(v, from, seed);
      Py_RETURN_NONE;
    }
    t.reverse(from, seed);
    t.accumulate_root_grads();
    Py_RETURN_NONE;
  });
}

PyObject* var_retain_grad(PyObject* self, PyObject*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  if (!(v->flags & kLeaf) && !(v->flags & kRetainGrad)) {
    if (!has_live_root(v)) return guarded([]() -> PyObject* { throw_stale(); });
    v->flags |= kRetainGrad;
    v->grad = 0.0;
    v->tape->tape.set_root_grad(v->root, &v->grad);
  }
  Py_RETURN_NONE;
}

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
    {"retain_grad", var_retain_grad, METH_NOARGS, "Keep .grad on this non-leaf Var at the next backward()."},
    {"detach", var_detach, METH_NOARGS, "A new leaf with the same value that does not require grad."},
    {"item", var_item, METH_NOARGS, "The value as a float."},
    {"__reduce__", var_reduce, METH_NOARGS, "Pickles as a leaf with the same value and requires_grad."},
    {"__format__", var_format, METH_O, "Formats the value like a float."},
    {"__round__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(var_round)), METH_FASTCALL,
     "Rounds the value like a float."},
    {nullptr, nullptr, 0, nullptr},
};

// The records of each Var of `seq` on tape t up to record `to`: a non-leaf's record, or every
// record of a leaf (one per value it had when used, all delivering into its sink here).
std::vector<std::vector<std::uint32_t>> records_of(PyObject* seq, PyTape* t, std::uint32_t to) {
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  std::vector<std::vector<std::uint32_t>> recs(static_cast<std::size_t>(n));
  const Tape& tape = t->tape;
  for (Py_ssize_t k = 0; k < n; ++k) {
    auto* x = reinterpret_cast<VarObject*>(PySequence_Fast_GET_ITEM(seq, k));
    if (!(x->flags & kRequiresGrad)) continue;
    if (!(x->flags & kLeaf)) {
      if (has_live_root(x) && x->tape == t && tape.root_record(x->root) <= to)
        recs[static_cast<std::size_t>(k)].push_back(tape.root_record(x->root));
      continue;
    }
    std::uint32_t slot = Tape::kNone;
    auto visit = [&](const SinkRef& sr) {
      if (sr.tape == t && sr.live()) slot = sr.slot;
    };
    visit(x->sink);
    if (x->more_sinks)
      for (const SinkRef& sr : *x->more_sinks) visit(sr);
    if (slot == Tape::kNone) continue;
    for (std::uint32_t i = 0; i <= to && i < tape.size(); ++i)
      if (tape.record(i).op == Op::Leaf && tape.record(i).a == slot) recs[static_cast<std::size_t>(k)].push_back(i);
  }
  return recs;
}

// _var_jvp with create_graph: the tangents as Vars on the outputs' tape (the rules run on
// Var), so the results can be differentiated again. A tangent may be a Var that requires grad.
PyObject* recorded_var_jvp(PyObject* outs, PyObject* ins, PyObject* tans, ActiveTape t,
                           const std::vector<std::uint32_t>& out_recs, const std::vector<Py_ssize_t>& which) {
  const Py_ssize_t no = PySequence_Fast_GET_SIZE(outs), ni = PySequence_Fast_GET_SIZE(ins);
  Tape& tape = t.tape->tape;
  tapegrad::ScopedTape scope(tape);
  std::vector<tapegrad::Var> tv(static_cast<std::size_t>(ni));
  for (Py_ssize_t k = 0; k < ni; ++k) {
    PyObject* x = PySequence_Fast_GET_ITEM(ins, k);
    if (!is_var(x)) throw tapegrad::Error(std::string("tapegrad: jvp(): inputs must all be Vars, not ") + Py_TYPE(x)->tp_name);
    PyObject* v = PySequence_Fast_GET_ITEM(tans, k);
    double d = 0.0;
    if (is_var(v)) {
      auto* vv = reinterpret_cast<VarObject*>(v);
      tv[static_cast<std::size_t>(k)] = (vv->flags & kRequiresGrad)
                                            ? tapegrad::Var(vv->data, operand_record(vv, t.obj, t.tape), tape.generation(), &tape)
                                            : tapegrad::Var::constant(vv->data);
    } else if (v != Py_None && as_double(v, &d) <= 0) {
      PyErr_Clear();
      throw tapegrad::Error(std::string("tapegrad: jvp(): a tangent must be a number or a Var, not ") + Py_TYPE(v)->tp_name);
    } else {
      tv[static_cast<std::size_t>(k)] = tapegrad::Var::constant(d);
    }
  }
  const std::uint32_t to = *std::max_element(out_recs.begin(), out_recs.end());
  const auto recs = records_of(ins, t.tape, to);
  std::vector<std::pair<std::uint32_t, tapegrad::Var>> seeds;
  for (Py_ssize_t k = 0; k < ni; ++k)
    for (std::uint32_t rec : recs[static_cast<std::size_t>(k)]) seeds.emplace_back(rec, tv[static_cast<std::size_t>(k)]);
  const std::vector<tapegrad::Var> d = tapegrad::detail::recorded_tangents(tape, seeds, out_recs);
  std::vector<tapegrad::Var> res(static_cast<std::size_t>(no));
  for (std::size_t j = 0; j < which.size(); ++j) res[static_cast<std::size_t>(which[j])] = d[j];
  for (Py_ssize_t o = 0; o < no; ++o) {  // a leaf output that is an input: its tangent
    PyObject* y = PySequence_Fast_GET_ITEM(outs, o);
    if (!(reinterpret_cast<VarObject*>(y)->flags & kLeaf)) continue;
    for (Py_ssize_t k = 0; k < ni; ++k)
      if (PySequence_Fast_GET_ITEM(ins, k) == y) res[static_cast<std::size_t>(o)] = res[static_cast<std::size_t>(o)] + tv[static_cast<std::size_t>(k)];
  }
  PyObject* tuple = PyTuple_New(no);
  if (!tuple) return nullptr;
  for (Py_ssize_t o = 0; o < no; ++o) {
    PyObject* item = wrap_recorded(res[static_cast<std::size_t>(o)], t);
    if (!item) {
      Py_DECREF(tuple);
      return nullptr;
    }
    PyTuple_SET_ITEM(tuple, o, item);
  }
  t.tape->maybe_collect();
  return tuple;
}

// tapegrad.autograd.jvp for Vars: _var_jvp(outputs, inputs, tangents, create_graph=False) ->
// tuple of Vars: one tangent sweep forward over the scalar records, a loop on doubles (results
// that do not require grad), or with create_graph on Vars (recorded results).
PyObject* var_jvp_function(PyObject*, PyObject* args) {
  PyObject *outs_obj, *ins_obj, *tans_obj;
  int create_graph = 0;
  if (!PyArg_ParseTuple(args, "OOO|p:_var_jvp", &outs_obj, &ins_obj, &tans_obj, &create_graph)) return nullptr;
  PyObject* outs = PySequence_Fast(outs_obj, "outputs must be a sequence");
  if (!outs) return nullptr;
  PyObject* ins = PySequence_Fast(ins_obj, "inputs must be a sequence");
  PyObject* tans = ins ? PySequence_Fast(tans_obj, "tangents must be a sequence") : nullptr;
  PyObject* result = !tans ? nullptr : guarded([&]() -> PyObject* {
    const Py_ssize_t no = PySequence_Fast_GET_SIZE(outs), ni = PySequence_Fast_GET_SIZE(ins);
    if (PySequence_Fast_GET_SIZE(tans) != ni)
      throw tapegrad::Error("tapegrad: jvp(): " + std::to_string(PySequence_Fast_GET_SIZE(tans)) + " tangents for " +
                            std::to_string(ni) + " inputs");
    PyTape* t = nullptr;
    PyObject* tobj = nullptr;
    std::vector<std::uint32_t> out_recs;
    std::vector<Py_ssize_t> which;
    std::vector<double> values(static_cast<std::size_t>(no), 0.0);
    for (Py_ssize_t k = 0; k < no; ++k) {
      PyObject* o = PySequence_Fast_GET_ITEM(outs, k);
      if (!is_var(o)) throw tapegrad::Error(std::string("tapegrad: jvp(): outputs must all be Vars, not ") + Py_TYPE(o)->tp_name);
      auto* y = reinterpret_cast<VarObject*>(o);
      if (!(y->flags & kRequiresGrad) || (y->flags & kLeaf)) continue;
      if (!has_live_root(y)) throw_stale();
      if (t && t != y->tape) throw tapegrad::Error("tapegrad: jvp(): the outputs were recorded on different tapes");
      t = y->tape;
      tobj = y->tape_obj;
      out_recs.push_back(t->tape.root_record(y->root));
      which.push_back(k);
    }
    if (create_graph && t) return recorded_var_jvp(outs, ins, tans, ActiveTape{tobj, t}, out_recs, which);
    std::vector<double> tv(static_cast<std::size_t>(ni));
    for (Py_ssize_t k = 0; k < ni; ++k) {
      PyObject* x = PySequence_Fast_GET_ITEM(ins, k);
      if (!is_var(x)) throw tapegrad::Error(std::string("tapegrad: jvp(): inputs must all be Vars, not ") + Py_TYPE(x)->tp_name);
      PyObject* v = PySequence_Fast_GET_ITEM(tans, k);
      const int r = v == Py_None ? (tv[static_cast<std::size_t>(k)] = 0.0, 1)
                    : is_var(v)  ? (tv[static_cast<std::size_t>(k)] = reinterpret_cast<VarObject*>(v)->data, 1)
                                 : as_double(v, &tv[static_cast<std::size_t>(k)]);
      if (r <= 0) {
        PyErr_Clear();
        throw tapegrad::Error(std::string("tapegrad: jvp(): a tangent must be a number, not ") + Py_TYPE(v)->tp_name);
      }
      // A leaf output that is this input: d x/d x = its tangent.
      for (Py_ssize_t o = 0; o < no; ++o)
        if (PySequence_Fast_GET_ITEM(outs, o) == x && (reinterpret_cast<VarObject*>(x)->flags & kLeaf))
          values[static_cast<std::size_t>(o)] += tv[static_cast<std::size_t>(k)];
    }
    if (t && !out_recs.empty()) {
      const std::uint32_t to = *std::max_element(out_recs.begin(), out_recs.end());
      const auto recs = records_of(ins, t, to);
      std::vector<std::pair<std::uint32_t, double>> seeds;
      for (Py_ssize_t k = 0; k < ni; ++k)
        for (std::uint32_t rec : recs[static_cast<std::size_t>(k)]) seeds.emplace_back(rec, tv[static_cast<std::size_t>(k)]);
      const std::vector<double> d = tapegrad::detail::scalar_tangents(t->tape, seeds, out_recs);
      for (std::size_t j = 0; j < which.size(); ++j) values[static_cast<std::size_t>(which[j])] = d[j];
    }
    PyObject* tuple = PyTuple_New(no);
    if (!tuple) return nullptr;
    for (Py_ssize_t o = 0; o < no; ++o) {
      PyObject* item = reinterpret_cast<PyObject*>(alloc_var(values[static_cast<std::size_t>(o)], kLeaf));
      if (!item) {
        Py_DECREF(tuple);
        return nullptr;
      }
      PyTuple_SET_ITEM(tuple, o, item);
    }
    return tuple;
  });
  Py_DECREF(outs);
  Py_XDECREF(ins);
  Py_XDECREF(tans);
  return result;
}

// tapegrad.autograd.grad for Vars: _var_grad(outputs, inputs, grad_outputs, create_graph,
// allow_unused) -> tuple of Var or None. No .grad changes. The results are Vars: recorded
// (differentiable again) with create_graph, else leaves that do not require grad.
PyObject* var_grad_function(PyObject*, PyObject* args) {
  PyObject *outs_obj, *ins_obj, *seeds_obj;
  int create_graph = 0, allow_unused = 0;
  if (!PyArg_ParseTuple(args, "OOOpp:_var_grad", &outs_obj, &ins_obj, &seeds_obj, &create_graph, &allow_unused))
    return nullptr;
  PyObject* outs = PySequence_Fast(outs_obj, "outputs must be a sequence");
  if (!outs) return nullptr;
  PyObject* ins = PySequence_Fast(ins_obj, "inputs must be a sequence");
  if (!ins) {
    Py_DECREF(outs);
    return nullptr;
  }
  PyObject* seeds = seeds_obj == Py_None ? nullptr : PySequence_Fast(seeds_obj, "grad_outputs must be a sequence");
  PyObject* result = guarded([&]() -> PyObject* {
    const Py_ssize_t no = PySequence_Fast_GET_SIZE(outs), ni = PySequence_Fast_GET_SIZE(ins);
    if (seeds_obj != Py_None && !seeds) throw tapegrad::Error("tapegrad: grad(): grad_outputs must be a sequence");
    if (seeds && PySequence_Fast_GET_SIZE(seeds) != no)
      throw tapegrad::Error("tapegrad: grad(): grad_outputs has a different length than outputs");
    auto var_at = [](PyObject* seq, Py_ssize_t k, const char* what) {
      PyObject* o = PySequence_Fast_GET_ITEM(seq, k);
      if (!is_var(o))
        throw tapegrad::Error(std::string("tapegrad: grad(): ") + what + " must all be Vars (or all Tensors), not " +
                              Py_TYPE(o)->tp_name);
      return reinterpret_cast<VarObject*>(o);
    };
    // The outputs' tape.
    ActiveTape t{nullptr, nullptr};
    for (Py_ssize_t k = 0; k < no; ++k) {
      VarObject* y = var_at(outs, k, "outputs");
      if (!(y->flags & kRequiresGrad))
        throw tapegrad::Error("tapegrad: grad(): an output does not require grad");
      if (y->flags & kLeaf) continue;
      if (!has_live_root(y)) throw_stale();
      if (t.tape && t.tape != y->tape) throw tapegrad::Error("tapegrad: grad(): the outputs were recorded on different tapes");
      t = {y->tape_obj, y->tape};
    }
    for (Py_ssize_t k = 0; k < ni; ++k) var_at(ins, k, "inputs");
    if (!t.tape) t = active_tape();
    if (!t.obj) throw std::bad_alloc();
    Tape& tape = t.tape->tape;
    tapegrad::ScopedTape scope(tape);
    const std::uint32_t gen = tape.generation();
    auto handle = [&](VarObject* v) {
      if (!(v->flags & kRequiresGrad)) return tapegrad::Var::constant(v->data);
      return tapegrad::Var(v->data, operand_record(v, t.obj, t.tape), gen, &tape);
    };
    // One output: sum_k seed_k y_k.
    tapegrad::Var total;
    for (Py_ssize_t k = 0; k < no; ++k) {
      const tapegrad::Var y = handle(reinterpret_cast<VarObject*>(PySequence_Fast_GET_ITEM(outs, k)));
      PyObject* s = seeds ? PySequence_Fast_GET_ITEM(seeds, k) : Py_None;
      tapegrad::Var term = y;
      if (s != Py_None) {
        double d = 0.0;
        if (is_var(s)) {
          term = y * handle(reinterpret_cast<VarObject*>(s));
        } else {
          const int r = as_double(s, &d);
          if (r == 0) throw tapegrad::Error(std::string("tapegrad: grad(): a grad_output must be a number or a Var, not ") +
                                            Py_TYPE(s)->tp_name);
          if (r < 0) {
            PyErr_Clear();
            throw tapegrad::Error("tapegrad: grad(): a grad_output could not be converted to a float");
          }
          if (d != 1.0) term = y * d;
        }
      }
      total = k == 0 ? term : total + term;
    }
    const std::uint32_t from = total.is_constant() ? 0 : total.index();
    std::vector<std::vector<std::uint32_t>> recs;
    if (!total.is_constant()) recs = records_of(ins, t.tape, from);
    recs.resize(static_cast<std::size_t>(ni));
    PyObject* tuple = PyTuple_New(ni);
    if (!tuple) return nullptr;
    try {
      std::vector<tapegrad::Var> adj;
      std::vector<char> has;
      if (!total.is_constant()) {
        if (create_graph) {
          tapegrad::detail::recorded_reverse(tape, from, tapegrad::Var::constant(1.0), adj, has);
        } else {
          tapegrad::ReverseSweep sweep{tape, /*recorded=*/false, /*deliver=*/false};  // no .grad changes
          tape.reverse(sweep, from, 1.0);
          has.assign(from + 1, 0);
          for (std::uint32_t i = 0; i <= from; ++i) has[i] = tape.adjoint(i) != 0.0;
        }
      }
      for (Py_ssize_t k = 0; k < ni; ++k) {
        bool used = false;
        tapegrad::Var g;
        double value = 0.0;
        for (std::uint32_t i : recs[static_cast<std::size_t>(k)]) {
          if (create_graph) {
            if (!has[i]) continue;
            g = used ? g + adj[i] : adj[i];
          } else {
            value += tape.adjoint(i);
          }
          used = true;
        }
        // Without create_graph, an input reached only with a zero adjoint still counts as used.
        if (!create_graph && !recs[static_cast<std::size_t>(k)].empty()) used = true;
        PyObject* item = nullptr;
        if (!used) {
          if (!allow_unused)
            throw tapegrad::Error("tapegrad: grad(): input " + std::to_string(k) +
                                  " was not used to compute the outputs (pass allow_unused=True to get None for it)");
          Py_INCREF(Py_None);
          item = Py_None;
        } else if (create_graph) {
          item = wrap_recorded(g, t);
        } else {
          item = reinterpret_cast<PyObject*>(alloc_var(value, kLeaf));
        }
        if (!item) throw std::bad_alloc();
        PyTuple_SET_ITEM(tuple, k, item);
      }
    } catch (...) {
      Py_DECREF(tuple);
      throw;
    }
    t.tape->maybe_collect();
    return tuple;
  });
  Py_DECREF(outs);
  Py_DECREF(ins);
  Py_XDECREF(seeds);
  return result;
}

PyMethodDef module_functions[] = {
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

}  // namespace

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
