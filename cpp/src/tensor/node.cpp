// Tensor records: TNode (its answers to the sweeps' questions, from each op's vjp and jvp),
// leaves' records (LeafNode), Recorder, and the gradient bookkeeping they share.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "ops/table.hpp"

namespace tapegrad {

namespace detail {

const std::vector<const char*>& tensor_op_names() {
  static const std::vector<const char*> names{
#define TAPEGRAD_X(Name) #Name,
      TAPEGRAD_TENSOR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
  };
  return names;
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

Tape* running_segment_tape() noexcept { return segment_tape_now(); }

Tensor run_grad_hooks(const TensorImpl& p, Tensor g) {
  if (!p.hooks || p.hooks->pre.empty()) return g;
  const std::vector<TensorHooks::Pre> hooks = p.hooks->pre;  // a copy: a hook may remove itself
  for (const TensorHooks::Pre& h : hooks) {
    Tensor r = h.fn(g);
    if (!r.defined()) continue;
    if (r.shape() != g.shape())
      throw_error("tapegrad: a hook returned a gradient of shape " + shape_str(r.shape()) + " for a tensor of shape " +
                  shape_str(g.shape()) + " (a hook must return a gradient of the tensor's shape, or None)");
    if (r.dtype() != g.dtype())
      throw TypeError(std::string("tapegrad: a hook changed the dtype of the gradient (was ") + dtype_name(g.dtype()) +
                      ", got " + dtype_name(r.dtype()) + "): return a gradient of the same dtype, or None");
    g = r;
  }
  return g;
}

void run_post_accumulate_hooks(const std::shared_ptr<TensorImpl>& p) {
  if (!p->hooks || p->hooks->post.empty()) return;
  const std::vector<TensorHooks::Post> hooks = p->hooks->post;
  for (const TensorHooks::Post& h : hooks) h.fn(Tensor(p));
}

[[noreturn]] void throw_released() {
  throw_error(
      "tapegrad: trying to backward through the graph a second time: the first backward() released it "
      "(what it saved is freed). Specify retain_graph=True on the first backward() to sweep it again");
}

void release_graph(const Tensor& t) noexcept {
  TensorImpl& p = t.impl();
  if (p.leaf || p.released) return;
  p.released_name = grad_fn_name(t);
  p.released = true;
  p.gen = 0;  // stale: no handle may reach the old record again
}

const char* grad_fn_name(const Tensor& t) noexcept {
  const TensorImpl& p = t.impl();
  if (p.leaf || !p.requires_grad) return nullptr;
  if (p.released) return p.released_name;
  if (!is_current(p.tape, p.gen)) return nullptr;
  const Record& r = p.tape->record(p.rec);
  return r.op == Op::Node ? p.tape->node(p.rec).name() : op_info(r.op).backward_name;
}

GraphNode graph_node(const Tape& tape, std::uint32_t rec) {
  GraphNode g;
  const Record& r = tape.record(rec);
  if (r.op == Op::Node) {
    const Node& n = tape.node(rec);
    g.name = n.name();
    if (const auto* t = dynamic_cast<const TNode*>(&n); t && t->is_leaf_node_) g.variable = t->out_;
  } else {
    g.name = op_info(r.op).backward_name;
  }
  tape.for_each_operand(rec, [&](std::uint32_t j) { g.inputs.push_back(j); });
  return g;
}

[[noreturn]] void throw_unusable_tensor(const Tensor& t) {
  const TensorImpl& p = t.impl();
  if (p.released) throw_released();
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

void accumulate_grad(const std::shared_ptr<TensorImpl>& target, const Tensor& g, bool in_place) {
  TensorImpl& p = *target;
  // Several threads' sweeps may deliver into one leaf: one at a time.
  std::lock_guard<std::recursive_mutex> lock(leaf_mutex(&p));
  NoUnlock keep_host_lock;
  if (grad_enabled()) {  // create_graph: .grad is a recorded result
    Tensor gd = astype(g, p.dtype);
    if (gd.impl_ptr() == target) gd = gd.clone();  // (a hook returned the tensor: .grad is a copy, as PyTorch's)
    const Tensor old = current_grad(p);
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
  accumulate_into(p.grad, gd, in_place);
}

namespace {
// A leaf's record on a tape: its gradient goes into the leaf's grad.
class LeafNode final : public TNode {
 public:
  const char* name() const noexcept override { return "AccumulateGrad"; }
  explicit LeafNode(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}

 protected:
  void vjp(OpCtx&, const Tensor& g) override {
    accumulate_grad(leaf_, g, true);
    run_post_accumulate_hooks(leaf_);
  }

  // A leaf has no inputs: its tangent is the seed a sweep gives it, or zero.
  Tensor jvp(OpCtx&, const std::vector<Tensor>&) override { return Tensor(); }
  // Run forward without a new value (ForwardSweep::set): the leaf as it is now.
  Tensor forward_at(OpCtx&, const std::vector<Tensor>&) override { return Tensor(leaf_); }

  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }

 public:
  const TensorImpl* leaf() const noexcept override { return leaf_.get(); }
  // The leaf's data is its owner's (a parameter): the record keeps nothing alive but itself.
  std::size_t bytes() const noexcept override { return kOverhead; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// A released result used again as an operand: a record with no inputs that refuses the
// gradients a sweep brings it (PyTorch raises when a backward reaches a freed graph).
class ReleasedNode final : public TNode {
 public:
  explicit ReleasedNode(const char* name) : name_(name ? name : "Node") {}
  const char* name() const noexcept override { return name_; }
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }

 protected:
  void vjp(OpCtx&, const Tensor&) override { throw_released(); }
  Tensor jvp(OpCtx&, const std::vector<Tensor>&) override { throw_released(); }
  Tensor forward_at(OpCtx&, const std::vector<Tensor>&) override { throw_released(); }

 private:
  const char* name_;
};

}  // namespace

std::unique_ptr<Node> TNode::stand_in() {
  // As PyTorch: what saved values goes (a later sweep through it raises); a record that
  // saved none stays, and can be swept again.
  const std::shared_ptr<TensorImpl> res = result();
  if (is_leaf_node_ || released_node_ || !releasable() || (!saves_inputs() && !saves_output())) return nullptr;
  // The result is released (its value stays, as an operand it is a record that refuses
  // gradients), and what this record kept goes with it.
  const char* n = name();
  if (res) {
    res->released_name = n;
    res->released = true;
    res->gen = 0;
  }
  auto r = std::make_unique<ReleasedNode>(n);
  r->released_node_ = true;
  return r;
}

std::uint32_t record_of(const Tensor& t, Tape& tape) {
  TensorImpl& p = t.impl();
  if (!p.leaf) {
    if (p.tape == &tape && p.gen == tape.generation()) return p.rec;  // (`tape` is alive: ours)
    if (!p.released) throw_unusable_tensor(t);
  }
  if (p.leaf && tls_segment && &tape == tls_segment->tape) {  // a leaf in a checkpointed segment
    for (const auto& [impl, rec] : tls_segment->leaves)
      if (impl == &p) return rec;
    auto node = std::make_unique<LeafNode>(t.impl_ptr());
    node->is_leaf_node_ = true;
    node->set_output(t.impl_ptr());
    const std::uint32_t rec = tape.push_node(std::move(node));
    tls_segment->leaves.emplace_back(&p, rec);
    return rec;
  }
  std::lock_guard<std::recursive_mutex> lock(leaf_mutex(&p));  // a leaf may be used by several threads
  if (p.tape == &tape && p.gen == tape.generation()) return p.rec;
  std::unique_ptr<TNode> node;
  if (p.leaf) {
    node = std::make_unique<LeafNode>(t.impl_ptr());
    node->is_leaf_node_ = true;
  } else {
    node = std::make_unique<ReleasedNode>(p.released_name);
    node->released_node_ = true;
  }
  node->set_output(t.impl_ptr());
  const std::uint32_t rec = tape.push_node(std::move(node));
  p.tape = &tape;
  p.rec = rec;
  p.gen = tape.generation();
  return rec;
}



void TNode::reverse_recorded(ReverseSweep& sweep, std::uint32_t i) {
  if (scalar_output() && (*sweep.has)[i]) {  // its adjoint is a Var: back into tensors, recorded
    EnableGrad eg;
    add_grad(*sweep.ws, i, Tensor::from_var((*sweep.adj)[i]));
  }
  step(sweep, i);
}

void TNode::tangent(TangentSweep& sweep, std::uint32_t i) {
  std::vector<Tensor> ts(in_.size());
  bool any = false;
  for (std::size_t k = 0; k < in_.size(); ++k)
    if (const Tensor* t = sweep.tangent_of(in_[k])) {
      ts[k] = *t;
      any = true;
    }
  if (any) sweep.set(i, tangent_from(sweep, i, ts));
}


void TNode::forward(ForwardSweep& sweep, std::uint32_t i) {
  if (released_node_ && !out_) throw_released();
  std::vector<Tensor> in(in_.size());
  for (std::size_t k = 0; k < in_.size(); ++k) {
    if (in_[k] != Tape::kNone) {
      in[k] = sweep.tensor(in_[k]);
    } else if (k < consts_.size() && consts_[k].defined()) {
      in[k] = consts_[k];
    } else {
      throw_error(std::string("tapegrad: record ") + std::to_string(i) + " (" + name() +
                  ") cannot run forward at new inputs: its constant input " + std::to_string(k) +
                  " was not kept (record the program on a tape that keeps its constants: Tape::set_keep_constants(true), "
                  "in Python Tape.keep_constants = True)");
    }
  }
  OpCtx c(*this, sweep.recorded);
  sweep.set(i, forward_at(c, in));
}

Tensor TNode::forward_at(OpCtx&, const std::vector<Tensor>&) {
  throw_error(std::string("tapegrad: ") + name() + " cannot run forward at new inputs");
}

void pin_result(const Tensor& t) {
  const TensorImpl& p = t.impl();
  if (p.leaf || p.released || !is_current(p.tape, p.gen) || p.tape->record(p.rec).op != Op::Node) return;
  if (auto* n = dynamic_cast<TNode*>(&p.tape->node(p.rec))) n->pin_output();
}

void TNode::add_grad(Workspace& ws, std::uint32_t me, const Tensor& g) {
  Tensor gd = g;
  if (gd.dtype() != out_dtype_) gd = astype(gd, out_dtype_);
  if (gd.shape() != out_shape_) {
    if (gd.numel() != shape_numel(out_shape_))
      throw_error("tapegrad: internal error: a gradient of shape " + shape_str(gd.shape()) +
                  " for a result of shape " + shape_str(out_shape_));
    gd = reshaped(gd, out_shape_);
  }
  Tensor& slot = ws.grad(me);
  if (!slot.defined()) {
    slot = gd;
    return;
  }
  if (slot.requires_grad() || gd.requires_grad()) {  // create_graph: recorded
    Tensor sum = add(slot, gd);  // (may record: the workspace may grow meanwhile)
    ws.grad(me) = std::move(sum);
    return;
  }
  // A second contribution: added in place when our gradient's memory is ours alone.
  std::shared_ptr<TensorImpl> mine = std::move(slot.impl_ptr_ref());
  accumulate_into(mine, gd);
  slot = Tensor(std::move(mine));
}

void TNode::save(const Tensor& t) {
  auto c = version_of(t);
  const std::uint64_t v = *c;
  const TensorImpl& p = t.impl();
  const bool parameter = p.leaf && p.requires_grad;  // (its memory is its owner's, not the graph's)
  saved_.push_back(Saved{std::move(c), v, parameter ? nullptr : p.storage.get(),
                         parameter ? 0 : static_cast<std::size_t>(p.numel) * dtype_size(p.dtype)});
}

void TNode::stamp(const std::vector<const Tensor*>& inputs, const Tensor& out) {
  for (std::size_t k = 0; k < inputs.size(); ++k)
    if (saves_input(k)) save(*inputs[k]);
  if (saves_output()) save(out);
}

void TNode::stamp_tensors(const std::vector<Tensor>& saved) {
  for (const Tensor& t : saved)
    if (t.defined()) save(t);
}

void TNode::held_values(std::vector<std::pair<const void*, std::size_t>>& into) const {
  if (out_ && !is_leaf_node_) into.emplace_back(out_->storage.get(), value_bytes());
  for (const Saved& s : saved_)
    if (s.storage) into.emplace_back(s.storage, s.bytes);
  for (const Tensor& c : consts_)
    if (c.defined()) into.emplace_back(c.impl().storage.get(), static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype()));
}

void TNode::give_to(ReverseSweep& sweep, std::size_t k, const Tensor& gk) {
  const std::uint32_t rec = in_[k];
  if (rec == Tape::kNone) return;
  Tape& tape = sweep.tape;
  const bool node = tape.record(rec).op == Op::Node;
  // A record that scalar records read as a number (scalar_output) has a real adjoint in a
  // plain sweep: a gradient for it joins that (its mark would overwrite what scalar records
  // gave it).
  if (node && (sweep.recorded || !tape.node(rec).scalar_output())) {
    TNode& target = static_cast<TNode&>(tape.node(rec));
    if (target.released_node_ && !target.out_) throw_released();  // (a released record's stand-in)
    target.add_grad(*sweep.ws, rec, gk);
    if (!sweep.recorded) sweep.mark_reached(rec);  // (a recorded sweep visits every tensor record)
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
    sweep.add_adjoint(rec, s);
  }
}

void TNode::check_versions() const {
  for (const Saved& sv : saved_)
    if (*sv.counter != sv.version)
      throw_error("tapegrad: a tensor needed for the gradient was modified by an in-place operation after it was "
                  "recorded (its version is " + std::to_string(*sv.counter) + ", the graph saved version " +
                  std::to_string(sv.version) + "); run backward() before changing it, or change a clone()");
}

Tensor TNode::tangent_from(TangentSweep& sweep, std::uint32_t me, const std::vector<Tensor>& t) {
  check_versions();
  const std::int64_t K = sweep.K;
  OpCtx c(*this, sweep, me);
  Tensor r = jvp(c, t);
  if (!r.defined()) return r;
  if (r.dtype() != out_dtype_) r = astype(r, out_dtype_);
  Shape want{K};
  want.insert(want.end(), out_shape_.begin(), out_shape_.end());
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

void TNode::step(ReverseSweep& sweep, std::uint32_t i) {
  Workspace& ws = *sweep.ws;
  Tensor g;
  if (ws.has(i)) {
    Tensor& slot = ws.grad(i);
    g = std::move(slot);
    slot = Tensor();
  } else {
    // A record that scalar records read: in a plain sweep its adjoint slot is its adjoint.
    if (!scalar_output() || sweep.recorded || sweep.adjoint(i) == 0.0) return;
    g = Tensor::full({}, sweep.adjoint(i));
  }
  check_versions();
  // The rules run on plain tensors, or, for create_graph, recorded: the gradients they make
  // are then results on the tape, differentiable again.
  GradModeGuard mode(sweep.recorded);
  const std::shared_ptr<TensorImpl> res = result();  // (a hook or retain_grad pins it: see pin_output)
  if (res && res->hooks && sweep.hooks_at(i) && !released_node_ && !(is_leaf_node_ && tls_segment_sweep))
    g = run_grad_hooks(*res, std::move(g));
  if (Tensor* c = ws.capture_of(i)) *c = c->defined() ? add(*c, g) : g;
  if (!sweep.deliver && is_leaf_node_) return;  // grad(): leaves' .grad untouched
  if (res && res->retains_grad && sweep.deliver) accumulate_grad(res, g, false);
  OpCtx c(*this, sweep.recorded, &sweep, i);
  vjp(c, g);
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
    if (p.leaf || p.released) continue;
    if (!is_current(p.tape, p.gen)) throw_unusable_tensor(*t);
    if (tls_segment && p.tape != tls_segment->tape)
      throw_error(std::string("tapegrad: checkpoint(): the checkpointed function used a tensor that requires grad "
                              "and was computed outside it (in ") + op +
                  "); pass it to checkpoint() as an argument, so that its gradient can flow");
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
  if (tape_->keeps_constants()) {
    node->consts_.resize(inputs_.size());
    for (std::size_t k = 0; k < inputs_.size(); ++k)
      if (node->in_[k] == Tape::kNone) node->consts_[k] = *inputs_[k];
  }
  node->set_output(out.impl_ptr());
  node->stamp(inputs_, out);
  node->drop_unread_output();
  node->trim();
  const std::uint32_t rec = tape_->push_node(std::move(node));
  mark_recorded(out.impl(), *tape_, rec);
  return out;
}

}  // namespace detail


}  // namespace tapegrad
