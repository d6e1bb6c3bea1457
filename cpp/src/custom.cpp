// Records whose rules are a user's code: custom ops (CustomRule, autograd::Function) and
// checkpointed segments. Both may have several outputs (MultiNode: output 0 is the record
// itself, each other output a record that reads it), and both answer the sweeps' questions
// as every TNode does: a checkpointed segment's reverse step recomputes the segment and
// sweeps it, nested in the running sweep.
#include "tapegrad/custom.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#if defined(__GNUC__)
#include <cxxabi.h>
#endif

#include "tensor/internal.hpp"

namespace tapegrad {

std::vector<Tensor> CustomRule::jvp(const std::vector<Tensor>&) {
  throw Error("tapegrad: forward-mode AD (jvp) through the custom function " + name() +
              " needs a jvp rule: define jvp(ctx, *tangents) on the Function");
}

namespace autograd::detail {
std::string demangled_name(const char* mangled) {
  std::string s = mangled;
#if defined(__GNUC__)
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (d && status == 0) s = d;
  std::free(d);
#endif
  const std::size_t colon = s.rfind("::");
  return colon == std::string::npos ? s : s.substr(colon + 2);
}
}  // namespace autograd::detail

namespace detail {
namespace {

class MultiNode;

// Output k (k >= 1) of a MultiNode: a record reading the MultiNode's record, whose gradient
// and tangent are the MultiNode's business.
class OutputNode final : public TNode {
 public:
  OutputNode(MultiNode* parent, std::size_t k) : parent_(parent), k_(k) {}
  const char* name() const noexcept override;

 protected:
  void vjp(OpCtx& c, const Tensor& g) override;
  Tensor jvp(OpCtx& c, const std::vector<Tensor>&) override;
  bool saves_inputs() const override { return false; }
  bool saves_output() const override { return false; }

 private:
  MultiNode* parent_;  // a node of the same tape, kept by it (it is this record's input)
  std::size_t k_;
};

// A record with several outputs. Output j of the op is recorded output which_[j] (-1: not
// recorded: not differentiable); recorded output 0 is this record's own.
class MultiNode : public TNode {
 public:
  std::vector<int> which_;
  std::vector<Shape> out_shapes_;
  std::vector<DType> out_dtypes_;
  std::size_t n_recorded_ = 1;    // its recorded outputs (output 0's record is this one)

  // (its OutputNodes point at it; a custom op's name is its own string)
  bool releasable() const override { return false; }

  // A custom function's forward and a checkpointed segment's are user code (Python, or a C++
  // callable) that the tape did not record: a replay cannot run them.
  Tensor forward_at(OpCtx&, const std::vector<Tensor>&) override {
    throw Error(std::string("tapegrad: ") + name() +
                " cannot run forward at new inputs: its forward is user code (a custom Function or a checkpointed "
                "function) that the tape did not record; to run it again, record its ops themselves");
  }

  // From OutputNode k's vjp: its gradient (in the sweep's workspace), and this record is reached.
  void add_output_grad(std::size_t k, const Tensor& g, ReverseSweep& sweep, std::uint32_t me) {
    {
      Tensor& slot = sweep.ws->outputs(me, n_recorded_).grads[k];
      Tensor sum = slot.defined() ? add(slot, g) : g;  // (may record: the workspace may grow meanwhile)
      sweep.ws->outputs(me, n_recorded_).grads[k] = std::move(sum);
    }
    // Output 0 got nothing: its readers were all swept before this record (they follow the
    // OutputNodes on the tape), so it gets none; zeros make this record's step run.
    if (!sweep.ws->has(me)) {
      add_grad(*sweep.ws, me, Tensor::zeros(out_shape_, out_dtype_));
      sweep.ws->outputs(me, n_recorded_).unreached0 = true;
    }
    if (!sweep.recorded) sweep.mark_reached(me);
  }

 protected:
  // The gradient of every output of the op (zeros where none came: PyTorch's materialized
  // gradients), given recorded output 0's; takes them.
  // With `materialize` false, null Tensors instead of zeros.
  std::vector<Tensor> output_grads(OpCtx& c, const Tensor& g0, bool materialize = true) {
    Workspace::Outputs others = c.sweep().ws->take_outputs(c.me());
    std::vector<Tensor> all(which_.size());
    for (std::size_t j = 0; j < which_.size(); ++j) {
      const int k = which_[j];
      if (k == 0 && !others.unreached0) all[j] = g0;
      else if (k > 0 && static_cast<std::size_t>(k) < others.grads.size()) all[j] = std::move(others.grads[static_cast<std::size_t>(k)]);
      if (!all[j].defined() && materialize)
        all[j] = Tensor::zeros(out_shapes_[j], is_floating(out_dtypes_[j]) ? out_dtypes_[j] : DType::Float64);
    }
    return all;
  }
  // Places the op's output tangents (one per output, (K, *shape) or null): recorded outputs
  // 1.. in the sweep, for their OutputNodes; returns recorded output 0's (zeros if only others
  // have one).
  Tensor place_tangents(OpCtx& c, std::vector<Tensor> t, std::int64_t K) {
    Tensor t0;
    bool any = false;
    for (std::size_t j = 0; j < which_.size(); ++j) {
      const int k = which_[j];
      if (k < 0 || !t[j].defined()) continue;
      any = true;
      if (k == 0) t0 = std::move(t[j]);
      else c.tangent_sweep().set_output(c.me(), static_cast<std::size_t>(k), std::move(t[j]));
    }
    if (any && !t0.defined()) t0 = Tensor::zeros(batched_shape(K, out_shape_), out_dtype_);
    return t0;
  }
};

const char* OutputNode::name() const noexcept { return parent_->name(); }
void OutputNode::vjp(OpCtx& c, const Tensor& g) { parent_->add_output_grad(k_, g, c.sweep(), in_[0]); }
Tensor OutputNode::jvp(OpCtx& c, const std::vector<Tensor>&) { return c.tangent_sweep().take_output(in_[0], k_); }

// The outputs of an op made from `inputs` as fresh handles: an output that is also an input or
// an earlier output, or that is recorded already, gets a handle of its own on the same data.
std::vector<Tensor> fresh_outputs(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  std::vector<Tensor> r(outputs.size());
  for (std::size_t j = 0; j < outputs.size(); ++j) {
    const Tensor& o = outputs[j];
    if (!o.defined()) throw Error("tapegrad: a custom function returned no tensor for output " + std::to_string(j));
    bool shared = o.requires_grad() || !o.is_leaf();
    for (const Tensor& x : inputs) shared = shared || x.same(o);
    for (std::size_t i = 0; i < j; ++i) shared = shared || outputs[i].same(o);
    r[j] = shared ? view_as_shape(o, o.shape()) : o;
  }
  return r;
}

// Records `node` (its which_/out_shapes_ filled; its inputs by `rec`, or in_ set and pushed on
// `tape` when rec is null) with outputs `outs` (those with which_[j] >= 0 recorded): the
// node's own record for recorded output 0, an OutputNode record for each other.
void record_outputs(Recorder* rec, Tape* tape, std::unique_ptr<MultiNode> node, const std::vector<Tensor>& outs) {
  MultiNode* m = node.get();
  std::size_t first = 0;
  while (m->which_[first] != 0) ++first;
  std::size_t n_recorded = 0;
  for (int k : m->which_) n_recorded += k >= 0;
  m->n_recorded_ = n_recorded;
  if (rec) {
    rec->record(std::move(node), outs[first]);
    tape = outs[first].impl().tape;
  } else {
    node->set_output(outs[first].impl_ptr());
    const std::uint32_t r = tape->push_node(std::move(node));
    mark_recorded(outs[first].impl(), *tape, r);
  }
  const std::uint32_t me = outs[first].impl().rec;
  for (std::size_t j = 0; j < outs.size(); ++j) {
    const int k = m->which_[j];
    if (k <= 0) continue;
    auto out = std::make_unique<OutputNode>(m, static_cast<std::size_t>(k));
    out->in_ = {me};
    out->set_output(outs[j].impl_ptr());
    const std::uint32_t r = tape->push_node(std::move(out));
    mark_recorded(outs[j].impl(), *tape, r);
  }
}

// Fills which_ (recorded: differentiable float outputs), out_shapes_, out_dtypes_; false if no
// output is recorded.
bool plan_outputs(MultiNode& m, const std::vector<Tensor>& outs, const std::vector<bool>& differentiable) {
  int next = 0;
  for (std::size_t j = 0; j < outs.size(); ++j) {
    const bool d = (differentiable.empty() || differentiable[j]) && is_floating(outs[j].dtype());
    m.which_.push_back(d ? next++ : -1);
    m.out_shapes_.push_back(outs[j].shape());
    m.out_dtypes_.push_back(outs[j].dtype());
  }
  return next > 0;
}

// The gradient gk a rule returned for input k, of shape `want`: itself, or summed down to
// `want` where it broadcasts to it (as PyTorch accepts); else an error naming both shapes.
Tensor gradient_for_input(const std::string& fn, std::size_t k, const Tensor& gk, const Shape& want) {
  if (gk.shape() == want) return gk;
  bool reducible = gk.ndim() >= static_cast<int>(want.size());
  if (reducible) {
    const std::size_t off = gk.shape().size() - want.size();
    for (std::size_t d = 0; d < want.size(); ++d)
      if (want[d] != 1 && want[d] != gk.shape()[off + d]) reducible = false;
  }
  if (!reducible)
    throw ValueError("tapegrad: function " + fn + " returned a gradient of shape " + shape_str(gk.shape()) +
                     " for input " + std::to_string(k) + " of shape " + shape_str(want));
  std::vector<int> lead;
  const std::size_t off = gk.shape().size() - want.size();
  for (std::size_t d = 0; d < off; ++d) lead.push_back(static_cast<int>(d));
  Tensor r = lead.empty() ? gk : sum(gk, Axes(lead));
  std::vector<int> ones;
  for (std::size_t d = 0; d < want.size(); ++d)
    if (want[d] == 1 && r.shape()[d] != 1) ones.push_back(static_cast<int>(d));
  return ones.empty() ? r : sum(r, Axes(ones), /*keepdims=*/true);
}

// --- custom ops ---------------------------------------------------------------------------

class CustomNode final : public MultiNode {
 public:
  explicit CustomNode(std::shared_ptr<CustomRule> rule) : rule_(std::move(rule)), name_(rule_->name()) {}
  const char* name() const noexcept override { return name_.c_str(); }
  std::vector<Shape> in_shapes_;

 protected:
  void vjp(OpCtx& c, const Tensor& g0) override {
    const std::vector<Tensor> gi = rule_->backward(output_grads(c, g0, rule_->materialize_grads()));
    if (gi.size() != in_.size())
      throw Error("tapegrad: function " + name_ + " returned an incorrect number of gradients (expected " +
                  std::to_string(in_.size()) + ", got " + std::to_string(gi.size()) + ")");
    for (std::size_t k = 0; k < gi.size(); ++k) {
      if (!needs(k) || !gi[k].defined()) continue;
      if (!is_floating(gi[k].dtype()))
        throw TypeError(std::string("tapegrad: function ") + name_ + " returned a gradient of dtype " +
                        dtype_name(gi[k].dtype()) + " for input " + std::to_string(k));
      c.give(k, gradient_for_input(name_, k, gi[k], in_shapes_[k]));
    }
  }
  Tensor jvp(OpCtx& c, const std::vector<Tensor>& t) override {
    if (!rule_->has_jvp()) rule_->jvp({});  // raises, naming the function
    std::int64_t K = 1;
    for (const Tensor& x : t)
      if (x.defined()) K = x.shape()[0];
    const std::size_t n_out = which_.size();
    std::vector<std::vector<Tensor>> per_out(n_out);
    for (std::int64_t d = 0; d < K; ++d) {
      std::vector<Tensor> tin(t.size());
      for (std::size_t k = 0; k < t.size(); ++k)
        tin[k] = t[k].defined() ? reshaped(slice(t[k], 0, d, d + 1), in_shapes_[k])
                                : Tensor::zeros(in_shapes_[k], DType::Float64);
      const std::vector<Tensor> tout = rule_->jvp(tin);
      if (tout.size() != n_out)
        throw Error("tapegrad: function " + name_ + "'s jvp returned " + std::to_string(tout.size()) +
                    " tangents for " + std::to_string(n_out) + " outputs");
      for (std::size_t j = 0; j < n_out; ++j) {
        if (tout[j].defined() && tout[j].shape() != out_shapes_[j])
          throw ValueError("tapegrad: function " + name_ + "'s jvp returned a tangent of shape " +
                           shape_str(tout[j].shape()) + " for output " + std::to_string(j) + " of shape " +
                           shape_str(out_shapes_[j]));
        per_out[j].push_back(tout[j]);
      }
    }
    std::vector<Tensor> res(n_out);
    for (std::size_t j = 0; j < n_out; ++j) {
      bool any = false;
      for (const Tensor& x : per_out[j]) any = any || x.defined();
      if (!any || which_[j] < 0) continue;
      std::vector<Tensor> rows;
      for (const Tensor& x : per_out[j])
        rows.push_back(astype(x.defined() ? x : Tensor::zeros(out_shapes_[j], out_dtypes_[j]), out_dtypes_[j]));
      res[j] = stack(rows, 0);
    }
    return place_tangents(c, std::move(res), K);
  }
  bool saves_inputs() const override { return false; }  // (what it saved is stamped apart)
  bool saves_output() const override { return false; }

 private:
  std::shared_ptr<CustomRule> rule_;
  std::string name_;
};

}  // namespace
}  // namespace detail

std::vector<Tensor> record_custom(std::shared_ptr<CustomRule> rule, const std::vector<Tensor>& inputs,
                                  const std::vector<Tensor>& outputs, const std::vector<bool>& differentiable,
                                  const std::vector<Tensor>& saved) {
  if (!rule) throw Error("tapegrad: record_custom(): no rule");
  if (!differentiable.empty() && differentiable.size() != outputs.size())
    throw Error("tapegrad: record_custom(): " + std::to_string(differentiable.size()) + " differentiable flags for " +
                std::to_string(outputs.size()) + " outputs");
  for (std::size_t k = 0; k < inputs.size(); ++k)
    if (!inputs[k].defined()) throw Error("tapegrad: record_custom(): input " + std::to_string(k) + " is a null tensor");
  detail::Recorder rec(inputs, "a custom function");
  if (!rec.on()) {
    for (std::size_t j = 0; j < outputs.size(); ++j)
      if (!outputs[j].defined())
        throw Error("tapegrad: a custom function returned no tensor for output " + std::to_string(j));
    return outputs;
  }
  std::vector<Tensor> outs = detail::fresh_outputs(inputs, outputs);
  auto node = std::make_unique<detail::CustomNode>(std::move(rule));
  if (!detail::plan_outputs(*node, outs, differentiable)) return outs;
  for (const Tensor& x : inputs) node->in_shapes_.push_back(x.shape());
  node->stamp_tensors(saved);
  detail::record_outputs(&rec, nullptr, std::move(node), outs);
  return outs;
}

// --- checkpointed segments -----------------------------------------------------------------

namespace detail {
namespace {

std::shared_ptr<Tape> segment_tape(const CheckpointOptions& o) {
  return o.new_tape ? o.new_tape() : std::make_shared<Tape>();
}

// While a segment runs apart from the graph: its tape active and marked (see tls_segment).
class SegmentScope {
 public:
  explicit SegmentScope(Tape& t) : scope_(t), state_{&t, {}}, previous_(tls_segment) { tls_segment = &state_; }
  ~SegmentScope() { tls_segment = previous_; }
  SegmentScope(const SegmentScope&) = delete;
  SegmentScope& operator=(const SegmentScope&) = delete;

 private:
  ScopedTape scope_;
  SegmentState state_;
  SegmentState* previous_;
};

[[noreturn]] void throw_no_jvp() {
  throw Error("tapegrad: forward-mode AD (jvp) through a checkpointed segment is not supported: call the "
              "function without checkpoint() under jvp (forward mode keeps no intermediate values to save)");
}

// A sweep nested in `outer` (recorded) over the records [lo, top] appended by a recompute, its
// seeds already placed in adj/has or in tensor records' gradients.
void nested_recorded_sweep(ReverseSweep& outer, std::uint32_t lo, std::uint32_t top) {
  std::vector<Var>& adj = *outer.adj;
  std::vector<char>& has = *outer.has;
  if (adj.size() <= top) {
    adj.resize(top + 1);
    has.resize(top + 1, 0);
  }
  recorded_sweep(outer.tape, top, adj, has, outer.deliver, lo, nullptr, outer.ws);
}

// A checkpointed segment's record: its reverse step recomputes the segment and sweeps it, on
// a tape of its own (a plain sweep) or on the graph's, nested in the running sweep (recorded).
class SegmentNode : public MultiNode {
 public:
  const char* name() const noexcept override { return "CheckpointFunctionBackward"; }
  bool releasable() const override { return n_recorded_ <= 1; }  // (no OutputNode reads it)
  CheckpointOptions options_;

 protected:
  void vjp(OpCtx& c, const Tensor& g0) override {
    std::vector<Tensor> g = output_grads(c, g0);
    if (c.recorded()) recompute_recorded(c, g);
    else recompute_plain(c, g);
  }
  Tensor jvp(OpCtx&, const std::vector<Tensor>&) override { throw_no_jvp(); }
  bool saves_output() const override { return false; }
  virtual void recompute_plain(OpCtx& c, const std::vector<Tensor>& g) = 0;
  /// Runs the segment again on the graph's tape (recording, from the inputs' records): the
  /// record of each output that gets a gradient (Tape::kNone for the others).
  virtual std::vector<std::uint32_t> rerun_on(Tape& tape) = 0;

  // A recorded sweep: the segment recomputed on the graph's tape, its outputs' gradients
  // joining the running sweep (a tensor record's in its workspace, a scalar record's as its
  // Var adjoint), and the new records swept nested in it.
  void recompute_recorded(OpCtx& c, const std::vector<Tensor>& g) {
    ReverseSweep& sweep = c.sweep();
    Tape& tape = sweep.tape;
    ScopedTape scope(tape);  // (a gradient that enters scalar arithmetic does so on the graph's tape)
    const std::uint32_t lo = tape.size();
    const std::vector<std::uint32_t> outs = rerun_on(tape);
    std::uint32_t top = Tape::kNone;
    for (std::size_t j = 0; j < outs.size(); ++j) {
      const std::uint32_t r = outs[j];
      if (r == Tape::kNone) continue;
      if (tape.record(r).op == Op::Node) {
        static_cast<TNode&>(tape.node(r)).add_grad(*sweep.ws, r, g[j]);  // below lo: it joins the running sweep
      } else {
        const Var seed = var_of(g[j]);  // (recorded: the gradient stays differentiable)
        std::vector<Var>& adj = *sweep.adj;
        std::vector<char>& has = *sweep.has;
        if (adj.size() < tape.size()) {
          adj.resize(tape.size());
          has.resize(tape.size(), 0);
        }
        adj[r] = has[r] ? adj[r] + seed : seed;
        has[r] = 1;
      }
      if (r >= lo && (top == Tape::kNone || r > top)) top = r;
    }
    if (top != Tape::kNone) nested_recorded_sweep(sweep, lo, top);
  }
};

class TensorSegmentNode final : public SegmentNode {
 public:
  TensorSegment fn_;
  std::vector<Tensor> args_;    // the inputs as given (kept: the segment is recomputed from them)
  std::size_t n_args_ = 0;      // inputs after them: leaves the segment used (its weights)

 protected:
  bool saves_inputs() const override { return true; }  // its inputs are read again by the recompute

 private:
  void recompute_plain(OpCtx& c, const std::vector<Tensor>& g) override {
    std::shared_ptr<Tape> tape = segment_tape(options_);
    std::vector<Tensor> grads;
    std::vector<std::size_t> wrt_index;  // which of this record's inputs each wrt is
    {
      SegmentScope scope(*tape);
      EnableGrad eg;
      std::vector<Tensor> xs(args_.size());
      std::vector<Tensor> wrt;
      for (std::size_t k = 0; k < args_.size(); ++k) {
        xs[k] = args_[k].detach();
        if (needs(k)) {
          xs[k].requires_grad_(true);
          wrt.push_back(xs[k]);
          wrt_index.push_back(k);
        }
      }
      const std::vector<Tensor> outs = fn_(xs);
      check_outputs(outs);
      for (std::size_t k = n_args_; k < in_.size(); ++k)
        if (needs(k)) {
          wrt.push_back(Tensor(out_leaves_[k - n_args_]));
          wrt_index.push_back(k);
        }
      std::vector<Tensor> ys, gs;
      for (std::size_t j = 0; j < outs.size(); ++j)
        if (which_[j] >= 0 && outs[j].requires_grad()) {
          ys.push_back(outs[j]);
          gs.push_back(g[j]);
        }
      if (ys.empty() || wrt.empty()) return;
      struct SweepFlag {
        bool previous = tls_segment_sweep;
        SweepFlag() { tls_segment_sweep = true; }
        ~SweepFlag() { tls_segment_sweep = previous; }
      } flag;
      grads = grad(ys, wrt, gs, /*create_graph=*/false, /*allow_unused=*/true);
    }
    NoGrad ng;
    for (std::size_t q = 0; q < grads.size(); ++q)
      if (grads[q].defined()) c.give(wrt_index[q], grads[q]);
  }

  std::vector<std::uint32_t> rerun_on(Tape& tape) override {
    std::vector<Tensor> outs;
    {
      ScopedTape scope(tape);
      EnableGrad eg;
      outs = fn_(args_);
    }
    check_outputs(outs);
    std::vector<std::uint32_t> recs(outs.size(), Tape::kNone);
    for (std::size_t j = 0; j < outs.size(); ++j)
      if (which_[j] >= 0 && outs[j].requires_grad()) recs[j] = record_of(outs[j], tape);
    return recs;
  }

  void check_outputs(const std::vector<Tensor>& outs) const {
    if (outs.size() != which_.size())
      throw Error("tapegrad: checkpoint(): the function returned " + std::to_string(outs.size()) +
                  " tensors when recomputed, " + std::to_string(which_.size()) + " the first time");
    for (std::size_t j = 0; j < outs.size(); ++j)
      if (outs[j].shape() != out_shapes_[j])
        throw Error("tapegrad: checkpoint(): output " + std::to_string(j) + " has shape " + shape_str(outs[j].shape()) +
                    " when recomputed, " + shape_str(out_shapes_[j]) +
                    " the first time (the function must compute the same thing again)");
  }

 public:
  std::vector<std::shared_ptr<TensorImpl>> out_leaves_;  // the leaves after the args, as inputs
};

// A segment of scalar code: its inputs are Var records, its outputs 0-d tensors (which enter
// scalar arithmetic as Vars through var_of()).
class VarSegmentNode final : public SegmentNode {
 public:
  VarSegment fn_;
  std::vector<double> values_;  // the inputs' values (the segment is recomputed from them)

 protected:
  bool saves_inputs() const override { return false; }

 private:
  void check_outputs(const std::vector<Var>& outs) const {
    if (outs.size() != which_.size())
      throw Error("tapegrad: checkpoint(): the function returned " + std::to_string(outs.size()) +
                  " Vars when recomputed, " + std::to_string(which_.size()) + " the first time");
  }

  void recompute_plain(OpCtx& c, const std::vector<Tensor>& g) override {
    std::shared_ptr<Tape> tape = segment_tape(options_);
    std::vector<std::optional<Var>> grads;
    std::vector<std::size_t> wrt_index;
    {
      ScopedTape scope(*tape);
      std::vector<Var> xs(values_.size()), wrt;
      for (std::size_t k = 0; k < values_.size(); ++k) {
        xs[k] = needs(k) ? Var(values_[k]) : Var::constant(values_[k]);
        if (needs(k)) {
          wrt.push_back(xs[k]);
          wrt_index.push_back(k);
        }
      }
      const std::vector<Var> outs = fn_(xs);
      check_outputs(outs);
      std::vector<Var> ys, seeds;
      for (std::size_t j = 0; j < outs.size(); ++j) {
        if (which_[j] < 0 || outs[j].is_constant()) continue;
        const double gj = g[j].item();
        if (gj == 0.0) continue;
        ys.push_back(outs[j]);
        seeds.push_back(Var::constant(gj));
      }
      if (ys.empty() || wrt.empty()) return;
      grads = grad(ys, wrt, seeds, GradOptions{false, true});
    }
    for (std::size_t q = 0; q < grads.size(); ++q)
      if (grads[q]) c.give(wrt_index[q], Tensor::full({}, grads[q]->value()));
  }

  std::vector<std::uint32_t> rerun_on(Tape& tape) override {
    ScopedTape scope(tape);
    std::vector<Var> xs(values_.size());
    for (std::size_t k = 0; k < values_.size(); ++k)
      xs[k] = needs(k) ? Var(values_[k], in_[k], tape.generation(), &tape) : Var::constant(values_[k]);
    const std::vector<Var> outs = fn_(xs);
    check_outputs(outs);
    std::vector<std::uint32_t> recs(outs.size(), Tape::kNone);
    for (std::size_t j = 0; j < outs.size(); ++j)
      if (which_[j] >= 0 && !outs[j].is_constant()) recs[j] = outs[j].index();
    return recs;
  }
};

}  // namespace
}  // namespace detail

std::vector<Tensor> checkpoint(const TensorSegment& fn, const std::vector<Tensor>& inputs,
                               const CheckpointOptions& options) {
  if (!fn) throw Error("tapegrad: checkpoint(): no function");
  for (std::size_t k = 0; k < inputs.size(); ++k)
    if (!inputs[k].defined()) throw Error("tapegrad: checkpoint(): input " + std::to_string(k) + " is a null tensor");
  if (!grad_enabled()) return fn(inputs);
  // The forward on a tape of its own, to learn which outputs require grad and which leaves
  // (weights) the segment reads; the tape and what it saved go when this block ends.
  std::vector<Tensor> outs;
  std::vector<std::shared_ptr<TensorImpl>> leaves;
  std::vector<bool> needs;
  {
    std::shared_ptr<Tape> tape = detail::segment_tape(options);
    detail::SegmentScope scope(*tape);
    std::vector<Tensor> xs(inputs.size());
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      xs[k] = inputs[k].detach();
      if (inputs[k].requires_grad()) xs[k].requires_grad_(true);
    }
    const std::vector<Tensor> ys = fn(xs);
    for (std::size_t i = 0; i < tape->size(); ++i) {
      if (tape->record(i).op != Op::Node) continue;
      auto& n = static_cast<detail::TNode&>(tape->node(i));
      if (!n.is_leaf_node_ || !n.out_) continue;
      bool known = false;
      for (const Tensor& x : xs) known = known || x.impl_ptr() == n.out_;
      for (const auto& l : leaves) known = known || l == n.out_;
      if (!known) leaves.push_back(n.out_);
    }
    outs.resize(ys.size());
    needs.resize(ys.size());
    for (std::size_t j = 0; j < ys.size(); ++j) {
      if (!ys[j].defined()) throw Error("tapegrad: checkpoint(): the function returned a null tensor");
      // The values alone, in handles of their own (an output may be an input, returned as is).
      outs[j] = detail::view_as_shape(ys[j], ys[j].shape());
      needs[j] = ys[j].requires_grad();
    }
  }
  // Recorded on the graph's tape (the segment's tape is gone).
  std::vector<Tensor> all(inputs);
  for (const auto& l : leaves) all.emplace_back(l);
  detail::Recorder rec(all, "checkpoint");
  if (!rec.on()) return outs;
  auto node = std::make_unique<detail::TensorSegmentNode>();
  if (!detail::plan_outputs(*node, outs, needs)) return outs;
  node->fn_ = fn;
  node->options_ = options;
  node->args_ = inputs;
  node->n_args_ = inputs.size();
  node->out_leaves_ = std::move(leaves);
  detail::record_outputs(&rec, nullptr, std::move(node), outs);
  return outs;
}

std::vector<Var> checkpoint(const VarSegment& fn, const std::vector<Var>& inputs, const CheckpointOptions& options) {
  if (!fn) throw Error("tapegrad: checkpoint(): no function");
  Tape* main = nullptr;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    if (inputs[k].is_constant()) continue;
    Tape& t = detail::checked_tape(inputs[k], "checkpoint()");
    if (main && main != &t) throw Error("tapegrad: checkpoint(): the inputs were recorded on different tapes");
    main = &t;
  }
  if (!main) return fn(inputs);
  // The forward on a tape of its own (gone when this block ends): the values, and which
  // outputs depend on the inputs.
  std::vector<double> values;
  std::vector<bool> depends;
  {
    std::shared_ptr<Tape> tape = detail::segment_tape(options);
    ScopedTape scope(*tape);
    std::vector<Var> xs(inputs.size());
    for (std::size_t k = 0; k < inputs.size(); ++k)
      xs[k] = inputs[k].is_constant() ? inputs[k] : Var(inputs[k].value());
    std::vector<Var> ys;
    try {
      ys = fn(xs);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) +
                  " [in checkpoint(): every Var the function reads that needs a gradient must come in as an input]");
    }
    for (const Var& y : ys) {
      if (!y.is_constant() && y.tape() != tape.get())
        throw Error("tapegrad: checkpoint(): the function returned a Var recorded outside it (return what it computes "
                    "from its inputs)");
      values.push_back(y.value());
      depends.push_back(!y.is_constant());
    }
  }
  std::vector<Tensor> outs;
  for (double v : values) outs.push_back(Tensor::full({}, v));
  auto node = std::make_unique<detail::VarSegmentNode>();
  std::vector<Var> result(values.size());
  for (std::size_t j = 0; j < values.size(); ++j) result[j] = Var::constant(values[j]);
  if (!detail::plan_outputs(*node, outs, depends)) return result;
  node->fn_ = fn;
  node->options_ = options;
  for (const Var& x : inputs) {
    node->values_.push_back(x.value());
    node->in_.push_back(x.is_constant() ? Tape::kNone : x.index());
  }
  detail::record_outputs(nullptr, main, std::move(node), outs);
  ScopedTape scope(*main);
  for (std::size_t j = 0; j < values.size(); ++j)
    if (depends[j]) result[j] = detail::var_of(outs[j]);
  return result;
}

}  // namespace tapegrad
