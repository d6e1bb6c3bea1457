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
/// Tapes are checked for liveness (and for a new tape at a dead one's address) before use.
class LeafRecords {
 public:
  LeafRecords() = default;
  LeafRecords(const LeafRecords&) = delete;
  LeafRecords& operator=(const LeafRecords&) = delete;
  ~LeafRecords() { drop(); }

  /// The leaf's record on tape t for its value `value`: its current one there, or a new leaf
  /// record (the first use on t, in t's epoch, or since forget()), which delivers into *grad.
  std::uint32_t record_on(Tape& t, double value, double* grad) {
    if (TAPEGRAD_LIKELY(tape_ == &t && root_ != Tape::kNone && epoch_ == t.epoch() && birth_ == t.birth_generation()))
      return t.root_record(root_);
    return record_slow(t, value, grad);
  }
  /// The value changed: the next use records it anew (older records keep the old value and
  /// still deliver into the same gradient).
  void forget() noexcept;
  /// Removes its sinks and its root from the tapes still alive (the leaf is going away).
  void drop() noexcept;
  /// Its sink slot on tape t (Tape::kNone: none in t's current epoch).
  std::uint32_t sink_on(const Tape& t) const noexcept;
  /// Its records on tape t, one per value it had when used there (for grad()).
  std::vector<std::uint32_t> records_on(const Tape& t) const;
  /// The tape of its current record (null: none).
  Tape* tape() const noexcept { return root_ == Tape::kNone ? nullptr : tape_; }

 private:
  struct Sink {
    Tape* tape;
    std::uint32_t birth, epoch, slot;
  };
  std::uint32_t record_slow(Tape& t, double value, double* grad);
  bool live(const Sink& s) const noexcept;

  Sink first_{nullptr, 0, 0, 0};
  std::vector<Sink> more_;  // a leaf used on several tapes (threads, nested tapes)
  Tape* tape_ = nullptr;    // its current record's tape, root, and that tape's epoch and birth
  std::uint32_t root_ = Tape::kNone, epoch_ = 0, birth_ = 0;
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
/// `std::vector`) while tapes deliver into it. Not thread-safe: one thread uses a Leaf at a time.
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
