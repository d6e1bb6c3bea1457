// A user's own differentiable ops and checkpointed segments: records whose rules are code
// outside the op table. Each is a tape record like any other (a Node), so every sweep (plain,
// recorded, tangent) meets it through the same questions and never knows what it is.
//
// - CustomRule + record_custom(): the general form (a rule object for outputs computed by
//   the caller); autograd::Function<F> wraps it in PyTorch's shape (F::forward/backward).
// - checkpoint(): a segment whose intermediate values are not kept, recomputed by the reverse
//   sweep that reaches it (tensors, and scalar Var code such as a solver's time steps).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"
#include "tapegrad/var.hpp"

namespace tapegrad {

/// The rules of a user's op: what a record of it answers to the sweeps.
class CustomRule {
 public:
  virtual ~CustomRule() = default;
  /// Its name in a walk of the graph and in errors ("MyExpBackward").
  virtual std::string name() const { return "CustomFunctionBackward"; }
  /// The gradients of the inputs from those of the outputs: grad_outputs[j] has output j's
  /// shape (zeros for an output the sweep did not reach); returns one tensor per input, a null
  /// Tensor for "no gradient". In a create_graph sweep it runs with grad mode on: written with
  /// tensor ops, what it returns is recorded, differentiable again.
  virtual std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) = 0;
  /// Whether backward() gets zeros (true) or null Tensors (false) for outputs the sweep did
  /// not reach (PyTorch's ctx.set_materialize_grads).
  virtual bool materialize_grads() const { return true; }
  /// Whether jvp() is defined (forward mode through the op).
  virtual bool has_jvp() const { return false; }
  /// Forward mode: the outputs' tangents (one per output, null for zero) from the inputs'
  /// (one per input, each of its input's shape; zeros where it has none).
  virtual std::vector<Tensor> jvp(const std::vector<Tensor>& tangents);
};

/// Records `rule` as the op that made `outputs` from `inputs`, when grad mode is on and an
/// input requires grad; otherwise returns the outputs untouched. Returns the outputs as the
/// op's results: the same data, in new handles (so an output that is also an input, or was
/// already recorded, becomes a result of its own). Outputs with `differentiable[j]` false
/// (PyTorch's mark_non_differentiable) are not recorded and do not require grad. The
/// backward refuses to run if a tensor of `saved` was changed in place since (its version).
std::vector<Tensor> record_custom(std::shared_ptr<CustomRule> rule, const std::vector<Tensor>& inputs,
                                  const std::vector<Tensor>& outputs, const std::vector<bool>& differentiable = {},
                                  const std::vector<Tensor>& saved = {});

namespace autograd {

/// What a Function's forward shares with its backward (PyTorch's ctx).
class Context {
 public:
  /// Tensors the backward reads: it refuses to run if one is changed in place meanwhile.
  void save_for_backward(std::vector<Tensor> tensors) { saved_ = std::move(tensors); }
  const std::vector<Tensor>& saved_tensors() const noexcept { return saved_; }
  /// Per input: whether a gradient is wanted for it (it requires grad, grad mode is on).
  const std::vector<bool>& needs_input_grad() const noexcept { return needs_; }
  /// Outputs that are not differentiable (indices, masks): not recorded.
  void mark_non_differentiable(const std::vector<Tensor>& outputs) {
    for (const Tensor& t : outputs) non_diff_.push_back(t);
  }
  /// Other values the backward needs (libtorch's ctx->saved_data).
  std::unordered_map<std::string, double> saved_data;

  // (for apply)
  std::vector<bool> needs_;
  std::vector<Tensor> saved_;
  std::vector<Tensor> non_diff_;
};

/// PyTorch's torch.autograd.Function in C++ (libtorch's shape):
///
///     struct MyExp : tapegrad::autograd::Function<MyExp> {
///       static std::vector<Tensor> forward(Context& ctx, const std::vector<Tensor>& x) {
///         Tensor y = exp(x[0]);
///         ctx.save_for_backward({y});
///         return {y};
///       }
///       static std::vector<Tensor> backward(Context& ctx, const std::vector<Tensor>& g) {
///         return {g[0] * ctx.saved_tensors()[0]};
///       }
///     };
///     Tensor y = MyExp::apply({x})[0];
///
/// forward runs with grad mode off; backward gets one gradient per output and returns one
/// per input (a null Tensor for none). An optional
/// `static std::vector<Tensor> jvp(Context&, const std::vector<Tensor>& tangents)` serves
/// forward mode; without it, forward mode through the op raises.
template <class F>
struct Function {
  static std::vector<Tensor> apply(const std::vector<Tensor>& inputs);
};

namespace detail {
template <class F, class = void>
struct HasJvp : std::false_type {};
template <class F>
struct HasJvp<F, std::void_t<decltype(F::jvp(std::declval<Context&>(), std::declval<const std::vector<Tensor>&>()))>>
    : std::true_type {};
std::string demangled_name(const char* mangled);

template <class F>
class FunctionRule final : public CustomRule {
 public:
  std::shared_ptr<Context> ctx = std::make_shared<Context>();
  std::string name() const override { return demangled_name(typeid(F).name()) + "Backward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return F::backward(*ctx, g); }
  bool has_jvp() const override { return HasJvp<F>::value; }
  std::vector<Tensor> jvp(const std::vector<Tensor>& t) override {
    if constexpr (HasJvp<F>::value) return F::jvp(*ctx, t);
    else return CustomRule::jvp(t);
  }
};
}  // namespace detail

template <class F>
std::vector<Tensor> Function<F>::apply(const std::vector<Tensor>& inputs) {
  auto rule = std::make_shared<detail::FunctionRule<F>>();
  Context& ctx = *rule->ctx;
  const bool on = grad_enabled();
  for (const Tensor& x : inputs) ctx.needs_.push_back(on && x.requires_grad());
  std::vector<Tensor> outputs;
  {
    NoGrad ng;
    outputs = F::forward(ctx, inputs);
  }
  std::vector<bool> differentiable(outputs.size(), true);
  for (std::size_t j = 0; j < outputs.size(); ++j)
    for (const Tensor& t : ctx.non_diff_)
      if (t.same(outputs[j])) differentiable[j] = false;
  ctx.non_diff_.clear();
  return record_custom(rule, inputs, outputs, differentiable, ctx.saved_);
}

}  // namespace autograd

/// A segment function: its outputs from its inputs.
using TensorSegment = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
using VarSegment = std::function<std::vector<Var>(const std::vector<Var>&)>;

/// Where checkpoint() runs a segment apart from the graph: a fresh tape for each run (by
/// default a plain Tape; an embedder whose ops need their own kind of tape supplies it).
struct CheckpointOptions {
  std::function<std::shared_ptr<Tape>()> new_tape;
};

/// Runs fn(inputs) without keeping its intermediate values (PyTorch's
/// torch.utils.checkpoint, JAX's jax.checkpoint): the forward runs on a tape of its own that
/// is dropped afterwards, and the graph gets one record for the whole segment, holding only
/// its inputs and outputs. A reverse sweep that reaches the record runs fn again and sweeps
/// it: a plain sweep on a tape of its own (dropped after: the memory of one segment at a
/// time), a create_graph sweep on the graph's tape (so the gradients are differentiable
/// again). Leaves fn uses that require grad (a layer's weights) get their gradients too.
/// fn must be a function of its inputs: the same values in give the same values out, and a
/// tensor that requires grad and is computed outside it must come in as an input.
std::vector<Tensor> checkpoint(const TensorSegment& fn, const std::vector<Tensor>& inputs,
                               const CheckpointOptions& options = {});
/// The same for scalar code: fn on Vars (a loop of time steps). Values fn reads that need
/// gradients must come in as inputs.
std::vector<Var> checkpoint(const VarSegment& fn, const std::vector<Var>& inputs,
                            const CheckpointOptions& options = {});

}  // namespace tapegrad
