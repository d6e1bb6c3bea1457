// The arena tape: contiguous records in topological (record) order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tapegrad/op.hpp"

#if defined(__GNUC__)
#define TAPEGRAD_LIKELY(x) __builtin_expect(!!(x), 1)
#define TAPEGRAD_NOINLINE __attribute__((noinline))
#else
#define TAPEGRAD_LIKELY(x) (x)
#define TAPEGRAD_NOINLINE
#endif

namespace tapegrad {

/// Every error tapegrad raises: a stale handle, a full tape, a bad argument.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// A bad argument value: a shape, a count, a size (Python: ValueError).
class ValueError : public Error {
 public:
  using Error::Error;
};
/// An argument of the wrong kind or dtype (Python: TypeError).
class TypeError : public Error {
 public:
  using Error::Error;
};
/// An allocation that cannot succeed, raised before any work (Python: MemoryError).
class MemoryError : public Error {
 public:
  using Error::Error;
};
/// An index out of range (Python: IndexError).
class IndexError : public Error {
 public:
  using Error::Error;
};

/// One tape record: 12 bytes. Its value lives at the same index in the value array.
struct Record {
  Op op;
  std::uint16_t flags;  ///< reserved (tensor records will use it)
  std::uint32_t a;      ///< first operand: a record index (Leaf: its sink slot, or kNone)
  std::uint32_t b;      ///< second operand: a record index, or a constant's index (VC/CV forms)
};
static_assert(sizeof(Record) == 12);

class Tape;
class Var;
class TangentSweep;
class ForwardSweep;
namespace detail {
class Workspace;

/// What keeps where its sinks are on tapes (a Leaf's bookkeeping, detail::LeafRecords): each
/// tape it has a sink on tells it when the tape is cleared or destroyed, so that it never
/// reads a tape that is gone and never pays to ask.
class SinkOwner {
 public:
  /// Tape t is being cleared or destroyed: forget every sink and record on it.
  virtual void tape_gone(const Tape& t) noexcept = 0;

 protected:
  ~SinkOwner() = default;
};
}  // namespace detail

/// The scalar adjoints of one plain reverse sweep, by record: record i's d(seed)/d(record i)
/// (a tensor record's slot is only the mark that it was reached). A buffer the sweep owns
/// while it runs, so that the records keep no sweep state; the tape lends its buffer to the
/// sweeps of its front ends and keeps the last one's (Tape::adjoint reads them), so that a
/// sweep allocates only when the tape has grown. Move-only.
class Adjoints {
 public:
  Adjoints() = default;
  Adjoints(Adjoints&& o) noexcept : p_(o.p_), size_(o.size_), capacity_(o.capacity_) {
    o.p_ = nullptr;
    o.size_ = o.capacity_ = 0;
  }
  Adjoints& operator=(Adjoints&& o) noexcept {
    if (this != &o) {
      std::free(p_);
      p_ = o.p_;
      size_ = o.size_;
      capacity_ = o.capacity_;
      o.p_ = nullptr;
      o.size_ = o.capacity_ = 0;
    }
    return *this;
  }
  Adjoints(const Adjoints&) = delete;
  Adjoints& operator=(const Adjoints&) = delete;
  ~Adjoints() { std::free(p_); }

  /// Covers records [0, n), all zero (the memory is kept, and grown when n is larger).
  void reset(std::uint32_t n);
  /// Covers no record (keeps the memory).
  void forget() noexcept { size_ = 0; }
  /// Record i's adjoint: 0 past the records covered.
  double operator[](std::uint32_t i) const noexcept { return i < size_ ? p_[i] : 0.0; }
  double* data() noexcept { return p_; }
  std::uint32_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return std::size_t(capacity_) * sizeof(double); }

 private:
  double* p_ = nullptr;
  std::uint32_t size_ = 0, capacity_ = 0;
};

/// What a reverse sweep is doing: made once by its front end (backward, autograd.grad) and
/// handed to every record's step, so that no step reads a mode from anywhere else.
struct ReverseSweep {
  Tape& tape;
  /// create_graph: the steps run their rules recorded (on Var and Tensor), so the gradients
  /// they make are results on the tape, differentiable again.
  bool recorded = false;
  /// Whether leaves add their gradient into their .grad (a backward) or the sweep's results
  /// are only read by its front end (autograd.grad: no .grad changes).
  bool deliver = true;
  /// A recorded sweep's scalar adjoints as Vars on the tape: `(*adj)[j]` where `(*has)[j]`.
  std::vector<Var>* adj = nullptr;
  std::vector<char>* has = nullptr;
  /// Whether hooks run (a sweep that only looks, as tapegrad.viz's, runs none).
  bool hooks = true;
  /// A backward that releases its graph (retain_graph=False): each record it passes is put
  /// in the place of a stand-in that keeps none of its values (Node::stand_in), so that the
  /// graph's memory is freed as the sweep goes, as PyTorch frees saved tensors.
  bool release = false;
  /// A grad() sweep: the records on a path to a requested input (`(*needed)[i]`); only their
  /// hooks run, as only their gradients are asked for (null: every record's).
  const std::vector<char>* needed = nullptr;
  /// The sweep's workspace: the gradients its tensor records receive and grad()'s captures,
  /// by record (the records keep no sweep state). Made by the front end that seeds the sweep
  /// (Tape::reverse makes one if none is given); a nested range sweep shares its sweep's.
  detail::Workspace* ws = nullptr;
  /// The plain sweep's scalar adjoints (Tape::reverse sets it: the front end's buffer, or the
  /// tape's own lent for the sweep). A node's step adds into them through these.
  Adjoints* adjoints = nullptr;
  /// From a Node's reverse step: adds g to the adjoint of scalar record i.
  void add_adjoint(std::uint32_t i, double g) noexcept { adjoints->data()[i] += g; }
  /// From a Node's reverse step: record i (a Node) has received a gradient, so the sweep must
  /// visit it (its adjoint slot is only this mark; the gradient is in the workspace).
  void mark_reached(std::uint32_t i) noexcept { adjoints->data()[i] = 1.0; }
  /// Record i's adjoint so far.
  double adjoint(std::uint32_t i) const noexcept { return (*adjoints)[i]; }
  bool hooks_at(std::uint32_t i) const noexcept { return hooks && (!needed || (i < needed->size() && (*needed)[i])); }

  // (Tape::reverse's own: its seeds, and the records that lead to them, marked when first
  // asked, by a scalar record whose adjoint is zero and one of whose partials is not finite.)
  std::uint32_t from_ = 0xFFFFFFFFu;
  const std::uint32_t* also_ = nullptr;
  std::size_t n_also_ = 0;
  std::vector<char> leads_{};
};

/// A record whose work is done by code outside the op table: every tensor op, and tensor
/// leaves. Its record is `{Op::Node, a = index of this object in the tape's node list}`.
/// Nodes keep what their rules need (input values, attributes); the gradients a sweep brings
/// them live in the sweep's workspace (ReverseSweep::ws), so the tape only orders them.
///
/// Every sweep asks a node the same four questions, and never what kind of node it is: its
/// reverse step on numbers, its reverse step recorded (for higher order), its tangent step and
/// its forward step at new inputs (the engine of replay: ForwardSweep).
class Node {
 public:
  virtual ~Node() = default;
  /// The reverse step of record `i` on numbers: adds this node's contributions into its
  /// inputs' gradients (`sweep.add_adjoint` for scalar records, `sweep.mark_reached` for
  /// nodes) and drops its own gradient.
  virtual void reverse(ReverseSweep& sweep, std::uint32_t i) = 0;
  /// The same step recorded (create_graph): the rules run on Var and Tensor, and a scalar
  /// input's adjoint is a Var added into `*sweep.adj`. Called for every node record the
  /// recorded sweep passes (it keeps no marks): a node that received nothing does nothing.
  virtual void reverse_recorded(ReverseSweep& sweep, std::uint32_t i) = 0;
  /// The tangent step of record `i`: its tangent from its inputs' tangents (see TangentSweep;
  /// nothing where every input's tangent is zero).
  virtual void tangent(TangentSweep& sweep, std::uint32_t i) = 0;
  /// The forward step of record `i` at new inputs: its value from its inputs' values in
  /// `sweep` (ForwardSweep::tensor), stored there (ForwardSweep::set), computed by the op's
  /// kernel with no Python; recorded on the active tape only where the sweep records. A record
  /// that cannot (a custom function whose forward is Python code, a checkpointed segment, a
  /// released record) raises an Error that says so, as this default does.
  virtual void forward(ForwardSweep& sweep, std::uint32_t i);
  /// The record indices this node reads (`collect()` marks and remaps them in place).
  virtual std::uint32_t* inputs(std::size_t& count) noexcept = 0;
  /// Drops any gradient a sweep left (a sweep interrupted by an exception).
  virtual void reset_grad() noexcept = 0;
  /// The bytes this record keeps alive (its value), for memory policies: see node_bytes().
  virtual std::size_t bytes() const noexcept { return 0; }
  /// The tensor memory it keeps alive for the sweeps, as (storage, bytes) pairs: its value and
  /// the values its rule saved (none for a released record's stand-in; a leaf's data and a
  /// parameter's are their owners'). TapeStats::saved_bytes sums them over distinct storages.
  virtual void held_values(std::vector<std::pair<const void*, std::size_t>>& into) const { (void)into; }
  /// collect() moved this node's record to `rec` (in the tape's new generation).
  virtual void moved(const Tape& tape, std::uint32_t rec) noexcept { (void)tape, (void)rec; }
  /// Whether scalar records read this record as a number (its value in the value array): a
  /// one-element tensor entering scalar arithmetic. Its adjoint slot is then a real adjoint,
  /// not only the mark that the sweep reached it.
  virtual bool scalar_output() const noexcept { return false; }
  /// Its name in a walk of the graph, as PyTorch names its nodes ("MmBackward0",
  /// "AccumulateGrad" for a leaf's record).
  virtual const char* name() const noexcept { return "Node"; }
  /// After a sweep that releases its graph passed it (ReverseSweep::release): a record to put
  /// in its place that keeps none of its values and refuses later sweeps; null keeps this one.
  virtual std::unique_ptr<Node> stand_in() { return nullptr; }
};

/// What a tape holds, as `Tape::stats()` reports it.
struct TapeStats {
  std::size_t records;         ///< records in use (leaves included)
  std::size_t constants;       ///< constants in the constant pool
  std::size_t roots;           ///< live roots (handles that survive collect())
  std::size_t nodes;           ///< records done by Node objects (tensor ops)
  std::size_t bytes_in_use;    ///< records + values + constants in use
  std::size_t adjoint_bytes;   ///< the adjoint workspace of the last sweep, kept for reuse
  std::size_t bytes_reserved;  ///< everything allocated, workspaces included
  /// The tensor memory the records keep alive for the sweeps: their values and the values their
  /// rules saved, each storage once (parameters' and leaves' own data excluded): the saved
  /// activations.
  std::size_t saved_bytes;
};

/// An append-only arena of operation records.
///
/// Recording appends a 12-byte record and an 8-byte value; nothing is allocated per record
/// once the arena has grown to the working size. `clear()` rewinds in O(1) and keeps the
/// memory. Every `Var` remembers the tape's generation when it was recorded; `clear()` and
/// `collect()` start a new generation, and using an older handle raises `tapegrad::Error`.
///
/// Each thread has a default tape; `ScopedTape` makes another one active for a scope.
/// A tape is used by one thread at a time.
class Tape {
 public:
  static constexpr std::uint32_t kNone = 0xFFFFFFFFu;

  Tape();
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  /// The tape the calling thread records on (its default tape unless a ScopedTape is open).
  static Tape& active();

  // --- recording -------------------------------------------------------------------------
  /// Appends a record and its value; returns its index.
  std::uint32_t push(Op op, std::uint32_t a, std::uint32_t b, double value) {
    if (TAPEGRAD_LIKELY(size_ < capacity_)) {
      records_[size_] = Record{op, 0, a, b};
      values_[size_] = value;
      return size_++;
    }
    return push_slow(op, a, b, value);
  }
  /// Appends a constant to the pool; returns its index (for the b field of VC/CV records).
  std::uint32_t push_constant(double c) {
    if (TAPEGRAD_LIKELY(nconst_ < const_capacity_)) {
      constants_[nconst_] = c;
      return nconst_++;
    }
    return push_constant_slow(c);
  }

  /// Appends an independent variable; the reverse sweep adds its adjoint into sink `sink`
  /// (see add_sink) unless that is kNone.
  std::uint32_t push_leaf(double value, std::uint32_t sink = kNone) { return push(Op::Leaf, sink, 0, value); }

  /// Appends a record done by `node` (a tensor op); returns its index. `value` is what
  /// scalar records read as its value (a tensor entering scalar arithmetic), else unused.
  std::uint32_t push_node(std::unique_ptr<Node> node, double value = 0.0);
  /// The Node of record i (which must be an Op::Node record).
  Node& node(std::uint32_t i) const noexcept { return *nodes_[records_[i].a]; }
  /// Whether any record is a Node (a tensor op, a custom function's, ...).
  bool has_nodes() const noexcept { return !nodes_.empty(); }
  /// Bytes that Node records pushed since the last clear() or collect() keep alive (a
  /// collection policy looks at it: a few tensor records can hold gigabytes).
  std::size_t node_bytes_pushed() const noexcept { return node_bytes_pushed_; }
  /// Bytes that all Node records on the tape keep alive now (O(number of nodes)).
  std::size_t node_bytes() const noexcept;

  std::uint32_t size() const noexcept { return size_; }
  // The two walks of the graph (record order is topological, so each is one pass):
  /// Which records up to `upto` lead to one of the records `seeds[0..n)` (the seeds included):
  /// a mark per record, by one backwards pass over the operands from `upto` down to `lo`.
  /// Records marked in `stop` (indexed by record) are reached but not walked through (a tangent
  /// sweep's seeds: what they read does not matter). With `last`, last[j] becomes the last
  /// marked record that reads j (kNone for a seed; records before lo stay unmarked).
  std::vector<char> leading_to(const std::uint32_t* seeds, std::size_t n, std::uint32_t upto, std::uint32_t lo = 0,
                               const std::vector<char>* stop = nullptr,
                               std::vector<std::uint32_t>* last = nullptr) const;
  /// Which records up to `upto` one of `targets` leads to (the targets included): the
  /// records on a path from them forwards, by one pass over the operands.
  std::vector<char> reached_from(const std::vector<std::uint32_t>& targets, std::uint32_t upto) const;
  /// Calls f(j) for each record j that record i reads (its operands; a Node's inputs, where
  /// Tape::kNone stands for a constant input).
  template <class F>
  void for_each_operand(std::uint32_t i, F&& f) const {
    const Record& r = records_[i];
    switch (op_info(r.op).kind) {
      case OpKind::Leaf: break;
      case OpKind::Unary: case OpKind::BinaryVC: case OpKind::BinaryCV: f(r.a); break;
      case OpKind::Binary: f(r.a); f(r.b); break;
      case OpKind::Node: {
        std::size_t count = 0;
        const std::uint32_t* in = nodes_[r.a]->inputs(count);
        for (std::size_t k = 0; k < count; ++k) f(in[k]);
        break;
      }
    }
  }
  const Record& record(std::uint32_t i) const noexcept { return records_[i]; }
  double value(std::uint32_t i) const noexcept { return values_[i]; }
  double constant(std::uint32_t k) const noexcept { return constants_[k]; }
  /// Changes every handle's validity: bumped by clear() and collect(). Unique across all
  /// tapes of the process, so a generation alone names one tape at one time.
  std::uint32_t generation() const noexcept { return generation_; }
  /// Bumped by clear() only: roots stay valid across collect().
  std::uint32_t epoch() const noexcept { return epoch_; }
  /// The generation the tape was created with. Generations only grow, so a handle whose
  /// generation is older belongs to an earlier tape at the same address: a destroyed one.
  std::uint32_t birth_generation() const noexcept { return birth_; }

  /// Rewinds to empty in O(1), keeping the memory; every handle on it becomes stale.
  void clear() noexcept;

  // --- derivatives -----------------------------------------------------------------------
  /// The plain reverse sweep (a backward): adjoints of every record up to `from`, seeded with
  /// d(out)/d(out) = seed. One backwards loop over the records. A record that does not lead to
  /// `from` contributes nothing (not even 0 * inf); one that does passes its adjoint on as IEEE
  /// says, a zero adjoint too: 0 times an infinite or NaN partial is NaN (`sqrt(x) * 0` at 0,
  /// as PyTorch and tapegrad's Tensor give). A zero adjoint whose partials are all finite
  /// passes on exact zeros, so such records are skipped; the others are rare, and only then
  /// are the records that lead to `from` found (one backwards pass).
  /// A leaf record with a sink adds its adjoint into the sink.
  void reverse(std::uint32_t from, double seed = 1.0);
  /// The same as `sweep` says (sweep.recorded must be false: the recorded sweep is
  /// detail::recorded_sweep), with the Node records `also[0..n_also)` (before `from`) marked
  /// as reached: a sweep from several outputs whose Nodes hold their seeds. The adjoints go
  /// into `*sweep.adjoints` when the front end gave a buffer (graph_of's, which only looks);
  /// otherwise the tape lends its own and keeps them as its last (adjoint(i)), even when the
  /// sweep ends by an exception.
  void reverse(ReverseSweep& sweep, std::uint32_t from, double seed, const std::uint32_t* also = nullptr,
               std::size_t n_also = 0);
  /// The adjoint of record i after the last plain sweep of the tape's own buffer (reverse(from),
  /// a backward, autograd.grad): 0 for records after its `from`.
  double adjoint(std::uint32_t i) const noexcept { return adjoints_[i]; }
  /// How many records the last sweep's adjoints cover (adjoint(i) is 0 from there on).
  std::uint32_t adjoint_size() const noexcept { return adjoints_.size(); }
  /// The tape's adjoint buffer, lent to a sweep (ReverseSweep::adjoints) that gives it back with
  /// keep_adjoints: the tape holds no sweep state while a sweep runs, and the buffer is reused.
  Adjoints take_adjoints() noexcept { return std::move(adjoints_); }
  /// A sweep's adjoints become the tape's last ones (what adjoint() and accumulate_root_grads()
  /// read), their buffer the next sweep's.
  void keep_adjoints(Adjoints&& a) noexcept { adjoints_ = std::move(a); }

  // --- hooks on scalar records (Var.register_hook) ------------------------------------
  /// A hook: called with the gradient of its record when a reverse sweep has summed it
  /// (a constant Var holding the number in a plain sweep, the recorded adjoint in a
  /// recorded one), before the record passes it on; it returns the gradient to use instead.
  using Hook = std::function<Var(const Var&)>;
  /// Registers `fn` on record `rec`; returns its id for remove_hook(). Hooks of one record
  /// run in the order they were added. collect() keeps the hooks of records it keeps.
  std::uint64_t add_hook(std::uint32_t rec, Hook fn);
  /// Removes hook `id` (false if it is gone already, with its record or its tape's clear()).
  bool remove_hook(std::uint64_t id) noexcept;
  bool has_hooks() const noexcept;
  /// The records with hooks at or below `to`, ascending and unique.
  std::vector<std::uint32_t> hooked_records(std::uint32_t to) const;
  /// The hooks of record rec, in order (copies: a hook may add or remove hooks).
  std::vector<Hook> hooks_of(std::uint32_t rec) const;
  /// Runs record rec's hooks on its gradient g (a plain sweep's number, or a recorded Var).
  /// (sweep/reverse.cpp)
  double run_hooks(std::uint32_t rec, double g);
  Var run_hooks(std::uint32_t rec, const Var& g);

  // --- sinks: where leaf records deliver their adjoints ----------------------------------
  /// Registers `*target` as a sink: every leaf record pushed with this slot adds its
  /// adjoint into it during reverse(). One variable may have many leaf records (its value
  /// changed, it was used again after a collect()); they all share its sink.
  /// `owner` (if given) is told when this tape is cleared or destroyed (SinkOwner).
  std::uint32_t add_sink(double* target, detail::SinkOwner* owner = nullptr);
  /// The target is gone: its leaf records deliver nowhere from now on. The slot is reused
  /// once no record refers to it any more (after a collect() or clear()).
  void remove_sink(std::uint32_t slot) noexcept;
  /// The target of sink `slot` (null once removed).
  double* sink_target(std::uint32_t slot) const noexcept { return slot < sinks_.size() ? sinks_[slot] : nullptr; }
  /// Where a recorded (create_graph) backward's gradient of a scalar leaf goes: called once
  /// per leaf the sweep reached, with its sink's target and the gradient, a Var on this tape
  /// (the sum over the leaf's records). A front end whose leaves keep a recorded gradient sets
  /// it (Python's Var: its .grad becomes that Var, added to the one it had); without one, the
  /// values go into the sinks as in a plain backward (a C++ Var keeps no .grad).
  /// (A function and its context, not a std::function: the Python tape's layout stays standard.)
  using RecordedSink = void (*)(void* context, double* target, const Var& grad);
  void set_recorded_sink(RecordedSink f, void* context) noexcept {
    recorded_sink_ = f;
    recorded_sink_context_ = context;
  }
  /// Delivers a scalar leaf's recorded gradient (see set_recorded_sink); false without a receiver.
  bool deliver_recorded(double* target, const Var& grad) const {
    if (!recorded_sink_) return false;
    recorded_sink_(recorded_sink_context_, target, grad);
    return true;
  }
  bool has_recorded_sink() const noexcept { return recorded_sink_ != nullptr; }

  // --- roots: handles that survive collect() ---------------------------------------------
  /// Registers a root: a handle to record `rec` whose index collect() keeps up to date.
  /// A root may keep its gradient (PyTorch's retain_grad): after reverse(),
  /// accumulate_root_grads() adds its adjoint into *grad when grad is set. `leaf` marks
  /// roots of leaves, counted apart (a leaf's gradient goes through its sink instead).
  std::uint32_t add_root(std::uint32_t rec, double* grad, bool leaf);
  void remove_root(std::uint32_t slot) noexcept;
  void set_root_grad(std::uint32_t slot, double* grad) noexcept { roots_[slot].grad = grad; }
  std::uint32_t root_record(std::uint32_t slot) const noexcept { return roots_[slot].rec; }
  std::size_t live_roots() const noexcept { return live_roots_; }
  std::size_t live_nonleaf_roots() const noexcept { return live_roots_ - live_leaf_roots_; }
  /// Adds each root's adjoint from the last reverse() into its grad (where set).
  void accumulate_root_grads() noexcept;

  /// Mark-compact: keeps only the records that some root reaches, in record order, and
  /// remaps the roots. A new generation starts: handles that are not roots become stale.
  void collect();

  // --- the collection policy (what the Python module runs after every op) ---------------
  /// Collects when the tape has grown enough since the last collection: when its records
  /// reach twice the number the last collection left (at least kMinCollect), or when the
  /// tensor records pushed since hold more than what was live then (at least
  /// kMinCollectBytes: a few tensor records can hold gigabytes). Collection costs O(records),
  /// so the policy keeps its cost proportional to the recording. Not while a sweep runs.
  /// For a program whose live handles are all roots (add_root), as the Python module's are:
  /// every other handle goes stale. Returns whether it collected.
  bool maybe_collect() {
    // (inline: the Python module asks after every op, and nearly always the answer is no)
    if (TAPEGRAD_LIKELY(size_ < collect_at_ && node_bytes_pushed_ < collect_bytes_at_)) return false;
    return collect_by_policy();
  }
  /// Starts the policy afresh (after a clear()).
  void reset_collect_policy() noexcept;
  static constexpr std::uint32_t kMinCollect = 1u << 18;
  static constexpr std::size_t kMinCollectBytes = std::size_t(4) << 20;

  TapeStats stats() const;

  /// Whether tensor records keep their constant inputs, as a program that is run again at new
  /// inputs must (ForwardSweep reads them). Off by default: a record keeps only what its rules
  /// read, so `x + c` lets go of c (as PyTorch's graph does). Set it before recording.
  void set_keep_constants(bool on) noexcept { keep_constants_ = on; }
  bool keeps_constants() const noexcept { return keep_constants_; }

  /// Whether a sweep (reverse, recorded or tangent) is running on this tape: user code it calls
  /// (hooks, custom functions, checkpointed segments) may record, but nothing may clear() or
  /// collect() the tape meanwhile (collect() raises then).
  bool sweeping() const noexcept { return sweeping_ > 0; }
  /// Marks a sweep's extent (they nest).
  class SweepScope {
   public:
    explicit SweepScope(Tape& t) noexcept : t_(t) {
      if (t_.sweeping_++ == 0) t_.sweep_thread_ = std::this_thread::get_id();
    }
    ~SweepScope() { --t_.sweeping_; }
    SweepScope(const SweepScope&) = delete;
    SweepScope& operator=(const SweepScope&) = delete;

   private:
    Tape& t_;
  };

 private:
  struct Root {
    std::uint32_t rec;
    std::uint32_t next_free;  // kNone while in use
    double* grad;
    bool leaf;
  };
  std::uint32_t push_slow(Op op, std::uint32_t a, std::uint32_t b, double value);
  TAPEGRAD_NOINLINE void sweep_node(ReverseSweep& sweep, std::uint32_t i);
  // The sweep loop over records [lo, hi) (hi = one past the first record swept), which are
  // free of hooks; `carry` as the loop keeps it (see reverse.cpp).
  void sweep_records(ReverseSweep& sweep, std::uint32_t lo, std::uint32_t hi, double& carry);
  void sweep_segments(ReverseSweep& sweep, std::uint32_t n);
  void reset_node_grads(std::uint32_t to) noexcept;
  // Whether scalar record i, whose adjoint is zero, must pass it on (a partial that is not
  // finite, on a record that leads to the sweep's seeds): the plain sweep's rare case.
  TAPEGRAD_NOINLINE bool zero_adjoint_passes(ReverseSweep& sweep, std::uint32_t i);
 public:
  /// The error of a sweep started on a tape that is being swept: from a hook's code on the
  /// thread of that sweep, or from another thread while that sweep runs the user's code.
  [[noreturn]] void throw_nested_sweep() const;

 private:
  std::uint32_t push_constant_slow(double c);

  Record* records_ = nullptr;
  double* values_ = nullptr;
  double* constants_ = nullptr;
  std::uint32_t size_ = 0, capacity_ = 0;
  std::uint32_t nconst_ = 0, const_capacity_ = 0;
  std::uint32_t collect_at_ = kMinCollect;          // the collection policy's thresholds
  std::size_t collect_bytes_at_ = kMinCollectBytes;
  std::uint32_t generation_;
  std::uint32_t birth_;
  std::uint32_t epoch_ = 0;

  Adjoints adjoints_;  // the last plain sweep's (lent to each sweep: see take_adjoints)

  std::vector<Root> roots_;
  std::uint32_t free_root_ = kNone;
  std::size_t live_roots_ = 0, live_leaf_roots_ = 0;

  std::vector<std::uint32_t> scratch_;  // collect()'s marks and remap
  std::vector<std::uint32_t> scratch_nodes_;  // collect(): each surviving node's new record
  std::vector<std::unique_ptr<Node>> nodes_;  // the Node objects of Op::Node records
  std::size_t node_bytes_pushed_ = 0;

  struct HookTable;
  std::unique_ptr<HookTable> hooks_;       // null until the first hook
  bool collect_by_policy();  // maybe_collect()'s collection, past its size check
  bool keep_constants_ = false;
  std::uint32_t sweeping_ = 0;             // sweeps running (see sweeping())
  std::thread::id sweep_thread_{};         // the thread of the outermost one

  std::vector<double*> sinks_;            // null: removed (or free)
  std::vector<detail::SinkOwner*> sink_owners_;  // each slot's owner, told of clear() and ~Tape
  void release_sink_owners() noexcept;
  RecordedSink recorded_sink_ = nullptr;
  void* recorded_sink_context_ = nullptr;
  std::vector<std::uint32_t> free_sinks_; // slots that no record refers to
  std::size_t dead_sinks_ = 0;            // removed slots that records may still refer to
};

namespace detail {
// The active tape of this thread, or null until first use (then the default tape).
inline thread_local Tape* tls_active = nullptr;
Tape& init_active_tape();
// What became of the tape a handle of generation `gen` was recorded on. Safe on dangling
// pointers: `t` is looked up in the registry of live tapes (under its lock) before use.
enum class HandleState { Current, Stale, Destroyed };
HandleState handle_state(const Tape* t, std::uint32_t gen) noexcept;
/// Whether a handle of generation `gen` on `t` is current (t may be null or dangling).
inline bool is_current(const Tape* t, std::uint32_t gen) noexcept {
  return t && handle_state(t, gen) == HandleState::Current;
}
}  // namespace detail

inline Tape& Tape::active() {
  Tape* t = detail::tls_active;
  return TAPEGRAD_LIKELY(t != nullptr) ? *t : detail::init_active_tape();
}

/// Long kernels let the host run other threads meanwhile. An embedding that holds a lock
/// while it calls tapegrad (Python's GIL) installs `release` and `acquire`, which are called
/// on the calling thread around each kernel of at least `kMinUnlockedWork` operations
/// (matrix products, elementwise loops, reductions, in forward passes and in sweeps). Such a
/// kernel reads its inputs and writes its fresh result: it touches no tape and no gradient.
struct UnlockHooks {
  void (*release)() = nullptr;
  void (*acquire)() = nullptr;
};
void set_unlock_hooks(UnlockHooks hooks) noexcept;
inline constexpr std::int64_t kMinUnlockedWork = std::int64_t(1) << 16;

namespace detail {
/// The extent of one kernel of `work` operations: the hooks are called around it when the
/// work is large and no enclosing scope forbids it (NoUnlock, or an enclosing Unlocked).
class Unlocked {
 public:
  explicit Unlocked(std::int64_t work) noexcept;
  ~Unlocked();
  Unlocked(const Unlocked&) = delete;
  Unlocked& operator=(const Unlocked&) = delete;

 private:
  bool released_ = false;
};
/// A scope in which kernels keep the host's lock (while a lock of tapegrad's own is held, so
/// that no thread waits on it while holding the host's lock).
class NoUnlock {
 public:
  NoUnlock() noexcept;
  ~NoUnlock();
  NoUnlock(const NoUnlock&) = delete;
  NoUnlock& operator=(const NoUnlock&) = delete;
};
}  // namespace detail

/// Makes `tape` the active tape of this thread until the end of the scope (they nest).
class ScopedTape {
 public:
  explicit ScopedTape(Tape& tape) noexcept;
  ~ScopedTape();
  ScopedTape(const ScopedTape&) = delete;
  ScopedTape& operator=(const ScopedTape&) = delete;

 private:
  Tape* previous_;
};

}  // namespace tapegrad
