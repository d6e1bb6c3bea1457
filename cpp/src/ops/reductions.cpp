// Reductions: sum, mean, prod, amax/amin, var/std, logsumexp, softmax and log_softmax, and
// sum_to (the reverse of broadcasting).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include "ops/table.hpp"

namespace tapegrad {

using detail::weak_scalar;
using detail::make_op;
using detail::view_as_shape;
using detail::reshaped;
namespace tbl = detail::table;

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

// Reduces x (float dtype) over `axes` into a tensor of the kept shape; a sum is divided by
// `divisor` (a mean) in double before it is stored, so that it rounds to x's dtype once.
Tensor reduce(const Tensor& x, const std::vector<int>& axes, Reduce kind, const char* name, double divisor = 1.0) {
  const Shape ks = kept_shape(x.shape(), axes);
  Tensor out = empty_tensor(ks, x.dtype());
  const std::int64_t m = out.numel();
  if ((kind == Reduce::Max || kind == Reduce::Min) && x.numel() == 0 && m > 0)
    throw_error(std::string("tapegrad: ") + name + ": zero-size reduction has no identity (shape " +
                shape_str(x.shape()) + ")");
  Unlocked unlocked(x.numel());
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
    if (divisor != 1.0)
      for (std::int64_t i = 0; i < m; ++i) op[i] = static_cast<T>(ap[i] / divisor);
    else
      for (std::int64_t i = 0; i < m; ++i) op[i] = static_cast<T>(ap[i]);
  });
  return out;
}

Tensor floating(const Tensor& x) { return is_floating(x.dtype()) ? x : convert(x, DType::Float64); }

// Reduces an int64 or bool x exactly, in int64 (wrapping on overflow, as NumPy and PyTorch):
// sums and products are int64, max and min keep x's dtype. Never recorded (not floating).
Tensor int_reduce(const Tensor& x0, const std::vector<int>& axes, Reduce kind, const char* name) {
  const Tensor x = convert(x0, DType::Int64);
  const Shape ks = kept_shape(x.shape(), axes);
  const std::int64_t m = shape_numel(ks);
  if ((kind == Reduce::Max || kind == Reduce::Min) && x.numel() == 0 && m > 0)
    throw_error(std::string("tapegrad: ") + name + ": zero-size reduction has no identity (shape " +
                shape_str(x.shape()) + ")");
  Tensor out = empty_tensor(ks, DType::Int64);
  std::int64_t* ap = out.data<std::int64_t>();
  const std::int64_t init = kind == Reduce::Sum ? 0
                            : kind == Reduce::Prod ? 1
                            : kind == Reduce::Max ? std::numeric_limits<std::int64_t>::min()
                                                  : std::numeric_limits<std::int64_t>::max();
  std::fill(ap, ap + m, init);
  const std::int64_t* xp = x.data<std::int64_t>();
  auto combine = [kind](std::int64_t a, std::int64_t v) -> std::int64_t {
    switch (kind) {
      case Reduce::Sum: return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(v));
      case Reduce::Prod: return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(v));
      case Reduce::Max: return a >= v ? a : v;
      case Reduce::Min: return a <= v ? a : v;
    }
    return a;
  };
  for_each_row<2>(x.shape(), {contiguous_strides(x.shape()), broadcast_strides(ks, x.shape())},
                  [&](const std::array<std::int64_t, 2>& b, std::int64_t len, const std::array<std::int64_t, 2>& in) {
                    for (std::int64_t i = 0; i < len; ++i)
                      ap[b[1] + i * in[1]] = combine(ap[b[1] + i * in[1]], xp[b[0] + i * in[0]]);
                  });
  const bool keep_dtype = kind == Reduce::Max || kind == Reduce::Min;
  return keep_dtype ? convert(out, x0.dtype()) : out;
}

// The reductions record the kept-dims result, then view it without the axes (recorded).
template <class MakeNode>
Tensor reduction(const Tensor& x00, const Axes& axes, bool keepdims, Reduce kind, const char* name, MakeNode make,
                 double divisor = 1.0) {
  // under autocast, sums and products of 16-bit values compute and return float32
  const Tensor x0 = kind == Reduce::Sum || kind == Reduce::Prod ? detail::autocast_wide(x00) : x00;
  const std::vector<int> ax = detail::normalize_axes(axes, x0.ndim(), name);
  if (!is_floating(x0.dtype())) {
    // integers and bools reduce exactly, to integers (bool.sum() is an int64 count)
    const Tensor zk = int_reduce(x0, ax, kind, name);
    return keepdims ? zk : detail::view_as_shape(zk, dropped_shape(x0.shape(), ax));
  }
  Recorder rec({&x0}, name);
  const Tensor x = floating(x0);
  const Tensor zk = reduce(x, ax, kind, name, divisor);
  const Tensor out = keepdims ? zk : detail::view_as_shape(zk, dropped_shape(x.shape(), ax));
  if (!rec.on()) return out;
  return rec.record(make(x, zk, ax), out);
}

// The float32 copy of a 16-bit x (composite ops compute in float32 and store x's dtype).
Tensor widened(const Tensor& x) { return is_half(x.dtype()) ? convert(x, DType::Float32) : x; }

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
                   [](const Tensor& xx, const Tensor& zk, const std::vector<int>& ax) {
                     return make_op(tbl::Sum{xx.shape(), zk.shape(), ax});
                   });
}

Tensor mean(const Tensor& x, const Axes& axes, bool keepdims) {
  const std::vector<int> ax = detail::normalize_axes(axes, x.ndim(), "mean");
  std::int64_t count = 1;
  for (int a : ax) count *= x.shape()[static_cast<std::size_t>(a)];
  const double n = static_cast<double>(count);  // (0 for an empty slice: 0 / 0 is NaN, as NumPy's)
  if (!is_floating(x.dtype())) return sum(x, axes, keepdims) * (1.0 / n);  // an int64 sum, then float64
  return reduction(
      x, axes, keepdims, Reduce::Sum, "mean",
      [n](const Tensor& xx, const Tensor& zk, const std::vector<int>& axs) {
        return make_op(tbl::Sum{xx.shape(), zk.shape(), axs, n, true, "MeanBackward0"});
      },
      n);
}

Tensor amax(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduction(x, axes, keepdims, Reduce::Max, "max",
                   [](const Tensor& xx, const Tensor& zk, const std::vector<int>& ax) {
                     return make_op(tbl::Extreme{xx, zk, ax, true});
                   });
}

Tensor amin(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduction(x, axes, keepdims, Reduce::Min, "min",
                   [](const Tensor& xx, const Tensor& zk, const std::vector<int>& ax) {
                     return make_op(tbl::Extreme{xx, zk, ax, false});
                   });
}

Tensor prod(const Tensor& x, const Axes& axes, bool keepdims) {
  return reduction(x, axes, keepdims, Reduce::Prod, "prod",
                   [](const Tensor& xx, const Tensor& zk, const std::vector<int>& ax) {
                     return make_op(tbl::Prod{xx, zk, ax});
                   });
}

Tensor var(const Tensor& x, const Axes& axes, int ddof, bool keepdims) {
  // 16-bit values: computed in float32 and rounded once, as PyTorch's (under autocast, as
  // every reduction of 16-bit values there, the float32 result is the result)
  if (is_half(x.dtype())) {
    const Tensor wide = var(astype(x, DType::Float32), axes, ddof, keepdims);
    return detail::tls_autocast.enabled ? wide : astype(wide, x.dtype());
  }
  const std::vector<int> ax = detail::normalize_axes(axes, x.ndim(), "var");
  std::int64_t count = 1;
  for (int a : ax) count *= x.shape()[static_cast<std::size_t>(a)];
  const Tensor d = x - mean(x, axes, true);
  // NumPy's and PyTorch's divisor max(n - ddof, 0): no data left gives inf (or nan for 0/0).
  const double divisor = static_cast<double>(std::max<std::int64_t>(count - ddof, 0));
  if (!is_floating(d.dtype())) return sum(d * d, axes, keepdims) * (1.0 / divisor);
  return reduction(
      d * d, axes, keepdims, Reduce::Sum, "var",
      [divisor](const Tensor& xx, const Tensor& zk, const std::vector<int>& axs) {
        return make_op(tbl::Sum{xx.shape(), zk.shape(), axs, divisor, true, "VarBackward0"});
      },
      divisor);
}

namespace {
// std's square root of var's v (recorded as StdSqrt: its derivative is 0 where the result is 0).
Tensor std_sqrt(const Tensor& v) {
  Recorder rec({&v}, "std");
  Tensor z;
  {
    NoGrad ng;
    z = sqrt(v);
  }
  if (!rec.on()) return z;
  return rec.record(make_op(tbl::StdSqrt{}), z);
}
}  // namespace

Tensor std(const Tensor& x, const Axes& axes, int ddof, bool keepdims) {
  if (is_half(x.dtype())) {
    const Tensor wide = std(astype(x, DType::Float32), axes, ddof, keepdims);
    return detail::tls_autocast.enabled ? wide : astype(wide, x.dtype());
  }
  return std_sqrt(var(x, axes, ddof, keepdims));
}

Tensor logsumexp(const Tensor& x00, const Axes& axes, bool keepdims) {
  const Tensor x0 = detail::autocast_wide(x00);  // (float32 under autocast)
  const std::vector<int> ax = detail::normalize_axes(axes, x0.ndim(), "logsumexp");
  Recorder rec({&x0}, "logsumexp");
  const Tensor x = floating(x0);
  const Tensor zk = convert(lse_kept(widened(x), ax), x.dtype());
  const Tensor out = keepdims ? zk : detail::view_as_shape(zk, dropped_shape(x.shape(), ax));
  if (!rec.on()) return out;
  return rec.record(make_op(tbl::Logsumexp{x, zk, ax}), out);
}

Tensor softmax(const Tensor& x00, int axis) {
  const Tensor x0 = detail::autocast_wide(x00);  // (float32 under autocast)
  const int ax = detail::normalize_axis(axis, x0.ndim(), "softmax");
  Recorder rec({&x0}, "softmax");
  const Tensor x = floating(x0);
  Tensor y;
  {
    NoGrad ng;
    if (x.numel() == 0) {  // an empty axis, or empty elsewhere: nothing to normalise
      y = x.clone();
    } else {
      const Tensor xw = widened(x);
      const Tensor e = exp(xw - reduce(xw, {ax}, Reduce::Max, "softmax"));
      y = convert(e / reduce(e, {ax}, Reduce::Sum, "softmax"), x.dtype());
    }
  }
  if (!rec.on()) return y;
  return rec.record(make_op(tbl::Softmax{ax}), y);
}

Tensor log_softmax(const Tensor& x00, int axis) {
  const Tensor x0 = detail::autocast_wide(x00);  // (float32 under autocast)
  const int ax = detail::normalize_axis(axis, x0.ndim(), "log_softmax");
  Recorder rec({&x0}, "log_softmax");
  const Tensor x = floating(x0);
  Tensor y;
  {
    NoGrad ng;
    const Tensor xw = widened(x);
    y = convert(xw - lse_kept(xw, {ax}), x.dtype());
  }
  if (!rec.on()) return y;
  return rec.record(make_op(tbl::LogSoftmax{ax}), y);
}

// The reductions' forward steps at new inputs: the same reduction over the same axes, with
// keepdims as the record's output has it.
namespace {
bool kept_dims(const Shape& in, const Shape& out) { return in.size() == out.size(); }
}  // namespace
// --- the rules of the entries (ops/table.hpp) defined here ----------------------------------

namespace detail::table {
Tensor Sum::forward(OpCtx& c, const Ins& x) const {
  const bool keep = kept_dims(in, c.out_shape());
  if (!divided) return sum(x[0], Axes(axes), keep);
  const double d = divisor;
  const char* n = name;
  return reduction(
      x[0], Axes(axes), keep, Reduce::Sum, std::strcmp(n, "MeanBackward0") == 0 ? "mean" : "var",
      [d, n](const Tensor& xx, const Tensor& zk, const std::vector<int>& ax) {
        return make_op(Sum{xx.shape(), zk.shape(), ax, d, true, n});
      },
      d);
}
Tensor Sum::jvp(OpCtx&, const Ins& t) const {
  std::vector<int> ax;
  for (std::size_t d = 0; d < kept.size(); ++d)
    if (kept[d] != in[d]) ax.push_back(static_cast<int>(d) + 1);
  const Tensor s = sum(t[0], Axes(ax), true);
  return divided ? by_divisor(s) : s;
}
Tensor Sum::by_divisor(const Tensor& g) const {
  if (!is_half(g.dtype())) return g / weak_scalar(divisor, g.dtype());
  return astype(astype(g, DType::Float32) / weak_scalar(divisor, DType::Float32), g.dtype());
}

Tensor Extreme::forward(OpCtx& c, const Ins& in) const {
  const bool keep = kept_dims(x.shape(), c.out_shape());
  return max ? amax(in[0], Axes(axes), keep) : amin(in[0], Axes(axes), keep);
}
// d max / dx = the mask where x == max, shared by the ties: mask / count
void Extreme::vjp(OpCtx& c, const Tensor& g) const {
  const Tensor mask = convert(equal(x, zk), x.dtype());
  const Tensor count = view_as_shape(reduce(mask, axes, Reduce::Sum, "amax"), zk.shape());
  c.give(0, mask * (reshaped(g, zk.shape()) / count));
}
Tensor Extreme::jvp(OpCtx&, const Ins& t) const {
  const Tensor mask = convert(equal(x, zk), x.dtype());
  const Tensor count = view_as_shape(reduce(mask, axes, Reduce::Sum, "amax"), zk.shape());
  return sum(mask * t[0], Axes(tangent_axes(axes)), true) / count;
}

Tensor Prod::forward(OpCtx& c, const Ins& in) const { return prod(in[0], Axes(axes), kept_dims(x.shape(), c.out_shape())); }
Tensor Prod::others(OpCtx& c) const {
  // d prod / d x_i = prod of the others: prod / x_i without zeros; with one zero, the
  // product of the nonzero factors at the zero and 0 elsewhere; with two or more, 0.
  const Tensor zero = weak_scalar(0.0, x.dtype()), one = weak_scalar(1.0, x.dtype());
  const Tensor is0 = equal(x, zero);
  const Tensor nzeros = reduce(convert(is0, x.dtype()), axes, Reduce::Sum, "prod");
  const Tensor safe = where(is0, one, x);
  const bool rec = c.recorded();  // create_graph: products recorded, so others depend on x
  const Tensor pnz = rec ? prod(safe, Axes(axes), true) : reduce(safe, axes, Reduce::Prod, "prod");
  const Tensor z = rec ? reshaped(c.out(), zk.shape()) : zk;
  const Tensor none = equal(nzeros, zero), single = equal(nzeros, one);
  return where(none, z / safe, where(single, where(is0, pnz, zero), zero));
}

Tensor Logsumexp::forward(OpCtx& c, const Ins& in) const {
  return logsumexp(in[0], Axes(axes), kept_dims(x.shape(), c.out_shape()));
}

Tensor StdSqrt::forward(OpCtx&, const Ins& x) const { return std_sqrt(x[0]); }
void StdSqrt::vjp(OpCtx& c, const Tensor& g) const {
  const Tensor z = c.out();
  if (c.recorded()) {  // create_graph
    const Tensor zero = weak_scalar(0.0, z.dtype());
    c.give(0, where(equal(z, zero), zero, g * 0.5 / z));
    return;
  }
  Tensor gx = empty_tensor(z.shape(), z.dtype());
  const std::int64_t n = gx.numel();
  TG_FLOAT_DISPATCH(z.dtype(), T, {
    const T* zp = z.data<T>();
    const T* gp = g.data<T>();
    T* r = gx.data<T>();
    for (std::int64_t i = 0; i < n; ++i) r[i] = zp[i] == T(0) ? T(0) : T(gp[i] * 0.5f / zp[i]);
  });
  c.give(0, gx);
}
}  // namespace detail::table

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
