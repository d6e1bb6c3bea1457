// Convolution and pooling: conv, conv_transpose, pad, max_pool, avg_pool, adaptive_avg_pool.
//
// None of them is an entry of the op table: each is composed of entries that are, which is as
// fast as a dedicated rule here and gives every sweep (gradients of any order, tangents, the
// forward at new inputs) from rules already tested:
//
//   zero padding     a strided scatter of x into zeros (ScatterStrided; its reverse is the gather)
//   the windows      a strided gather (Strided) of shape (N, C, *kernel, *out) with strides
//                    (.., dilation * row stride, stride * row stride): im2col without an index
//                    array; its reverse scatters back and sums where windows overlap (col2im)
//   the products     one batched matrix product per group (Matmul: BLAS with the rows as given)
//
// which is how PyTorch's own CPU convolution without a vendor library works (im2col + gemm, and
// col2im for the input's gradient). A transposed convolution is the same pieces in the other
// order: the product first, then the scatter (its overlaps summed), then the crop.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "ops/table.hpp"

namespace tapegrad {

using detail::contiguous_strides;
using detail::weak_scalar;
using detail::table::gather_strided;
using detail::table::scatter_strided;
using detail::make_op;

namespace {

std::string ints_str(const std::vector<std::int64_t>& v) {
  std::string s = "(";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

/// One entry per spatial axis, each at least `least` (stride and dilation 1, padding 0).
void check_per_axis(const std::string& who, const char* what, const std::vector<std::int64_t>& v, std::size_t d,
                    std::int64_t least) {
  if (v.size() != d)
    throw ValueError("tapegrad: " + who + ": " + what + " needs " + std::to_string(d) + " value(s), one per spatial axis, got " +
                     ints_str(v));
  for (std::int64_t e : v) {
    if (e < least)
      throw ValueError("tapegrad: " + who + ": " + what + " must be at least " + std::to_string(least) + ", got " +
                       ints_str(v));
    if (e > (std::int64_t(1) << 31))  // (so that sizes computed from them cannot overflow)
      throw ValueError("tapegrad: " + who + ": " + what + " " + ints_str(v) + " is too large");
  }
}

void check_float_same(const std::string& who, const Tensor& x, const Tensor& w, const char* wname) {
  if (!is_floating(x.dtype()))
    throw TypeError("tapegrad: " + who + ": input must be a floating tensor, got " + dtype_name(x.dtype()));
  if (w.dtype() != x.dtype())
    throw TypeError("tapegrad: " + who + ": input (" + dtype_name(x.dtype()) + ") and " + wname + " (" +
                    dtype_name(w.dtype()) + ") must have the same dtype");
}

/// The windows of xp (lead axes, then d spatial ones): shape (lead..., *kernel, *out) where
/// `kernel_first`, else (lead..., *out, *kernel); window o starts at o * stride, its taps are
/// dilation apart. A view of xp where the windows are one contiguous run, else a copy.
Tensor windows(const Tensor& xp, std::size_t d, const std::vector<std::int64_t>& kernel, const std::vector<std::int64_t>& out,
               const std::vector<std::int64_t>& stride, const std::vector<std::int64_t>& dilation, bool kernel_first) {
  const Shape& s = xp.shape();
  const std::size_t lead = s.size() - d;
  const auto ps = contiguous_strides(s);
  Shape shape(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(lead));
  std::vector<std::int64_t> st(ps.begin(), ps.begin() + static_cast<std::ptrdiff_t>(lead));
  for (int part = 0; part < 2; ++part) {
    const bool taps = (part == 0) == kernel_first;
    for (std::size_t i = 0; i < d; ++i) {
      shape.push_back(taps ? kernel[i] : out[i]);
      st.push_back((taps ? dilation[i] : stride[i]) * ps[lead + i]);
    }
  }
  if (shape_numel(shape) == 0) std::fill(st.begin(), st.end(), 0);
  return gather_strided(xp, 0, st, shape);
}

/// The output length of a window sweep along one axis (PyTorch's formula; ceil_mode drops a
/// last window that would start in the right padding).
std::int64_t out_len(std::int64_t n, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t dil, bool ceil_mode) {
  const std::int64_t span = n + 2 * p - dil * (k - 1) - 1;
  if (span < 0) return 0;
  std::int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (o - 1) * s >= n + p) --o;
  return o;
}

struct Sweep {  // a pooling window sweep over the last d axes of x
  std::size_t d, lead;
  std::vector<std::int64_t> out, before, after;  // the output lengths and each axis' padding
};

Sweep pool_sweep(const std::string& who, const Tensor& x, const PoolOptions& o, bool dilated) {
  const std::size_t d = o.kernel.size();
  if (d == 0) throw ValueError("tapegrad: " + who + ": kernel_size must name at least one axis");
  if (x.ndim() < static_cast<int>(d) + 1)
    throw ValueError("tapegrad: " + who + ": input of shape " + shape_str(x.shape()) + " needs at least " +
                     std::to_string(d + 1) + " axes (channels, then " + std::to_string(d) + " spatial)");
  check_per_axis(who, "kernel_size", o.kernel, d, 1);
  check_per_axis(who, "stride", o.stride, d, 1);
  check_per_axis(who, "padding", o.padding, d, 0);
  check_per_axis(who, "dilation", o.dilation, d, 1);
  if (!dilated && std::any_of(o.dilation.begin(), o.dilation.end(), [](std::int64_t v) { return v != 1; }))
    throw ValueError("tapegrad: " + who + ": has no dilation");
  Sweep sw{d, x.shape().size() - d, {}, {}, {}};
  for (std::size_t i = 0; i < d; ++i) {
    const std::int64_t n = x.shape()[sw.lead + i], k = o.kernel[i], p = o.padding[i], dil = o.dilation[i];
    if (2 * p > dil * (k - 1) + 1)
      throw ValueError("tapegrad: " + who + ": padding " + ints_str(o.padding) + " must be at most half of kernel_size " +
                       ints_str(o.kernel) + (dilated ? " (dilated)" : ""));
    const std::int64_t len = out_len(n, k, o.stride[i], p, dil, o.ceil_mode);
    if (len <= 0)
      throw ValueError("tapegrad: " + who + ": input of shape " + shape_str(x.shape()) + " is too small for kernel_size " +
                       ints_str(o.kernel) + " with padding " + ints_str(o.padding) + ": the output would be empty");
    sw.out.push_back(len);
    sw.before.push_back(p);
    // a ceil_mode window may run past the right padding: pad far enough for it (it is masked)
    sw.after.push_back(std::max(p, (len - 1) * o.stride[i] + dil * (k - 1) + 1 - n - p));
  }
  return sw;
}

/// x padded with zeros on its last d axes (`before` and `after` each).
Tensor pad_spatial(const Tensor& x, const Sweep& sw) {
  std::vector<std::int64_t> b(sw.lead, 0), a(sw.lead, 0);
  b.insert(b.end(), sw.before.begin(), sw.before.end());
  a.insert(a.end(), sw.after.begin(), sw.after.end());
  return pad(x, b, a);
}

/// The padded windows' positions inside [lo, hi) of each axis, as float64 0/1 of shape (*out, *kernel):
/// lo = `before`, hi = before + n (inside the input) or n + 2 * padding (inside the padding).
Tensor window_mask(const Tensor& x, const Sweep& sw, const PoolOptions& o, bool input_only) {
  Shape sp;
  std::vector<std::int64_t> b, a;
  for (std::size_t i = 0; i < sw.d; ++i) {
    const std::int64_t n = x.shape()[sw.lead + i];
    const std::int64_t inside = input_only ? n : n + 2 * o.padding[i];
    sp.push_back(inside);
    b.push_back(input_only ? sw.before[i] : 0);
    a.push_back(sw.before[i] + n + sw.after[i] - b.back() - inside);
  }
  const Tensor m = pad(Tensor::ones(sp), b, a);
  return windows(m, sw.d, o.kernel, sw.out, o.stride, o.dilation, false);
}

/// The checks a convolution and a transposed one share; the number of spatial axes.
std::size_t check_conv(const Tensor& x, const Tensor& w, const ConvOptions& o, const char* layout) {
  const std::string& who = o.name;
  if (w.ndim() < 3)
    throw ValueError("tapegrad: " + who + ": weight of shape " + shape_str(w.shape()) + " needs " + layout);
  const std::size_t d = static_cast<std::size_t>(w.ndim()) - 2;
  if (x.ndim() != static_cast<int>(d) + 2)
    throw ValueError("tapegrad: " + who + ": weight of shape " + shape_str(w.shape()) + " expects an input of " +
                     std::to_string(d + 2) + " axes (N, C, " + std::to_string(d) + " spatial), got " + shape_str(x.shape()));
  check_float_same(who, x, w, "weight");
  check_per_axis(who, "stride", o.stride, d, 1);
  check_per_axis(who, "padding", o.padding, d, 0);
  check_per_axis(who, "dilation", o.dilation, d, 1);
  if (o.groups < 1) throw ValueError("tapegrad: " + who + ": groups must be positive, got " + std::to_string(o.groups));
  return d;
}

Shape with_out(const Tensor& x, const Sweep& sw) {
  Shape s(x.shape().begin(), x.shape().begin() + static_cast<std::ptrdiff_t>(sw.lead));
  s.insert(s.end(), sw.out.begin(), sw.out.end());
  return s;
}

}  // namespace

Tensor pad(const Tensor& x, const std::vector<std::int64_t>& before, const std::vector<std::int64_t>& after) {
  const std::size_t n = x.shape().size();
  if (before.size() != n || after.size() != n)
    throw ValueError("tapegrad: pad: one padding before and after per axis of " + shape_str(x.shape()) + ", got " +
                     ints_str(before) + " and " + ints_str(after));
  // negative padding crops first (as torch.nn.functional.pad)
  std::vector<std::int64_t> start(n), step(n, 1);
  Shape kept(n), padded(n);
  bool crop = false, grow = false;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t lo = std::min<std::int64_t>(before[i], 0), hi = std::min<std::int64_t>(after[i], 0);
    start[i] = -lo;
    kept[i] = x.shape()[i] + lo + hi;
    if (kept[i] < 0)
      throw ValueError("tapegrad: pad: padding " + ints_str(before) + " before and " + ints_str(after) +
                       " after crops axis " + std::to_string(i) + " of " + shape_str(x.shape()) + " below zero length");
    crop = crop || lo < 0 || hi < 0;
    grow = grow || before[i] > 0 || after[i] > 0;
    padded[i] = kept[i] + std::max<std::int64_t>(before[i], 0) + std::max<std::int64_t>(after[i], 0);
  }
  Tensor y = x;
  if (crop) {
    if (shape_numel(kept) == 0) std::fill(start.begin(), start.end(), 0);
    y = shape_numel(kept) == 0 ? Tensor::zeros(kept, x.dtype()) : strided(x, start, step, kept);
  }
  if (!grow) return crop ? y : reshape(x, x.shape());
  if (shape_numel(kept) == 0) return Tensor::zeros(padded, x.dtype());
  const auto ps = contiguous_strides(padded);
  std::int64_t base = 0;
  for (std::size_t i = 0; i < n; ++i) base += std::max<std::int64_t>(before[i], 0) * ps[i];
  return scatter_strided(y, padded, base, ps);
}

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& b, const ConvOptions& o) {
  const std::string& who = o.name;
  const std::size_t d = check_conv(x, w, o, "(out_channels, in_channels / groups, *kernel_size)");
  const std::int64_t G = o.groups, N = x.shape()[0], C = x.shape()[1], O = w.shape()[0];
  if (O % G != 0)
    throw ValueError("tapegrad: " + who + ": out_channels " + std::to_string(O) + " (weight of shape " +
                     shape_str(w.shape()) + ") must be divisible by groups " + std::to_string(G));
  if (C != w.shape()[1] * G)
    throw ValueError("tapegrad: " + who + ": with groups=" + std::to_string(G) + ", weight of shape " + shape_str(w.shape()) +
                     " expects " + std::to_string(w.shape()[1] * G) + " input channels, but the input of shape " +
                     shape_str(x.shape()) + " has " + std::to_string(C));
  if (b.defined()) {
    check_float_same(who, x, b, "bias");
    if (b.shape() != Shape{O})
      throw ValueError("tapegrad: " + who + ": bias of shape " + shape_str(b.shape()) + " must be (" + std::to_string(O) +
                       ",), one per output channel of the weight " + shape_str(w.shape()));
  }
  std::vector<std::int64_t> kernel(w.shape().begin() + 2, w.shape().end()), out;
  for (std::size_t i = 0; i < d; ++i) {
    const std::int64_t len = out_len(x.shape()[2 + i], kernel[i], o.stride[i], o.padding[i], o.dilation[i], false);
    if (len <= 0)
      throw ValueError("tapegrad: " + who + ": input of shape " + shape_str(x.shape()) + " (padding " + ints_str(o.padding) +
                       ") is smaller than the (dilated) kernel of the weight " + shape_str(w.shape()));
    out.push_back(len);
  }
  std::vector<std::int64_t> zb(2, 0);
  zb.insert(zb.end(), o.padding.begin(), o.padding.end());
  const Tensor xp = std::any_of(o.padding.begin(), o.padding.end(), [](std::int64_t p) { return p > 0; }) ? pad(x, zb, zb) : x;
  const std::int64_t Cg = C / G, K = Cg * shape_numel(kernel), L = shape_numel(out);
  // the windows as (G, C / G, *kernel, N, *out): one matrix (K, N L) per group, so that the
  // product is one large GEMM per group rather than N small ones
  const auto ps = contiguous_strides(xp.shape());
  Shape cs{G, Cg};
  std::vector<std::int64_t> st{Cg * ps[1], ps[1]};
  for (std::size_t i = 0; i < d; ++i) {
    cs.push_back(kernel[i]);
    st.push_back(o.dilation[i] * ps[2 + i]);
  }
  cs.push_back(N);
  st.push_back(ps[0]);
  for (std::size_t i = 0; i < d; ++i) {
    cs.push_back(out[i]);
    st.push_back(o.stride[i] * ps[2 + i]);
  }
  const Tensor cols = reshape(gather_strided(xp, 0, st, cs), {G, K, N * L});
  Tensor y = matmul(reshape(w, {G, O / G, K}), cols);  // (G, O / G, N L)
  Shape ys{O, N};
  ys.insert(ys.end(), out.begin(), out.end());
  std::vector<int> perm(d + 2);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[0], perm[1]);
  y = transpose(reshape(y, ys), perm);  // (N, O, *out)
  if (!b.defined()) return y;
  Shape bs(d + 2, 1);
  bs[1] = O;
  return y + reshape(b, bs);
}

Tensor conv_transpose(const Tensor& x, const Tensor& w, const Tensor& b, const ConvOptions& o,
                      const std::vector<std::int64_t>& output_padding) {
  const std::string& who = o.name;
  const std::size_t d = check_conv(x, w, o, "(in_channels, out_channels / groups, *kernel_size)");
  check_per_axis(who, "output_padding", output_padding, d, 0);
  const std::int64_t G = o.groups, N = x.shape()[0], C = x.shape()[1];
  if (C != w.shape()[0])
    throw ValueError("tapegrad: " + who + ": weight of shape " + shape_str(w.shape()) + " expects " +
                     std::to_string(w.shape()[0]) + " input channels, but the input of shape " + shape_str(x.shape()) +
                     " has " + std::to_string(C));
  if (C % G != 0)
    throw ValueError("tapegrad: " + who + ": in_channels " + std::to_string(C) + " must be divisible by groups " +
                     std::to_string(G));
  const std::int64_t O = w.shape()[1] * G;
  if (b.defined()) {
    check_float_same(who, x, b, "bias");
    if (b.shape() != Shape{O})
      throw ValueError("tapegrad: " + who + ": bias of shape " + shape_str(b.shape()) + " must be (" + std::to_string(O) +
                       ",), one per output channel");
  }
  std::vector<std::int64_t> kernel(w.shape().begin() + 2, w.shape().end()), in(x.shape().begin() + 2, x.shape().end());
  Shape full{N, O}, out{N, O};
  std::vector<std::int64_t> start{0, 0}, step(d + 2, 1);
  for (std::size_t i = 0; i < d; ++i) {
    if (output_padding[i] >= std::max(o.stride[i], o.dilation[i]))
      throw ValueError("tapegrad: " + who + ": output_padding " + ints_str(output_padding) +
                       " must be smaller than stride or dilation along each axis");
    const std::int64_t f = (in[i] - 1) * o.stride[i] + o.dilation[i] * (kernel[i] - 1) + 1 + output_padding[i];
    if (f - 2 * o.padding[i] <= 0)
      throw ValueError("tapegrad: " + who + ": padding " + ints_str(o.padding) + " leaves no output for an input of shape " +
                       shape_str(x.shape()) + " and a weight of shape " + shape_str(w.shape()));
    full.push_back(f);
    out.push_back(f - 2 * o.padding[i]);
    start.push_back(o.padding[i]);
  }
  const std::int64_t Cg = C / G, Og = O / G, K = Og * shape_numel(kernel), L = shape_numel(in);
  // each input position's contribution to its window: W^T x, (N, G, O/G * kernel, L) = (N, O, *kernel, *in)
  const Tensor wt = transpose(reshape(w, {G, Cg, K}), {0, 2, 1});
  Shape cs{N, O};
  cs.insert(cs.end(), kernel.begin(), kernel.end());
  cs.insert(cs.end(), in.begin(), in.end());
  const Tensor cols = reshape(matmul(wt, reshape(x, {N, G, Cg, L})), cs);
  // summed into place: tap k of input position s lands at s * stride + k * dilation
  const auto fs = contiguous_strides(full);
  std::vector<std::int64_t> st{fs[0], fs[1]};
  for (std::size_t i = 0; i < d; ++i) st.push_back(o.dilation[i] * fs[2 + i]);
  for (std::size_t i = 0; i < d; ++i) st.push_back(o.stride[i] * fs[2 + i]);
  Tensor y = scatter_strided(cols, full, 0, st);
  if (std::any_of(o.padding.begin(), o.padding.end(), [](std::int64_t p) { return p > 0; })) y = strided(y, start, step, out);
  if (!b.defined()) return y;
  Shape bs(d + 2, 1);
  bs[1] = O;
  return y + reshape(b, bs);
}

ValuesIndices max_pool(const Tensor& x, const PoolOptions& o) {
  // One pass over the windows, padding skipped (it never wins): no padded copy, no window copy;
  // a table entry of its own (MaxPool), whose gradient is one scatter back to the offsets.
  const std::string& who = o.name;
  if (!is_floating(x.dtype()))
    throw TypeError("tapegrad: " + who + ": input must be a floating tensor, got " + std::string(dtype_name(x.dtype())));
  const Sweep sw = pool_sweep(who, x, o, true);
  Recorder rec({&x}, who.c_str());
  // the sweep as a 3-d one (leading axes of length 1 where d < 3)
  std::int64_t n[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, p[3] = {0, 0, 0}, dl[3] = {1, 1, 1}, m[3] = {1, 1, 1};
  for (std::size_t i = 0; i < sw.d; ++i) {
    const std::size_t a = 3 - sw.d + i;
    n[a] = x.shape()[sw.lead + i];
    k[a] = o.kernel[i];
    s[a] = o.stride[i];
    p[a] = o.padding[i];
    dl[a] = o.dilation[i];
    m[a] = sw.out[i];
  }
  const Shape out = with_out(x, sw);
  Tensor values = empty_tensor(out, x.dtype()), offsets = empty_tensor(out, DType::Int64),
         indices = empty_tensor(out, DType::Int64);
  const std::int64_t plane = n[0] * n[1] * n[2], oplane = m[0] * m[1] * m[2];
  const std::int64_t slabs = oplane == 0 ? 0 : values.numel() / oplane;
  // the taps of window o along axis a that fall inside the input: [lo, hi) (the padding skipped)
  std::vector<std::int64_t> lo[3], hi[3];
  for (int a = 0; a < 3; ++a)
    for (std::int64_t w = 0; w < m[a]; ++w) {
      const std::int64_t start = w * s[a] - p[a];
      lo[a].push_back(start < 0 ? (-start + dl[a] - 1) / dl[a] : 0);
      hi[a].push_back(std::min(k[a], start >= n[a] ? 0 : (n[a] - 1 - start) / dl[a] + 1));
    }
  std::int64_t* op = offsets.data<std::int64_t>();
  std::int64_t* ip = indices.data<std::int64_t>();
  const std::int64_t n1 = n[1], n2 = n[2], d0 = dl[0], d1 = dl[1], d2 = dl[2];
  TG_FLOAT_DISPATCH(x.dtype(), T, {
    using Cmp = compute_t<T>;
    const T* xv = x.data<T>();
    T* yv = values.data<T>();
    std::int64_t e = 0;
    for (std::int64_t b = 0; b < slabs; ++b) {
      const T* slab = xv + b * plane;
      for (std::int64_t o0 = 0; o0 < m[0]; ++o0)
        for (std::int64_t o1 = 0; o1 < m[1]; ++o1)
          for (std::int64_t o2 = 0; o2 < m[2]; ++o2, ++e) {
            const std::int64_t z0 = o0 * s[0] - p[0], z1 = o1 * s[1] - p[1], z2 = o2 * s[2] - p[2];
            const std::int64_t l2 = lo[2][static_cast<std::size_t>(o2)], h2 = hi[2][static_cast<std::size_t>(o2)];
            // the first largest; a NaN wins (PyTorch's test: v > best || isnan(v))
            std::int64_t at = -1;
            Cmp best = 0;
            for (std::int64_t k0 = lo[0][static_cast<std::size_t>(o0)]; k0 < hi[0][static_cast<std::size_t>(o0)]; ++k0)
              for (std::int64_t k1 = lo[1][static_cast<std::size_t>(o1)]; k1 < hi[1][static_cast<std::size_t>(o1)]; ++k1) {
                const std::int64_t row = ((z0 + k0 * d0) * n1 + z1 + k1 * d1) * n2 + z2;
                for (std::int64_t k2 = l2; k2 < h2; ++k2) {
                  const std::int64_t j = row + k2 * d2;
                  const Cmp v = static_cast<Cmp>(slab[j]);
                  if (at < 0 || v > best || std::isnan(v)) {
                    best = v;
                    at = j;
                  }
                }
              }
            yv[e] = slab[at];
            op[e] = b * plane + at;
            ip[e] = at;
          }
    }
  });
  if (rec.on()) values = rec.record(make_op(detail::table::MaxPool{o, x.shape(), offsets}), values);
  return {values, indices};
}

Tensor avg_pool(const Tensor& x, const PoolOptions& o, bool count_include_pad, std::int64_t divisor_override) {
  const std::string& who = o.name;
  if (!is_floating(x.dtype()))
    throw TypeError("tapegrad: " + who + ": input must be a floating tensor, got " + std::string(dtype_name(x.dtype())));
  if (divisor_override < 0) throw ValueError("tapegrad: " + who + ": divisor_override must be positive");
  const Sweep sw = pool_sweep(who, x, o, false);
  const bool padded = std::any_of(sw.after.begin(), sw.after.end(), [](std::int64_t p) { return p > 0; });
  const Tensor win = windows(padded ? pad_spatial(x, sw) : x, sw.d, o.kernel, sw.out, o.stride, o.dilation, false);
  std::vector<int> taps;
  for (std::size_t i = 0; i < sw.d; ++i) taps.push_back(static_cast<int>(sw.lead + sw.d + i));
  const Tensor s = sum(win, Axes(taps));
  if (divisor_override > 0) return s / weak_scalar(static_cast<double>(divisor_override), x.dtype());
  const bool uneven = count_include_pad ? [&] {
    for (std::size_t i = 0; i < sw.d; ++i)
      if (sw.after[i] > o.padding[i]) return true;  // (a ceil_mode window past the padding)
    return false;
  }() : padded;
  if (!uneven) return s / weak_scalar(static_cast<double>(shape_numel(o.kernel)), x.dtype());
  // windows that cover the padding count only what they cover: the input (count_include_pad
  // false) or the input and its padding (true; only a ceil_mode window reaches past it)
  std::vector<int> maxes;
  for (std::size_t i = 0; i < sw.d; ++i) maxes.push_back(static_cast<int>(sw.d + i));
  const Tensor count = sum(window_mask(x, sw, o, !count_include_pad), Axes(maxes));
  return s / astype(count, x.dtype());
}

Tensor adaptive_avg_pool(const Tensor& x, const std::vector<std::int64_t>& out, const std::string& who) {
  const std::size_t d = out.size();
  if (!is_floating(x.dtype()))
    throw TypeError("tapegrad: " + who + ": input must be a floating tensor, got " + std::string(dtype_name(x.dtype())));
  if (d == 0 || x.ndim() < static_cast<int>(d) + 1)
    throw ValueError("tapegrad: " + who + ": input of shape " + shape_str(x.shape()) + " needs at least " +
                     std::to_string(d + 1) + " axes (channels, then " + std::to_string(d) + " spatial)");
  check_per_axis(who, "output_size", out, d, 1);
  const std::size_t lead = x.shape().size() - d;
  Tensor y = x;
  // separable: along each axis, the mean over [floor(i n / o), ceil((i + 1) n / o)) is a product
  // with a constant (o, n) matrix of 1 / count (PyTorch's windows, which may overlap)
  for (std::size_t i = d; i-- > 0;) {
    const std::int64_t n = x.shape()[lead + i], m = out[i];
    if (n == 0)
      throw ValueError("tapegrad: " + who + ": input of shape " + shape_str(x.shape()) + " has an empty spatial axis");
    std::vector<double> p(static_cast<std::size_t>(detail::checked_numel({m, n}, (who + ": ").c_str())), 0.0);
    for (std::int64_t a = 0; a < m; ++a) {
      const std::int64_t lo = (a * n) / m, hi = ((a + 1) * n + m - 1) / m;
      for (std::int64_t s = lo; s < hi; ++s) p[static_cast<std::size_t>(a * n + s)] = 1.0 / static_cast<double>(hi - lo);
    }
    const Tensor P = astype(Tensor::from_values(p, {m, n}), x.dtype());
    const int ax = static_cast<int>(lead + i), last = static_cast<int>(x.shape().size()) - 1;
    if (ax == last) {
      y = matmul(y, transpose(P));
    } else if (ax == last - 1) {
      y = matmul(P, y);
    } else {
      std::vector<int> perm(x.shape().size());
      std::iota(perm.begin(), perm.end(), 0);
      std::swap(perm[static_cast<std::size_t>(ax)], perm.back());
      y = transpose(matmul(transpose(y, perm), transpose(P)), perm);
    }
  }
  return y;
}

}  // namespace tapegrad
