// Leaf: an independent variable that keeps its value and its gradient across tapes (the
// object model of Python's tapegrad.Var leaves, for C++).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tapegrad/var.hpp"

namespace tapegrad {

namespace detail {

/// Where a leaf stands on the tapes it was used on: a sink per tape (every record of it there
/// delivers into its gradient through that sink) and its current record (a root, so that
/// `collect()` keeps and moves it). The bookkeeping of `Leaf`, and of Python's Var leaves.
/// Each tape it has a sink on tells it when the tape is cleared or destroyed (SinkOwner), so a
/// tape it names is always alive and in the epoch it was used in: no check costs anything.
/// Not movable (the tapes know its address).
class LeafRecords final : public SinkOwner {
 public:
  /// The default `before`: nothing. A `before(Tape&)` callable is called with a tape just
  /// before the leaf changes what that tape holds (a root or a sink): the Python module waits
  /// there while another thread sweeps that tape.
  struct NoWait {
    void operator()(Tape&) const noexcept {}
  };

  LeafRecords() = default;
  LeafRecords(const LeafRecords&) = delete;
  LeafRecords& operator=(const LeafRecords&) = delete;
  ~LeafRecords() { drop(); }

  /// Whether its current record is on tape t (the next use there returns it).
  bool current_on(const Tape& t) const noexcept { return tape_ == &t && root_ != Tape::kNone; }
  /// The leaf's record on tape t for its value `value`: its current one there, or a new leaf
  /// record (the first use on t, since t's clear(), or since forget()), which delivers into
  /// *grad.
  template <class Before = NoWait>
  std::uint32_t record_on(Tape& t, double value, double* grad, Before before = {}) {
    if (TAPEGRAD_LIKELY(current_on(t))) return t.root_record(root_);
    before(t);  // (the caller holds t already when it records there: a no-op then)
    const std::uint32_t slot = sink_for(t, grad);
    forget(before);  // older records stay (where reachable), delivering through the same sink
    const std::uint32_t rec = t.push_leaf(value, slot);
    root_ = t.add_root(rec, nullptr, true);
    tape_ = &t;
    return rec;
  }
  /// The value changed: the next use records it anew (older records keep the old value and
  /// still deliver into the same gradient).
  template <class Before = NoWait>
  void forget(Before before = {}) noexcept {
    if (tape_ && root_ != Tape::kNone) {
      before(*tape_);  // (may let other threads run: what it names is read again after)
      if (tape_ && root_ != Tape::kNone) tape_->remove_root(root_);
    }
    tape_ = nullptr;
    root_ = Tape::kNone;
  }
  /// Removes its sinks and its root from the tapes it is on (the leaf is going away).
  template <class Before = NoWait>
  void drop(Before before = {}) noexcept {
    forget(before);
    auto remove = [&](Sink& s) {
      if (s.tape) {
        before(*s.tape);
        if (s.tape) s.tape->remove_sink(s.slot);  // (the tape may have gone meanwhile)
      }
      s.tape = nullptr;
    };
    remove(first_);
    for (Sink& s : more_) remove(s);
    more_.clear();
  }
  /// Its sink slot on tape t (Tape::kNone: none since t's last clear()).
  std::uint32_t sink_on(const Tape& t) const noexcept;
  /// Its records on tape t, one per value it had when used there (for grad()).
  std::vector<std::uint32_t> records_on(const Tape& t) const;
  void tape_gone(const Tape& t) noexcept override;

 private:
  struct Sink {
    Tape* tape;  // null: a free entry (a tape that was cleared or destroyed frees its entry)
    std::uint32_t slot;
  };
  // Its sink slot on t, else a slot taken on t (in a free entry, or a new one).
  std::uint32_t sink_for(Tape& t, double* grad) {
    Sink* spare = nullptr;
    if (first_.tape == &t) return first_.slot;
    if (!first_.tape) spare = &first_;
    for (Sink& s : more_) {
      if (s.tape == &t) return s.slot;
      if (!s.tape && !spare) spare = &s;
    }
    if (!spare) {
      more_.push_back(Sink{nullptr, 0});
      spare = &more_.back();
    }
    const std::uint32_t slot = t.add_sink(grad, this);
    *spare = Sink{&t, slot};
    return slot;
  }

  Sink first_{nullptr, 0};
  std::vector<Sink> more_;  // a leaf used on several tapes (threads, nested tapes)
  Tape* tape_ = nullptr;    // its current record's tape and root there
  std::uint32_t root_ = Tape::kNone;
};

}  // namespace detail

/// An independent variable that keeps its value and its accumulated gradient across tapes,
/// as micrograd's `Value` and PyTorch's leaf tensors do (and Python's `tapegrad.Var`):
///
///     tapegrad::Leaf w = 0.5, b = 0.0;
///     for (int step = 0; step < 100; ++step) {
///       tapegrad::Tape tape;  tapegrad::ScopedTape scope(tape);
///       tapegrad::Var loss = square(w * x + b - y);  // w and b recorded on first use
///       tapegrad::backward(loss);                    // w.grad() += d loss / d w
///       w.set_value(w.value() - 0.1 * w.grad());  w.zero_grad();  // (and b)
///     }
///
/// A Leaf converts to a `Var` where an operation uses it: on the active tape it is recorded
/// the first time, and again after `set_value` (records made before keep the value they had),
/// and once on each other tape it is used on. Every backward pass that reaches any of its
/// records adds into `grad()`. Its state lives on the heap, so a Leaf can move (into a
/// `std::vector`) while tapes deliver into it; a moved-from Leaf may only be assigned to or
/// destroyed. Not thread-safe: one thread uses a Leaf (and the tapes it is on) at a time.
class Leaf {
 public:
  Leaf(double value = 0.0);  // NOLINT(google-explicit-constructor): `Leaf w = 0.5;`
  Leaf(Leaf&&) noexcept = default;
  Leaf& operator=(Leaf&&) noexcept = default;
  ~Leaf() = default;

  double value() const noexcept { return s_->value; }
  /// A new value: the next operation records it.
  void set_value(double v) noexcept;
  /// The gradient accumulated by the backward passes since it was last zeroed.
  double grad() const noexcept { return s_->grad; }
  void set_grad(double g) noexcept { s_->grad = g; }
  void zero_grad() noexcept { s_->grad = 0.0; }

  /// This leaf as an operand on the active tape (recorded there on first use).
  Var var() const;
  operator Var() const { return var(); }  // NOLINT(google-explicit-constructor): `w * x`
  /// Its records on tape t (one per value it had when used there).
  std::vector<std::uint32_t> records_on(const Tape& t) const { return s_->records.records_on(t); }

 private:
  struct State {
    double value = 0.0;
    double grad = 0.0;
    detail::LeafRecords records;
  };
  std::unique_ptr<State> s_;
};

/// The reverse sweep from y (Python's `y.backward()`): every Leaf that y depends on adds
/// seed * d y / d leaf into its grad(); nothing else changes. y must be recorded (a Var made
/// by operations on Leafs or Vars); a constant y does nothing.
void backward(const Var& y, double seed = 1.0);

/// The gradient of y with respect to each leaf (summed over the leaf's records on y's tape),
/// without touching any grad(): torch.autograd.grad for Leafs. (Its own name: `grad(y, {})`
/// keeps meaning the Var overload.)
std::vector<double> grad_of_leaves(const Var& y, const std::vector<const Leaf*>& leaves);

}  // namespace tapegrad
