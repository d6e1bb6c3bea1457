// tapegrad.Var's derivatives: backward() and the recorded gradients it hands leaves,
// register_hook, micrograd's graph walk (_prev, _op), and tapegrad.autograd.grad and jvp on
// Vars: each converts its arguments and calls the core (detail::backward_from,
// grad_of_records, jvp_of_records).
#include <pybind11/pybind11.h>

#include <cmath>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "var_object.hpp"

namespace tgpy {

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
    const bool leaf_current = (v->flags & kLeaf) && v->tape && v->records().current_on(v->tape->tape);
    if (has_live_root(v) || leaf_current) {
      enter(v->tape);
      Tape& tape = v->tape->tape;
      const std::uint32_t rec = leaf_current ? v->records().record_on(tape, v->data, &v->grad) : tape.root_record(v->root);
      const std::uint64_t tid = tape.add_hook(rec, var_hook(fn, v->tape_obj, v->tape));
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
  if (leaf->records().sink_on(tape) == Tape::kNone) return;  // (not a sink of this tape's: nothing to set)
  // (the tape's Python object: the one the leaf keeps, or pybind11's for this PyTape)
  const pybind11::object tape_obj =
      leaf->tape == pt ? pybind11::reinterpret_borrow<pybind11::object>(leaf->tape_obj)
                       : pybind11::cast(pt, pybind11::return_value_policy::reference);
  PyObject* obj = wrap_recorded(total, ActiveTape{tape_obj.ptr(), pt});
  if (!obj) throw std::bad_alloc();
  Py_XSETREF(leaf->grad_var, obj);
  leaf->grad = total.value();
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
  for (Py_ssize_t k = 0; k < n; ++k) {
    auto* x = reinterpret_cast<VarObject*>(PySequence_Fast_GET_ITEM(seq, k));
    if (!(x->flags & kRequiresGrad)) continue;
    if (!(x->flags & kLeaf)) {
      if (has_live_root(x) && x->tape == t) recs[static_cast<std::size_t>(k)].push_back(tape.root_record(x->root));
      continue;
    }
    recs[static_cast<std::size_t>(k)] = x->records().records_on(tape);
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

}  // namespace tgpy
