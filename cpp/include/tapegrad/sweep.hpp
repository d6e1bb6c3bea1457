// The states of the sweeps that run forwards, handed to every record's step: the tangent sweep
// (forward mode: the tangent of each record between the seeds and the outputs, K directions at
// once) and the forward sweep at new inputs (replay's engine).
#pragma once

#include <cstdint>
#include <unordered_map>
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
  /// A recorded sweep when grad mode is on where it is made (the mode is read here, once).
  TangentSweep(Tape& on, std::uint32_t from, std::uint32_t to, std::int64_t directions)
      : tape(on), K(directions), recorded(grad_enabled()), from_(from), to_(to), tan_(to - from + 1) {}

  Tape& tape;
  const std::int64_t K;  ///< the number of directions
  const bool recorded;   ///< whether the steps record (their tangents are differentiable)

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
  /// A record of an op with several outputs (a custom function's) computes the tangents of all
  /// of them in its step: those of its other outputs k >= 1 wait here until the records that
  /// stand for them (which follow it on the tape) take them.
  void set_output(std::uint32_t rec, std::size_t k, Tensor t) {
    std::vector<Tensor>& o = outputs_[rec];
    if (o.size() <= k) o.resize(k + 1);
    o[k] = std::move(t);
  }
  Tensor take_output(std::uint32_t rec, std::size_t k) {
    const auto it = outputs_.find(rec);
    if (it == outputs_.end() || k >= it->second.size()) return Tensor();
    return std::move(it->second[k]);
  }

 private:
  std::uint32_t from_, to_;
  std::vector<Tensor> tan_;
  std::unordered_map<std::uint32_t, std::vector<Tensor>> outputs_;  // (few: multi-output records)
};

/// The forward sweep at new inputs: the engine of replay (DESIGN principle 5), the fourth
/// question every record answers. It runs the records that lead to the requested outputs again,
/// in record order, each from its inputs' new values: a scalar record by its op table row, a
/// node by Node::forward (the op's kernel; no Python). A leaf takes the value given to it with
/// set(), or keeps its recorded value (a scalar leaf's number, a tensor leaf's data as it is
/// now). Constant inputs of tensor records are read from the records, so the tape must have
/// been recorded with Tape::set_keep_constants(true).
///
/// Plain by default: nothing is recorded (grad mode off). A recorded sweep runs the ops with
/// grad mode on, on the active tape, as ordinary calls would: give its leaves new values that
/// are Vars and tensors requiring grad, and its outputs can be differentiated at the new
/// values (a leaf left at its recorded value is then a constant, or, for a tensor leaf, the
/// leaf itself). Autocast is off while it runs: the recorded casts are records of their own.
///
///     ForwardSweep fw(tape);
///     fw.set(x, Tensor::from_values({...}, shape));   // the leaf x's new value
///     fw.run({y});
///     Tensor y_new = fw.tensor(y);
///
/// Records are named by handle (a tensor leaf or result of the tape) or by index (a Var's
/// `index()`, a record of a graph walk).
class ForwardSweep {
 public:
  explicit ForwardSweep(Tape& on, bool record = false) : tape(on), recorded(record) {}

  Tape& tape;
  const bool recorded;  ///< whether the steps record (their results can be differentiated)

  /// Gives record `rec` (a leaf, or any record: the sweep then starts from there) a new value.
  void set(std::uint32_t rec, Tensor value);
  void set(std::uint32_t rec, double value);
  void set(std::uint32_t rec, const Var& value);
  /// Runs every record that leads to one of the records `outputs` and has no value yet. Errors
  /// (a record that cannot run forward, a constant input not kept) name the record and its op.
  void run_records(const std::vector<std::uint32_t>& outputs);

  /// The same by handle: a tensor leaf or a current result of this tape.
  void set(const Tensor& leaf, Tensor value) { set(record(leaf), std::move(value)); }
  /// Runs every record that leads to one of `outputs` (results of this tape).
  void run(const std::vector<Tensor>& outputs);
  Tensor tensor(const Tensor& output) { return tensor(record(output)); }
  /// The record of `t` on the sweep's tape (a leaf's record is made on first use).
  std::uint32_t record(const Tensor& t);

  /// Record `rec`'s new value as a tensor (a scalar record's as a 0-d float64 tensor; in a
  /// recorded sweep one on the graph of its Var).
  Tensor tensor(std::uint32_t rec);
  /// The new value of record `rec`, which holds one element, as a number.
  double value(std::uint32_t rec);
  /// The same as a Var (a recorded sweep's: on the graph; a plain one's: a constant).
  Var var(std::uint32_t rec);
  /// Whether record `rec` has its new value.
  bool has(std::uint32_t rec) const noexcept { return rec < state_.size() && state_[rec] != 0; }

 private:
  void grow(std::uint32_t rec);
  void step(std::uint32_t i);
  // per record: 0 none yet; 1 a number (values_); 2 a Var (vars_); 4 a tensor (tensors_)
  std::vector<unsigned char> state_;
  std::vector<double> values_;
  std::vector<Var> vars_;
  std::vector<Tensor> tensors_;
};

}  // namespace tapegrad
