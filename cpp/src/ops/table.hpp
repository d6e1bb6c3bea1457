// The table of tensor ops: every tensor op that is not elementwise, one entry each (the
// elementwise ones are ops.def's rows, recorded as UnaryNode / BinaryNode). An entry is a struct:
//
//   its attributes      the members: what its rules need besides the values (shapes, axes,
//                       the indices a selection picked, the operands a rule reads)
//   reads               which values its rules read: kInputs (the operands it keeps), kOutput
//                       (the result), kCrossed (each of the first two operands only for the
//                       other's gradient: it is kept where the other is recorded); kNone
//   grad_fn()           the name PyTorch gives its backward node
//   forward(c, x)       the forward kernel at new inputs x: the op's own entry point, called with
//                       the attributes (the fourth question; it records only when the sweep does)
//   vjp(c, g)           given d(result) = g, c.give(k, d operand k) for each recorded operand k
//   jvp(c, t)           the result's tangent from the operands' (t[k]: (K, *shape) or undefined
//                       for a zero tangent; the result may broadcast to (K, *result shape))
//
// c is the record and its sweep (OpCtx): c.recorded() says whether the sweep records (the rules
// are written with tensor ops, which then record: a create_graph gradient); c.needs(k),
// c.out(), c.out_shape(), c.out_dtype(). Short rules are written here; longer ones are
// declared here and defined beside the op's kernel (ops/<file>.cpp), with their formula in the
// comment. A record is OpNode<Entry>: one generic node answers the sweeps' questions from the
// entry. TAPEGRAD_TENSOR_OPS lists the entries: it gives each its op id (TensorOp) and its name,
// which the test suite reads (tests/test_op_table.py has one row per entry; a missing row fails).
//
// Adding a tensor op: its kernel (ops/<file>.cpp, recording with make_op<Entry>), its entry
// here and in TAPEGRAD_TENSOR_OPS, and its row in tests/test_op_table.py.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensor/internal.hpp"

namespace tapegrad::detail {

// --- the entries -----------------------------------------------------------------------------

#define TAPEGRAD_TENSOR_OPS(X)                                                                     \
  X(Reshape) X(Transpose) X(Broadcast) X(Take) X(Strided) X(Concat) X(ScatterStrided) X(ScatterAdd) \
  X(Cumsum) X(Cumprod) X(Select) X(MaxPool)                                                        \
  X(Sum) X(Extreme) X(Prod) X(Logsumexp) X(Softmax) X(LogSoftmax) X(StdSqrt)                       \
  X(Matmul) X(Linear)                                                                              \
  X(Astype) X(Clip) X(Where) X(ZeroSlope)

enum class TensorOp : std::uint8_t {
#define TAPEGRAD_X(Name) Name,
  TAPEGRAD_TENSOR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
};

// (tensor_op_names(), the entries' names in TensorOp's order, is declared in tapegrad/tensor.hpp)

namespace table {

enum Reads : unsigned { kNone = 0, kInputs = 1, kOutput = 2, kCrossed = 4 };
using Ins = std::vector<Tensor>;

// Kernels the rules below call (defined in ops/*.cpp). Each records its own entry where an
// operand requires grad and grad mode is on, as every op's entry point does.
/// x's elements at base + i . st, of `shape` (a view where they are one contiguous run).
Tensor gather_strided(const Tensor& x, std::int64_t base, const std::vector<std::int64_t>& st, const Shape& shape);
/// g placed at positions base + i . st of zeros of `shape` (its own reverse is gather_strided).
Tensor scatter_strided(const Tensor& g, const Shape& shape, std::int64_t base, const std::vector<std::int64_t>& st);
/// g added at flat offsets `index` of zeros of `shape` (its own reverse is take).
Tensor scatter_add(const Tensor& g, const Tensor& index, const Shape& shape);
/// The strides (numel, *st): K copies of a strided selection, one after another.
std::vector<std::int64_t> batched_strides(const std::vector<std::int64_t>& st, std::int64_t numel);
/// The running sum along axis a, from the end where `reverse`.
Tensor cumsum_dir(const Tensor& x, int a, bool reverse);

// --- shape and view ops

struct Reshape {  // x viewed with another shape
  static constexpr unsigned reads = kNone;
  Shape in;
  const char* grad_fn() const noexcept { return "ViewBackward0"; }
  Tensor forward(OpCtx& c, const Ins& x) const { return reshape(x[0], c.out_shape()); }
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, reshaped(g, in)); }
  Tensor jvp(OpCtx&, const Ins& t) const { return t[0]; }  // (reshaped by the sweep)
};

struct Transpose {  // axes permuted; `inverse` undoes the permutation
  static constexpr unsigned reads = kNone;
  std::vector<int> inverse;
  const char* grad_fn() const noexcept { return "PermuteBackward0"; }
  Tensor forward(OpCtx& c, const Ins& x) const;
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, transpose(g, inverse)); }
  Tensor jvp(OpCtx& c, const Ins& t) const;  // the forward permutation after the K axis
};

struct Broadcast {  // x broadcast from shape `in`: the gradient sums over the new axes
  static constexpr unsigned reads = kNone;
  Shape in;
  const char* grad_fn() const noexcept { return "ExpandBackward0"; }
  Tensor forward(OpCtx& c, const Ins& x) const { return broadcast_to(x[0], c.out_shape()); }
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, sum_to(g, in)); }
  Tensor jvp(OpCtx& c, const Ins& t) const { return tangent_as_rank(t[0], c.out_shape().size()); }
};

struct Take {  // the elements of x at flat offsets `index`: repeated offsets accumulate
  static constexpr unsigned reads = kNone;
  Shape in;
  Tensor index;  // normalised (non-negative) flat offsets
  const char* grad_fn() const noexcept { return "IndexBackward0"; }
  Tensor forward(OpCtx&, const Ins& x) const { return take(x[0], index); }
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, scatter_add(g, index, in)); }
  Tensor jvp(OpCtx&, const Ins& t) const { return take(t[0], batched_index(index, t[0].shape()[0], shape_numel(in))); }
};

struct Strided {  // x's elements at base + i . strides (basic indexing; windows, which may overlap)
  static constexpr unsigned reads = kNone;
  Shape in;
  std::int64_t base;
  std::vector<std::int64_t> strides;
  const char* grad_fn() const noexcept { return "SliceBackward0"; }
  Tensor forward(OpCtx& c, const Ins& x) const { return gather_strided(x[0], base, strides, c.out_shape()); }
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, scatter_strided(g, in, base, strides)); }
  Tensor jvp(OpCtx& c, const Ins& t) const {
    return gather_strided(t[0], base, batched_strides(strides, shape_numel(in)), batched_shape(t[0].shape()[0], c.out_shape()));
  }
};

struct Concat {  // the operands joined along `axis`: each gets its slice of the gradient
  static constexpr unsigned reads = kNone;
  int axis;
  std::vector<std::int64_t> sizes;  // each operand's length along the axis
  const char* grad_fn() const noexcept { return "CatBackward0"; }
  Tensor forward(OpCtx&, const Ins& x) const { return concatenate(x, axis); }
  void vjp(OpCtx& c, const Tensor& g) const;
  Tensor jvp(OpCtx& c, const Ins& t) const;  // the tangents joined, zeros for the constant operands
};

struct ScatterStrided {  // the reverse of Strided (overlaps summed; also zero padding)
  static constexpr unsigned reads = kNone;
  Shape g_shape;
  std::int64_t base;
  std::vector<std::int64_t> strides;
  const char* grad_fn() const noexcept { return "SliceBackwardBackward0"; }
  Tensor forward(OpCtx& c, const Ins& x) const { return scatter_strided(x[0], c.out_shape(), base, strides); }
  void vjp(OpCtx& c, const Tensor& gg) const { c.give(0, gather_strided(gg, base, strides, g_shape)); }
  Tensor jvp(OpCtx& c, const Ins& t) const {
    const std::int64_t K = t[0].shape()[0];
    return scatter_strided(t[0], batched_shape(K, c.out_shape()), base, batched_strides(strides, shape_numel(c.out_shape())));
  }
};

struct ScatterAdd {  // the reverse of Take (recorded by create_graph sweeps)
  static constexpr unsigned reads = kNone;
  Tensor index;
  const char* grad_fn() const noexcept { return "IndexBackwardBackward0"; }
  Tensor forward(OpCtx& c, const Ins& x) const { return scatter_add(x[0], index, c.out_shape()); }
  void vjp(OpCtx& c, const Tensor& gg) const { c.give(0, take(gg, index)); }
  Tensor jvp(OpCtx& c, const Ins& t) const {
    const std::int64_t K = t[0].shape()[0];
    return scatter_add(t[0], batched_index(index, K, shape_numel(c.out_shape())), batched_shape(K, c.out_shape()));
  }
};

// --- scans and selections

struct Cumsum {  // the running sum along `axis` (from the end where `reverse`)
  static constexpr unsigned reads = kNone;
  int axis;
  bool reverse;
  const char* grad_fn() const noexcept { return "CumsumBackward0"; }
  Tensor forward(OpCtx&, const Ins& x) const { return cumsum_dir(x[0], axis, reverse); }
  // d(out_j)/d(x_m) = 1 for m <= j: the gradient is the running sum from the other end.
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, cumsum_dir(g, axis, !reverse)); }
  Tensor jvp(OpCtx& c, const Ins& t) const {
    return cumsum_dir(tangent_as_rank(t[0], c.out_shape().size()), axis + 1, reverse);
  }
};

struct Cumprod {  // the running product along `axis`
  static constexpr unsigned reads = kInputs | kOutput;
  Tensor x;
  int axis;
  const char* grad_fn() const noexcept { return "CumprodBackward0"; }
  Tensor forward(OpCtx&, const Ins& in) const { return cumprod(in[0], axis); }
  // d(out_j)/d(x_m) = prod_{i <= j, i != m} x_i for m <= j: out_j / x_m before a line's first
  // zero; through zeros, see index.cpp.
  void vjp(OpCtx& c, const Tensor& g) const;
  Tensor jvp(OpCtx& c, const Ins& t) const;
};

/// What a selection picks from x: the elements at flat offsets computed from x's values (sort,
/// topk, max/min along an axis) or from an index tensor (gather).
enum class Pick { Sort, Topk, Max, Min, Gather };
struct Selection {
  Pick pick;
  int axis = 0;
  bool flag = false;   // sort: descending; topk: largest; max/min: keepdims
  std::int64_t k = 0;  // topk's k
  Tensor index;        // gather's index (int64, normalised)
};

struct Select {  // values picked from x at flat offsets (sort, topk, max/min along an axis, gather)
  static constexpr unsigned reads = kNone;
  Selection sel;  // what a forward at new inputs selects by (a sort sorts the new values again)
  Shape in;
  Tensor offsets;
  const char* grad_fn() const noexcept;
  Tensor forward(OpCtx&, const Ins& x) const;
  // the gradient goes back to the offsets (repeats accumulate); the tangent is picked there
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, put_add(g, offsets, in)); }
  Tensor jvp(OpCtx&, const Ins& t) const { return take(t[0], batched_index(offsets, t[0].shape()[0], shape_numel(in))); }
};

struct MaxPool {  // the largest element of each window (max_pool): its gradient goes back to it
  static constexpr unsigned reads = kNone;
  PoolOptions opt;  // what a forward at new inputs pools by (it selects from the new values)
  Shape in;
  Tensor offsets;   // each window's largest element, a flat offset into x
  const char* grad_fn() const noexcept { return opt.kernel.size() == 3 ? "MaxPool3DWithIndicesBackward0" : "MaxPool2DWithIndicesBackward0"; }
  Tensor forward(OpCtx&, const Ins& x) const { return max_pool(x[0], opt).values; }
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, scatter_add(g, offsets, in)); }
  Tensor jvp(OpCtx&, const Ins& t) const { return take(t[0], batched_index(offsets, t[0].shape()[0], shape_numel(in))); }
};

// --- reductions

struct Sum {  // sum over `axes`; mean and var's mean of squares divide by `divisor`
  static constexpr unsigned reads = kNone;
  Shape in, kept;  // x's shape, the result's with the axes kept
  std::vector<int> axes;
  double divisor = 1.0;
  bool divided = false;
  const char* name = "SumBackward0";
  const char* grad_fn() const noexcept { return name; }
  Tensor forward(OpCtx& c, const Ins& x) const;
  // d sum / dx = 1: g broadcast back over the axes (divided once for a mean)
  void vjp(OpCtx& c, const Tensor& g) const {
    const Tensor gk = reshaped(g, kept);
    c.give(0, broadcast_to(divided ? by_divisor(gk) : gk, in));
  }
  Tensor jvp(OpCtx& c, const Ins& t) const;
  /// g / divisor, rounded once: a 16-bit g is divided in float32 (as PyTorch's opmath), not by
  /// the divisor rounded to 16 bits (3000 is 3008 in bfloat16).
  Tensor by_divisor(const Tensor& g) const;
};

struct Extreme {  // amax / amin over `axes`: the gradient is shared by the ties
  static constexpr unsigned reads = kInputs | kOutput;
  Tensor x, zk;  // the input, the result with the axes kept
  std::vector<int> axes;
  bool max;
  const char* grad_fn() const noexcept { return max ? "AmaxBackward0" : "AminBackward0"; }
  Tensor forward(OpCtx& c, const Ins& in) const;
  void vjp(OpCtx& c, const Tensor& g) const;   // mask / count, the mask where x == z
  Tensor jvp(OpCtx& c, const Ins& t) const;    // the mean tangent over the ties
};

struct Prod {  // the product over `axes`
  static constexpr unsigned reads = kInputs | kOutput;
  Tensor x, zk;
  std::vector<int> axes;
  const char* grad_fn() const noexcept { return "ProdBackward0"; }
  Tensor forward(OpCtx& c, const Ins& in) const;
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, others(c) * reshaped(g, zk.shape())); }
  Tensor jvp(OpCtx& c, const Ins& t) const { return sum(others(c) * t[0], Axes(tangent_axes(axes)), true); }
  /// d prod / d x_i = the product of the others (zeros handled: see reductions.cpp).
  Tensor others(OpCtx& c) const;
};

struct Logsumexp {  // log sum exp over `axes`: d/dx = softmax(x) along them
  static constexpr unsigned reads = kInputs | kOutput;
  Tensor x, zk;
  std::vector<int> axes;
  const char* grad_fn() const noexcept { return "LogsumexpBackward0"; }
  Tensor forward(OpCtx& c, const Ins& in) const;
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, weights(c) * reshaped(g, zk.shape())); }
  Tensor jvp(OpCtx& c, const Ins& t) const { return sum(weights(c) * t[0], Axes(tangent_axes(axes)), true); }
  Tensor weights(OpCtx& c) const {  // exp(x - z), z on the graph in a recorded sweep
    return exp(x - (c.recorded() ? reshaped(c.out(), zk.shape()) : zk));
  }
};

struct Softmax {  // y = softmax(x) along `axis`: dx = y (g - sum(g y))
  static constexpr unsigned reads = kOutput;
  int axis;
  const char* grad_fn() const noexcept { return "SoftmaxBackward0"; }
  Tensor forward(OpCtx&, const Ins& x) const { return softmax(x[0], axis); }
  void vjp(OpCtx& c, const Tensor& g) const {
    const Tensor y = c.out();
    c.give(0, y * (g - sum(g * y, axis, true)));
  }
  Tensor jvp(OpCtx& c, const Ins& t) const {
    const Tensor y = c.out();
    return y * (t[0] - sum(t[0] * y, axis + 1, true));
  }
};

struct LogSoftmax {  // y = log_softmax(x) along `axis`: dx = g - exp(y) sum(g)
  static constexpr unsigned reads = kOutput;
  int axis;
  const char* grad_fn() const noexcept { return "LogSoftmaxBackward0"; }
  Tensor forward(OpCtx&, const Ins& x) const { return log_softmax(x[0], axis); }
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, g - exp(c.out()) * sum(g, axis, true)); }
  Tensor jvp(OpCtx& c, const Ins& t) const { return t[0] - sum(exp(c.out()) * t[0], axis + 1, true); }
};

struct StdSqrt {  // std's square root of var: d sqrt(v)/dv = 1/(2 z), and 0 where z = 0 (PyTorch's)
  static constexpr unsigned reads = kOutput;
  const char* grad_fn() const noexcept { return "StdBackward0"; }
  Tensor forward(OpCtx& c, const Ins& x) const;
  void vjp(OpCtx& c, const Tensor& g) const;
  Tensor jvp(OpCtx& c, const Ins& t) const {
    const Tensor z = c.out(), zero = weak_scalar(0.0, z.dtype());
    return where(equal(z, zero), zero, t[0] * (0.5 / z));
  }
};

// --- products

struct Matmul {  // C = A B (batched, broadcast): dA = dC B^T, dB = A^T dC
  static constexpr unsigned reads = kCrossed;  // (a layer's input keeps no copy of its weight)
  Tensor a, b;
  Shape as, bs, batch;
  const char* grad_fn() const noexcept { return "MmBackward0"; }
  Tensor forward(OpCtx&, const Ins& x) const;
  void vjp(OpCtx& c, const Tensor& g) const;
  Tensor jvp(OpCtx& c, const Ins& t) const;  // dA B + A dB
  void trim(const OpCtx& c) {
    if (!c.needs(1)) a = Tensor();
    if (!c.needs(0)) b = Tensor();
  }
};

struct Linear {  // y = x W^T + b: dx = g W, dW = g^T x, db = sum(g)
  static constexpr unsigned reads = kCrossed;
  Tensor x, w;
  Shape xs, ws;
  bool bias;
  const char* grad_fn() const noexcept { return "AddmmBackward0"; }
  Tensor forward(OpCtx&, const Ins& in) const { return linear(in[0], in[1], bias ? in[2] : Tensor()); }
  void vjp(OpCtx& c, const Tensor& g) const;
  Tensor jvp(OpCtx& c, const Ins& t) const;  // dx W^T + x dW^T + db
  void trim(const OpCtx& c) {
    if (!c.needs(1)) x = Tensor();
    if (!c.needs(0)) w = Tensor();
  }
};

// --- elementwise ops that are not rows of ops.def

struct Astype {  // a cast: the gradient is cast back (add_grad converts to the input's dtype)
  static constexpr unsigned reads = kNone;
  const char* grad_fn() const noexcept { return "ToCopyBackward0"; }
  Tensor forward(OpCtx& c, const Ins& x) const { return astype(x[0], c.out_dtype()); }
  void vjp(OpCtx& c, const Tensor& g) const { c.give(0, g); }
  Tensor jvp(OpCtx&, const Ins& t) const { return t[0]; }  // (cast by the sweep)
};

struct Clip {  // min(max(x, lo), hi): the gradient passes where lo <= x <= hi
  static constexpr unsigned reads = kInputs;
  Tensor x;
  double lo, hi;
  const char* grad_fn() const noexcept { return "ClampBackward0"; }
  Tensor forward(OpCtx&, const Ins& in) const { return clip(in[0], lo, hi); }
  void vjp(OpCtx& c, const Tensor& g) const;
  Tensor jvp(OpCtx&, const Ins& t) const { return where(inside(), t[0], weak_scalar(0.0, t[0].dtype())); }
  Tensor inside() const;  // lo <= x <= hi
};

struct Where {  // cond ? a : b: the gradient goes to a where cond holds, to b elsewhere
  static constexpr unsigned reads = kNone;
  Tensor cond;
  Shape a, b;
  const char* grad_fn() const noexcept { return "WhereBackward0"; }
  Tensor forward(OpCtx&, const Ins& x) const { return where(x[0], x[1], x[2]); }
  void vjp(OpCtx& c, const Tensor& g) const {
    const Tensor zero = weak_scalar(0.0, g.dtype());
    if (c.needs(1)) c.give(1, sum_to(where(cond, g, zero), a));
    if (c.needs(2)) c.give(2, sum_to(where(cond, zero, g), b));
  }
  Tensor jvp(OpCtx& c, const Ins& t) const;
};

/// A piecewise-constant slope (relu's step, abs's sign, minimum's split) computed from x, y in
/// a recorded sweep: constant, yet a result of its operands with a zero derivative, as PyTorch's
/// threshold_backward and sgn are. A gradient made from it is then on the graph, and a second
/// backward through it (a gradient penalty) gives zeros where a constant would raise. Its kind
/// says which slope its forward at new inputs computes.
enum class Slope { Step, Sign, Lesser, Zero };
struct ZeroSlope {
  static constexpr unsigned reads = kNone;
  Slope kind;
  std::vector<std::pair<Shape, DType>> inputs;
  const char* grad_fn() const noexcept { return "ZeroSlopeBackward"; }
  Tensor forward(OpCtx& c, const Ins& x) const;
  void vjp(OpCtx& c, const Tensor&) const {
    for (std::size_t k = 0; k < inputs.size(); ++k) c.give(k, Tensor::zeros(inputs[k].first, inputs[k].second));
  }
  Tensor jvp(OpCtx&, const Ins&) const { return Tensor(); }  // (a zero tangent)
};

}  // namespace table

// --- the record: one generic node, driven by its entry ----------------------------------------

template <class E>
inline constexpr TensorOp op_id = TensorOp{};
#define TAPEGRAD_X(Name) \
  template <>            \
  inline constexpr TensorOp op_id<table::Name> = TensorOp::Name;
TAPEGRAD_TENSOR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X

template <class E, class = void>
struct has_trim : std::false_type {};
template <class E>
struct has_trim<E, std::void_t<decltype(std::declval<E&>().trim(std::declval<const OpCtx&>()))>> : std::true_type {};

template <class E>
class OpNode final : public TNode {
 public:
  explicit OpNode(E entry) : e_(std::move(entry)) {}
  const char* name() const noexcept override { return e_.grad_fn(); }
  const char* op_name() const noexcept override { return tensor_op_names()[static_cast<std::size_t>(op_id<E>)]; }
  bool saves_inputs() const override { return (E::reads & (table::kInputs | table::kCrossed)) != 0; }
  bool saves_output() const override { return (E::reads & table::kOutput) != 0; }
  bool saves_input(std::size_t k) const override {
    if constexpr ((E::reads & table::kCrossed) != 0) return k < 2 && needs(1 - k);
    else return saves_inputs();
  }
  void trim() override {
    if constexpr (has_trim<E>::value) e_.trim(OpCtx(*this, false));
  }
  const E& entry() const noexcept { return e_; }

 protected:
  void vjp(OpCtx& c, const Tensor& g) override { e_.vjp(c, g); }
  Tensor jvp(OpCtx& c, const std::vector<Tensor>& t) override { return e_.jvp(c, t); }
  Tensor forward_at(OpCtx& c, const std::vector<Tensor>& in) override { return e_.forward(c, in); }

 private:
  E e_;
};

/// The record of entry `e` (for Recorder::record).
template <class E>
std::unique_ptr<TNode> make_op(E e) {
  return std::make_unique<OpNode<E>>(std::move(e));
}

}  // namespace tapegrad::detail
