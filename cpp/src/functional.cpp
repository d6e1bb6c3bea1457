// The transformations on lists of tensors (tapegrad::transforms): levels, variables, and
// vjp, jvp, the Jacobian and hvp over several outputs and arguments. The C++ templates of
// functional.hpp and the Python module tapegrad.functional both call these.
#include <algorithm>
#include <numeric>
#include <string>

#include "tapegrad/functional.hpp"

namespace tapegrad::transforms {
namespace {
// How many transformations are running in this thread.
thread_local int tls_depth = 0;

std::string count_error(const char* fn, std::size_t n, const char* what, std::size_t m, const char* of) {
  return std::string("tapegrad: ") + fn + ": " + std::to_string(n) + " " + what + " for " + std::to_string(m) +
         " " + of;
}

// Zeros of `shape` in the floating dtype of `like` (float64 for integer or bool tensors).
Tensor float_zeros(const Shape& shape, DType like) {
  return Tensor::zeros(shape, is_floating(like) ? like : DType::Float64);
}

Shape concat(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
}

// (n, *out) -> (*out, *in) where n = numel(in): the leading axis moved last and split.
Tensor leading_to_trailing(const Tensor& t, const Shape& out, const Shape& in) {
  std::vector<int> perm(static_cast<std::size_t>(t.ndim()));
  std::iota(perm.begin(), perm.end(), 0);
  if (!perm.empty()) std::rotate(perm.begin(), perm.begin() + 1, perm.end());
  return reshape(transpose(t, perm), concat(out, in));
}
}  // namespace

struct Level::Scope {
  Tape tape;
  ScopedTape active{tape};
};

Level::Level(bool argument_requires_grad, bool own_tape)
    : record_(tls_depth > 0 || (argument_requires_grad && grad_enabled())), grad_mode_(grad_enabled()) {
  ++tls_depth;
  // A transformation differentiates whatever the caller's grad mode (as torch.func does):
  // no_grad around it does not switch it off.
  set_grad_enabled(true);
  if (!record_ && own_tape) scope_ = std::make_unique<Scope>();
}

Level::~Level() {
  scope_.reset();
  set_grad_enabled(grad_mode_);
  --tls_depth;
}

bool Level::nested() noexcept { return tls_depth > 1; }

Tensor variable(const Tensor& x) {
  if (x.requires_grad()) return x;
  Tensor v = is_floating(x.dtype()) ? x.detach() : astype(x, DType::Float64);
  v.requires_grad_();
  return v;
}

std::vector<Tensor> variables(const std::vector<Tensor>& xs) {
  std::vector<Tensor> r;
  r.reserve(xs.size());
  for (const Tensor& x : xs) r.push_back(variable(x));
  return r;
}

Tensor result(const Tensor& t, bool record) { return record || !t.defined() ? t : t.detach(); }

void require_one_element(const Tensor& y, const char* fn) {
  if (y.numel() != 1)
    throw TypeError(std::string("tapegrad: ") + fn + ": the function must return one element, not shape " +
                     shape_str(y.shape()) + " (use jacrev or vjp for other outputs)");
}

std::vector<Tensor> vjp(const std::vector<Tensor>& outputs, const std::vector<Tensor>& vars,
                        const std::vector<Tensor>& cotangents, bool record) {
  if (!cotangents.empty() && cotangents.size() != outputs.size())
    throw ValueError(count_error("vjp", cotangents.size(), "cotangents", outputs.size(), "outputs"));
  std::vector<Tensor> live, seeds;
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    const Tensor& y = outputs[o];
    if (cotangents.empty()) {
      require_one_element(y, "grad");
    } else {
      const Tensor& u = cotangents[o];
      if (!u.defined() || u.shape() != y.shape())
        throw ValueError("tapegrad: vjp: a cotangent of shape " + (u.defined() ? shape_str(u.shape()) : "None") +
                         " for an output of shape " + shape_str(y.shape()));
      if (y.requires_grad()) seeds.push_back(is_floating(u.dtype()) ? u : astype(u, DType::Float64));
    }
    if (y.requires_grad()) live.push_back(y);
  }
  std::vector<Tensor> gs(vars.size());
  if (!live.empty()) gs = grad(live, vars, seeds, record, true);
  for (std::size_t i = 0; i < vars.size(); ++i)
    gs[i] = gs[i].defined() ? result(gs[i], record) : zeros_like(vars[i]);
  return gs;
}

std::vector<Tensor> jvp(const std::vector<Tensor>& outputs, const std::vector<Tensor>& vars,
                        const std::vector<Tensor>& tangents, bool record, bool batched) {
  if (tangents.size() != vars.size())
    throw ValueError(count_error("jvp", tangents.size(), "tangents", vars.size(), "arguments"));
  // batched: every tangent is (K, *its primal's shape), with the first tangent's K
  const std::int64_t K = batched && !tangents.empty() && tangents[0].defined() && tangents[0].ndim() > 0
                             ? tangents[0].shape()[0]
                             : -1;
  for (std::size_t i = 0; i < vars.size(); ++i) {
    const Shape& s = vars[i].shape();
    const Tensor& v = tangents[i];
    const bool ok = v.defined() && (batched ? v.ndim() == vars[i].ndim() + 1 && v.shape()[0] == K &&
                                                  std::equal(s.begin(), s.end(), v.shape().begin() + 1)
                                            : v.shape() == s);
    if (!ok)
      throw ValueError("tapegrad: jvp: a tangent of shape " + (v.defined() ? shape_str(v.shape()) : "None") +
                       " for a primal of shape " + shape_str(s) +
                       (batched ? " (batched: (K, *primal shape), one K for every tangent)" : ""));
  }
  std::vector<Tensor> live;
  for (const Tensor& y : outputs)
    if (y.requires_grad()) live.push_back(y);
  std::vector<Tensor> ts;
  if (!live.empty()) {
    std::vector<Tensor> fs;
    fs.reserve(tangents.size());
    for (const Tensor& v : tangents) fs.push_back(is_floating(v.dtype()) ? v : astype(v, DType::Float64));
    ts = tapegrad::jvp(live, vars, fs, record, batched);
  }
  std::vector<Tensor> r;
  r.reserve(outputs.size());
  std::size_t k = 0;
  for (const Tensor& y : outputs) {
    if (y.requires_grad()) {
      r.push_back(result(ts[k++], record));
    } else {
      Shape s = y.shape();
      if (batched) s.insert(s.begin(), std::max<std::int64_t>(K, 0));
      r.push_back(float_zeros(s, y.dtype()));
    }
  }
  return r;
}

namespace {
// Forward mode: every input direction at once, K = the total size of the variables.
std::vector<std::vector<Tensor>> jacobian_forward(const std::vector<Tensor>& outputs,
                                                  const std::vector<Tensor>& vars, bool record) {
  std::int64_t total = 0;
  for (const Tensor& x : vars) total += x.numel();
  if (total == 0) {  // no directions: empty blocks
    std::vector<std::vector<Tensor>> blocks;
    for (const Tensor& y : outputs) {
      std::vector<Tensor> row;
      for (const Tensor& x : vars) row.push_back(float_zeros(concat(y.shape(), x.shape()), y.dtype()));
      blocks.push_back(std::move(row));
    }
    return blocks;
  }
  std::vector<Tensor> tangents;
  std::int64_t off = 0;
  for (const Tensor& x : vars) {
    const std::int64_t n = x.numel();
    Tensor block;
    if (n == total) {
      block = Tensor::eye(total, total, x.dtype());
    } else {  // this variable's columns of the identity
      std::vector<double> v(static_cast<std::size_t>(total * n), 0.0);
      for (std::int64_t j = 0; j < n; ++j) v[static_cast<std::size_t>((off + j) * n + j)] = 1.0;
      block = Tensor::from_values(v, {total, n}, x.dtype());
    }
    tangents.push_back(reshape(block, concat({total}, x.shape())));
    off += n;
  }
  const std::vector<Tensor> cols = transforms::jvp(outputs, vars, tangents, record, true);  // (total, *out)
  std::vector<std::vector<Tensor>> blocks;
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    std::vector<Tensor> row;
    off = 0;
    for (const Tensor& x : vars) {
      const std::int64_t n = x.numel();
      const Tensor part = vars.size() == 1 ? cols[o] : slice(cols[o], 0, off, off + n);
      row.push_back(leading_to_trailing(part, outputs[o].shape(), x.shape()));
      off += n;
    }
    blocks.push_back(std::move(row));
  }
  return blocks;
}

// Reverse mode: one reverse sweep per output element, e_k^T J for every variable.
std::vector<std::vector<Tensor>> jacobian_reverse(const std::vector<Tensor>& outputs,
                                                  const std::vector<Tensor>& vars, bool record) {
  std::vector<std::vector<Tensor>> blocks;
  for (const Tensor& y : outputs) {
    std::vector<std::vector<Tensor>> rows(vars.size());
    if (y.requires_grad()) {
      const DType dt = is_floating(y.dtype()) ? y.dtype() : DType::Float64;
      std::vector<double> one(static_cast<std::size_t>(y.numel()), 0.0);
      for (std::int64_t k = 0; k < y.numel(); ++k) {
        one[static_cast<std::size_t>(k)] = 1.0;
        const std::vector<Tensor> gs = grad({y}, vars, {Tensor::from_values(one, y.shape(), dt)}, record, true);
        one[static_cast<std::size_t>(k)] = 0.0;
        for (std::size_t i = 0; i < vars.size(); ++i)
          rows[i].push_back(gs[i].defined() ? result(gs[i], record) : zeros_like(vars[i]));
      }
    }
    std::vector<Tensor> row;
    for (std::size_t i = 0; i < vars.size(); ++i) {
      const Shape s = concat(y.shape(), vars[i].shape());
      row.push_back(rows[i].empty() ? Tensor::zeros(s, vars[i].dtype()) : reshape(stack(rows[i], 0), s));
    }
    blocks.push_back(std::move(row));
  }
  return blocks;
}
}  // namespace

std::vector<std::vector<Tensor>> jacobian(const std::vector<Tensor>& outputs, const std::vector<Tensor>& vars,
                                          Mode mode, bool record) {
  return mode == Mode::Forward ? jacobian_forward(outputs, vars, record) : jacobian_reverse(outputs, vars, record);
}

std::vector<Tensor> hvp(const Tensor& y, const std::vector<Tensor>& vars, const std::vector<Tensor>& tangents,
                        bool record) {
  require_one_element(y, "hvp");
  return transforms::jvp(transforms::vjp({y}, vars, {}, true), vars, tangents, record);
}

}  // namespace tapegrad::transforms
