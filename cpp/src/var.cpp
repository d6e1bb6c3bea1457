// Var: recording on the tape, its slow paths and errors, and the scalar sweeps (recorded
// reverse, tangent on doubles and recorded tangent) with their front ends grad and jvp.
#include "tapegrad/var.hpp"

#include <optional>

#include "partials.hpp"
#include "tapegrad/tensor.hpp"

#include <algorithm>

#include <ostream>
#include <string>

namespace tapegrad {

bool Var::valid() const noexcept {
  return is_constant() || detail::handle_state(tape_, gen_) == detail::HandleState::Current;
}

std::ostream& operator<<(std::ostream& os, const Var& x) { return os << "Var(" << x.value() << ")"; }

namespace detail {

void throw_unusable(const Var& v, const char* what) {
  std::string msg = std::string("tapegrad: ") + what + ": ";
  switch (handle_state(v.tape(), v.generation())) {
    case HandleState::Destroyed: msg += "the Var's tape was destroyed"; break;
    case HandleState::Stale:
      msg += "the Var is stale: its tape was cleared (or collected) after the Var was recorded";
      break;
    case HandleState::Current:
      msg += "the Var belongs to a tape that is not the active tape of this thread "
             "(open a ScopedTape on its tape)";
      break;
  }
  throw Error(msg);
}

namespace {
// The active tape, initialising this thread's default tape on first use.
Tape& active() { return Tape::active(); }

void check_on(const Var& v, const Tape& t, Op op) {
  if (!v.is_constant() && v.generation() != t.generation())
    throw_unusable(v, (std::string("cannot record ") + op_info(op).name).c_str());
}
}  // namespace

Var record_unary_slow(Op op, Var a, double v) {
  if (a.is_constant()) return Var::constant(v);
  Tape& t = active();
  check_on(a, t, op);
  return Var(v, t.push(op, a.index(), 0, v), t.generation(), &t);
}

Var record_binary_slow(Op op, Var a, Var b, double v) {
  if (a.is_constant() && b.is_constant()) return Var::constant(v);
  if (a.is_constant()) return record_cv_slow(op, a.value(), b, v);
  if (b.is_constant()) return record_vc_slow(op, a, b.value(), v);
  Tape& t = active();
  check_on(a, t, op);
  check_on(b, t, op);
  return Var(v, t.push(op, a.index(), b.index(), v), t.generation(), &t);
}

Var record_vc_slow(Op op, Var a, double c, double v) {
  if (a.is_constant()) return Var::constant(v);
  Tape& t = active();
  check_on(a, t, op);
  const std::uint32_t k = t.push_constant(c);
  return Var(v, t.push(with_const_right(op), a.index(), k, v), t.generation(), &t);
}

Var record_cv_slow(Op op, double c, Var b, double v) {
  if (b.is_constant()) return Var::constant(v);
  Tape& t = active();
  check_on(b, t, op);
  const std::uint32_t k = t.push_constant(c);
  return Var(v, t.push(with_const_left(op), b.index(), k, v), t.generation(), &t);
}

Tape& checked_tape(const Var& y, const char* what) {
  if (y.is_constant()) throw Error(std::string("tapegrad: ") + what + ": the Var is a constant");
  if (handle_state(y.tape(), y.generation()) != HandleState::Current) throw_unusable(y, what);
  return *y.tape();
}

}  // namespace detail

namespace {
// g * d for a rule's value d: a plain number (a constant slope: 1 passes g through) or a Var.
inline Var scaled(const Var& g, double d) { return d == 1.0 ? g : (d == -1.0 ? -g : g * d); }
inline Var scaled(const Var& g, const Var& d) { return g * d; }
}  // namespace

namespace detail {
void recorded_reverse(Tape& tape, std::uint32_t from, const Var& seed, std::vector<Var>& adj, std::vector<char>& has) {
  if (from >= tape.size())
    throw Error("tapegrad: grad(): reverse from record " + std::to_string(from) + " of a tape of " +
                std::to_string(tape.size()));
  adj.assign(from + 1, Var());
  has.assign(from + 1, 0);
  adj[from] = seed;
  has[from] = 1;
  recorded_sweep(tape, from, adj, has, false);
}

void recorded_backward_sweep(Tape& tape, std::uint32_t from, std::vector<Var>& adj, std::vector<char>& has) {
  recorded_sweep(tape, from, adj, has, true);
  tape.zero_adjoints(from + 1);
  for (std::uint32_t i = 0; i <= from; ++i)
    if (has[i] && tape.record(i).op != Op::Node) tape.add_adjoint(i, adj[i].value());
  tape.accumulate_root_grads();
}

void recorded_sweep(Tape& tape, std::uint32_t from, std::vector<Var>& adj, std::vector<char>& has, bool deliver_sinks) {
  ScopedTape scope(tape);  // the rules record on this tape
  // Tensor records run their rules with recording on; the flag is reset even if one throws.
  struct Mode {
    Tape& t;
    bool before;
    ~Mode() { t.set_create_graph(before); }
  } mode{tape, tape.create_graph()};
  tape.set_create_graph(true);
  // Without delivery, no .grad changes: tensor leaves reached through tensors neither.
  std::optional<CaptureOnly> capture;
  if (!deliver_sinks) capture.emplace();
  const std::uint32_t gen = tape.generation();
  auto at = [&](std::uint32_t j) { return Var(tape.value(j), j, gen, &tape); };
  auto constant = [&](std::uint32_t k) { return tape.constant(k); };
  auto give = [&](std::uint32_t j, const Var& c) {
    if (has[j]) {
      adj[j] = adj[j] + c;
    } else {
      adj[j] = c;
      has[j] = 1;
    }
  };
  try {
    for (std::uint32_t i = from + 1; i-- > 0;) {
      const Record r = tape.record(i);  // a copy: the rules append records
      if (r.op == Op::Node) {
        recorded_node_step(tape, i, adj, has);
        continue;
      }
      if (!has[i]) continue;
      const Var g = adj[i];
      if (r.op == Op::Leaf) {
        if (deliver_sinks && r.a != Tape::kNone)
          if (double* sink = tape.sink_target(r.a)) *sink += g.value();
        continue;
      }
      for_each_partial(r, i, at, constant, [&](int, std::uint32_t j, auto d) { give(j, scaled(g, d())); });
    }
  } catch (...) {
    // Leave no gradient behind in the tensor records this sweep did not reach.
    for (std::uint32_t j = 0; j <= from && j < tape.size(); ++j)
      if (tape.record(j).op == Op::Node) tape.node(j).reset_grad();
    throw;
  }
}
}  // namespace detail

namespace {
// The front end of both scalar jvps: checks the handles, seeds each x's record with its
// tangent, runs sweep(tape, seeds, output records) and places the results (zero for
// constant outputs).
template <class T, class Sweep>
std::vector<T> scalar_jvp(const std::vector<Var>& ys, const std::vector<Var>& xs, const std::vector<T>& v, Sweep sweep) {
  if (v.size() != xs.size())
    throw Error("tapegrad: jvp(): " + std::to_string(v.size()) + " tangents for " + std::to_string(xs.size()) + " inputs");
  std::vector<T> result(ys.size(), T{});  // Var{} is the constant 0 (Var(0.0) would be a new leaf)
  Tape* tape = nullptr;
  for (const Var& y : ys) {
    if (y.is_constant()) continue;
    Tape& t = detail::checked_tape(y, "jvp()");
    if (tape && tape != &t) throw Error("tapegrad: jvp(): the outputs were recorded on different tapes");
    tape = &t;
  }
  if (!tape) return result;
  std::vector<std::pair<std::uint32_t, T>> seeds;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    if (xs[k].is_constant()) continue;
    if (&detail::checked_tape(xs[k], "jvp()") != tape)
      throw Error("tapegrad: jvp(): an input was recorded on another tape than the outputs");
    seeds.emplace_back(xs[k].index(), v[k]);
  }
  std::vector<std::uint32_t> outs;
  std::vector<std::size_t> which;
  for (std::size_t o = 0; o < ys.size(); ++o)
    if (!ys[o].is_constant()) {
      outs.push_back(ys[o].index());
      which.push_back(o);
    }
  const std::vector<T> t = sweep(*tape, seeds, outs);
  for (std::size_t j = 0; j < outs.size(); ++j) result[which[j]] = t[j];
  return result;
}
}  // namespace

namespace detail {
void scalar_partials(const Tape& tape, std::uint32_t i, double& da, double& db) {
  da = db = 0.0;
  for_each_partial(
      tape.record(i), i, [&](std::uint32_t j) { return tape.value(j); },
      [&](std::uint32_t k) { return tape.constant(k); },
      [&](int slot, std::uint32_t, auto d) { (slot == 0 ? da : db) = static_cast<double>(d()); });
}

namespace {
inline Var as_var(double d) { return Var::constant(d); }
inline Var as_var(const Var& v) { return v; }
}  // namespace

void scalar_partials_recorded(Tape& tape, std::uint32_t i, Var& da, Var& db) {
  ScopedTape scope(tape);  // the rules record on this tape
  const std::uint32_t gen = tape.generation();
  da = db = Var();
  for_each_partial(
      tape.record(i), i, [&](std::uint32_t j) { return Var(tape.value(j), j, gen, &tape); },
      [&](std::uint32_t k) { return tape.constant(k); },
      [&](int slot, std::uint32_t, auto d) { (slot == 0 ? da : db) = as_var(d()); });
}

std::vector<double> scalar_tangents(Tape& tape, const std::vector<std::pair<std::uint32_t, double>>& seeds,
                                    const std::vector<std::uint32_t>& outs) {
  std::vector<double> result(outs.size(), 0.0);
  std::uint32_t from = Tape::kNone, to = 0;
  for (std::uint32_t o : outs) to = std::max(to, o);
  for (const auto& sd : seeds) from = std::min(from, sd.first);
  if (outs.empty() || from == Tape::kNone || from > to) return result;
  // A Var that entered tensors and came back (a tensor record read as a scalar, made by a
  // recorded sweep): the tensor tangent sweep carries it.
  for (std::uint32_t i = from; i <= to; ++i)
    if (tape.record(i).op == Op::Node && tape.node(i).scalar_output()) return tangents_through_tensors(tape, seeds, outs);
  // One forward loop on doubles over the scalar records. A seeded record keeps its seed.
  std::vector<double> t(to - from + 1, 0.0);
  std::vector<char> seeded(t.size(), 0);
  for (const auto& [rec, s] : seeds)
    if (rec <= to) {
      t[rec - from] += s;
      seeded[rec - from] = 1;
    }
  for (std::uint32_t i = from; i <= to; ++i) {
    const Record& r = tape.record(i);
    const OpKind kind = op_info(r.op).kind;
    if (seeded[i - from] || kind == OpKind::Leaf || kind == OpKind::Node) continue;
    const double ta = r.a >= from ? t[r.a - from] : 0.0;
    const double tb = kind == OpKind::Binary && r.b >= from ? t[r.b - from] : 0.0;
    if (ta == 0.0 && tb == 0.0) continue;  // (so 0 * inf never arises off the path)
    double da, db;
    scalar_partials(tape, i, da, db);
    t[i - from] = (ta != 0.0 ? ta * da : 0.0) + (tb != 0.0 ? tb * db : 0.0);
  }
  for (std::size_t o = 0; o < outs.size(); ++o)
    if (outs[o] >= from) result[o] = t[outs[o] - from];
  return result;
}

std::vector<Var> recorded_tangents(Tape& tape, const std::vector<std::pair<std::uint32_t, Var>>& seeds,
                                   const std::vector<std::uint32_t>& outs) {
  std::vector<Var> result(outs.size());
  std::uint32_t from = Tape::kNone, to = 0;
  for (std::uint32_t o : outs) to = std::max(to, o);
  for (const auto& sd : seeds) from = std::min(from, sd.first);
  if (outs.empty() || from == Tape::kNone || from > to) return result;
  for (std::uint32_t i = from; i <= to; ++i)
    if (tape.record(i).op == Op::Node && tape.node(i).scalar_output())
      return recorded_tangents_through_tensors(tape, seeds, outs);
  ScopedTape scope(tape);  // the rules record on this tape
  const std::uint32_t gen = tape.generation(), n = to - from + 1;
  std::vector<Var> t(n);
  std::vector<char> has(n, 0), seeded(n, 0);
  for (const auto& [rec, v] : seeds)
    if (rec <= to) {
      t[rec - from] = has[rec - from] ? t[rec - from] + v : v;
      has[rec - from] = seeded[rec - from] = 1;
    }
  auto at = [&](std::uint32_t j) { return Var(tape.value(j), j, gen, &tape); };
  auto constant = [&](std::uint32_t k) { return tape.constant(k); };
  auto in = [&](std::uint32_t j) -> const Var* { return j >= from && j <= to && has[j - from] ? &t[j - from] : nullptr; };
  auto set = [&](std::uint32_t i, const Var& v) {
    t[i - from] = v;
    has[i - from] = 1;
  };
  for (std::uint32_t i = from; i <= to; ++i) {
    if (seeded[i - from]) continue;
    const Record r = tape.record(i);  // a copy: the rules append records
    // (Leaf and Node records have no rule: tensor records never lead back to a scalar one.)
    Var sum;
    bool any = false;
    for_each_partial(r, i, at, constant, [&](int, std::uint32_t j, auto d) {
      if (const Var* tj = in(j)) {
        const Var term = scaled(*tj, d());
        sum = any ? sum + term : term;
        any = true;
      }
    });
    if (any) set(i, sum);
  }
  for (std::size_t o = 0; o < outs.size(); ++o)
    if (const Var* v = in(outs[o])) result[o] = *v;
  return result;
}
}  // namespace detail

std::vector<double> jvp(const std::vector<Var>& ys, const std::vector<Var>& xs, const std::vector<double>& v) {
  return scalar_jvp(ys, xs, v, detail::scalar_tangents);
}

std::vector<Var> jvp(const std::vector<Var>& ys, const std::vector<Var>& xs, const std::vector<Var>& v, CreateGraph) {
  return scalar_jvp(ys, xs, v, detail::recorded_tangents);
}

std::vector<Var> grad(const Var& y, const std::vector<Var>& xs, CreateGraph) {
  std::vector<Var> g(xs.size());
  if (y.is_constant()) return g;
  Tape& t = detail::checked_tape(y, "grad()");
  for (const Var& x : xs)
    if (!x.is_constant() && (x.tape() != &t || x.generation() != t.generation()))
      detail::throw_unusable(x, "grad() with respect to a Var of another tape or generation");
  std::vector<Var> adj;
  std::vector<char> has;
  detail::recorded_reverse(t, y.index(), Var::constant(1.0), adj, has);
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (!xs[i].is_constant() && xs[i].index() < has.size() && has[xs[i].index()]) g[i] = adj[xs[i].index()];
  return g;
}

std::vector<double> grad(const Var& y, const std::vector<Var>& xs) {
  std::vector<double> g(xs.size(), 0.0);
  if (y.is_constant()) return g;
  Tape& t = detail::checked_tape(y, "grad()");
  for (const Var& x : xs)
    if (!x.is_constant() && (x.tape() != &t || x.generation() != t.generation()))
      detail::throw_unusable(x, "grad() with respect to a Var of another tape or generation");
  t.reverse(y.index());
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (!xs[i].is_constant()) g[i] = t.adjoint(xs[i].index());
  return g;
}

}  // namespace tapegrad
