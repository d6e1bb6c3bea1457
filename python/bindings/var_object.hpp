// The Python Var type's internals, shared by its two files: var_type.cpp (the object, its
// arithmetic, attributes and registration) and var_graph.cpp (backward, hooks, micrograd's
// graph walk, autograd.grad and jvp on Vars).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <vector>

#include "core.hpp"

namespace tgpy {

using tapegrad::Op;
using tapegrad::Tape;

enum : std::uint8_t {
  kLeaf = 1,          // created by the user (or detached): owns its value and .grad
  kRequiresGrad = 2,  // takes part in differentiation (leaves: recorded on first use)
  kRetainGrad = 4,    // a non-leaf whose .grad is kept (every result, as in micrograd)
  kCached = 8,        // made by _prev for its record: in its tape's prev_cache while alive
};

struct VarObject {
  PyObject_HEAD
  double data;
  double grad;
  PyObject* tape_obj;  // strong reference to the tape holding our current record, or null
  PyTape* tape;
  std::uint32_t root;   // a result: the root of its record on that tape (Tape::kNone: none)
  std::uint32_t epoch;  // the tape's epoch when the root was made
  std::uint8_t flags;
  // A leaf that requires grad (has_records): where it stands on the tapes it was used on, the
  // core's bookkeeping of a Leaf (a sink per tape, all delivering into .grad; its current
  // record). Constructed in alloc_var for such leaves only (results never need it), in bytes
  // of its own so that VarObject stays standard-layout (sink_owner's offsetof).
  alignas(tapegrad::detail::LeafRecords) unsigned char records_storage[sizeof(tapegrad::detail::LeafRecords)];
  tapegrad::detail::LeafRecords& records() noexcept {
    return *std::launder(reinterpret_cast<tapegrad::detail::LeafRecords*>(records_storage));
  }
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

extern PyTypeObject VarType;
extern PyObject* g_numbers_real;  // numbers.Real, for NumPy scalars and friends
extern PyObject* g_tensor_ops;    // tapegrad._core.tensor_ops (set by register_tensor)
extern PyObject* g_handle_type;   // tapegrad.utils.hooks.RemovableHandle (set at import)

inline bool is_var(PyObject* o) { return Py_TYPE(o) == &VarType; }
/// Whether v is a leaf that requires grad: the kind that is recorded, with LeafRecords.
inline bool has_records(const VarObject* v) { return (v->flags & (kLeaf | kRequiresGrad)) == (kLeaf | kRequiresGrad); }
inline bool needs_grad(const VarObject* v) { return v && (v->flags & kRequiresGrad) && tapegrad::grad_enabled(); }
inline bool has_live_root(const VarObject* v) {
  return v->tape && v->root != Tape::kNone && v->epoch == v->tape->tape.epoch();
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

// --- the object model (var_type.cpp) ----------------------------------------------------------
/// Converts a real number to double: 1 on success, 0 if `o` is not a real number (no error
/// set), -1 with an error set.
int as_double(PyObject* o, double* out);
VarObject* alloc_var(double data, std::uint8_t flags);
/// Drops v's root on its tape (a tape left with no non-leaf Var is cleared).
void release_root(VarObject* v);
void set_tape(VarObject* v, PyObject* obj, PyTape* tape);
[[noreturn]] void throw_stale();
/// Before a leaf changes what tape t holds (its root, its sink): waits while another thread
/// sweeps t (LeafRecords' `before`; every tape a Var is recorded on is a PyTape).
struct EnterTape {
  void operator()(Tape& t) const noexcept { enter(reinterpret_cast<PyTape*>(&t)); }
};
/// The record of operand v on tape t. A leaf is recorded on first use (and again after its
/// value changed, or on another tape); all its records deliver into its .grad.
std::uint32_t operand_record(VarObject* v, PyObject* tobj, PyTape* t);
/// A non-leaf Var for record `rec` of t. With `collect`, the tape may be collected after
/// (which makes other handles to it stale): callers wrapping several records pass false.
PyObject* new_result(ActiveTape t, std::uint32_t rec, double z, bool collect = true);
/// A Python Var for a C++ Var recorded on t (no collection): a constant becomes a leaf that
/// does not require grad.
PyObject* wrap_recorded(const tapegrad::Var& x, ActiveTape t);
/// A TypeError: `fn` expected a Var or a real number, got o. Returns null.
PyObject* type_error(const char* fn, PyObject* o);

// --- backward, hooks, the graph walk, autograd on Vars (var_graph.cpp) ------------------------
/// Registers v's hooks on its new record `rec` of tape t (a leaf recorded again).
void attach_hooks(VarObject* v, PyObject* tobj, PyTape* t, std::uint32_t rec);
/// The leaf whose .grad is sink target `target` (sinks always point into a VarObject).
inline VarObject* sink_owner(double* target) {
  return reinterpret_cast<VarObject*>(reinterpret_cast<char*>(target) - offsetof(VarObject, grad));
}
PyObject* var_backward(PyObject* self, PyObject* args, PyObject* kwargs);
PyObject* var_retain_grad(PyObject* self, PyObject*);
PyObject* var_register_hook(PyObject* self, PyObject* fn);
PyObject* var_remove_hook(PyObject* self, PyObject* arg);
PyObject* get_prev(PyObject* self, void*);
PyObject* get_op(PyObject* self, void*);
PyObject* var_grad_function(PyObject*, PyObject* args);
PyObject* var_jvp_function(PyObject*, PyObject* args);
PyObject* set_hook_handle_type(PyObject*, PyObject* type);

}  // namespace tgpy
