// How a scalar record becomes a call of its op's rule: the one decoding of a record's operand
// fields (variable, constant, which slot) that every scalar sweep uses.
#pragma once

#include <cstdint>

#include "tapegrad/op.hpp"
#include "tapegrad/tape.hpp"

// Forced inlining for the decoder and for the lambdas a sweep passes it: the plain sweep's
// loop instantiates them for every op, more than the compiler's inlining budget allows.
#if defined(__GNUC__)
#define TAPEGRAD_ALWAYS_INLINE inline __attribute__((always_inline))
#define TAPEGRAD_INLINE_LAMBDA __attribute__((always_inline))
#else
#define TAPEGRAD_ALWAYS_INLINE inline
#define TAPEGRAD_INLINE_LAMBDA
#endif

namespace tapegrad::detail {

/// Decodes scalar record `i` (`r` its record) into its op's rule and folds `state` through one
/// call per variable operand, `state = visit(state, slot, j, d)`: `slot` is 0 for the record's
/// `a` field and 1 for `b`, `j` the operand's record, and `d()` its partial derivative
/// dz/d(operand) by the op's rule, computed only when called. The rule runs on the sweep's
/// numbers: `at(j)` is record j's value (a double, or a Var handle for a recorded sweep) and
/// `constant(k)` entry k of the constant pool. Records without a rule (Leaf, Node) give
/// `state = other(state)`, from the same switch. Returns the last state.
///
/// (The state is threaded through by value rather than captured by reference: the plain
/// sweep's running sum then stays in a register; a lambda that captured it by reference cost
/// that loop 10-15%, measured.)
template <class State, class At, class Constant, class Visit, class Other>
TAPEGRAD_ALWAYS_INLINE State fold_partials(const Record& r, std::uint32_t i, State state, At&& at, Constant&& constant,
                                           Visit&& visit, Other&& other) {
  switch (r.op) {
#define TAPEGRAD_UNARY(Name, ...)                                                         \
  case Op::Name: {                                                                        \
    const auto x = at(r.a);                                                               \
    const auto z = at(i);                                                                 \
    return visit(state, 0, r.a, [&]() TAPEGRAD_INLINE_LAMBDA { return Rule<Op::Name>::dx(x, z); }); \
  }
#define TAPEGRAD_BINARY(Name, ...)                                                                       \
  case Op::Name: {                                                                                       \
    const auto x = at(r.a);                                                                              \
    const auto y = at(r.b);                                                                              \
    const auto z = at(i);                                                                                \
    state = visit(state, 0, r.a, [&]() TAPEGRAD_INLINE_LAMBDA { return Rule<Op::Name>::dx(x, y, z); }); \
    return visit(state, 1, r.b, [&]() TAPEGRAD_INLINE_LAMBDA { return Rule<Op::Name>::dy(x, y, z); });  \
  }                                                                                                      \
  case Op::Name##VC: {                                                                                   \
    const auto x = at(r.a);                                                                              \
    const double y = constant(r.b);                                                                      \
    const auto z = at(i);                                                                                \
    return visit(state, 0, r.a, [&]() TAPEGRAD_INLINE_LAMBDA { return Rule<Op::Name>::dx(x, y, z); });  \
  }                                                                                                      \
  case Op::Name##CV: {                                                                                   \
    const double x = constant(r.b);                                                                      \
    const auto y = at(r.a);                                                                              \
    const auto z = at(i);                                                                                \
    return visit(state, 0, r.a, [&]() TAPEGRAD_INLINE_LAMBDA { return Rule<Op::Name>::dy(x, y, z); });  \
  }
#include "tapegrad/ops.def"
    case Op::Leaf:
    case Op::Node:
    case Op::Count_:
      break;
  }
  return other(state);
}

/// The same for sweeps without a running state: `visit(slot, j, d)` per variable operand;
/// records without a rule are skipped.
template <class At, class Constant, class Visit>
TAPEGRAD_ALWAYS_INLINE void for_each_partial(const Record& r, std::uint32_t i, At&& at, Constant&& constant,
                                             Visit&& visit) {
  fold_partials(
      r, i, 0, at, constant,
      [&](int s, int slot, std::uint32_t j, auto d) {
        visit(slot, j, d);
        return s;
      },
      [](int s) { return s; });
}

/// The value of scalar record `r` by its op's forward formula on the sweep's numbers T
/// (double, or Var in a recorded sweep): `at(j)` is record j's value, `constant(k)` entry k of
/// the constant pool as a T. A record without a rule (Leaf, Node) is an internal error.
template <class T, class At, class Constant>
T forward_value(const Record& r, At&& at, Constant&& constant) {
  switch (r.op) {
#define TAPEGRAD_UNARY(Name, ...) \
  case Op::Name: return Rule<Op::Name>::forward(T(at(r.a)));
#define TAPEGRAD_BINARY(Name, ...)                                                    \
  case Op::Name: return Rule<Op::Name>::forward(T(at(r.a)), T(at(r.b)));              \
  case Op::Name##VC: return Rule<Op::Name>::forward(T(at(r.a)), T(constant(r.b)));   \
  case Op::Name##CV: return Rule<Op::Name>::forward(T(constant(r.b)), T(at(r.a)));
#include "tapegrad/ops.def"
    case Op::Leaf:
    case Op::Node:
    case Op::Count_:
      break;
  }
  throw Error("tapegrad: internal error: forward_value of a record without a rule");
}

}  // namespace tapegrad::detail
