// The sweeps' entry points for their front ends (autograd.cpp); not installed.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::detail {

/// The general tangent sweep: tangents (K, *shape) seeded at records `seeds`, carried forward
/// through the records between them and `outs`; the tangent of each record of `outs` (undefined
/// where it is zero). Only records on a path from a seed to an output are visited, and a
/// record's tangent is dropped after its last reader.
std::vector<Tensor> tangent_sweep(Tape& tape, const std::vector<std::pair<std::uint32_t, Tensor>>& seeds,
                                  const std::vector<std::uint32_t>& outs, std::int64_t K);

/// The partials of scalar record i with respect to its operand records (a, and b for
/// two-variable records), by the table's rules on doubles.
void scalar_partials(const Tape& tape, std::uint32_t i, double& da, double& db);
/// The same partials as Vars recorded on the tape (the rules on Var).
void scalar_partials_recorded(Tape& tape, std::uint32_t i, Var& da, Var& db);

}  // namespace tapegrad::detail
