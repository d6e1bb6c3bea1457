// tapegrad.Var: the scalar type, written against the CPython API so that one operation from
// Python costs a few tens of nanoseconds (micrograd's Value costs microseconds). Every
// arithmetic slot converts its operands and records one op of the table on a tape.
#include <algorithm>
#include <cmath>
#include <new>
#include <optional>
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
  kRetainGrad = 4,    // a non-leaf whose .grad is kept (every result, as in micrograd)
  kCached = 8,        // made by _prev for its record: in its tape's prev_cache while alive
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
  // register_hook(): null until the first hook (see VarHook).
  std::vector<struct VarHook>* hooks;
};

// A strong reference that copies (for hooks kept in std::function by the core).
struct PyRef {
  PyObject* o;
  explicit PyRef(PyObject* x) : o(x) { Py_XINCREF(o); }
  PyRef(const PyRef& r) : o(r.o) { Py_XINCREF(o); }
  PyRef& operator=(const PyRef& r) {
    Py_XINCREF(r.o);
    Py_XSETREF(o, r.o);
    return *this;
  }
  ~PyRef() { Py_XDECREF(o); }
};

// A hook registered on a Var: the function, and its registrations on the tapes it was attached
// to (a result's record; each record of a leaf, attached as the leaf is recorded).
struct VarHook {
  std::uint64_t id;
  PyRef fn;
  struct On {
    PyRef tape_obj;
    PyTape* tape;
    std::uint64_t id;  // the tape's id of it
  };
  std::vector<On> attached;
};

// A Python exception is set: the C++ code between it and Python unwinds, and the binding's
// entry point returns NULL.
struct PythonErrorPending {};

// The header only (the C API's macro); register_var sets the other fields before PyType_Ready.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
PyTypeObject VarType = {PyVarObject_HEAD_INIT(nullptr, 0)};
#pragma GCC diagnostic pop
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
  } catch (const PythonErrorPending&) {
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
  v->hooks = nullptr;
  return v;
}

inline bool has_live_root(const VarObject* v) {
  return v->tape && v->root != Tape::kNone && v->epoch == v->tape->tape.epoch();
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

void drop_sink(SinkRef& s) {
  enter(s.tape);  // a sweep of another thread may be about to deliver into this sink
  if (s.live()) s.tape->tape.remove_sink(s.slot);
  Py_CLEAR(s.tape_obj);
  s.tape = nullptr;
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

void attach_hooks(VarObject* v, PyObject* tobj, PyTape* t, std::uint32_t rec);
VarObject* sink_owner(double* target);

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
PyObject* new_result(ActiveTape t, std::uint32_t rec, double z, bool collect = true) {
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

// --- hooks (register_hook) -------------------------------------------------------------

PyObject* g_handle_type = nullptr;  // tapegrad.utils.hooks.RemovableHandle (set at import)
std::uint64_t g_next_var_hook = 1;

// The core's hook for Python function fn on tape t: called with the record's summed gradient
// (a float in a plain sweep, a Var in a recorded one); None keeps it, a number or a Var
// replaces it.
tapegrad::Tape::Hook var_hook(PyObject* fn, PyObject* tobj, PyTape* t) {
  return [f = PyRef(fn), tp = PyRef(tobj), t](const tapegrad::Var& g) -> tapegrad::Var {
    PyObject* arg = g.is_constant() ? PyFloat_FromDouble(g.value()) : wrap_recorded(g, ActiveTape{tp.o, t});
    if (!arg) throw PythonErrorPending{};
    PyObject* r;
    {
      UserCode user;  // (other threads may record on t meanwhile)
      r = PyObject_CallOneArg(f.o, arg);
    }
    Py_DECREF(arg);
    if (!r) throw PythonErrorPending{};
    tapegrad::Var out = g;
    if (r == Py_None) {
    } else if (is_var(r)) {
      auto* v = reinterpret_cast<VarObject*>(r);
      if (g.is_constant() || !(v->flags & kRequiresGrad)) {
        out = tapegrad::Var::constant(v->data);
      } else {
        try {
          const std::uint32_t rec = (v->flags & kLeaf) || v->tape != t ? operand_record(v, tp.o, t)
                                                                       : t->tape.root_record(v->root);
          out = tapegrad::Var(v->data, rec, t->tape.generation(), &t->tape);
        } catch (...) {
          Py_DECREF(r);
          throw;
        }
      }
    } else {
      double d = 0.0;
      const int ok = as_double(r, &d);
      if (ok == 0)
        PyErr_Format(PyExc_TypeError, "a Var hook must return a number, a Var or None, not %s", Py_TYPE(r)->tp_name);
      if (ok <= 0) {
        Py_DECREF(r);
        throw PythonErrorPending{};
      }
      out = tapegrad::Var::constant(d);
    }
    Py_DECREF(r);
    return out;
  };
}

void attach_hooks(VarObject* v, PyObject* tobj, PyTape* t, std::uint32_t rec) {
  for (VarHook& h : *v->hooks) {
    const std::uint64_t id = t->tape.add_hook(rec, var_hook(h.fn.o, tobj, t));
    h.attached.push_back(VarHook::On{PyRef(tobj), t, id});
  }
}

PyObject* var_register_hook(PyObject* self, PyObject* fn) {
  auto* v = reinterpret_cast<VarObject*>(self);
  if (!PyCallable_Check(fn)) {
    PyErr_Format(PyExc_TypeError, "Var.register_hook(): the hook must be callable, not %s", Py_TYPE(fn)->tp_name);
    return nullptr;
  }
  if (!(v->flags & kRequiresGrad)) {
    PyErr_SetString(PyExc_RuntimeError, "cannot register a hook on a Var that does not require grad");
    return nullptr;
  }
  if (!g_handle_type) {
    PyErr_SetString(PyExc_RuntimeError, "tapegrad is not fully imported");
    return nullptr;
  }
  return guarded([&]() -> PyObject* {
    const std::uint64_t id = g_next_var_hook++;
    if (!(v->flags & kLeaf) && !has_live_root(v)) throw_stale();
    if (!v->hooks) v->hooks = new std::vector<VarHook>();
    v->hooks->push_back(VarHook{id, PyRef(fn), {}});
    VarHook& h = v->hooks->back();
    // a result's record, or the leaf's current record (later ones get it as they are made)
    if (has_live_root(v)) {
      enter(v->tape);
      const std::uint64_t tid = v->tape->tape.add_hook(v->tape->tape.root_record(v->root), var_hook(fn, v->tape_obj, v->tape));
      h.attached.push_back(VarHook::On{PyRef(v->tape_obj), v->tape, tid});
    }
    return PyObject_CallFunction(g_handle_type, "OK", self, static_cast<unsigned long long>(id));
  });
}

PyObject* var_remove_hook(PyObject* self, PyObject* arg) {
  auto* v = reinterpret_cast<VarObject*>(self);
  const unsigned long long id = PyLong_AsUnsignedLongLong(arg);
  if (id == static_cast<unsigned long long>(-1) && PyErr_Occurred()) return nullptr;
  if (!v->hooks) Py_RETURN_FALSE;
  for (auto it = v->hooks->begin(); it != v->hooks->end(); ++it) {
    if (it->id != id) continue;
    for (VarHook::On& on : it->attached) {
      enter(on.tape);
      on.tape->tape.remove_hook(on.id);
    }
    v->hooks->erase(it);
    Py_RETURN_TRUE;
  }
  Py_RETURN_FALSE;
}

// --- micrograd's graph walk: _prev and _op ------------------------------------------------

// The Python Var of record `rec` of t, one object per record (so that a walk of the graph by
// identity, as micrograd's draw_dot does, sees each record once): a leaf record is its leaf,
// a result's record a Var kept in the tape's cache until the tape changes generation.
PyObject* var_of_record(PyObject* tobj, PyTape* t, std::uint32_t rec) {
  Tape& tape = t->tape;
  const tapegrad::Record& r = tape.record(rec);
  if (r.op == Op::Leaf && r.a != Tape::kNone)
    if (double* target = tape.sink_target(r.a)) {
      PyObject* leaf = reinterpret_cast<PyObject*>(sink_owner(target));
      Py_INCREF(leaf);
      return leaf;
    }
  if (!t->prev_cache) t->prev_cache = new std::unordered_map<std::uint32_t, PyObject*>();
  if (t->prev_cache_gen != tape.generation()) {
    t->prev_cache->clear();
    t->prev_cache_gen = tape.generation();
  }
  auto it = t->prev_cache->find(rec);
  if (it != t->prev_cache->end()) {
    Py_INCREF(it->second);
    return it->second;
  }
  PyObject* made;
  if (r.op == Op::Leaf) {  // a leaf whose Var is gone
    made = reinterpret_cast<PyObject*>(alloc_var(tape.value(rec), kLeaf | kRequiresGrad));
  } else {
    made = new_result(ActiveTape{tobj, t}, rec, tape.value(rec), false);
    // its gradient: what the tape's last sweep gave it (0 if none reached it)
    if (made) reinterpret_cast<VarObject*>(made)->grad = tape.adjoint(rec);
  }
  if (!made) return nullptr;
  auto* mv = reinterpret_cast<VarObject*>(made);
  mv->flags |= kCached;
  if (!mv->tape) set_tape(mv, tobj, t);  // (a leaf: where its cache entry is)
  (*t->prev_cache)[rec] = made;
  return made;
}

PyObject* get_prev(PyObject* self, void*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  PyObject* set = PySet_New(nullptr);
  if (!set || (v->flags & kLeaf) || !has_live_root(v)) return set;
  PyObject* r = guarded([&]() -> PyObject* {
    enter(v->tape);
    Tape& tape = v->tape->tape;
    bool failed = false;
    tape.for_each_operand(tape.root_record(v->root), [&](std::uint32_t j) {
      if (failed || j == Tape::kNone) return;
      PyObject* p = var_of_record(v->tape_obj, v->tape, j);
      if (!p || PySet_Add(set, p) < 0) failed = true;
      Py_XDECREF(p);
    });
    if (failed) throw PythonErrorPending{};
    Py_INCREF(set);
    return set;
  });
  Py_DECREF(set);
  return r;
}

// micrograd's names for its ops ('+', '*', '**2', 'ReLU', 'tanh', 'exp'), the table's for the rest.
PyObject* get_op(PyObject* self, void*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  if ((v->flags & kLeaf) || !has_live_root(v)) return PyUnicode_FromString("");
  enter(v->tape);
  Tape& tape = v->tape->tape;
  const tapegrad::Record& r = tape.record(tape.root_record(v->root));
  const tapegrad::OpInfo& info = tapegrad::op_info(r.op);
  const std::string name = info.name;
  if (name == "add") return PyUnicode_FromString("+");
  if (name == "sub") return PyUnicode_FromString("-");
  if (name == "mul") return PyUnicode_FromString("*");
  if (name == "div") return PyUnicode_FromString("/");
  if (name == "relu") return PyUnicode_FromString("ReLU");
  if (name == "pow") {
    if (info.kind == tapegrad::OpKind::BinaryVC) {
      const double k = tape.constant(r.b);  // micrograd's f'**{other}' with other an int gives '**2'
      PyObject* c = k == std::floor(k) && std::abs(k) < 1e15 ? PyLong_FromDouble(k) : PyFloat_FromDouble(k);
      if (!c) return nullptr;
      PyObject* e = PyObject_Str(c);  // 2.0 -> '2.0'; micrograd writes f'**{other}'
      Py_DECREF(c);
      if (!e) return nullptr;
      PyObject* out = PyUnicode_FromFormat("**%U", e);
      Py_DECREF(e);
      return out;
    }
    return PyUnicode_FromString("**");
  }
  if (r.op == Op::Node) return PyUnicode_FromString(tape.node(tape.root_record(v->root)).name());
  return PyUnicode_FromString(info.name);
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

// --- methods --------------------------------------------------------------------------
// The leaf whose .grad is sink target `target` (sinks always point into a VarObject).
VarObject* sink_owner(double* target) {
  return reinterpret_cast<VarObject*>(reinterpret_cast<char*>(target) - offsetof(VarObject, grad));
}

}  // namespace

void set_recorded_leaf_grad(PyTape* pt, double* target, const tapegrad::Var& g) {
  Tape& tape = pt->tape;
  VarObject* leaf = sink_owner(target);
  // The recorded gradient it had, as a core Var, if it is still on this tape.
  std::optional<tapegrad::Var> previous;
  if (leaf->grad_var) {
    auto* old = reinterpret_cast<VarObject*>(leaf->grad_var);
    if (old->tape == pt && has_live_root(old))
      previous = tapegrad::Var(old->data, tape.root_record(old->root), tape.generation(), &tape);
  }
  const tapegrad::Var total = tapegrad::detail::accumulate_recorded_grad(tape, leaf->grad, previous ? &*previous : nullptr, g);
  // (the tape's object from the leaf's sink on it: the leaf delivered into that sink)
  PyObject* tape_obj = leaf->sink.tape == pt ? leaf->sink.tape_obj : nullptr;
  if (!tape_obj && leaf->more_sinks)
    for (const SinkRef& r : *leaf->more_sinks)
      if (r.tape == pt) tape_obj = r.tape_obj;
  if (!tape_obj) return;  // (not a sink of this tape's: nothing to set)
  PyObject* obj = wrap_recorded(total, ActiveTape{tape_obj, pt});
  if (!obj) throw std::bad_alloc();
  Py_XSETREF(leaf->grad_var, obj);
  leaf->grad = total.value();
}

namespace {

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
    TapeUse use(v->tape);  // tensor nodes' kernels may release the GIL during the sweep
    Tape& t = v->tape->tape;
    const std::uint32_t from = t.root_record(v->root);
    if (create_graph) {  // each reached leaf's .grad becomes a Var on the tape (Tape::recorded_sink)
      std::vector<tapegrad::Var> adj;
      std::vector<char> has;
      tapegrad::detail::recorded_backward_from(t, from, seed, adj, has);
      v->tape->maybe_collect();
      Py_RETURN_NONE;
    }
    tapegrad::detail::backward_from(t, from, seed);
    Py_RETURN_NONE;
  });
}

PyObject* var_retain_grad(PyObject* self, PyObject*) {
  auto* v = reinterpret_cast<VarObject*>(self);
  if (!(v->flags & kLeaf) && !has_live_root(v)) return guarded([]() -> PyObject* { throw_stale(); });
  if (!(v->flags & kLeaf) && !(v->flags & kRetainGrad)) {
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

// --- tapegrad.autograd.grad and jvp on Vars: the arguments converted for the core ------------

// The Var at position k of sequence `seq` (a PySequence_Fast), or an error naming `what`.
VarObject* var_item(PyObject* seq, Py_ssize_t k, const char* fn, const char* what) {
  PyObject* o = PySequence_Fast_GET_ITEM(seq, k);
  if (!is_var(o))
    throw tapegrad::Error(std::string("tapegrad: ") + fn + "(): " + what + " must all be Vars (or all Tensors), not " +
                          Py_TYPE(o)->tp_name);
  return reinterpret_cast<VarObject*>(o);
}

// The tape of the non-leaf outputs (checked current and common), else the active tape.
ActiveTape outputs_tape(PyObject* outs, const char* fn, bool need_grad) {
  ActiveTape t{nullptr, nullptr};
  for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(outs); ++k) {
    VarObject* y = var_item(outs, k, fn, "outputs");
    if (!(y->flags & kRequiresGrad)) {
      if (need_grad) throw tapegrad::Error(std::string("tapegrad: ") + fn + "(): an output does not require grad");
      continue;
    }
    if (y->flags & kLeaf) continue;
    if (!has_live_root(y)) throw_stale();
    if (t.tape && t.tape != y->tape)
      throw tapegrad::Error(std::string("tapegrad: ") + fn + "(): the outputs were recorded on different tapes");
    t = {y->tape_obj, y->tape};
  }
  if (!t.tape) t = active_tape();
  if (!t.obj) throw std::bad_alloc();
  return t;
}

// Python Var v as a core Var on t: a constant where it takes no part in differentiation, else
// its record (a leaf is recorded on first use).
tapegrad::Var core_var(VarObject* v, ActiveTape t) {
  if (!(v->flags & kRequiresGrad)) return tapegrad::Var::constant(v->data);
  Tape& tape = t.tape->tape;
  return tapegrad::Var(v->data, operand_record(v, t.obj, t.tape), tape.generation(), &tape);
}

// The records of each Var of `seq` on tape t: a non-leaf's record, or every record of a leaf
// (one per value it had when used, all delivering into its sink on t).
std::vector<std::vector<std::uint32_t>> records_of(PyObject* seq, PyTape* t) {
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  std::vector<std::vector<std::uint32_t>> recs(static_cast<std::size_t>(n));
  const Tape& tape = t->tape;
  const std::uint32_t to = tape.size() ? tape.size() - 1 : 0;
  for (Py_ssize_t k = 0; k < n; ++k) {
    auto* x = reinterpret_cast<VarObject*>(PySequence_Fast_GET_ITEM(seq, k));
    if (!(x->flags & kRequiresGrad)) continue;
    if (!(x->flags & kLeaf)) {
      if (has_live_root(x) && x->tape == t) recs[static_cast<std::size_t>(k)].push_back(tape.root_record(x->root));
      continue;
    }
    std::uint32_t slot = Tape::kNone;
    auto visit = [&](const SinkRef& sr) {
      if (sr.tape == t && sr.live()) slot = sr.slot;
    };
    visit(x->sink);
    if (x->more_sinks)
      for (const SinkRef& sr : *x->more_sinks) visit(sr);
    if (slot != Tape::kNone && tape.size()) recs[static_cast<std::size_t>(k)] = tapegrad::detail::sink_records(tape, slot, to);
  }
  return recs;
}

// A tangent or a grad_output: a number (float), or a Var (its value; recorded: the Var itself);
// None is `if_none`.
tapegrad::Var seed_value(PyObject* v, double if_none, ActiveTape t, bool recorded, const char* fn, const char* what) {
  if (v == Py_None) return tapegrad::Var::constant(if_none);
  if (is_var(v)) {
    auto* vv = reinterpret_cast<VarObject*>(v);
    return recorded ? core_var(vv, t) : tapegrad::Var::constant(vv->data);
  }
  double d = 0.0;
  const int r = as_double(v, &d);
  if (r <= 0) {
    PyErr_Clear();
    throw tapegrad::Error(std::string("tapegrad: ") + fn + "(): a " + what + " must be a number or a Var, not " +
                          Py_TYPE(v)->tp_name);
  }
  return tapegrad::Var::constant(d);
}

// A tuple of Python Vars for core results: recorded ones on t (differentiable again), or plain
// leaves holding the values; None for an empty optional.
PyObject* wrap_results(const std::vector<std::optional<tapegrad::Var>>& rs, ActiveTape t, bool recorded) {
  PyObject* tuple = PyTuple_New(static_cast<Py_ssize_t>(rs.size()));
  if (!tuple) return nullptr;
  for (std::size_t k = 0; k < rs.size(); ++k) {
    PyObject* item;
    if (!rs[k]) {
      Py_INCREF(Py_None);
      item = Py_None;
    } else {
      item = recorded ? wrap_recorded(*rs[k], t) : reinterpret_cast<PyObject*>(alloc_var(rs[k]->value(), kLeaf));
    }
    if (!item) {
      Py_DECREF(tuple);
      return nullptr;
    }
    PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(k), item);
  }
  t.tape->maybe_collect();  // (a leaf output or seed may have been recorded)
  return tuple;
}

// Runs f(outs, ins, seeds) on the argument sequences (seeds may be None), guarded.
template <class F>
PyObject* with_sequences(PyObject* outs_obj, PyObject* ins_obj, PyObject* seeds_obj, const char* seeds_name, F&& f) {
  PyObject* outs = PySequence_Fast(outs_obj, "outputs must be a sequence");
  if (!outs) return nullptr;
  PyObject* ins = PySequence_Fast(ins_obj, "inputs must be a sequence");
  PyObject* seeds = !ins || seeds_obj == Py_None ? nullptr : PySequence_Fast(seeds_obj, seeds_name);
  PyObject* result = (!ins || (seeds_obj != Py_None && !seeds)) ? nullptr : guarded([&] { return f(outs, ins, seeds); });
  Py_DECREF(outs);
  Py_XDECREF(ins);
  Py_XDECREF(seeds);
  return result;
}

// tapegrad.autograd.jvp for Vars: _var_jvp(outputs, inputs, tangents, create_graph=False) ->
// tuple of Vars (tapegrad::detail::jvp_of_records).
PyObject* var_jvp_function(PyObject*, PyObject* args) {
  PyObject *outs_obj, *ins_obj, *tans_obj;
  int create_graph = 0;
  if (!PyArg_ParseTuple(args, "OOO|p:_var_jvp", &outs_obj, &ins_obj, &tans_obj, &create_graph)) return nullptr;
  return with_sequences(outs_obj, ins_obj, tans_obj, "tangents must be a sequence",
                        [&](PyObject* outs, PyObject* ins, PyObject* tans) -> PyObject* {
    const Py_ssize_t no = PySequence_Fast_GET_SIZE(outs), ni = PySequence_Fast_GET_SIZE(ins);
    if (!tans) throw tapegrad::Error("tapegrad: jvp(): tangents must be a sequence");
    for (Py_ssize_t k = 0; k < ni; ++k) var_item(ins, k, "jvp", "inputs");
    const ActiveTape t = outputs_tape(outs, "jvp", false);
    Tape& tape = t.tape->tape;
    std::vector<std::uint32_t> ys(static_cast<std::size_t>(no), Tape::kNone);
    for (Py_ssize_t o = 0; o < no; ++o) {
      const tapegrad::Var y = core_var(reinterpret_cast<VarObject*>(PySequence_Fast_GET_ITEM(outs, o)), t);
      if (!y.is_constant()) ys[static_cast<std::size_t>(o)] = y.index();
    }
    const auto xs = records_of(ins, t.tape);
    std::vector<tapegrad::Var> tv;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(tans); ++k)
      tv.push_back(seed_value(PySequence_Fast_GET_ITEM(tans, k), 0.0, t, create_graph, "jvp", "tangent"));
    TapeUse use(t.tape);  // after the conversions, which may run Python code
    std::vector<std::optional<tapegrad::Var>> rs(static_cast<std::size_t>(no));
    if (create_graph) {
      const auto d = tapegrad::detail::jvp_of_records(tape, ys, xs, tv);
      for (std::size_t o = 0; o < d.size(); ++o) rs[o] = d[o];
    } else {
      std::vector<double> tvd;
      for (const auto& v : tv) tvd.push_back(v.value());
      const auto d = tapegrad::detail::jvp_of_records(tape, ys, xs, tvd);
      for (std::size_t o = 0; o < d.size(); ++o) rs[o] = tapegrad::Var::constant(d[o]);
    }
    return wrap_results(rs, t, create_graph);
  });
}

// tapegrad.autograd.grad for Vars: _var_grad(outputs, inputs, grad_outputs, create_graph,
// allow_unused) -> tuple of Var or None (tapegrad::detail::grad_of_records). No .grad changes.
PyObject* var_grad_function(PyObject*, PyObject* args) {
  PyObject *outs_obj, *ins_obj, *seeds_obj;
  int create_graph = 0, allow_unused = 0;
  if (!PyArg_ParseTuple(args, "OOOpp:_var_grad", &outs_obj, &ins_obj, &seeds_obj, &create_graph, &allow_unused))
    return nullptr;
  return with_sequences(outs_obj, ins_obj, seeds_obj, "grad_outputs must be a sequence",
                        [&](PyObject* outs, PyObject* ins, PyObject* seeds) -> PyObject* {
    const Py_ssize_t no = PySequence_Fast_GET_SIZE(outs), ni = PySequence_Fast_GET_SIZE(ins);
    if (seeds && PySequence_Fast_GET_SIZE(seeds) != no)
      throw tapegrad::Error("tapegrad: grad(): grad_outputs has a different length than outputs");
    const ActiveTape t = outputs_tape(outs, "grad", true);
    for (Py_ssize_t k = 0; k < ni; ++k) var_item(ins, k, "grad", "inputs");
    tapegrad::ScopedTape scope(t.tape->tape);
    std::vector<tapegrad::Var> ys, ss;
    for (Py_ssize_t k = 0; k < no; ++k) {
      ys.push_back(core_var(reinterpret_cast<VarObject*>(PySequence_Fast_GET_ITEM(outs, k)), t));
      if (seeds) ss.push_back(seed_value(PySequence_Fast_GET_ITEM(seeds, k), 1.0, t, true, "grad", "grad_output"));
    }
    TapeUse use(t.tape);  // after the conversions, which may run Python code
    const auto rs = tapegrad::detail::grad_of_records(t.tape->tape, ys, ss, records_of(ins, t.tape),
                                                      tapegrad::GradOptions{create_graph != 0, allow_unused != 0});
    return wrap_results(rs, t, create_graph);
  });
}

PyObject* set_hook_handle_type(PyObject*, PyObject* type) {
  Py_INCREF(type);
  Py_XSETREF(g_handle_type, type);
  Py_RETURN_NONE;
}

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
