// Matrix products: matmul (batched, with vectors on either side), dot and outer, on gemm.
#include <algorithm>
#include <cstring>
#include <numeric>
#include "ops/table.hpp"

namespace tapegrad {

using detail::view_as_shape;
using detail::batched_shape;

// --- matrix products ---------------------------------------------------------------------------

namespace {

// C[b] = op(A[b]) op(B[b]) over a batch: A is (batch_a..., r, c), and so on; the batch axes of
// A and B broadcast to `batch`. op(A) is m x k, op(B) is k x n; C is (batch..., m, n).
void batched_gemm(bool ta, bool tb, const Tensor& A, const Tensor& B, const Tensor& C, const Shape& batch,
                  std::int64_t m, std::int64_t n, std::int64_t k) {
  const std::size_t na = A.shape().size(), nb = B.shape().size();
  const Shape ab(A.shape().begin(), A.shape().end() - 2), bb(B.shape().begin(), B.shape().end() - 2);
  const std::int64_t lda = A.shape()[na - 1], ldb = B.shape()[nb - 1];
  const std::int64_t sa = A.shape()[na - 2] * lda, sb = B.shape()[nb - 2] * ldb, sc = m * n;
  if (C.numel() == 0) return;
  if (k == 0) {
    std::memset(C.raw_data(), 0, static_cast<std::size_t>(C.numel()) * dtype_size(C.dtype()));
    return;
  }
  std::vector<std::int64_t> st_a = broadcast_strides(ab, batch), st_b = broadcast_strides(bb, batch);
  for (auto& s : st_a) s *= sa;
  for (auto& s : st_b) s *= sb;
  std::vector<std::int64_t> st_c(batch.size(), 1);
  for (std::size_t d = batch.size(); d-- > 1;) st_c[d - 1] = st_c[d] * batch[d];
  for (auto& s : st_c) s *= sc;
  TG_FLOAT_DISPATCH(C.dtype(), T, {
    const T* ap = A.data<T>();
    const T* bp = B.data<T>();
    T* cp = C.data<T>();
    for_each_row<3>(batch, {st_a, st_b, st_c},
                    [&](const std::array<std::int64_t, 3>& o, std::int64_t len, const std::array<std::int64_t, 3>& in) {
                      for (std::int64_t i = 0; i < len; ++i)
                        detail::gemm(ta, tb, m, n, k, T(1), ap + o[0] + i * in[0], lda, bp + o[1] + i * in[1], ldb,
                                        T(0), cp + o[2] + i * in[2], n);
                    });
  });
}

// The last two axes swapped (a batched transpose).
Tensor swap_last(const Tensor& t) {
  std::vector<int> axes(static_cast<std::size_t>(t.ndim()));
  std::iota(axes.begin(), axes.end(), 0);
  std::swap(axes[axes.size() - 1], axes[axes.size() - 2]);
  return transpose(t, axes);
}

// op(x) op(y) for 2-d x and y, where op transposes when tx / ty is set: one gemm, no copy
// of a transposed operand. Not recorded (callers check that no recording is wanted).
Tensor gemm_2d(const Tensor& x, bool tx, const Tensor& y, bool ty) {
  const std::int64_t m = x.shape()[tx ? 1 : 0], k = x.shape()[tx ? 0 : 1], n = y.shape()[ty ? 0 : 1];
  Tensor c = empty_tensor({m, n}, x.dtype());
  if (c.numel() == 0) return c;
  if (k == 0) return Tensor::zeros({m, n}, x.dtype());
  TG_FLOAT_DISPATCH(x.dtype(), T, {
    detail::gemm(tx, ty, m, n, k, T(1), x.data<T>(), x.shape()[1], y.data<T>(), y.shape()[1], T(0), c.data<T>(), n);
  });
  return c;
}

// x A^T for 2-d x (M, k) and A (m, k): recorded when needed, else one gemm.
Tensor times_transposed(const Tensor& x, const Tensor& a, bool recorded) {
  if (recorded && (x.requires_grad() || a.requires_grad())) return matmul(x, swap_last(a));
  return gemm_2d(convert(x, a.dtype()), false, a, true);
}

Tensor matmul_nd(const Tensor& a0, const Tensor& b0);


// Both operands at least 2-d.
Tensor matmul_nd(const Tensor& a0, const Tensor& b0) {
  const Shape& as = a0.shape();
  const Shape& bs = b0.shape();
  const std::size_t na = as.size(), nb = bs.size();
  if (as[na - 1] != bs[nb - 2])
    throw_error("tapegrad: matmul: shapes " + shape_str(as) + " and " + shape_str(bs) + " do not match (" +
                std::to_string(as[na - 1]) + " != " + std::to_string(bs[nb - 2]) + ")");
  const Shape batch = broadcast_shapes(Shape(as.begin(), as.end() - 2), Shape(bs.begin(), bs.end() - 2), "matmul");
  Recorder rec({&a0, &b0}, "matmul");
  const DType dt = arithmetic_dtype(a0.dtype(), b0.dtype());
  const Tensor a = astype(a0, dt), b = astype(b0, dt);  // recorded: promoted operands stay on the graph
  const std::int64_t m = as[na - 2], k = as[na - 1], n = bs[nb - 1];
  Shape shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  Tensor c = empty_tensor(shape, dt);
  batched_gemm(false, false, a, b, c, batch, m, n, k);
  if (!rec.on()) return c;
  return rec.record(detail::make_op(detail::table::Matmul{a, b, as, bs, batch}), c);
}

// The product of all but the last axis: the rows of x as a matrix.
std::int64_t leading(const Tensor& x) { return shape_numel(Shape(x.shape().begin(), x.shape().end() - 1)); }

}  // namespace

Tensor linear(const Tensor& x0, const Tensor& w0, const Tensor& b0) {
  // under autocast, on 16-bit copies of float32 operands (the bias too, as PyTorch's)
  const Tensor x = detail::autocast_lower(x0), w = detail::autocast_lower(w0);
  const Tensor b = b0.defined() ? detail::autocast_lower(b0) : b0;
  if (w.ndim() != 2 || x.ndim() == 0 || x.shape().back() != w.shape()[1])
    throw ValueError("tapegrad: linear: the input of shape " + shape_str(x.shape()) +
                     " and the weight of shape " + shape_str(w.shape()) +
                     " do not match (the weight is (out_features, in_features), the input (..., in_features))");
  const std::int64_t out = w.shape()[0], in = w.shape()[1];
  if (b.defined() && b.shape() != Shape{out})
    throw ValueError("tapegrad: linear: the bias has shape " + shape_str(b.shape()) + ", not (" +
                     std::to_string(out) + ",) for a weight of shape " + shape_str(w.shape()));
  const bool same = x.dtype() == w.dtype() && (!b.defined() || b.dtype() == w.dtype()) && is_floating(w.dtype());
  if (!same) {  // mixed dtypes: the composition promotes as matmul and + do
    const Tensor y = matmul(x, transpose(w));
    return b.defined() ? add(y, b) : y;
  }
  std::vector<Tensor> inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  Recorder rec(inputs, "linear");
  Shape shape = x.shape();
  shape.back() = out;
  const std::int64_t M = leading(x);
  Tensor y = view_as_shape(gemm_2d(view_as_shape(x, {M, in}), false, w, true), shape);
  if (b.defined() && y.numel() > 0) {
    TG_FLOAT_DISPATCH(y.dtype(), T, {
      T* yp = y.data<T>();
      const T* bp = b.data<T>();
      for (std::int64_t i = 0; i < M; ++i)
        for (std::int64_t j = 0; j < out; ++j) yp[i * out + j] += bp[j];
    });
  }
  if (!rec.on()) return y;
  return rec.record(detail::make_op(detail::table::Linear{x, w, x.shape(), w.shape(), b.defined()}), y);
}

Tensor matmul(const Tensor& a0, const Tensor& b0) {
  const Tensor a = detail::autocast_lower(a0), b = detail::autocast_lower(b0);  // (under autocast)
  if (a.ndim() == 0 || b.ndim() == 0)
    throw_error("tapegrad: matmul: operands must have at least one dimension, not shapes " + shape_str(a.shape()) +
                " and " + shape_str(b.shape()) + " (use * for scalars)");
  // The contracted lengths, checked here so that the error names the shapes as given.
  const std::int64_t ka = a.shape().back(), kb = b.ndim() == 1 ? b.shape()[0] : b.shape()[b.shape().size() - 2];
  if (ka != kb)
    throw_error("tapegrad: matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) + " do not match (" +
                std::to_string(ka) + " != " + std::to_string(kb) + ")");
  const Tensor a2 = a.ndim() == 1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = b.ndim() == 1 ? unsqueeze(b, -1) : b;
  Tensor c = matmul_nd(a2, b2);
  if (a.ndim() == 1 && b.ndim() == 1) return reshape(c, {});
  if (a.ndim() == 1) return squeeze(c, Axes(-2));
  if (b.ndim() == 1) return squeeze(c, Axes(-1));
  return c;
}

Tensor dot(const Tensor& a, const Tensor& b) {
  if (a.ndim() != 1 || b.ndim() != 1)
    throw_error("tapegrad: dot: needs two 1-d tensors, not shapes " + shape_str(a.shape()) + " and " +
                shape_str(b.shape()) + " (use matmul)");
  return matmul(a, b);
}

Tensor outer(const Tensor& a, const Tensor& b) { return reshape(a, {-1, 1}) * reshape(b, {1, -1}); }

// --- the rules of the entries (ops/table.hpp) defined here ----------------------------------

void detail::table::Matmul::vjp(OpCtx& c, const Tensor& g) const {
  if (c.recorded()) {  // create_graph: dA = dC B^T, dB = A^T dC as recorded products
    if (c.needs(0)) c.give(0, detail::sum_to(matmul(g, swap_last(b)), as));
    if (c.needs(1)) c.give(1, detail::sum_to(matmul(swap_last(a), g), bs));
    return;
  }
  const std::size_t na = as.size(), nb = bs.size();
  const std::int64_t m = as[na - 2], k = as[na - 1], n = bs[nb - 1];
  // op(x) op(y) over the batch, (rows, cols) each, summed back to the operand's shape `to`
  auto product = [&](bool tx, bool ty, const Tensor& x, const Tensor& y, std::int64_t rows, std::int64_t cols,
                     std::int64_t inner, const Shape& to) {
    Shape full = batch;
    full.push_back(rows);
    full.push_back(cols);
    Tensor r = empty_tensor(full, g.dtype());
    batched_gemm(tx, ty, x, y, r, batch, rows, cols, inner);
    return detail::sum_to(r, to);
  };
  if (c.needs(0)) c.give(0, product(false, true, g, b, m, k, n, as));  // dA = dC B^T
  if (c.needs(1)) c.give(1, product(true, false, a, g, k, n, m, bs));  // dB = A^T dC
}
Tensor detail::table::Matmul::jvp(OpCtx& c, const Ins& t) const {
  const std::size_t r = c.out_shape().size();
  if (as.back() == 0) {  // an empty inner dimension: the product is zeros, so is its tangent
    const std::int64_t K = (t[0].defined() ? t[0] : t[1]).shape()[0];
    return Tensor::zeros(batched_shape(K, c.out_shape()), c.out_dtype());
  }
  Tensor res;
  if (t[0].defined()) {  // dA B
    const Tensor& ta = t[0];
    if (ta.impl().basis && static_cast<int>(bs.size()) == 2 && static_cast<int>(as.size()) == 2 && as[0] == 1) {
      // A a row (1, k), dA the basis: e_j B is row j of B, so the tangent is B itself.
      res = detail::reshaped(b.clone(), batched_shape(ta.shape()[0], c.out_shape()));
    } else if (static_cast<int>(bs.size()) == 2) {  // one product: (K * batch * m, k) B
      const Tensor p = matmul(detail::reshaped(ta, {ta.numel() / bs[0], bs[0]}), b);
      res = detail::reshaped(p, batched_shape(ta.shape()[0], c.out_shape()));
    } else {
      res = matmul(tangent_as_rank(ta, r), b);
    }
  }
  if (t[1].defined()) {  // A dB
    const Tensor& tb = t[1];
    Tensor term;
    const std::int64_t k = bs[static_cast<int>(bs.size()) - 2], n = bs.back();
    if (tb.impl().basis && static_cast<int>(as.size()) == 2 && static_cast<int>(bs.size()) == 2 && n == 1) {
      // B a column (k, 1), dB the basis: A e_j is column j of A, so the tangent is A^T.
      term = detail::reshaped(swap_last(a), batched_shape(tb.shape()[0], c.out_shape()));
    } else if (static_cast<int>(as.size()) == 2 && n == 1) {  // one product: (K * batch, k) A^T
      const Tensor p = times_transposed(detail::reshaped(tb, {tb.numel() / k, k}), a, c.recorded());
      term = detail::reshaped(p, batched_shape(tb.shape()[0], c.out_shape()));
    } else if (static_cast<int>(as.size()) == 2) {     // (dB^T A^T)^T, one product
      const Tensor p = times_transposed(detail::reshaped(swap_last(tb), {tb.numel() / k, k}), a, c.recorded());
      Shape s = tb.shape();
      s[s.size() - 2] = n;
      s.back() = as[0];
      term = swap_last(detail::reshaped(p, s));
    } else {
      term = matmul(a, tangent_as_rank(tb, r));
    }
    res = res.defined() ? add(res, term) : term;
  }
  return res;
}
Tensor detail::table::Matmul::forward(OpCtx&, const Ins& x) const { return matmul_nd(x[0], x[1]); }

void detail::table::Linear::vjp(OpCtx& c, const Tensor& g) const {
  const std::int64_t out = ws[0], in = ws[1], M = shape_numel(Shape(xs.begin(), xs.end() - 1));
  if (c.recorded()) {  // create_graph: the same products, recorded
    const Tensor g2 = detail::reshaped(g, {M, out});
    if (c.needs(0)) c.give(0, detail::reshaped(matmul(g2, w), xs));
    if (c.needs(1)) c.give(1, matmul(swap_last(g2), detail::reshaped(x, {M, in})));
    if (bias && c.needs(2)) c.give(2, sum(g2, Axes(0)));
    return;
  }
  const Tensor g2 = view_as_shape(g, {M, out});
  if (c.needs(0)) c.give(0, view_as_shape(gemm_2d(g2, false, w, false), xs));     // g W
  if (c.needs(1)) c.give(1, gemm_2d(g2, true, view_as_shape(x, {M, in}), false));       // g^T x
  if (bias && c.needs(2)) c.give(2, detail::sum_to(g2, {out}));
}
Tensor detail::table::Linear::jvp(OpCtx& c, const Ins& t) const {
  const std::size_t r = c.out_shape().size();
  Tensor res;
  if (t[0].defined()) res = linear(t[0], w, Tensor());  // (K, ..., in) W^T
  if (t[1].defined()) {  // x dW^T for each of the K directions
    const std::int64_t in = ws[1], K = t[1].shape()[0];
    const Tensor p = matmul(detail::reshaped(x, {shape_numel(Shape(xs.begin(), xs.end() - 1)), in}), swap_last(t[1]));
    const Tensor term = detail::reshaped(p, batched_shape(K, c.out_shape()));
    res = res.defined() ? add(res, term) : term;
  }
  if (bias && t[2].defined()) {
    const Tensor term = tangent_as_rank(t[2], r);
    res = res.defined() ? add(res, term) : term;
  }
  return res;
}


}  // namespace tapegrad
