// The op table made into code: the op codes, and one rule type per op (Rule<Op::Exp>) with its
// forward formula, its partial derivatives, the values those read and its domain, all
// generated once from ops.def. Nothing else expands the rows' formulas.
#pragma once

#include <cstdint>

#include "tapegrad/rules.hpp"

namespace tapegrad {

/// Op codes of tape records. Each binary op Foo comes with FooVC (variable, constant) and
/// FooCV (constant, variable) forms in that order; their variable operand is always `a`
/// and their constant is `b`, an index into the tape's constant pool.
enum class Op : std::uint16_t {
  Leaf,  ///< an independent variable: no operands
#define TAPEGRAD_UNARY(Name, ...) Name,
#define TAPEGRAD_BINARY(Name, ...) Name, Name##VC, Name##CV,
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
  const char* backward_name;  ///< its node's name in a graph walk, as PyTorch names them ("ExpBackward0")
};

namespace detail {
inline constexpr OpInfo kOpInfo[] = {
    {"leaf", OpKind::Leaf, "AccumulateGrad"},
#define TAPEGRAD_UNARY(Name, name, ...) {#name, OpKind::Unary, #Name "Backward0"},
#define TAPEGRAD_BINARY(Name, name, ...)                                                      \
  {#name, OpKind::Binary, #Name "Backward0"}, {#name, OpKind::BinaryVC, #Name "Backward0"}, \
      {#name, OpKind::BinaryCV, #Name "Backward0"},
#include "tapegrad/ops.def"
    {"node", OpKind::Node, "Node"},
};
static_assert(sizeof(kOpInfo) / sizeof(kOpInfo[0]) == static_cast<std::size_t>(Op::Count_));
}  // namespace detail

constexpr const OpInfo& op_info(Op op) noexcept { return detail::kOpInfo[static_cast<int>(op)]; }
/// The (variable, constant) form of a binary op.
constexpr Op with_const_right(Op op) noexcept { return static_cast<Op>(static_cast<int>(op) + 1); }
/// The (constant, variable) form of a binary op.
constexpr Op with_const_left(Op op) noexcept { return static_cast<Op>(static_cast<int>(op) + 2); }

/// Which values a rule reads (a bit set: ops.def's `reads` column).
namespace reads {
inline constexpr unsigned None = 0, X = 1, Y = 2, Z = 4;
}

/// An interval of one operand: where the op is smooth and well conditioned (tests sample it).
struct Interval {
  double lo, hi;
  constexpr Interval(double l, double h) noexcept : lo(l), hi(h) {}
};

/// The rule of one op, from its row of ops.def:
///
/// - `forward(x)` / `forward(x, y)`: the value, on any number type (double on the hot paths:
///   pass doubles to compute in double; Var and Dual too);
/// - `dx(x, z)` (unary), `dx(x, y, z)` and `dy(x, y, z)` (binary): the partial derivatives as
///   expressions of the operands and the result, generic in the number type (double, float,
///   Var and Tensor for recorded sweeps, a mix of Var and double for a constant operand);
/// - `reads`: which of x, y, z those partials read (reads::X | reads::Z, ...);
/// - `name`, `arity`, `domain[arity]`.
///
/// (The formulas find `exp`, `sqrt`, ... of the number type by argument-dependent lookup, and
/// the double ones through `rules`.)
template <Op op>
struct Rule;

#define TAPEGRAD_UNARY(Name, name_, f, dx_, reads_, domain_)                                         \
  template <>                                                                                        \
  struct Rule<Op::Name> {                                                                            \
    static constexpr Op op = Op::Name;                                                               \
    static constexpr const char* name = #name_;                                                      \
    static constexpr int arity = 1;                                                                  \
    static constexpr unsigned reads = [] {                                                           \
      using namespace ::tapegrad::reads;                                                             \
      return static_cast<unsigned>(reads_);                                                          \
    }();                                                                                             \
    static constexpr Interval domain[1] = {Interval domain_};                                        \
    template <class T>                                                                               \
    static T forward(const T& x) {                                                                   \
      using namespace ::tapegrad::rules;                                                             \
      return T(f);                                                                                   \
    }                                                                                                \
    template <class X, class Z>                                                                      \
    static auto dx(const X& x, const Z& z) {                                                         \
      using namespace ::tapegrad::rules;                                                             \
      (void)x;                                                                                       \
      (void)z;                                                                                       \
      return dx_;                                                                                    \
    }                                                                                                \
  };
#define TAPEGRAD_BINARY(Name, name_, f, dx_, dy_, reads_, xdomain_, ydomain_)                        \
  template <>                                                                                        \
  struct Rule<Op::Name> {                                                                            \
    static constexpr Op op = Op::Name;                                                               \
    static constexpr const char* name = #name_;                                                      \
    static constexpr int arity = 2;                                                                  \
    static constexpr unsigned reads = [] {                                                           \
      using namespace ::tapegrad::reads;                                                             \
      return static_cast<unsigned>(reads_);                                                          \
    }();                                                                                             \
    static constexpr Interval domain[2] = {Interval xdomain_, Interval ydomain_};                    \
    template <class T>                                                                               \
    static T forward(const T& x, const T& y) {                                                       \
      using namespace ::tapegrad::rules;                                                             \
      return T(f);                                                                                   \
    }                                                                                                \
    template <class X, class Y, class Z>                                                             \
    static auto dx(const X& x, const Y& y, const Z& z) {                                             \
      using namespace ::tapegrad::rules;                                                             \
      (void)x;                                                                                       \
      (void)y;                                                                                       \
      (void)z;                                                                                       \
      return dx_;                                                                                    \
    }                                                                                                \
    template <class X, class Y, class Z>                                                             \
    static auto dy(const X& x, const Y& y, const Z& z) {                                             \
      using namespace ::tapegrad::rules;                                                             \
      (void)x;                                                                                       \
      (void)y;                                                                                       \
      (void)z;                                                                                       \
      return dy_;                                                                                    \
    }                                                                                                \
  };
#include "tapegrad/ops.def"

/// Calls `f(Rule<op>{})` for every op of the table, in table order (unary ones first).
template <class F>
void for_each_rule(F&& f) {
#define TAPEGRAD_UNARY(Name, ...) f(Rule<Op::Name>{});
#define TAPEGRAD_BINARY(Name, ...) f(Rule<Op::Name>{});
#include "tapegrad/ops.def"
}

}  // namespace tapegrad
