// The forward sweep at new inputs (the fourth question; the engine of replay): each record that
// leads to the requested outputs runs again from its inputs' new values, in record order. A
// scalar record by its op table row (on doubles, or on Vars when the sweep records); a node by
// Node::forward (the op's kernel).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "sweep/partials.hpp"
#include "tapegrad/sweep.hpp"
#include "tensor/internal.hpp"

namespace tapegrad {

namespace {
enum : unsigned char { kNumber = 1, kVar = 2, kTensor = 4 };
}  // namespace

void Node::forward(ForwardSweep&, std::uint32_t) {
  throw Error(std::string("tapegrad: ") + name() + " cannot run forward at new inputs");
}

void ForwardSweep::grow(std::uint32_t rec) {
  if (rec < state_.size()) return;
  const std::size_t n = std::max<std::size_t>(std::size_t(rec) + 1, tape.size());
  state_.resize(n, 0);
  values_.resize(n, 0.0);
  tensors_.resize(n);
  vars_.resize(n);
}

void ForwardSweep::set(std::uint32_t rec, Tensor value) {
  if (!value.defined()) throw Error("tapegrad: ForwardSweep::set: an undefined tensor for record " + std::to_string(rec));
  if (rec >= tape.size())
    throw Error("tapegrad: ForwardSweep::set: record " + std::to_string(rec) + " is not on the tape (it has " +
                std::to_string(tape.size()) + " records)");
  // A new value has the recorded one's shape and dtype: the records after it were made for those.
  if (tape.record(rec).op == Op::Node) {
    if (const auto* n = dynamic_cast<const detail::TNode*>(&tape.node(rec))) {
      if (value.shape() != n->out_shape_ || value.dtype() != n->out_dtype_)
        throw ValueError("tapegrad: a new value for record " + std::to_string(rec) + " (" + n->name() + "): it was a " +
                         dtype_name(n->out_dtype_) + " tensor of shape " + shape_str(n->out_shape_) +
                         " when recorded, the new value is a " + dtype_name(value.dtype()) + " tensor of shape " +
                         shape_str(value.shape()));
    }
  } else if (value.numel() != 1) {
    throw ValueError("tapegrad: a new value for record " + std::to_string(rec) + ", a scalar record: a tensor of shape " +
                     shape_str(value.shape()) + " is not one number");
  }
  grow(rec);
  tensors_[rec] = std::move(value);
  state_[rec] = kTensor;
}

void ForwardSweep::set(std::uint32_t rec, double value) {
  if (rec >= tape.size())
    throw Error("tapegrad: ForwardSweep::set: record " + std::to_string(rec) + " is not on the tape (it has " +
                std::to_string(tape.size()) + " records)");
  grow(rec);
  values_[rec] = value;
  state_[rec] = kNumber;
}

void ForwardSweep::set(std::uint32_t rec, const Var& value) {
  set(rec, value.value());
  values_[rec] = value.value();
  vars_[rec] = value;
  state_[rec] = recorded ? kNumber | kVar : kNumber;
}

namespace {
[[noreturn]] void throw_no_value(std::uint32_t rec) {
  throw Error("tapegrad: ForwardSweep: record " + std::to_string(rec) +
              " has no new value (run() the records that lead to it first)");
}
}  // namespace

Tensor ForwardSweep::tensor(std::uint32_t rec) {
  if (!has(rec)) throw_no_value(rec);
  if (state_[rec] & kTensor) return tensors_[rec];
  GradModeGuard mode(recorded);
  tensors_[rec] = recorded ? Tensor::from_var(var(rec))
                           : detail::scalar_record_tensor(nullptr, Tape::kNone, values_[rec]);
  state_[rec] |= kTensor;
  return tensors_[rec];
}

double ForwardSweep::value(std::uint32_t rec) {
  if (!has(rec)) throw_no_value(rec);
  if (state_[rec] & kNumber) return values_[rec];
  const Tensor& t = tensors_[rec];
  if (t.numel() != 1)
    throw Error("tapegrad: ForwardSweep: record " + std::to_string(rec) + " holds a tensor of shape " +
                shape_str(t.shape()) + ", not one number");
  values_[rec] = t.item();
  state_[rec] |= kNumber;
  return values_[rec];
}

Var ForwardSweep::var(std::uint32_t rec) {
  if (!recorded) return Var::constant(value(rec));
  if (!has(rec)) throw_no_value(rec);
  if (state_[rec] & kVar) return vars_[rec];
  if (state_[rec] & kTensor) {
    const Tensor& t = tensors_[rec];
    if (t.numel() != 1)
      throw Error("tapegrad: ForwardSweep: record " + std::to_string(rec) + " holds a tensor of shape " +
                  shape_str(t.shape()) + ", not one number");
    EnableGrad on;
    vars_[rec] = detail::var_of(t);
  } else {
    vars_[rec] = Var::constant(values_[rec]);
  }
  values_[rec] = vars_[rec].value();
  state_[rec] |= kVar | kNumber;
  return vars_[rec];
}

void ForwardSweep::step(std::uint32_t i) {
  const Record r = tape.record(i);  // (a copy: a recorded sweep on the active tape may grow it)
  switch (op_info(r.op).kind) {
    case OpKind::Leaf:  // a leaf without a new value keeps its recorded one (a constant)
      grow(i);
      values_[i] = tape.value(i);
      state_[i] = kNumber;
      return;
    case OpKind::Node:
      tape.node(i).forward(*this, i);
      if (!has(i)) throw Error(std::string("tapegrad: ") + tape.node(i).name() + " gave no value at new inputs");
      return;
    default:
      break;
  }
  grow(i);
  if (recorded) {
    const Var v = detail::forward_value<Var>(
        r, [&](std::uint32_t j) { return var(j); }, [&](std::uint32_t k) { return Var::constant(tape.constant(k)); });
    vars_[i] = v;
    values_[i] = v.value();
    state_[i] = kNumber | kVar;
  } else {
    values_[i] = detail::forward_value<double>(
        r, [&](std::uint32_t j) { return value(j); }, [&](std::uint32_t k) { return tape.constant(k); });
    state_[i] = kNumber;
  }
}

std::uint32_t ForwardSweep::record(const Tensor& t) {
  if (!t.defined()) throw Error("tapegrad: ForwardSweep: a null tensor names no record");
  const TensorImpl& p = t.impl();
  if (!p.requires_grad)
    throw ValueError("tapegrad: ForwardSweep: this tensor does not require grad, so it has no record: a constant, "
                     "not a leaf or a result of the tape");
  return detail::record_of(t, tape);
}

void ForwardSweep::run(const std::vector<Tensor>& outputs) {
  std::vector<std::uint32_t> recs;
  recs.reserve(outputs.size());
  for (const Tensor& t : outputs) recs.push_back(record(t));
  run_records(recs);
}

void ForwardSweep::run_records(const std::vector<std::uint32_t>& outputs) {
  if (outputs.empty()) return;
  const std::uint32_t upto = *std::max_element(outputs.begin(), outputs.end());
  if (upto >= tape.size())
    throw Error("tapegrad: ForwardSweep::run_records: record " + std::to_string(upto) + " is not on the tape (it has " +
                std::to_string(tape.size()) + " records)");
  grow(upto);
  // Records with a value already are reached but not walked through: what they read is not needed.
  std::vector<char> stop(std::size_t(upto) + 1, 0);
  for (std::uint32_t j = 0; j <= upto; ++j) stop[j] = state_[j] != 0;
  const std::vector<char> need = tape.leading_to(outputs.data(), outputs.size(), upto, 0, &stop);
  Tape::SweepScope running(tape);
  GradModeGuard mode(recorded);
  detail::NoAutocast no_autocast;
  for (std::uint32_t i = 0; i <= upto; ++i)
    if (need[i] && !has(i)) step(i);
}

}  // namespace tapegrad
