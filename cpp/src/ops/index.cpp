// Scans, sorting and selection: cumsum, cumprod, argmax/argmin, sort, topk, max/min along an
// axis with their indices, gather, scatter_add, and the vector norms. Indices are computed here,
// from the values at forward time, in O(n) (scans) or O(n log n) (sorts) per line; a selection's
// record keeps what it selected by (its kind and attributes), not only the offsets it found.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include "ops/table.hpp"

namespace tapegrad {

using detail::batched_index;
using detail::cast_to;
using detail::normalize_axis;
using detail::weak_scalar;
using detail::make_op;
using detail::table::cumsum_dir;
using detail::table::Pick;
using detail::table::Selection;

namespace {

// A contiguous tensor of shape s along axis a: `outer` blocks of `n` elements `inner` apart
// (line (o, i) holds elements o * n * inner + j * inner + i, j < n).
struct Lines {
  std::int64_t outer = 1, n = 1, inner = 1;
  std::int64_t base(std::int64_t line) const { return (line / inner) * n * inner + line % inner; }
  std::int64_t count() const { return outer * inner; }
};
Lines lines_of(const Shape& s, int a) {
  Lines l;
  if (static_cast<std::size_t>(a) >= s.size()) {  // (a 0-d tensor's one axis)
    l.outer = shape_numel(s);
    return l;
  }
  for (int d = 0; d < a; ++d) l.outer *= s[static_cast<std::size_t>(d)];
  l.n = s[static_cast<std::size_t>(a)];
  for (std::size_t d = static_cast<std::size_t>(a) + 1; d < s.size(); ++d) l.inner *= s[d];
  return l;
}

// An axis of x (a 0-d tensor has one, of length 1, as in PyTorch's dim=0 or -1).
int axis_of(const Tensor& x, int axis, const char* op) { return normalize_axis(axis, std::max(x.ndim(), 1), op); }

// The value as an ordering key: 16-bit floats as float, the others as themselves.
template <class T>
auto key(T v) {
  if constexpr (is_half_v<T>) return static_cast<float>(v);
  else return v;
}
template <class K>
bool is_nan(K k) {
  if constexpr (std::is_floating_point_v<K>) return k != k;
  else return false;
}
// a < b in PyTorch's order for sort and topk: NaN above everything, NaNs equal.
template <class K>
bool ordered_before(K a, K b) {
  return !is_nan(a) && (is_nan(b) || a < b);
}

// --- scans ----------------------------------------------------------------------------------

// Running sums (products, with `prod`) of x along axis a, from the end when `reverse`:
// accumulated in double for the floating dtypes and rounded once per element; int64
// (wrapping) for the others.
Tensor scan(const Tensor& x, int a, bool prod, bool reverse) {
  const bool fl = is_floating(x.dtype());
  const Tensor src = fl ? x : convert(x, DType::Int64);
  Tensor r = empty_tensor(x.shape(), src.dtype());
  const Lines l = lines_of(x.shape(), a);
  Unlocked unlocked(x.numel());
  TG_ANY_DISPATCH(src.dtype(), T, {
    if constexpr (!std::is_same_v<T, bool>) {
      const T* s = src.data<T>();
      T* d = r.data<T>();
      using Acc = std::conditional_t<std::is_same_v<T, std::int64_t>, std::uint64_t, double>;  // (uint64 wraps)
      std::vector<Acc> acc(static_cast<std::size_t>(l.inner));
      for (std::int64_t o = 0; o < l.outer; ++o) {
        std::fill(acc.begin(), acc.end(), Acc(prod ? 1 : 0));
        const std::int64_t off = o * l.n * l.inner;
        for (std::int64_t jj = 0; jj < l.n; ++jj) {
          const std::int64_t j = reverse ? l.n - 1 - jj : jj;
          const T* sp = s + off + j * l.inner;
          T* dp = d + off + j * l.inner;
          for (std::int64_t i = 0; i < l.inner; ++i) {
            Acc& c = acc[static_cast<std::size_t>(i)];
            Acc v;
            if constexpr (std::is_same_v<T, std::int64_t>) v = static_cast<std::uint64_t>(sp[i]);
            else v = cast_to<double>(sp[i]);
            c = prod ? c * v : c + v;
            dp[i] = static_cast<T>(c);
          }
        }
      }
    }
  });
  return r;
}

}  // namespace

Tensor detail::table::cumsum_dir(const Tensor& x, int a, bool reverse) {
  Recorder rec({&x}, "cumsum");
  Tensor r = scan(x, a, false, reverse);
  if (!rec.on() || !is_floating(x.dtype())) return r;
  return rec.record(make_op(detail::table::Cumsum{a, reverse}), r);
}

namespace {

// Per line of x along axis a: `before` is set before the line's first zero, `first` at it
// (constants of the rules: they do not depend on x's values but through where its zeros are).
std::pair<Tensor, Tensor> zero_masks(const Tensor& x, int a) {
  Tensor before = empty_tensor(x.shape(), DType::Bool), first = empty_tensor(x.shape(), DType::Bool);
  const Lines l = lines_of(x.shape(), a);
  bool* bp = before.data<bool>();
  bool* fp = first.data<bool>();
  TG_FLOAT_DISPATCH(x.dtype(), T, {
    const T* s = x.data<T>();
    for (std::int64_t line = 0; line < l.count(); ++line) {
      const std::int64_t b = l.base(line);
      bool seen = false;
      for (std::int64_t j = 0; j < l.n; ++j) {
        const std::int64_t e = b + j * l.inner;
        const bool zero = cast_to<double>(s[e]) == 0.0;
        fp[e] = zero && !seen;
        seen = seen || zero;
        bp[e] = !seen;
      }
    }
  });
  return {before, first};
}

bool any_true(const Tensor& m) {
  const bool* p = m.data<bool>();
  return std::any_of(p, p + m.numel(), [](bool b) { return b; });
}

// The products that leave one factor out, along axis a of x: O_m[j - m] = prod_{i <= j, i != m}
// x_i for j >= m, one tensor per m (axis length n - m). O(n^2): the exact derivatives through
// zeros for a create_graph sweep (PyTorch does the same), made of recorded ops.
std::vector<Tensor> omitted_products(const Tensor& x, int a) {
  const std::int64_t n = x.shape()[static_cast<std::size_t>(a)];
  std::vector<Tensor> r;
  for (std::int64_t m = 0; m < n; ++m) {
    const Tensor until = prod(slice(x, a, 0, m), Axes(a), true);  // (1 for m = 0)
    if (m + 1 == n) {
      r.push_back(until);
      continue;
    }
    r.push_back(concatenate({until, until * cumprod(slice(x, a, m + 1, n), a)}, a));
  }
  return r;
}

// --- selections -----------------------------------------------------------------------------

// The flat offsets into x (of x's shape) of what `s` selects, and the indices along the axis
// (the second result of sort, topk, max and min), both of the result's shape.
std::pair<Tensor, Tensor> select_offsets(const Selection& s, const Tensor& x) {
  const int a = s.axis;
  const Lines l = lines_of(x.shape(), a);
  Shape out = x.shape().empty() ? Shape{} : x.shape();
  std::int64_t m = l.n;  // selected per line
  if (s.pick == Pick::Gather) {
    const Tensor& ix = s.index;
    Tensor offsets = empty_tensor(ix.shape(), DType::Int64);
    const std::int64_t* ip = ix.data<std::int64_t>();
    std::int64_t* op = offsets.data<std::int64_t>();
    const Shape& is = ix.shape();
    const auto xs = contiguous_strides(x.shape());
    const std::size_t nd = x.ndim() == 0 ? 0 : is.size();  // (a 0-d x: every offset is 0)
    std::vector<std::int64_t> pos(nd, 0);
    for (std::int64_t e = 0; e < ix.numel(); ++e) {
      std::int64_t off = 0;
      for (std::size_t d = 0; d < nd; ++d) off += (static_cast<int>(d) == a ? ip[e] : pos[d]) * xs[d];
      op[e] = off;
      for (std::size_t d = nd; d-- > 0;) {
        if (++pos[d] < is[d]) break;
        pos[d] = 0;
      }
    }
    return {offsets, Tensor()};
  }
  if (s.pick == Pick::Topk) m = x.ndim() ? s.k : 1;  // (a 0-d tensor's topk is itself for k 0 or 1, as PyTorch's)
  if (s.pick == Pick::Max || s.pick == Pick::Min) m = 1;
  if (!out.empty()) out[static_cast<std::size_t>(a)] = m;
  if ((s.pick == Pick::Max || s.pick == Pick::Min) && !s.flag && !out.empty())
    out.erase(out.begin() + a);
  Tensor offsets = empty_tensor(out, DType::Int64), indices = empty_tensor(out, DType::Int64);
  std::int64_t* op = offsets.data<std::int64_t>();
  std::int64_t* ip = indices.data<std::int64_t>();
  Unlocked unlocked(x.numel());
  TG_ANY_DISPATCH(x.dtype(), T, {
    const T* v = x.data<T>();
    using K = decltype(key(v[0]));
    std::vector<K> keys(static_cast<std::size_t>(l.n));
    std::vector<std::int64_t> order(static_cast<std::size_t>(l.n));
    for (std::int64_t line = 0; line < l.count(); ++line) {
      const std::int64_t b = l.base(line);
      const std::int64_t ob = (line / l.inner) * m * l.inner + line % l.inner;  // the line in the result
      for (std::int64_t j = 0; j < l.n; ++j) keys[static_cast<std::size_t>(j)] = key(v[b + j * l.inner]);
      if (s.pick == Pick::Max || s.pick == Pick::Min) {
        // the first extreme; a NaN wins (the first one), as in PyTorch and NumPy
        std::int64_t best = 0;
        for (std::int64_t j = 1; j < l.n && !is_nan(keys[static_cast<std::size_t>(best)]); ++j) {
          const K c = keys[static_cast<std::size_t>(j)], kb = keys[static_cast<std::size_t>(best)];
          if (is_nan(c) || (s.pick == Pick::Max ? kb < c : c < kb)) best = j;
        }
        op[ob] = b + best * l.inner;
        ip[ob] = best;
        continue;
      }
      std::iota(order.begin(), order.end(), std::int64_t(0));
      const bool down = s.flag;  // sort: descending; topk: largest
      auto less = [&](std::int64_t i, std::int64_t j) {
        const K ki = keys[static_cast<std::size_t>(i)], kj = keys[static_cast<std::size_t>(j)];
        return down ? ordered_before(kj, ki) : ordered_before(ki, kj);
      };
      if (m == l.n) {
        std::stable_sort(order.begin(), order.end(), less);  // ties keep their order (stable=True)
      } else {
        std::partial_sort(order.begin(), order.begin() + m, order.end(), [&](std::int64_t i, std::int64_t j) {
          return less(i, j) || (!less(j, i) && i < j);  // the same order as the stable sort's
        });
      }
      for (std::int64_t j = 0; j < m; ++j) {
        op[ob + j * l.inner] = b + order[static_cast<std::size_t>(j)] * l.inner;
        ip[ob + j * l.inner] = order[static_cast<std::size_t>(j)];
      }
    }
  });
  return {offsets, indices};
}

const char* pick_name(Pick p) {
  switch (p) {
    case Pick::Sort: return "SortBackward0";
    case Pick::Topk: return "TopkBackward0";
    case Pick::Max: return "MaxBackward0";
    case Pick::Min: return "MinBackward0";
    case Pick::Gather: return "GatherBackward0";
  }
  return "SelectBackward";
}

std::pair<Tensor, Tensor> select(const Tensor& x, Selection sel, const char* op);

// What `sel` selects from x, recorded; and the indices along the axis.
std::pair<Tensor, Tensor> select(const Tensor& x, Selection sel, const char* op) {
  Recorder rec({&x}, op);
  auto [offsets, indices] = select_offsets(sel, x);
  Tensor values = empty_tensor(offsets.shape(), x.dtype());
  const std::int64_t* ip = offsets.data<std::int64_t>();
  const std::int64_t n = offsets.numel();
  TG_ANY_DISPATCH(x.dtype(), T, {
    const T* s = x.data<T>();
    T* d = values.data<T>();
    for (std::int64_t e = 0; e < n; ++e) d[e] = s[ip[e]];
  });
  if (rec.on() && is_floating(x.dtype()))
    values = rec.record(make_op(detail::table::Select{std::move(sel), x.shape(), offsets}), values);
  return {values, indices};
}

// The index of the largest (smallest) element of all of x, flattened: the first of ties, the
// first NaN if there is one.
std::int64_t flat_extreme(const Tensor& x, bool largest) {
  std::int64_t best = 0;
  TG_ANY_DISPATCH(x.dtype(), T, {
    const T* v = x.data<T>();
    for (std::int64_t j = 1; j < x.numel() && !is_nan(key(v[best])); ++j) {
      const auto c = key(v[j]), kb = key(v[best]);
      if (is_nan(c) || (largest ? kb < c : c < kb)) best = j;
    }
  });
  return best;
}

// An extreme along an empty axis (or of no elements at all: a < 0) does not exist.
void check_nonempty(const Tensor& x, int a, const char* op) {
  if (a < 0 ? x.numel() == 0 : (x.ndim() > 0 && x.shape()[static_cast<std::size_t>(a)] == 0))
    throw ValueError(std::string("tapegrad: ") + op + ": " +
                     (a < 0 ? std::string("the tensor is empty (shape ") + shape_str(x.shape()) + ")"
                            : "axis " + std::to_string(a) + " of a tensor of shape " + shape_str(x.shape()) +
                                  " is empty") +
                     ": an empty sequence has no extreme");
}

Tensor arg_extreme(const Tensor& x, std::optional<int> axis, bool keepdims, bool largest) {
  const char* op = largest ? "argmax" : "argmin";
  if (!axis) {
    check_nonempty(x, -1, op);
    const std::int64_t i = flat_extreme(x, largest);
    Tensor r = Tensor::full(keepdims ? Shape(x.shape().size(), 1) : Shape{}, static_cast<double>(i), DType::Int64);
    return r;
  }
  const int a = axis_of(x, *axis, op);
  check_nonempty(x, a, op);
  Selection s{largest ? Pick::Max : Pick::Min, a, keepdims, 0, Tensor()};
  return select_offsets(s, x).second;
}

}  // namespace

// --- the rules of the entries (ops/table.hpp) defined here ----------------------------------

namespace detail::table {
const char* Select::grad_fn() const noexcept { return pick_name(sel.pick); }
// (the selection computed afresh from the new values: a sort sorts them again)
Tensor Select::forward(OpCtx&, const Ins& x) const { return select(x[0], sel, grad_fn()).first; }
}  // namespace detail::table

// d(out_j)/d(x_m) = prod_{i <= j, i != m} x_i for m <= j. Before a line's first zero that
// is out_j / x_m; at the first zero k it is out'_j, the running product with x_k taken as 1
// (later zeros make it 0, as they should); after it every term holds x_k = 0. (Those masks
// are right for the values, not for their derivatives: a create_graph sweep through zeros
// takes omitted_products instead.)
void detail::table::Cumprod::vjp(OpCtx& c, const Tensor& g) const {
  const Tensor out = c.out();
  auto [before, first] = zero_masks(x, axis);
  if (!any_true(first)) {
    c.give(0, cumsum_dir(g * out, axis, true) / x);
    return;
  }
  if (c.recorded() && x.ndim() > 0) {
    const std::vector<Tensor> om = omitted_products(x, axis);
    const std::int64_t n = static_cast<std::int64_t>(om.size());
    std::vector<Tensor> parts;
    for (std::int64_t m = 0; m < n; ++m) parts.push_back(sum(slice(g, axis, m, n) * om[static_cast<std::size_t>(m)], Axes(axis), true));
    c.give(0, concatenate(parts, axis));
    return;
  }
  const Tensor one = weak_scalar(1.0, x.dtype());
  const Tensor x_safe = where(before, x, one);
  const Tensor out1 = cumprod(where(first, one, x), axis);
  const Tensor part1 = cumsum_dir(g * out, axis, true) / x_safe;
  const Tensor part2 = cumsum_dir(g * out1, axis, true);
  c.give(0, where(before, part1, where(first, part2, 0.0)));
}
// d out_j = sum_{m <= j} t_m d(out_j)/d(x_m): out_j * cumsum(t / x)_j before the first
// zero k, t_k out'_j from it on.
Tensor detail::table::Cumprod::jvp(OpCtx& c, const Ins& t0) const {
  const Tensor t = tangent_as_rank(t0[0], x.shape().size());
  const Tensor out = c.out();
  const int a = axis + 1;
  auto [before, first] = zero_masks(x, axis);
  if (!any_true(first)) return out * cumsum_dir(t / x, a, false);
  if (c.recorded() && x.ndim() > 0) {
    const std::vector<Tensor> om = omitted_products(x, axis);
    const std::int64_t n = static_cast<std::int64_t>(om.size());
    Tensor r;
    for (std::int64_t m = 0; m < n; ++m) {
      Tensor term = slice(t, a, m, m + 1) * om[static_cast<std::size_t>(m)];  // (K, ..., n - m, ...)
      if (m > 0) {
        Shape zs = term.shape();
        zs[static_cast<std::size_t>(a)] = m;
        term = concatenate({Tensor::zeros(zs, term.dtype()), term}, a);
      }
      r = r.defined() ? r + term : term;
    }
    return r;
  }
  const Tensor one = weak_scalar(1.0, x.dtype());
  const Tensor x_safe = where(before, x, one);
  const Tensor out1 = cumprod(where(first, one, x), axis);
  const Tensor part1 = out * cumsum_dir(where(before, t / x_safe, 0.0), a, false);
  const Tensor part2 = cumsum_dir(where(first, t, 0.0), a, false) * out1;
  return where(before, part1, part2);
}


namespace detail {
Tensor batched_index(const Tensor& index, std::int64_t K, std::int64_t numel) {
  Tensor r = empty_tensor(batched_shape(K, index.shape()), DType::Int64);
  const std::int64_t n = index.numel();
  const std::int64_t* s = index.data<std::int64_t>();
  std::int64_t* d = r.data<std::int64_t>();
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t i = 0; i < n; ++i) d[k * n + i] = s[i] + k * numel;
  return r;
}
}  // namespace detail

// --- the public ops ---------------------------------------------------------------------------

Tensor cumsum(const Tensor& x0, int axis) {
  const Tensor x = detail::autocast_wide(x0);  // (a reduction: float32 under autocast)
  return cumsum_dir(x, axis_of(x, axis, "cumsum"), false);
}

Tensor cumprod(const Tensor& x0, int axis) {
  const Tensor x = detail::autocast_wide(x0);
  const int a = axis_of(x, axis, "cumprod");
  Recorder rec({&x}, "cumprod");
  Tensor r = scan(x, a, true, false);
  if (!rec.on() || !is_floating(x.dtype())) return r;
  return rec.record(make_op(detail::table::Cumprod{x, a}), r);
}

Tensor argmax(const Tensor& x) { return arg_extreme(x, std::nullopt, false, true); }
Tensor argmin(const Tensor& x) { return arg_extreme(x, std::nullopt, false, false); }
Tensor argmax(const Tensor& x, int axis, bool keepdims) { return arg_extreme(x, axis, keepdims, true); }
Tensor argmin(const Tensor& x, int axis, bool keepdims) { return arg_extreme(x, axis, keepdims, false); }

ValuesIndices max_along(const Tensor& x, int axis, bool keepdims) {
  const int a = axis_of(x, axis, "max");
  check_nonempty(x, a, "max");
  auto [v, i] = select(x, Selection{Pick::Max, a, keepdims, 0, Tensor()}, "max");
  return {v, i};
}

ValuesIndices min_along(const Tensor& x, int axis, bool keepdims) {
  const int a = axis_of(x, axis, "min");
  check_nonempty(x, a, "min");
  auto [v, i] = select(x, Selection{Pick::Min, a, keepdims, 0, Tensor()}, "min");
  return {v, i};
}

ValuesIndices sort(const Tensor& x, int axis, bool descending) {
  const int a = axis_of(x, axis, "sort");
  auto [v, i] = select(x, Selection{Pick::Sort, a, descending, 0, Tensor()}, "sort");
  return {v, i};
}

Tensor argsort(const Tensor& x, int axis, bool descending) { return sort(x, axis, descending).indices; }

ValuesIndices topk(const Tensor& x, std::int64_t k, int axis, bool largest) {
  const int a = axis_of(x, axis, "topk");
  const std::int64_t n = x.ndim() ? x.shape()[static_cast<std::size_t>(a)] : 1;
  if (k < 0 || k > n)
    throw ValueError("tapegrad: topk: k = " + std::to_string(k) + " is out of range for a dimension of size " +
                     std::to_string(n));
  auto [v, i] = select(x, Selection{Pick::Topk, a, largest, k, Tensor()}, "topk");
  return {v, i};
}

namespace {
// index as int64 offsets along axis a of x (negative ones from the end), checked against x's
// shape as torch.gather and scatter_add check them; `src` (scatter_add) must cover it too.
Tensor checked_index(const Tensor& x, int a, const Tensor& index0, const char* op, const Tensor* src = nullptr) {
  if (index0.dtype() != DType::Int64)
    throw TypeError(std::string("tapegrad: ") + op + ": the index must be an int64 tensor, not " +
                    dtype_name(index0.dtype()));
  if (index0.ndim() != x.ndim() && x.ndim() > 0)
    throw ValueError(std::string("tapegrad: ") + op + ": the index has " + std::to_string(index0.ndim()) +
                     " dimensions but the tensor has " + std::to_string(x.ndim()) + " (shapes " +
                     shape_str(index0.shape()) + " and " + shape_str(x.shape()) + ")");
  for (int d = 0; d < x.ndim(); ++d) {
    const std::size_t u = static_cast<std::size_t>(d);
    if (d != a && index0.shape()[u] > x.shape()[u])  // (PyTorch's rule)
      throw ValueError(std::string("tapegrad: ") + op + ": the index has shape " + shape_str(index0.shape()) +
                       ", larger than the tensor's " + shape_str(x.shape()) + " along dimension " + std::to_string(d));
    if (src && index0.shape()[u] > src->shape()[u])
      throw ValueError(std::string("tapegrad: ") + op + ": the index has shape " + shape_str(index0.shape()) +
                       ", which src of shape " + shape_str(src->shape()) + " must cover");
  }
  const std::int64_t n = x.ndim() ? x.shape()[static_cast<std::size_t>(a)] : 1;
  Tensor index = empty_tensor(index0.shape(), DType::Int64);
  const std::int64_t* ip = index0.data<std::int64_t>();
  std::int64_t* np_ = index.data<std::int64_t>();
  for (std::int64_t e = 0; e < index.numel(); ++e) {
    const std::int64_t i = ip[e];
    if (i < -n || i >= n)
      throw IndexError(std::string("tapegrad: ") + op + ": index " + std::to_string(i) +
                       " is out of range for dimension " + std::to_string(a) + " of size " + std::to_string(n));
    np_[e] = i < 0 ? i + n : i;
  }
  return index;
}
}  // namespace

Tensor gather(const Tensor& x, int axis, const Tensor& index) {
  const int a = axis_of(x, axis, "gather");
  Tensor ix = checked_index(x, a, index, "gather");
  return select(x, Selection{Pick::Gather, a, false, 0, std::move(ix)}, "gather").first;
}

Tensor scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src0) {
  const int a = axis_of(x, axis, "scatter_add");
  if (src0.ndim() != index.ndim())
    throw ValueError("tapegrad: scatter_add: the index has shape " + shape_str(index.shape()) + ", which src of shape " +
                     shape_str(src0.shape()) + " must cover");
  const Tensor ix = checked_index(x, a, index, "scatter_add", &src0);
  Tensor src = src0;
  if (src.shape() != ix.shape() && src.ndim() > 0) {  // the part of src the index covers
    const std::size_t nd = static_cast<std::size_t>(src.ndim());
    src = strided(src, std::vector<std::int64_t>(nd, 0), std::vector<std::int64_t>(nd, 1), ix.shape());
  }
  if (src.dtype() != x.dtype() && is_floating(x.dtype())) src = astype(src, x.dtype());
  const Tensor offsets = select_offsets(Selection{Pick::Gather, a, false, 0, ix}, x).first;
  return add(x, put_add(src, offsets, x.shape()));
}

Tensor norm(const Tensor& x, double ord, const Axes& axes, bool keepdims) {
  if (!is_floating(x.dtype()))
    throw TypeError(std::string("tapegrad: norm: the tensor must be floating, not ") + dtype_name(x.dtype()));
  if (std::isnan(ord)) throw ValueError("tapegrad: norm: the order is NaN");
  const Tensor a = abs(x);
  if (ord == std::numeric_limits<double>::infinity()) return amax(a, axes, keepdims);
  if (ord == -std::numeric_limits<double>::infinity()) return amin(a, axes, keepdims);
  if (ord == 0.0) {
    NoGrad ng;  // (the count of nonzeros: a step function, its gradient zero)
    return sum(astype(not_equal(a, weak_scalar(0.0, x.dtype())), x.dtype()), axes, keepdims);
  }
  if (ord == 1.0) return sum(a, axes, keepdims);
  const Tensor s = sum(ord == 2.0 ? x * x : pow(a, ord), axes, keepdims);
  // The root has an infinite slope at 0: the norm's gradient at a zero vector is 0, as PyTorch's.
  const Tensor pos = greater(s, weak_scalar(0.0, s.dtype()));
  const Tensor safe = where(pos, s, 1.0);
  return where(pos, ord == 2.0 ? sqrt(safe) : pow(safe, 1.0 / ord), 0.0);
}

}  // namespace tapegrad
