// Dtypes and shapes: names, sizes, promotion, broadcasting of shapes, axes normalised against a
// rank, and what a TensorImpl releases when it dies.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "tensor/internal.hpp"

namespace tapegrad {

// --- dtypes and shapes -------------------------------------------------------------------

const char* dtype_name(DType d) noexcept {
  switch (d) {
    case DType::Bool: return "bool";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
  }
  return "?";
}

std::size_t dtype_size(DType d) noexcept {
  switch (d) {
    case DType::Bool: return 1;
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
  }
  return 8;
}

namespace {
// The order of promotion: bool < int64 < the 16-bit floats < float32 < float64.
int dtype_rank(DType d) noexcept {
  switch (d) {
    case DType::Bool: return 0;
    case DType::Int64: return 1;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
    case DType::Float32: return 3;
    case DType::Float64: return 4;
  }
  return 4;
}
}  // namespace

DType promote(DType a, DType b) noexcept {
  if (a == b) return a;
  if (is_floating(a) != is_floating(b) && (a == DType::Int64 || b == DType::Int64)) {
    const DType f = a == DType::Int64 ? b : a;  // int64 with a float: float64 below 64 bits
    return f == DType::Float64 ? f : DType::Float64;
  }
  if (is_half(a) && is_half(b)) return DType::Float32;  // float16 with bfloat16
  return dtype_rank(a) >= dtype_rank(b) ? a : b;
}

DType arithmetic_dtype(DType a, DType b) noexcept {
  const DType d = promote(a, b);
  return is_floating(d) ? d : DType::Float64;
}

std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  if (s.size() == 1) r += ",";
  return r + ")";
}

std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) n *= d;
  return n;
}

namespace detail {
std::int64_t checked_numel(const Shape& s, const char* what) {
  // The product of the non-zero dimensions is bounded too: strides are products of them.
  std::int64_t n = 1;
  bool empty = false;
  for (std::int64_t d : s) {
    if (d < 0) throw ValueError(std::string("tapegrad: ") + what + "negative dimension in shape " + shape_str(s));
    if (d == 0) {
      empty = true;
      continue;
    }
    if (n > kMaxElements / d) throw ValueError(std::string("tapegrad: ") + what + "shape " + shape_str(s) + " is too large");
    n *= d;
  }
  return empty ? 0 : n;
}
}  // namespace detail

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      detail::throw_error(std::string("tapegrad: ") + op + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                          " cannot be broadcast together");
    r[i] = da == 1 ? db : da;
  }
  return r;
}

TensorImpl::~TensorImpl() {
  // A recorded gradient's root: removed if its tape is still alive and not rewound since.
  if (detail::grad_root_live(*this)) grad_tape->remove_root(grad_root);
}

namespace detail {

[[noreturn]] void throw_error(const std::string& msg) { throw Error(msg); }

std::recursive_mutex& leaf_mutex(const TensorImpl* p) noexcept {
  // (recursive: accumulating into a leaf may record an op whose operand is a leaf of the same
  // stripe, the leaf itself when a hook returns it)
  static std::recursive_mutex locks[64];
  return locks[(reinterpret_cast<std::uintptr_t>(p) >> 6) % 64];
}

bool grad_root_live(const TensorImpl& p) noexcept {
  // The tape may have been destroyed (its address even reused): looked up by the generation
  // the root was made at, never by reading the tape first.
  return p.grad_root != Tape::kNone && p.grad_tape &&
         handle_state(p.grad_tape, p.grad_gen) != HandleState::Destroyed && p.grad_tape->epoch() == p.grad_epoch;
}

void assign_grad(TensorImpl& p, std::shared_ptr<TensorImpl> g) {
  if (grad_root_live(p)) p.grad_tape->remove_root(p.grad_root);
  p.grad_root = Tape::kNone;
  p.grad_tape = nullptr;
  if (g && g->requires_grad && !g->leaf && is_current(g->tape, g->gen)) {
    p.grad_root = g->tape->add_root(g->rec, nullptr, false);
    p.grad_tape = g->tape;
    p.grad_epoch = g->tape->epoch();
    p.grad_gen = g->tape->generation();
  }
  p.grad = std::move(g);
}

std::vector<std::int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  const std::size_t n = out.size(), off = n - s.size();
  std::vector<std::int64_t> st(n, 0);
  std::int64_t acc = 1;
  for (std::size_t d = s.size(); d-- > 0;) {
    st[d + off] = (s[d] == 1) ? 0 : acc;
    acc *= s[d];
  }
  return st;
}

int normalize_axis(int axis, int ndim, const char* op) {
  if (axis < -ndim || axis >= ndim)
    throw_error(std::string("tapegrad: ") + op + ": axis " + std::to_string(axis) +
                " is out of bounds for a tensor of dimension " + std::to_string(ndim));
  return axis < 0 ? axis + ndim : axis;
}

std::vector<int> normalize_axes(const Axes& axes, int ndim, const char* op) {
  std::vector<int> r;
  if (axes.all) {
    for (int i = 0; i < ndim; ++i) r.push_back(i);
    return r;
  }
  for (int a : axes.list) {
    const int n = normalize_axis(a, ndim, op);
    if (std::find(r.begin(), r.end(), n) != r.end())
      throw_error(std::string("tapegrad: ") + op + ": axis " + std::to_string(a) + " is repeated");
    r.push_back(n);
  }
  std::sort(r.begin(), r.end());
  return r;
}

}  // namespace detail


}  // namespace tapegrad
