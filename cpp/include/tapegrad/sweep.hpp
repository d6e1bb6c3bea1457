// The state of the tangent sweep (forward mode), handed to every record's tangent step: the
// tangent of each record between the seeds and the outputs, K directions at once.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

/// The tangent sweep over records [from, to]: each record's tangent is a Tensor of shape
/// (K, *its value's shape), or undefined where it is zero (a scalar record's is (K,)). A
/// record's step (Node::tangent, or the table's partials for a scalar record) reads its
/// inputs' tangents and sets its own. With grad mode on, the steps record (a tangent that is
/// itself differentiable).
class TangentSweep {
 public:
  TangentSweep(Tape& on, std::uint32_t from, std::uint32_t to, std::int64_t directions)
      : tape(on), K(directions), from_(from), to_(to), tan_(to - from + 1) {}

  Tape& tape;
  const std::int64_t K;  ///< the number of directions

  /// The tangent of record `rec`, or null where it is zero or outside the sweep.
  const Tensor* tangent_of(std::uint32_t rec) const noexcept {
    if (rec == Tape::kNone || rec < from_ || rec > to_) return nullptr;
    const Tensor& t = tan_[rec - from_];
    return t.defined() ? &t : nullptr;
  }
  /// Sets the tangent of record `rec` (undefined: zero).
  void set(std::uint32_t rec, Tensor t) { tan_[rec - from_] = std::move(t); }
  /// Adds t into the tangent of record `rec` (a seed given twice).
  void add(std::uint32_t rec, const Tensor& t);

 private:
  std::uint32_t from_, to_;
  std::vector<Tensor> tan_;
};

}  // namespace tapegrad
