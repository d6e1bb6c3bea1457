// The bridges between scalars and tensors on one tape: a Var entering tensor arithmetic
// (ScalarNode) and a one-element tensor entering scalar arithmetic (ItemNode, var_of).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "tensor/internal.hpp"

namespace tapegrad::detail {

namespace {
// A Var entering tensor arithmetic: a 0-d tensor whose gradient goes to a scalar record.
class ScalarNode final : public TNode {
 public:
  const char* name() const noexcept override { return "ScalarTensorBackward0"; }
 protected:
  void vjp(OpCtx& c, const Tensor& g) override { c.give(0, g); }
  Tensor jvp(OpCtx&, const std::vector<Tensor>& t) override { return t[0]; }  // (K,): the scalar's tangents
  // (the sweep gives the scalar record's new value as a 0-d tensor, on the graph if it records)
  Tensor forward_at(OpCtx&, const std::vector<Tensor>& in) override { return in[0]; }
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }
};
}  // namespace

Tensor scalar_record_tensor(Tape* tape, std::uint32_t rec, double value) {
  Tensor r = empty_tensor({}, DType::Float64);
  *r.data<double>() = value;
  if (!tape || rec == Tape::kNone || !grad_enabled()) return r;
  auto node = std::make_unique<ScalarNode>();
  node->in_ = {rec};
  node->set_output(r.impl_ptr());
  const std::uint32_t me = tape->push_node(std::move(node));
  mark_recorded(r.impl(), *tape, me);
  return r;
}

// A one-element tensor entering scalar arithmetic (made by recorded sweeps, where a recorded
// tensor gradient reaches a Var): scalar records read its value; its adjoint (a double in a
// plain sweep, a Var in a recorded one) goes back to the tensor as a 0-d gradient.
class ItemNode final : public TNode {
 public:
  const char* name() const noexcept override { return "ItemBackward0"; }
  bool scalar_output() const noexcept override { return true; }

 protected:
  void vjp(OpCtx& c, const Tensor& g) override { c.give(0, g); }  // add_grad reshapes to the input's shape
  Tensor jvp(OpCtx&, const std::vector<Tensor>& t) override { return t[0]; }  // tangent() makes it (K,)
  Tensor forward_at(OpCtx&, const std::vector<Tensor>& in) override { return reshape(astype(in[0], DType::Float64), {}); }
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }
};

Var var_of(const Tensor& t) {
  if (t.numel() != 1) throw_error("tapegrad: internal error: a Var from a tensor of shape " + shape_str(t.shape()));
  const double value = t.item();
  if (!t.requires_grad() || !grad_enabled()) return Var::constant(value);
  const TensorImpl& p = t.impl();
  Tape& tape = !p.leaf && p.tape ? *p.tape : Tape::active();
  auto node = std::make_unique<ItemNode>();
  node->in_ = {record_of(t, tape)};
  Tensor out = empty_tensor({}, DType::Float64);
  *out.data<double>() = value;
  node->set_output(out.impl_ptr());
  const std::uint32_t rec = tape.push_node(std::move(node), value);
  mark_recorded(out.impl(), tape, rec);
  return Var(value, rec, tape.generation(), &tape);
}

}  // namespace tapegrad::detail
