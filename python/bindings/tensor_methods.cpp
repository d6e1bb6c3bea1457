// tapegrad.Tensor's methods and tapegrad._core.tensor_ops' functions: each converts its
// arguments (tensor_py.hpp) and calls the core's op. Semantics live in cpp/src/.
#include <string>
#include <vector>

#include "tensor_py.hpp"

namespace tgpy {

// Registers one op once, from one callable, as a method of Tensor (its first argument is self)
// and as a function of tensor_ops (its first argument named x); `names` are the other
// arguments' names and defaults, the same for both.
template <class F, class... Names>
void def_op(py::class_<PyTensor>& cls, py::module_& ops, const char* name, const F& f, const Names&... names) {
  cls.def(name, f, names...);
  if constexpr (sizeof...(Names) > 0)
    ops.def(name, f, py::arg("x"), names...);
  else
    ops.def(name, f);
}

void register_tensor(py::module_& m) {
  g_np_array = py::object(py::module_::import("numpy").attr("array")).release();
  g_real = py::object(py::module_::import("numbers").attr("Real")).release();
  g_np_generic = py::object(py::module_::import("numpy").attr("generic")).release();
  py::module_ ops = m.def_submodule("tensor_ops", "Tensor versions of tapegrad's functions");
  set_tensor_ops(ops.ptr());

  py::class_<PyTensor> cls(m, "Tensor", py::buffer_protocol(), R"doc(
An n-d array (float32, float64, int64 or bool) that records the operations applied to it.

Create one with ``tapegrad.tensor(data, dtype=None, requires_grad=False)`` (copies) or
``tapegrad.from_numpy(a)`` (shares memory). Results of operations on tensors that require
grad are recorded on the tape; ``backward()`` fills ``.grad`` of the leaves, as in PyTorch.
)doc");
  g_tensor_type = cls;

  cls.def_buffer([](PyTensor& p) {
    const Tensor& t = p.t;
    const std::size_t es = tapegrad::dtype_size(t.dtype());
    const std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides = byte_strides(t);
    if (t.dtype() == DType::BFloat16)
      throw py::buffer_error("tapegrad: bfloat16 has no buffer-protocol format; use .numpy() (with ml_dtypes) or "
                             ".astype('float32')");
    const char* fmt = t.dtype() == DType::Bool      ? "?"
                      : t.dtype() == DType::Int64   ? "q"
                      : t.dtype() == DType::Float32 ? "f"
                      : t.dtype() == DType::Float16 ? "e"
                                                    : "d";
    return py::buffer_info(t.raw_data(), static_cast<py::ssize_t>(es), fmt, static_cast<py::ssize_t>(shape.size()),
                           shape, strides);
  });

  cls.def_property_readonly("shape", [](const PyTensor& p) { return py::tuple(py::cast(p.t.shape())); })
      .def_property_readonly("ndim", [](const PyTensor& p) { return p.t.ndim(); })
      .def_property_readonly("size", [](const PyTensor& p) { return p.t.numel(); })
      .def_property_readonly("dtype", [](const PyTensor& p) { return dtype_object(p.t.dtype()); })
      .def_property_readonly("is_leaf", [](const PyTensor& p) { return p.t.is_leaf(); })
      .def_property_readonly("grad_fn", &grad_fn_of,
                             "The record that made this result (None for a leaf): PyTorch's grad_fn.")
      .def_property(
          "requires_grad", [](const PyTensor& p) { return p.t.requires_grad(); },
          [](PyTensor& p, const py::object& on) {
            if (!PyBool_Check(on.ptr()))
              throw py::type_error(std::string("tapegrad: requires_grad must be a bool, not ") + Py_TYPE(on.ptr())->tp_name);
            p.t.requires_grad_(on.ptr() == Py_True);
          })
      .def_property(
          "grad",
          [](const PyTensor& p) -> py::object {
            Tensor g = p.t.grad();
            if (!g.defined()) return py::none();
            return wrap_tensor(std::move(g));
          },
          [](PyTensor& p, const py::object& g) {
            if (g.is_none()) return p.t.set_grad(Tensor());
            PyTensor* pg = as_pytensor(g);
            p.t.set_grad(pg ? pg->t : tensor_from_array(g, p.t.dtype(), false));
          })
      .def_property(
          "data", [](const PyTensor& p) { return py::cast(std::make_unique<PyTensor>(p.t.detach())); },
          [](PyTensor& p, const py::object& v) {
            check_same_kind(operand_kind(v), p.t, ".data =");
            PyTensor* pv = as_pytensor(v);
            Tensor t = pv ? pv->t : tensor_from_array(v, p.t.dtype(), false);
            if (t.raw_data() != p.t.raw_data()) p.t.assign(t);
          })
      .def("_assign_", [](py::object self, const py::object& values, const std::string& name) {
        // zero_, fill_, copy_, clamp_, uniform_, ...: values (a number, or a tensor or array of
        // this shape) written in place, as an in-place op: checked, and the version moves.
        PyTensor& p = self.cast<PyTensor&>();
        check_same_kind(operand_kind(values), p.t, name);
        check_inplace(p, name);
        PyTensor* pv = as_pytensor(values);
        Tensor v = pv ? pv->t
                      : is_number(values) ? Tensor::full(p.t.shape(), number_value(values), p.t.dtype())
                                          : tensor_from_array(values, p.t.dtype(), false);
        if (v.shape() != p.t.shape() && v.numel() == 1) v = Tensor::full(p.t.shape(), v.item(), p.t.dtype());
        if (v.raw_data() != p.t.raw_data()) {
          tapegrad::NoGrad ng;
          p.t.assign(v);  // (checks the shape, naming both)
        }
        return self;
      }, py::arg("values"), py::arg("name") = "in-place assignment")
      .def("numpy", [](const PyTensor& p) { return to_numpy(p.t); },
           "The values as a numpy.ndarray that shares this tensor's memory (no copy).")
      .def("__array__", [](const PyTensor& p, const py::object& dtype, const py::object& copy) -> py::object {
        // (NumPy reads the buffer protocol first; this serves the dtype it has no format for,
        // bfloat16, rather than NumPy's fallback to an object array of elements)
        // NumPy 2's protocol: copy=True always copies, copy=False never (a ValueError where a
        // dtype change needs one), None copies only for a dtype change
        py::object a = to_numpy(p.t);
        const int cp = copy.is_none() ? -1 : PyObject_IsTrue(copy.ptr());
        if (cp < 0 && !copy.is_none()) throw py::error_already_set();
        if (!dtype.is_none() && !py::object(a.attr("dtype")).equal(py::dtype::from_args(dtype))) {
          if (cp == 0)
            throw py::value_error("tapegrad: Tensor.__array__: a " + std::string(tapegrad::dtype_name(p.t.dtype())) +
                                  " tensor cannot become an array of another dtype without a copy (copy=False)");
          return a.attr("astype")(dtype);
        }
        if (cp == 1) return a.attr("copy")();
        return a;
      }, py::arg("dtype") = py::none(), py::kw_only(), py::arg("copy") = py::none())
      .def("item", [](const PyTensor& p) { return item_object(p.t); }, "The single element as a Python number.")
      .def("backward", &do_backward, py::arg("gradient") = py::none(), py::arg("retain_graph") = py::none(),
           py::arg("create_graph") = false,
           "Reverse sweep from this tensor: leaves that require grad accumulate into .grad. A "
           "tensor with more than one element needs gradient= (d(loss)/d(this), its shape).")
      .def("retain_grad", [](PyTensor& p) { p.t.retain_grad(); },
           "Keep this result's gradient in .grad on the next backward().")
      .def("requires_grad_", [](py::object self, bool on) {
        self.cast<PyTensor&>().t.requires_grad_(on);
        return self;
      }, py::arg("requires_grad") = true)
      .def("detach", [](const PyTensor& p) { return py::cast(std::make_unique<PyTensor>(p.t.detach())); },
           "The same memory as a tensor outside the graph (requires_grad=False).")
      .def("zero_grad", [](PyTensor& p) { p.t.zero_grad(); }, "Drop the accumulated gradient (.grad becomes None).")
      .def("clone", [](py::handle self) { return unary_call(self, [](const Tensor& x) { return x.clone(); }); })
      .def("astype", [](py::handle self, const py::object& dt) {
        if (dt.is_none()) throw py::type_error("tapegrad: astype() needs a dtype, not None");
        const DType d = *dtype_arg(dt);
        return unary_call(self, [d](const Tensor& x) { return tapegrad::astype(x, d); });
      })
      .def("__len__", [](const PyTensor& p) {
        if (p.t.ndim() == 0) throw py::type_error("len() of a 0-d tensor");
        return p.t.shape()[0];
      })
      .def("__float__", [](const PyTensor& p) { return p.t.item(); })
      .def("__int__", [](const PyTensor& p) {
        // as Python's int() of the number: NaN is a ValueError, an infinity an OverflowError
        PyObject* r = PyNumber_Long(item_object(p.t).ptr());
        if (!r) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(r);
      })
      .def("__index__", [](const PyTensor& p) {
        if (p.t.numel() != 1 || tapegrad::is_floating(p.t.dtype()))
          throw py::type_error("tapegrad: only integer tensors of a single element can be converted to an index "
                               "(this one is " + std::string(tapegrad::dtype_name(p.t.dtype())) + " of shape " +
                               tapegrad::shape_str(p.t.shape()) + ")");
        return item_object(p.t);
      })
      .def("__bool__", [](const PyTensor& p) {
        if (p.t.numel() == 0)
          throw py::value_error("the truth value of an empty tensor is ambiguous; use .numel() > 0 or .any()");
        if (p.t.numel() != 1)
          throw py::value_error("the truth value of a tensor with more than one element is ambiguous; use .any() or .all()");
        return p.t.item() != 0.0;
      })
      ;

  // Operators: Tensor, Var, number, ndarray or list on either side.
#define TG_BINOP(pyname, rpyname, fn)                                                                        \
  cls.def(pyname, [](py::handle a, py::handle b) {                                                            \
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return fn(x, y); });                       \
  }, py::is_operator());                                                                                      \
  cls.def(rpyname, [](py::handle a, py::handle b) {                                                           \
    return binary_call(b, a, [](const Tensor& x, const Tensor& y) { return fn(x, y); });                       \
  }, py::is_operator());
  TG_BINOP("__add__", "__radd__", tapegrad::add)
  TG_BINOP("__sub__", "__rsub__", tapegrad::sub)
  TG_BINOP("__mul__", "__rmul__", tapegrad::mul)
  TG_BINOP("__truediv__", "__rtruediv__", tapegrad::div)
  TG_BINOP("__pow__", "__rpow__", tapegrad::pow)
  TG_BINOP("__matmul__", "__rmatmul__", tapegrad::matmul)
#undef TG_BINOP
#define TG_CMP(pyname, fn)                                                                        \
  cls.def(pyname, [](py::handle a, py::handle b) {                                                 \
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::fn(x, y); }); \
  }, py::is_operator());
  TG_CMP("__lt__", less)
  TG_CMP("__le__", less_equal)
  TG_CMP("__gt__", greater)
  TG_CMP("__ge__", greater_equal)
  // == and != with None or an object that is no number or array: NotImplemented, so that
  // Python answers by identity (t == None is False), as PyTorch does.
#define TG_EQ(pyname, fn)                                                                            \
  cls.def(pyname, [](py::handle a, py::handle b) -> py::object {                                     \
    if (b.is_none() || !comparable(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);  \
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::fn(x, y); });   \
  }, py::is_operator());
  TG_EQ("__eq__", equal)
  TG_EQ("__ne__", not_equal)
#undef TG_EQ
#undef TG_CMP
#define TG_INPLACE(pyname, symbol, fn, true_div)                                                              \
  cls.def(pyname, [](py::object self, py::handle b) {                                                          \
    return inplace(self, b, symbol, true_div, [](const Tensor& x, const Tensor& y) { return tapegrad::fn(x, y); }); \
  }, py::is_operator());
  TG_INPLACE("__iadd__", "+=", add, false)
  TG_INPLACE("__isub__", "-=", sub, false)
  TG_INPLACE("__imul__", "*=", mul, false)
  TG_INPLACE("__itruediv__", "/=", div, true)
#undef TG_INPLACE
  cls.def("__neg__", [](py::handle a) { return unary_call(a, [](const Tensor& x) { return tapegrad::neg(x); }); });
  cls.def("__pos__", [](py::handle a) { return py::reinterpret_borrow<py::object>(a); });
  cls.def("__abs__", [](py::handle a) { return unary_call(a, [](const Tensor& x) { return tapegrad::abs(x); }); });

  // Every op of the table: a method and a function of tensor_ops.
#define TAPEGRAD_UNARY(Name, name, ...)                                                        \
  def_op(cls, ops, #name,                                                                       \
         [](py::handle a) { return unary_call(a, [](const Tensor& x) { return tapegrad::name(x); }); });
#define TAPEGRAD_BINARY(Name, name, ...)                                                              \
  def_op(cls, ops, #name, [](py::handle a, py::handle b) {                                             \
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::name(x, y); });   \
  });
#include "tapegrad/ops.def"

  // --- reductions (methods and functions) ---------------------------------------------------
  // NumPy's functions call these methods with out= (np.sum(t) is t.sum(axis=None, out=None))
  // and dtype= (the dtype to reduce in). Results are new tensors: out= must be None.
#define TG_REDUCE(name, call)                                                                                    \
  {                                                                                                               \
    auto f = [](py::handle x, const py::object& first, const py::object& keepdims, const py::object& dtype,     \
                const py::object& out, const py::object& axis, const py::object& dim, const py::object& keepdim) { \
      const Axes ax = reduce_axes(name, first, axis, dim);                                                        \
      const bool keep = keep_arg(keepdims, keepdim);                                                              \
      const std::optional<DType> dt = reduction_options(name, dtype, out);                                        \
      return unary_call(x, [&](const Tensor& t) { return call(dt ? tapegrad::astype(t, *dt) : t, ax, keep); });  \
    };                                                                                                            \
    def_op(cls, ops, name, f, py::arg("dim_or_axis") = py::none(), py::pos_only(), py::arg("keepdims") = py::none(), \
           py::arg("dtype") = py::none(), py::arg("out") = py::none(), py::kw_only(), py::arg("axis") = py::none(), \
           py::arg("dim") = py::none(), py::arg("keepdim") = py::none());                                         \
  }
  TG_REDUCE("sum", tapegrad::sum)
  TG_REDUCE("mean", tapegrad::mean)
  TG_REDUCE("amax", tapegrad::amax)
  TG_REDUCE("amin", tapegrad::amin)
  TG_REDUCE("prod", tapegrad::prod)
  TG_REDUCE("logsumexp", tapegrad::logsumexp)
#undef TG_REDUCE
  {
    // var and std: PyTorch's (unbiased: correction=1) when spelled as PyTorch's, with
    // positional arguments (dim, unbiased, keepdim; or unbiased alone), dim=, unbiased= or
    // correction=; NumPy's (ddof=0) with none of them (t.var(), axis=, ddof=). x.var(1) and
    // x.var(dim=1) are then one answer, as torch.var(x, 1) is.
    auto spread = [](const char* name, auto fn) {
      return [name, fn](py::handle x, const py::args& pos, const py::kwargs& kw) {
        const std::string fn_name = std::string("tapegrad: ") + name + "()";
        // keywords: NumPy's axis, ddof, keepdims, dtype, out; PyTorch's dim, keepdim, unbiased,
        // correction (dim=None is PyTorch's too: every axis, unbiased)
        py::object axis = py::none(), ddof = py::none(), keepdims = py::none(), dtype = py::none(), out = py::none();
        py::object dim = py::none(), keepdim = py::none(), unbiased = py::none(), correction = py::none();
        bool dim_given = false;
        for (auto item : kw) {
          const std::string key = py::str(item.first);
          py::object v = py::reinterpret_borrow<py::object>(item.second);
          if (key == "axis") axis = v;
          else if (key == "ddof") ddof = v;
          else if (key == "keepdims") keepdims = v;
          else if (key == "dtype") dtype = v;
          else if (key == "out") out = v;
          else if (key == "dim") dim = v, dim_given = true;
          else if (key == "keepdim") keepdim = v;
          else if (key == "unbiased") unbiased = v;
          else if (key == "correction") correction = v;
          else throw py::type_error(fn_name + " got an unexpected keyword argument '" + key + "'");
        }
        auto twice = [&](const char* what) {
          throw py::type_error(fn_name + " got " + what + " both as a positional and as a keyword argument");
        };
        std::size_t k = 0;
        if (pos.size() > 3) throw py::type_error(fn_name + " takes at most 3 positional arguments (dim, unbiased, keepdim)");
        if (pos.size() >= 1 && PyBool_Check(pos[0].ptr())) {  // var(unbiased): PyTorch's overload
          if (pos.size() > 1)
            throw py::type_error(fn_name + ": a bool as the first positional argument is unbiased (PyTorch's " + name +
                                 "(unbiased)), which takes no other positional argument");
          if (!unbiased.is_none()) twice("unbiased");
          unbiased = pos[0];
          k = 1;
        }
        const bool positional_dim = k == 0 && !pos.empty();
        if (positional_dim) {
          if (dim_given || !axis.is_none()) twice("dim");
          dim = pos[0];
          dim_given = true;
          if (pos.size() >= 2) {
            if (!PyBool_Check(pos[1].ptr()))
              throw py::type_error(fn_name + ": the second positional argument is unbiased, a bool (PyTorch's " + name +
                                   "(dim, unbiased, keepdim)), not " + Py_TYPE(pos[1].ptr())->tp_name +
                                   "; NumPy's ddof is a keyword: ddof=");
            if (!unbiased.is_none()) twice("unbiased");
            unbiased = pos[1];
          }
          if (pos.size() == 3) {
            if (!keepdim.is_none() || !keepdims.is_none()) twice("keepdim");
            keepdim = pos[2];
          }
        }
        const bool torch_style = dim_given || !unbiased.is_none() || !correction.is_none();
        if (torch_style && !ddof.is_none())
          throw py::type_error(fn_name + ": ddof= is NumPy's spelling and cannot be mixed with PyTorch's (positional "
                               "dim, dim=, unbiased=, correction=); use correction=");
        if (!unbiased.is_none() && !correction.is_none())
          throw py::type_error(fn_name + ": unbiased and correction both given; give one");
        int d = torch_style ? 1 : 0;
        if (!correction.is_none()) d = static_cast<int>(index_arg(correction, "correction"));
        else if (!unbiased.is_none()) d = py::bool_(unbiased).cast<bool>() ? 1 : 0;
        else if (!ddof.is_none()) d = PyBool_Check(ddof.ptr()) ? (ddof.ptr() == Py_True) : static_cast<int>(index_arg(ddof, "ddof"));
        const Axes ax = reduce_axes(name, py::none(), axis, dim);
        const bool keep = keep_arg(keepdims, keepdim);
        const std::optional<DType> dt = reduction_options(name, dtype, out);
        return unary_call(x, [&](const Tensor& t) { return fn(dt ? tapegrad::astype(t, *dt) : t, ax, d, keep); });
      };
    };
    auto spread_def = [&](const char* name, auto f) {
      const std::string doc = std::string(name) +
          "(*args, **kwargs): PyTorch's spread, unbiased by default, when spelled as PyTorch's (positional dim, "
          "unbiased, keepdim; or unbiased alone; dim=, keepdim=, unbiased=, correction=); NumPy's (ddof=0 by "
          "default) with NumPy's keywords only (axis=, ddof=, keepdims=) or no argument. dtype= reduces in that dtype.";
      cls.def(name, f, doc.c_str());
      ops.def(name, f, py::arg("x"), doc.c_str());
    };
    spread_def("var", spread("var", [](const Tensor& t, const Axes& a, int d, bool k) { return tapegrad::var(t, a, d, k); }));
    spread_def("std", spread("std", [](const Tensor& t, const Axes& a, int d, bool k) { return tapegrad::std(t, a, d, k); }));
    auto smf = [](py::handle x, const py::object& axis_obj, const py::object& dim, const py::object& dtype) {
      const py::object a = axis_or_dim(axis_obj, dim);
      const int axis = a.is_none() ? -1 : one_axis(a);
      const std::optional<DType> dt = dtype_arg(dtype);
      return unary_call(x, [&](const Tensor& t) { return tapegrad::softmax(dt ? tapegrad::astype(t, *dt) : t, axis); });
    };
    auto lsmf = [](py::handle x, const py::object& axis_obj, const py::object& dim, const py::object& dtype) {
      const py::object a = axis_or_dim(axis_obj, dim);
      const int axis = a.is_none() ? -1 : one_axis(a);
      const std::optional<DType> dt = dtype_arg(dtype);
      return unary_call(x, [&](const Tensor& t) { return tapegrad::log_softmax(dt ? tapegrad::astype(t, *dt) : t, axis); });
    };
    def_op(cls, ops, "softmax", smf, py::arg("axis") = py::none(), py::kw_only(), py::arg("dim") = py::none(),
           py::arg("dtype") = py::none());
    def_op(cls, ops, "log_softmax", lsmf, py::arg("axis") = py::none(), py::kw_only(), py::arg("dim") = py::none(),
           py::arg("dtype") = py::none());
  }

  // --- shapes and linear algebra -----------------------------------------------------------
  cls.def("reshape", [](py::handle self, const py::args& args) {
    const Shape s = shape_arg(args);
    return unary_call(self, [&](const Tensor& t) { return tapegrad::reshape(t, s); });
  });
  auto transpose_m = [](py::handle self, const py::args& args) {
    const std::vector<int> axes = args.size() == 0 ? std::vector<int>{} : axes_list(args);
    return unary_call(self, [&](const Tensor& t) { return tapegrad::transpose(t, axes); });
  };
  cls.def("transpose", transpose_m);
  cls.def("permute", transpose_m);
  cls.def_property_readonly("T", [](py::handle self) {
    return unary_call(self, [](const Tensor& t) { return tapegrad::transpose(t); });
  });
  auto squeeze_f = [](py::handle x, const py::object& first, const py::object& axis, const py::object& dim0) {
    py::object dim = dim0;
    if (!first.is_none()) {  // a positional axis is PyTorch's dim (as t.sum(1) is)
      if (!axis.is_none() || !dim.is_none())
        throw py::type_error("tapegrad: squeeze() got the axis both positionally and as a keyword");
      dim = first;
    }
    Axes ax = axes_arg(axis_or_dim(axis, dim));
    if (!dim.is_none() && !ax.all) {
      // PyTorch's squeeze(d) and squeeze(dim=d): a no-op for an axis whose length is not 1
      // (NumPy's squeeze(axis=d) raises)
      PyTensor* p = as_pytensor(x);
      const Shape& s = p ? p->t.shape() : Shape{};
      std::vector<int> keep;
      for (int a : ax.list) {
        const int n = static_cast<int>(s.size());
        if (p && a >= -n && a < n && s[static_cast<std::size_t>(a < 0 ? a + n : a)] != 1) continue;
        keep.push_back(a);
      }
      ax = Axes(keep);
    }
    return unary_call(x, [&](const Tensor& t) { return tapegrad::squeeze(t, ax); });
  };
  auto unsqueeze_f = [](py::handle x, const py::object& axis_obj, const py::object& dim) {
    const int axis = one_axis(axis_or_dim(axis_obj, dim));
    return unary_call(x, [axis](const Tensor& t) { return tapegrad::unsqueeze(t, axis); });
  };
  auto broadcast_f = [](py::handle x, const py::object& shape) {
    const Shape s = shape_of(shape);
    return unary_call(x, [&](const Tensor& t) { return tapegrad::broadcast_to(t, s); });
  };
  def_op(cls, ops, "squeeze", squeeze_f, py::arg("dim_or_axis") = py::none(), py::pos_only(), py::kw_only(),
         py::arg("axis") = py::none(), py::arg("dim") = py::none());
  def_op(cls, ops, "unsqueeze", unsqueeze_f, py::arg("axis") = py::none(), py::kw_only(), py::arg("dim") = py::none());
  def_op(cls, ops, "expand_dims", unsqueeze_f, py::arg("axis") = py::none(), py::kw_only(), py::arg("dim") = py::none());
  def_op(cls, ops, "broadcast_to", broadcast_f, py::arg("shape"));
  cls.def("flatten", [](py::handle self) {
    return unary_call(self, [](const Tensor& t) { return tapegrad::reshape(t, {-1}); });
  });
  ops.def("reshape", [](py::handle x, const py::object& shape) {
    const Shape s = shape_of(shape);
    return unary_call(x, [&](const Tensor& t) { return tapegrad::reshape(t, s); });
  }, py::arg("x"), py::arg("shape"));
  auto transpose_f = [](py::handle x, const py::object& axes) {
    std::vector<int> ax;
    if (!axes.is_none())
      for (std::int64_t a : ints_arg(axes, "axes")) ax.push_back(static_cast<int>(a));
    return unary_call(x, [&](const Tensor& t) { return tapegrad::transpose(t, ax); });
  };
  ops.def("transpose", transpose_f, py::arg("x"), py::arg("axes") = py::none());
  ops.def("permute", transpose_f, py::arg("x"), py::arg("axes"));
  ops.def("matmul", [](py::handle a, py::handle b) {
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::matmul(x, y); });
  });
  def_op(cls, ops, "dot", [](py::handle a, py::handle b) {
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::dot(x, y); });
  });
  ops.def("linear", [](py::handle x, py::handle w, py::handle b) {
    Call c({x, w, b});
    Tensor xt = c.arg(x), wt = c.arg(w);
    Tensor bt = b.is_none() ? Tensor() : c.arg(b);
    return c.run([&] { return tapegrad::linear(xt, wt, bt); });
  }, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(),
     "x @ weight.T + bias without a transposed copy of weight (torch.nn.functional.linear).");
  ops.def("outer", [](py::handle a, py::handle b) {
    return binary_call(a, b, [](const Tensor& x, const Tensor& y) { return tapegrad::outer(x, y); });
  });
  def_op(cls, ops, "clip", [](py::handle x, double lo, double hi) {
    return unary_call(x, [&](const Tensor& t) { return tapegrad::clip(t, lo, hi); });
  }, py::arg("a_min"), py::arg("a_max"));
  ops.def("where", [](py::handle cond, py::handle a, py::handle b) {
    Call c({cond, a, b});
    const DType like = like_of(a, b);
    Tensor ct = c.arg(cond), at = c.arg(a, like), bt = c.arg(b, like);
    return c.run([&] { return tapegrad::where(ct, at, bt); });
  });
  auto seq_f = [](const py::object& xs, int axis, bool stack) {
    // Any iterable (a list, an ndarray, a generator); its items held, as an ndarray or a
    // Tensor builds them on access (a borrowed handle would dangle).
    if (PyUnicode_Check(xs.ptr()) || PyBytes_Check(xs.ptr()) || !py::isinstance<py::iterable>(xs))
      throw py::type_error(std::string("tapegrad.") + (stack ? "stack" : "concatenate") +
                           ": tensors must be a sequence or iterable of tensors, not " + Py_TYPE(xs.ptr())->tp_name);
    std::vector<py::object> items;
    for (py::handle h : py::iter(xs)) items.push_back(py::reinterpret_borrow<py::object>(h));
    const std::vector<py::handle> hs(items.begin(), items.end());
    Call c(hs);
    DType like = DType::Float64;
    for (py::handle h : hs)
      if (PyTensor* p = as_pytensor(h)) like = p->t.dtype();
    std::vector<Tensor> ts;
    for (py::handle h : hs) ts.push_back(c.arg(h, like));
    return c.run([&] { return stack ? tapegrad::stack(ts, axis) : tapegrad::concatenate(ts, axis); });
  };
  ops.def("concatenate", [seq_f](const py::object& xs, const py::object& axis) { return seq_f(xs, one_axis(axis), false); },
          py::arg("tensors"), py::arg("axis") = 0);
  ops.def("stack", [seq_f](const py::object& xs, const py::object& axis) { return seq_f(xs, one_axis(axis), true); },
          py::arg("tensors"), py::arg("axis") = 0);

  // --- methods written in Python (tapegrad/_tensor.py): indexing keys, printing, pickling -----
  // The type is defined here alone; these methods call their Python implementations.
  auto python_method = [&cls](const char* name, const char* impl) {
    if (cls.attr("__dict__").contains(name)) py::delattr(cls, name);  // (max, min: the table's binary method)
    cls.def(name, [impl](const py::args& args, const py::kwargs& kwargs) {
      // (imported once; never released: it must outlive static destruction)
      static PyObject* impls = py::module_::import("tapegrad._tensor").release().ptr();
      return py::handle(impls).attr(impl)(*args, **kwargs);
    });
  };
  python_method("__getitem__", "_getitem");
  python_method("__iter__", "_iter");
  python_method("__repr__", "_repr");
  python_method("__str__", "_repr");
  python_method("tolist", "_tolist");
  // max and min: the table's binary methods give way to tapegrad/_torch.py's (a reduction,
  // PyTorch's (values, indices) along a dim, or elementwise with a tensor).
  py::delattr(cls, "max");
  py::delattr(cls, "min");
  python_method("__reduce__", "_reduce");
  python_method("__format__", "_format");
  cls.attr("__hash__") = py::module_::import("builtins").attr("object").attr("__hash__");  // identity, as torch
  cls.attr("__array_ufunc__") = py::none();  // NumPy defers: ndarray + Tensor calls Tensor.__radd__
  cls.attr("__array_priority__") = 1000;

  // --- indexing primitives (tapegrad/_tensor.py parses the key) -----------------------------
  ops.def("_take", [](py::handle x, py::handle index) {
    Call c({x});
    Tensor t = c.arg(x);
    PyTensor* pi = as_pytensor(index);
    Tensor idx = pi ? pi->t : tensor_from_array(index, DType::Int64, false);
    return c.run([&] { return tapegrad::take(t, idx); });
  });
  ops.def("_strided", [](py::handle x, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& step,
                         const Shape& shape) {
    return unary_call(x, [&](const Tensor& t) { return tapegrad::strided(t, start, step, shape); });
  });

  // --- creation ----------------------------------------------------------------------------------
  // device= and pin_memory= as PyTorch's factories take them: the CPU only (tapegrad/_device.py
  // checks the device and names any other in its error).
  auto check_device = [](py::handle device, bool pin_memory, const char* who) {
    if (!device.is_none()) py::module_::import("tapegrad._device").attr("check")(device, who);
    if (pin_memory)
      throw py::value_error(std::string("tapegrad.") + who + ": pin_memory=True pins memory for an accelerator, "
                            "and tapegrad computes on the CPU only");
  };
  auto make = [](const py::object& data, const py::object& dtype, bool requires_grad) {
    std::optional<DType> dt = dtype_arg(dtype);
    Tensor t;
    if (PyTensor* p = as_pytensor(data)) {
      const Tensor src = p->t.detach();  // a copy (in dtype= if given)
      t = dt && *dt != src.dtype() ? tapegrad::astype(src, *dt) : src.clone();
    } else if (is_var_object(data.ptr())) {
      t = Tensor::full({}, var_value(data.ptr()), dt ? *dt : DType::Float64);
    } else {
      if (!dt && !py::isinstance<py::array>(data) && PyObject_IsInstance(data.ptr(), g_np_generic.ptr()) != 1) {
        // Python numbers and (nested) lists: a floating result takes the default dtype
        py::array a(g_np_array(data));
        if (a.dtype().kind() == 'f') dt = g_default_float;
        t = tensor_from_array(a, dt, false);  // (a fresh array: no copy needed)
      } else {
        t = tensor_from_array(data, dt, true);
      }
    }
    if (requires_grad) t.requires_grad_(true);
    return std::make_unique<PyTensor>(std::move(t));
  };
  m.def("tensor", [make, check_device](const py::object& data, const py::object& dtype, bool requires_grad, const py::object& device,
                         bool pin_memory) {
    check_device(device, pin_memory, "tensor");
    return make(data, dtype, requires_grad);
  }, py::arg("data"), py::arg("dtype") = py::none(), py::arg("requires_grad") = false, py::kw_only(),
        py::arg("device") = py::none(), py::arg("pin_memory") = false,
        "A tensor holding a copy of data (a number, nested lists, an ndarray or a Tensor). device= is "
        "the CPU's (None, 'cpu' or tapegrad.device('cpu')): any other device raises, naming it.");
  // tapegrad.Tensor(data) copies as tensor() does; tapegrad.Tensor(2, 3), as torch.Tensor(2, 3),
  // is a tensor of that shape in the default dtype (zeros, where torch leaves memory unset).
  cls.def(py::init([make, check_device](const py::args& args, const py::kwargs& kwargs) {
    if (kwargs.contains("device")) check_device(kwargs["device"], false, "Tensor");
    bool sizes = args.size() > 0;
    for (py::handle a : args) sizes = sizes && PyLong_Check(a.ptr()) && !PyBool_Check(a.ptr());
    if (sizes) {
      if (args.size() == 1)
        throw py::type_error("tapegrad.Tensor(n): ambiguous between torch.Tensor(n) (n uninitialised elements) and a "
                             "number; write tapegrad.zeros(n) or tapegrad.empty(n) for the first, tapegrad.tensor(n) "
                             "for the second");
      Shape shape;
      for (py::handle a : args) shape.push_back(index_arg(a, "shape"));
      Tensor t = Tensor::zeros(shape, g_default_float);
      if (kwargs.contains("requires_grad") && py::bool_(kwargs["requires_grad"]).cast<bool>()) t.requires_grad_(true);
      return std::make_unique<PyTensor>(std::move(t));
    }
    if (args.size() > 3) throw py::type_error("tapegrad.Tensor(data, dtype=None, requires_grad=False): too many arguments");
    py::object data = args.size() > 0 ? py::reinterpret_borrow<py::object>(args[0])
                                      : (kwargs.contains("data") ? py::object(kwargs["data"]) : py::object(py::none()));
    py::object dtype = args.size() > 1 ? py::reinterpret_borrow<py::object>(args[1])
                                       : (kwargs.contains("dtype") ? py::object(kwargs["dtype"]) : py::object(py::none()));
    const bool rg = args.size() > 2 ? py::bool_(args[2]).cast<bool>()
                                    : (kwargs.contains("requires_grad") && py::bool_(kwargs["requires_grad"]).cast<bool>());
    for (auto kv : kwargs) {
      const std::string k = py::str(kv.first);
      if (k != "data" && k != "dtype" && k != "requires_grad" && k != "device")
        throw py::type_error("tapegrad.Tensor() got an unexpected keyword argument '" + k + "'");
    }
    if (data.is_none()) return std::make_unique<PyTensor>(Tensor::zeros({0}, dtype_or_default(dtype)));
    return make(data, dtype, rg);
  }));
  m.def("from_numpy", [](const py::object& a) {
    if (!py::isinstance<py::array>(a))
      throw py::type_error(std::string("tapegrad.from_numpy: expected a numpy.ndarray, got ") +
                           Py_TYPE(a.ptr())->tp_name + " (tapegrad.tensor copies any array-like)");
    return py::cast(std::make_unique<PyTensor>(tensor_from_array(a, std::nullopt, false)));
  }, py::arg("array"),
     "A tensor sharing the ndarray's memory. Arrays that are not C-contiguous, are read-only, "
     "or hold another dtype are copied (other integers -> int64).\n\n"
     "Writes through the array between a forward pass and backward() change what backward "
     "sees (as with torch.from_numpy): copy with tapegrad.tensor(a) if the array will change.");
  m.def("_full", [](const py::object& shape, double value, const py::object& dtype, bool requires_grad) {
    Tensor t = Tensor::full(shape_of(shape), value, dtype_or_default(dtype));
    if (requires_grad) t.requires_grad_(true);
    return py::cast(std::make_unique<PyTensor>(std::move(t)));
  });
  m.def("_arange", [](double start, double stop, double step, const py::object& dtype) {
    return py::cast(std::make_unique<PyTensor>(Tensor::arange(start, stop, step, dtype_or_default(dtype))));
  });
  m.def("_eye", [](std::int64_t n, std::int64_t k, const py::object& dtype) {
    return py::cast(std::make_unique<PyTensor>(Tensor::eye(n, k, dtype_or_default(dtype))));
  });
  register_grad_fn(m);
  ops.def("_put_add", [](py::handle src, py::handle index, const py::object& shape) {
    Call c({src});
    Tensor s = c.arg(src);
    PyTensor* pi = as_pytensor(index);
    Tensor idx = pi ? pi->t : tensor_from_array(index, DType::Int64, false);
    const Shape sh = shape_of(shape);
    return c.run([&] { return tapegrad::put_add(s, idx, sh); });
  });
  m.def("get_default_dtype", [] { return numpy_dtype(g_default_float); },
        "The floating dtype of factories and of Python floats (float64 unless set_default_dtype changed it).");
  m.def("_set_default_dtype", [](const py::object& dt) {
    const DType d = tensor_dtype(py::dtype::from_args(dt), true);
    if (d != DType::Float32 && d != DType::Float64)
      throw py::type_error(std::string("tapegrad.set_default_dtype: only float32 and float64 can be the default, not ") +
                           tapegrad::dtype_name(d));
    g_default_float = d;
  });
  m.def("_set_autocast", [](bool enabled, const py::object& dtype) {
    if (dtype.is_none()) throw py::type_error("tapegrad.autocast: dtype must be float16 or bfloat16, not None");
    tapegrad::set_autocast(enabled, *dtype_arg(dtype));
  });
  m.def("_autocast_state", [] {
    const tapegrad::AutocastState s = tapegrad::autocast_state();
    return py::make_tuple(s.enabled, dtype_object(s.dtype));
  });
  m.def("is_grad_enabled", &tapegrad::grad_enabled, "Whether operations are recorded (see no_grad).");
  m.def("_set_grad_enabled", &tapegrad::set_grad_enabled);
  m.def("gemm_backend", &tapegrad::gemm_backend, "Which matrix-product kernel matmul uses.");
  m.def("_grad", [](const py::sequence& outputs, const py::sequence& inputs,
                    const std::optional<py::sequence>& grad_outputs, bool create_graph, bool allow_unused) {
    const std::vector<Tensor> outs = sweep_tensors(outputs, "autograd.grad", "outputs"), ins = sweep_tensors(inputs, "autograd.grad", "inputs");
    std::vector<Tensor> seeds;
    if (grad_outputs) seeds = sweep_seeds(*grad_outputs);
    std::optional<TapeUse> use;
    std::optional<tapegrad::ScopedTape> scope;
    on_outputs_tape(outs, use, scope);
    return tensor_tuple(tapegrad::grad(outs, ins, seeds, create_graph, allow_unused));
  });
  m.def("_jvp", [](const py::sequence& outputs, const py::sequence& inputs, const py::sequence& tangents,
                   bool create_graph, bool batched) {
    const std::vector<Tensor> outs = sweep_tensors(outputs, "autograd.jvp", "outputs"), ins = sweep_tensors(inputs, "autograd.jvp", "inputs");
    const std::vector<Tensor> tans = sweep_seeds(tangents);
    std::optional<TapeUse> use;
    std::optional<tapegrad::ScopedTape> scope;
    on_outputs_tape(outs, use, scope);
    return tensor_tuple(tapegrad::jvp(outs, ins, tans, create_graph, batched));
  });

  // Exceptions: IndexError, ValueError and TypeError for the core's kinds of bad argument
  // (the rest are RuntimeError, as for Var).
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tapegrad::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const tapegrad::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const tapegrad::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const tapegrad::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
}

}  // namespace tgpy
