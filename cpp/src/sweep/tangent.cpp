// The tangent sweeps (forward mode): tangents carried forward from seeded records to the
// outputs. Over scalar records only, a loop on doubles (or on Vars, recorded); through tensor
// records, the general sweep (TangentSweep), in which each Node answers its tangent step and
// each scalar record's tangent is a (K,) tensor from the table's partials.
#include <algorithm>
#include <utility>
#include <vector>

#include "sweep/partials.hpp"
#include "sweep/scaled.hpp"
#include "sweep/sweeps.hpp"
#include "tapegrad/sweep.hpp"
#include "tensor/internal.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

void TangentSweep::add(std::uint32_t rec, const Tensor& t) {
  Tensor& slot = tan_[rec - from_];
  slot = slot.defined() ? tapegrad::add(slot, t) : t;
}

namespace detail {
namespace {

// The step of a scalar record in the general sweep: its tangents (K,) by the table's partials
// (a Var that entered tensors and came back, or a Var seed).
void scalar_tangent_step(TangentSweep& sweep, std::uint32_t i) {
  const Record& r = sweep.tape.record(i);
  if (r.op == Op::Leaf) return;
  const Tensor* ta = sweep.tangent_of(r.a);
  const Tensor* tb = op_info(r.op).kind == OpKind::Binary ? sweep.tangent_of(r.b) : nullptr;
  if (!ta && !tb) return;
  if (sweep.recorded) {  // create_graph: the partials as recorded Vars, entering tensors
    Var va, vb;
    scalar_partials_recorded(sweep.tape, i, va, vb);
    const Tensor da = Tensor::from_var(va), db = Tensor::from_var(vb);
    sweep.set(i, ta && tb ? *ta * da + *tb * db : (ta ? *ta * da : *tb * db));
  } else {
    double da, db;
    scalar_partials(sweep.tape, i, da, db);
    sweep.set(i, ta && tb ? *ta * da + *tb * db : (ta ? *ta * da : *tb * db));
  }
}

// Scalar tangents through tensor records: the general sweep with one direction, on doubles
// (recorded: on Vars).
std::vector<double> tensor_tangents(Tape& tape, const std::vector<std::pair<std::uint32_t, double>>& seeds,
                                    const std::vector<std::uint32_t>& outs);
std::vector<Var> recorded_tensor_tangents(Tape& tape, const std::vector<std::pair<std::uint32_t, Var>>& seeds,
                                          const std::vector<std::uint32_t>& outs);

}  // namespace

// The tangent sweep over tensor records: tangents (K, *shape) seeded at records `seeds`,
// carried forward through the records between them and `outs`; returns the tangent of each record of `outs` (null
// where it is zero). Only records on a path from a seed to an output are visited.
std::vector<Tensor> tangent_sweep(Tape& tape, const std::vector<std::pair<std::uint32_t, Tensor>>& seeds,
                                  const std::vector<std::uint32_t>& outs, std::int64_t K) {
  std::uint32_t from = Tape::kNone, to = 0;
  for (std::uint32_t o : outs) to = std::max(to, o);
  for (const auto& sd : seeds)
    if (sd.first <= to) from = std::min(from, sd.first);
  std::vector<Tensor> result(outs.size());
  if (from == Tape::kNone) return result;
  Tape::SweepScope running(tape);
  detail::NoAutocast plain;  // (ops in a sweep run in their forward's dtypes)
  TangentSweep sweep(tape, from, to, K);
  std::vector<char> is_seed(std::size_t(to) + 1, 0);
  for (const auto& [rec, t] : seeds) {
    if (rec > to) continue;
    sweep.add(rec, t);
    is_seed[rec] = 1;
  }
  // Only the records between the seeds and the outputs matter: marked backwards from the
  // outputs (not through the seeds), with each one's last reader, after which its tangent is
  // dropped (the outputs' are kept).
  std::vector<std::uint32_t> last;
  const std::vector<char> need = tape.leading_to(outs.data(), outs.size(), to, from, &is_seed, &last);
  // The sweep: one forward loop over the records that matter.
  for (std::uint32_t i = from; i <= to; ++i) {
    if (!need[i] || is_seed[i]) continue;
    if (tape.record(i).op == Op::Node)
      tape.node(i).tangent(sweep, i);
    else
      scalar_tangent_step(sweep, i);
    tape.for_each_operand(i, [&](std::uint32_t j) {
      if (j != Tape::kNone && j >= from && j < i && last[j] == i) sweep.set(j, Tensor());
    });
  }
  for (std::size_t o = 0; o < outs.size(); ++o)
    if (const Tensor* t = sweep.tangent_of(outs[o])) result[o] = *t;
  return result;
}

namespace {
std::vector<Var> recorded_tensor_tangents(Tape& tape, const std::vector<std::pair<std::uint32_t, Var>>& seeds,
                                         const std::vector<std::uint32_t>& outs) {
  ScopedTape scope(tape);
  EnableGrad eg;  // the tangent sweep records
  std::vector<std::pair<std::uint32_t, Tensor>> at;
  for (const auto& [rec, v] : seeds) at.emplace_back(rec, reshape(Tensor::from_var(v), {1}));
  const std::vector<Tensor> t = tangent_sweep(tape, at, outs, 1);
  std::vector<Var> r(outs.size());
  for (std::size_t o = 0; o < outs.size(); ++o)
    if (t[o].defined()) r[o] = var_of(t[o]);
  return r;
}

std::vector<double> tensor_tangents(Tape& tape, const std::vector<std::pair<std::uint32_t, double>>& seeds,
                                    const std::vector<std::uint32_t>& outs) {
  NoGrad ng;
  std::vector<std::pair<std::uint32_t, Tensor>> at;
  for (const auto& [rec, v] : seeds) at.emplace_back(rec, Tensor::full({1}, v));
  const std::vector<Tensor> t = tangent_sweep(tape, at, outs, 1);
  std::vector<double> r(outs.size(), 0.0);
  for (std::size_t o = 0; o < outs.size(); ++o)
    if (t[o].defined()) r[o] = t[o].item();
  return r;
}
}  // namespace

void scalar_partials(const Tape& tape, std::uint32_t i, double& da, double& db) {
  da = db = 0.0;
  for_each_partial(
      tape.record(i), i, [&](std::uint32_t j) { return tape.value(j); },
      [&](std::uint32_t k) { return tape.constant(k); },
      [&](int slot, std::uint32_t, auto d) { (slot == 0 ? da : db) = static_cast<double>(d()); });
}

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
    if (tape.record(i).op == Op::Node && tape.node(i).scalar_output()) return tensor_tangents(tape, seeds, outs);
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
      return recorded_tensor_tangents(tape, seeds, outs);
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
}  // namespace tapegrad
