// The plain reverse sweep (a backward, or autograd.grad without create_graph): one backwards
// loop over the records on doubles, the hot loop of the library. Scalar records run their
// rule's partials inline (sweep/partials.hpp); every other record answers Node::reverse.
#include "sweep/partials.hpp"
#include "tapegrad/tape.hpp"

#include <string>

namespace tapegrad {

void Tape::reverse(std::uint32_t from, double seed) {
  ReverseSweep sweep{*this};
  reverse(sweep, from, seed);
}

void Tape::reverse(ReverseSweep& sweep, std::uint32_t from, double seed, const std::uint32_t* also,
                   std::size_t n_also) {
  if (sweep.recorded || &sweep.tape != this) throw Error("tapegrad: internal error: a plain reverse sweep of another mode");
  if (from >= size_) throw Error("tapegrad: reverse() from record " + std::to_string(from) +
                                 " but the tape holds " + std::to_string(size_));
  const std::uint32_t n = from + 1;
  zero_adjoints(n);
  for (std::size_t k = 0; k < n_also; ++k)
    if (also[k] < n) adjoints_[also[k]] = 1.0;

  double* __restrict adj = adjoints_;
  const double* __restrict v = values_;
  const double* __restrict c = constants_;
  const Record* __restrict rec = records_;
  double* const* sinks = sinks_.data();
  const bool deliver = sweep.deliver;
  adj[from] = seed;
  // Most records feed the very next one (in `100 * a * a`, the product's left operand is
  // the record just before it). A contribution to record i - 1 goes to `carry`, a
  // register, instead of through memory: the next iteration reads it without waiting for a
  // store to be forwarded to a load, which is what bounds this loop (about 1/3 faster).
  // The sum is the same, in the same order: record i is the last consumer of i - 1 swept.
  double carry = 0.0;
  for (std::uint32_t i = n; i-- > 0;) {
    const double g = adj[i] + carry;
    if (carry != 0.0) adj[i] = g;  // the whole adjoint, for adjoint() and root grads
    carry = 0.0;
    if (g == 0.0) continue;
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
      // A node's rule may append records (recorded sweeps run in detail::recorded_sweep, but
      // a rule is free to record): the arenas may have moved. (Anything appended lies after
      // `from`, so the loop never visits it.)
      v = values_;
      c = constants_;
      rec = records_;
      sinks = sinks_.data();
    }
  }
}

void Tape::sweep_node(ReverseSweep& sweep, std::uint32_t i) {
  try {
    nodes_[records_[i].a]->reverse(sweep, i);
  } catch (...) {
    // Leave no gradient behind in the nodes this sweep has not reached yet.
    for (std::uint32_t j = 0; j <= i; ++j)
      if (records_[j].op == Op::Node) nodes_[records_[j].a]->reset_grad();
    throw;
  }
}

}  // namespace tapegrad
