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
#include <functional>
#include <vector>

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

/// torch.optim.Adadelta.
struct AdadeltaOptions {
  double lr = 1.0;
  double rho = 0.9;
  double eps = 1e-6;
  double weight_decay = 0.0;
  bool maximize = false;
};
/// One Adadelta step: `square_avg` and `acc_delta` start at zeros.
void adadelta_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& acc_delta,
                   const AdadeltaOptions& o);

/// torch.optim.Adamax.
struct AdamaxOptions {
  double lr = 2e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool maximize = false;
};
/// One Adamax step; `step` counted from 1; `exp_avg` and `exp_inf` start at zeros.
void adamax_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_inf,
                 std::int64_t step, const AdamaxOptions& o);

/// torch.optim.NAdam (Adam with Nesterov momentum and momentum decay).
struct NAdamOptions {
  double lr = 2e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum_decay = 4e-3;
  bool decoupled_weight_decay = false;
  bool maximize = false;
};
/// One NAdam step; `step` counted from 1. `mu_product` is the product of the momentum
/// coefficients mu_1 ... mu_step, this step's included (the caller keeps it: PyTorch keeps it
/// in the scalar dtype, float32 unless the default dtype is float64).
void nadam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                std::int64_t step, double mu_product, const NAdamOptions& o);
/// NAdam's momentum coefficient mu_t = beta1 (1 - 0.96^(t momentum_decay) / 2).
double nadam_mu(double beta1, double momentum_decay, std::int64_t t);

/// torch.optim.RAdam (Adam with the variance of its adaptive rate rectified).
struct RAdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;
  bool maximize = false;
};
/// One RAdam step; `step` counted from 1.
void radam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                std::int64_t step, const RAdamOptions& o);

/// torch.optim.LBFGS.
struct LBFGSOptions {
  double lr = 1.0;
  std::int64_t max_iter = 20;
  std::int64_t max_eval = -1;  ///< -1: max_iter * 5 / 4
  double tolerance_grad = 1e-7;
  double tolerance_change = 1e-9;
  std::int64_t history_size = 100;
  bool strong_wolfe = false;  ///< line_search_fn="strong_wolfe"
};
/// LBFGS's memory between steps (PyTorch's state): the last direction and step length, the
/// curvature pairs (y, s) and their 1 / (y . s), the initial Hessian scale, the last gradient
/// and loss, and the counts of iterations and evaluations.
struct LBFGSState {
  std::int64_t func_evals = 0;
  std::int64_t n_iter = 0;
  Tensor d, prev_flat_grad;
  std::vector<Tensor> old_dirs, old_stps;
  std::vector<double> ro;
  double t = 0.0;
  double H_diag = 1.0;
  double prev_loss = 0.0;
};
/// One LBFGS step (up to max_iter iterations): `closure` evaluates the loss at the parameters'
/// current values and leaves each one's gradient in its grad() (zero_grad, forward, backward);
/// returns the loss of its first evaluation. The parameters must share a dtype (float32 or
/// float64).
double lbfgs_step(const std::vector<Tensor>& params, const std::function<double()>& closure, LBFGSState& state,
                  const LBFGSOptions& o);

}  // namespace tapegrad::optim
