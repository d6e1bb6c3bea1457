// The plain reverse sweep (a backward, or autograd.grad without create_graph): one backwards
// loop over the records on doubles, the hot loop of the library. Scalar records run their
// rule's partials inline (sweep/partials.hpp); every other record answers Node::reverse.
#include "sweep/partials.hpp"
#include "tapegrad/tape.hpp"
#include "tensor/internal.hpp"
#include "tapegrad/tensor.hpp"
#include "tapegrad/var.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace tapegrad {

void Tape::throw_nested_sweep() const {
  if (sweep_thread_ != std::this_thread::get_id())
    throw Error("tapegrad: a backward pass on a tape that another thread's backward pass is sweeping (it is running "
                "a hook or a custom function's backward meanwhile): not supported; wait for that pass to end, or "
                "record this graph on a tape of its own");
  throw Error("tapegrad: a backward pass started from inside a hook or a custom function's backward, on the tape "
              "that pass is sweeping: not supported (compute it after the pass, or on another tape)");
}

void Tape::reverse(std::uint32_t from, double seed) {
  ReverseSweep sweep{*this};
  reverse(sweep, from, seed);
}

void Tape::reverse(ReverseSweep& sweep, std::uint32_t from, double seed, const std::uint32_t* also,
                   std::size_t n_also) {
  if (sweep.recorded || &sweep.tape != this) throw Error("tapegrad: internal error: a plain reverse sweep of another mode");
  if (from >= size_) throw Error("tapegrad: reverse() from record " + std::to_string(from) +
                                 " but the tape holds " + std::to_string(size_));
  if (sweeping_) throw_nested_sweep();
  const std::uint32_t n = from + 1;
  sweep.from_ = from;
  sweep.also_ = also;
  sweep.n_also_ = n_also;
  sweep.leads_.clear();
  // The adjoints: the front end's buffer, or the tape's lent for the sweep and kept after it.
  struct Lend {
    Tape& tape;
    ReverseSweep& sweep;
    Adjoints own{};
    bool lent = false;
    ~Lend() {
      if (!lent) return;
      tape.keep_adjoints(std::move(own));
      sweep.adjoints = nullptr;
    }
  } lend{*this, sweep};
  if (!sweep.adjoints) {
    lend.own = take_adjoints();
    lend.lent = true;
    sweep.adjoints = &lend.own;
  }
  Adjoints& adj = *sweep.adjoints;
  adj.reset(n);
  for (std::size_t k = 0; k < n_also; ++k)
    if (also[k] < n) adj.data()[also[k]] = 1.0;
  adj.data()[from] = seed;
  SweepScope running(*this);
  detail::NoAutocast plain;  // (ops in a sweep run in their forward's dtypes)
  detail::Workspace own(*this);  // (the tensor records' gradients, unless the front end seeded some)
  if (!sweep.ws) sweep.ws = &own;
  struct Unset {
    ReverseSweep& s;
    detail::Workspace* own;
    ~Unset() {
      if (s.ws == own) s.ws = nullptr;
    }
  } unset{sweep, &own};
  sweep_segments(sweep, n);
}

// Records [0, n) backwards, stopping at each record with hooks (none: one run of the loop) to
// let its hooks change its summed adjoint before it passes it on.
void Tape::sweep_segments(ReverseSweep& sweep, std::uint32_t n) {
  double carry = 0.0;
  if (!has_hooks() || !sweep.hooks) {
    sweep_records(sweep, 0, n, carry);
    return;
  }
  const std::vector<std::uint32_t> stops = hooked_records(n - 1);
  std::size_t h = stops.size();
  std::uint32_t hi = n;
  for (;;) {
    const std::uint32_t seg_lo = h > 0 ? stops[h - 1] + 1 : 0;
    sweep_records(sweep, seg_lo, hi, carry);
    if (h == 0) break;
    const std::uint32_t i = stops[--h];  // (carry is record i's: the loop stopped after i + 1)
    double* adj = sweep.adjoints->data();
    const double g = adj[i] + carry;
    carry = 0.0;
    if (g != 0.0 && sweep.hooks_at(i)) {
      try {
        adj[i] = run_hooks(i, g);
      } catch (...) {
        reset_node_grads(i);
        throw;
      }
    } else {
      adj[i] = g;
    }
    hi = i + 1;
  }
}

void Tape::sweep_records(ReverseSweep& sweep, std::uint32_t lo, std::uint32_t hi, double& carry_io) {
  double* __restrict adj = sweep.adjoints->data();  // (the sweep's: the records keep none)
  const double* __restrict v = values_;
  const double* __restrict c = constants_;
  const Record* __restrict rec = records_;
  double* const* sinks = sinks_.data();
  const bool deliver = sweep.deliver;
  // Most records feed the very next one (in `100 * a * a`, the product's left operand is
  // the record just before it). A contribution to record i - 1 goes to `carry`, a
  // register, instead of through memory: the next iteration reads it without waiting for a
  // store to be forwarded to a load, which is what bounds this loop (about 1/3 faster).
  // The sum is the same, in the same order: record i is the last consumer of i - 1 swept.
  double carry = carry_io;
  for (std::uint32_t i = hi; i-- > lo;) {
    const double g = adj[i] + carry;
    if (carry != 0.0) adj[i] = g;  // the whole adjoint, for adjoint() and root grads
    carry = 0.0;
    if (g == 0.0 && TAPEGRAD_LIKELY(!zero_adjoint_passes(sweep, i))) continue;
    const Record r = rec[i];
    carry = detail::fold_partials(
        r, i, carry, [v](std::uint32_t j) TAPEGRAD_INLINE_LAMBDA { return v[j]; },
        [c](std::uint32_t k) TAPEGRAD_INLINE_LAMBDA { return c[k]; },
        [adj, i, g](double sum, int, std::uint32_t j, auto d) TAPEGRAD_INLINE_LAMBDA {
          const double contribution = g * d();
          if (j + 1 == i) return sum + contribution;
          adj[j] += contribution;
          return sum;
        },
        [&](double sum) TAPEGRAD_INLINE_LAMBDA {
          if (r.op == Op::Leaf) {
            if (r.a != kNone && deliver && sinks[r.a]) *sinks[r.a] += g;
          } else if (r.op == Op::Node) {
            sweep_node(sweep, i);  // out of line: the scalar cases keep their registers
          }
          return sum;
        });
    if (r.op == Op::Node) {
      // A node's rule may append records (a checkpointed segment recomputes, a custom
      // function's backward may record): the arenas may have moved. (Anything appended lies
      // after the records swept here, so the loop never visits it.)
      v = values_;
      c = constants_;
      rec = records_;
      sinks = sinks_.data();
    }
  }
  // A contribution to record lo - 1 stays in `carry` for the caller (or is record -1's: none).
  if (lo == 0) carry = 0.0;
  carry_io = carry;
}

bool Tape::zero_adjoint_passes(ReverseSweep& sweep, std::uint32_t i) {
  const Record r = records_[i];
  if (r.op == Op::Leaf || r.op == Op::Node) return false;  // (a Node with a gradient is marked)
  bool finite = true;
  detail::for_each_partial(
      r, i, [this](std::uint32_t j) { return values_[j]; }, [this](std::uint32_t k) { return constants_[k]; },
      [&](int, std::uint32_t, auto d) { finite = finite && std::isfinite(static_cast<double>(d())); });
  if (finite) return false;  // 0 * d is an exact zero: nothing to pass on
  if (sweep.leads_.empty()) {
    std::vector<std::uint32_t> seeds{sweep.from_};
    for (std::size_t k = 0; k < sweep.n_also_; ++k)
      if (sweep.also_[k] <= sweep.from_) seeds.push_back(sweep.also_[k]);
    sweep.leads_ = leading_to(seeds.data(), seeds.size(), sweep.from_);
  }
  return i < sweep.leads_.size() && sweep.leads_[i];
}

std::vector<char> Tape::leading_to(const std::uint32_t* seeds, std::size_t n, std::uint32_t upto, std::uint32_t lo,
                                   const std::vector<char>* stop, std::vector<std::uint32_t>* last) const {
  std::vector<char> leads(std::size_t(upto) + 1, 0);
  if (last) last->assign(std::size_t(upto) + 1, 0);
  for (std::size_t k = 0; k < n; ++k)
    if (seeds[k] <= upto && seeds[k] >= lo) {
      leads[seeds[k]] = 1;
      if (last) (*last)[seeds[k]] = kNone;
    }
  for (std::uint32_t j = upto + 1; j-- > lo;)
    if (leads[j] && !(stop && (*stop)[j]))
      for_each_operand(j, [&](std::uint32_t q) {
        if (q == kNone || q < lo || q >= j) return;
        leads[q] = 1;
        if (last && (*last)[q] != kNone) (*last)[q] = std::max((*last)[q], j);
      });
  return leads;
}

std::vector<char> Tape::reached_from(const std::vector<std::uint32_t>& targets, std::uint32_t upto) const {
  std::vector<char> reached(std::size_t(upto) + 1, 0);
  std::uint32_t lo = upto + 1;
  for (std::uint32_t t : targets)
    if (t <= upto) {
      reached[t] = 1;
      lo = std::min(lo, t);
    }
  for (std::uint32_t i = lo; i <= upto; ++i)
    if (!reached[i])
      for_each_operand(i, [&](std::uint32_t q) {
        if (q != kNone && reached[q]) reached[i] = 1;
      });
  return reached;
}

Var Tape::run_hooks(std::uint32_t rec, const Var& g) {
  Var out = g;
  for (const Hook& f : hooks_of(rec)) out = f(out);
  return out;
}

double Tape::run_hooks(std::uint32_t rec, double g) { return run_hooks(rec, Var::constant(g)).value(); }

void Tape::sweep_node(ReverseSweep& sweep, std::uint32_t i) {
  try {
    nodes_[records_[i].a]->reverse(sweep, i);
    if (sweep.release) {
      std::unique_ptr<Node>& node = nodes_[records_[i].a];  // (the step may have grown the list)
      if (std::unique_ptr<Node> replacement = node->stand_in()) node = std::move(replacement);
    }
  } catch (...) {
    reset_node_grads(i);
    throw;
  }
}

void Tape::reset_node_grads(std::uint32_t to) noexcept {
  // Leave no gradient behind in the nodes a sweep interrupted at record `to` had not reached.
  for (std::uint32_t j = 0; j <= to; ++j)
    if (records_[j].op == Op::Node) nodes_[records_[j].a]->reset_grad();
}

}  // namespace tapegrad
