// The arena tape: its arenas and their growth, recording, roots, sinks, collect() and the
// registry of live tapes. (Its plain reverse sweep is sweep/reverse.cpp.)
#include "tapegrad/tape.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_set>

#if defined(__linux__)
#include <sys/mman.h>
#endif


namespace tapegrad {

bool Tape::collect_by_policy() {
  if (sweeping()) return false;
  collect();
  const std::size_t live = node_bytes();
  collect_bytes_at_ = live > kMinCollectBytes ? live : kMinCollectBytes;
  const std::uint64_t next = 2ull * size();
  collect_at_ = next > kMinCollect ? (next > 0xF0000000ull ? 0xF0000000u : std::uint32_t(next)) : kMinCollect;
  return true;
}

void Tape::reset_collect_policy() noexcept {
  collect_at_ = kMinCollect;
  collect_bytes_at_ = kMinCollectBytes;
}
namespace {

std::atomic<std::uint32_t> g_next_generation{1};

// Generations are unique across the process (0 is never used: constants carry it).
std::uint32_t next_generation() noexcept {
  std::uint32_t g = g_next_generation.fetch_add(1, std::memory_order_relaxed);
  while (g == 0) g = g_next_generation.fetch_add(1, std::memory_order_relaxed);
  return g;
}

struct Registry {
  std::mutex mutex;
  std::unordered_set<const Tape*> live;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: tapes may outlive static destruction
  return *r;
}

// Large arenas are 2 MiB aligned and, on Linux, asked to be backed by transparent huge
// pages: the sweep walks hundreds of megabytes, and 4 KiB pages cost it TLB misses.
constexpr std::size_t kHugePage = std::size_t(2) << 20;

void* allocate_block(std::size_t bytes) {
  if (bytes < kHugePage) return std::malloc(bytes);
  bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p) madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

// Grows a trivially copyable array to at least `need` elements (doubling), keeping `keep`.
template <class T>
void grow_array(T*& data, std::uint32_t& capacity, std::uint64_t need, std::uint64_t keep) {
  constexpr std::uint64_t kMax = Tape::kNone;  // indices are 32-bit; kNone is reserved
  if (need > kMax) throw Error("tapegrad: the tape is full (2^32 - 1 records); clear() it or use a ScopedTape");
  std::uint64_t cap = capacity ? capacity : 4096;
  while (cap < need) cap *= 2;
  if (cap > kMax) cap = kMax;
  void* p = allocate_block(cap * sizeof(T));
  if (!p) throw std::bad_alloc();
  if (keep) std::memcpy(p, static_cast<const void*>(data), keep * sizeof(T));
  std::free(data);
  data = static_cast<T*>(p);
  capacity = static_cast<std::uint32_t>(cap);
}

}  // namespace

namespace detail {
Tape& init_active_tape() {
  thread_local std::unique_ptr<Tape> default_tape;  // destroyed when the thread ends
  if (!default_tape) default_tape = std::make_unique<Tape>();
  tls_active = default_tape.get();
  return *default_tape;
}

HandleState handle_state(const Tape* t, std::uint32_t gen) noexcept {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  // A new tape may live at a destroyed one's address: its birth is then after `gen`.
  if (!r.live.count(t) || gen < t->birth_generation()) return HandleState::Destroyed;
  return t->generation() == gen ? HandleState::Current : HandleState::Stale;
}
}  // namespace detail

struct Tape::HookTable {
  struct Entry {
    std::uint32_t rec;
    std::uint64_t id;
    Hook fn;
  };
  std::vector<Entry> entries;  // in order of registration
  std::uint64_t next_id = 1;
};

std::uint64_t Tape::add_hook(std::uint32_t rec, Hook fn) {
  if (rec >= size_) throw Error("tapegrad: add_hook(): record " + std::to_string(rec) + " of a tape of " + std::to_string(size_));
  if (!fn) throw Error("tapegrad: add_hook(): an empty hook");
  if (records_[rec].op == Op::Node)
    throw Error("tapegrad: register_hook(): this Var is a tensor's element (a tensor record); register the hook on the tensor");
  if (!hooks_) hooks_ = std::make_unique<HookTable>();
  const std::uint64_t id = hooks_->next_id++;
  hooks_->entries.push_back(HookTable::Entry{rec, id, std::move(fn)});
  return id;
}

bool Tape::remove_hook(std::uint64_t id) noexcept {
  if (!hooks_) return false;
  auto& e = hooks_->entries;
  for (auto it = e.begin(); it != e.end(); ++it)
    if (it->id == id) {
      e.erase(it);
      return true;
    }
  return false;
}

bool Tape::has_hooks() const noexcept { return hooks_ && !hooks_->entries.empty(); }

std::vector<std::uint32_t> Tape::hooked_records(std::uint32_t to) const {
  std::vector<std::uint32_t> r;
  if (!hooks_) return r;
  for (const auto& e : hooks_->entries)
    if (e.rec <= to) r.push_back(e.rec);
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

std::vector<Tape::Hook> Tape::hooks_of(std::uint32_t rec) const {
  std::vector<Hook> fns;
  if (hooks_)
    for (const auto& e : hooks_->entries)
      if (e.rec == rec) fns.push_back(e.fn);
  return fns;
}

void Adjoints::reset(std::uint32_t n) {
  size_ = 0;
  if (capacity_ < n) grow_array(p_, capacity_, n, 0);
  std::fill_n(p_, n, 0.0);
  size_ = n;
}

Tape::Tape() : generation_(next_generation()), birth_(generation_) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.live.insert(this);
}

Tape::~Tape() {
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.live.erase(this);
  }
  if (detail::tls_active == this) detail::tls_active = nullptr;
  release_sink_owners();
  std::free(records_);
  std::free(values_);
  std::free(constants_);
}

std::uint32_t Tape::push_slow(Op op, std::uint32_t a, std::uint32_t b, double value) {
  std::uint32_t cap_r = capacity_, cap_v = capacity_;
  grow_array(records_, cap_r, std::uint64_t(size_) + 1, size_);
  grow_array(values_, cap_v, std::uint64_t(size_) + 1, size_);
  capacity_ = std::min(cap_r, cap_v);
  return push(op, a, b, value);
}

std::uint32_t Tape::push_constant_slow(double c) {
  grow_array(constants_, const_capacity_, std::uint64_t(nconst_) + 1, nconst_);
  return push_constant(c);
}

std::uint32_t Tape::push_node(std::unique_ptr<Node> node, double value) {
  if (nodes_.size() >= kNone) throw Error("tapegrad: too many tensor records on one tape");
  node_bytes_pushed_ += node->bytes();
  nodes_.push_back(std::move(node));
  try {
    return push(Op::Node, static_cast<std::uint32_t>(nodes_.size() - 1), 0, value);
  } catch (...) {
    nodes_.pop_back();
    throw;
  }
}

std::size_t Tape::node_bytes() const noexcept {
  std::size_t b = 0;
  for (const auto& n : nodes_) b += n->bytes();
  return b;
}

void Tape::clear() noexcept {
  nodes_.clear();  // releases what tensor records held (values, leaves)
  node_bytes_pushed_ = 0;
  reset_collect_policy();
  size_ = 0;
  nconst_ = 0;
  adjoints_.forget();
  generation_ = next_generation();
  ++epoch_;
  roots_.clear();
  free_root_ = kNone;
  release_sink_owners();
  sinks_.clear();
  sink_owners_.clear();
  free_sinks_.clear();
  dead_sinks_ = 0;
  live_roots_ = live_leaf_roots_ = 0;
  if (hooks_) hooks_->entries.clear();
}

std::uint32_t Tape::add_root(std::uint32_t rec, double* grad, bool leaf) {
  // (collect() marks and remaps the roots' records: one past the end would be written there)
  if (rec >= size_)
    throw Error("tapegrad: internal error: a handle on record " + std::to_string(rec) + " of a tape of " +
                std::to_string(size_) + " records (a stale handle)");
  std::uint32_t slot;
  if (free_root_ != kNone) {
    slot = free_root_;
    free_root_ = roots_[slot].next_free;
    roots_[slot] = Root{rec, kNone, grad, leaf};
  } else {
    if (roots_.size() >= kNone) throw Error("tapegrad: too many live handles on one tape");
    slot = static_cast<std::uint32_t>(roots_.size());
    roots_.push_back(Root{rec, kNone, grad, leaf});
  }
  ++live_roots_;
  if (leaf) ++live_leaf_roots_;
  return slot;
}

void Tape::remove_root(std::uint32_t slot) noexcept {
  Root& r = roots_[slot];
  if (r.leaf) --live_leaf_roots_;
  --live_roots_;
  r = Root{kNone, free_root_, nullptr, false};
  free_root_ = slot;
}

std::uint32_t Tape::add_sink(double* target, detail::SinkOwner* owner) {
  if (!free_sinks_.empty()) {
    const std::uint32_t slot = free_sinks_.back();
    free_sinks_.pop_back();
    sinks_[slot] = target;
    sink_owners_[slot] = owner;
    return slot;
  }
  if (sinks_.size() >= kNone) throw Error("tapegrad: too many sinks on one tape");
  sinks_.push_back(target);
  try {
    sink_owners_.push_back(owner);
  } catch (...) {
    sinks_.pop_back();
    throw;
  }
  return static_cast<std::uint32_t>(sinks_.size() - 1);
}

void Tape::remove_sink(std::uint32_t slot) noexcept {
  sinks_[slot] = nullptr;  // its records may live on: the slot is freed by collect()
  sink_owners_[slot] = nullptr;
  ++dead_sinks_;
}

void Tape::release_sink_owners() noexcept {
  for (detail::SinkOwner* o : sink_owners_)
    if (o) o->tape_gone(*this);
}

void Tape::accumulate_root_grads() noexcept {
  for (const Root& r : roots_)
    if (r.grad && r.rec < adjoints_.size()) *r.grad += adjoints_[r.rec];
}

void Tape::collect() {
  if (sweeping_) throw Error("tapegrad: collect() during a sweep of the same tape (from a hook or a custom function)");
  const std::uint32_t n = size_;
  scratch_.assign(n, 0);
  std::uint32_t* m = scratch_.data();  // first a mark per record, then its new index
  for (const Root& r : roots_)
    if (r.rec != kNone) m[r.rec] = 1;
  // Record order is topological: one backwards pass marks everything the roots reach.
  for (std::uint32_t i = n; i-- > 0;) {
    if (!m[i]) continue;
    const Record& r = records_[i];
    switch (op_info(r.op).kind) {
      case OpKind::Leaf: break;
      case OpKind::Node: {
        std::size_t count = 0;
        const std::uint32_t* in = nodes_[r.a]->inputs(count);
        for (std::size_t k = 0; k < count; ++k)
          if (in[k] != kNone) m[in[k]] = 1;
        break;
      }
      case OpKind::Binary: m[r.b] = 1; [[fallthrough]];
      default: m[r.a] = 1;
    }
  }
  // Hooks live on with their records (the marks are still marks here).
  if (hooks_) {
    auto& e = hooks_->entries;
    e.erase(std::remove_if(e.begin(), e.end(), [m](const HookTable::Entry& h) { return m[h.rec] == 0; }), e.end());
  }
  // Compact in place: a record only moves down, and its operands were remapped before it.
  std::uint32_t k = 0, kc = 0, kn = 0;
  scratch_nodes_.clear();
  for (std::uint32_t i = 0; i < n; ++i) {
    if (!m[i]) continue;
    Record r = records_[i];
    switch (op_info(r.op).kind) {
      case OpKind::Leaf: break;
      case OpKind::Node: {
        std::size_t count = 0;
        std::uint32_t* in = nodes_[r.a]->inputs(count);
        for (std::size_t q = 0; q < count; ++q)
          if (in[q] != kNone) in[q] = m[in[q]];
        if (kn != r.a) nodes_[kn] = std::move(nodes_[r.a]);
        scratch_nodes_.push_back(k);  // node kn is now record k
        r.a = kn++;
        break;
      }
      case OpKind::Unary: r.a = m[r.a]; break;
      case OpKind::Binary: r.a = m[r.a]; r.b = m[r.b]; break;
      case OpKind::BinaryVC:
      case OpKind::BinaryCV:
        r.a = m[r.a];
        constants_[kc] = constants_[r.b];
        r.b = kc++;
        break;
    }
    records_[k] = r;
    values_[k] = values_[i];
    m[i] = k++;
  }
  size_ = k;
  nconst_ = kc;
  nodes_.resize(kn);  // destroys the nodes of dropped records
  node_bytes_pushed_ = 0;
  for (Root& r : roots_)
    if (r.rec != kNone) r.rec = m[r.rec];
  if (hooks_)
    for (auto& h : hooks_->entries) h.rec = m[h.rec];
  // Removed sinks that no surviving leaf record refers to can be reused.
  if (dead_sinks_) {
    std::vector<bool> used(sinks_.size(), false);
    for (std::uint32_t i = 0; i < size_; ++i)
      if (records_[i].op == Op::Leaf && records_[i].a != kNone) used[records_[i].a] = true;
    std::vector<bool> free(sinks_.size(), false);
    for (std::uint32_t s : free_sinks_) free[s] = true;
    dead_sinks_ = 0;
    for (std::uint32_t s = 0; s < sinks_.size(); ++s) {
      if (sinks_[s] || free[s]) continue;
      if (used[s]) ++dead_sinks_;
      else free_sinks_.push_back(s);
    }
  }
  adjoints_.forget();
  generation_ = next_generation();
  // Tell the surviving nodes where their records went: a value a node saved and shares with
  // another node's output stays usable in a recorded sweep (create_graph) after a collect.
  for (std::uint32_t q = 0; q < kn; ++q) nodes_[q]->moved(*this, scratch_nodes_[q]);
  scratch_nodes_.clear();
}

TapeStats Tape::stats() const {
  TapeStats s{};
  s.records = size_;
  s.constants = nconst_;
  s.roots = live_roots_;
  s.nodes = nodes_.size();
  s.bytes_in_use = std::size_t(size_) * (sizeof(Record) + sizeof(double)) + std::size_t(nconst_) * sizeof(double);
  s.adjoint_bytes = adjoints_.bytes();
  s.saved_bytes = 0;
  {
    std::vector<std::pair<const void*, std::size_t>> held;
    for (const auto& n : nodes_) n->held_values(held);
    std::sort(held.begin(), held.end());  // each storage once, at the most any view of it covers
    for (std::size_t i = 0; i < held.size(); ++i)
      if (i + 1 == held.size() || held[i + 1].first != held[i].first) s.saved_bytes += held[i].second;
  }
  s.bytes_reserved = std::size_t(capacity_) * (sizeof(Record) + sizeof(double)) +
                     std::size_t(const_capacity_) * sizeof(double) + s.adjoint_bytes +
                     roots_.capacity() * sizeof(Root) + scratch_.capacity() * sizeof(std::uint32_t) +
                     sinks_.capacity() * sizeof(double*) + sink_owners_.capacity() * sizeof(void*) + free_sinks_.capacity() * sizeof(std::uint32_t) +
                     nodes_.capacity() * sizeof(std::unique_ptr<Node>);
  return s;
}

namespace {
std::atomic<void (*)()> g_release{nullptr};
std::atomic<void (*)()> g_acquire{nullptr};
thread_local int tls_no_unlock = 0;  // Unlocked scopes open, or NoUnlock scopes
}  // namespace

void set_unlock_hooks(UnlockHooks hooks) noexcept {
  g_acquire.store(hooks.acquire);
  g_release.store(hooks.release);
}

namespace detail {
Unlocked::Unlocked(std::int64_t work) noexcept {
  if (work < kMinUnlockedWork || tls_no_unlock > 0) return;
  void (*release)() = g_release.load();
  if (!release || !g_acquire.load()) return;
  ++tls_no_unlock;
  released_ = true;
  release();
}
Unlocked::~Unlocked() {
  if (!released_) return;
  g_acquire.load()();
  --tls_no_unlock;
}
NoUnlock::NoUnlock() noexcept { ++tls_no_unlock; }
NoUnlock::~NoUnlock() { --tls_no_unlock; }
}  // namespace detail

ScopedTape::ScopedTape(Tape& tape) noexcept : previous_(detail::tls_active) { detail::tls_active = &tape; }
ScopedTape::~ScopedTape() { detail::tls_active = previous_; }

}  // namespace tapegrad
