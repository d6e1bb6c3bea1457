// Leaf and its bookkeeping on the tapes it is used on (detail::LeafRecords), the object model
// of Python's Var leaves: recorded on first use, again after a new value, on each tape; every
// record delivers into the one gradient.
#include "tapegrad/leaf.hpp"

#include "tapegrad/tensor.hpp"

namespace tapegrad {
namespace detail {

void LeafRecords::tape_gone(const Tape& t) noexcept {
  if (first_.tape == &t) first_.tape = nullptr;
  for (Sink& s : more_)
    if (s.tape == &t) s.tape = nullptr;
  if (tape_ == &t) {
    tape_ = nullptr;
    root_ = Tape::kNone;
  }
}

std::uint32_t LeafRecords::sink_on(const Tape& t) const noexcept {
  if (first_.tape == &t) return first_.slot;
  for (const Sink& s : more_)
    if (s.tape == &t) return s.slot;
  return Tape::kNone;
}

std::vector<std::uint32_t> LeafRecords::records_on(const Tape& t) const {
  const std::uint32_t slot = sink_on(t);
  if (slot == Tape::kNone || t.size() == 0) return {};
  return sink_records(t, slot, t.size() - 1);
}

}  // namespace detail

Leaf::Leaf(double value) : s_(std::make_unique<State>()) { s_->value = value; }

void Leaf::set_value(double v) noexcept {
  s_->value = v;
  s_->records.forget();
}

Var Leaf::var() const {
  Tape& t = Tape::active();
  const std::uint32_t rec = s_->records.record_on(t, s_->value, &s_->grad);
  return Var(s_->value, rec, t.generation(), &t);
}

void backward(const Var& y, double seed) {
  if (y.is_constant()) return;
  Tape& t = detail::checked_tape(y, "backward()");
  detail::backward_from(t, y.index(), seed);
}

std::vector<double> grad_of_leaves(const Var& y, const std::vector<const Leaf*>& leaves) {
  std::vector<double> g(leaves.size(), 0.0);
  if (y.is_constant()) return g;
  Tape& t = detail::checked_tape(y, "grad_of_leaves()");
  std::vector<std::vector<std::uint32_t>> recs;
  recs.reserve(leaves.size());
  for (const Leaf* x : leaves) {
    if (!x) throw Error("tapegrad: grad_of_leaves(): a null Leaf pointer among the leaves");
    recs.push_back(x->records_on(t));
  }
  const std::vector<detail::GradOfRecords> r = detail::grad_records(t, y.index(), {}, recs, false);
  for (std::size_t k = 0; k < leaves.size(); ++k) g[k] = r[k].value;
  return g;
}

}  // namespace tapegrad
