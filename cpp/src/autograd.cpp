// The front ends of the sweeps: what a user calls to get derivatives. grad and jvp on Vars
// and on Tensors (several outputs, grad_outputs, allow_unused, create_graph) and
// Tensor::backward; each checks its arguments, seeds the records, runs one sweep and places
// the results.
#include <algorithm>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sweep/sweeps.hpp"
#include "tensor/internal.hpp"
#include "tapegrad/tensor.hpp"
#include "tapegrad/var.hpp"

namespace tapegrad {


// --- Var ----------------------------------------------------------------------------------

namespace detail {

std::vector<std::uint32_t> sink_records(const Tape& tape, std::uint32_t slot, std::uint32_t to) {
  std::vector<std::uint32_t> recs;
  for (std::uint32_t i = 0; i <= to && i < tape.size(); ++i)
    if (tape.record(i).op == Op::Leaf && tape.record(i).a == slot) recs.push_back(i);
  return recs;
}

void backward_from(Tape& tape, std::uint32_t from, double seed) {
  tape.reverse(from, seed);  // (checks `from`)
  tape.accumulate_root_grads();
}

void recorded_backward_from(Tape& tape, std::uint32_t from, double seed, std::vector<Var>& adj,
                            std::vector<char>& has) {
  if (from >= tape.size())
    throw Error("tapegrad: backward(): from record " + std::to_string(from) + " of a tape of " +
                std::to_string(tape.size()));
  adj.assign(from + 1, Var());
  has.assign(from + 1, 0);
  adj[from] = Var::constant(seed);
  has[from] = 1;
  recorded_backward_sweep(tape, from, adj, has);
}

std::vector<std::pair<std::uint32_t, Var>> sink_adjoints(Tape& tape, std::uint32_t from, const std::vector<Var>& adj,
                                                         const std::vector<char>& has) {
  ScopedTape scope(tape);
  std::vector<std::pair<std::uint32_t, Var>> sums;
  for (std::uint32_t i = 0; i <= from && i < has.size(); ++i) {
    const Record r = tape.record(i);
    if (!has[i] || r.op != Op::Leaf || r.a == Tape::kNone) continue;
    auto it = std::find_if(sums.begin(), sums.end(), [&](const auto& p) { return p.first == r.a; });
    if (it == sums.end()) sums.emplace_back(r.a, adj[i]);
    else it->second = it->second + adj[i];
  }
  return sums;
}

Var accumulate_recorded_grad(Tape& tape, double grad_now, const Var* previous, const Var& g) {
  ScopedTape scope(tape);
  Var before = Var::constant(grad_now - g.value());
  if (previous && previous->tape() == &tape && previous->generation() == tape.generation() &&
      previous->value() == before.value())
    before = *previous;
  return before.is_constant() && before.value() == 0.0 ? g : before + g;
}

std::vector<GradOfRecords> grad_records(Tape& tape, std::uint32_t scalar_from,
                                        const std::vector<std::pair<std::uint32_t, Tensor>>& tensor_seeds,
                                        const std::vector<std::vector<std::uint32_t>>& xs, bool create_graph) {
  std::vector<GradOfRecords> result(xs.size());
  std::uint32_t from = scalar_from;
  std::vector<std::uint32_t> marks;
  for (const auto& sd : tensor_seeds) {
    marks.push_back(sd.first);
    if (from == Tape::kNone || sd.first > from) from = sd.first;
  }
  if (from == Tape::kNone) return result;  // (every output a constant)
  Workspace ws(tape);
  {
    GradModeGuard mode(create_graph);  // (a recorded seed's conversions are recorded)
    for (const auto& [rec, seed] : tensor_seeds) static_cast<TNode&>(tape.node(rec)).add_grad(ws, rec, seed);
  }
  std::vector<Tensor> captures(xs.size());
  std::vector<std::uint32_t> targets;
  for (std::size_t k = 0; k < xs.size(); ++k)
    for (std::uint32_t rec : xs[k]) {
      if (rec > from) continue;
      targets.push_back(rec);
      if (tape.record(rec).op == Op::Node) ws.capture(rec, &captures[k]);  // (a record twice: its first slot)
    }
  // Only the hooks on the paths to the inputs run: the records that lead there, marked where a
  // hook may be met (a Var hook of the tape, or a tensor's on a node); a scalar tape without
  // hooks skips the walk.
  std::vector<char> needed;
  if (tape.has_hooks() || tape.has_nodes()) needed = tape.reached_from(targets, from);
  const std::vector<char>* only = needed.empty() ? nullptr : &needed;
  std::vector<Var> adj;
  std::vector<char> has;
  if (create_graph) {
    adj.assign(std::size_t(from) + 1, Var());
    has.assign(std::size_t(from) + 1, 0);
    if (scalar_from != Tape::kNone) {
      adj[scalar_from] = Var::constant(1.0);
      has[scalar_from] = 1;
    }
    recorded_sweep(tape, from, adj, has, /*deliver=*/false, 0, only, &ws);
  } else {
    if (scalar_from != Tape::kNone && scalar_from != from) marks.push_back(scalar_from);  // (a mark's adjoint is 1)
    ReverseSweep sweep{tape, /*recorded=*/false, /*deliver=*/false};  // no .grad changes
    sweep.needed = only;
    sweep.ws = &ws;
    tape.reverse(sweep, from, 1.0, marks.data(), marks.size());
  }
  // Which records lead to an output: the plain sweep skips zero adjoints, so a scalar input
  // whose adjoints are all zero is told apart from an unused one by marking backwards.
  std::vector<char> reached;
  auto leads_to_output = [&](std::uint32_t i) {
    if (reached.empty()) {
      std::vector<std::uint32_t> outs(marks);
      outs.push_back(from);
      reached = tape.leading_to(outs.data(), outs.size(), from);
    }
    return reached[i] != 0;
  };
  for (std::size_t k = 0; k < xs.size(); ++k) {
    GradOfRecords& r = result[k];
    for (std::uint32_t i : xs[k]) {
      if (i > from || tape.record(i).op == Op::Node) continue;  // (a node record's: its capture)
      if (create_graph) {
        if (!has[i]) continue;
        r.var = r.used ? r.var + adj[i] : adj[i];
      } else {
        const double a = tape.adjoint(i);
        if (a == 0.0 && !leads_to_output(i)) continue;
        r.value += a;
      }
      r.used = true;
    }
    if (captures[k].defined()) {
      r.tensor = std::move(captures[k]);
      r.used = true;
    }
  }
  return result;
}

std::vector<std::optional<Var>> grad_of_records(Tape& tape, const std::vector<Var>& ys, const std::vector<Var>& seeds,
                                                const std::vector<std::vector<std::uint32_t>>& xs, GradOptions options) {
  if (!seeds.empty() && seeds.size() != ys.size())
    throw Error("tapegrad: grad(): " + std::to_string(seeds.size()) + " grad_outputs for " +
                std::to_string(ys.size()) + " outputs");
  for (const Var& v : ys)
    if (!v.is_constant() && (v.tape() != &tape || v.generation() != tape.generation()))
      throw_unusable(v, "grad(): an output");
  for (std::size_t k = 0; k < seeds.size(); ++k) {
    const Var& v = seeds[k];
    if (v.is_constant() || (v.tape() == &tape && v.generation() == tape.generation())) continue;
    if (v.tape() != &tape && v.valid())
      throw Error("tapegrad: grad(): grad_outputs[" + std::to_string(k) + "] was recorded on another tape than the outputs");
    throw_unusable(v, ("grad(): grad_outputs[" + std::to_string(k) + "]").c_str());
  }
  ScopedTape scope(tape);
  // One output: sum_k seed_k y_k (recorded, so that a recorded seed is differentiated through).
  Var total;
  for (std::size_t k = 0; k < ys.size(); ++k) {
    Var term = ys[k];
    if (!seeds.empty()) {
      const Var& s = seeds[k];
      if (!s.is_constant()) term = ys[k] * s;
      else if (s.value() != 1.0) term = ys[k] * s.value();
    }
    total = k == 0 ? term : total + term;
  }
  std::vector<std::optional<Var>> result(xs.size());
  const std::vector<GradOfRecords> g =
      grad_records(tape, total.is_constant() ? Tape::kNone : total.index(), {}, xs, options.create_graph);
  for (std::size_t k = 0; k < xs.size(); ++k) {
    if (!g[k].used) {
      if (!options.allow_unused)
        throw Error("tapegrad: grad(): input " + std::to_string(k) +
                    " was not used to compute the outputs (pass allow_unused=True to get None for it)");
      continue;
    }
    result[k] = options.create_graph ? g[k].var : Var::constant(g[k].value);
  }
  return result;
}

namespace {
// Both jvps on records: seeds every record of xs[k] with tangents[k], runs
// sweep(tape, seeds, output records) and places the results (zero for constant outputs).
template <class T, class Sweep>
std::vector<T> jvp_on_records(Tape& tape, const std::vector<std::uint32_t>& ys,
                              const std::vector<std::vector<std::uint32_t>>& xs, const std::vector<T>& tangents,
                              Sweep sweep) {
  if (tangents.size() != xs.size())
    throw Error("tapegrad: jvp(): " + std::to_string(tangents.size()) + " tangents for " + std::to_string(xs.size()) +
                " inputs");
  std::vector<T> result(ys.size(), T{});  // Var{} is the constant 0 (Var(0.0) would be a new leaf)
  std::vector<std::uint32_t> outs;
  std::vector<std::size_t> which;
  for (std::size_t o = 0; o < ys.size(); ++o)
    if (ys[o] != Tape::kNone) {
      outs.push_back(ys[o]);
      which.push_back(o);
    }
  if (outs.empty()) return result;
  std::vector<std::pair<std::uint32_t, T>> seeds;
  for (std::size_t k = 0; k < xs.size(); ++k)
    for (std::uint32_t rec : xs[k]) seeds.emplace_back(rec, tangents[k]);
  const std::vector<T> t = sweep(tape, seeds, outs);
  for (std::size_t j = 0; j < outs.size(); ++j) result[which[j]] = t[j];
  return result;
}
}  // namespace

std::vector<double> jvp_of_records(Tape& tape, const std::vector<std::uint32_t>& ys,
                                   const std::vector<std::vector<std::uint32_t>>& xs, const std::vector<double>& tangents) {
  return jvp_on_records(tape, ys, xs, tangents, scalar_tangents);
}

std::vector<Var> jvp_of_records(Tape& tape, const std::vector<std::uint32_t>& ys,
                                const std::vector<std::vector<std::uint32_t>>& xs, const std::vector<Var>& tangents) {
  return jvp_on_records(tape, ys, xs, tangents, recorded_tangents);
}

}  // namespace detail

namespace {
// The outputs' tape (null when every output is a constant: then every input is unused and goes
// unchecked); every x that is not a constant must be current on it. Each x's records: its own
// (none for a constant).
Tape* tape_of(const std::vector<Var>& ys, const std::vector<Var>& xs, const char* what,
              std::vector<std::vector<std::uint32_t>>& records) {
  Tape* tape = nullptr;
  for (const Var& y : ys) {
    if (y.is_constant()) continue;
    Tape& t = detail::checked_tape(y, what);
    if (tape && tape != &t) throw Error(std::string("tapegrad: ") + what + ": the outputs were recorded on different tapes");
    tape = &t;
  }
  records.assign(xs.size(), {});
  for (std::size_t k = 0; tape && k < xs.size(); ++k) {
    if (xs[k].is_constant()) continue;
    if (xs[k].tape() != tape && xs[k].valid())
      throw Error(std::string("tapegrad: ") + what + ": input " + std::to_string(k) +
                  " was recorded on another tape than the outputs");
    if (xs[k].tape() != tape || xs[k].generation() != tape->generation())
      detail::throw_unusable(xs[k], (std::string(what) + ": input " + std::to_string(k)).c_str());
    records[k].push_back(xs[k].index());
  }
  return tape;
}

template <class T>
std::vector<T> jvp_vars(const std::vector<Var>& ys, const std::vector<Var>& xs, const std::vector<T>& v) {
  std::vector<std::vector<std::uint32_t>> records;
  Tape* tape = tape_of(ys, xs, "jvp()", records);
  if (!tape) {
    if (v.size() != xs.size())
      throw Error("tapegrad: jvp(): " + std::to_string(v.size()) + " tangents for " + std::to_string(xs.size()) +
                  " inputs");
    return std::vector<T>(ys.size(), T{});
  }
  std::vector<std::uint32_t> outs;
  for (const Var& y : ys) outs.push_back(y.is_constant() ? Tape::kNone : y.index());
  return detail::jvp_of_records(*tape, outs, records, v);
}
}  // namespace

std::vector<std::optional<Var>> grad(const std::vector<Var>& ys, const std::vector<Var>& xs,
                                     const std::vector<Var>& grad_outputs, GradOptions options) {
  std::vector<std::vector<std::uint32_t>> records;
  Tape* tape = tape_of(ys, xs, "grad()", records);
  if (!tape) {
    std::vector<std::optional<Var>> none(xs.size());
    if (!options.allow_unused && !xs.empty())
      throw Error("tapegrad: grad(): input 0 was not used to compute the outputs (pass allow_unused=True to get None for it)");
    return none;
  }
  return detail::grad_of_records(*tape, ys, grad_outputs, records, options);
}

std::vector<double> jvp(const std::vector<Var>& ys, const std::vector<Var>& xs, const std::vector<double>& v) {
  return jvp_vars(ys, xs, v);
}

std::vector<Var> jvp(const std::vector<Var>& ys, const std::vector<Var>& xs, const std::vector<Var>& v, CreateGraph) {
  return jvp_vars(ys, xs, v);
}

namespace {
// grad(y, xs) on Vars, C++'s: 0 for an x that is a constant or unused.
template <class R>
std::vector<R> var_grad(const Var& y, const std::vector<Var>& xs, bool create_graph) {
  std::vector<R> g(xs.size(), R{});
  if (y.is_constant()) return g;
  Tape& t = detail::checked_tape(y, "grad()");
  std::vector<std::vector<std::uint32_t>> recs(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (xs[i].is_constant()) continue;
    if (xs[i].tape() != &t || xs[i].generation() != t.generation())
      detail::throw_unusable(xs[i], "grad() with respect to a Var of another tape or generation");
    recs[i].push_back(xs[i].index());
  }
  const std::vector<detail::GradOfRecords> r = detail::grad_records(t, y.index(), {}, recs, create_graph);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (!r[i].used) continue;
    if constexpr (std::is_same_v<R, Var>) g[i] = r[i].var;
    else g[i] = r[i].value;
  }
  return g;
}
}  // namespace

std::vector<Var> grad(const Var& y, const std::vector<Var>& xs, CreateGraph) { return var_grad<Var>(y, xs, true); }

std::vector<double> grad(const Var& y, const std::vector<Var>& xs) { return var_grad<double>(y, xs, false); }


// --- Tensor -------------------------------------------------------------------------------

namespace {
// Every record of `t` on `tape`: its result record, or, for a leaf, each leaf record of it
// (a leaf is recorded again on a tape after a collect() or an assign()).
template <class F>
void for_each_record_of(const std::vector<Tensor>& ts, Tape& tape, F&& f) {
  bool any_leaf = false;
  for (std::size_t k = 0; k < ts.size(); ++k) {
    const TensorImpl& p = ts[k].impl();
    if (p.leaf) {
      any_leaf = true;
      continue;
    }
    if (p.tape != &tape || p.gen != tape.generation() || p.rec == Tape::kNone) continue;  // not on this graph
    f(p.rec, k);
  }
  if (!any_leaf) return;
  for (std::uint32_t i = 0; i < tape.size(); ++i) {
    if (tape.record(i).op != Op::Node) continue;
    const TensorImpl* leaf = static_cast<detail::TNode&>(tape.node(i)).leaf();
    if (!leaf) continue;
    for (std::size_t k = 0; k < ts.size(); ++k)
      if (ts[k].impl_ptr().get() == leaf) {
        f(i, k);
        break;
      }
  }
}

}  // namespace


void Tensor::backward() const {
  if (numel() != 1)
    throw_error("tapegrad: backward() without a gradient needs a one-element output, not shape " +
                shape_str(shape()) + "; pass gradient= (a tensor of the output's shape)");
  backward(Tensor::ones(shape(), dtype()));
}

void Tensor::backward(const Tensor& gradient) const { backward(gradient, false); }

void Tensor::backward(const Tensor& gradient, bool create_graph) const {
  backward(gradient, create_graph, create_graph);
}

void Tensor::backward(const Tensor& gradient, bool create_graph, bool retain_graph) const {
  TensorImpl& p = impl();
  if (p.released) detail::throw_released();
  if (!p.requires_grad)
    throw_error("tapegrad: backward() on a tensor that does not require grad (no input requires grad, "
                "or it was computed under no_grad)");
  if (gradient.shape() != p.shape)
    throw_error("tapegrad: backward(): the gradient has shape " + shape_str(gradient.shape()) +
                " but the output has shape " + shape_str(p.shape));
  if (!is_floating(gradient.dtype()))
    throw_error(std::string("tapegrad: backward(): the gradient must be float32 or float64, not ") +
                dtype_name(gradient.dtype()));
  if (p.leaf) {
    // A leaf's gradient is the seed itself (as in PyTorch), through its hooks.
    GradModeGuard mode(create_graph);
    detail::accumulate_grad(impl_ptr(), detail::run_grad_hooks(p, gradient), true);
    detail::run_post_accumulate_hooks(impl_ptr());
    return;
  }
  if (!detail::is_current(p.tape, p.gen)) detail::throw_unusable_tensor(*this);
  if (create_graph) {
    std::vector<Var> adj;
    std::vector<char> has;
    detail::recorded_backward(*this, gradient, adj, has);
  } else {
    Tape& tape = *p.tape;
    detail::Workspace ws(tape);
    static_cast<detail::TNode&>(tape.node(p.rec)).add_grad(ws, p.rec, gradient);
    ReverseSweep sweep{tape};
    sweep.ws = &ws;
    sweep.release = !retain_graph;  // the graph's values are freed as the sweep passes them
    tape.reverse(sweep, p.rec, 1.0);
    tape.accumulate_root_grads();
  }
  if (!retain_graph) detail::release_graph(*this);
}

namespace detail {
std::vector<GraphRecord> graph_of(Tape& tape, std::uint32_t from, bool grads) {
  if (from >= tape.size())
    throw Error("tapegrad: graph_of(): record " + std::to_string(from) + " of a tape of " + std::to_string(tape.size()));
  const std::vector<char> reached = tape.leading_to(&from, 1, from);
  // what the tape keeps alive: the values its records' rules read (their own or their inputs')
  std::vector<std::pair<const void*, std::size_t>> held;
  for (std::uint32_t i = 0; i < tape.size(); ++i)
    if (tape.record(i).op == Op::Node) tape.node(i).held_values(held);
  std::vector<const void*> kept;
  for (const auto& h : held) kept.push_back(h.first);
  std::sort(kept.begin(), kept.end());
  std::vector<GraphRecord> out;
  for (std::uint32_t i = 0; i <= from; ++i) {
    if (!reached[i]) continue;
    GraphRecord g;
    g.rec = i;
    const Record& r = tape.record(i);
    const OpInfo& info = op_info(r.op);
    if (r.op == Op::Node) {
      const Node& n = tape.node(i);
      g.name = g.op = n.name();
      if (const auto* t = dynamic_cast<const TNode*>(&n)) {
        g.tensor = t->result();  // (null where the record let go of a value nothing holds)
        g.tensor_record = true;
        g.shape = t->out_shape_;
        g.dtype = t->out_dtype_;
        g.kept = g.tensor && std::binary_search(kept.begin(), kept.end(), static_cast<const void*>(g.tensor->storage.get()));
        g.leaf = t->is_leaf_node_;
        g.entry = t->op_name();
        if (g.leaf) g.op = "leaf";
      }
    } else {
      g.name = info.backward_name;
      g.op = info.name;
      g.leaf = r.op == Op::Leaf;
      g.value = tape.value(i);
      if (g.leaf) g.sink = r.a;
      if (info.kind == OpKind::BinaryVC || info.kind == OpKind::BinaryCV) {
        g.constants.push_back(tape.constant(r.b));
        g.constant_left = info.kind == OpKind::BinaryCV;
      }
    }
    tape.for_each_operand(i, [&](std::uint32_t q) {
      if (q != Tape::kNone) g.inputs.push_back(q);
    });
    out.push_back(std::move(g));
  }
  if (!grads) return out;
  // The derivatives: a plain sweep that delivers nothing and runs no hooks, each tensor
  // record's gradient captured on its way.
  std::vector<Tensor> captured(out.size());
  Workspace ws(tape);
  for (std::size_t k = 0; k < out.size(); ++k)
    if (tape.record(out[k].rec).op == Op::Node && dynamic_cast<TNode*>(&tape.node(out[k].rec)))
      ws.capture(out[k].rec, &captured[k]);
  ReverseSweep sweep{tape, /*recorded=*/false, /*deliver=*/false};
  sweep.hooks = false;
  sweep.ws = &ws;
  NoGrad ng;
  // The tape's last adjoints are what a Var's .grad reads for records it had not met
  // (Var._prev): this sweep only looks, so its adjoints are its own.
  Adjoints adjoints;
  sweep.adjoints = &adjoints;
  if (tape.record(from).op == Op::Node) {
    auto* t = dynamic_cast<TNode*>(&tape.node(from));
    if (!t) throw Error("tapegrad: graph_of(): record " + std::to_string(from) + " is not a tensor's");
    t->add_grad(ws, from, Tensor::ones(t->out_shape_, is_floating(t->out_dtype_) ? t->out_dtype_ : DType::Float64));
  }
  tape.reverse(sweep, from, 1.0);
  for (std::size_t k = 0; k < out.size(); ++k)
    if (!captured[k].defined() &&
        (tape.record(out[k].rec).op != Op::Node || dynamic_cast<TNode&>(tape.node(out[k].rec)).scalar_output())) {
      out[k].adjoint = adjoints[out[k].rec];
      out[k].has_grad = true;
    }
  for (std::size_t k = 0; k < out.size(); ++k) {
    GraphRecord& g = out[k];
    if (captured[k].defined()) {
      g.grad = captured[k];
      g.has_grad = true;
    }
  }
  return out;
}

std::uint32_t recorded_backward(const Tensor& y, const Tensor& gradient, std::vector<Var>& adj, std::vector<char>& has) {
  const TensorImpl& p = y.impl();
  Tape& tape = *p.tape;
  Workspace ws(tape);
  {
    EnableGrad eg;
    static_cast<TNode&>(tape.node(p.rec)).add_grad(ws, p.rec, gradient);
  }
  adj.assign(p.rec + 1, Var());
  has.assign(p.rec + 1, 0);
  recorded_backward_sweep(tape, p.rec, adj, has, &ws);
  return p.rec;
}
}  // namespace detail

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph, bool allow_unused) {
  if (outputs.empty()) throw_error("tapegrad: grad(): no outputs");
  if (!grad_outputs.empty() && grad_outputs.size() != outputs.size())
    throw_error("tapegrad: grad(): " + std::to_string(grad_outputs.size()) + " grad_outputs for " +
                std::to_string(outputs.size()) + " outputs");
  // The outputs' tape; every recorded output must be current on it.
  Tape* tape = nullptr;
  for (const Tensor& y : outputs) {
    const TensorImpl& p = y.impl();
    if (!p.requires_grad)
      throw_error("tapegrad: grad(): an output does not require grad (no input requires grad, or it was "
                  "computed under no_grad)");
    if (p.leaf) continue;
    if (!detail::is_current(p.tape, p.gen)) detail::throw_unusable_tensor(y);
    if (tape && tape != p.tape) throw_error("tapegrad: grad(): the outputs were recorded on different tapes");
    tape = p.tape;
  }
  std::vector<Tensor> result(inputs.size());
  // Leaf outputs: d(leaf)/d(leaf) is the seed itself.
  auto seed_of = [&](std::size_t k) {
    return grad_outputs.empty() || !grad_outputs[k].defined() ? Tensor::ones(outputs[k].shape(), outputs[k].dtype())
                                                              : grad_outputs[k];
  };
  std::vector<Tensor> capture_slots(inputs.size());
  if (tape) {
    std::vector<std::pair<std::uint32_t, Tensor>> seeds;
    for (std::size_t k = 0; k < outputs.size(); ++k) {
      const TensorImpl& p = outputs[k].impl();
      if (p.leaf) continue;
      Tensor s = seed_of(k);
      if (s.shape() != p.shape)
        throw_error("tapegrad: grad(): grad_outputs[" + std::to_string(k) + "] has shape " + shape_str(s.shape()) +
                    " but the output has shape " + shape_str(p.shape));
      seeds.emplace_back(p.rec, std::move(s));
    }
    std::vector<std::vector<std::uint32_t>> xs(inputs.size());
    for_each_record_of(inputs, *tape, [&](std::uint32_t rec, std::size_t k) { xs[k].push_back(rec); });
    std::vector<detail::GradOfRecords> g = detail::grad_records(*tape, Tape::kNone, seeds, xs, create_graph);
    for (std::size_t k = 0; k < inputs.size(); ++k) capture_slots[k] = std::move(g[k].tensor);
  }
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    // The same input twice: the capture went to the first slot.
    Tensor g = capture_slots[k];
    for (std::size_t j = 0; j < k && !g.defined(); ++j)
      if (inputs[j].same(inputs[k])) g = result[j];
    for (std::size_t o = 0; o < outputs.size(); ++o)  // a leaf that is itself an output: its seed
      if (outputs[o].is_leaf() && outputs[o].same(inputs[k])) g = g.defined() ? add(g, seed_of(o)) : seed_of(o);
    if (!g.defined() && !allow_unused)
      throw_error("tapegrad: grad(): input " + std::to_string(k) +
                  " was not used to compute the outputs (pass allow_unused=True to get None for it)");
    result[k] = g;
  }
  return result;
}


namespace {
// Whether t, of shape (K, *s), is the standard basis of its K = numel(s) directions.
bool is_standard_basis(const Tensor& t) {
  if (t.ndim() == 0 || t.shape()[0] == 0 || t.shape()[0] * t.shape()[0] != t.numel()) return false;
  const std::int64_t K = t.shape()[0];
  bool ok = true;
  TG_FLOAT_DISPATCH(t.dtype(), T, {
    const T* p = t.data<T>();
    for (std::int64_t i = 0; ok && i < K; ++i)
      for (std::int64_t j = 0; j < K; ++j)
        if (p[i * K + j] != (i == j ? T(1) : T(0))) {
          ok = false;
          break;
        }
  });
  return ok;
}

}  // namespace


std::vector<Tensor> jvp(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                        const std::vector<Tensor>& tangents, bool create_graph, bool batched) {
  if (outputs.empty()) throw_error("tapegrad: jvp(): no outputs");
  if (tangents.size() != inputs.size())
    throw_error("tapegrad: jvp(): " + std::to_string(tangents.size()) + " tangents for " +
                std::to_string(inputs.size()) + " inputs");
  if (batched && inputs.empty()) throw_error("tapegrad: jvp(): batched tangents need at least one input");
  GradModeGuard mode(create_graph);
  // The tangents as (K, *input shape).
  std::int64_t K = 1;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& v = tangents[k];
    const Shape& s = inputs[k].shape();
    if (!inputs[k].requires_grad())
      throw_error("tapegrad: jvp(): input " + std::to_string(k) +
                  " does not require grad, so no use of it was recorded (call requires_grad_() before computing the outputs)");
    if (!is_floating(v.dtype()))
      throw_error("tapegrad: jvp(): tangents[" + std::to_string(k) + "] must be float32 or float64, not " +
                  dtype_name(v.dtype()));
    const Shape& vs = v.shape();
    if (batched) {
      if (vs.empty() || Shape(vs.begin() + 1, vs.end()) != s)
        throw ValueError("tapegrad: jvp(): batched tangents need a leading axis of K directions: tangents[" +
                         std::to_string(k) + "] has shape " + shape_str(vs) + " for input " + std::to_string(k) +
                         " of shape " + shape_str(s) + " (expected " + shape_str(detail::batched_shape(-1, s)).replace(1, 2, "K") +
                         ")");
      if (k == 0) K = vs[0];
      if (vs[0] != K)
        throw_error("tapegrad: jvp(): batched tangents have different numbers of directions (" + std::to_string(K) +
                    " and " + std::to_string(vs[0]) + ")");
    } else if (vs != s) {
      throw ValueError("tapegrad: jvp(): tangents[" + std::to_string(k) + "] has shape " + shape_str(vs) + " but input " +
                  std::to_string(k) + " has shape " + shape_str(s));
    }
  }
  std::vector<Tensor> seeds(inputs.size());
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    Shape ks{K};
    ks.insert(ks.end(), inputs[k].shape().begin(), inputs[k].shape().end());
    // A view of our own, so that the basis mark (jacfwd's seed) never lands on a caller's tensor.
    const Tensor v = detail::reshaped(astype(tangents[k], inputs[k].dtype()), ks);
    seeds[k] = v.requires_grad() ? v : detail::view_as_shape(v, ks);
    if (!v.requires_grad()) seeds[k].impl().basis = batched && is_standard_basis(v);
  }
  // Results never carry the mark out.
  auto unmarked = [](const Tensor& t) {
    if (!t.impl().basis) return t;
    Tensor r = detail::view_as_shape(t, t.shape());
    r.impl().basis = false;
    return r;
  };
  // The outputs' tape, and their records on it.
  Tape* tape = nullptr;
  for (const Tensor& y : outputs) {
    const TensorImpl& p = y.impl();
    if (p.leaf || !p.requires_grad) continue;
    if (!detail::is_current(p.tape, p.gen)) detail::throw_unusable_tensor(y);
    if (tape && tape != p.tape) throw_error("tapegrad: jvp(): the outputs were recorded on different tapes");
    tape = p.tape;
  }
  std::vector<Tensor> swept(outputs.size());
  if (tape) {
    std::vector<std::uint32_t> outs;
    std::vector<std::size_t> which;
    for (std::size_t o = 0; o < outputs.size(); ++o)
      if (!outputs[o].is_leaf() && outputs[o].requires_grad()) {
        outs.push_back(outputs[o].impl().rec);
        which.push_back(o);
      }
    std::vector<std::pair<std::uint32_t, Tensor>> at;
    for_each_record_of(inputs, *tape, [&](std::uint32_t rec, std::size_t k) { at.emplace_back(rec, seeds[k]); });
    const std::vector<Tensor> t = detail::tangent_sweep(*tape, at, outs, K);
    for (std::size_t j = 0; j < outs.size(); ++j) swept[which[j]] = t[j];
  }
  std::vector<Tensor> result(outputs.size());
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    const Tensor& y = outputs[o];
    Tensor r = swept[o];
    if (y.is_leaf())
      for (std::size_t k = 0; k < inputs.size(); ++k)
        if (inputs[k].same(y)) r = r.defined() ? add(r, seeds[k]) : seeds[k];
    if (!r.defined()) {
      Shape ks{K};
      ks.insert(ks.end(), y.shape().begin(), y.shape().end());
      r = Tensor::zeros(ks, is_floating(y.dtype()) ? y.dtype() : DType::Float64);
    }
    result[o] = unmarked(batched ? r : detail::reshaped(r, y.shape()));
  }
  return result;
}

}  // namespace tapegrad
