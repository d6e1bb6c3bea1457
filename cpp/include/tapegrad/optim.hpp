// tapegrad::optim: the update rules of PyTorch's optimizers, each one native loop over a
// parameter's elements (no temporaries), with torch.optim's formulas step for step, so that
// a run matches torch.optim's to rounding. The optimizer objects (parameter groups, state
// dictionaries, schedulers) are Python's `tapegrad.optim`; these are the steps they call,
// and what a C++ program calls in its own training loop.
//
// Each step changes the parameter in place (its version counter moves, so a graph that saved
// the old values refuses to sweep) and, where the rule has them, its state tensors, which
// must have the parameter's shape and dtype (make them with Tensor::zeros_like-style
// factories; SGD's momentum buffer may be null on the first step: it is then created).
#pragma once

#include <cstdint>

#include "tapegrad/tensor.hpp"

namespace tapegrad::optim {

/// torch.optim.SGD.
struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};
/// One SGD step of `param` given its gradient `grad`. `momentum_buffer` (used when momentum
/// is not 0) is created from the first step's direction when null, as torch does.
void sgd_step(const Tensor& param, const Tensor& grad, Tensor& momentum_buffer, const SGDOptions& o);

/// torch.optim.Adam, and AdamW with `decoupled_weight_decay`.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
  bool maximize = false;
  bool decoupled_weight_decay = false;  ///< AdamW: p *= 1 - lr * weight_decay
};
/// One Adam step; `step` is the step's number, counted from 1. `max_exp_avg_sq` is read and
/// written with amsgrad only (it may be null otherwise).
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, std::int64_t step, const AdamOptions& o);

/// torch.optim.RMSprop.
struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
  bool maximize = false;
};
/// One RMSprop step. `momentum_buffer` is used when momentum > 0, `grad_avg` when centered
/// (either may be null otherwise).
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& momentum_buffer,
                  const Tensor& grad_avg, const RMSpropOptions& o);

/// torch.optim.Adagrad.
struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double eps = 1e-10;
  bool maximize = false;
};
/// One Adagrad step; `step` counted from 1; `state_sum` starts at initial_accumulator_value.
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& state_sum, std::int64_t step,
                  const AdagradOptions& o);

}  // namespace tapegrad::optim
