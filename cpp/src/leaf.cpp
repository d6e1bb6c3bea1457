// Leaf and its bookkeeping on the tapes it is used on (detail::LeafRecords), the object model
// of Python's Var leaves: recorded on first use, again after a new value, on each tape; every
// record delivers into the one gradient.
#include "tapegrad/leaf.hpp"

#include "tapegrad/tensor.hpp"

namespace tapegrad {
namespace detail {

bool LeafRecords::live(const Sink& s) const noexcept {
  return s.tape && tape_alive(s.tape, s.birth) && s.epoch == s.tape->epoch();
}

std::uint32_t LeafRecords::record_slow(Tape& t, double value, double* grad) {
  // Its sink on t: a live one, else a slot taken on t (in an entry that is empty or whose
  // tape is gone or was cleared since).
  Sink* sink = nullptr;
  Sink* spare = nullptr;
  auto visit = [&](Sink& s) {
    if (sink) return;
    if (s.tape == &t && s.birth == t.birth_generation()) {  // t's own: current, or of a cleared epoch
      if (s.epoch == t.epoch()) sink = &s;
      else spare = &s;
    } else if (!spare && !live(s)) {  // (the registry's lock only for another tape's entry)
      spare = &s;
    }
  };
  visit(first_);
  for (Sink& s : more_) visit(s);
  if (!sink) {
    if (!spare) {
      more_.push_back(Sink{nullptr, 0, 0, 0});
      spare = &more_.back();
    }
    *spare = Sink{&t, t.birth_generation(), t.epoch(), t.add_sink(grad)};
    sink = spare;
  }
  forget();  // older records stay (where reachable), delivering through the same sink
  const std::uint32_t rec = t.push_leaf(value, sink->slot);
  root_ = t.add_root(rec, nullptr, true);
  tape_ = &t;
  epoch_ = t.epoch();
  birth_ = t.birth_generation();
  return rec;
}

void LeafRecords::forget() noexcept {
  if (root_ != Tape::kNone && tape_alive(tape_, birth_) && epoch_ == tape_->epoch()) tape_->remove_root(root_);
  root_ = Tape::kNone;
}

void LeafRecords::drop() noexcept {
  forget();
  auto remove = [this](Sink& s) {
    if (live(s)) s.tape->remove_sink(s.slot);
    s.tape = nullptr;
  };
  remove(first_);
  for (Sink& s : more_) remove(s);
  more_.clear();
}

std::uint32_t LeafRecords::sink_on(const Tape& t) const noexcept {
  if (first_.tape == &t && first_.birth == t.birth_generation() && first_.epoch == t.epoch()) return first_.slot;
  for (const Sink& s : more_)
    if (s.tape == &t && s.birth == t.birth_generation() && s.epoch == t.epoch()) return s.slot;
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
