// The op codes, their metadata and their forward and derivative functions, all generated
// from ops.def.
#pragma once

#include <cstdint>

#include "tapegrad/rules.hpp"

namespace tapegrad {

/// Op codes of tape records. Each binary op Foo comes with FooVC (variable, constant) and
/// FooCV (constant, variable) forms in that order; their variable operand is always `a`
/// and their constant is `b`, an index into the tape's constant pool.
enum class Op : std::uint16_t {
  Leaf,  ///< an independent variable: no operands
#define TAPEGRAD_UNARY(Name, name, f, dx) Name,
#define TAPEGRAD_BINARY(Name, name, f, dx, dy) Name, Name##VC, Name##CV,
#include "tapegrad/ops.def"
  Node,  ///< an op outside the table (tensor ops): a: index of its Node object (tape.hpp)
  Count_
};

/// How a record uses its operand fields.
enum class OpKind : std::uint8_t {
  Leaf,        ///< no operands
  Unary,       ///< a: variable
  Binary,      ///< a, b: variables
  BinaryVC,    ///< a: variable (left operand), b: constant (right operand)
  BinaryCV,    ///< a: variable (right operand), b: constant (left operand)
  Node,        ///< a: a Node object, which lists its own inputs
};

struct OpInfo {
  const char* name;
  OpKind kind;
};

namespace detail {
inline constexpr OpInfo kOpInfo[] = {
    {"leaf", OpKind::Leaf},
#define TAPEGRAD_UNARY(Name, name, f, dx) {#name, OpKind::Unary},
#define TAPEGRAD_BINARY(Name, name, f, dx, dy) \
  {#name, OpKind::Binary}, {#name, OpKind::BinaryVC}, {#name, OpKind::BinaryCV},
#include "tapegrad/ops.def"
    {"node", OpKind::Node},
};
static_assert(sizeof(kOpInfo) / sizeof(kOpInfo[0]) == static_cast<std::size_t>(Op::Count_));
}  // namespace detail

constexpr const OpInfo& op_info(Op op) noexcept { return detail::kOpInfo[static_cast<int>(op)]; }
/// The (variable, constant) form of a binary op.
constexpr Op with_const_right(Op op) noexcept { return static_cast<Op>(static_cast<int>(op) + 1); }
/// The (constant, variable) form of a binary op.
constexpr Op with_const_left(Op op) noexcept { return static_cast<Op>(static_cast<int>(op) + 2); }

/// The table's functions: `table::fwd_exp(x)`, `table::fwd_pow(x, y)` on double, and the
/// derivative rules `table::d_exp(x, z)`, `table::d_pow_x(x, y, z)`, `table::d_pow_y(x, y, z)`,
/// generic in the number type. (Prefixed names, so that a formula's `exp(x)` finds the math
/// function and never the generated one.)
namespace table {
#define TAPEGRAD_UNARY(Name, name, f, dx)                            \
  inline double fwd_##name(double x) noexcept {                      \
    using namespace ::tapegrad::rules;                               \
    return f;                                                        \
  }                                                                  \
  template <class X, class Z>                                        \
  inline auto d_##name(const X& x, const Z& z) {                     \
    using namespace ::tapegrad::rules;                               \
    (void)x;                                                         \
    (void)z;                                                         \
    return dx;                                                       \
  }
#define TAPEGRAD_BINARY(Name, name, f, dx, dy)                                 \
  inline double fwd_##name(double x, double y) noexcept {                      \
    using namespace ::tapegrad::rules;                                         \
    return f;                                                                  \
  }                                                                            \
  template <class X, class Y, class Z>                                         \
  inline auto d_##name##_x(const X& x, const Y& y, const Z& z) {               \
    using namespace ::tapegrad::rules;                                         \
    (void)x;                                                                   \
    (void)y;                                                                   \
    (void)z;                                                                   \
    return dx;                                                                 \
  }                                                                            \
  template <class X, class Y, class Z>                                         \
  inline auto d_##name##_y(const X& x, const Y& y, const Z& z) {               \
    using namespace ::tapegrad::rules;                                         \
    (void)x;                                                                   \
    (void)y;                                                                   \
    (void)z;                                                                   \
    return dy;                                                                 \
  }
#include "tapegrad/ops.def"
}  // namespace table

}  // namespace tapegrad
