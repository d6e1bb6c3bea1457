// Internals shared by the tensor sources: the recording machinery (TNode, Recorder), dtype
// dispatch and the broadcasting loop. Not installed.
#pragma once

#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tapegrad/sweep.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::detail {

[[noreturn]] void throw_error(const std::string& msg);
/// The lock of a leaf's shared state (its record cache and its .grad), for leaves used by
/// several threads at once: one of a fixed set of mutexes, picked by address. Holders keep
/// the host's lock too (NoUnlock), so that no thread waits on it while holding the host's.
std::recursive_mutex& leaf_mutex(const TensorImpl* p) noexcept;
/// p's .grad, its handle refreshed if it is a recorded gradient (collect() may move it).
/// The caller holds leaf_mutex(&p).
Tensor current_grad(TensorImpl& p);
/// Whether p's recorded gradient still holds a root on its tape (alive, not rewound since).
bool grad_root_live(const TensorImpl& p) noexcept;
/// The most elements a tensor may have (2^48: far beyond memory, far below overflow).
inline constexpr std::int64_t kMaxElements = std::int64_t(1) << 48;
/// The element count of a shape from a user: ValueError (after `what`, as "reshape: ") for a negative
/// dimension, or when the product of its non-zero dimensions exceeds kMaxElements.
std::int64_t checked_numel(const Shape& s, const char* what);
/// Throws the error that says why tensor t (a recorded result) cannot be used.
[[noreturn]] void throw_unusable_tensor(const Tensor& t);
/// Sets p's .grad to g (keeping a recorded g rooted on its tape, so it survives collect()).
/// Adds g into target's .grad: the one accumulation of leaves (backward's sweeps, a leaf's own
/// backward) and retained results. Recorded (create_graph) when grad mode is on; else the first
/// gradient is taken if nothing else shares it, and later ones added in place where `in_place`
/// (a leaf's .grad, as PyTorch's AccumulateGrad) or where .grad's memory is its own. Locks
/// the target's leaf mutex (threads may deliver into one leaf).
void accumulate_grad(const std::shared_ptr<TensorImpl>& target, const Tensor& g, bool in_place);
/// A copy of x's values in fresh memory: not recorded.
Tensor clone_values(const Tensor& x);
/// grad += g: in place when `always` (a leaf's .grad, as PyTorch does) or when grad's memory
/// is its own (a gradient in flight may be shared between two inputs), else into a new tensor.
void accumulate_into(std::shared_ptr<TensorImpl>& grad, const Tensor& g, bool always = false);

/// Runs `f.template operator()<T>()`-style code for the float dtypes: TG_FLOAT_DISPATCH(d, T, { ... }).
/// The 16-bit dtypes run the same code with T = float16 or bfloat16 (half.hpp): it computes in
/// float and stores 16 bits.
#define TG_FLOAT_DISPATCH(dtype, T, ...)                                                \
  do {                                                                                  \
    switch (dtype) {                                                                    \
      case ::tapegrad::DType::Float32: { using T = float; __VA_ARGS__ } break;          \
      case ::tapegrad::DType::Float16: { using T = ::tapegrad::float16; __VA_ARGS__ } break; \
      case ::tapegrad::DType::BFloat16: { using T = ::tapegrad::bfloat16; __VA_ARGS__ } break; \
      default: { using T = double; __VA_ARGS__ } break;                                 \
    }                                                                                   \
  } while (0)

#define TG_ANY_DISPATCH(dtype, T, ...)                                   \
  do {                                                                   \
    switch (dtype) {                                                     \
      case ::tapegrad::DType::Float32: { using T = float; __VA_ARGS__ } break;         \
      case ::tapegrad::DType::Float64: { using T = double; __VA_ARGS__ } break;        \
      case ::tapegrad::DType::Int64: { using T = std::int64_t; __VA_ARGS__ } break;    \
      case ::tapegrad::DType::Bool: { using T = bool; __VA_ARGS__ } break;             \
      case ::tapegrad::DType::Float16: { using T = ::tapegrad::float16; __VA_ARGS__ } break; \
      case ::tapegrad::DType::BFloat16: { using T = ::tapegrad::bfloat16; __VA_ARGS__ } break; \
    }                                                                    \
  } while (0)

/// A value of one element type as another (a 16-bit float to the other through float; a
/// double to float16 rounded once).
template <class D, class S>
inline D cast_to(S s) noexcept {
  if constexpr (is_half_v<S> && !std::is_same_v<D, S>) return static_cast<D>(static_cast<float>(s));
  else return static_cast<D>(s);
}

/// Under autocast: a floating x of another dtype as the autocast dtype (a recorded cast); else x.
Tensor autocast_lower(const Tensor& x);
/// Under autocast: 16-bit x as float32 (a recorded cast); else x itself.
Tensor autocast_wide(const Tensor& x);

/// A tensor of `shape` and `dtype` with fresh (uninitialised) memory: not recorded.
Tensor empty_tensor(const Shape& shape, DType dtype);
/// x's memory (from its start) viewed with another shape of at most x's numel: not recorded.
Tensor view_as_shape(const Tensor& x, const Shape& shape);
/// x viewed with another shape (same numel): recorded (reshape) when recording is on and x
/// requires grad, as in a create_graph sweep; a plain view otherwise.
Tensor reshaped(const Tensor& x, const Shape& shape);
/// The constant c as a 0-d tensor of `like`'s float dtype (float64 for an integer one): a
/// "weak" scalar, as NumPy and PyTorch treat a Python number against a tensor. Not recorded.
Tensor weak_scalar(double c, DType like);
/// x converted to dtype (x itself if it has it already): not recorded.
Tensor convert(const Tensor& x, DType dtype);
/// Normalises axes against ndim (negative from the end); sorted, unique; throws on range.
std::vector<int> normalize_axes(const Axes& axes, int ndim, const char* op);
int normalize_axis(int axis, int ndim, const char* op);

/// A reverse sweep's workspace (ReverseSweep::ws): the gradients its tensor records receive
/// and grad()'s captures (where a record's gradient is wanted), by record, so that the records
/// keep no sweep state. It dies with its sweep: an interrupted sweep leaves nothing behind.
class Workspace {
 public:
  explicit Workspace(const Tape& tape) : tape_(tape) {}
  /// Node record rec's gradient so far (undefined while none came). The reference lasts until
  /// the next call (a recorded sweep's new records grow the workspace).
  Tensor& grad(std::uint32_t rec) {
    const std::uint32_t s = tape_.record(rec).a;
    if (s >= grads_.size()) grads_.resize(std::size_t(s) + 1);
    return grads_[s];
  }
  bool has(std::uint32_t rec) const noexcept {
    const std::uint32_t s = tape_.record(rec).a;
    return s < grads_.size() && grads_[s].defined();
  }
  /// grad(): node record rec's gradient is wanted in *slot (the first slot asked for stays).
  void capture(std::uint32_t rec, Tensor* slot) {
    const std::uint32_t s = tape_.record(rec).a;
    if (s >= captures_.size()) captures_.resize(std::size_t(s) + 1, nullptr);
    if (!captures_[s]) captures_[s] = slot;
  }
  Tensor* capture_of(std::uint32_t rec) const noexcept {
    const std::uint32_t s = tape_.record(rec).a;
    return s < captures_.size() ? captures_[s] : nullptr;
  }
  /// A record of an op with several outputs (a custom function's, a checkpointed segment's):
  /// the gradients its other outputs' records passed it (grads[k] for recorded output k >= 1),
  /// and whether output 0 got none (its zeros only make the record's step run).
  struct Outputs {
    std::vector<Tensor> grads;
    bool unreached0 = false;
  };
  Outputs& outputs(std::uint32_t rec, std::size_t n) {
    Outputs& o = outputs_[tape_.record(rec).a];
    if (o.grads.size() < n) o.grads.resize(n);
    return o;
  }
  /// Takes record rec's Outputs (empty if none came).
  Outputs take_outputs(std::uint32_t rec) {
    const auto it = outputs_.find(tape_.record(rec).a);
    if (it == outputs_.end()) return Outputs{};
    Outputs o = std::move(it->second);
    outputs_.erase(it);
    return o;
  }

 private:
  const Tape& tape_;
  std::vector<Tensor> grads_;      // by node (the record's index into the tape's node list)
  std::vector<Tensor*> captures_;
  std::unordered_map<std::uint32_t, Outputs> outputs_;  // by node (few: the multi-output records)
};

class TNode;

/// What a record's rules see while a sweep runs them: the record (its recorded inputs, its
/// output's value, shape and dtype) and the sweep's mode. The context is passed to every rule
/// and is the one place the mode is read: a rule that computes differently when its sweep
/// records (create_graph, a recorded tangent or forward sweep) asks recorded(), never grad
/// mode's thread-local. A reverse step's context also carries the sweep, whose workspace
/// receives what give() passes on.
class OpCtx {
 public:
  OpCtx(TNode& node, bool recorded, ReverseSweep* sweep = nullptr, std::uint32_t me = Tape::kNone) noexcept
      : node_(node), sweep_(sweep), me_(me), recorded_(recorded) {}
  /// A tangent step's context.
  OpCtx(TNode& node, TangentSweep& sweep, std::uint32_t me) noexcept
      : node_(node), sweep_(nullptr), tangents_(&sweep), me_(me), recorded_(sweep.recorded) {}
  /// Whether the step records: its ops then run on the graph, so its results are differentiable.
  bool recorded() const noexcept { return recorded_; }
  /// Whether input k is recorded (its gradient or tangent is wanted).
  bool needs(std::size_t k) const noexcept;
  /// A reverse step: passes d(input k) on to input k's record (nothing for a constant input).
  void give(std::size_t k, const Tensor& gk) const;
  /// The output's value (defined where the rule reads it, or while anything else holds it).
  Tensor out() const;
  const Shape& out_shape() const noexcept;
  DType out_dtype() const noexcept;
  /// The reverse sweep running the step (records that call back into it: checkpointed segments).
  ReverseSweep& sweep() const noexcept { return *sweep_; }
  /// The tangent sweep running the step (a multi-output record hands its other outputs' tangents there).
  TangentSweep& tangent_sweep() const noexcept { return *tangents_; }
  std::uint32_t me() const noexcept { return me_; }
  TNode& node() const noexcept { return node_; }

 private:
  TNode& node_;
  ReverseSweep* sweep_;
  TangentSweep* tangents_ = nullptr;
  std::uint32_t me_;
  bool recorded_;
};

/// A tape record done by tensor code: keeps its input records, what its rules read and its
/// attributes. Op records are OpNode<E>, driven by an entry E of the table of tensor ops
/// (ops/table.hpp); the elementwise ones are UnaryNode / BinaryNode, driven by ops.def's rows.
/// TNode answers the sweeps' questions with the rules (the same vjp serves the plain and the
/// recorded reverse step: it is written with tensor ops, which record when the sweep records).
class TNode : public Node {
 public:
  void reverse(ReverseSweep& sweep, std::uint32_t i) final { step(sweep, i); }
  void reverse_recorded(ReverseSweep& sweep, std::uint32_t i) final;
  void tangent(TangentSweep& sweep, std::uint32_t i) final;
  /// Gathers its inputs' new values (constant inputs from consts_) and stores forward_at's.
  void forward(ForwardSweep& sweep, std::uint32_t i) final;
  std::uint32_t* inputs(std::size_t& count) noexcept final {
    count = in_.size();
    return in_.data();
  }
  void reset_grad() noexcept override {}  // (its gradient is the sweep's: ReverseSweep::ws)
  // The value, plus an estimate of what a record costs besides it (this object, its
  // vectors, the output's TensorImpl, shape and control blocks: about 1 KiB measured).
  static constexpr std::size_t kOverhead = 1024;
  void moved(const Tape& tape, std::uint32_t rec) noexcept final {
    // results, and leaves recorded on this tape (a released result's old record no more)
    const std::shared_ptr<TensorImpl> r = result();
    if (r && r->tape == &tape && (!r->released || released_node_)) {
      r->rec = rec;
      r->gen = tape.generation();
    }
  }
  std::size_t bytes() const noexcept override { return kOverhead + value_bytes(); }
  std::size_t value_bytes() const noexcept {
    return out_ && !is_leaf_node_ ? static_cast<std::size_t>(out_->numel) * dtype_size(out_->dtype) : 0;
  }
  void held_values(std::vector<std::pair<const void*, std::size_t>>& into) const override;

  /// Adds `g` into the output gradient of this node, record `me`, in workspace `ws` (from a
  /// consumer's vjp, or a front end's seed): converted to the output's dtype and shape.
  void add_grad(Workspace& ws, std::uint32_t me, const Tensor& g);
  /// Notes the version of the values this node's rule reads (see saves_inputs/_output),
  /// so that backward() can refuse values changed in place since.
  void stamp(const std::vector<const Tensor*>& inputs, const Tensor& out);

  std::vector<std::uint32_t> in_;     // input records (Tape::kNone: a constant input)
  /// The constant inputs (where in_ is kNone), kept when the tape keeps constants
  /// (Tape::keeps_constants: a program run again at new inputs reads them); else empty.
  std::vector<Tensor> consts_;
  /// The result, held while the record needs its value: its rule reads it (saves_output), a
  /// hook or retain_grad was registered on it (pin_output), or it is a leaf's. An op record
  /// whose rule does not read its result lets go of it once recorded (drop_unread_output), as
  /// PyTorch's graph keeps only what its formulas read: result_ sees it while anything else
  /// holds it, out_shape_ and out_dtype_ are what the sweeps need of it.
  std::shared_ptr<TensorImpl> out_;
  std::weak_ptr<TensorImpl> result_;
  Shape out_shape_;
  DType out_dtype_ = DType::Float64;
  void set_output(const std::shared_ptr<TensorImpl>& r) {
    out_ = r;
    result_ = r;
    if (r) {
      out_shape_ = r->shape;
      out_dtype_ = r->dtype;
    }
  }
  /// The result if anything holds it (null once it is gone).
  std::shared_ptr<TensorImpl> result() const noexcept { return out_ ? out_ : result_.lock(); }
  void drop_unread_output() noexcept {
    if (!is_leaf_node_ && !released_node_ && !saves_output() && !scalar_output()) out_.reset();
  }
  void pin_output() noexcept {
    if (!out_) out_ = result_.lock();
  }
  bool is_leaf_node_ = false;         // a leaf's record (grad() does not deliver into .grad)
  bool released_node_ = false;        // stands for a released result (see TensorImpl::released)
  /// The leaf a leaf record delivers to (null for op records).
  virtual const TensorImpl* leaf() const noexcept { return nullptr; }
  /// A released-graph stand-in (see Node::stand_in): for op records that allow it.
  std::unique_ptr<Node> stand_in() override;
  /// Whether stand_in() may replace this record (not a leaf's; not one whose other records
  /// point at it, as a multi-output op's).
  virtual bool releasable() const { return true; }


  /// The forward-mode step: given the tangents `t` of the inputs, each of shape
  /// (K, *input shape) with K directions at once, or null for a zero tangent (at least one is
  /// set), returns the output's tangent, (K, *output shape). Checks the saved values'
  /// versions as the reverse step does.
  Tensor tangent_from(TangentSweep& sweep, std::uint32_t me, const std::vector<Tensor>& t);
  /// Notes the versions of `saved` (a custom op's saved tensors): the reverse and tangent
  /// steps refuse them changed in place since.
  void stamp_tensors(const std::vector<Tensor>& saved);

 protected:
  /// Given d(output) = g, calls c.give(k, d input k) for the inputs k that are recorded.
  virtual void vjp(OpCtx& c, const Tensor& g) = 0;
  /// The output's tangent given the inputs' (see tangent()). The result may lack the
  /// output's shape where it broadcasts or reshapes to (K, *output shape) (tangent() does
  /// that), and may be null for a zero tangent. Written with tensor ops, so it is recorded
  /// when the sweep records (a jvp that is itself differentiable).
  virtual Tensor jvp(OpCtx& c, const std::vector<Tensor>& t) = 0;
  /// The forward step at new inputs: the output from `in` (one value per entry of in_, in its
  /// order, constants included), by the same op call that recorded this node, with its
  /// attributes. The sweep sets the modes (grad mode on only when it records; autocast off),
  /// so the call records a new node exactly when the sweep records. The default raises (a
  /// node that cannot run forward at new inputs).
  virtual Tensor forward_at(OpCtx& c, const std::vector<Tensor>& in);
 public:
  /// The op table entry this record is (its name: "Reshape", or the ops.def row's name for an
  /// elementwise op), or null for records that are not ops (leaves, custom functions, bridges).
  virtual const char* op_name() const noexcept { return nullptr; }
  /// A reverse step's delivery: d(input k) = gk into input k's record, from the sweep.
  void give_to(ReverseSweep& sweep, std::size_t k, const Tensor& gk);
 protected:
  bool needs(std::size_t k) const { return in_[k] != Tape::kNone; }

 public:
  /// Whether the rule reads the values of the inputs / of the output (most do; shape ops,
  /// sums and additions do not, so changing those in place later is harmless, and a record
  /// that does not read its output does not keep it).
  virtual bool saves_inputs() const { return true; }
  virtual bool saves_output() const { return true; }
  /// Whether the rule reads input k, once in_ says which inputs are recorded (saves_inputs()
  /// by default; a product reads each operand only for the other's gradient).
  virtual bool saves_input(std::size_t) const { return saves_inputs(); }
  /// Called once recorded (in_ set): lets go of the captured values saves_input() declines.
  virtual void trim() {}

 protected:

 private:
  struct Saved {
    std::shared_ptr<std::uint64_t> counter;
    std::uint64_t version;
    const void* storage = nullptr;  // the memory it keeps alive (null: a parameter's or leaf data's)
    std::size_t bytes = 0;
  };
  void save(const Tensor& t);
  void step(ReverseSweep& sweep, std::uint32_t i);
  std::vector<Saved> saved_;
  void check_versions() const;
};

inline bool OpCtx::needs(std::size_t k) const noexcept { return node_.in_[k] != Tape::kNone; }
inline void OpCtx::give(std::size_t k, const Tensor& gk) const { node_.give_to(*sweep_, k, gk); }
inline Tensor OpCtx::out() const { return Tensor(node_.result()); }
inline const Shape& OpCtx::out_shape() const noexcept { return node_.out_shape_; }
inline DType OpCtx::out_dtype() const noexcept { return node_.out_dtype_; }

/// Makes t's record hold t (TNode::pin_output), if t is a current result of its tape.
void pin_result(const Tensor& t);

/// A tangent t of shape (K, *s) viewed as (K, 1, ..., 1, *s) with 1 + `rank` axes, so that
/// it broadcasts against a value of rank `rank` (K stays in front).
Tensor tangent_as_rank(const Tensor& t, std::size_t rank);
/// The shape (K, *s): K copies of a value of shape s (a batch of tangents).
inline Shape batched_shape(std::int64_t K, const Shape& s) {
  Shape r{K};
  r.insert(r.end(), s.begin(), s.end());
  return r;
}
/// Flat offsets `index` (into a tensor of `numel` elements) repeated for K copies of it:
/// index + k * numel, of shape (K, *index shape): a batch of tangents' offsets.
Tensor batched_index(const Tensor& index, std::int64_t K, std::int64_t numel);
/// Axes of a value shifted past the tangent's leading K axis.
inline std::vector<int> tangent_axes(const std::vector<int>& axes) {
  std::vector<int> r(axes);
  for (int& a : r) a += 1;
  return r;
}

/// The version counter of x, shared by every view of its memory (made on first need).
inline std::shared_ptr<std::uint64_t> version_of(const Tensor& x) {
  return x.impl().version_ptr();
}

/// Makes p the recorded result of record `rec` of `tape` (in its current generation).
inline void mark_recorded(TensorImpl& p, Tape& tape, std::uint32_t rec) {
  p.leaf = false;
  p.requires_grad = true;
  p.tape = &tape;
  p.rec = rec;
  p.gen = tape.generation();
}

/// A one-element tensor as a Var: recorded (a record that scalar records read as a number)
/// when it requires grad and recording is on, else a constant.
Var var_of(const Tensor& t);


/// While a checkpointed segment runs apart from the graph (its forward, or its plain
/// recompute): the tape it runs on, and the leaves recorded there. An op on a result of
/// another tape is then an error that names checkpoint (the segment used a tensor computed
/// outside it); a leaf's record there is remembered here, not in the leaf (whose record on
/// the graph's tape stays its record).
struct SegmentState {
  Tape* tape;
  std::vector<std::pair<const TensorImpl*, std::uint32_t>> leaves;
};
inline thread_local SegmentState* tls_segment = nullptr;
inline Tape* segment_tape_now() noexcept { return tls_segment ? tls_segment->tape : nullptr; }
/// Set while a checkpointed segment's plain recompute sweeps its own tape: the leaves it
/// reaches get their gradients through the segment's record, whose sweep runs their hooks.
inline thread_local bool tls_segment_sweep = false;

/// Records a node for an op if grad mode is on and an input requires grad.
class Recorder {
 public:
  /// The inputs in order; `op` names the op in errors.
  Recorder(std::initializer_list<const Tensor*> inputs, const char* op);
  Recorder(const std::vector<Tensor>& inputs, const char* op);
  bool on() const { return tape_ != nullptr; }
  /// Fills node->in_ with the records of the inputs (kNone for those without grad), pushes
  /// the node with `out` as its result, and makes `out` a recorded result. Returns out.
  Tensor record(std::unique_ptr<TNode> node, Tensor out);

 private:
  void init(const Tensor* const* inputs, std::size_t n, const char* op);
  std::vector<const Tensor*> inputs_;
  Tape* tape_ = nullptr;
};

// --- broadcasting loop ------------------------------------------------------------------------

/// Element strides of a C-contiguous tensor of shape `s`.
inline std::vector<std::int64_t> contiguous_strides(const Shape& s) {
  std::vector<std::int64_t> st(s.size(), 1);
  for (std::size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

/// Element strides of a contiguous tensor of shape `s` read as if broadcast to `out`.
std::vector<std::int64_t> broadcast_strides(const Shape& s, const Shape& out);

/// Calls row(base offsets, length, inner strides) for each row of a loop over `out`, where
/// operand k is at offset base[k] + i * inner[k]. Adjacent axes that every operand walks
/// contiguously are merged, so same-shape operands give one row.
template <std::size_t K, class Row>
void for_each_row(const Shape& out, std::array<std::vector<std::int64_t>, K> st, Row&& row) {
  std::int64_t total = 1;
  for (std::int64_t d : out) total *= d;
  if (total == 0) return;
  std::vector<std::int64_t> dims(out);
  // Merge axis d into d+1 where every operand's stride allows it.
  for (int d = static_cast<int>(dims.size()) - 2; d >= 0; --d) {
    bool ok = true;
    for (std::size_t k = 0; k < K; ++k)
      if (st[k][d] != st[k][d + 1] * dims[d + 1]) ok = false;
    if (!ok) continue;
    dims[d + 1] *= dims[d];
    dims.erase(dims.begin() + d);
    for (std::size_t k = 0; k < K; ++k) st[k].erase(st[k].begin() + d);
  }
  std::array<std::int64_t, K> base{}, inner{};
  if (dims.empty()) {
    row(base, std::int64_t(1), inner);
    return;
  }
  const std::size_t n = dims.size();
  const std::int64_t len = dims[n - 1];
  for (std::size_t k = 0; k < K; ++k) inner[k] = st[k][n - 1];
  std::vector<std::int64_t> idx(n, 0);
  const std::int64_t rows = total / len;
  for (std::int64_t r = 0; r < rows; ++r) {
    row(base, len, inner);
    for (std::size_t d = n - 1; d-- > 0;) {
      ++idx[d];
      for (std::size_t k = 0; k < K; ++k) base[k] += st[k][d];
      if (idx[d] < dims[d]) break;
      for (std::size_t k = 0; k < K; ++k) base[k] -= st[k][d] * dims[d];
      idx[d] = 0;
    }
  }
}

/// Row-major C = alpha op(A) op(B) + beta C through the gemm in use (see set_gemm).
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc);
/// The 16-bit products: the operands widened to float32, float32's gemm (accumulating in
/// float32), the result rounded once to 16 bits.
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float16 alpha, const float16* a,
          std::int64_t lda, const float16* b, std::int64_t ldb, float16 beta, float16* c, std::int64_t ldc);
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, bfloat16 alpha, const bfloat16* a,
          std::int64_t lda, const bfloat16* b, std::int64_t ldb, bfloat16 beta, bfloat16* c, std::int64_t ldc);

/// Sums x over the axes along which it was broadcast from `shape` (the reverse of
/// broadcast_to): a tensor of `shape`. x itself if the shapes match. Not recorded.
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace tapegrad::detail

namespace tapegrad {
// The internals the tensor, op and sweep sources use unqualified (this header is theirs alone).
using detail::broadcast_strides;
using detail::contiguous_strides;
using detail::convert;
using detail::empty_tensor;
using detail::for_each_row;
using detail::Recorder;
using detail::tangent_as_rank;
using detail::tangent_axes;
using detail::throw_error;
using detail::TNode;
using detail::OpCtx;
using detail::Unlocked;
using detail::NoUnlock;
using detail::leaf_mutex;
}  // namespace tapegrad
