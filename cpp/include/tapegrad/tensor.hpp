// tapegrad::Tensor: n-d arrays on the same tape as Var, with PyTorch's autograd semantics.
//
// A Tensor is a handle to a C-contiguous array (shape, dtype, data) that may take part in
// differentiation:
// - a *leaf* is made by the user (tensor(), zeros(), from_blob(), detach()); with
//   requires_grad it is recorded on first use on each tape and accumulates into grad();
// - a *result* of an op on tensors that require grad is recorded on a tape (one Op::Node
//   record, see tape.hpp) and is stale once that tape is cleared, like a Var.
// Values are reference counted and never live in the tape's arenas, so a tensor's data (and
// a NumPy view of it) stays valid whatever happens to the tape; only its graph goes.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/half.hpp"
#include "tapegrad/tape.hpp"
#include "tapegrad/var.hpp"

namespace tapegrad {

// --- dtypes and shapes -------------------------------------------------------------------

/// Element types. The floating ones take part in differentiation; Int64 and Bool exist
/// for indices and masks. Float16 and BFloat16 are storage: their kernels compute in float32
/// and store 16 bits (see half.hpp); a matrix product on them accumulates in float32.
enum class DType : std::uint8_t { Bool, Int64, Float32, Float64, Float16, BFloat16 };

const char* dtype_name(DType d) noexcept;
std::size_t dtype_size(DType d) noexcept;
inline bool is_floating(DType d) noexcept { return d != DType::Bool && d != DType::Int64; }
/// Whether d is one of the 16-bit floating dtypes.
inline bool is_half(DType d) noexcept { return d == DType::Float16 || d == DType::BFloat16; }
/// NumPy's promotion of two array dtypes (bool < int64 < float16 < float32 < float64; int64
/// with a float of fewer than 64 bits gives float64; float16 with bfloat16 gives float32, as
/// in PyTorch and ml_dtypes).
DType promote(DType a, DType b) noexcept;
/// The dtype arithmetic gives: promote(a, b), made floating (float64) if it is not.
DType arithmetic_dtype(DType a, DType b) noexcept;

using Shape = std::vector<std::int64_t>;
/// "(2, 3)", "()" or "(4,)", as NumPy prints shapes.
std::string shape_str(const Shape& s);
std::int64_t shape_numel(const Shape& s);
/// NumPy's broadcasting of two shapes; throws Error naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

/// A set of axes to reduce over: all of them (the default, NumPy's axis=None) or a list
/// (negative axes count from the end; an empty list reduces nothing).
struct Axes {
  bool all = true;
  std::vector<int> list;
  Axes() = default;
  Axes(int axis) : all(false), list{axis} {}  // NOLINT: one axis converts implicitly
  Axes(std::initializer_list<int> axes) : all(false), list(axes) {}
  explicit Axes(std::vector<int> axes) : all(false), list(std::move(axes)) {}
};

// --- the tensor ----------------------------------------------------------------------------

struct TensorHooks;  // a tensor's hooks (below)

/// The shared state of a tensor (use it through Tensor).
struct TensorImpl {
  std::shared_ptr<void> storage;  ///< owns the memory `data` points into
  void* data = nullptr;
  DType dtype = DType::Float64;
  Shape shape;
  std::int64_t numel = 1;

  bool requires_grad = false;
  bool leaf = true;
  bool retains_grad = false;  ///< a result whose gradient is kept in `grad` (retain_grad())
  /// A result whose graph a backward() without retain_graph released (PyTorch's freed graph):
  /// its value and its use as an operand stay, but no sweep goes through it again (one that
  /// reaches it raises, naming retain_graph). `released_name` is its record's name then.
  bool released = false;
  const char* released_name = nullptr;
  /// Results: the tape, record and generation that produced it. Leaves that require grad:
  /// their record on the tape they were last used on (recorded again when that is stale).
  Tape* tape = nullptr;
  std::uint32_t rec = Tape::kNone;
  std::uint32_t gen = 0;
  std::shared_ptr<TensorImpl> grad;  ///< accumulated by backward (leaves, retained results)
  /// A recorded gradient (create_graph) is a root of its tape while it is this tensor's grad,
  /// so that collect() keeps its graph: the root, and the tape's epoch when it was made.
  Tape* grad_tape = nullptr;
  std::uint32_t grad_root = Tape::kNone;
  std::uint32_t grad_epoch = 0;
  std::uint32_t grad_gen = 0;  ///< the tape's generation then: tells a destroyed tape (see handle_state)
  /// A tangent seed of shape (K, *s) that is the standard basis (row k is e_k, K = numel(s)):
  /// set by jvp() on its own view of the seed, kept by reshapes that keep the leading K, so
  /// that a matrix product with it is a copy instead of a product (vector forward mode).
  bool basis = false;
  /// Bumped by every in-place change of the data; shared by the views of the same memory
  /// (created on first need). A graph that saved this data refuses to sweep once it moved.
  std::shared_ptr<std::uint64_t> version;
  /// Its hooks (Tensor::register_hook and friends): null until the first one.
  std::shared_ptr<TensorHooks> hooks;

  /// The version counter, created on first use.
  std::uint64_t& version_counter() { return *version_ptr(); }
  /// The shared counter itself, created on first use. Threads recording ops on one tensor
  /// (a shared leaf, shared data) may all want it first: the creation is atomic, one wins.
  std::shared_ptr<std::uint64_t> version_ptr() {
    std::shared_ptr<std::uint64_t> v = std::atomic_load(&version);
    if (v) return v;
    std::shared_ptr<std::uint64_t> fresh = std::make_shared<std::uint64_t>(0);
    if (std::atomic_compare_exchange_strong(&version, &v, fresh)) return fresh;
    return v;  // (another thread made it: compare_exchange loaded it into v)
  }

  template <class T> T* ptr() const noexcept { return static_cast<T*>(data); }

  TensorImpl() = default;
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;
  ~TensorImpl();
};

class Tensor {
 public:
  Tensor() = default;  ///< a null tensor (defined() is false)
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : p_(std::move(impl)) {}

  // --- creation (leaves) -------------------------------------------------------------------
  /// Uninitialised memory of the given shape and dtype (64-byte aligned).
  static Tensor empty(const Shape& shape, DType dtype = DType::Float64);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float64);
  static Tensor ones(const Shape& shape, DType dtype = DType::Float64);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float64);
  /// A copy of `values` (row-major) with the given shape, converted to `dtype`.
  static Tensor from_values(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::Float64);
  /// Wraps memory the caller owns, without copying: `release` runs when the last tensor
  /// using it is gone. The memory must be C-contiguous and stay valid until then.
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, std::function<void()> release = {});
  static Tensor arange(double start, double stop, double step = 1.0, DType dtype = DType::Float64);
  static Tensor eye(std::int64_t n, std::int64_t m = -1, DType dtype = DType::Float64);
  /// A 0-d float64 tensor whose value and gradient are those of `v` (recorded when v is).
  static Tensor from_var(const Var& v);

  // --- what it is ------------------------------------------------------------------------
  bool defined() const noexcept { return p_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  std::int64_t dim(int axis) const;
  int ndim() const { return static_cast<int>(impl().shape.size()); }
  std::int64_t numel() const { return impl().numel; }
  DType dtype() const { return impl().dtype; }
  void* raw_data() const { return impl().data; }
  /// The data as T*, which must match the dtype (float for Float32, double for Float64,
  /// float16 and bfloat16 (half.hpp) for the 16-bit ones, std::int64_t for Int64, bool for Bool).
  template <class T> T* data() const;
  /// The single element of a one-element tensor, as a double.
  double item() const;
  /// The elements converted to double, in row-major order.
  std::vector<double> to_vector() const;

  // --- autograd ------------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  /// Makes a leaf take part in differentiation (or not); an error on a result.
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return impl().leaf; }
  /// The gradient accumulated by backward(): a null tensor until the first one.
  Tensor grad() const;
  void set_grad(const Tensor& g);
  void zero_grad() { set_grad(Tensor()); }
  /// Keep this result's gradient in grad() on the next backward() (PyTorch's retain_grad).
  void retain_grad();
  /// The same data, cut from the graph: a leaf that does not require grad.
  Tensor detach() const;
  /// A copy that does not share memory (recorded: the gradient flows through it).
  Tensor clone() const;
  /// Reverse sweep from this one-element tensor, seeded with 1; leaves accumulate into grad().
  void backward() const;
  /// Reverse sweep from this tensor seeded with `gradient` (its shape).
  void backward(const Tensor& gradient) const;
  /// The same, and with create_graph the sweep records its own operations: the gradients
  /// accumulated into grad() are results on the tape, differentiable again (any order).
  /// The graph is released afterwards unless create_graph (see the next overload).
  void backward(const Tensor& gradient, bool create_graph) const;
  /// The same; without retain_graph this result's graph is released after the sweep, as in
  /// PyTorch: a second backward() from it raises, and the bindings let the tape free what
  /// the graph saved. (PyTorch's default is retain_graph = create_graph.)
  void backward(const Tensor& gradient, bool create_graph, bool retain_graph) const;
  /// Changes the elements in place (an optimiser step), keeping the tensor a leaf; it is
  /// recorded afresh on its next use. Graphs recorded before read the tensor's memory, so
  /// sweep them before changing it (PyTorch's rule for in-place changes).
  void assign(const Tensor& values);
  /// Subtracts `lr * grad()` in place (plain gradient descent), if there is a gradient.
  void sgd_step(double lr);

  // --- hooks ---------------------------------------------------------------------------------
  /// Registers `fn`, called with this tensor's gradient each time a reverse sweep has summed
  /// it, before a leaf accumulates it into grad() or a result passes it to its inputs (and
  /// before grad() captures it); a defined tensor it returns (of the same shape) replaces the
  /// gradient. In a create_graph sweep the gradient is recorded, and so is what fn does with
  /// it. The tensor must require grad. Returns an id for remove_hook() (PyTorch's
  /// register_hook).
  std::uint64_t register_hook(std::function<Tensor(const Tensor&)> fn);
  /// Registers `fn`, called with this leaf after a backward accumulated into its grad()
  /// (PyTorch's register_post_accumulate_grad_hook). Leaves that require grad only.
  std::uint64_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> fn);
  /// Removes a hook by its id; false if it is not registered (any more).
  bool remove_hook(std::uint64_t id);

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const noexcept { return p_; }
  std::shared_ptr<TensorImpl>& impl_ptr_ref() noexcept { return p_; }
  bool same(const Tensor& o) const noexcept { return p_ == o.p_; }

 private:
  std::shared_ptr<TensorImpl> p_;
};

/// The hooks of one tensor, in order of registration.
struct TensorHooks {
  struct Pre {
    std::uint64_t id;
    std::function<Tensor(const Tensor&)> fn;
  };
  struct Post {
    std::uint64_t id;
    std::function<void(const Tensor&)> fn;
  };
  std::vector<Pre> pre;
  std::vector<Post> post;
};

namespace detail {
/// The tape of the checkpointed segment running apart from the graph on this thread (null:
/// none), for the embedder's errors.
Tape* running_segment_tape() noexcept;
/// Runs p's gradient hooks on g: the gradient to use (g itself without hooks).
Tensor run_grad_hooks(const TensorImpl& p, Tensor g);
/// Runs leaf p's post-accumulate hooks.
void run_post_accumulate_hooks(const std::shared_ptr<TensorImpl>& p);

// Grad mode of this thread. Read on every Python Var operation: an inline variable with the
// initial-exec TLS model is one load, where a call into another object file plus a
// general-dynamic TLS lookup cost about 10% of a scalar op.
#if defined(__GNUC__) && !defined(_WIN32)
inline thread_local bool tls_grad_enabled __attribute__((tls_model("initial-exec"))) = true;
#else
inline thread_local bool tls_grad_enabled = true;
#endif
}  // namespace detail

/// Whether ops record on the tape in this thread (PyTorch's torch.is_grad_enabled()).
inline bool grad_enabled() noexcept { return detail::tls_grad_enabled; }
inline void set_grad_enabled(bool on) noexcept { detail::tls_grad_enabled = on; }
/// Turns recording off (NoGrad) or on (EnableGrad) for a scope; they nest.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool on) noexcept : previous_(grad_enabled()) { set_grad_enabled(on); }
  ~GradModeGuard() { set_grad_enabled(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};
struct NoGrad : GradModeGuard {
  NoGrad() noexcept : GradModeGuard(false) {}
};
struct EnableGrad : GradModeGuard {
  EnableGrad() noexcept : GradModeGuard(true) {}
};

// --- automatic mixed precision --------------------------------------------------------------

/// PyTorch's autocast, per thread. While it is on:
/// - matmul and linear run on `dtype` (float16 or bfloat16) copies of their floating operands,
///   so that what they save and return is 16-bit (PyTorch's leaves float64 alone; float64 is
///   tapegrad's default dtype, so a default model would not be cast at all);
/// - the reductions (sum, mean, prod, var, std, cumsum, logsumexp) and softmax/log_softmax
///   compute and return float32 for 16-bit inputs.
/// The copies are recorded casts: gradients come back in each input's own dtype. Derivative
/// sweeps run with autocast off (a backward differentiates each op in its forward's dtypes).
struct AutocastState {
  bool enabled = false;
  DType dtype = DType::BFloat16;
};
namespace detail {
inline thread_local AutocastState tls_autocast;
/// Autocast off for a derivative sweep's scope.
struct NoAutocast {
  AutocastState previous = tls_autocast;
  NoAutocast() noexcept { tls_autocast.enabled = false; }
  ~NoAutocast() { tls_autocast = previous; }
  NoAutocast(const NoAutocast&) = delete;
  NoAutocast& operator=(const NoAutocast&) = delete;
};
}  // namespace detail
inline AutocastState autocast_state() noexcept { return detail::tls_autocast; }
/// Sets this thread's autocast state; ValueError unless dtype is Float16 or BFloat16.
void set_autocast(bool enabled, DType dtype = DType::BFloat16);
/// Autocast on (or off) for a scope; they nest.
class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype = DType::BFloat16, bool enabled = true) : previous_(autocast_state()) {
    set_autocast(enabled, dtype);
  }
  ~AutocastGuard() { detail::tls_autocast = previous_; }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  AutocastState previous_;
};

/// The gradients of the outputs (weighted by grad_outputs, ones by default) with respect to
/// each input, without touching any .grad (PyTorch's torch.autograd.grad). With create_graph
/// the returned gradients are recorded results, differentiable again. An input the outputs
/// do not depend on is an error, or a null tensor with allow_unused.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool create_graph = false,
                         bool allow_unused = false);

/// Forward mode: the directional derivatives J v of the outputs along `tangents` of the
/// inputs (one per input, of its shape), by one tangent sweep forward over the records
/// between the inputs and the outputs; no reverse sweep, no .grad touched. The inputs must
/// require grad (so that their use was recorded). With `batched`, every tangent has an extra
/// leading axis of K directions, (K, *input shape), and so has each result, (K, *output
/// shape): vector forward mode, a whole Jacobian (K = number of inputs, identity tangents) in
/// one sweep. An output that does not depend on the inputs gets zeros. With create_graph
/// the results are recorded, differentiable again (forward over reverse over ...).
std::vector<Tensor> jvp(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                        const std::vector<Tensor>& tangents, bool create_graph = false, bool batched = false);

/// A copy of x converted to `dtype` (recorded between float dtypes).
Tensor astype(const Tensor& x, DType dtype);
Tensor zeros_like(const Tensor& x);
Tensor ones_like(const Tensor& x);
Tensor full_like(const Tensor& x, double value);

// --- elementwise ops of the table (ops.def), with NumPy broadcasting --------------------
// Every unary op f(Tensor); every binary op f(Tensor, Tensor), f(Tensor, double),
// f(double, Tensor). A double operand takes the tensor's float dtype (a "weak" scalar, as in
// NumPy and PyTorch). `min`/`max` with two arguments are elementwise (also `minimum`,
// `maximum`); with one they are reductions (see amax/amin).
#define TAPEGRAD_UNARY(Name, name, ...) Tensor name(const Tensor& x);
#define TAPEGRAD_BINARY(Name, name, ...)       \
  Tensor name(const Tensor& x, const Tensor& y); \
  Tensor name(const Tensor& x, double y);        \
  Tensor name(double x, const Tensor& y);
#include "tapegrad/ops.def"

inline Tensor minimum(const Tensor& x, const Tensor& y) { return min(x, y); }
inline Tensor maximum(const Tensor& x, const Tensor& y) { return max(x, y); }
/// Limits x to [lo, hi]; the gradient passes where lo <= x <= hi (PyTorch's clamp).
Tensor clip(const Tensor& x, double lo, double hi);
/// cond ? a : b elementwise, broadcast (cond: any dtype, nonzero is true).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, double b);
Tensor where(const Tensor& cond, double a, const Tensor& b);

// Comparisons: bool tensors, never recorded.
Tensor less(const Tensor& x, const Tensor& y);
Tensor less_equal(const Tensor& x, const Tensor& y);
Tensor greater(const Tensor& x, const Tensor& y);
Tensor greater_equal(const Tensor& x, const Tensor& y);
Tensor equal(const Tensor& x, const Tensor& y);
Tensor not_equal(const Tensor& x, const Tensor& y);

inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& x, const Tensor& y) { return add(x, y); }
inline Tensor operator+(const Tensor& x, double y) { return add(x, y); }
inline Tensor operator+(double x, const Tensor& y) { return add(x, y); }
inline Tensor operator-(const Tensor& x, const Tensor& y) { return sub(x, y); }
inline Tensor operator-(const Tensor& x, double y) { return sub(x, y); }
inline Tensor operator-(double x, const Tensor& y) { return sub(x, y); }
inline Tensor operator*(const Tensor& x, const Tensor& y) { return mul(x, y); }
inline Tensor operator*(const Tensor& x, double y) { return mul(x, y); }
inline Tensor operator*(double x, const Tensor& y) { return mul(x, y); }
inline Tensor operator/(const Tensor& x, const Tensor& y) { return div(x, y); }
inline Tensor operator/(const Tensor& x, double y) { return div(x, y); }
inline Tensor operator/(double x, const Tensor& y) { return div(x, y); }
inline Tensor operator<(const Tensor& x, const Tensor& y) { return less(x, y); }
inline Tensor operator<=(const Tensor& x, const Tensor& y) { return less_equal(x, y); }
inline Tensor operator>(const Tensor& x, const Tensor& y) { return greater(x, y); }
inline Tensor operator>=(const Tensor& x, const Tensor& y) { return greater_equal(x, y); }

// --- reductions -----------------------------------------------------------------------------
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
/// Largest / smallest element; the gradient is shared evenly by ties (as torch.amax).
Tensor amax(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor amin(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
inline Tensor max(const Tensor& x) { return amax(x); }
inline Tensor min(const Tensor& x) { return amin(x); }
/// Product; its gradient is exact with zeros among the factors.
Tensor prod(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
/// Variance with `ddof` delta degrees of freedom (NumPy's default 0), and its square root.
Tensor var(const Tensor& x, const Axes& axes = {}, int ddof = 0, bool keepdims = false);
Tensor std(const Tensor& x, const Axes& axes = {}, int ddof = 0, bool keepdims = false);
/// log(sum(exp(x))) without overflow.
Tensor logsumexp(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);

// --- linear algebra ---------------------------------------------------------------------
/// NumPy's matmul: 1-d operands are promoted and the added axis removed, leading axes
/// broadcast (batched products). Runs on BLAS (see set_gemm).
Tensor matmul(const Tensor& a, const Tensor& b);
/// A layer's product x W^T + b (PyTorch's nn.functional.linear): x (..., in), W (out, in) as
/// a layer stores it, b (out,) or null. One gemm with no transposed copy of W, either way.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
/// Inner product of two 1-d tensors (the same as matmul for them).
Tensor dot(const Tensor& a, const Tensor& b);
/// a[i] * b[j] for 1-d a and b (other shapes are flattened, as numpy.outer).
Tensor outer(const Tensor& a, const Tensor& b);

// --- shapes -------------------------------------------------------------------------------
/// Same data, new shape (one entry may be -1). Shares memory with x.
Tensor reshape(const Tensor& x, const Shape& shape);
/// Axes reordered (no axes: reversed, as .T); the result is a contiguous copy.
Tensor transpose(const Tensor& x, const std::vector<int>& axes = {});
inline Tensor permute(const Tensor& x, const std::vector<int>& axes) { return transpose(x, axes); }
/// Removes axes of length 1 (all of them, or the given ones, which must have length 1).
Tensor squeeze(const Tensor& x, const Axes& axes = {});
/// Inserts an axis of length 1 at `axis` (NumPy's expand_dims, PyTorch's unsqueeze).
Tensor unsqueeze(const Tensor& x, int axis);
inline Tensor expand_dims(const Tensor& x, int axis) { return unsqueeze(x, axis); }
Tensor broadcast_to(const Tensor& x, const Shape& shape);
/// The elements at flat offsets `index` (an Int64 tensor of any shape; negative offsets
/// count from the end): numpy.take(x.ravel(), index). The gradient scatters back and
/// accumulates over repeated offsets. Python's indexing is built on it.
Tensor take(const Tensor& x, const Tensor& index);
/// The reverse of take: a tensor of `shape`, zero but for src's elements added at flat
/// offsets `index` (int64, one per element of src; repeated offsets accumulate). Recorded:
/// the gradient of src is take(g, index). PyTorch's scatter_add and index_add are built on it.
Tensor put_add(const Tensor& src, const Tensor& index, const Shape& shape);
/// Basic slicing of every axis at once: element i of axis d of the result is element
/// start[d] + i * step[d] of x's axis d (steps may be negative); `shape` is the result's.
Tensor strided(const Tensor& x, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& step,
               const Shape& shape);
/// x[start:stop:step] along one axis (Python slice semantics, negative step included).
Tensor slice(const Tensor& x, int axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1);
Tensor concatenate(const std::vector<Tensor>& xs, int axis = 0);
Tensor stack(const std::vector<Tensor>& xs, int axis = 0);

// --- scans, sorting and selection (their indices computed in C++, at forward time) -------
/// Running sums along `axis` (torch.cumsum), in O(n): floating dtypes accumulate in double and
/// round each result once; int64 and bool give int64. Its gradient is the running sum of the
/// output gradient from the other end.
Tensor cumsum(const Tensor& x, int axis);
/// Running products along `axis` (torch.cumprod), in O(n); the gradient is exact where x has
/// zeros (the product of the other factors, as prod's).
Tensor cumprod(const Tensor& x, int axis);
/// The flat index of the largest (smallest) element (the first of ties; the first NaN if any,
/// as NumPy and PyTorch), an int64 0-d tensor; ValueError for an empty tensor.
Tensor argmax(const Tensor& x);
Tensor argmin(const Tensor& x);
/// The same along one axis: int64, of x's shape without the axis (kept as 1 with keepdims).
Tensor argmax(const Tensor& x, int axis, bool keepdims = false);
Tensor argmin(const Tensor& x, int axis, bool keepdims = false);
/// A selection's values (differentiable: the gradient goes back to where they were taken)
/// and their int64 indices along the axis (PyTorch's torch.return_types).
struct ValuesIndices {
  Tensor values;
  Tensor indices;
};
/// The largest (smallest) element along `axis` and its index: PyTorch's x.max(dim). The
/// gradient goes to that one element (where amax shares it between ties).
ValuesIndices max_along(const Tensor& x, int axis, bool keepdims = false);
ValuesIndices min_along(const Tensor& x, int axis, bool keepdims = false);
/// Sorted along `axis`, stably (equal elements keep their order); NaN sorts above every
/// number, as in PyTorch. O(n log n) per line.
ValuesIndices sort(const Tensor& x, int axis = -1, bool descending = false);
Tensor argsort(const Tensor& x, int axis = -1, bool descending = false);
/// The k largest (smallest) elements along `axis`, in order, and their indices (ties in
/// index order). O(n log k) per line. ValueError unless 0 <= k <= the axis' length.
ValuesIndices topk(const Tensor& x, std::int64_t k, int axis = -1, bool largest = true);
/// torch.gather: out[i][j] = x[index[i][j]][j] for axis 0 (and so on); index is int64 with
/// x's rank and at most x's length along the other axes; negative indices count from the end.
/// The result has index's shape; its gradient scatters back (repeats accumulate).
Tensor gather(const Tensor& x, int axis, const Tensor& index);
/// torch.scatter_add: x with src[i][j] added at x[index[i][j]][j] for axis 0 (and so on);
/// src covers index's shape. Differentiable in x and in src.
Tensor scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src);
/// The vector `ord`-norm over `axes` (torch.linalg.vector_norm): inf and -inf are the largest
/// and smallest |x|, 0 counts nonzeros, others (sum |x|^ord)^(1/ord). The gradient at a
/// zero vector is 0, as PyTorch's.
Tensor norm(const Tensor& x, double ord = 2.0, const Axes& axes = {}, bool keepdims = false);

// --- convolution and pooling (ops/conv.cpp): compositions of the table's strided gather and
// scatter and its matrix product, so every sweep differentiates them

/// x padded with zeros: before[i] and after[i] elements on axis i (negative values crop).
Tensor pad(const Tensor& x, const std::vector<std::int64_t>& before, const std::vector<std::int64_t>& after);

/// A convolution's options: one stride, padding and dilation per spatial axis; `name` is what
/// its errors call it (conv2d, ...).
struct ConvOptions {
  std::vector<std::int64_t> stride, padding, dilation;
  std::int64_t groups = 1;
  std::string name = "conv";
};
/// The cross-correlation of x (N, C, *spatial) with w (O, C / groups, *kernel), plus b (O) if
/// defined: torch.nn.functional.conv1d/2d/3d, for as many spatial axes as w has past two.
Tensor conv(const Tensor& x, const Tensor& w, const Tensor& b, const ConvOptions& o);
/// The transposed convolution (the input-gradient of conv): x (N, C, *spatial), w (C, O /
/// groups, *kernel); output_padding (smaller than stride or dilation) adds to the output's far
/// side: torch.nn.functional.conv_transpose1d/2d/3d.
Tensor conv_transpose(const Tensor& x, const Tensor& w, const Tensor& b, const ConvOptions& o,
                      const std::vector<std::int64_t>& output_padding);

/// A pooling's options, one entry per pooled axis (the last kernel.size() axes of the input).
struct PoolOptions {
  std::vector<std::int64_t> kernel, stride, padding, dilation;
  bool ceil_mode = false;
  std::string name = "pool";
};
/// The largest element of each window and its flat index into the input's pooled axes
/// (torch.nn.functional.max_pool1d/2d/3d with return_indices); the padding never wins. The
/// gradient goes to that element (the first of ties).
ValuesIndices max_pool(const Tensor& x, const PoolOptions& o);
/// The mean of each window (avg_pool1d/2d/3d): over the window's size, or its part inside the
/// input where !count_include_pad, or divisor_override when positive.
Tensor avg_pool(const Tensor& x, const PoolOptions& o, bool count_include_pad = true, std::int64_t divisor_override = 0);
/// The mean over PyTorch's adaptive windows [floor(i n / o), ceil((i + 1) n / o)) of the last
/// out.size() axes (adaptive_avg_pool1d/2d/3d): a product with a constant matrix per axis.
Tensor adaptive_avg_pool(const Tensor& x, const std::vector<std::int64_t>& out, const std::string& name = "adaptive_avg_pool");

// --- recurrent layers (ops/rnn.cpp): compositions of recorded ops

/// The recurrence of a layer: Elman (tanh or relu), LSTM or GRU.
enum class RNNMode { Tanh, Relu, LSTM, GRU };
/// One layer's (and direction's) weights, PyTorch's layout: w_ih (G H, input_size), w_hh (G H,
/// H or proj_size), the biases (G H) or undefined, w_hr (proj_size, H) for a projected LSTM or
/// undefined; G = 4 (LSTM: gates i, f, g, o), 3 (GRU: r, z, n) or 1.
struct RNNWeights {
  Tensor w_ih, w_hh, b_ih, b_hh, w_hr;
};
/// A layer's output at every step (L, N, H or proj_size), and the last hidden (and LSTM cell) state.
struct RNNLayerOutput {
  Tensor output, h, c;
};
/// One recurrent layer over x (L, N, input_size) from h0 (N, H or proj_size; undefined: zeros)
/// and, for an LSTM, c0 (N, H); `reverse` runs from the last step back (a bidirectional
/// layer's second direction). PyTorch's formulas and order (nn.RNN, nn.LSTM, nn.GRU).
RNNLayerOutput rnn_layer(RNNMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0, const RNNWeights& w,
                         bool reverse = false);

/// softmax(q k^T scale + mask) v over the last two axes (torch.nn.functional.
/// scaled_dot_product_attention): `mask` (float, added) and `allowed` (bool: which positions take
/// part) may be undefined; `causal` lets query i see keys j <= i; a NaN scale means 1/sqrt(E). A
/// query that may attend to nothing gets zeros, as PyTorch's. Composed of recorded ops.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor(),
                                    const Tensor& allowed = Tensor(), double scale = std::nan(""), bool causal = false);
/// Its attention weights softmax(q k^T scale + mask), (..., L, S) (v only checked): what a
/// dropout on the weights is applied to before the product with v.
Tensor attention_weights(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor(),
                         const Tensor& allowed = Tensor(), double scale = std::nan(""), bool causal = false);

inline Tensor operator+(const Tensor& x, const Var& v) { return x + Tensor::from_var(v); }
inline Tensor operator+(const Var& v, const Tensor& x) { return Tensor::from_var(v) + x; }
inline Tensor operator-(const Tensor& x, const Var& v) { return x - Tensor::from_var(v); }
inline Tensor operator-(const Var& v, const Tensor& x) { return Tensor::from_var(v) - x; }
inline Tensor operator*(const Tensor& x, const Var& v) { return x * Tensor::from_var(v); }
inline Tensor operator*(const Var& v, const Tensor& x) { return Tensor::from_var(v) * x; }
inline Tensor operator/(const Tensor& x, const Var& v) { return x / Tensor::from_var(v); }
inline Tensor operator/(const Var& v, const Tensor& x) { return Tensor::from_var(v) / x; }

// --- matrix products: the BLAS behind matmul --------------------------------------------
/// Row-major C = alpha * op(A) op(B) + beta * C, op transposing where ta/tb are set.
using SgemmFn = void (*)(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                         const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
                         float* c, std::int64_t ldc);
using DgemmFn = void (*)(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
                         const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
                         double* c, std::int64_t ldc);
namespace detail {
/// Makes g the gradient of p (a null g drops it), keeping a recorded g rooted on its tape.
void assign_grad(TensorImpl& p, std::shared_ptr<TensorImpl> g);
}  // namespace detail

/// Replaces the matrix products (the Python module installs OpenBLAS's here). By default
/// they are the CBLAS found when the library was built, or a portable blocked kernel.
void set_gemm(SgemmFn sgemm, DgemmFn dgemm) noexcept;
/// Which gemm is in use: "cblas", "builtin" or what set_gemm's caller named.
const char* gemm_backend() noexcept;
void set_gemm_backend_name(const char* name) noexcept;

// --- threads ---------------------------------------------------------------------------------
/// The threads a matrix product above kParallelFlops uses (as torch.set_num_threads): exactly
/// n from then on (so that results repeat bit for bit: a BLAS may sum in another order with
/// another count). n >= 1, else an Error.
void set_num_threads(int n);
/// set_num_threads' n; until it is called, the BLAS's own count (its OPENBLAS_NUM_THREADS, or
/// the cores it may use), the most a product uses.
int get_num_threads() noexcept;
/// How many threads a product of m x k by k x n uses: one below kParallelFlops multiply-adds
/// (a BLAS's threads cost more to wake than they save there); above, get_num_threads(): as
/// set by set_num_threads, or, until it is called, no more than the cores that other
/// processes leave free (on Linux, from the count of runnable threads in /proc/loadavg, read
/// at most every 10 ms; MKL's dynamic mode does the same by default). On a machine whose cores
/// are busy with other processes a thread the BLAS wakes waits for a core, and the product
/// waits for it: with two busy processes beside them, a 200-variable Hessian took 6 to 12x
/// its time, an MLP step 4 to 25x (bench/bench_load.py).
int gemm_threads(std::int64_t m, std::int64_t n, std::int64_t k) noexcept;
inline constexpr std::int64_t kParallelFlops = std::int64_t(1) << 20;
/// A BLAS's thread control (openblas_set_num_threads), installed with its gemm: the core calls
/// it before a product whose thread count (gemm_threads) differs from the last one's. With
/// none installed, the BLAS runs as it was configured. `current` is the BLAS's count now.
using GemmThreadsFn = void (*)(int threads);
void set_gemm_threads(GemmThreadsFn fn, int current) noexcept;
namespace detail {
/// The cores this process may run on (its CPU affinity).
int cores() noexcept;
/// Threads of other processes runnable now (0 where the system does not say).
int runnable_elsewhere() noexcept;
}  // namespace detail

namespace detail {
/// backward(gradient, create_graph=true) from the (current, non-leaf) result y: seeds y's
/// record and runs the recorded sweep (leaves' sinks get the values); adj/has are the scalar
/// records' recorded adjoints (the Vars y depends on). Returns y's record.
std::uint32_t recorded_backward(const Tensor& y, const Tensor& gradient, std::vector<Var>& adj, std::vector<char>& has);
/// A 0-d float64 tensor recorded from scalar record `rec` of `tape` (value `value`): how a
/// Var enters tensor arithmetic. rec == kNone gives a constant.
Tensor scalar_record_tensor(Tape* tape, std::uint32_t rec, double value);
/// The record of a tensor on `tape`, recording a leaf that requires grad on first use.
/// Throws Error for a stale or foreign result.
std::uint32_t record_of(const Tensor& t, Tape& tape);
/// The error of a sweep that reaches a released graph (see TensorImpl::released).
[[noreturn]] void throw_released();
/// Marks the result t's graph released (see TensorImpl::released); its handle goes stale.
void release_graph(const Tensor& t) noexcept;
/// The name of the record that made t (PyTorch's grad_fn name): null for a leaf or a tensor
/// that does not require grad, and for a stale handle.
const char* grad_fn_name(const Tensor& t) noexcept;
/// One record of a graph as a walk of it sees it (PyTorch's grad_fn and next_functions).
struct GraphNode {
  const char* name = nullptr;            ///< "MulBackward0"; "AccumulateGrad" for a leaf's record
  std::vector<std::uint32_t> inputs;     ///< its inputs' records (Tape::kNone: a constant)
  std::shared_ptr<TensorImpl> variable;  ///< a tensor leaf's record: the leaf
};
/// Record `rec` of `tape` (which must be below tape.size()).
GraphNode graph_node(const Tape& tape, std::uint32_t rec);
/// One record of a graph as a picture of it shows it (tapegrad.viz).
struct GraphRecord {
  std::uint32_t rec = 0;
  const char* name = nullptr;            ///< "MulBackward0"; "AccumulateGrad" for a leaf
  const char* op = nullptr;              ///< the table's op name ("mul"), "leaf", or the node's name
  const char* entry = nullptr;           ///< a tensor op's entry in the op tables ("Reshape", "mul"), else null
  bool leaf = false;
  std::vector<std::uint32_t> inputs;     ///< the records it reads
  std::vector<double> constants;         ///< a scalar op's constant operand (its VC/CV form)
  bool constant_left = false;            ///< the constant is the left operand (CV form)
  double value = 0.0;                    ///< a scalar record's value
  std::shared_ptr<TensorImpl> tensor;    ///< a tensor record's value, if alive (a leaf's record: the leaf)
  bool tensor_record = false;            ///< a tensor's record (`tensor` null: its value is gone)
  Shape shape;                           ///< a tensor record's shape and dtype
  DType dtype = DType::Float64;
  bool kept = false;                     ///< the tape keeps the value alive (a rule reads it)
  std::uint32_t sink = Tape::kNone;      ///< a scalar leaf's sink slot
  bool has_grad = false;                 ///< with grads: whether the sweep reached it
  double adjoint = 0.0;                  ///< with grads: a scalar record's d(out)/d(record)
  Tensor grad;                           ///< with grads: a tensor record's d(out)/d(record)
};
/// Every record between the leaves and record `from` (the ones it depends on), in record
/// order; with `grads`, the derivative of `from`'s value (summed, for a tensor) with respect
/// to each, by a sweep that changes no .grad and runs no hooks.
std::vector<GraphRecord> graph_of(Tape& tape, std::uint32_t from, bool grads);
/// One input's gradient from grad_records: the sum over its records of their adjoints (a Var's
/// scalar records: `value`, or recorded, `var`) and of their tensor gradients (`tensor`).
struct GradOfRecords {
  bool used = false;  ///< whether a record of the input leads to an output
  double value = 0.0;
  Var var;
  Tensor tensor;
};
/// The one grad() of the core, under every front end (grad on Vars and on Tensors, C++'s and
/// Python's): the gradient of the outputs with respect to the records of each input, by one
/// reverse sweep that changes no .grad and runs only the hooks on the paths to the inputs. The
/// scalar outputs are seeded with 1 at record `scalar_from` (the front end sums them into one
/// record with their seeds; Tape::kNone: none), each tensor output's record with its seed.
/// Recorded (differentiable again) with `create_graph`.
std::vector<GradOfRecords> grad_records(Tape& tape, std::uint32_t scalar_from,
                                        const std::vector<std::pair<std::uint32_t, Tensor>>& tensor_seeds,
                                        const std::vector<std::vector<std::uint32_t>>& xs, bool create_graph);
/// The names of the entries of the table of tensor ops (ops/table.hpp), in op id order.
const std::vector<const char*>& tensor_op_names();
}  // namespace detail

}  // namespace tapegrad
