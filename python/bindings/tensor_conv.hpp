// Conversion between Python objects and Tensors for the sweeps and transformations (defined
// in tensor_type.cpp, used by its autograd functions and by transforms.cpp).
#pragma once

#include <pybind11/pybind11.h>

#include <functional>
#include <optional>
#include <vector>

#include "core.hpp"

namespace tgpy {

/// The Tensors of a sequence (current handles); TypeError naming `fn` (as in "autograd.grad")
/// and `what` for anything else, RuntimeError for a stale one.
std::vector<tapegrad::Tensor> sweep_tensors(const pybind11::sequence& seq, const char* fn, const char* what);
/// Seeds or tangents: Tensors, arrays or numbers (None: a null tensor), as floats.
std::vector<tapegrad::Tensor> sweep_seeds(const pybind11::sequence& seq);
/// A sweep from the outputs runs on their tape: holds it for this thread (`use`: its
/// kernels release the GIL) and records there (`scope`, for create_graph).
void on_outputs_tape(const std::vector<tapegrad::Tensor>& outs, std::optional<TapeUse>& use,
                     std::optional<tapegrad::ScopedTape>& scope);
/// Python Tensors for ts (None for a null one).
pybind11::tuple tensor_tuple(const std::vector<tapegrad::Tensor>& ts);
/// The Tensor of a Python Tensor; TypeError naming `fn` and `what` for anything else.
tapegrad::Tensor tensor_arg(pybind11::handle o, const char* fn, const char* what);
/// Makes the Python Tensor h, whose tensor an op has just made a recorded result, a root of
/// its tape (as every result's Python object is); false if h is not such a Tensor.
bool adopt_result(pybind11::handle h);
/// A new Python Tensor for t (a leaf or an unrecorded value: not a root of any tape).
pybind11::object tensor_object(tapegrad::Tensor t);

/// One op from Python: converts the operands (Tensors, Vars, numbers, arrays) on the right
/// tape, runs f on them, and returns its one result, or a tuple of several, as Python Tensors
/// (recorded results made roots of their tape).
pybind11::object tensor_call(const std::vector<pybind11::handle>& operands,
                             const std::function<std::vector<tapegrad::Tensor>(const std::vector<tapegrad::Tensor>&)>& f);

}  // namespace tgpy
