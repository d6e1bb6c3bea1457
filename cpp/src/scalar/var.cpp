// Var: recording a scalar op on the tape (the slow paths of var.hpp's inline recording) and
// the errors of unusable handles. The sweeps over Vars are in sweep/, their front ends
// (grad, jvp) in autograd.cpp.
#include "tapegrad/var.hpp"

#include <ostream>
#include <string>

namespace tapegrad {

bool Var::valid() const noexcept {
  return is_constant() || detail::handle_state(tape_, gen_) == detail::HandleState::Current;
}

std::ostream& operator<<(std::ostream& os, const Var& x) { return os << "Var(" << x.value() << ")"; }

namespace detail {

void throw_unusable(const Var& v, const char* what) {
  std::string msg = std::string("tapegrad: ") + what + ": ";
  switch (handle_state(v.tape(), v.generation())) {
    case HandleState::Destroyed: msg += "the Var's tape was destroyed"; break;
    case HandleState::Stale:
      msg += "the Var is stale: its tape was cleared (or collected) after the Var was recorded";
      break;
    case HandleState::Current:
      msg += "the Var belongs to a tape that is not the active tape of this thread "
             "(open a ScopedTape on its tape)";
      break;
  }
  throw Error(msg);
}

namespace {
// The active tape, initialising this thread's default tape on first use.
Tape& active() { return Tape::active(); }

void check_on(const Var& v, const Tape& t, Op op) {
  if (!v.is_constant() && v.generation() != t.generation())
    throw_unusable(v, (std::string("cannot record ") + op_info(op).name).c_str());
}
}  // namespace

Var record_unary_slow(Op op, Var a, double v) {
  if (a.is_constant()) return Var::constant(v);
  Tape& t = active();
  check_on(a, t, op);
  return Var(v, t.push(op, a.index(), 0, v), t.generation(), &t);
}

Var record_binary_slow(Op op, Var a, Var b, double v) {
  if (a.is_constant() && b.is_constant()) return Var::constant(v);
  Tape& t = active();
  check_on(a, t, op);
  check_on(b, t, op);
  const std::uint32_t ra = a.is_constant() ? Tape::kNone : a.index(), rb = b.is_constant() ? Tape::kNone : b.index();
  return Var(v, push_binary(t, op, ra, rb, a.value(), b.value(), v), t.generation(), &t);
}

Var record_vc_slow(Op op, Var a, double c, double v) { return record_binary_slow(op, a, Var::constant(c), v); }

Var record_cv_slow(Op op, double c, Var b, double v) { return record_binary_slow(op, Var::constant(c), b, v); }

Tape& checked_tape(const Var& y, const char* what) {
  if (y.is_constant()) throw Error(std::string("tapegrad: ") + what + ": the Var is a constant");
  if (handle_state(y.tape(), y.generation()) != HandleState::Current) throw_unusable(y, what);
  return *y.tape();
}

}  // namespace detail

}  // namespace tapegrad
