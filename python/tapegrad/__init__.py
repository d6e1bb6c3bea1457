"""tapegrad: automatic differentiation on an arena tape.

``Var`` is a scalar that records the operations applied to it; ``backward()`` runs one
native reverse sweep over the tape. ``Value`` is the same type under micrograd's name.
``Tensor`` is an n-d array (float32, float64; int64 and bool for indices and masks) on the
same tape, with PyTorch's autograd semantics and NumPy's names, broadcasting and indexing.
Every op of the C++ op table is a function here (``tapegrad.exp(x)``, ``tapegrad.pow(x, y)``,
...) and a method of ``Var`` and ``Tensor`` (``x.exp()``); the functions also take plain
numbers and arrays.
"""

from __future__ import annotations

import os as _os
from typing import NamedTuple as _NamedTuple
from typing import Tuple as _Tuple

from . import _core
from ._core import Tape, Tensor, Var, active_tape, gemm_backend, get_num_threads, set_num_threads

__version__: str = _core.__version__


def _load_blas() -> None:
    """matmul runs on OpenBLAS from the scipy-openblas32 wheel (a dependency); without it,
    on tapegrad's portable kernel (``tapegrad.gemm_backend()`` says which)."""
    try:
        import scipy_openblas32
    except ImportError:
        return
    lib_dir, name = scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library()
    for file in (f"lib{name}.so", f"lib{name}.dylib", f"{name}.dll", f"lib{name}.dll"):
        path = _os.path.join(lib_dir, file)
        if _os.path.exists(path):
            _core._use_blas(path, "scipy_")
            return


_load_blas()

Value = Var



class OpRow(_NamedTuple):
    """One row of tapegrad's op table (``cpp/include/tapegrad/ops.def``)."""

    name: str  #: the function and method name
    arity: int  #: 1 or 2
    reads: str  #: which of the operands x, y and the result z its derivative rule reads
    domain: _Tuple[_Tuple[float, float], ...]  #: (lo, hi) per operand: where it is smooth and well conditioned


#: Every primitive of the op table, in table order (unary ones first).
op_table: _Tuple[OpRow, ...] = tuple(OpRow(*row) for row in _core.op_table)

# One function per op of the table: neg, exp, log, ..., add, sub, mul, div, pow, atan2, min, max.
for _row in op_table:
    globals()[_row.name] = getattr(_core, _row.name)

from . import (  # noqa: E402
    _torch,  # noqa: E402, F401  (PyTorch's names on Tensor)
    accelerator,
    amp,
    autograd,
    backends,
    cuda,
    functional,
    nn,
    optim,
    random,
    serialization,
    utils,
    viz,
)

_core._set_hook_handle_type(utils.hooks._var_hook_handle)  # what Var.register_hook returns

from ._device import device, get_default_device, set_default_device  # noqa: E402
from ._dtypes import bfloat16  # noqa: E402
from ._einsum import einsum  # noqa: E402
from ._tensor import (  # noqa: E402
    amax,
    amin,
    arange,
    bool_,
    broadcast_to,
    clip,
    concatenate,
    dot,
    enable_grad,
    expand_dims,
    eye,
    float16,
    float32,
    float64,
    from_numpy,
    full,
    full_like,
    inference_mode,
    int64,
    is_grad_enabled,
    log_softmax,
    logsumexp,
    max,
    maximum,
    mean,
    min,
    minimum,
    no_grad,
    ones,
    ones_like,
    outer,
    permute,
    prod,
    reshape,
    set_grad_enabled,
    softmax,
    squeeze,
    std,
    sum,
    tensor,
    unsqueeze,
    var,
    where,
    zeros,
    zeros_like,
)
from ._torch import (  # noqa: E402
    BFloat16Tensor,
    BoolTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    LongTensor,
    Size,
    add,  # noqa: F401 (the op table's, with out= and alpha=; in __all__ through op_table)
    all,
    allclose,
    any,
    argmax,
    argmin,
    argsort,
    as_tensor,
    bmm,
    cat,
    clamp,
    concat,
    cumprod,
    cumsum,
    diag,
    div,  # noqa: F401 (the op table's, with out= and alpha=; in __all__ through op_table)
    empty,
    empty_like,
    eq,
    equal,
    flatten,
    gather,
    ge,
    get_default_dtype,
    greater,
    greater_equal,
    gt,
    index_select,
    is_floating_point,
    is_tensor,
    isclose,
    isfinite,
    isinf,
    isnan,
    le,
    less,
    less_equal,
    linalg,
    linspace,
    lt,
    masked_fill,
    matmul,
    mm,
    mul,  # noqa: F401 (the op table's, with out= and alpha=; in __all__ through op_table)
    mv,
    ne,
    norm,
    not_equal,
    numel,
    return_types,
    scatter_add,
    set_default_dtype,
    sign,
    sort,
    stack,
    sub,  # noqa: F401 (the op table's, with out= and alpha=; in __all__ through op_table)
    take_along_dim,
    topk,
    transpose,
)
from .amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402
from .functional import grad, hessian, hvp, jacfwd, jacobian, jacrev, jvp, value_and_grad, vjp  # noqa: E402
from .random import (  # noqa: E402
    Generator,
    bernoulli,
    initial_seed,
    manual_seed,
    multinomial,
    normal,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    seed,
)
from .serialization import load, save  # noqa: E402


def get_cmake_dir() -> str:
    """The folder holding tapegrad's CMake package (for ``-Dtapegrad_DIR=...``)."""
    return _os.path.join(_os.path.dirname(__file__), "lib", "cmake", "tapegrad")


def get_include() -> str:
    """The folder holding tapegrad's C++ headers."""
    return _os.path.join(_os.path.dirname(__file__), "include")


__all__ = [
    "Tape", "Var", "Value", "Tensor", "active_tape", "op_table", "OpRow", "nn", "autograd", "functional",
    "get_cmake_dir", "get_include", "grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian",
    "hvp", "viz", "amp", "autocast", "is_autocast_enabled", "get_autocast_dtype",
    "gemm_backend", "get_num_threads", "set_num_threads", *[row.name for row in op_table],
    "amax", "amin", "arange", "bool_", "broadcast_to", "clip", "concatenate", "dot", "enable_grad",
    "expand_dims", "eye", "float16", "bfloat16", "half", "float32", "float64", "from_numpy", "full", "full_like",
    "int64", "is_grad_enabled",
    "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum", "no_grad", "ones",
    "ones_like", "outer", "permute", "prod", "reshape", "softmax", "squeeze", "stack", "std", "sum", "tensor",
    "transpose", "unsqueeze", "var", "where", "zeros", "zeros_like",
    # PyTorch's names (tapegrad/_torch.py), the RNG (tapegrad/random.py), nn, optim, utils
    "optim", "random", "utils", "Size", "all", "allclose", "any", "argmax", "argmin", "argsort", "bmm", "cat", "clamp",
    "concat", "cumprod", "cumsum", "device", "empty", "empty_like", "eq", "equal", "flatten", "gather", "ge",
    "get_default_dtype",
    "greater", "greater_equal", "gt", "index_select", "is_floating_point", "is_tensor", "isclose", "isfinite", "isinf",
    "isnan", "le", "less", "less_equal", "linalg", "linspace", "lt", "masked_fill", "mm", "mv", "ne", "norm",
    "not_equal", "numel", "return_types", "scatter_add", "set_default_dtype", "sign", "sort", "take_along_dim", "topk",
    "inference_mode", "set_grad_enabled", "Generator", "bernoulli", "initial_seed", "manual_seed", "multinomial",
    "normal", "rand", "rand_like", "randint", "randint_like", "randn", "randn_like", "randperm", "seed",
    "float", "double", "long", "bool",
    # the device boilerplate (tapegrad/_device.py, cuda/, accelerator.py, backends/)
    "as_tensor", "accelerator", "backends", "cuda", "get_default_device", "set_default_device",
    "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "BoolTensor", "diag",
    # saving and loading (tapegrad/serialization.py)
    "save", "load", "serialization", "einsum",
]

# PyTorch's dtype aliases (last: they shadow builtins' names in this module's namespace).
float = float32  # noqa: A001
double = float64
half = float16
long = int64
bool = bool_  # noqa: A001
