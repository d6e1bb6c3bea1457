// tapegrad.Tape and the thread's active tape.
#include <pybind11/pybind11.h>

#include <chrono>
#include <memory>
#include <thread>

#include "core.hpp"

namespace py = pybind11;

namespace tgpy {
namespace {
// Borrowed: the default tape is owned by a threading.local (so it dies with its thread); an
// entered tape holds a reference to itself until __exit__.
thread_local PyObject* tls_obj = nullptr;
thread_local PyTape* tls_tape = nullptr;
// The tape an ActiveAsCore scope made active (null outside one): the user's code inside may
// close only the tapes it opened above it.
thread_local PyTape* tls_floor = nullptr;
PyObject* g_local = nullptr;  // threading.local() holding each thread's default tape
}  // namespace

ActiveTape active_tape() {
  if (tls_obj) return {tls_obj, tls_tape};
  try {
    auto holder = std::make_unique<PyTape>();
    PyTape* p = holder.get();
    py::object o = py::cast(std::move(holder));
    if (PyObject_SetAttrString(g_local, "default_tape", o.ptr()) < 0) return {nullptr, nullptr};
    tls_obj = o.ptr();
    tls_tape = p;
  } catch (py::error_already_set& e) {
    e.restore();
    return {nullptr, nullptr};
  }
  return {tls_obj, tls_tape};
}

void wait_idle(PyTape* t) {
  const unsigned long me = PyThread_get_thread_ident();
  while (t->busy_owner && t->busy_owner != me) {
    Py_BEGIN_ALLOW_THREADS
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    Py_END_ALLOW_THREADS
  }
}

namespace {
// The GIL around long kernels (tapegrad::set_unlock_hooks): released only by a thread that
// holds it (a C++ thread of an embedding may call tapegrad without it).
thread_local PyThreadState* tls_saved = nullptr;
void release_gil() {
  if (Py_IsInitialized() && PyGILState_Check()) tls_saved = PyEval_SaveThread();
}
void acquire_gil() {
  if (tls_saved) {
    PyThreadState* s = tls_saved;
    tls_saved = nullptr;
    PyEval_RestoreThread(s);
  }
}
}  // namespace

void set_active_tape(PyObject* obj, PyTape* tape) {
  tls_obj = obj;
  tls_tape = tape;
}

namespace {
// Closes the head of this thread's chain of entered tapes (its __exit__ in order).
void close_head() {
  PyTape& t = *tls_tape;
  PyObject* self = tls_obj;  // the reference to itself that __enter__ took
  set_active_tape(t.previous_obj, t.previous);
  Py_XDECREF(t.previous_obj);  // still owned by its own holder
  t.previous_obj = nullptr;
  t.previous = nullptr;
  t.entered = false;
  Py_XDECREF(self);
}
}  // namespace

ActiveAsCore::ActiveAsCore() : before_(active_tape()), floor_before_(tls_floor) {
  if (!before_.obj) throw py::error_already_set();
  PyTape* pt = reinterpret_cast<PyTape*>(&tapegrad::Tape::active());  // every tape the core runs on here is Python's
  now_ = py::cast(pt, py::return_value_policy::reference).release().ptr();
  Py_INCREF(before_.obj);
  before_ref_ = before_.obj;
  set_active_tape(now_, pt);
  tls_floor = pt;
}

ActiveAsCore::~ActiveAsCore() {
  // Tapes the user's code entered and left open: closed, innermost first.
  while (tls_tape && tls_tape != tls_floor && tls_tape->entered) close_head();
  tls_floor = floor_before_;
  set_active_tape(before_.obj, before_.tape);
  Py_DECREF(now_);
  Py_DECREF(before_ref_);
}

void register_tape(py::module_& m) {
  g_local = py::module_::import("threading").attr("local")().release().ptr();
  tapegrad::set_unlock_hooks({release_gil, acquire_gil});

  py::class_<PyTape>(m, "Tape", R"doc(
An arena tape that Vars record their operations on.

Each thread has a default tape, and ``with Tape() as t:`` records on ``t`` inside the block.
Memory is managed for you: a tape is rewound when no Var recorded on it is alive, and
compacted (keeping what live Vars reach) when it doubles. ``clear()`` rewinds it by hand:
every non-leaf Var recorded on it becomes stale, and using one raises RuntimeError.
)doc")
      .def(py::init<>())
      .def("clear", [](PyTape& t) {
            enter(&t);
            if (t.tape.sweeping())
              throw tapegrad::Error("tapegrad: Tape.clear() during a sweep of the same tape (from a hook or a custom function)");
            t.tape.clear();  // (the collection policy starts afresh)
          }, "Rewind to empty in O(1), keeping the memory. Non-leaf Vars on it become stale.")
      .def("collect", [](PyTape& t) {
            enter(&t);
            t.tape.collect();
          },
           "Compact now: keep only the records that live Vars reach.")
      .def("stats", [](const PyTape& t) {
            const tapegrad::TapeStats s = t.tape.stats();
            py::dict d;
            d["records"] = s.records;
            d["constants"] = s.constants;
            d["roots"] = s.roots;
            d["nodes"] = s.nodes;
            d["bytes_in_use"] = s.bytes_in_use;
            d["saved_bytes"] = s.saved_bytes;
            d["adjoint_bytes"] = s.adjoint_bytes;
            d["bytes_reserved"] = s.bytes_reserved;
            return d;
          }, "Records, constants and live handles on the tape, the bytes they use, and saved_bytes: the tensor "
             "values its records keep for the sweeps (a leaf's data excluded).")
      .def_property(
          "keep_constants", [](const PyTape& t) { return t.tape.keeps_constants(); },
          [](PyTape& t, bool on) { t.tape.set_keep_constants(on); },
          "Whether tensor records keep their constant inputs, as a program run again at new inputs must "
          "(off by default: a record keeps only what its derivative reads). Set it before recording.")
      .def("__len__", [](const PyTape& t) { return t.tape.size(); })
      .def("__enter__", [](py::object self) {
            PyTape& t = self.cast<PyTape&>();
            if (t.entered) throw py::value_error("this Tape is already active (a with block of it is open)");
            ActiveTape prev = active_tape();
            if (!prev.obj) throw py::error_already_set();
            Py_INCREF(prev.obj);
            t.previous_obj = prev.obj;
            t.previous = prev.tape;
            t.entered = true;
            t.entered_by = PyThread_get_thread_ident();
            Py_INCREF(self.ptr());
            set_active_tape(self.ptr(), &t);
            return self;
          })
      .def("__exit__", [](PyTape& t, const py::args&) {
            if (!t.entered) throw py::value_error("this Tape is not active");
            if (t.entered_by != PyThread_get_thread_ident())
              throw py::value_error("this Tape's with block was opened on another thread; close it there");
            // The entered tapes of this thread form a chain from the active one through each
            // one's `previous`. Blocks closed in order take the head off; closed out of order
            // (generators, tasks, manual __exit__), this tape is unlinked where it is, and the
            // tape entered after it now returns to the one this tape would have.
            // Inside a scope where the core runs the user's code on a tape of its choosing
            // (a checkpointed function recomputed in a backward), only the tapes entered
            // inside may close: closing one entered outside would leave the thread's
            // active tape, restored at the end of the scope, on a tape nobody keeps.
            if (tls_floor) {
              PyTape* p = tls_tape;
              while (p && p != &t && p != tls_floor) p = p->previous;
              if (p != &t || &t == tls_floor)
                throw py::value_error(
                    "this Tape's with block was opened outside the function tapegrad is running now (a checkpointed "
                    "function recomputed in a backward pass); close it there, after the backward pass");
            }
            if (tls_tape == &t) {
              close_head();
              return false;
            }
            PyObject* self = nullptr;   // the reference to itself that __enter__ took
            PyObject* linked = nullptr; // the reference the tape entered after it took
            {
              PyTape* after = tls_tape;
              while (after && after->previous != &t) after = after->previous;
              if (!after) throw py::value_error("this Tape is not in this thread's chain of active tapes");
              linked = after->previous_obj;
              self = linked;  // the same object
              after->previous_obj = t.previous_obj;  // now holds this tape's reference to its previous
              after->previous = t.previous;
            }
            t.previous_obj = nullptr;
            t.previous = nullptr;
            t.entered = false;
            Py_XDECREF(linked);
            Py_XDECREF(self);  // may free the tape: nothing touches it after this
            return false;
          })
      .def("__repr__", [](const PyTape& t) {
        return "<tapegrad.Tape: " + std::to_string(t.tape.size()) + " records, " +
               std::to_string(t.tape.live_roots()) + " live handles>";
      });

  m.def("active_tape", [] {
        ActiveTape t = active_tape();
        if (!t.obj) throw py::error_already_set();
        return py::reinterpret_borrow<py::object>(t.obj);
      }, "The tape this thread records on now.");
}

}  // namespace tgpy
