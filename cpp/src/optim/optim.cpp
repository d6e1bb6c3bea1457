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

}  // namespace tapegrad::optim
