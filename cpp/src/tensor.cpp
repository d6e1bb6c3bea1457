// The tensor core: storage, leaves, grad mode, recording and the reverse sweep's tensor side.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <new>


#include "tensor_internal.hpp"

namespace tapegrad {

// --- dtypes and shapes -------------------------------------------------------------------

const char* dtype_name(DType d) noexcept {
  switch (d) {
    case DType::Bool: return "bool";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "?";
}

std::size_t dtype_size(DType d) noexcept {
  switch (d) {
    case DType::Bool: return 1;
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
  }
  return 8;
}

DType promote(DType a, DType b) noexcept {
  if ((a == DType::Int64 && b == DType::Float32) || (a == DType::Float32 && b == DType::Int64)) return DType::Float64;
  return static_cast<DType>(std::max(static_cast<int>(a), static_cast<int>(b)));
}

DType arithmetic_dtype(DType a, DType b) noexcept {
  const DType d = promote(a, b);
  return is_floating(d) ? d : DType::Float64;
}

std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  if (s.size() == 1) r += ",";
  return r + ")";
}

std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) n *= d;
  return n;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      detail::throw_error(std::string("tapegrad: ") + op + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                          " cannot be broadcast together");
    r[i] = da == 1 ? db : da;
  }
  return r;
}

TensorImpl::~TensorImpl() {
  // A recorded gradient's root: removed if its tape is still alive and not rewound since.
  if (grad_root != Tape::kNone && grad_tape &&
      detail::handle_state(grad_tape, grad_tape->generation()) != detail::HandleState::Destroyed &&
      grad_tape->epoch() == grad_epoch)
    grad_tape->remove_root(grad_root);
}

namespace detail {

[[noreturn]] void throw_error(const std::string& msg) { throw Error(msg); }

void assign_grad(TensorImpl& p, std::shared_ptr<TensorImpl> g) {
  if (p.grad_root != Tape::kNone && p.grad_tape && p.grad_tape->epoch() == p.grad_epoch)
    p.grad_tape->remove_root(p.grad_root);
  p.grad_root = Tape::kNone;
  p.grad_tape = nullptr;
  if (g && g->requires_grad && !g->leaf && g->tape && g->gen == g->tape->generation()) {
    p.grad_root = g->tape->add_root(g->rec, nullptr, false);
    p.grad_tape = g->tape;
    p.grad_epoch = g->tape->epoch();
  }
  p.grad = std::move(g);
}

std::vector<std::int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  const std::size_t n = out.size(), off = n - s.size();
  std::vector<std::int64_t> st(n, 0);
  std::int64_t acc = 1;
  for (std::size_t d = s.size(); d-- > 0;) {
    st[d + off] = (s[d] == 1) ? 0 : acc;
    acc *= s[d];
  }
  return st;
}

int normalize_axis(int axis, int ndim, const char* op) {
  if (axis < -ndim || axis >= ndim)
    throw_error(std::string("tapegrad: ") + op + ": axis " + std::to_string(axis) +
                " is out of bounds for a tensor of dimension " + std::to_string(ndim));
  return axis < 0 ? axis + ndim : axis;
}

std::vector<int> normalize_axes(const Axes& axes, int ndim, const char* op) {
  std::vector<int> r;
  if (axes.all) {
    for (int i = 0; i < ndim; ++i) r.push_back(i);
    return r;
  }
  for (int a : axes.list) {
    const int n = normalize_axis(a, ndim, op);
    if (std::find(r.begin(), r.end(), n) != r.end())
      throw_error(std::string("tapegrad: ") + op + ": axis " + std::to_string(a) + " is repeated");
    r.push_back(n);
  }
  std::sort(r.begin(), r.end());
  return r;
}

}  // namespace detail

// --- storage -------------------------------------------------------------------------------
// Blocks are recycled by size class (powers of two from 64 bytes), so a training loop that
// makes the same tensors each step stops allocating after the first one.
namespace {

constexpr std::size_t kMinBlock = 64;
constexpr std::size_t kMaxCached = std::size_t(1) << 30;  // bytes kept for reuse, at most

struct BlockCache {
  std::mutex mutex;
  std::vector<void*> free[64];
  std::size_t cached = 0;
};
BlockCache& block_cache() {
  static BlockCache* c = new BlockCache;  // never destroyed: tensors may outlive statics
  return *c;
}

int size_class(std::size_t bytes) {
  int c = 6;  // 64 bytes
  while ((std::size_t(1) << c) < bytes) ++c;
  return c;
}

// 64-byte aligned (a cache line, an AVX-512 vector). Not huge-page advised: on first touch
// a huge page costs a 2 MiB clear (measured here: the first steps of a 10^6-element loop took
// 150 ms instead of 44), and streaming kernels gain little from fewer TLB misses.
void* raw_alloc(std::size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return p;
}

struct BlockDeleter {
  int cls;
  void operator()(void* p) const noexcept {
    BlockCache& c = block_cache();
    const std::size_t bytes = std::size_t(1) << cls;
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      if (c.cached + bytes <= kMaxCached) {
        try {
          c.free[cls].push_back(p);
          c.cached += bytes;
          return;
        } catch (...) {
        }
      }
    }
    std::free(p);
  }
};

std::shared_ptr<void> allocate_storage(std::size_t bytes) {
  const int cls = size_class(std::max(bytes, kMinBlock));
  if (cls >= 63) throw std::bad_alloc();
  void* p = nullptr;
  {
    BlockCache& c = block_cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (!c.free[cls].empty()) {
      p = c.free[cls].back();
      c.free[cls].pop_back();
      c.cached -= std::size_t(1) << cls;
    }
  }
  if (!p) p = raw_alloc(std::size_t(1) << cls);
  try {
    return std::shared_ptr<void>(p, BlockDeleter{cls});
  } catch (...) {
    BlockDeleter{cls}(p);
    throw;
  }
}


}  // namespace


namespace detail {

Tensor empty_tensor(const Shape& shape, DType dtype) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw_error("tapegrad: negative dimension in shape " + shape_str(shape));
    if (d != 0 && n > (std::int64_t(1) << 48) / d)
      throw_error("tapegrad: shape " + shape_str(shape) + " is too large");
    n *= d;
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = allocate_storage(static_cast<std::size_t>(n) * dtype_size(dtype));
  impl->data = impl->storage.get();
  impl->dtype = dtype;
  impl->shape = shape;
  impl->numel = n;
  return Tensor(std::move(impl));
}

Tensor view_as_shape(const Tensor& x, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->version = version_of(x);  // views of the same memory share its version
  impl->storage = x.impl().storage;
  impl->data = x.impl().data;
  impl->dtype = x.dtype();
  impl->shape = shape;
  impl->numel = shape_numel(shape);  // x's, or fewer (a view of a contiguous run)
  impl->basis = x.impl().basis && impl->numel == x.numel() && !shape.empty() && shape[0] == x.shape()[0];
  return Tensor(std::move(impl));
}

Tensor reshaped(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (grad_enabled() && x.requires_grad()) return reshape(x, shape);
  return view_as_shape(x, shape);
}

Tensor convert(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor r = empty_tensor(x.shape(), dtype);
  const std::int64_t n = x.numel();
  TG_ANY_DISPATCH(x.dtype(), S, {
    const S* s = x.data<S>();
    TG_ANY_DISPATCH(dtype, D, {
      D* d = r.data<D>();
      for (std::int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(s[i]);
    });
  });
  return r;
}

// --- recording ---------------------------------------------------------------------------------

Tensor clone_values(const Tensor& x) {
  Tensor r = empty_tensor(x.shape(), x.dtype());
  std::memcpy(r.raw_data(), x.raw_data(), static_cast<std::size_t>(x.numel()) * dtype_size(x.dtype()));
  return r;
}
// grad += g: in place when `always` (a leaf's .grad, as PyTorch does) or when grad's
// memory is its own (a gradient in flight may be shared between two inputs), else into a
// new tensor.
void accumulate_into(std::shared_ptr<TensorImpl>& grad, const Tensor& g, bool always) {
  if (always || (grad->storage.use_count() == 1 && grad.use_count() == 1)) {
    const std::int64_t n = grad->numel;
    TG_FLOAT_DISPATCH(grad->dtype, T, {
      T* a = grad->ptr<T>();
      const T* b = g.data<T>();
      for (std::int64_t i = 0; i < n; ++i) a[i] += b[i];
    });
    ++grad->version_counter();
  } else {
    NoGrad ng;
    grad = add(Tensor(grad), g).impl_ptr();
  }
}

[[noreturn]] void throw_unusable_tensor(const Tensor& t) {
  const TensorImpl& p = t.impl();
  switch (handle_state(p.tape, p.gen)) {
    case HandleState::Destroyed:
      throw_error("tapegrad: this Tensor was recorded on a tape that has been destroyed");
    case HandleState::Stale:
      throw_error(
          "tapegrad: this Tensor is stale: its tape was cleared after it was recorded "
          "(clear() invalidates every result recorded on a tape; its value is still readable)");
    case HandleState::Current:
      break;
  }
  throw_error("tapegrad: this Tensor was recorded on another tape");
}

namespace {
// A leaf's record on a tape: its gradient goes into the leaf's grad.
class LeafNode final : public TNode {
 public:
  explicit LeafNode(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}

 protected:
  void vjp(const Tensor& g) override {
    TensorImpl& p = *leaf_;
    if (grad_enabled()) {  // create_graph: .grad is a recorded result
      const Tensor gd = astype(g, p.dtype);
      const Tensor old = Tensor(leaf_).grad();
      assign_grad(p, (old.defined() ? add(old, gd) : gd).impl_ptr());
      return;
    }
    Tensor gd = convert(g, p.dtype);
    if (p.grad && p.grad->requires_grad) {  // a recorded gradient from an earlier create_graph
      assign_grad(p, add(Tensor(p.grad).detach(), gd).impl_ptr());
      return;
    }
    if (!p.grad) {
      // Take the gradient if nothing else shares it, else keep a private copy.
      if (gd.impl_ptr().use_count() == 1 + (gd.same(g) ? 1 : 0) && gd.impl().storage.use_count() == 1) {
        p.grad = gd.impl_ptr();
      } else {
        p.grad = clone_values(gd).impl_ptr();
      }
      return;
    }
    accumulate_into(p.grad, gd, true);
  }

  // A leaf has no inputs: its tangent is the seed a sweep gives it, or zero.
  Tensor jvp(const std::vector<Tensor>&) override { return Tensor(); }

  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }

 public:
  const TensorImpl* leaf() const noexcept override { return leaf_.get(); }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// A Var entering tensor arithmetic: a 0-d tensor whose gradient goes to a scalar record.
class ScalarNode final : public TNode {
 protected:
  void vjp(const Tensor& g) override { give(0, g); }
  Tensor jvp(const std::vector<Tensor>& t) override { return t[0]; }  // (K,): the scalar's tangents
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }
};
}  // namespace

std::uint32_t record_of(const Tensor& t, Tape& tape) {
  TensorImpl& p = t.impl();
  if (!p.leaf) {
    if (p.tape == &tape && p.gen == tape.generation()) return p.rec;
    throw_unusable_tensor(t);
  }
  if (p.tape == &tape && p.gen == tape.generation()) return p.rec;
  auto node = std::make_unique<LeafNode>(t.impl_ptr());
  node->out_ = t.impl_ptr();
  node->is_leaf_node_ = true;
  const std::uint32_t rec = tape.push_node(std::move(node));
  p.tape = &tape;
  p.rec = rec;
  p.gen = tape.generation();
  return rec;
}

// A one-element tensor entering scalar arithmetic (made by recorded sweeps, where a recorded
// tensor gradient reaches a Var): scalar records read its value; its adjoint (a double in a
// plain sweep, a Var in a recorded one) goes back to the tensor as a 0-d gradient.
class ItemNode final : public TNode {
 public:
  bool scalar_output() const noexcept override { return true; }

 protected:
  void vjp(const Tensor& g) override { give(0, g); }  // add_grad reshapes to the input's shape
  Tensor jvp(const std::vector<Tensor>& t) override { return t[0]; }  // tangent() makes it (K,)
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }
};

Var var_of(const Tensor& t) {
  if (t.numel() != 1) throw_error("tapegrad: internal error: a Var from a tensor of shape " + shape_str(t.shape()));
  const double value = t.item();
  if (!t.requires_grad() || !grad_enabled()) return Var::constant(value);
  const TensorImpl& p = t.impl();
  Tape& tape = !p.leaf && p.tape ? *p.tape : Tape::active();
  auto node = std::make_unique<ItemNode>();
  node->in_ = {record_of(t, tape)};
  Tensor out = empty_tensor({}, DType::Float64);
  *out.data<double>() = value;
  node->out_ = out.impl_ptr();
  const std::uint32_t rec = tape.push_node(std::move(node), value);
  TensorImpl& q = out.impl();
  q.leaf = false;
  q.requires_grad = true;
  q.tape = &tape;
  q.rec = rec;
  q.gen = tape.generation();
  return Var(value, rec, tape.generation(), &tape);
}

void TNode::reverse_recorded(ReverseSweep& sweep, std::uint32_t i) {
  if (scalar_output() && (*sweep.has)[i]) {  // its adjoint is a Var: back into tensors, recorded
    EnableGrad eg;
    add_grad(Tensor::from_var((*sweep.adj)[i]));
  }
  step(sweep);
}

void TNode::tangent(TangentSweep& sweep, std::uint32_t i) {
  std::vector<Tensor> ts(in_.size());
  bool any = false;
  for (std::size_t k = 0; k < in_.size(); ++k)
    if (const Tensor* t = sweep.tangent_of(in_[k])) {
      ts[k] = *t;
      any = true;
    }
  if (any) sweep.set(i, tangent_from(ts, sweep.K));
}

Tensor scalar_record_tensor(Tape* tape, std::uint32_t rec, double value) {
  Tensor r = empty_tensor({}, DType::Float64);
  *r.data<double>() = value;
  if (!tape || rec == Tape::kNone || !grad_enabled()) return r;
  auto node = std::make_unique<ScalarNode>();
  node->in_ = {rec};
  node->out_ = r.impl_ptr();
  const std::uint32_t me = tape->push_node(std::move(node));
  TensorImpl& p = r.impl();
  p.leaf = false;
  p.requires_grad = true;
  p.tape = tape;
  p.rec = me;
  p.gen = tape->generation();
  return r;
}

void TNode::add_grad(const Tensor& g) {
  Tensor gd = g;
  if (gd.dtype() != out_->dtype) gd = astype(gd, out_->dtype);
  if (gd.shape() != out_->shape) {
    if (gd.numel() != out_->numel)
      throw_error("tapegrad: internal error: a gradient of shape " + shape_str(gd.shape()) +
                  " for a result of shape " + shape_str(out_->shape));
    gd = reshaped(gd, out_->shape);
  }
  if (!grad_.defined()) {
    grad_ = gd;
    return;
  }
  if (grad_.requires_grad() || gd.requires_grad()) {  // create_graph: recorded
    grad_ = add(grad_, gd);
    return;
  }
  // A second contribution: added in place when our gradient's memory is ours alone.
  std::shared_ptr<TensorImpl> mine = std::move(grad_.impl_ptr_ref());
  accumulate_into(mine, gd);
  grad_ = Tensor(std::move(mine));
}

void TNode::stamp(const std::vector<const Tensor*>& inputs, const Tensor& out) {
  if (saves_inputs())
    for (const Tensor* t : inputs) {
      auto c = version_of(*t);
      const std::uint64_t v = *c;
      saved_.push_back(Saved{std::move(c), v});
    }
  if (saves_output()) {
    auto c = version_of(out);
    const std::uint64_t v = *c;
    saved_.push_back(Saved{std::move(c), v});
  }
}

void TNode::give(std::size_t k, const Tensor& gk) {
  const std::uint32_t rec = in_[k];
  if (rec == Tape::kNone) return;
  ReverseSweep& sweep = *sweep_;
  Tape& tape = sweep.tape;
  if (tape.record(rec).op == Op::Node) {
    static_cast<TNode&>(tape.node(rec)).add_grad(gk);
    if (!sweep.recorded) tape.mark_reached(rec);  // (a recorded sweep visits every tensor record)
  } else if (sweep.recorded) {  // the scalar record's adjoint is a Var
    const Var v = var_of(gk.numel() == 1 ? gk : sum(gk));
    std::vector<Var>& adj = *sweep.adj;
    std::vector<char>& has = *sweep.has;
    adj[rec] = has[rec] ? adj[rec] + v : v;
    has[rec] = 1;
  } else {
    if (gk.requires_grad())
      throw_error("tapegrad: internal error: a recorded gradient reached a Var outside a recorded sweep");
    double s = 0.0;
    const std::int64_t n = gk.numel();
    TG_FLOAT_DISPATCH(gk.dtype(), T, {
      const T* p = gk.data<T>();
      for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]);
    });
    tape.add_adjoint(rec, s);
  }
}

void TNode::check_versions() const {
  for (const Saved& sv : saved_)
    if (*sv.counter != sv.version)
      throw_error("tapegrad: a tensor this gradient needs was modified by an in-place operation after it was recorded "
                  "(its version is " + std::to_string(*sv.counter) + ", the graph saved version " +
                  std::to_string(sv.version) + "); run backward() before changing it, or change a clone()");
}

Tensor TNode::tangent_from(const std::vector<Tensor>& t, std::int64_t K) {
  check_versions();
  Tensor r = jvp(t);
  if (!r.defined()) return r;
  if (r.dtype() != out_->dtype) r = astype(r, out_->dtype);
  Shape want{K};
  want.insert(want.end(), out_->shape.begin(), out_->shape.end());
  if (r.shape() != want) r = r.numel() == shape_numel(want) ? reshaped(r, want) : broadcast_to(r, want);
  return r;
}

Tensor tangent_as_rank(const Tensor& t, std::size_t rank) {
  const std::size_t have = t.shape().size() - 1;
  if (have >= rank) return t;
  Shape s{t.shape()[0]};
  s.insert(s.end(), rank - have, 1);
  s.insert(s.end(), t.shape().begin() + 1, t.shape().end());
  return reshaped(t, s);
}

void TNode::step(ReverseSweep& sweep) {
  Tape& tape = sweep.tape;
  if (!grad_.defined()) {
    // A record that scalar records read: in a plain sweep its adjoint slot is its adjoint.
    if (!scalar_output() || sweep.recorded || !out_ || tape.adjoint(out_->rec) == 0.0) return;
    grad_ = Tensor::full({}, tape.adjoint(out_->rec));
  }
  check_versions();
  Tensor g = std::move(grad_);
  grad_ = Tensor();
  // The rules run on plain tensors, or, for create_graph, recorded: the gradients they make
  // are then results on the tape, differentiable again.
  GradModeGuard mode(sweep.recorded);
  if (capture_) *capture_ = capture_->defined() ? add(*capture_, g) : g;
  if (!sweep.deliver && is_leaf_node_) return;  // grad(): leaves' .grad untouched
  if (out_ && out_->retains_grad && sweep.deliver) {
    if (grad_enabled()) {
      const Tensor old = Tensor(out_).grad();
      assign_grad(*out_, (old.defined() ? add(old, g) : g).impl_ptr());
    } else if (!out_->grad) {
      out_->grad = clone_values(g).impl_ptr();
    } else {
      accumulate_into(out_->grad, g);
    }
  }
  sweep_ = &sweep;
  vjp(g);
}

Recorder::Recorder(std::initializer_list<const Tensor*> inputs, const char* op) {
  init(inputs.begin(), inputs.size(), op);
}

Recorder::Recorder(const std::vector<Tensor>& inputs, const char* op) {
  std::vector<const Tensor*> ptrs;
  ptrs.reserve(inputs.size());
  for (const Tensor& t : inputs) ptrs.push_back(&t);
  init(ptrs.data(), ptrs.size(), op);
}

void Recorder::init(const Tensor* const* inputs, std::size_t n, const char* op) {
  inputs_.assign(inputs, inputs + n);
  if (!grad_enabled()) return;
  Tape* tape = nullptr;
  bool any = false;
  for (const Tensor* t : inputs_) {
    const TensorImpl& p = t->impl();
    if (!p.requires_grad) continue;
    any = true;
    if (p.leaf) continue;
    if (!p.tape || p.gen != p.tape->generation()) throw_unusable_tensor(*t);
    if (tape && tape != p.tape)
      throw_error(std::string("tapegrad: ") + op + ": the operands were recorded on different tapes");
    tape = p.tape;
  }
  if (!any) return;
  tape_ = tape ? tape : &Tape::active();
}

Tensor Recorder::record(std::unique_ptr<TNode> node, Tensor out) {
  if (!tape_) return out;
  node->in_.resize(inputs_.size());
  for (std::size_t k = 0; k < inputs_.size(); ++k)
    node->in_[k] = inputs_[k]->requires_grad() ? record_of(*inputs_[k], *tape_) : Tape::kNone;
  node->out_ = out.impl_ptr();
  node->stamp(inputs_, out);
  const std::uint32_t rec = tape_->push_node(std::move(node));
  TensorImpl& p = out.impl();
  p.leaf = false;
  p.requires_grad = true;
  p.tape = tape_;
  p.rec = rec;
  p.gen = tape_->generation();
  return out;
}

}  // namespace detail

// --- Tensor ------------------------------------------------------------------------------------

using detail::empty_tensor;
using detail::throw_error;

TensorImpl& Tensor::impl() const {
  if (!p_) throw_error("tapegrad: this Tensor is null (default-constructed)");
  return *p_;
}

std::int64_t Tensor::dim(int axis) const {
  return shape()[static_cast<std::size_t>(detail::normalize_axis(axis, ndim(), "dim"))];
}

template <class T>
T* Tensor::data() const {
  constexpr DType want = std::is_same_v<T, float>          ? DType::Float32
                         : std::is_same_v<T, double>       ? DType::Float64
                         : std::is_same_v<T, std::int64_t> ? DType::Int64
                                                           : DType::Bool;
  if (impl().dtype != want)
    throw_error(std::string("tapegrad: data<") + dtype_name(want) + ">() on a tensor of dtype " +
                dtype_name(impl().dtype));
  return static_cast<T*>(impl().data);
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template std::int64_t* Tensor::data<std::int64_t>() const;
template bool* Tensor::data<bool>() const;

Tensor Tensor::empty(const Shape& shape, DType dtype) { return empty_tensor(shape, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor r = empty_tensor(shape, dtype);
  const std::int64_t n = r.numel();
  TG_ANY_DISPATCH(dtype, T, {
    T* p = r.data<T>();
    const T v = static_cast<T>(value);
    for (std::int64_t i = 0; i < n; ++i) p[i] = v;
  });
  return r;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::from_values(const std::vector<double>& values, const Shape& shape, DType dtype) {
  Tensor r = empty_tensor(shape, dtype);
  if (static_cast<std::int64_t>(values.size()) != r.numel())
    throw_error("tapegrad: from_values: " + std::to_string(values.size()) + " values for shape " + shape_str(shape));
  TG_ANY_DISPATCH(dtype, T, {
    T* p = r.data<T>();
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
  });
  return r;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, std::function<void()> release) {
  auto impl = std::make_shared<TensorImpl>();
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw_error("tapegrad: negative dimension in shape " + shape_str(shape));
    n *= d;
  }
  impl->storage = std::shared_ptr<void>(data, [release = std::move(release)](void*) {
    if (release) release();
  });
  impl->data = data;
  impl->dtype = dtype;
  impl->shape = shape;
  impl->numel = n;
  return Tensor(std::move(impl));
}

Tensor Tensor::arange(double start, double stop, double step, DType dtype) {
  if (step == 0 || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
    throw_error("tapegrad: arange: the step must be nonzero and the bounds finite");
  const double len = std::ceil((stop - start) / step);
  const std::int64_t n = len > 0 ? static_cast<std::int64_t>(len) : 0;
  Tensor r = empty_tensor({n}, dtype);
  TG_ANY_DISPATCH(dtype, T, {
    T* p = r.data<T>();
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return r;
}

Tensor Tensor::eye(std::int64_t n, std::int64_t m, DType dtype) {
  if (m < 0) m = n;
  Tensor r = zeros({n, m}, dtype);
  TG_ANY_DISPATCH(dtype, T, {
    T* p = r.data<T>();
    for (std::int64_t i = 0; i < std::min(n, m); ++i) p[i * m + i] = static_cast<T>(1);
  });
  return r;
}

Tensor Tensor::from_var(const Var& v) {
  if (v.is_constant()) return detail::scalar_record_tensor(nullptr, Tape::kNone, v.value());
  Tape& tape = detail::checked_tape(v, "Tensor::from_var");
  return detail::scalar_record_tensor(&tape, v.index(), v.value());
}

double Tensor::item() const {
  if (numel() != 1)
    throw_error("tapegrad: item() needs a tensor with one element, not shape " + shape_str(shape()));
  double r = 0;
  TG_ANY_DISPATCH(dtype(), T, { r = static_cast<double>(*data<T>()); });
  return r;
}

std::vector<double> Tensor::to_vector() const {
  std::vector<double> r(static_cast<std::size_t>(numel()));
  TG_ANY_DISPATCH(dtype(), T, {
    const T* p = data<T>();
    for (std::size_t i = 0; i < r.size(); ++i) r[i] = static_cast<double>(p[i]);
  });
  return r;
}

Tensor& Tensor::requires_grad_(bool on) {
  TensorImpl& p = impl();
  if (!p.leaf) {
    if (on) return *this;
    throw_error(
        "tapegrad: requires_grad_(False) on a result of a recorded op; use detach() to get a "
        "tensor without a graph");
  }
  if (on && !is_floating(p.dtype))
    throw_error(std::string("tapegrad: only float32 and float64 tensors can require grad, not ") +
                dtype_name(p.dtype));
  p.requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  TensorImpl& p = impl();
  // A recorded gradient may have moved (collect()): refresh its handle from its root.
  if (p.grad && p.grad_root != Tape::kNone && p.grad_tape && p.grad_tape->epoch() == p.grad_epoch) {
    p.grad->rec = p.grad_tape->root_record(p.grad_root);
    p.grad->gen = p.grad_tape->generation();
  }
  return Tensor(p.grad);
}

void Tensor::set_grad(const Tensor& g) {
  if (!g.defined()) {
    detail::assign_grad(impl(), nullptr);
    return;
  }
  if (g.shape() != shape())
    throw_error("tapegrad: a gradient of shape " + shape_str(g.shape()) + " for a tensor of shape " +
                shape_str(shape()));
  detail::assign_grad(impl(), (g.dtype() == dtype() ? g : astype(g, dtype())).impl_ptr());
}

void Tensor::retain_grad() {
  TensorImpl& p = impl();
  if (p.leaf) return;  // leaves keep their gradient anyway
  p.retains_grad = true;
}

Tensor Tensor::detach() const {
  Tensor r = detail::view_as_shape(*this, shape());
  return r;
}

Tensor Tensor::clone() const {
  // x + 0 records a copy whose gradient passes through unchanged.
  if (!requires_grad() || !grad_enabled()) return detail::clone_values(*this);
  return add(*this, 0.0);
}

void Tensor::assign(const Tensor& values) {
  TensorImpl& p = impl();
  if (values.shape() != p.shape)
    throw_error("tapegrad: assign(): values of shape " + shape_str(values.shape()) + " for a tensor of shape " +
                shape_str(p.shape));
  Tensor v = detail::convert(values, p.dtype);
  std::memmove(p.data, v.raw_data(), static_cast<std::size_t>(p.numel) * dtype_size(p.dtype));
  ++p.version_counter();
  // Its records hold the old values: record it afresh on next use.
  if (p.leaf) p.gen = 0;
}

void Tensor::sgd_step(double lr) {
  TensorImpl& p = impl();
  if (!p.grad) return;
  const std::int64_t n = p.numel;
  TG_FLOAT_DISPATCH(p.dtype, T, {
    T* a = p.ptr<T>();
    const T* g = p.grad->ptr<T>();
    const T s = static_cast<T>(lr);
    for (std::int64_t i = 0; i < n; ++i) a[i] -= s * g[i];
  });
  ++p.version_counter();
  if (p.leaf) p.gen = 0;
}

Tensor astype(const Tensor& x, DType dtype);  // tensor_ops.cpp
Tensor zeros_like(const Tensor& x) { return Tensor::zeros(x.shape(), x.dtype()); }
Tensor ones_like(const Tensor& x) { return Tensor::ones(x.shape(), x.dtype()); }
Tensor full_like(const Tensor& x, double value) { return Tensor::full(x.shape(), value, x.dtype()); }

}  // namespace tapegrad
