// The optimizers' update rules (optim.hpp): torch.optim's single-tensor formulas, each a
// single loop over a parameter's elements.
#include "tapegrad/optim.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "tensor/internal.hpp"

namespace tapegrad::optim {

namespace {

// The checks every step makes: a floating parameter, a gradient and state of its shape.
void check(const char* fn, const Tensor& param, const Tensor& grad) {
  if (!param.defined() || !grad.defined()) throw_error(std::string("tapegrad.optim.") + fn + ": a null tensor");
  if (!is_floating(param.dtype()))
    throw TypeError(std::string("tapegrad.optim.") + fn + ": parameters must be float32 or float64, not " +
                    dtype_name(param.dtype()));
  if (grad.shape() != param.shape())
    throw ValueError(std::string("tapegrad.optim.") + fn + ": the gradient has shape " + shape_str(grad.shape()) +
                     " but the parameter has shape " + shape_str(param.shape()));
}
void check_state(const char* fn, const char* what, const Tensor& param, const Tensor& s) {
  if (!s.defined() || s.shape() != param.shape() || s.dtype() != param.dtype())
    throw ValueError(std::string("tapegrad.optim.") + fn + ": the state '" + what + "' must be a " +
                     dtype_name(param.dtype()) + " tensor of shape " + shape_str(param.shape()));
}
// The parameter's values changed: graphs that saved them refuse to sweep, and a leaf is
// recorded afresh on its next use (as Tensor::assign does).
void changed(const Tensor& param) {
  TensorImpl& p = param.impl();
  ++p.version_counter();
  if (p.leaf) p.gen = 0;
}

// The gradient in the parameter's dtype (a copy only when they differ).
Tensor grad_like(const Tensor& param, const Tensor& grad) { return convert(grad, param.dtype()); }

}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, Tensor& momentum_buffer, const SGDOptions& o) {
  check("SGD", param, grad);
  const bool use_momentum = o.momentum != 0.0;
  const bool first = use_momentum && !momentum_buffer.defined();
  if (first) momentum_buffer = empty_tensor(param.shape(), param.dtype());
  if (use_momentum) check_state("SGD", "momentum_buffer", param, momentum_buffer);
  const Tensor g = grad_like(param, grad);
  const std::int64_t n = param.numel();
  TG_FLOAT_DISPATCH(param.dtype(), T, {
    using C = compute_t<T>;  // (the 16-bit dtypes update in float32)
    T* p = param.data<T>();
    const T* gp = g.data<T>();
    T* buf = use_momentum ? momentum_buffer.data<T>() : nullptr;
    const C lr = static_cast<C>(o.lr), wd = static_cast<C>(o.weight_decay), mom = static_cast<C>(o.momentum);
    const C keep = static_cast<C>(1.0 - o.dampening);
    for (std::int64_t i = 0; i < n; ++i) {
      C d = o.maximize ? -C(gp[i]) : C(gp[i]);
      if (o.weight_decay != 0.0) d = d + wd * p[i];
      if (use_momentum) {
        buf[i] = first ? d : C(mom * buf[i] + keep * d);
        d = o.nesterov ? d + mom * buf[i] : C(buf[i]);
      }
      p[i] = p[i] - lr * d;
    }
  });
  changed(param);
}

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, std::int64_t step, const AdamOptions& o) {
  const char* fn = o.decoupled_weight_decay ? "AdamW" : "Adam";
  check(fn, param, grad);
  check_state(fn, "exp_avg", param, exp_avg);
  check_state(fn, "exp_avg_sq", param, exp_avg_sq);
  if (o.amsgrad) check_state(fn, "max_exp_avg_sq", param, max_exp_avg_sq);
  if (step < 1) throw ValueError(std::string("tapegrad.optim.") + fn + ": step counts from 1, not " + std::to_string(step));
  const Tensor g = grad_like(param, grad);
  const std::int64_t n = param.numel();
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  TG_FLOAT_DISPATCH(param.dtype(), T, {
    using C = compute_t<T>;  // (the 16-bit dtypes update in float32)
    T* p = param.data<T>();
    const T* gp = g.data<T>();
    T* m = exp_avg.data<T>();
    T* v = exp_avg_sq.data<T>();
    T* vmax = o.amsgrad ? max_exp_avg_sq.data<T>() : nullptr;
    const C b1w = static_cast<C>(1.0 - o.beta1), b2 = static_cast<C>(o.beta2), b2w = static_cast<C>(1.0 - o.beta2);
    const C wd = static_cast<C>(o.weight_decay), eps = static_cast<C>(o.eps);
    const C decay = static_cast<C>(1.0 - o.lr * o.weight_decay);
    const C step_size = static_cast<C>(o.lr / bc1), bc2_sqrt = static_cast<C>(std::sqrt(bc2));
    for (std::int64_t i = 0; i < n; ++i) {
      C gi = o.maximize ? -C(gp[i]) : C(gp[i]);
      if (o.decoupled_weight_decay) p[i] = p[i] * decay;
      else if (o.weight_decay != 0.0) gi = gi + wd * p[i];
      m[i] = m[i] + b1w * (gi - m[i]);  // torch's lerp_(grad, 1 - beta1)
      v[i] = v[i] * b2 + b2w * gi * gi;
      C second = v[i];
      if (vmax) {
        vmax[i] = std::max(vmax[i], v[i]);
        second = vmax[i];
      }
      const C denom = std::sqrt(second) / bc2_sqrt + eps;
      p[i] = p[i] - step_size * (m[i] / denom);
    }
  });
  changed(param);
}

void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& momentum_buffer,
                  const Tensor& grad_avg, const RMSpropOptions& o) {
  check("RMSprop", param, grad);
  check_state("RMSprop", "square_avg", param, square_avg);
  const bool use_momentum = o.momentum > 0.0;
  if (use_momentum) check_state("RMSprop", "momentum_buffer", param, momentum_buffer);
  if (o.centered) check_state("RMSprop", "grad_avg", param, grad_avg);
  const Tensor g = grad_like(param, grad);
  const std::int64_t n = param.numel();
  TG_FLOAT_DISPATCH(param.dtype(), T, {
    using C = compute_t<T>;  // (the 16-bit dtypes update in float32)
    T* p = param.data<T>();
    const T* gp = g.data<T>();
    T* sq = square_avg.data<T>();
    T* buf = use_momentum ? momentum_buffer.data<T>() : nullptr;
    T* ga = o.centered ? grad_avg.data<T>() : nullptr;
    const C alpha = static_cast<C>(o.alpha), aw = static_cast<C>(1.0 - o.alpha), wd = static_cast<C>(o.weight_decay);
    const C eps = static_cast<C>(o.eps), lr = static_cast<C>(o.lr), mom = static_cast<C>(o.momentum);
    for (std::int64_t i = 0; i < n; ++i) {
      C gi = o.maximize ? -C(gp[i]) : C(gp[i]);
      if (o.weight_decay != 0.0) gi = gi + wd * p[i];
      sq[i] = sq[i] * alpha + aw * gi * gi;
      C avg;
      if (ga) {
        ga[i] = ga[i] + aw * (gi - ga[i]);  // lerp_(grad, 1 - alpha)
        avg = std::sqrt(sq[i] - ga[i] * ga[i]) + eps;
      } else {
        avg = std::sqrt(sq[i]) + eps;
      }
      if (buf) {
        buf[i] = buf[i] * mom + gi / avg;
        p[i] = p[i] - lr * buf[i];
      } else {
        p[i] = p[i] - lr * (gi / avg);
      }
    }
  });
  changed(param);
}

void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& state_sum, std::int64_t step,
                  const AdagradOptions& o) {
  check("Adagrad", param, grad);
  check_state("Adagrad", "sum", param, state_sum);
  if (step < 1) throw ValueError("tapegrad.optim.Adagrad: step counts from 1, not " + std::to_string(step));
  const Tensor g = grad_like(param, grad);
  const std::int64_t n = param.numel();
  const double clr = o.lr / (1.0 + static_cast<double>(step - 1) * o.lr_decay);
  TG_FLOAT_DISPATCH(param.dtype(), T, {
    using C = compute_t<T>;  // (the 16-bit dtypes update in float32)
    T* p = param.data<T>();
    const T* gp = g.data<T>();
    T* s = state_sum.data<T>();
    const C wd = static_cast<C>(o.weight_decay), eps = static_cast<C>(o.eps), c = static_cast<C>(clr);
    for (std::int64_t i = 0; i < n; ++i) {
      C gi = o.maximize ? -C(gp[i]) : C(gp[i]);
      if (o.weight_decay != 0.0) gi = gi + wd * p[i];
      s[i] = s[i] + gi * gi;
      p[i] = p[i] - c * (gi / (std::sqrt(s[i]) + eps));
    }
  });
  changed(param);
}

void adadelta_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& acc_delta,
                   const AdadeltaOptions& o) {
  check("Adadelta", param, grad);
  check_state("Adadelta", "square_avg", param, square_avg);
  check_state("Adadelta", "acc_delta", param, acc_delta);
  const Tensor g = grad_like(param, grad);
  const std::int64_t n = param.numel();
  TG_FLOAT_DISPATCH(param.dtype(), T, {
    using C = compute_t<T>;  // (the 16-bit dtypes update in float32)
    T* p = param.data<T>();
    const T* gp = g.data<T>();
    T* sq = square_avg.data<T>();
    T* acc = acc_delta.data<T>();
    const C rho = static_cast<C>(o.rho), rw = static_cast<C>(1.0 - o.rho), wd = static_cast<C>(o.weight_decay);
    const C eps = static_cast<C>(o.eps), lr = static_cast<C>(o.lr);
    for (std::int64_t i = 0; i < n; ++i) {
      C gi = o.maximize ? -C(gp[i]) : C(gp[i]);
      if (o.weight_decay != 0.0) gi = gi + wd * p[i];
      sq[i] = sq[i] * rho + rw * gi * gi;
      const C delta = std::sqrt(C(acc[i]) + eps) / std::sqrt(C(sq[i]) + eps) * gi;
      acc[i] = acc[i] * rho + rw * delta * delta;
      p[i] = p[i] - lr * delta;
    }
  });
  changed(param);
}

void adamax_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_inf,
                 std::int64_t step, const AdamaxOptions& o) {
  check("Adamax", param, grad);
  check_state("Adamax", "exp_avg", param, exp_avg);
  check_state("Adamax", "exp_inf", param, exp_inf);
  if (step < 1) throw ValueError("tapegrad.optim.Adamax: step counts from 1, not " + std::to_string(step));
  const Tensor g = grad_like(param, grad);
  const std::int64_t n = param.numel();
  const double clr = o.lr / (1.0 - std::pow(o.beta1, static_cast<double>(step)));
  TG_FLOAT_DISPATCH(param.dtype(), T, {
    using C = compute_t<T>;  // (the 16-bit dtypes update in float32)
    T* p = param.data<T>();
    const T* gp = g.data<T>();
    T* m = exp_avg.data<T>();
    T* u = exp_inf.data<T>();
    const C b1w = static_cast<C>(1.0 - o.beta1), b2 = static_cast<C>(o.beta2), wd = static_cast<C>(o.weight_decay);
    const C eps = static_cast<C>(o.eps), c = static_cast<C>(clr);
    for (std::int64_t i = 0; i < n; ++i) {
      C gi = o.maximize ? -C(gp[i]) : C(gp[i]);
      if (o.weight_decay != 0.0) gi = gi + wd * p[i];
      m[i] = m[i] + b1w * (gi - m[i]);  // lerp_(grad, 1 - beta1)
      const C decayed = u[i] * b2, bound = std::fabs(gi) + eps;
      u[i] = (std::isnan(decayed) || decayed > bound) ? decayed : bound;  // torch.maximum (NaN wins)
      p[i] = p[i] - c * (m[i] / C(u[i]));
    }
  });
  changed(param);
}

double nadam_mu(double beta1, double momentum_decay, std::int64_t t) {
  return beta1 * (1.0 - 0.5 * std::pow(0.96, static_cast<double>(t) * momentum_decay));
}

void nadam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                std::int64_t step, double mu_product, const NAdamOptions& o) {
  check("NAdam", param, grad);
  check_state("NAdam", "exp_avg", param, exp_avg);
  check_state("NAdam", "exp_avg_sq", param, exp_avg_sq);
  if (step < 1) throw ValueError("tapegrad.optim.NAdam: step counts from 1, not " + std::to_string(step));
  const Tensor g = grad_like(param, grad);
  const std::int64_t n = param.numel();
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  const double mu = nadam_mu(o.beta1, o.momentum_decay, step), mu_next = nadam_mu(o.beta1, o.momentum_decay, step + 1);
  const double w_grad = -o.lr * (1.0 - mu) / (1.0 - mu_product);
  const double w_avg = (-o.lr * mu_next) / (1.0 - mu_product * mu_next);
  TG_FLOAT_DISPATCH(param.dtype(), T, {
    using C = compute_t<T>;  // (the 16-bit dtypes update in float32)
    T* p = param.data<T>();
    const T* gp = g.data<T>();
    T* m = exp_avg.data<T>();
    T* v = exp_avg_sq.data<T>();
    const C b1w = static_cast<C>(1.0 - o.beta1), b2 = static_cast<C>(o.beta2), b2w = static_cast<C>(1.0 - o.beta2);
    const C wd = static_cast<C>(o.weight_decay), eps = static_cast<C>(o.eps), c2 = static_cast<C>(bc2);
    const C decay = static_cast<C>(1.0 - o.lr * o.weight_decay), wg = static_cast<C>(w_grad), wa = static_cast<C>(w_avg);
    for (std::int64_t i = 0; i < n; ++i) {
      C gi = o.maximize ? -C(gp[i]) : C(gp[i]);
      if (o.decoupled_weight_decay) p[i] = p[i] * decay;
      else if (o.weight_decay != 0.0) gi = gi + wd * p[i];
      m[i] = m[i] + b1w * (gi - m[i]);  // lerp_(grad, 1 - beta1)
      v[i] = v[i] * b2 + b2w * gi * gi;
      const C denom = std::sqrt(C(v[i]) / c2) + eps;
      const C q = p[i] + wg * (gi / denom);  // (two addcdiv_, each rounded)
      p[i] = q + wa * (C(m[i]) / denom);
    }
  });
  changed(param);
}

void radam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                std::int64_t step, const RAdamOptions& o) {
  check("RAdam", param, grad);
  check_state("RAdam", "exp_avg", param, exp_avg);
  check_state("RAdam", "exp_avg_sq", param, exp_avg_sq);
  if (step < 1) throw ValueError("tapegrad.optim.RAdam: step counts from 1, not " + std::to_string(step));
  const Tensor g = grad_like(param, grad);
  const std::int64_t n = param.numel();
  const double t = static_cast<double>(step);
  const double bc1 = 1.0 - std::pow(o.beta1, t), bc2 = 1.0 - std::pow(o.beta2, t);
  const double rho_inf = 2.0 / (1.0 - o.beta2) - 1.0;
  const double rho_t = rho_inf - 2.0 * t * std::pow(o.beta2, t) / bc2;
  // the variance of the adaptive rate is tractable past rho_t = 5: rectified Adam, else SGD with momentum
  const bool adaptive = rho_t > 5.0;
  const double rect = adaptive ? std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) : 0.0;
  TG_FLOAT_DISPATCH(param.dtype(), T, {
    using C = compute_t<T>;  // (the 16-bit dtypes update in float32)
    T* p = param.data<T>();
    const T* gp = g.data<T>();
    T* m = exp_avg.data<T>();
    T* v = exp_avg_sq.data<T>();
    const C b1w = static_cast<C>(1.0 - o.beta1), b2 = static_cast<C>(o.beta2), b2w = static_cast<C>(1.0 - o.beta2);
    const C wd = static_cast<C>(o.weight_decay), eps = static_cast<C>(o.eps), c1 = static_cast<C>(bc1);
    const C decay = static_cast<C>(1.0 - o.lr * o.weight_decay), lr = static_cast<C>(o.lr);
    const C sqrt_bc2 = static_cast<C>(std::sqrt(bc2)), r = static_cast<C>(rect);
    for (std::int64_t i = 0; i < n; ++i) {
      C gi = o.maximize ? -C(gp[i]) : C(gp[i]);
      if (o.decoupled_weight_decay) p[i] = p[i] * decay;
      else if (o.weight_decay != 0.0) gi = gi + wd * p[i];
      m[i] = m[i] + b1w * (gi - m[i]);  // lerp_(grad, 1 - beta1)
      v[i] = v[i] * b2 + b2w * gi * gi;
      C update = C(m[i]) / c1 * lr;  // (PyTorch's order: bias-corrected average, times lr, ...)
      if (adaptive) update = update * (sqrt_bc2 / (std::sqrt(C(v[i])) + eps)) * r;
      p[i] = p[i] - update;
    }
  });
  changed(param);
}

}  // namespace tapegrad::optim
