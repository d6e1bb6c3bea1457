// The optimizers' update rules (optim.hpp): torch.optim's single-tensor formulas, each a
// single loop over a parameter's elements.
#include "tapegrad/optim.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>

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

// --- LBFGS: limited-memory BFGS over the parameters flattened into one vector, with PyTorch's
// two-loop recursion, its stopping rules and its strong-Wolfe line search (_strong_wolfe and
// _cubic_interpolate, after minFunc), step for step. The vectors are kept in the parameters'
// dtype, as PyTorch keeps them; the line search's scalars in double.

namespace {

template <class T>
class Flat {
 public:
  Flat(const std::vector<Tensor>& params, DType dt) : params_(params), dt_(dt) {
    for (const Tensor& p : params) n_ += p.numel();
  }
  std::int64_t size() const { return n_; }
  Tensor zeros() const { return Tensor::zeros({n_}, dt_); }
  /// The parameters' gradients, one after another (zeros for a parameter without one).
  Tensor gather_grad() const {
    Tensor f = Tensor::zeros({n_}, dt_);
    T* fp = f.data<T>();
    std::int64_t off = 0;
    for (const Tensor& p : params_) {
      const Tensor g0 = p.grad();
      if (g0.defined()) {
        if (g0.shape() != p.shape())
          throw ValueError("tapegrad.optim.LBFGS: a gradient of shape " + shape_str(g0.shape()) +
                           " for a parameter of shape " + shape_str(p.shape()));
        const Tensor g = convert(g0, dt_);
        std::copy(g.data<T>(), g.data<T>() + g.numel(), fp + off);
      }
      off += p.numel();
    }
    return f;
  }
  /// p += t d, parameter by parameter (PyTorch's p.add_(d, alpha=t)).
  void add(double t, const Tensor& d) const {
    const T tt = static_cast<T>(t);
    const T* dp = d.data<T>();
    std::int64_t off = 0;
    for (const Tensor& p : params_) {
      T* pp = p.data<T>();
      for (std::int64_t i = 0; i < p.numel(); ++i) pp[i] = pp[i] + tt * dp[off + i];
      off += p.numel();
      changed(p);
    }
  }
  std::vector<Tensor> clone() const {
    std::vector<Tensor> r;
    for (const Tensor& p : params_) r.push_back(Tensor::from_values(p.to_vector(), p.shape(), p.dtype()));
    return r;
  }
  void set(const std::vector<Tensor>& x) const {
    for (std::size_t k = 0; k < params_.size(); ++k) {
      std::copy(x[k].data<T>(), x[k].data<T>() + x[k].numel(), params_[k].data<T>());
      changed(params_[k]);
    }
  }

 private:
  const std::vector<Tensor>& params_;
  DType dt_;
  std::int64_t n_ = 0;
};

template <class T>
T dot(const Tensor& a, const Tensor& b) {
  const T* x = a.data<T>();
  const T* y = b.data<T>();
  T s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += x[i] * y[i];
  return s;
}
template <class T>
T abs_max(const Tensor& a) {
  const T* x = a.data<T>();
  T m = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}
template <class T>
T abs_sum(const Tensor& a) {
  const T* x = a.data<T>();
  T s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += std::fabs(x[i]);
  return s;
}
/// a * c (a new vector), and y += c x.
template <class T>
Tensor scaled(const Tensor& a, T c) {
  Tensor r = Tensor::empty(a.shape(), a.dtype());
  const T* x = a.data<T>();
  T* y = r.data<T>();
  for (std::int64_t i = 0; i < a.numel(); ++i) y[i] = x[i] * c;
  return r;
}
template <class T>
void axpy(Tensor& y, T c, const Tensor& x) {
  T* yp = y.data<T>();
  const T* xp = x.data<T>();
  for (std::int64_t i = 0; i < y.numel(); ++i) yp[i] = yp[i] + c * xp[i];
}
template <class T>
Tensor copy_of(const Tensor& a) {
  Tensor r = Tensor::empty(a.shape(), a.dtype());
  std::copy(a.data<T>(), a.data<T>() + a.numel(), r.data<T>());
  return r;
}

/// The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to the bounds
/// (by default [min(x1, x2), max(x1, x2)]); their middle where the cubic has no minimum.
double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2, const double* bounds) {
  double lo = x1 <= x2 ? x1 : x2, hi = x1 <= x2 ? x2 : x1;
  if (bounds) {
    lo = bounds[0];
    hi = bounds[1];
  }
  const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  const double d2_square = d1 * d1 - g1 * g2;
  if (d2_square >= 0) {
    const double d2 = std::sqrt(d2_square);
    const double min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                                    : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
    return std::min(std::max(min_pos, lo), hi);
  }
  return (lo + hi) / 2.0;
}

struct Found {
  double f;
  Tensor g;
  double t;
  std::int64_t evals;
};

/// PyTorch's _strong_wolfe: a step t along d from x satisfying the strong Wolfe conditions
/// (sufficient decrease c1, curvature c2), bracketed then zoomed, at most max_ls evaluations.
template <class T, class Eval>
Found strong_wolfe(const Eval& eval, double t, const Tensor& d, double f, const Tensor& g0, double gtd,
                   double tolerance_change, double c1 = 1e-4, double c2 = 0.9, std::int64_t max_ls = 25) {
  const double d_norm = static_cast<double>(abs_max<T>(d));
  Tensor g = copy_of<T>(g0);
  double f_new;
  Tensor g_new;
  std::tie(f_new, g_new) = eval(t);
  std::int64_t evals = 1;
  double gtd_new = static_cast<double>(dot<T>(g_new, d));
  double t_prev = 0, f_prev = f, gtd_prev = gtd;
  Tensor g_prev = g;
  bool done = false;
  std::int64_t ls_iter = 0;
  std::vector<double> bracket, bf, bgtd;
  std::vector<Tensor> bg;
  while (ls_iter < max_ls) {
    if (f_new > (f + c1 * t * gtd) || (ls_iter > 1 && f_new >= f_prev)) {
      bracket = {t_prev, t}, bf = {f_prev, f_new}, bg = {g_prev, copy_of<T>(g_new)}, bgtd = {gtd_prev, gtd_new};
      break;
    }
    if (std::fabs(gtd_new) <= -c2 * gtd) {
      bracket = {t}, bf = {f_new}, bg = {g_new};
      done = true;
      break;
    }
    if (gtd_new >= 0) {
      bracket = {t_prev, t}, bf = {f_prev, f_new}, bg = {g_prev, copy_of<T>(g_new)}, bgtd = {gtd_prev, gtd_new};
      break;
    }
    const double bounds[2] = {t + 0.01 * (t - t_prev), t * 10};
    const double tmp = t;
    t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds);
    t_prev = tmp;
    f_prev = f_new;
    g_prev = copy_of<T>(g_new);
    gtd_prev = gtd_new;
    std::tie(f_new, g_new) = eval(t);
    ++evals;
    gtd_new = static_cast<double>(dot<T>(g_new, d));
    ++ls_iter;
  }
  if (ls_iter == max_ls) bracket = {0, t}, bf = {f, f_new}, bg = {g, g_new};
  bool insuf_progress = false;
  std::size_t low = bf[0] <= bf.back() ? 0 : 1, high = 1 - low;
  while (!done && ls_iter < max_ls) {  // zoom
    if (std::fabs(bracket[1] - bracket[0]) * d_norm < tolerance_change) break;
    t = cubic_interpolate(bracket[0], bf[0], bgtd[0], bracket[1], bf[1], bgtd[1], nullptr);
    const double bmax = std::max(bracket[0], bracket[1]), bmin = std::min(bracket[0], bracket[1]);
    const double eps = 0.1 * (bmax - bmin);
    if (std::min(bmax - t, t - bmin) < eps) {
      if (insuf_progress || t >= bmax || t <= bmin) {
        t = std::fabs(t - bmax) < std::fabs(t - bmin) ? bmax - eps : bmin + eps;
        insuf_progress = false;
      } else {
        insuf_progress = true;
      }
    } else {
      insuf_progress = false;
    }
    std::tie(f_new, g_new) = eval(t);
    ++evals;
    gtd_new = static_cast<double>(dot<T>(g_new, d));
    ++ls_iter;
    if (f_new > (f + c1 * t * gtd) || f_new >= bf[low]) {
      bracket[high] = t, bf[high] = f_new, bg[high] = copy_of<T>(g_new), bgtd[high] = gtd_new;
      low = bf[0] <= bf[1] ? 0 : 1;
      high = 1 - low;
    } else {
      if (std::fabs(gtd_new) <= -c2 * gtd) {
        done = true;
      } else if (gtd_new * (bracket[high] - bracket[low]) >= 0) {
        bracket[high] = bracket[low], bf[high] = bf[low], bg[high] = bg[low], bgtd[high] = bgtd[low];
      }
      bracket[low] = t, bf[low] = f_new, bg[low] = copy_of<T>(g_new), bgtd[low] = gtd_new;
    }
  }
  return {bf[low], bg[low], bracket[low], evals};
}

template <class T>
double lbfgs(const std::vector<Tensor>& params, const std::function<double()>& closure, LBFGSState& s,
             const LBFGSOptions& o, DType dt) {
  const Flat<T> flat(params, dt);
  const std::int64_t max_eval = o.max_eval < 0 ? o.max_iter * 5 / 4 : o.max_eval;
  const double orig_loss = closure();
  double loss = orig_loss;
  std::int64_t current_evals = 1;
  ++s.func_evals;
  Tensor flat_grad = flat.gather_grad();
  if (static_cast<double>(abs_max<T>(flat_grad)) <= o.tolerance_grad) return orig_loss;
  for (std::int64_t n_iter = 1; n_iter <= o.max_iter; ++n_iter) {
    ++s.n_iter;
    if (s.n_iter == 1) {
      s.d = scaled<T>(flat_grad, T(-1));
      s.old_dirs.clear();
      s.old_stps.clear();
      s.ro.clear();
      s.H_diag = 1;
    } else {
      // the curvature pair of the last step, kept if it is positive enough
      Tensor y = copy_of<T>(flat_grad);
      axpy<T>(y, T(-1), s.prev_flat_grad);
      const Tensor st = scaled<T>(s.d, static_cast<T>(s.t));
      const T ys = dot<T>(y, st);
      if (ys > T(1e-10)) {
        if (static_cast<std::int64_t>(s.old_dirs.size()) == o.history_size) {
          s.old_dirs.erase(s.old_dirs.begin());
          s.old_stps.erase(s.old_stps.begin());
          s.ro.erase(s.ro.begin());
        }
        s.old_dirs.push_back(y);
        s.old_stps.push_back(st);
        s.ro.push_back(static_cast<double>(T(1) / ys));
        s.H_diag = static_cast<double>(ys / dot<T>(y, y));
      }
      // the two-loop recursion: d = -H g with H the history's inverse-Hessian estimate
      const std::size_t num_old = s.old_dirs.size();
      std::vector<T> al(num_old);
      Tensor q = scaled<T>(flat_grad, T(-1));
      for (std::size_t i = num_old; i-- > 0;) {
        al[i] = dot<T>(s.old_stps[i], q) * static_cast<T>(s.ro[i]);
        axpy<T>(q, -al[i], s.old_dirs[i]);
      }
      Tensor r = scaled<T>(q, static_cast<T>(s.H_diag));
      for (std::size_t i = 0; i < num_old; ++i) {
        const T be_i = dot<T>(s.old_dirs[i], r) * static_cast<T>(s.ro[i]);
        axpy<T>(r, al[i] - be_i, s.old_stps[i]);
      }
      s.d = r;
    }
    s.prev_flat_grad = copy_of<T>(flat_grad);
    s.prev_loss = loss;
    // the step length: 1 / |g|_1 at the very first iteration (at most 1), then lr
    if (s.n_iter == 1) {
      const T inv = T(1) / abs_sum<T>(flat_grad);
      s.t = inv < T(1) ? static_cast<double>(inv * static_cast<T>(o.lr)) : o.lr;
    } else {
      s.t = o.lr;
    }
    const double gtd = static_cast<double>(dot<T>(flat_grad, s.d));
    if (gtd > -o.tolerance_change) break;  // not a descent direction
    std::int64_t ls_evals = 0;
    bool opt_cond = false;
    if (o.strong_wolfe) {
      const std::vector<Tensor> x = flat.clone();
      auto eval = [&](double t) {
        flat.add(t, s.d);
        const double f = closure();
        Tensor g = flat.gather_grad();
        flat.set(x);
        return std::pair<double, Tensor>(f, g);
      };
      // (PyTorch passes the line search its own tolerance_change, 1e-9, not the optimizer's)
      Found r = strong_wolfe<T>(eval, s.t, s.d, loss, flat_grad, gtd, 1e-9);
      loss = r.f;
      flat_grad = r.g;
      s.t = r.t;
      ls_evals = r.evals;
      flat.add(s.t, s.d);
      opt_cond = static_cast<double>(abs_max<T>(flat_grad)) <= o.tolerance_grad;
    } else {
      flat.add(s.t, s.d);
      if (n_iter != o.max_iter) {  // (no evaluation after the last iteration's step)
        loss = closure();
        flat_grad = flat.gather_grad();
        opt_cond = static_cast<double>(abs_max<T>(flat_grad)) <= o.tolerance_grad;
        ls_evals = 1;
      }
    }
    current_evals += ls_evals;
    s.func_evals += ls_evals;
    if (n_iter == o.max_iter || current_evals >= max_eval || opt_cond) break;
    if (static_cast<double>(abs_max<T>(scaled<T>(s.d, static_cast<T>(s.t)))) <= o.tolerance_change)
      break;  // the step changed nothing
    if (std::fabs(loss - s.prev_loss) < o.tolerance_change) break;
  }
  return orig_loss;
}

}  // namespace

double lbfgs_step(const std::vector<Tensor>& params, const std::function<double()>& closure, LBFGSState& state,
                  const LBFGSOptions& o) {
  if (params.empty()) throw ValueError("tapegrad.optim.LBFGS: no parameters");
  if (!closure) throw ValueError("tapegrad.optim.LBFGS: step needs a closure that re-evaluates the loss");
  if (o.history_size < 1) throw ValueError("tapegrad.optim.LBFGS: history_size must be at least 1");
  const DType dt = params[0].dtype();
  for (const Tensor& p : params) {
    if (!p.defined()) throw_error("tapegrad.optim.LBFGS: a null tensor");
    if (p.dtype() != dt || (dt != DType::Float32 && dt != DType::Float64))
      throw TypeError(std::string("tapegrad.optim.LBFGS: the parameters must all be float32 or all float64, not ") +
                      dtype_name(dt) + " and " + dtype_name(p.dtype()));
  }
  if (dt == DType::Float32) return lbfgs<float>(params, closure, state, o, dt);
  return lbfgs<double>(params, closure, state, o, dt);
}

}  // namespace tapegrad::optim
