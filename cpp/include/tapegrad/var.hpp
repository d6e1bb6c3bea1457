// Var: a scalar on the active tape.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <optional>
#include <utility>
#include <vector>

#include "tapegrad/tape.hpp"

namespace tapegrad {

/// A scalar handle: its value, its record on a tape and the tape's generation at recording.
///
/// `Var x = 3.0;` records an independent variable (a leaf) on the active tape. `Var()` and
/// `Var::constant(c)` are constants: not recorded, with no derivative. Operations record on the
/// active tape; an operand from a rewound, destroyed or other tape raises `tapegrad::Error`.
class Var {
 public:
  /// The constant 0.
  Var() noexcept = default;
  /// A new independent variable on the active tape.
  Var(double value) : v_(value) {  // NOLINT(google-explicit-constructor): `Var x = 3.0;`
    Tape& t = Tape::active();
    idx_ = t.push_leaf(value);
    gen_ = t.generation();
    tape_ = &t;
  }
  /// A constant: takes part in arithmetic, is never recorded, has no derivative.
  static Var constant(double value) noexcept { return Var(value, Tape::kNone, 0, nullptr); }

  double value() const noexcept { return v_; }
  explicit operator double() const noexcept { return v_; }
  bool is_constant() const noexcept { return tape_ == nullptr; }
  /// The record's index on its tape (Tape::kNone for a constant).
  std::uint32_t index() const noexcept { return idx_; }
  /// The tape it was recorded on (null for a constant). Check validity before dereferencing:
  /// see `valid()`.
  Tape* tape() const noexcept { return tape_; }
  std::uint32_t generation() const noexcept { return gen_; }
  /// Whether the handle can still be used: a constant, or its tape is alive and was not
  /// rewound since it was recorded.
  bool valid() const noexcept;

  Var& operator+=(const Var& o);
  Var& operator-=(const Var& o);
  Var& operator*=(const Var& o);
  Var& operator/=(const Var& o);
  Var& operator+=(double o);
  Var& operator-=(double o);
  Var& operator*=(double o);
  Var& operator/=(double o);

  /// Internal: a handle to record `idx` of `tape` in generation `gen`.
  Var(double v, std::uint32_t idx, std::uint32_t gen, Tape* tape) noexcept
      : v_(v), idx_(idx), gen_(gen), tape_(tape) {}

 private:
  double v_ = 0.0;
  std::uint32_t idx_ = Tape::kNone;
  std::uint32_t gen_ = 0;  // 0: a constant (generations start at 1)
  Tape* tape_ = nullptr;
};

namespace detail {
// Slow paths: first use of a thread's tape, constants, and errors for stale handles.
TAPEGRAD_NOINLINE Var record_unary_slow(Op op, Var a, double v);
TAPEGRAD_NOINLINE Var record_binary_slow(Op op, Var a, Var b, double v);
TAPEGRAD_NOINLINE Var record_vc_slow(Op op, Var a, double c, double v);
TAPEGRAD_NOINLINE Var record_cv_slow(Op op, double c, Var b, double v);
// Throws the error that says why `v` cannot be used (stale, destroyed or foreign tape).
[[noreturn]] TAPEGRAD_NOINLINE void throw_unusable(const Var& v, const char* what);
// Checks that y is usable and returns its tape.
Tape& checked_tape(const Var& y, const char* what);

/// Records binary op `op` on `tape`: operand records ra and rb, either of which may be
/// Tape::kNone for a constant operand (x, y are the operands' values, z the result's). Pushes
/// the (variable, variable), (variable, constant) or (constant, variable) record, as the op
/// table's forms say; returns its index. (Constants are never records.)
inline std::uint32_t push_binary(Tape& tape, Op op, std::uint32_t ra, std::uint32_t rb, double x, double y, double z) {
  if (rb == Tape::kNone) return tape.push(with_const_right(op), ra, tape.push_constant(y), z);
  if (ra == Tape::kNone) return tape.push(with_const_left(op), rb, tape.push_constant(x), z);
  return tape.push(op, ra, rb, z);
}

// The hot paths: a generation names one tape at one time, so one comparison per operand
// checks that it lives on the active tape and was recorded in its current generation.
inline Var record_unary(Op op, const Var& a, double v) {
  Tape* t = tls_active;
  if (TAPEGRAD_LIKELY(t && a.generation() == t->generation()))
    return Var(v, t->push(op, a.index(), 0, v), t->generation(), t);
  return record_unary_slow(op, a, v);
}
inline Var record_binary(Op op, const Var& a, const Var& b, double v) {
  Tape* t = tls_active;
  if (TAPEGRAD_LIKELY(t && a.generation() == t->generation() && b.generation() == t->generation()))
    return Var(v, t->push(op, a.index(), b.index(), v), t->generation(), t);
  return record_binary_slow(op, a, b, v);
}
inline Var record_vc(Op op, const Var& a, double c, double v) {
  Tape* t = tls_active;
  if (TAPEGRAD_LIKELY(t && a.generation() == t->generation()))
    return Var(v, t->push(with_const_right(op), a.index(), t->push_constant(c), v), t->generation(), t);
  return record_vc_slow(op, a, c, v);
}
inline Var record_cv(Op op, double c, const Var& b, double v) {
  Tape* t = tls_active;
  if (TAPEGRAD_LIKELY(t && b.generation() == t->generation()))
    return Var(v, t->push(with_const_left(op), b.index(), t->push_constant(c), v), t->generation(), t);
  return record_cv_slow(op, c, b, v);
}
}  // namespace detail

// --- the functions of the op table ------------------------------------------------------
// exp(x), log(x), ..., pow(x, y), atan2(x, y), min(x, y), max(x, y), each with plain numbers
// on either side of the binary ones.
#define TAPEGRAD_UNARY(Name, name, ...)                                                            \
  inline Var name(const Var& x) {                                                                  \
    return detail::record_unary(Op::Name, x, Rule<Op::Name>::forward(x.value()));                  \
  }
#define TAPEGRAD_BINARY(Name, name, ...)                                                           \
  inline Var name(const Var& x, const Var& y) {                                                  \
    return detail::record_binary(Op::Name, x, y, Rule<Op::Name>::forward(x.value(), y.value())); \
  }                                                                                              \
  inline Var name(const Var& x, double y) {                                                      \
    return detail::record_vc(Op::Name, x, y, Rule<Op::Name>::forward(x.value(), y));             \
  }                                                                                              \
  inline Var name(double x, const Var& y) {                                                      \
    return detail::record_cv(Op::Name, x, y, Rule<Op::Name>::forward(x, y.value()));             \
  }
#include "tapegrad/ops.def"

// --- operators ----------------------------------------------------------------------------
inline Var operator-(const Var& x) { return neg(x); }
inline Var operator+(const Var& x) { return x; }
#define TAPEGRAD_OPERATOR(sym, name)                                        \
  inline Var operator sym(const Var& x, const Var& y) { return name(x, y); } \
  inline Var operator sym(const Var& x, double y) { return name(x, y); }     \
  inline Var operator sym(double x, const Var& y) { return name(x, y); }
TAPEGRAD_OPERATOR(+, add)
TAPEGRAD_OPERATOR(-, sub)
TAPEGRAD_OPERATOR(*, mul)
TAPEGRAD_OPERATOR(/, div)
#undef TAPEGRAD_OPERATOR

inline Var& Var::operator+=(const Var& o) { return *this = *this + o; }
inline Var& Var::operator-=(const Var& o) { return *this = *this - o; }
inline Var& Var::operator*=(const Var& o) { return *this = *this * o; }
inline Var& Var::operator/=(const Var& o) { return *this = *this / o; }
inline Var& Var::operator+=(double o) { return *this = *this + o; }
inline Var& Var::operator-=(double o) { return *this = *this - o; }
inline Var& Var::operator*=(double o) { return *this = *this * o; }
inline Var& Var::operator/=(double o) { return *this = *this / o; }

// Comparisons are by value (they record nothing).
#define TAPEGRAD_COMPARE(sym)                                                                       \
  inline bool operator sym(const Var& x, const Var& y) noexcept { return x.value() sym y.value(); } \
  inline bool operator sym(const Var& x, double y) noexcept { return x.value() sym y; }             \
  inline bool operator sym(double x, const Var& y) noexcept { return x sym y.value(); }
TAPEGRAD_COMPARE(<)
TAPEGRAD_COMPARE(<=)
TAPEGRAD_COMPARE(>)
TAPEGRAD_COMPARE(>=)
TAPEGRAD_COMPARE(==)
TAPEGRAD_COMPARE(!=)
#undef TAPEGRAD_COMPARE

/// The plain value (found by the op table's rules through argument-dependent lookup).
inline double value(const Var& x) noexcept { return x.value(); }
/// The helpers the table's forward formulas use (min and max ops), for generic code.
inline Var minimum(const Var& x, const Var& y) { return min(x, y); }
inline Var maximum(const Var& x, const Var& y) { return max(x, y); }

std::ostream& operator<<(std::ostream& os, const Var& x);

// --- derivatives --------------------------------------------------------------------------
/// The gradient of y with respect to each of xs: one reverse sweep over y's tape.
/// A constant or an x recorded after y gets 0. Stale handles raise tapegrad::Error.
std::vector<double> grad(const Var& y, const std::vector<Var>& xs);
inline std::vector<double> grad(const Var& y, std::initializer_list<Var> xs) {
  return grad(y, std::vector<Var>(xs));
}

/// Asks for a recorded sweep (PyTorch's create_graph=True): `grad(y, xs, CreateGraph{})`.
struct CreateGraph {};
/// The gradient of y with respect to each of xs as Vars recorded on y's tape: the reverse
/// sweep runs the table's rules on Var, so each derivative can be differentiated again (to
/// any order). An x that y does not depend on gets the constant 0.
std::vector<Var> grad(const Var& y, const std::vector<Var>& xs, CreateGraph);
inline std::vector<Var> grad(const Var& y, std::initializer_list<Var> xs, CreateGraph cg) {
  return grad(y, std::vector<Var>(xs), cg);
}

/// Options of grad over several outputs (PyTorch's torch.autograd.grad).
struct GradOptions {
  bool create_graph = false;  ///< results recorded on the tape, differentiable again
  bool allow_unused = false;  ///< an x the outputs do not depend on gets std::nullopt instead of an error
};
/// The gradient of sum_k grad_outputs[k] * ys[k] with respect to each of xs, as
/// torch.autograd.grad: several outputs, each weighted by its grad_output (empty: all 1; a
/// recorded Var seeds a gradient that depends on it too). Each result is a Var: recorded on the
/// outputs' tape with `create_graph`, else a constant holding the value; std::nullopt for an x
/// the outputs do not depend on where `allow_unused` (else that raises tapegrad::Error).
/// Nothing is delivered anywhere (no sink, no .grad, changes).
std::vector<std::optional<Var>> grad(const std::vector<Var>& ys, const std::vector<Var>& xs,
                                     const std::vector<Var>& grad_outputs, GradOptions options);

/// Forward mode on scalars: d ys / d xs along v (one tangent per x), by one tangent sweep
/// forward over the records from the xs to the ys (a loop on doubles, like the reverse one).
std::vector<double> jvp(const std::vector<Var>& ys, const std::vector<Var>& xs, const std::vector<double>& v);

/// Forward mode, recorded: the tangents of ys along v (one tangent per x; Vars, so they may
/// themselves be on the tape) as Vars on the tape, by a tangent sweep that runs the table's
/// rules on Var: differentiable again (reverse over forward, forward over forward).
std::vector<Var> jvp(const std::vector<Var>& ys, const std::vector<Var>& xs, const std::vector<Var>& v, CreateGraph);

namespace detail {
/// A backward from record `from` of `tape` seeded with `seed` (Python's Var.backward): the plain
/// sweep, delivering into every leaf record's sink, then the roots that keep their gradient
/// (retain_grad).
void backward_from(Tape& tape, std::uint32_t from, double seed);
/// The same with create_graph: the recorded sweep, which delivers the values too; adj/has are
/// the scalar records' adjoints as Vars, as the sweep leaves them (sink_adjoints sums each
/// leaf's).
void recorded_backward_from(Tape& tape, std::uint32_t from, double seed, std::vector<Var>& adj,
                            std::vector<char>& has);
/// grad() with its inputs given by their records on `tape` (a Python leaf has one record per
/// value it had when used; each delivers into the same .grad): result k sums the adjoints of
/// the records xs[k]. The outputs and the seeds (empty: all 1) are Vars of `tape`. (The front
/// end of every grad on Vars: C++'s and tapegrad.autograd.grad's.)
std::vector<std::optional<Var>> grad_of_records(Tape& tape, const std::vector<Var>& ys, const std::vector<Var>& seeds,
                                                const std::vector<std::vector<std::uint32_t>>& xs, GradOptions options);
/// jvp() with its inputs given by their records on `tape`: tangents[k] seeds every record of
/// xs[k]; the tangent of each output record (Tape::kNone: a constant output, tangent 0). On
/// doubles, or, recorded, on Vars (tangents that may themselves be on the tape).
std::vector<double> jvp_of_records(Tape& tape, const std::vector<std::uint32_t>& ys,
                                   const std::vector<std::vector<std::uint32_t>>& xs, const std::vector<double>& tangents);
std::vector<Var> jvp_of_records(Tape& tape, const std::vector<std::uint32_t>& ys,
                                const std::vector<std::vector<std::uint32_t>>& xs, const std::vector<Var>& tangents);
/// After a recorded sweep from `from` (adj/has as it left them): each sink its leaf records
/// deliver into, with the sum of their adjoints (a Var), in the order the sinks are first met.
std::vector<std::pair<std::uint32_t, Var>> sink_adjoints(Tape& tape, std::uint32_t from, const std::vector<Var>& adj,
                                                         const std::vector<char>& has);
/// A leaf's recorded gradient after a recorded backward delivered `g` into it (PyTorch's
/// .grad under create_graph, accumulated): `grad_now` is its gradient's value with this
/// sweep's added; `previous` the recorded gradient it had (null for none), which is
/// accumulated into only while it is current on `tape` and its value is what the gradient
/// held before this sweep (else that value is a constant: the gradient was reset or changed).
Var accumulate_recorded_grad(Tape& tape, double grad_now, const Var* previous, const Var& g);
/// The leaf records among records [0, to] of `tape` that deliver into sink `slot`: every record
/// of one variable (see Tape::add_sink).
std::vector<std::uint32_t> sink_records(const Tape& tape, std::uint32_t slot, std::uint32_t to);
/// The scalar tangent sweep: tangents `seeds` (record, value) carried forward by the table's
/// rules; the tangent of each record of `outs`.
std::vector<double> scalar_tangents(Tape& tape, const std::vector<std::pair<std::uint32_t, double>>& seeds,
                                    const std::vector<std::uint32_t>& outs);
/// The recorded tangent sweep: tangents `seeds` (record, Var) carried forward by the rules
/// on Var; the tangent of each record of `outs` (the constant 0 where there is none).
std::vector<Var> recorded_tangents(Tape& tape, const std::vector<std::pair<std::uint32_t, Var>>& seeds,
                                   const std::vector<std::uint32_t>& outs);
/// The recorded reverse sweep from record `from` seeded with `seed`: adj[i] is the adjoint
/// of record i as a Var on `tape` where has[i] (else zero). Tensor records on the way run
/// their rules recorded too (create_graph).
void recorded_reverse(Tape& tape, std::uint32_t from, const Var& seed, std::vector<Var>& adj, std::vector<char>& has);
/// The same sweep with the seeds already placed: in adj/has (sized from + 1) for scalar
/// records, in workspace `ws` (ReverseSweep::ws) for tensor ones (null: none). With `deliver`, leaf records also
/// add their adjoint's value into their sinks and tensor leaves accumulate into their .grad (a
/// backward); without, no .grad changes (grad()). With `lo`, only records [lo, from] are
/// swept: a sweep nested in a running one that shares its adj/has (sized from + 1), whose
/// records below lo receive what the swept ones give them (its workspace too).
/// (sweep/reverse_recorded.cpp)
void recorded_sweep(Tape& tape, std::uint32_t from, std::vector<Var>& adj, std::vector<char>& has, bool deliver,
                    std::uint32_t lo = 0, const std::vector<char>* needed = nullptr, Workspace* ws = nullptr);
/// A backward with create_graph from record `from`, its seeds already placed as for
/// recorded_sweep (adj/has sized from + 1): the recorded sweep with delivery, then the
/// values of the scalar adjoints into the roots that keep their gradient (retain_grad).
void recorded_backward_sweep(Tape& tape, std::uint32_t from, std::vector<Var>& adj, std::vector<char>& has,
                             Workspace* ws = nullptr);
}  // namespace detail

}  // namespace tapegrad
