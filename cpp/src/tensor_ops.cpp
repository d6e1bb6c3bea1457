// Tensor ops: the op table elementwise (with broadcasting), comparisons, where, clip, astype,
// and the reductions. Elementwise rules are the table's (ops.def), evaluated per element.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor_internal.hpp"

namespace tapegrad {

using detail::broadcast_strides;
using detail::contiguous_strides;
using detail::convert;
using detail::empty_tensor;
using detail::for_each_row;
using detail::Recorder;
using detail::throw_error;
using detail::tangent_as_rank;
using detail::tangent_axes;
using detail::TNode;

namespace {

// z[i] = f(x[i], y[i]) over the broadcast shape of z (x, y, z of one dtype T; z contiguous).
template <class T, class R, class F>
void map2(const Tensor& x, const Tensor& y, const Tensor& z, F f) {
  const T* xp = static_cast<const T*>(x.raw_data());
  const T* yp = static_cast<const T*>(y.raw_data());
  R* zp = static_cast<R*>(z.raw_data());
  if (x.shape() == z.shape() && y.shape() == z.shape()) {
    const std::int64_t n = z.numel();
    for (std::int64_t i = 0; i < n; ++i) zp[i] = f(xp[i], yp[i]);
    return;
  }
  for_each_row<3>(z.shape(),
                  {broadcast_strides(x.shape(), z.shape()), broadcast_strides(y.shape(), z.shape()),
                   contiguous_strides(z.shape())},
                  [&](const std::array<std::int64_t, 3>& b, std::int64_t len, const std::array<std::int64_t, 3>& in) {
                    const T* a = xp + b[0];
                    const T* c = yp + b[1];
                    R* o = zp + b[2];
                    if (in[0] == 1 && in[1] == 1) {
                      for (std::int64_t i = 0; i < len; ++i) o[i] = f(a[i], c[i]);
                    } else if (in[0] == 0 && in[1] == 1) {
                      const T av = *a;
                      for (std::int64_t i = 0; i < len; ++i) o[i] = f(av, c[i]);
                    } else if (in[0] == 1 && in[1] == 0) {
                      const T cv = *c;
                      for (std::int64_t i = 0; i < len; ++i) o[i] = f(a[i], cv);
                    } else {
                      for (std::int64_t i = 0; i < len; ++i) o[i * in[2]] = f(a[i * in[0]], c[i * in[1]]);
                    }
                  });
}

// out[i] = f(x[i], y[i], z[i], g[i]) over z's shape, x and y broadcast; z, g, out contiguous.
template <class T, class F>
Tensor map4(const Tensor& x, const Tensor& y, const Tensor& z, const Tensor& g, F f) {
  Tensor out = empty_tensor(z.shape(), z.dtype());
  const T* xp = static_cast<const T*>(x.raw_data());
  const T* yp = static_cast<const T*>(y.raw_data());
  const T* zp = static_cast<const T*>(z.raw_data());
  const T* gp = static_cast<const T*>(g.raw_data());
  T* op = static_cast<T*>(out.raw_data());
  if (x.shape() == z.shape() && y.shape() == z.shape()) {
    const std::int64_t n = z.numel();
    for (std::int64_t i = 0; i < n; ++i) op[i] = f(xp[i], yp[i], zp[i], gp[i]);
    return out;
  }
  const auto cs = contiguous_strides(z.shape());
  for_each_row<3>(z.shape(), {broadcast_strides(x.shape(), z.shape()), broadcast_strides(y.shape(), z.shape()), cs},
                  [&](const std::array<std::int64_t, 3>& b, std::int64_t len, const std::array<std::int64_t, 3>& in) {
                    const T* xr = xp + b[0];
                    const T* yr = yp + b[1];
                    const T* zr = zp + b[2];
                    const T* gr = gp + b[2];
                    T* o = op + b[2];
                    // in[2] == 1: z, g and out are contiguous, so rows run along their last axis.
                    if (in[0] == 1 && in[1] == 1) {
                      for (std::int64_t i = 0; i < len; ++i) o[i] = f(xr[i], yr[i], zr[i], gr[i]);
                    } else if (in[0] == 1 && in[1] == 0) {
                      const T yv = *yr;
                      for (std::int64_t i = 0; i < len; ++i) o[i] = f(xr[i], yv, zr[i], gr[i]);
                    } else if (in[0] == 0 && in[1] == 1) {
                      const T xv = *xr;
                      for (std::int64_t i = 0; i < len; ++i) o[i] = f(xv, yr[i], zr[i], gr[i]);
                    } else {
                      for (std::int64_t i = 0; i < len; ++i) o[i] = f(xr[i * in[0]], yr[i * in[1]], zr[i], gr[i]);
                    }
                  });
  return out;
}

Tensor weak_scalar(double c, DType like) {
  Tensor t = empty_tensor({}, is_floating(like) ? like : DType::Float64);
  TG_FLOAT_DISPATCH(t.dtype(), T, { *t.data<T>() = static_cast<T>(c); });
  return t;
}

}  // namespace

// The helpers of rules.hpp on tensors (found by argument-dependent lookup), so that the
// table's rules run on Tensor in a recorded sweep. The piecewise-constant ones are constants
// of the graph, as their derivatives are zero.
Tensor step(const Tensor& x) { return astype(greater(x, weak_scalar(0.0, x.dtype())), x.dtype()); }
Tensor sign(const Tensor& x) {
  const Tensor zero = weak_scalar(0.0, x.dtype());
  return where(not_equal(x, x), x.detach(), astype(greater(x, zero), x.dtype()) - astype(less(x, zero), x.dtype()));
}
Tensor lesser(const Tensor& x, const Tensor& y) {
  return astype(less(x, y), x.dtype()) + 0.5 * astype(equal(x, y), x.dtype());
}
Tensor pow_dx(const Tensor& x, const Tensor& y) {
  return where(equal(y, weak_scalar(0.0, y.dtype())), weak_scalar(0.0, x.dtype()), y * pow(x, y - 1.0));
}
Tensor pow_dy(const Tensor& x, const Tensor& y, const Tensor& z) {
  const Tensor zero = weak_scalar(0.0, x.dtype());
  const Tensor lx = z * log(x);
  return where(equal(x, zero), where(greater_equal(y, zero), zero, lx), lx);
}

namespace {

// Which values a node keeps alive: only those its rule reads (ops.def's `reads`), so that
// changing exp's input in place after recording is harmless (as in PyTorch).
template <Op op>
struct RuleUses {
  static constexpr bool inputs = (Rule<op>::reads & (reads::X | reads::Y)) != 0;
  static constexpr bool output = (Rule<op>::reads & reads::Z) != 0;
};

template <Op op>
class UnaryNode final : public TNode {
 public:
  explicit UnaryNode(Tensor x) : x_(std::move(x)) {}
  bool saves_inputs() const override { return RuleUses<op>::inputs; }
  bool saves_output() const override { return RuleUses<op>::output; }

 protected:
  void vjp(const Tensor& g) override {
    if (grad_enabled()) {  // create_graph: the table's rule on tensors, recorded
      const Tensor z(out_);
      give(0, g * Rule<op>::dx(x_, z));
      return;
    }
    Tensor gx = empty_tensor(x_.shape(), x_.dtype());
    const std::int64_t n = gx.numel();
    TG_FLOAT_DISPATCH(x_.dtype(), T, {
      const T* x = x_.data<T>();
      const T* z = static_cast<const T*>(out_->data);
      const T* gp = g.data<T>();
      T* r = gx.data<T>();
      for (std::int64_t i = 0; i < n; ++i) r[i] = static_cast<T>(gp[i] * Rule<op>::dx(static_cast<double>(x[i]), static_cast<double>(z[i])));
    });
    give(0, gx);
  }
  Tensor jvp(const std::vector<Tensor>& t) override { return t[0] * Rule<op>::dx(x_, Tensor(out_)); }

 private:
  Tensor x_;
};

template <Op op>
Tensor unary(const Tensor& x0, const char* name) {
  Recorder rec({&x0}, name);
  const Tensor x = convert(x0, is_floating(x0.dtype()) ? x0.dtype() : DType::Float64);
  Tensor z = empty_tensor(x.shape(), x.dtype());
  const std::int64_t n = x.numel();
  TG_FLOAT_DISPATCH(x.dtype(), T, {
    const T* a = x.data<T>();
    T* r = z.data<T>();
    for (std::int64_t i = 0; i < n; ++i) r[i] = static_cast<T>(Rule<op>::forward(static_cast<double>(a[i])));
  });
  if (!rec.on()) return z;
  return rec.record(std::make_unique<UnaryNode<op>>(x), z);
}

// x^c for a constant exponent: the common ones without std::pow (10x faster).
template <class T>
inline T pow_const(T x, double c) {
  if (c == 2.0) return x * x;
  if (c == 1.0) return x;
  if (c == 0.0) return T(1);
  if (c == 3.0) return x * x * x;
  if (c == 0.5) return static_cast<T>(std::sqrt(static_cast<double>(x)));
  if (c == -1.0) return T(1) / x;
  if (c == -2.0) return T(1) / (x * x);
  return static_cast<T>(std::pow(static_cast<double>(x), c));
}

template <class T>
double scalar_value(const Tensor& t) {
  return static_cast<double>(*static_cast<const T*>(t.raw_data()));
}

template <Op op>
class BinaryNode final : public TNode {
 public:
  BinaryNode(Tensor x, Tensor y) : x_(std::move(x)), y_(std::move(y)) {}
  bool saves_inputs() const override { return RuleUses<op>::inputs; }
  bool saves_output() const override { return RuleUses<op>::output; }

 protected:
  void vjp(const Tensor& g) override {
    const Tensor z(out_);
    if constexpr (op == Op::Add || op == Op::Sub) {
      if (needs(0)) give(0, detail::sum_to(g, x_.shape()));
      if (needs(1)) give(1, detail::sum_to(op == Op::Add ? g : neg(g), y_.shape()));
      return;
    }
    if (grad_enabled()) {  // create_graph: the table's rules on tensors, recorded
      if (needs(0)) give(0, detail::sum_to(g * Rule<op>::dx(x_, y_, z), x_.shape()));
      if (needs(1)) give(1, detail::sum_to(g * Rule<op>::dy(x_, y_, z), y_.shape()));
      return;
    }
    TG_FLOAT_DISPATCH(z.dtype(), T, {
      if constexpr (op == Op::Pow) {
        if (needs(0) && y_.numel() == 1 && x_.shape() == z.shape()) {  // x^c: c x^(c-1)
          const double c = scalar_value<T>(y_);
          Tensor gx = empty_tensor(x_.shape(), x_.dtype());
          const T* xp = x_.data<T>();
          const T* gp = g.data<T>();
          T* r = gx.data<T>();
          const std::int64_t n = gx.numel();
          if (c == 0.0) {
            for (std::int64_t i = 0; i < n; ++i) r[i] = T(0);
          } else {
            const T cc = static_cast<T>(c);
            for (std::int64_t i = 0; i < n; ++i) r[i] = gp[i] * cc * pow_const(xp[i], c - 1.0);
          }
          give(0, gx);
          if (needs(1)) {
            Tensor full = map4<T>(x_, y_, z, g, [](T x, T y, T zz, T gg) {
              return static_cast<T>(gg * Rule<op>::dy(static_cast<double>(x), static_cast<double>(y), static_cast<double>(zz)));
            });
            give(1, detail::sum_to(full, y_.shape()));
          }
          return;
        }
      }
      if (needs(0)) {
        Tensor full = map4<T>(x_, y_, z, g, [](T x, T y, T zz, T gg) {
          return static_cast<T>(gg * Rule<op>::dx(static_cast<double>(x), static_cast<double>(y), static_cast<double>(zz)));
        });
        give(0, detail::sum_to(full, x_.shape()));
      }
      if (needs(1)) {
        Tensor full = map4<T>(x_, y_, z, g, [](T x, T y, T zz, T gg) {
          return static_cast<T>(gg * Rule<op>::dy(static_cast<double>(x), static_cast<double>(y), static_cast<double>(zz)));
        });
        give(1, detail::sum_to(full, y_.shape()));
      }
    });
  }
  Tensor jvp(const std::vector<Tensor>& t) override {
    const Tensor z(out_);
    const std::size_t r = z.shape().size();
    Tensor res;
    if (t[0].defined()) {
      const Tensor tx = tangent_as_rank(t[0], r);
      if constexpr (op == Op::Add || op == Op::Sub) res = tx;
      else res = tx * Rule<op>::dx(x_, y_, z);
    }
    if (t[1].defined()) {
      const Tensor ty = tangent_as_rank(t[1], r);
      Tensor term;
      if constexpr (op == Op::Add) term = ty;
      else if constexpr (op == Op::Sub) term = neg(ty);
      else term = ty * Rule<op>::dy(x_, y_, z);
      res = res.defined() ? add(res, term) : term;
    }
    return res;
  }

 private:
  Tensor x_, y_;
};

template <Op op>
Tensor binary(const Tensor& x0, const Tensor& y0, const char* name) {
  const Shape shape = broadcast_shapes(x0.shape(), y0.shape(), name);
  Recorder rec({&x0, &y0}, name);
  const DType dt = arithmetic_dtype(x0.dtype(), y0.dtype());
  // astype: a promoted operand stays on the graph (for a create_graph sweep's second order)
  const Tensor x = astype(x0, dt), y = astype(y0, dt);
  Tensor z = empty_tensor(shape, dt);
  TG_FLOAT_DISPATCH(dt, T, {
    bool done = false;
    if constexpr (op == Op::Pow) {
      if (y.numel() == 1 && x.shape() == shape) {
        const double c = scalar_value<T>(y);
        const T* a = x.data<T>();
        T* r = z.data<T>();
        const std::int64_t n = z.numel();
        for (std::int64_t i = 0; i < n; ++i) r[i] = pow_const(a[i], c);
        done = true;
      }
    }
    if (!done) map2<T, T>(x, y, z, [](T a, T b) {
      return static_cast<T>(Rule<op>::forward(static_cast<double>(a), static_cast<double>(b)));
    });
  });
  if (!rec.on()) return z;
  return rec.record(std::make_unique<BinaryNode<op>>(x, y), z);
}

template <class Cmp>
Tensor compare(const Tensor& x, const Tensor& y, const char* name, Cmp cmp) {
  const Shape shape = broadcast_shapes(x.shape(), y.shape(), name);
  const DType dt = promote(x.dtype(), y.dtype());
  const Tensor a = convert(x, dt), b = convert(y, dt);
  Tensor z = empty_tensor(shape, DType::Bool);
  TG_ANY_DISPATCH(dt, T, { map2<T, bool>(a, b, z, [&](T u, T v) { return cmp(u, v); }); });
  return z;
}

}  // namespace

#define TAPEGRAD_UNARY(Name, name, ...) \
  Tensor name(const Tensor& x) { return unary<Op::Name>(x, #name); }
#define TAPEGRAD_BINARY(Name, name, ...)                                                                    \
  Tensor name(const Tensor& x, const Tensor& y) { return binary<Op::Name>(x, y, #name); }                   \
  Tensor name(const Tensor& x, double y) { return binary<Op::Name>(x, weak_scalar(y, x.dtype()), #name); }  \
  Tensor name(double x, const Tensor& y) { return binary<Op::Name>(weak_scalar(x, y.dtype()), y, #name); }
#include "tapegrad/ops.def"

Tensor less(const Tensor& x, const Tensor& y) { return compare(x, y, "less", [](auto a, auto b) { return a < b; }); }
Tensor less_equal(const Tensor& x, const Tensor& y) {
  return compare(x, y, "less_equal", [](auto a, auto b) { return a <= b; });
}
Tensor greater(const Tensor& x, const Tensor& y) {
  return compare(x, y, "greater", [](auto a, auto b) { return a > b; });
}
Tensor greater_equal(const Tensor& x, const Tensor& y) {
  return compare(x, y, "greater_equal", [](auto a, auto b) { return a >= b; });
}
Tensor equal(const Tensor& x, const Tensor& y) { return compare(x, y, "equal", [](auto a, auto b) { return a == b; }); }
Tensor not_equal(const Tensor& x, const Tensor& y) {
  return compare(x, y, "not_equal", [](auto a, auto b) { return a != b; });
}

// --- astype, clip, where ---------------------------------------------------------------

namespace {
class AstypeNode final : public TNode {
 public:
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }

 protected:
  void vjp(const Tensor& g) override { give(0, g); }  // add_grad converts to the input's dtype
  Tensor jvp(const std::vector<Tensor>& t) override { return t[0]; }  // tangent() converts
};

class ClipNode final : public TNode {
 public:
  ClipNode(Tensor x, double lo, double hi) : x_(std::move(x)), lo_(lo), hi_(hi) {}
  bool saves_inputs() const override { return true; }
  bool saves_output() const override { return false; }

 protected:
  // Where lo <= x <= hi: where the gradient passes.
  Tensor inside() const {
    Tensor m = empty_tensor(x_.shape(), DType::Bool);
    TG_FLOAT_DISPATCH(x_.dtype(), T, {
      const T* x = x_.data<T>();
      bool* mp = m.data<bool>();
      for (std::int64_t i = 0; i < x_.numel(); ++i) mp[i] = x[i] >= static_cast<T>(lo_) && x[i] <= static_cast<T>(hi_);
    });
    return m;
  }
  Tensor jvp(const std::vector<Tensor>& t) override { return where(inside(), t[0], weak_scalar(0.0, t[0].dtype())); }
  void vjp(const Tensor& g) override {
    if (grad_enabled()) {  // create_graph: g where lo <= x <= hi, recorded
      give(0, where(inside(), g, weak_scalar(0.0, g.dtype())));
      return;
    }
    Tensor gx = empty_tensor(x_.shape(), x_.dtype());
    const std::int64_t n = gx.numel();
    TG_FLOAT_DISPATCH(x_.dtype(), T, {
      const T* x = x_.data<T>();
      const T* gp = g.data<T>();
      T* r = gx.data<T>();
      const T lo = static_cast<T>(lo_), hi = static_cast<T>(hi_);
      for (std::int64_t i = 0; i < n; ++i) r[i] = (x[i] >= lo && x[i] <= hi) ? gp[i] : T(0);
    });
    give(0, gx);
  }

 private:
  Tensor x_;
  double lo_, hi_;
};

class WhereNode final : public TNode {
 public:
  WhereNode(Tensor c, Shape a, Shape b) : c_(std::move(c)), a_(std::move(a)), b_(std::move(b)) {}
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }

 protected:
  void vjp(const Tensor& g) override {
    const Tensor zero = weak_scalar(0.0, g.dtype());
    if (needs(1)) give(1, detail::sum_to(where(c_, g, zero), a_));
    if (needs(2)) give(2, detail::sum_to(where(c_, zero, g), b_));
  }
  Tensor jvp(const std::vector<Tensor>& t) override {
    const std::size_t r = out_->shape.size();
    const DType dt = t[1].defined() ? t[1].dtype() : t[2].dtype();
    const Tensor ta = t[1].defined() ? tangent_as_rank(t[1], r) : weak_scalar(0.0, dt);
    const Tensor tb = t[2].defined() ? tangent_as_rank(t[2], r) : weak_scalar(0.0, dt);
    return where(c_, ta, tb);
  }

 private:
  Tensor c_;
  Shape a_, b_;
};
}  // namespace

Tensor astype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor r = convert(x, dtype);
  if (r.same(x)) r = detail::view_as_shape(x, x.shape());
  if (!is_floating(dtype)) return r;
  Recorder rec({&x}, "astype");
  if (!rec.on()) return r;
  return rec.record(std::make_unique<AstypeNode>(), r);
}

Tensor clip(const Tensor& x0, double lo, double hi) {
  Recorder rec({&x0}, "clip");
  const Tensor x = convert(x0, is_floating(x0.dtype()) ? x0.dtype() : DType::Float64);
  Tensor z = empty_tensor(x.shape(), x.dtype());
  const std::int64_t n = x.numel();
  TG_FLOAT_DISPATCH(x.dtype(), T, {
    const T* a = x.data<T>();
    T* r = z.data<T>();
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
    for (std::int64_t i = 0; i < n; ++i) {  // min(max(x, lo), hi), NaN kept: hi wins if lo > hi
      const T v = a[i];
      const T up = v < l ? l : v;
      r[i] = v != v ? v : (up > h ? h : up);
    }
  });
  if (!rec.on()) return z;
  return rec.record(std::make_unique<ClipNode>(x, lo, hi), z);
}

Tensor where(const Tensor& cond, const Tensor& a0, const Tensor& b0) {
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a0.shape(), "where"), b0.shape(), "where");
  Recorder rec({&cond, &a0, &b0}, "where");
  const DType dt = promote(a0.dtype(), b0.dtype());
  const Tensor c = convert(cond, DType::Bool), a = convert(a0, dt), b = convert(b0, dt);
  Tensor z = empty_tensor(shape, dt);
  const bool* cp = c.data<bool>();
  TG_ANY_DISPATCH(dt, T, {
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* zp = z.data<T>();
    for_each_row<4>(shape,
                    {broadcast_strides(c.shape(), shape), broadcast_strides(a.shape(), shape),
                     broadcast_strides(b.shape(), shape), contiguous_strides(shape)},
                    [&](const std::array<std::int64_t, 4>& o, std::int64_t len, const std::array<std::int64_t, 4>& in) {
                      for (std::int64_t i = 0; i < len; ++i)
                        zp[o[3] + i * in[3]] = cp[o[0] + i * in[0]] ? ap[o[1] + i * in[1]] : bp[o[2] + i * in[2]];
                    });
  });
  if (!rec.on()) return z;
  return rec.record(std::make_unique<WhereNode>(c, a.shape(), b.shape()), z);
}
Tensor where(const Tensor& cond, const Tensor& a, double b) { return where(cond, a, weak_scalar(b, a.dtype())); }
Tensor where(const Tensor& cond, double a, const Tensor& b) { return where(cond, weak_scalar(a, b.dtype()), b); }

// --- reductions -----------------------------------------------------------------------------

namespace {

// The shape with the reduced axes kept as 1s.
Shape kept_shape(const Shape& s, const std::vector<int>& axes) {
  Shape r = s;
  for (int a : axes) r[static_cast<std::size_t>(a)] = 1;
  return r;
}
Shape dropped_shape(const Shape& s, const std::vector<int>& axes) {
  Shape r;
  for (std::size_t d = 0; d < s.size(); ++d)
    if (std::find(axes.begin(), axes.end(), static_cast<int>(d)) == axes.end()) r.push_back(s[d]);
  return r;
}

enum class Reduce { Sum, Prod, Max, Min };

// The sum of a contiguous row in double: eight independent accumulators (the adds pipeline
// and vectorise), combined pairwise over blocks, so the rounding error grows like log n
// rather than n (NumPy's pairwise summation, in spirit).
template <class T>
double sum_row(const T* s, std::int64_t len) {
  constexpr std::int64_t kBlock = 4096;
  if (len > kBlock) {
    const std::int64_t half = (len / 2 + 7) / 8 * 8;
    return sum_row(s, half) + sum_row(s + half, len - half);
  }
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t i = 0;
  for (; i + 8 <= len; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(s[i + l]);
  double r = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < len; ++i) r += static_cast<double>(s[i]);
  return r;
}

// Reduces x (float dtype) over `axes` into a tensor of the kept shape.
Tensor reduce(const Tensor& x, const std::vector<int>& axes, Reduce kind, const char* name) {
  const Shape ks = kept_shape(x.shape(), axes);
  Tensor out = empty_tensor(ks, x.dtype());
  const std::int64_t m = out.numel();
  if ((kind == Reduce::Max || kind == Reduce::Min) && x.numel() == 0 && m > 0)
    throw_error(std::string("tapegrad: ") + name + ": zero-size reduction has no identity (shape " +
                shape_str(x.shape()) + ")");
  TG_FLOAT_DISPATCH(x.dtype(), T, {
    // Accumulate in double: float32 sums stay accurate.
    std::vector<double> acc(static_cast<std::size_t>(m));
    const double init = kind == Reduce::Sum ? 0.0
                        : kind == Reduce::Prod ? 1.0
                        : kind == Reduce::Max ? -std::numeric_limits<double>::infinity()
                                              : std::numeric_limits<double>::infinity();
    std::fill(acc.begin(), acc.end(), init);
    const T* xp = x.data<T>();
    double* ap = acc.data();
    auto combine = [kind](double a, double v) {
      switch (kind) {
        case Reduce::Sum: return a + v;
        case Reduce::Prod: return a * v;
        case Reduce::Max: return (a != a || a >= v) ? a : v;  // NaN wins
        case Reduce::Min: return (a != a || a <= v) ? a : v;
      }
      return a;
    };
    for_each_row<2>(x.shape(), {contiguous_strides(x.shape()), broadcast_strides(ks, x.shape())},
                    [&](const std::array<std::int64_t, 2>& b, std::int64_t len, const std::array<std::int64_t, 2>& in) {
                      const T* s = xp + b[0];
                      double* d = ap + b[1];
                      if (in[1] == 0) {
                        double a = *d;
                        if (kind == Reduce::Sum && in[0] == 1) {
                          a += sum_row(s, len);
                        } else if (kind == Reduce::Sum) {
                          for (std::int64_t i = 0; i < len; ++i) a += static_cast<double>(s[i * in[0]]);
                        } else {
                          for (std::int64_t i = 0; i < len; ++i) a = combine(a, static_cast<double>(s[i * in[0]]));
                        }
                        *d = a;
                      } else if (kind == Reduce::Sum && in[0] == 1 && in[1] == 1) {
                        for (std::int64_t i = 0; i < len; ++i) d[i] += static_cast<double>(s[i]);  // vectorises
                      } else {
                        for (std::int64_t i = 0; i < len; ++i)
                          d[i * in[1]] = combine(d[i * in[1]], static_cast<double>(s[i * in[0]]));
                      }
                    });
    T* op = out.data<T>();
    for (std::int64_t i = 0; i < m; ++i) op[i] = static_cast<T>(ap[i]);
  });
  return out;
}

Tensor floating(const Tensor& x) { return is_floating(x.dtype()) ? x : convert(x, DType::Float64); }

class SumNode final : public TNode {
 public:
  SumNode(Shape in, Shape kept) : in_shape_(std::move(in)), kept_(std::move(kept)) {}
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }

 protected:
  void vjp(const Tensor& g) override { give(0, broadcast_to(detail::reshaped(g, kept_), in_shape_)); }
  Tensor jvp(const std::vector<Tensor>& t) override {
    std::vector<int> axes;
    for (std::size_t d = 0; d < kept_.size(); ++d)
      if (kept_[d] != in_shape_[d]) axes.push_back(static_cast<int>(d) + 1);
    return sum(t[0], Axes(axes), true);
  }

 private:
  Shape in_shape_, kept_;
};

// A reduction whose rules read its input x, its kept-dims result zk and its axes.
class ReductionNode : public TNode {
 public:
  ReductionNode(Tensor x, Tensor zk, std::vector<int> axes) : x_(std::move(x)), zk_(std::move(zk)), axes_(std::move(axes)) {}

 protected:
  Tensor x_, zk_;
  std::vector<int> axes_;
};

class ExtremeNode final : public ReductionNode {  // amax / amin
 public:
  using ReductionNode::ReductionNode;

 protected:
  void vjp(const Tensor& g) override {
    const Tensor mask = convert(equal(x_, zk_), x_.dtype());
    const Tensor count = detail::view_as_shape(reduce(mask, axes_, Reduce::Sum, "amax"), zk_.shape());
    give(0, mask * (detail::reshaped(g, zk_.shape()) / count));
  }
  Tensor jvp(const std::vector<Tensor>& t) override {  // the mean tangent over the ties
    const Tensor mask = convert(equal(x_, zk_), x_.dtype());
    const Tensor count = detail::view_as_shape(reduce(mask, axes_, Reduce::Sum, "amax"), zk_.shape());
    return sum(mask * t[0], Axes(tangent_axes(axes_)), true) / count;
  }
};

class ProdNode final : public ReductionNode {
 public:
  using ReductionNode::ReductionNode;

 protected:
  void vjp(const Tensor& g) override { give(0, others() * detail::reshaped(g, zk_.shape())); }
  Tensor jvp(const std::vector<Tensor>& t) override { return sum(others() * t[0], Axes(tangent_axes(axes_)), true); }

  Tensor others() const {
    // d prod / d x_i = prod of the others: prod / x_i without zeros; with one zero, the
    // product of the nonzero factors at the zero and 0 elsewhere; with two or more, 0.
    const Tensor zero = weak_scalar(0.0, x_.dtype()), one = weak_scalar(1.0, x_.dtype());
    const Tensor is0 = equal(x_, zero);
    const Tensor nzeros = reduce(convert(is0, x_.dtype()), axes_, Reduce::Sum, "prod");
    const Tensor safe = where(is0, one, x_);
    const bool rec = grad_enabled();  // create_graph: products recorded, so others depend on x
    const Tensor pnz = rec ? prod(safe, Axes(axes_), true) : reduce(safe, axes_, Reduce::Prod, "prod");
    const Tensor zk = rec ? detail::reshaped(Tensor(out_), zk_.shape()) : zk_;
    const Tensor none = equal(nzeros, zero), single = equal(nzeros, one);
    return where(none, zk / safe, where(single, where(is0, pnz, zero), zero));
  }
};

class LogsumexpNode final : public ReductionNode {
 public:
  using ReductionNode::ReductionNode;

 protected:
  // softmax(x) along the axes: d logsumexp / dx.
  Tensor weights() const {
    const Tensor zk = grad_enabled() ? detail::reshaped(Tensor(out_), zk_.shape()) : zk_;  // create_graph: on the graph
    return exp(x_ - zk);
  }
  void vjp(const Tensor& g) override { give(0, weights() * detail::reshaped(g, zk_.shape())); }
  Tensor jvp(const std::vector<Tensor>& t) override { return sum(weights() * t[0], Axes(tangent_axes(axes_)), true); }
};

class SoftmaxNode final : public TNode {
 public:
  explicit SoftmaxNode(int axis) : axis_(axis) {}
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return true; }

 protected:
  void vjp(const Tensor& g) override {
    const Tensor y(out_);
    give(0, y * (g - sum(g * y, axis_, true)));
  }
  Tensor jvp(const std::vector<Tensor>& t) override {
    const Tensor y(out_);
    return y * (t[0] - sum(t[0] * y, axis_ + 1, true));
  }

 private:
  int axis_;
};

class LogSoftmaxNode final : public TNode {
 public:
  explicit LogSoftmaxNode(int axis) : axis_(axis) {}
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return true; }

 protected:
  void vjp(const Tensor& g) override {
    const Tensor y(out_);
    give(0, g - exp(y) * sum(g, axis_, true));
  }
  Tensor jvp(const std::vector<Tensor>& t) override {
    const Tensor y(out_);
    return t[0] - sum(exp(y) * t[0], axis_ + 1, true);
  }

 private:
  int axis_;
};

// The reductions record the kept-dims result, then view it without the axes (recorded).
template <class MakeNode>
Tensor reduction(const Tensor& x0, const Axes& axes, bool keepdims, Reduce kind, const char* name, MakeNode make) {
  const std::vector<int> ax = detail::normalize_axes(axes, x0.ndim(), name);
  Recorder rec({&x0}, name);
  const Tensor x = floating(x0);
  const Tensor zk = reduce(x, ax, kind, name);
  const Tensor out = keepdims ? zk : detail::view_as_shape(zk, dropped_shape(x.shape(), ax));
  if (!rec.on()) return out;
  return rec.record(make(x, zk, ax), out);
}

// Stable log-sum-exp over `ax` of float x, kept dims (not recorded).
Tensor lse_kept(const Tensor& x, const std::vector<int>& ax) {
  NoGrad ng;
  if (x.numel() == 0)  // log of an empty sum: -inf (PyTorch's and SciPy's answer)
    return Tensor::full(kept_shape(x.shape(), ax), -std::numeric_limits<double>::infinity(), x.dtype());
  Tensor m = reduce(x, ax, Reduce::Max, "logsumexp");
  // Shift by the maximum where it is finite (an all -inf or +inf slice keeps its value).
  const Tensor inf = weak_scalar(std::numeric_limits<double>::infinity(), x.dtype());
  const Tensor finite = less(abs(m), inf);
  const Tensor shift = where(finite, m, weak_scalar(0.0, x.dtype()));
  const Tensor s = reduce(exp(x - shift), ax, Reduce::Sum, "logsumexp");
  return log(s) + shift;
}

}  // namespace

Tensor sum(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduction(x, axes, keepdims, Reduce::Sum, "sum",
                   [](const Tensor& xx, const Tensor& zk, const std::vector<int>&) {
                     return std::make_unique<SumNode>(xx.shape(), zk.shape());
                   });
}

Tensor mean(const Tensor& x, const Axes& axes, bool keepdims) {
  const std::vector<int> ax = detail::normalize_axes(axes, x.ndim(), "mean");
  std::int64_t count = 1;
  for (int a : ax) count *= x.shape()[static_cast<std::size_t>(a)];
  return sum(x, axes, keepdims) * (1.0 / static_cast<double>(count));
}

Tensor amax(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduction(x, axes, keepdims, Reduce::Max, "max",
                   [](const Tensor& xx, const Tensor& zk, const std::vector<int>& ax) {
                     return std::make_unique<ExtremeNode>(xx, zk, ax);
                   });
}

Tensor amin(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduction(x, axes, keepdims, Reduce::Min, "min",
                   [](const Tensor& xx, const Tensor& zk, const std::vector<int>& ax) {
                     return std::make_unique<ExtremeNode>(xx, zk, ax);
                   });
}

Tensor prod(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduction(x, axes, keepdims, Reduce::Prod, "prod",
                   [](const Tensor& xx, const Tensor& zk, const std::vector<int>& ax) {
                     return std::make_unique<ProdNode>(xx, zk, ax);
                   });
}

Tensor var(const Tensor& x, const Axes& axes, int ddof, bool keepdims) {
  const std::vector<int> ax = detail::normalize_axes(axes, x.ndim(), "var");
  std::int64_t count = 1;
  for (int a : ax) count *= x.shape()[static_cast<std::size_t>(a)];
  const Tensor d = x - mean(x, axes, true);
  // NumPy's and PyTorch's divisor max(n - ddof, 0): no data left gives inf (or nan for 0/0).
  const double divisor = static_cast<double>(std::max<std::int64_t>(count - ddof, 0));
  return sum(d * d, axes, keepdims) * (1.0 / divisor);
}

namespace {
// sqrt whose derivative is 0 where the result is 0 (PyTorch's std: a constant slice has
// zero spread and a zero gradient, not 0 * inf).
class StdSqrtNode final : public TNode {
 public:
  bool saves_inputs() const override { return false; }

 protected:
  void vjp(const Tensor& g) override {
    const Tensor z(out_);
    if (grad_enabled()) {  // create_graph
      const Tensor zero = weak_scalar(0.0, z.dtype());
      give(0, where(equal(z, zero), zero, g * 0.5 / z));
      return;
    }
    Tensor gx = empty_tensor(z.shape(), z.dtype());
    const std::int64_t n = gx.numel();
    TG_FLOAT_DISPATCH(z.dtype(), T, {
      const T* zp = z.data<T>();
      const T* gp = g.data<T>();
      T* r = gx.data<T>();
      for (std::int64_t i = 0; i < n; ++i) r[i] = zp[i] == T(0) ? T(0) : gp[i] * T(0.5) / zp[i];
    });
    give(0, gx);
  }
  Tensor jvp(const std::vector<Tensor>& t) override {
    const Tensor z(out_);
    const Tensor zero = weak_scalar(0.0, z.dtype());
    return where(equal(z, zero), zero, t[0] * (0.5 / z));
  }
};
}  // namespace

Tensor std(const Tensor& x, const Axes& axes, int ddof, bool keepdims) {
  const Tensor v = var(x, axes, ddof, keepdims);
  Recorder rec({&v}, "std");
  Tensor z;
  {
    NoGrad ng;
    z = sqrt(v);
  }
  if (!rec.on()) return z;
  return rec.record(std::make_unique<StdSqrtNode>(), z);
}

Tensor logsumexp(const Tensor& x0, const Axes& axes, bool keepdims) {
  const std::vector<int> ax = detail::normalize_axes(axes, x0.ndim(), "logsumexp");
  Recorder rec({&x0}, "logsumexp");
  const Tensor x = floating(x0);
  const Tensor zk = lse_kept(x, ax);
  const Tensor out = keepdims ? zk : detail::view_as_shape(zk, dropped_shape(x.shape(), ax));
  if (!rec.on()) return out;
  return rec.record(std::make_unique<LogsumexpNode>(x, zk, ax), out);
}

Tensor softmax(const Tensor& x0, int axis) {
  const int ax = detail::normalize_axis(axis, x0.ndim(), "softmax");
  Recorder rec({&x0}, "softmax");
  const Tensor x = floating(x0);
  Tensor y;
  {
    NoGrad ng;
    const Tensor e = exp(x - reduce(x, {ax}, Reduce::Max, "softmax"));
    y = e / reduce(e, {ax}, Reduce::Sum, "softmax");
  }
  if (!rec.on()) return y;
  return rec.record(std::make_unique<SoftmaxNode>(ax), y);
}

Tensor log_softmax(const Tensor& x0, int axis) {
  const int ax = detail::normalize_axis(axis, x0.ndim(), "log_softmax");
  Recorder rec({&x0}, "log_softmax");
  const Tensor x = floating(x0);
  Tensor y;
  {
    NoGrad ng;
    y = x - lse_kept(x, {ax});
  }
  if (!rec.on()) return y;
  return rec.record(std::make_unique<LogSoftmaxNode>(ax), y);
}

namespace detail {
Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const std::size_t n = x.shape().size(), off = n - shape.size();
  std::vector<int> axes;
  for (std::size_t d = 0; d < n; ++d)
    if (d < off || (shape[d - off] == 1 && x.shape()[d] != 1)) axes.push_back(static_cast<int>(d));
  if (grad_enabled() && x.requires_grad()) return reshape(sum(x, Axes(axes), true), shape);  // create_graph
  NoGrad ng;
  const Tensor r = reduce(x, axes, Reduce::Sum, "sum_to");
  return view_as_shape(r, shape);
}
}  // namespace detail

}  // namespace tapegrad
