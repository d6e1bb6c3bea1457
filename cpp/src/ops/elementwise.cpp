// Elementwise tensor ops: the op table per element with broadcasting (kernels from Rule<Op>),
// comparisons, astype, clip and where.
#include <algorithm>
#include <cmath>
#include <limits>
#include "ops/table.hpp"

namespace tapegrad {

using detail::weak_scalar;
using detail::make_op;
using detail::table::Slope;
namespace tbl = detail::table;

namespace detail {
Tensor weak_scalar(double c, DType like) {
  Tensor t = empty_tensor({}, is_floating(like) ? like : DType::Float64);
  TG_FLOAT_DISPATCH(t.dtype(), T, { *t.data<T>() = static_cast<T>(c); });
  return t;
}
}  // namespace detail

namespace {

// z[i] = f(x[i], y[i]) over the broadcast shape of z (x, y, z of one dtype T; z contiguous).
template <class T, class R, class F>
void map2(const Tensor& x, const Tensor& y, const Tensor& z, F f) {
  Unlocked unlocked(z.numel());
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
  Unlocked unlocked(out.numel());
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


}  // namespace

namespace {
Tensor zero_slope(Slope kind, const Tensor& value, const Tensor& x) {
  Recorder rec({&x}, "slope");
  if (!rec.on()) return value;
  return rec.record(make_op(tbl::ZeroSlope{kind, {{x.shape(), x.dtype()}}}), value);
}
Tensor zero_slope(Slope kind, const Tensor& value, const Tensor& x, const Tensor& y) {
  Recorder rec({&x, &y}, "slope");
  if (!rec.on()) return value;
  return rec.record(make_op(tbl::ZeroSlope{kind, {{x.shape(), x.dtype()}, {y.shape(), y.dtype()}}}), value);
}
}  // namespace

// The helpers of rules.hpp on tensors (found by argument-dependent lookup), so that the
// table's rules run on Tensor in a recorded sweep. The piecewise-constant ones have zero
// derivatives (zero_slope).
Tensor step(const Tensor& x) {
  Tensor v;
  {
    NoGrad ng;
    v = astype(greater(x, weak_scalar(0.0, x.dtype())), x.dtype());
  }
  return zero_slope(Slope::Step, v, x);
}
Tensor sign(const Tensor& x) {
  Tensor v;
  {
    NoGrad ng;
    const Tensor zero = weak_scalar(0.0, x.dtype());
    v = where(not_equal(x, x), x, astype(greater(x, zero), x.dtype()) - astype(less(x, zero), x.dtype()));
  }
  return zero_slope(Slope::Sign, v, x);
}
Tensor lesser(const Tensor& x, const Tensor& y) {
  Tensor v;
  {
    NoGrad ng;
    v = astype(less(x, y), x.dtype()) + 0.5 * astype(equal(x, y), x.dtype());
  }
  return zero_slope(Slope::Lesser, v, x, y);
}
Tensor tbl::ZeroSlope::forward(OpCtx& c, const Ins& x) const {
  switch (kind) {
    case Slope::Step: return tapegrad::step(x[0]);
    case Slope::Sign: return tapegrad::sign(x[0]);
    case Slope::Lesser: return tapegrad::lesser(x[0], x[1]);
    case Slope::Zero: break;
  }
  return zero_slope(Slope::Zero, Tensor::zeros({}, c.out_dtype()), x[0]);
}

Tensor pow_dx(const Tensor& x, const Tensor& y) {
  return where(equal(y, weak_scalar(0.0, y.dtype())), weak_scalar(0.0, x.dtype()), y * pow(x, y - 1.0));
}
Tensor inv_norm2(const Tensor& x, const Tensor& y) {
  const Tensor zero = weak_scalar(0.0, x.dtype());
  const Tensor n = x * x + y * y;
  return where(equal(n, zero), zero, 1.0 / n);
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
Tensor unary(const Tensor& x0, const char* name);
template <Op op>
Tensor binary(const Tensor& x0, const Tensor& y0, const char* name);

template <Op op>
class UnaryNode final : public TNode {
 public:
  const char* name() const noexcept override { return op_info(op).backward_name; }
  const char* op_name() const noexcept override { return Rule<op>::name; }
  // (the input only if the rule reads it: relu's and exp's records keep their outputs alone)
  explicit UnaryNode(const Tensor& x) : x_(RuleUses<op>::inputs ? x : Tensor()) {}
  bool saves_inputs() const override { return RuleUses<op>::inputs; }
  bool saves_output() const override { return RuleUses<op>::output; }

 protected:
  void vjp(OpCtx& c, const Tensor& g) override {
    const Tensor z(out_);  // (null where the rule does not read it)
    if (c.recorded()) {  // create_graph: the table's rule on tensors, recorded
      c.give(0, g * Rule<op>::dx(x_, z));
      return;
    }
    Tensor gx = empty_tensor(out_shape_, out_dtype_);  // (x's shape and dtype)
    const std::int64_t n = gx.numel();
    TG_FLOAT_DISPATCH(out_dtype_, T, {
      const T* x = RuleUses<op>::inputs ? x_.data<T>() : nullptr;
      const T* zp = RuleUses<op>::output ? z.data<T>() : nullptr;
      const T* gp = g.data<T>();
      T* r = gx.data<T>();
      for (std::int64_t i = 0; i < n; ++i) {
        const double xi = RuleUses<op>::inputs ? static_cast<double>(x[i]) : 0.0;
        const double zi = RuleUses<op>::output ? static_cast<double>(zp[i]) : 0.0;
        r[i] = static_cast<T>(gp[i] * Rule<op>::dx(xi, zi));
      }
    });
    c.give(0, gx);
  }
  Tensor jvp(OpCtx&, const std::vector<Tensor>& t) override { return t[0] * Rule<op>::dx(x_, Tensor(out_)); }
  Tensor forward_at(OpCtx&, const std::vector<Tensor>& in) override { return unary<op>(in[0], Rule<op>::name); }

 private:
  Tensor x_;
};

template <Op op>
Tensor unary(const Tensor& x0, const char* name) {
  Recorder rec({&x0}, name);
  const Tensor x = convert(x0, is_floating(x0.dtype()) ? x0.dtype() : DType::Float64);
  Tensor z = empty_tensor(x.shape(), x.dtype());
  const std::int64_t n = x.numel();
  {
    Unlocked unlocked(n);
    TG_FLOAT_DISPATCH(x.dtype(), T, {
      const T* a = x.data<T>();
      T* r = z.data<T>();
      for (std::int64_t i = 0; i < n; ++i) r[i] = static_cast<T>(Rule<op>::forward(static_cast<double>(a[i])));
    });
  }
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
  const char* name() const noexcept override { return op_info(op).backward_name; }
  const char* op_name() const noexcept override { return Rule<op>::name; }
  // (the inputs only if the rule reads them: an addition's record keeps their shapes alone)
  BinaryNode(const Tensor& x, const Tensor& y)
      : x_(RuleUses<op>::inputs ? x : Tensor()), y_(RuleUses<op>::inputs ? y : Tensor()), xs_(x.shape()),
        ys_(y.shape()) {}
  bool saves_inputs() const override { return RuleUses<op>::inputs; }
  bool saves_output() const override { return RuleUses<op>::output; }

 protected:
  void vjp(OpCtx& c, const Tensor& g) override {
    // z: the output where the rule reads it; else g stands in (its shape and dtype, values unread)
    const Tensor z = out_ ? Tensor(out_) : g;
    if constexpr (op == Op::Add || op == Op::Sub) {
      if (c.needs(0)) c.give(0, detail::sum_to(g, xs_));
      if (c.needs(1)) c.give(1, detail::sum_to(op == Op::Add ? g : neg(g), ys_));
      return;
    } else {
      static_assert(RuleUses<op>::inputs, "a binary rule that reads neither input needs its shapes in map4");
    }
    if (c.recorded()) {  // create_graph: the table's rules on tensors, recorded
      const Tensor zr(out_);  // (null where the rule does not read it)
      if (c.needs(0)) c.give(0, detail::sum_to(g * Rule<op>::dx(x_, y_, zr), xs_));
      if (c.needs(1)) c.give(1, detail::sum_to(g * Rule<op>::dy(x_, y_, zr), ys_));
      return;
    }
    TG_FLOAT_DISPATCH(z.dtype(), T, {
      if constexpr (op == Op::Pow) {
        if (c.needs(0) && y_.numel() == 1 && x_.shape() == z.shape()) {  // x^e: e x^(e-1)
          const double e = scalar_value<T>(y_);
          Tensor gx = empty_tensor(x_.shape(), x_.dtype());
          const T* xp = x_.data<T>();
          const T* gp = g.data<T>();
          T* r = gx.data<T>();
          const std::int64_t n = gx.numel();
          if (e == 0.0) {
            for (std::int64_t i = 0; i < n; ++i) r[i] = T(0);
          } else {
            const T cc = static_cast<T>(e);
            for (std::int64_t i = 0; i < n; ++i) r[i] = gp[i] * cc * pow_const(xp[i], e - 1.0);
          }
          c.give(0, gx);
          if (c.needs(1)) {
            Tensor full = map4<T>(x_, y_, z, g, [](T x, T y, T zz, T gg) {
              return static_cast<T>(gg * Rule<op>::dy(static_cast<double>(x), static_cast<double>(y), static_cast<double>(zz)));
            });
            c.give(1, detail::sum_to(full, y_.shape()));
          }
          return;
        }
      }
      if (c.needs(0)) {
        Tensor full = map4<T>(x_, y_, z, g, [](T x, T y, T zz, T gg) {
          return static_cast<T>(gg * Rule<op>::dx(static_cast<double>(x), static_cast<double>(y), static_cast<double>(zz)));
        });
        c.give(0, detail::sum_to(full, x_.shape()));
      }
      if (c.needs(1)) {
        Tensor full = map4<T>(x_, y_, z, g, [](T x, T y, T zz, T gg) {
          return static_cast<T>(gg * Rule<op>::dy(static_cast<double>(x), static_cast<double>(y), static_cast<double>(zz)));
        });
        c.give(1, detail::sum_to(full, y_.shape()));
      }
    });
  }
  Tensor jvp(OpCtx&, const std::vector<Tensor>& t) override {
    const Tensor z(out_);  // (null where the rule does not read it)
    const std::size_t r = out_shape_.size();
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
  Tensor forward_at(OpCtx&, const std::vector<Tensor>& in) override { return binary<op>(in[0], in[1], Rule<op>::name); }

 private:
  Tensor x_, y_;
  Shape xs_, ys_;
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

namespace detail::table {
void Clip::vjp(OpCtx& c, const Tensor& g) const {
  if (c.recorded()) {  // create_graph: g where lo <= x <= hi, recorded (and a result of x: zero_slope)
    c.give(0, where(inside(), g, zero_slope(Slope::Zero, Tensor::zeros({}, g.dtype()), x)));
    return;
  }
  Tensor gx = empty_tensor(x.shape(), x.dtype());
  const std::int64_t n = gx.numel();
  TG_FLOAT_DISPATCH(x.dtype(), T, {
    const T* xp = x.data<T>();
    const T* gp = g.data<T>();
    T* r = gx.data<T>();
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
    for (std::int64_t i = 0; i < n; ++i) r[i] = (xp[i] >= l && xp[i] <= h) ? gp[i] : T(0);
  });
  c.give(0, gx);
}
Tensor Clip::inside() const {
  Tensor m = empty_tensor(x.shape(), DType::Bool);
  TG_FLOAT_DISPATCH(x.dtype(), T, {
    const T* xp = x.data<T>();
    bool* mp = m.data<bool>();
    for (std::int64_t i = 0; i < x.numel(); ++i) mp[i] = xp[i] >= static_cast<T>(lo) && xp[i] <= static_cast<T>(hi);
  });
  return m;
}
Tensor Where::jvp(OpCtx& c, const Ins& t) const {
  const std::size_t r = c.out_shape().size();
  const DType dt = t[1].defined() ? t[1].dtype() : t[2].dtype();
  const Tensor ta = t[1].defined() ? tangent_as_rank(t[1], r) : weak_scalar(0.0, dt);
  const Tensor tb = t[2].defined() ? tangent_as_rank(t[2], r) : weak_scalar(0.0, dt);
  return where(cond, ta, tb);
}
}  // namespace detail::table

void set_autocast(bool enabled, DType dtype) {
  if (!is_half(dtype))
    throw ValueError(std::string("tapegrad: autocast runs in float16 or bfloat16, not ") + dtype_name(dtype));
  detail::tls_autocast = AutocastState{enabled, dtype};
}

namespace detail {
Tensor autocast_lower(const Tensor& x) {
  const AutocastState& a = tls_autocast;
  return a.enabled && is_floating(x.dtype()) && x.dtype() != a.dtype ? astype(x, a.dtype) : x;
}
Tensor autocast_wide(const Tensor& x) {
  return tls_autocast.enabled && is_half(x.dtype()) ? astype(x, DType::Float32) : x;
}
}  // namespace detail

Tensor astype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor r = convert(x, dtype);
  if (r.same(x)) r = detail::view_as_shape(x, x.shape());
  if (!is_floating(dtype)) return r;
  Recorder rec({&x}, "astype");
  if (!rec.on()) return r;
  return rec.record(make_op(tbl::Astype{}), r);
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
  return rec.record(make_op(tbl::Clip{x, lo, hi}), z);
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
  return rec.record(make_op(tbl::Where{c, a.shape(), b.shape()}), z);
}
Tensor where(const Tensor& cond, const Tensor& a, double b) { return where(cond, a, weak_scalar(b, a.dtype())); }
Tensor where(const Tensor& cond, double a, const Tensor& b) { return where(cond, weak_scalar(a, b.dtype()), b); }

}  // namespace tapegrad
