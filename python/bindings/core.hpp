// Shared declarations of the Python module _core. Conversion only: semantics live in cpp/.
#pragma once

#include <Python.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "tapegrad/tapegrad.hpp"

namespace tgpy {

/// A tape that Python code records on (tapegrad.Tape). Var objects hold a reference to it,
/// so it lives as long as any Var recorded on it.
struct PyTape;
void set_recorded_leaf_grad(PyTape* t, double* target, const tapegrad::Var& g);

struct PyTape {
  // Python code never clears a tape by hand: when the last non-leaf Var of a tape dies, the
  // tape is cleared (O(1)); while Vars live, the core's collection policy runs after each op
  // (Tape::maybe_collect: every live Python result is a root).
  tapegrad::Tape tape;
  // The thread sweeping this tape with the GIL released in its kernels (0: none). Set and
  // read with the GIL held; every other thread's use of the tape waits while it is set.
  unsigned long busy_owner = 0;
  PyObject* previous_obj = nullptr;  // the tape active before __enter__ (strong reference)
  PyTape* previous = nullptr;
  bool entered = false;
  unsigned long entered_by = 0;  // the thread that opened the `with` block
  // Var._prev: the live Python Var made for each result record walked (borrowed: a Var
  // leaves it when it dies), for generation prev_cache_gen of the tape.
  std::unordered_map<std::uint32_t, PyObject*>* prev_cache = nullptr;
  std::uint32_t prev_cache_gen = 0;

  PyTape() {
    tape.set_recorded_sink(
        [](void* self, double* target, const tapegrad::Var& g) { set_recorded_leaf_grad(static_cast<PyTape*>(self), target, g); },
        this);
  }
  PyTape(const PyTape&) = delete;
  PyTape& operator=(const PyTape&) = delete;
  ~PyTape() { delete prev_cache; }

  /// Whether dropping its last result may clear it, or a growing tape be collected: not while
  /// a sweep runs on it (a hook or a custom function's Python code makes and drops tensors
  /// then), nor for a checkpointed segment's own tape (pinned: it goes as a whole).
  bool may_clear() const noexcept { return !pinned && !tape.sweeping(); }
  bool pinned = false;

  void maybe_collect() {
    if (!pinned) tape.maybe_collect();  // (inline; not during a sweep: the core's policy checks)
  }
};

/// Waits, with the GIL released, while another thread sweeps t (see PyTape::busy_owner).
void wait_idle(PyTape* t);
/// Before any use of tape t (a record, a root, a sink, clear or collect): waits while
/// another thread sweeps it. One comparison when it is idle.
inline void enter(PyTape* t) {
  if (t && t->busy_owner && t->busy_owner != PyThread_get_thread_ident()) wait_idle(t);
}
/// The tapes this thread holds (TapeUse), innermost last.
inline thread_local std::vector<PyTape*> tls_held;

/// A use of tape t that may release the GIL in its kernels (a tensor op, a sweep, a
/// transformation): waits for t, then keeps other threads off it until the end of the scope.
class TapeUse {
 public:
  explicit TapeUse(PyTape* t) : t_(t) {
    if (!t_) return;
    enter(t_);
    if (t_->busy_owner) {  // this thread's own use, nested: the outer one keeps the tape
      t_ = nullptr;
      return;
    }
    t_->busy_owner = PyThread_get_thread_ident();
    tls_held.push_back(t_);
  }
  ~TapeUse() {
    if (!t_) return;
    t_->busy_owner = 0;
    tls_held.pop_back();
  }
  TapeUse(const TapeUse&) = delete;
  TapeUse& operator=(const TapeUse&) = delete;

 private:
  PyTape* t_;
};

/// Around the user's Python code that the core calls while this thread holds tapes (a hook,
/// a custom function's backward, a checkpointed function recomputed): the tapes are let go
/// meanwhile, and taken back (waiting for them) after. The core is between two steps there,
/// as when its own thread records in that code; other threads may then record on those
/// tapes (their records come after what the sweep visits). Without it, two threads whose
/// backward passes run hooks that compute with results of the other's tape wait for each
/// other forever.
class UserCode {
 public:
  UserCode() {
    const unsigned long me = PyThread_get_thread_ident();
    for (PyTape* t : tls_held)
      if (t->busy_owner == me) {
        t->busy_owner = 0;
        paused_.push_back(t);
      }
  }
  ~UserCode() {
    const unsigned long me = PyThread_get_thread_ident();
    for (PyTape* t : paused_) {
      enter(t);
      t->busy_owner = me;
    }
  }
  UserCode(const UserCode&) = delete;
  UserCode& operator=(const UserCode&) = delete;

 private:
  std::vector<PyTape*> paused_;
};

struct ActiveTape {
  PyObject* obj;  // borrowed
  PyTape* tape;
};
/// This thread's active tape (its default tape, created on first use, unless a `with Tape()`
/// block is open). Returns {nullptr, nullptr} with a Python error set on failure.
ActiveTape active_tape();
void set_active_tape(PyObject* obj, PyTape* tape);

/// Python's active tape made the core's active one for a scope, where the core runs the user's
/// code on a tape it chose (a checkpointed segment's recomputation). The user's code may open
/// and close tapes of its own; one it leaves open is closed at the end of the scope, and
/// closing a tape opened outside the scope raises ValueError (it would leave the thread's
/// active tape pointing at a tape nobody keeps).
class ActiveAsCore {
 public:
  ActiveAsCore();
  ~ActiveAsCore();
  ActiveAsCore(const ActiveAsCore&) = delete;
  ActiveAsCore& operator=(const ActiveAsCore&) = delete;

 private:
  ActiveTape before_;
  PyTape* floor_before_;
  PyObject* now_ = nullptr;  // (strong references: the tapes stay alive for the scope)
  PyObject* before_ref_ = nullptr;
};

/// The Var type, for the tensor bindings: is `o` a Var; its value; the tape of a non-leaf
/// Var that takes part in differentiation ({nullptr, nullptr} otherwise; throws if stale);
/// its record on tape t (a leaf is recorded there), or kNone if it has no gradient.
bool is_var_object(PyObject* o);
double var_value(PyObject* o);
ActiveTape var_tape(PyObject* o);
std::uint32_t var_record_on(PyObject* o, ActiveTape t);
/// A recorded backward's (create_graph) gradient g of the Var leaf whose sink is `target`, on
/// tape t: the leaf's .grad becomes a Var on the tape, added to the recorded gradient it had
/// (every PyTape's Tape::recorded_sink).
void set_recorded_leaf_grad(PyTape* t, double* target, const tapegrad::Var& g);
/// The Var whose .grad is sink target `target` (borrowed).
PyObject* var_of_sink(double* target);
/// Where the Var module functions send arguments that are not Vars or numbers.
void set_tensor_ops(PyObject* module);

/// Registers tapegrad.Var (and its functions) on the module. Returns 0, or -1 with an error.
int register_var(PyObject* module);

}  // namespace tgpy
