// g * d for the sweeps on Var: a rule's value d is a plain number (a constant slope: 1 passes
// g through, -1 negates it) or a Var.
#pragma once

#include "tapegrad/var.hpp"

namespace tapegrad::detail {

inline Var scaled(const Var& g, double d) { return d == 1.0 ? g : (d == -1.0 ? -g : g * d); }
inline Var scaled(const Var& g, const Var& d) { return g * d; }
inline Var as_var(double d) { return Var::constant(d); }
inline Var as_var(const Var& v) { return v; }

}  // namespace tapegrad::detail
