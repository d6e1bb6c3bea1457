// The recorded reverse sweep (create_graph): one backwards loop over every record with the
// adjoints as Vars, so that each contribution is itself recorded and the gradient can be
// differentiated again. Scalar records run their rule on Var (sweep/partials.hpp); every other
// record answers Node::reverse_recorded.
#include <string>
#include <vector>

#include "sweep/partials.hpp"
#include "sweep/scaled.hpp"
#include "tapegrad/tape.hpp"
#include "tapegrad/tensor.hpp"
#include "tapegrad/var.hpp"
#include "tensor/internal.hpp"

namespace tapegrad::detail {

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

void recorded_backward_sweep(Tape& tape, std::uint32_t from, std::vector<Var>& adj, std::vector<char>& has,
                             Workspace* ws) {
  recorded_sweep(tape, from, adj, has, true, 0, nullptr, ws);
  // The values of the scalar adjoints become the tape's last adjoints, as a plain sweep's do.
  Adjoints values = tape.take_adjoints();
  values.reset(from + 1);
  for (std::uint32_t i = 0; i <= from; ++i)
    if (has[i] && tape.record(i).op != Op::Node) values.data()[i] = adj[i].value();
  tape.keep_adjoints(std::move(values));
  tape.accumulate_root_grads();
  if (tape.has_recorded_sink())  // the scalar leaves' recorded gradients
    for (const auto& [slot, g] : sink_adjoints(tape, from, adj, has))
      if (double* target = tape.sink_target(slot)) tape.deliver_recorded(target, g);
}

void recorded_sweep(Tape& tape, std::uint32_t from, std::vector<Var>& adj, std::vector<char>& has, bool deliver,
                    std::uint32_t lo, const std::vector<char>* needed, Workspace* ws) {
  if (lo == 0 && tape.sweeping()) tape.throw_nested_sweep();  // (a nested range sweep is checkpoint's)
  ScopedTape scope(tape);  // the rules record on this tape
  Tape::SweepScope running(tape);
  detail::NoAutocast plain;  // (ops in a sweep run in their forward's dtypes)
  ReverseSweep sweep{tape, /*recorded=*/true, deliver, &adj, &has};
  sweep.needed = needed;
  Workspace own(tape);  // (the tensor records' gradients, unless the front end seeded some)
  sweep.ws = ws ? ws : &own;
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
  // Records with hooks (Var.register_hook): their summed adjoint goes through them first.
  std::vector<char> hooked;
  if (tape.has_hooks()) {
    hooked.assign(from + 1, 0);
    for (std::uint32_t j : tape.hooked_records(from)) hooked[j] = 1;
  }
  try {
    for (std::uint32_t i = from + 1; i-- > lo;) {
      const Record r = tape.record(i);  // a copy: the rules append records
      if (r.op == Op::Node) {
        tape.node(i).reverse_recorded(sweep, i);
        continue;
      }
      if (!has[i]) continue;
      if (!hooked.empty() && hooked[i] && sweep.hooks_at(i)) adj[i] = tape.run_hooks(i, adj[i]);
      const Var g = adj[i];
      if (r.op == Op::Leaf) {
        if (deliver && r.a != Tape::kNone)
          if (double* sink = tape.sink_target(r.a)) *sink += g.value();
        continue;
      }
      for_each_partial(r, i, at, constant, [&](int, std::uint32_t j, auto d) { give(j, scaled(g, d())); });
    }
  } catch (...) {
    // Leave no gradient behind in the tensor records this sweep did not reach.
    for (std::uint32_t j = lo; j <= from && j < tape.size(); ++j)
      if (tape.record(j).op == Op::Node) tape.node(j).reset_grad();
    throw;
  }
}

}  // namespace tapegrad::detail
