// Shape ops and indexing: reshape, transpose, squeeze, broadcast_to, take, strided slices,
// concatenate and stack.
#include <algorithm>
#include <cstring>
#include <numeric>
#include "ops/table.hpp"

namespace tapegrad {

using detail::view_as_shape;
using detail::batched_shape;
using detail::batched_index;

namespace {

// dst[...] = src[...] element by element where dst is contiguous and src is read with
// `src_strides` from `src_base` (element units), over `shape`.
void strided_copy(const Tensor& src, std::int64_t src_base, const std::vector<std::int64_t>& src_strides,
                  const Tensor& dst, const Shape& shape) {
  const char* s = static_cast<const char*>(src.raw_data());
  char* d = static_cast<char*>(dst.raw_data());
  TG_ANY_DISPATCH(src.dtype(), T, {
    const T* sp = reinterpret_cast<const T*>(s) + src_base;
    T* dp = reinterpret_cast<T*>(d);
    for_each_row<2>(shape, {src_strides, contiguous_strides(shape)},
                    [&](const std::array<std::int64_t, 2>& b, std::int64_t len, const std::array<std::int64_t, 2>& in) {
                      if (in[0] == 1 && len >= 32) {  // (short rows, as conv's windows: a call each costs more)
                        std::memcpy(dp + b[1], sp + b[0], static_cast<std::size_t>(len) * sizeof(T));
                      } else {
                        for (std::int64_t i = 0; i < len; ++i) dp[b[1] + i] = sp[b[0] + i * in[0]];
                      }
                    });
  });
}

// Whether a slice of shape `s`, read with element strides `st` from a contiguous tensor of
// shape `in`, is one contiguous run of its memory.
bool contiguous_run(const Shape& in, const Shape& s, const std::vector<std::int64_t>& st) {
  const auto cs = contiguous_strides(in);
  std::size_t d = 0;
  while (d < s.size() && s[d] == 1) ++d;                    // leading single-element axes
  if (d < s.size() && st[d] != cs[d]) return false;         // the first longer axis: step 1
  for (std::size_t e = d + 1; e < s.size(); ++e)
    if (s[e] != in[e] || st[e] != cs[e]) return false;      // the rest: whole axes
  return true;
}

}  // namespace

namespace detail::table {
std::vector<std::int64_t> batched_strides(const std::vector<std::int64_t>& st, std::int64_t numel) {
  std::vector<std::int64_t> r{numel};
  r.insert(r.end(), st.begin(), st.end());
  return r;
}

Tensor Transpose::forward(OpCtx&, const Ins& x) const {
  std::vector<int> perm(inverse.size(), 0);
  for (std::size_t i = 0; i < inverse.size(); ++i) perm[static_cast<std::size_t>(inverse[i])] = static_cast<int>(i);
  return transpose(x[0], perm);
}
Tensor Transpose::jvp(OpCtx&, const Ins& t) const {
  std::vector<int> perm(inverse.size() + 1, 0);  // the forward permutation, after the K axis
  for (std::size_t i = 0; i < inverse.size(); ++i) perm[static_cast<std::size_t>(inverse[i]) + 1] = static_cast<int>(i) + 1;
  return transpose(t[0], perm);
}

void Concat::vjp(OpCtx& c, const Tensor& g) const {
  std::int64_t off = 0;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    if (c.needs(k)) c.give(k, slice(g, axis, off, off + sizes[k], 1));
    off += sizes[k];
  }
}
Tensor Concat::jvp(OpCtx& c, const Ins& t) const {
  std::int64_t K = 0;
  DType dt = c.out_dtype();
  for (const Tensor& tk : t)
    if (tk.defined()) K = tk.shape()[0], dt = tk.dtype();
  std::vector<Tensor> parts;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    if (t[k].defined()) {
      parts.push_back(t[k]);
      continue;
    }
    Shape s = batched_shape(K, c.out_shape());
    s[static_cast<std::size_t>(axis) + 1] = sizes[k];
    parts.push_back(Tensor::zeros(s, dt));
  }
  return concatenate(parts, axis + 1);
}
}  // namespace detail::table

using detail::table::gather_strided;
using detail::table::scatter_strided;
using detail::table::scatter_add;
using detail::make_op;
namespace tbl = detail::table;

Tensor reshape(const Tensor& x, const Shape& shape0) {
  Shape shape = shape0;
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      if (infer >= 0) throw ValueError("tapegrad: reshape: only one dimension can be -1, in " + shape_str(shape0));
      infer = static_cast<int>(d);
    } else if (shape[d] < 0) {
      throw ValueError("tapegrad: reshape: negative dimension in " + shape_str(shape0));
    }
  }
  {
    Shape given = shape0;  // the -1 as 1, for the bound on the others
    if (infer >= 0) given[static_cast<std::size_t>(infer)] = 1;
    known = detail::checked_numel(given, "reshape: ");
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0)
      throw ValueError("tapegrad: reshape: cannot reshape a tensor of shape " + shape_str(x.shape()) + " into " +
                  shape_str(shape0));
    shape[static_cast<std::size_t>(infer)] = x.numel() / known;
  } else if (known != x.numel()) {
    throw ValueError("tapegrad: reshape: cannot reshape a tensor of shape " + shape_str(x.shape()) + " (" +
                std::to_string(x.numel()) + " elements) into " + shape_str(shape0));
  }
  Recorder rec({&x}, "reshape");
  Tensor r = view_as_shape(x, shape);
  if (!rec.on()) return r;
  return rec.record(make_op(tbl::Reshape{x.shape()}), r);
}

Tensor transpose(const Tensor& x, const std::vector<int>& axes0) {
  const int n = x.ndim();
  std::vector<int> axes = axes0;
  if (axes.empty()) {
    for (int i = n - 1; i >= 0; --i) axes.push_back(i);
  }
  if (static_cast<int>(axes.size()) != n)
    throw_error("tapegrad: transpose: " + std::to_string(axes.size()) + " axes for a tensor of shape " +
                shape_str(x.shape()));
  std::vector<int> inverse(static_cast<std::size_t>(n), -1);
  for (int i = 0; i < n; ++i) {
    const int a = detail::normalize_axis(axes[static_cast<std::size_t>(i)], n, "transpose");
    if (inverse[static_cast<std::size_t>(a)] != -1)
      throw_error("tapegrad: transpose: axis " + std::to_string(a) + " appears twice");
    inverse[static_cast<std::size_t>(a)] = i;
    axes[static_cast<std::size_t>(i)] = a;
  }
  Shape shape(static_cast<std::size_t>(n));
  std::vector<std::int64_t> st(static_cast<std::size_t>(n));
  const auto xs = contiguous_strides(x.shape());
  for (int i = 0; i < n; ++i) {
    shape[static_cast<std::size_t>(i)] = x.shape()[static_cast<std::size_t>(axes[static_cast<std::size_t>(i)])];
    st[static_cast<std::size_t>(i)] = xs[static_cast<std::size_t>(axes[static_cast<std::size_t>(i)])];
  }
  Recorder rec({&x}, "transpose");
  Tensor r = empty_tensor(shape, x.dtype());
  strided_copy(x, 0, st, r, shape);
  if (!rec.on()) return r;
  return rec.record(make_op(tbl::Transpose{inverse}), r);
}

Tensor squeeze(const Tensor& x, const Axes& axes) {
  Shape shape;
  if (axes.all) {
    for (std::int64_t d : x.shape())
      if (d != 1) shape.push_back(d);
  } else {
    const std::vector<int> ax = detail::normalize_axes(axes, x.ndim(), "squeeze");
    for (int a : ax)
      if (x.shape()[static_cast<std::size_t>(a)] != 1)
        throw_error("tapegrad: squeeze: axis " + std::to_string(a) + " of shape " + shape_str(x.shape()) +
                    " does not have length 1");
    for (std::size_t d = 0; d < x.shape().size(); ++d)
      if (std::find(ax.begin(), ax.end(), static_cast<int>(d)) == ax.end()) shape.push_back(x.shape()[d]);
  }
  return reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, int axis) {
  const int a = detail::normalize_axis(axis, x.ndim() + 1, "unsqueeze");
  Shape shape = x.shape();
  shape.insert(shape.begin() + a, 1);
  return reshape(x, shape);
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const Shape b = shape.size() >= x.shape().size() ? broadcast_shapes(x.shape(), shape, "broadcast_to") : Shape{};
  if (shape.size() < x.shape().size() || b != shape)
    throw_error("tapegrad: broadcast_to: cannot broadcast a tensor of shape " + shape_str(x.shape()) + " to " +
                shape_str(shape));
  Recorder rec({&x}, "broadcast_to");
  Tensor r = empty_tensor(shape, x.dtype());
  strided_copy(x, 0, broadcast_strides(x.shape(), shape), r, shape);
  if (!rec.on()) return r;
  return rec.record(make_op(tbl::Broadcast{x.shape()}), r);
}

Tensor take(const Tensor& x, const Tensor& index0) {
  if (index0.dtype() != DType::Int64 && index0.dtype() != DType::Bool)
    throw_error(std::string("tapegrad: take: indices must be int64, not ") + dtype_name(index0.dtype()));
  const Tensor index = convert(index0, DType::Int64);
  const std::int64_t n = x.numel(), m = index.numel();
  Tensor norm = empty_tensor(index.shape(), DType::Int64);
  const std::int64_t* ip = index.data<std::int64_t>();
  std::int64_t* np_ = norm.data<std::int64_t>();
  for (std::int64_t k = 0; k < m; ++k) {
    std::int64_t i = ip[k];
    if (i < -n || i >= n)
      throw IndexError("tapegrad: index " + std::to_string(i) + " is out of bounds for a tensor of " +
                       std::to_string(n) + " elements (shape " + shape_str(x.shape()) + ")");
    np_[k] = i < 0 ? i + n : i;
  }
  Recorder rec({&x}, "take");
  Tensor r = empty_tensor(index.shape(), x.dtype());
  TG_ANY_DISPATCH(x.dtype(), T, {
    const T* s = x.data<T>();
    T* d = r.data<T>();
    for (std::int64_t k = 0; k < m; ++k) d[k] = s[np_[k]];
  });
  if (!rec.on()) return r;
  return rec.record(make_op(tbl::Take{x.shape(), norm}), r);
}

Tensor strided(const Tensor& x, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& step,
               const Shape& shape) {
  const std::size_t n = x.shape().size();
  if (start.size() != n || step.size() != n || shape.size() != n)
    throw_error("tapegrad: strided: one start, step and length per axis of " + shape_str(x.shape()));
  const auto xs = contiguous_strides(x.shape());
  std::int64_t base = 0;
  std::vector<std::int64_t> st(n);
  bool empty = false;
  for (std::size_t d = 0; d < n; ++d) {
    if (shape[d] < 0) throw_error("tapegrad: strided: negative length");
    if (shape[d] == 0) {
      empty = true;
      continue;
    }
    const std::int64_t last = start[d] + (shape[d] - 1) * step[d];
    if (start[d] < 0 || start[d] >= x.shape()[d] || last < 0 || last >= x.shape()[d])
      throw IndexError("tapegrad: strided: axis " + std::to_string(d) + " reads outside a tensor of shape " +
                       shape_str(x.shape()));
    base += start[d] * xs[d];
    st[d] = step[d] * xs[d];
  }
  if (empty) {
    base = 0;
    std::fill(st.begin(), st.end(), 0);
  }
  return gather_strided(x, base, st, shape);
}

namespace detail::table {
Tensor gather_strided(const Tensor& x, std::int64_t base, const std::vector<std::int64_t>& st, const Shape& shape) {
  const bool empty = shape_numel(shape) == 0;
  Recorder rec({&x}, "getitem");
  Tensor r;
  if (!empty && contiguous_run(x.shape(), shape, st)) {
    // One contiguous run of x (x[1:], x[2], x[3:5, :]): a view of x's memory, as NumPy's.
    r = view_as_shape(x, shape);
    r.impl().data = static_cast<char*>(x.raw_data()) + static_cast<std::size_t>(base) * dtype_size(x.dtype());
  } else {
    r = empty_tensor(shape, x.dtype());
    if (!empty) strided_copy(x, base, st, r, shape);
  }
  if (!rec.on()) return r;
  return rec.record(make_op(Strided{x.shape(), base, st}), r);
}

Tensor scatter_strided(const Tensor& g, const Shape& shape, std::int64_t base, const std::vector<std::int64_t>& st) {
  Recorder rec({&g}, "getitem backward");
  Tensor gx;
  if (contiguous_run(shape, g.shape(), st)) {
    // One contiguous block (the gradient of x[1:], x[2:5, :]): zeros around one copy.
    gx = empty_tensor(shape, g.dtype());
    const std::size_t es = dtype_size(g.dtype());
    char* d = static_cast<char*>(gx.raw_data());
    const std::size_t total = static_cast<std::size_t>(gx.numel()) * es;
    const std::size_t before = g.numel() == 0 ? total : static_cast<std::size_t>(base) * es;
    const std::size_t inside = static_cast<std::size_t>(g.numel()) * es;
    std::memset(d, 0, before);
    if (inside) std::memcpy(d + before, g.raw_data(), inside);
    std::memset(d + before + inside, 0, total - before - inside);
    if (!rec.on()) return gx;
    return rec.record(make_op(ScatterStrided{g.shape(), base, st}), gx);
  }
  // summed: positions the strides reach twice (overlapping windows: conv's im2col) add up
  gx = Tensor::zeros(shape, g.dtype());
  TG_FLOAT_DISPATCH(g.dtype(), T, {
    T* d = gx.data<T>() + base;
    const T* src = g.data<T>();
    for_each_row<2>(g.shape(), {st, contiguous_strides(g.shape())},
                    [&](const std::array<std::int64_t, 2>& b, std::int64_t len, const std::array<std::int64_t, 2>& in) {
                      for (std::int64_t i = 0; i < len; ++i) d[b[0] + i * in[0]] += src[b[1] + i * in[1]];
                    });
  });
  if (!rec.on()) return gx;
  return rec.record(make_op(ScatterStrided{g.shape(), base, st}), gx);
}

Tensor scatter_add(const Tensor& g, const Tensor& index, const Shape& shape) {
  Recorder rec({&g}, "take backward");
  Tensor gx = Tensor::zeros(shape, g.dtype());
  const std::int64_t* ix = index.data<std::int64_t>();
  const std::int64_t n = index.numel();
  TG_FLOAT_DISPATCH(g.dtype(), T, {
    T* d = gx.data<T>();
    const T* src = g.data<T>();
    for (std::int64_t k = 0; k < n; ++k) d[ix[k]] += src[k];
  });
  if (!rec.on()) return gx;
  return rec.record(make_op(ScatterAdd{index}), gx);
}
}  // namespace detail::table

Tensor put_add(const Tensor& src, const Tensor& index0, const Shape& shape) {
  if (index0.dtype() != DType::Int64)
    throw TypeError(std::string("tapegrad: put_add: indices must be int64, not ") + dtype_name(index0.dtype()));
  if (!is_floating(src.dtype()))
    throw TypeError(std::string("tapegrad: put_add: values must be float32 or float64, not ") + dtype_name(src.dtype()));
  if (index0.numel() != src.numel())
    throw ValueError("tapegrad: put_add: " + std::to_string(index0.numel()) + " indices (shape " +
                     shape_str(index0.shape()) + ") for " + std::to_string(src.numel()) + " values (shape " +
                     shape_str(src.shape()) + ")");
  const std::int64_t n = detail::checked_numel(shape, "put_add: ");
  Tensor index = empty_tensor(index0.shape(), DType::Int64);
  const std::int64_t* ip = index0.data<std::int64_t>();
  std::int64_t* np_ = index.data<std::int64_t>();
  for (std::int64_t k = 0; k < index0.numel(); ++k) {
    const std::int64_t i = ip[k];
    if (i < -n || i >= n)
      throw IndexError("tapegrad: index " + std::to_string(i) + " is out of bounds for a tensor of " +
                       std::to_string(n) + " elements (shape " + shape_str(shape) + ")");
    np_[k] = i < 0 ? i + n : i;
  }
  return scatter_add(src, index, shape);
}

Tensor slice(const Tensor& x, int axis, std::int64_t start, std::int64_t stop, std::int64_t step) {
  const int a = detail::normalize_axis(axis, x.ndim(), "slice");
  if (step == 0) throw_error("tapegrad: slice: the step cannot be zero");
  const std::int64_t len = x.shape()[static_cast<std::size_t>(a)];
  // Python's slice.indices().
  auto clampi = [&](std::int64_t v, bool is_start) {
    if (v < 0) v += len;
    if (step > 0) return std::clamp<std::int64_t>(v, 0, len);
    (void)is_start;
    return std::clamp<std::int64_t>(v, -1, len - 1);
  };
  start = clampi(start, true);
  stop = clampi(stop, false);
  std::int64_t count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                                : (start > stop ? (start - stop - step - 1) / (-step) : 0);
  std::vector<std::int64_t> starts(static_cast<std::size_t>(x.ndim()), 0), steps(starts.size(), 1);
  Shape shape = x.shape();
  starts[static_cast<std::size_t>(a)] = count ? start : 0;
  steps[static_cast<std::size_t>(a)] = step;
  shape[static_cast<std::size_t>(a)] = count;
  return strided(x, starts, steps, shape);
}

Tensor concatenate(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw_error("tapegrad: concatenate: needs at least one tensor");
  const int nd = xs[0].ndim();
  if (nd == 0) throw_error("tapegrad: concatenate: zero-dimensional tensors cannot be concatenated");
  const int a = detail::normalize_axis(axis, nd, "concatenate");
  DType dt = xs[0].dtype();
  Shape shape = xs[0].shape();
  std::vector<std::int64_t> sizes;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const Shape& s = xs[k].shape();
    bool ok = static_cast<int>(s.size()) == nd;
    for (int d = 0; ok && d < nd; ++d)
      if (d != a && s[static_cast<std::size_t>(d)] != shape[static_cast<std::size_t>(d)]) ok = false;
    if (!ok)
      throw_error("tapegrad: concatenate: shapes " + shape_str(xs[0].shape()) + " and " + shape_str(s) +
                  " differ outside axis " + std::to_string(a));
    if (k) {
      shape[static_cast<std::size_t>(a)] += s[static_cast<std::size_t>(a)];
      dt = promote(dt, xs[k].dtype());
    }
    sizes.push_back(s[static_cast<std::size_t>(a)]);
  }
  Recorder rec(xs, "concatenate");
  Tensor r = empty_tensor(shape, dt);
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < a; ++d) outer *= shape[static_cast<std::size_t>(d)];
  for (int d = a + 1; d < nd; ++d) inner *= shape[static_cast<std::size_t>(d)];
  const std::size_t es = dtype_size(dt);
  const std::int64_t row = shape[static_cast<std::size_t>(a)] * inner;
  std::int64_t off = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const Tensor x = convert(xs[k], dt);
    const std::int64_t chunk = sizes[k] * inner;
    const char* s = static_cast<const char*>(x.raw_data());
    char* d = static_cast<char*>(r.raw_data());
    for (std::int64_t o = 0; o < outer; ++o)
      std::memcpy(d + static_cast<std::size_t>(o * row + off) * es, s + static_cast<std::size_t>(o * chunk) * es,
                  static_cast<std::size_t>(chunk) * es);
    off += chunk;
  }
  if (!rec.on()) return r;
  return rec.record(make_op(tbl::Concat{a, sizes}), r);
}

Tensor stack(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw_error("tapegrad: stack: needs at least one tensor");
  const int a = detail::normalize_axis(axis, xs[0].ndim() + 1, "stack");
  std::vector<Tensor> ys;
  ys.reserve(xs.size());
  for (const Tensor& x : xs) {
    if (x.shape() != xs[0].shape())
      throw_error("tapegrad: stack: all tensors must have the same shape, not " + shape_str(xs[0].shape()) +
                  " and " + shape_str(x.shape()));
    ys.push_back(unsqueeze(x, a));
  }
  return concatenate(ys, a);
}

}  // namespace tapegrad
