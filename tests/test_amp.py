"""Mixed precision: the 16-bit storage dtypes (``float16``, ``bfloat16``), ``tapegrad.autocast`` and
``tapegrad.amp.GradScaler``, against NumPy, ml_dtypes and PyTorch (CPU) on the same inputs.

1. dtypes: NumPy ``float16`` arrays in and out (``from_numpy`` shares memory both ways), ml_dtypes
   ``bfloat16`` arrays, ``dtype='bfloat16'`` / ``tg.bfloat16``; conversions bit for bit as NumPy's
   ``astype(float16)`` and ml_dtypes' ``astype(bfloat16)`` (random values, ties, subnormals, overflow,
   infinities, NaN; every 16-bit pattern widened); a dtype tapegrad lacks is a TypeError naming it; the
   promotion table; repr, pickle, astype, tolist.
2. ops on 16-bit tensors against torch on the same 16-bit inputs: every op of the op table, the
   reductions, softmax / log_softmax and matmul, values and gradients (in the parameter's dtype); sums
   and products accumulate in float32 (4096 ones sum to 4096 exactly).
3. ``tg.autocast`` against ``torch.autocast('cpu')``: the context manager, decorator, nesting,
   errors; which ops return 16-bit and which float32; an MLP's logits, loss and float32 gradients.
4. ``tg.amp.GradScaler`` against ``torch.amp.GradScaler('cpu')`` step by step on the same model:
   scales, ``state_dict()``, parameters, skipped steps, errors (torch's messages).
5. The measured claim: the 784-256-256-10 MLP at batch 1024 under bfloat16 autocast saves at most
   0.60 of float32's activation bytes (``Tape.stats()['saved_bytes']``).

Tolerances for 16-bit results are in units of the dtype's machine epsilon EPS (float16 2**-10,
bfloat16 2**-7; one ulp of a value in [1, 2)). Both engines compute each op in float32 and round once,
so forward values agree to one ulp; torch's backward formulas round their intermediates to the 16-bit
dtype (``grad * cos(x)``: two roundings, erf's four), measured up to 2.6 EPS, hence 4 EPS for
gradients, elementwise for pointwise ops and relative to the largest element (max norm) for reductions,
whose results cancel. Tests that show a bug in tapegrad are ``xfail(strict=True)`` with ``BUG:``."""

from __future__ import annotations

import copy
import math
import pickle
import re
import threading
import warnings
import zlib
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tapegrad as tg
from conftest import OPS
from tapegrad import nn

F = nn.functional

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # (conftest.py)

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

HALF = ["float16", "bfloat16"]
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7}
NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float64": np.float64}
TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
TG = {"float16": tg.float16, "bfloat16": tg.bfloat16, "float32": tg.float32, "float64": tg.float64}
TINY = {"float16": 2.0**-24, "bfloat16": 2.0**-133}  # the subnormal spacing
BUG = "BUG: "


def f64(t: Any) -> np.ndarray:
    """A tensor of either engine (any float dtype) as a float64 array (exact: a widening)."""
    if isinstance(t, torch.Tensor):
        return t.detach().double().numpy()
    return np.asarray(t.astype(np.float64).numpy())


def bits(a: np.ndarray) -> np.ndarray:
    """The bit patterns of an array of floats."""
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def assert_ulps(ours: Any, theirs: Any, dt: str, n: float, what: str, subnormal_ulps: float = 4) -> None:
    """Elementwise: |ours - theirs| <= n EPS max(|ours|, |theirs|) + a few ulps of the subnormals (torch's
    float16 erf is off by 2 of them for |x| < 1e-5, where tapegrad's is correctly rounded)."""
    a, b = f64(ours), f64(theirs)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    tol = n * EPS[dt] * np.maximum(np.abs(a), np.abs(b)) + subnormal_ulps * TINY[dt]
    bad = ~(np.abs(a - b) <= tol)
    assert not bad.any(), (f"{what}: {bad.sum()} of {a.size} elements differ by more than {n} EPS ({dt}); "
                           f"first: ours {a[bad][:4]}, torch {b[bad][:4]}")


def assert_normwise(ours: Any, theirs: Any, dt: str, n: float, what: str) -> None:
    """max |ours - theirs| <= n EPS max |theirs|: for results that cancel (sums, softmax' gradients)."""
    a, b = f64(ours), f64(theirs)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    err, scale = float(np.max(np.abs(a - b), initial=0.0)), float(np.max(np.abs(b), initial=0.0))
    assert err <= n * EPS[dt] * scale + 1e-30, f"{what}: max error {err:.3g} > {n} EPS ({dt}) x max |torch| {scale:.3g}"


def rounded(rng: np.random.Generator, dt: str, shape: Tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    """Uniform values in [lo, hi] that the 16-bit dtype dt holds exactly, as float32."""
    return rng.uniform(lo, hi, shape).astype(NP[dt]).astype(np.float32)


def leaves(x: np.ndarray, dt: str) -> Tuple[Any, Any]:
    """The same values as a tapegrad and a torch leaf of dtype dt."""
    return tg.tensor(x, dtype=TG[dt], requires_grad=True), torch.tensor(x).to(TORCH[dt]).requires_grad_()


# =====================================================================================================
# 1. the 16-bit dtypes
# =====================================================================================================


def test_a_float16_array_keeps_float16():
    a = np.array([0.1, 1000.0, 65504.0, -2.0**-24], dtype=np.float16)
    t = tg.tensor(a)
    assert t.dtype == np.float16 and t.element_size() == 2 and t.nbytes == 8
    assert_array_equal(bits(t.numpy()), bits(a))
    assert t.numpy().dtype == np.float16
    assert not np.shares_memory(t.numpy(), a)  # tg.tensor copies
    # .numpy() views the tensor's own memory
    n = t.numpy()
    t.mul_(0.5)
    assert_array_equal(bits(n), bits((a.astype(np.float32) * 0.5).astype(np.float16)))


@pytest.mark.parametrize("dt", HALF)
def test_from_numpy_shares_16bit_memory_both_ways(dt):
    a = np.array([1.0, 2.5, -3.0], dtype=NP[dt])
    t = tg.from_numpy(a)
    assert t.dtype == np.dtype(NP[dt])
    assert t.numpy().dtype == np.dtype(NP[dt])
    assert np.shares_memory(t.numpy(), a)
    a[0] = 7.0                       # the array's write is the tensor's
    assert t.tolist() == [7.0, 2.5, -3.0]
    t.mul_(2.0)                      # the tensor's write is the array's
    assert a.astype(np.float32).tolist() == [14.0, 5.0, -6.0]


def test_bfloat16_by_name():
    x = [1.0, 3.3, -0.1]
    want = bits(np.array(x).astype(ml_dtypes.bfloat16))
    for spelling in ("bfloat16", tg.bfloat16, ml_dtypes.bfloat16, np.dtype(ml_dtypes.bfloat16)):
        t = tg.tensor(x, dtype=spelling)
        assert t.dtype == np.dtype(ml_dtypes.bfloat16) and str(t.dtype) == "bfloat16", spelling
        assert_array_equal(bits(t.numpy()), want)
    for spelling in ("float16", "half", tg.float16, tg.half, np.float16):
        assert tg.tensor(x, dtype=spelling).dtype == np.float16, spelling
    assert tg.zeros((2, 3), dtype=tg.bfloat16).dtype.name == "bfloat16"
    assert tg.ones(4, dtype="bfloat16").tolist() == [1.0] * 4
    assert tg.full((2,), 3.3, dtype=tg.bfloat16).tolist() == [3.296875, 3.296875]
    assert tg.arange(3, dtype=np.float16).tolist() == [0.0, 1.0, 2.0]
    # the README's example
    b = tg.tensor([1.0, 3.3], dtype=tg.bfloat16, requires_grad=True)
    (b * b).sum().backward()
    assert b.tolist() == [1.0, 3.296875] and b.grad.tolist() == [2.0, 6.59375]
    assert b.grad.dtype.name == "bfloat16"


def _conversion_sources() -> np.ndarray:
    """float64 values: random over many binades, float16 and bfloat16 ties (half-way between
    neighbours, so round-to-nearest-even decides), subnormals of both, overflow, inf, NaN."""
    rng = np.random.default_rng(20261201)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan,
               65504.0, 65519.99, 65520.0, -65520.0, 1e5,  # float16: max, the last below overflow, overflow
               2.0**-14, 2.0**-14 * (1 - 2.0**-11), 2.0**-24, 2.0**-25, 2.0**-25 * (1 + 2.0**-20), 2.0**-26, 1e-8,
               3.3895313892515355e38, 3.3961775292304437e38, 3.4e38, 1e39, -1e300,  # bfloat16's max and overflow
               2.0**-126, 2.0**-133, 2.0**-134, 2.0**-135, 1e-45, 5e-324,  # bfloat16 subnormals, float64's least
               1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8 + 2.0**-30]
    k16 = rng.integers(1024, 2048, 400)      # float16 ties: (k + 1/2) ulp, k even or odd
    ties16 = (k16 + 0.5) * 2.0 ** rng.integers(-24, 6, 400)
    kb = rng.integers(128, 256, 400)         # bfloat16 ties
    tiesb = (kb + 0.5) * 2.0 ** rng.integers(-133, 120, 400)
    spread = rng.standard_normal(6000) * np.exp(rng.uniform(-100, 100, 6000))
    return np.concatenate([special, ties16, -ties16, tiesb, -tiesb, spread, rng.uniform(-7e4, 7e4, 2000)])


# The 16-bit formats: mantissa bits, least normal exponent, largest exponent (= the bias).
FORMAT = {"float16": (10, -14, 15), "bfloat16": (7, -126, 127)}


def rounded_bits(x: np.ndarray, dt: str) -> np.ndarray:
    """The reference the conversions are checked against, computed here with integer arithmetic on
    the bit patterns (not by NumPy or ml_dtypes, whose bfloat16 rounding changed in 0.7): each finite
    float64 or float32 in x rounded once to the nearest 16-bit value of dt, ties to even, past the
    largest finite value to infinity (IEEE's round-to-nearest-even). NaN's entries are meaningless."""
    p, emin, bias = FORMAT[dt]
    if x.dtype == np.float64:
        u = x.view(np.uint64)
        sign = (u >> np.uint64(63)).astype(np.int64)
        e = ((u >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
        m = (u & np.uint64((1 << 52) - 1)).astype(np.int64)
        frac_bits, e_max, e_bias = 52, 0x7FF, 1023
    else:
        u = x.view(np.uint32).astype(np.int64)
        sign, e, m = u >> 31, (u >> 23) & 0xFF, u & ((1 << 23) - 1)
        frac_bits, e_max, e_bias = 23, 0xFF, 127
    # |x| = M 2^E with M an integer, k = floor(log2 |x|)
    M = np.where(e == 0, m, m | (1 << frac_bits))
    E = np.where(e == 0, 1 - e_bias - frac_bits, e - e_bias - frac_bits)
    bitlen = np.zeros_like(M)
    for b in range(frac_bits + 1):  # the bit length of M, one bit at a time (integers only)
        bitlen = np.where(M >> b != 0, b + 1, bitlen)
    k = E + bitlen - 1
    # the quantum of the result, 2^Q, and M 2^E rounded to a multiple of it, ties to even
    Q = np.maximum(k, emin) - p
    shift = np.minimum(Q - E, 62)  # (>= 1 for both sources; past 62 every bit of M is below half)
    assert (shift >= 1).all()
    R = M >> shift
    rem = M & ((np.int64(1) << shift) - 1)
    half = np.int64(1) << (shift - 1)
    R = R + ((rem > half) | ((rem == half) & (R & 1 == 1)))
    # the encoding: a normal result has R in [2^p, 2^(p+1)] (a carry to 2^(p+1) moves it to the
    # next binade, which the same sum gives); a subnormal one is R itself (R = 2^p: the least normal)
    out = np.where(k >= emin, ((k + bias) << p) + (R - (1 << p)), R)
    inf = (2 * bias + 1) << p
    out = np.minimum(out, inf)                       # overflow: infinity
    out = np.where((e == 0) & (m == 0), 0, out)      # zeros
    out = np.where(e == e_max, inf, out)             # infinities (and NaN, not checked)
    return (out | (sign << 15)).astype(np.uint16)


def sixteen_bits(t: Any) -> np.ndarray:
    """The bit patterns of a 16-bit tensor, without ml_dtypes (bfloat16 widens to float32 exactly)."""
    if t.dtype.name == "bfloat16":
        return (t.astype(tg.float32).numpy().view(np.uint32) >> 16).astype(np.uint16)
    return t.numpy().view(np.uint16)


def every_tie(dt: str, src: str) -> np.ndarray:
    """Every 16-bit value of dt, every point half-way between two neighbours (the overflow threshold,
    half-way past the largest finite value, included) and the nearest src values on either side of
    each, both signs: every tie, every subnormal, every near-overflow value."""
    p, emin, bias = FORMAT[dt]
    b = np.arange(0, ((2 * bias + 1) << p) + 1, dtype=np.int64)  # 0 .. infinity's pattern
    ex, fr = b >> p, b & ((1 << p) - 1)
    v = np.where(ex == 0, np.ldexp(fr.astype(np.float64), emin - p),
                 np.ldexp((fr + (1 << p)).astype(np.float64), np.maximum(ex, 1) - bias - p))
    v[-1] = 2.0 ** (bias + 1)  # (the first value past the largest finite: what overflow rounds toward)
    mid = (v[:-1] + v[1:]) / 2  # exact in float64 and float32: p + 2 bits
    s = mid.astype(src)
    assert (s.astype(np.float64) == mid).all()
    near = [s, np.nextafter(s, np.inf, dtype=src), np.nextafter(s, -np.inf, dtype=src), v[:-1].astype(src)]
    x = np.concatenate(near)
    return np.concatenate([x, -x])


def test_the_rounding_reference_itself():
    """The reference against NumPy's float16 (which rounds a float64 once) and known bfloat16 cases."""
    for src in ("float64", "float32"):
        x = every_tie("float16", src)
        with np.errstate(over="ignore"):
            assert_array_equal(rounded_bits(x, "float16"), bits(x.astype(np.float16)))
    cases = {1.0039062500000002: 0x3F81, 1.0039062499999998: 0x3F80, 1.00390625: 0x3F80, 1.01171875: 0x3F82,
             3.3961775292304437e38: 0x7F7F, 3.39617752923046e38: 0x7F80, 3.4e38: 0x7F80, 2.0**-133: 0x0001,
             2.0**-134: 0x0000, 2.0**-134 * (1 + 2.0**-40): 0x0001, 3 * 2.0**-134: 0x0002, -0.0: 0x8000, -1.0: 0xBF80}
    x = np.array(list(cases))
    assert_array_equal(rounded_bits(x, "bfloat16"), np.array(list(cases.values()), dtype=np.uint16))


ROUTES = ["tensor(dtype=)", "astype", "from_numpy().to", "autocast"]


def _convert(x: np.ndarray, dt: str, route: str) -> Any:
    if route == "tensor(dtype=)":
        return tg.tensor(x, dtype=TG[dt])
    if route == "astype":
        return tg.tensor(x).astype(TG[dt])
    if route == "from_numpy().to":
        return tg.from_numpy(x).to(TG[dt])
    # autocast casts a floating operand of a matrix product to its dtype: x @ 1 keeps x's values
    with tg.autocast(dtype=TG[dt]):
        return (tg.tensor(x).reshape(-1, 1) @ tg.tensor([[1.0]], dtype=x.dtype)).reshape(-1)


@pytest.mark.parametrize("src", ["float64", "float32"])
@pytest.mark.parametrize("dt", HALF)
@pytest.mark.parametrize("route", ROUTES)
def test_every_tie_subnormal_and_overflow_rounds_once(src, dt, route):
    """float64 and float32 to float16 and bfloat16 in one rounding to nearest even, on every route:
    against the integer reference, for every tie and the values beside it (PyTorch, and ml_dtypes
    before 0.7, round a double to bfloat16 twice, through float32: 1 + 2^-8 + 2^-52 goes to 1)."""
    x = every_tie(dt, src)
    with np.errstate(over="ignore"):  # (NumPy's float16 cast warns of an overflow, as NumPy's astype)
        got = sixteen_bits(_convert(x, dt, route))
    want = rounded_bits(x, dt)
    if route == "autocast":  # (a product's zero is +0: the sum it accumulates into starts at +0)
        want = np.where(want & 0x7FFF == 0, 0, want).astype(np.uint16)
    bad = got != want
    assert not bad.any(), f"{bad.sum()} of {x.size} values round differently, e.g. {x[bad][:4]!r}: " \
                          f"{got[bad][:4]} != {want[bad][:4]}"


@pytest.mark.parametrize("src", ["float64", "float32"])
@pytest.mark.parametrize("dt", HALF)
@pytest.mark.parametrize("route", ["tensor(dtype=)", "astype", "from_numpy().to"])
def test_rounding_of_random_and_special_values(src, dt, route):
    """Random values over many binades and the special ones against the reference; float32 sources (and
    float16 from float64) against NumPy and ml_dtypes too, where every version rounds once."""
    with np.errstate(over="ignore", invalid="ignore"):
        x = _conversion_sources().astype(NP[src])
        got = _convert(x, dt, route)
    assert got.dtype == np.dtype(NP[dt])
    g = sixteen_bits(got)
    nan = np.isnan(x)
    bad = (g != rounded_bits(x, dt)) & ~nan
    assert not bad.any(), f"{bad.sum()} values round differently, e.g. {x[bad][:4]!r}"
    if src == "float32" or dt == "float16":
        with np.errstate(over="ignore", invalid="ignore"):
            assert_array_equal(g[~nan], bits(x.astype(NP[dt]))[~nan])
    # NaN stays NaN with its sign (the payload of a NaN is not part of the contract)
    wide = got.astype(tg.float32).numpy()
    assert np.isnan(wide[nan]).all()
    assert_array_equal(np.signbit(wide[nan]), np.signbit(x[nan]))


def test_a_16bit_kernel_result_rounds_once():
    """Kernels that store 16-bit results of double work round once: full() and a Python scalar's
    tensor; a 16-bit mean sums in double and divides before it rounds (PyTorch's float32 accumulation
    gives the same 3.0 here, where rounding the sum first gave 3.00195 and 3.015625)."""
    v = 1.0039062500000002  # rounds to 1 + 2^-7 once, to 1 through float32
    assert tg.full((2,), v, dtype=tg.bfloat16).tolist() == [1.0078125] * 2
    assert tg.tensor(v, dtype=tg.bfloat16).item() == 1.0078125
    assert tg.tensor([v], dtype=tg.bfloat16).tolist() == [1.0078125]
    for dt, n in (("float16", 1000), ("bfloat16", 3000)):
        t = tg.full((n,), 3.0, dtype=TG[dt], requires_grad=True)
        m = t.mean()
        assert m.item() == 3.0 and m.dtype == t.dtype
        want = torch.full((n,), 3.0, dtype=TORCH[dt]).mean().item()
        assert want == 3.0
        m.backward()
        assert_array_equal(f64(t.grad), f64(torch.full((n,), 1.0 / n, dtype=TORCH[dt])))
        for name in ("var", "std"):  # float32 work, one rounding: as torch's
            r = rng_values = np.random.default_rng(3).standard_normal(n).astype(np.float32)
            ours = getattr(tg.tensor(rng_values, dtype=TG[dt]), name)(0)
            theirs = getattr(torch.tensor(r).to(TORCH[dt]), name)(0)
            assert ours.dtype == t.dtype and f64(ours) == f64(theirs), (dt, name)


@pytest.mark.parametrize("dt", HALF)
def test_every_16bit_pattern_widens_exactly(dt):
    """All 65536 patterns to float32 and float64 as NumPy / ml_dtypes, and back to themselves."""
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(NP[dt])
    t = tg.from_numpy(h.copy())
    nan = np.isnan(h.astype(np.float32))
    assert nan.sum() == {"float16": 2046, "bfloat16": 254}[dt]
    for wide in ("float32", "float64"):
        w = t.astype(TG[wide]).numpy()
        with np.errstate(invalid="ignore"):
            want = h.astype(NP[wide])
        assert_array_equal(bits(w)[~nan], bits(want)[~nan])
        assert np.isnan(w[nan]).all()
        back = t.astype(TG[wide]).astype(TG[dt]).numpy()
        assert_array_equal(bits(back)[~nan], bits(h)[~nan])


UNSUPPORTED = [(np.int32, "int32"), (np.uint8, "uint8"), (np.complex64, "complex64"), ("float8", "float8"),
               (ml_dtypes.float8_e4m3fn, "float8_e4m3fn"), (np.int16, "int16")]
if hasattr(np, "float128"):
    UNSUPPORTED.append((np.float128, "float128"))


@pytest.mark.parametrize("dtype,name", UNSUPPORTED, ids=[n for _, n in UNSUPPORTED])
def test_an_unsupported_dtype_is_a_type_error_naming_it(dtype, name):
    for make in (lambda: tg.tensor([1.0, 2.0], dtype=dtype),
                 lambda: tg.zeros(3, dtype=dtype),
                 lambda: tg.tensor([1.0, 2.0], dtype=np.float16).astype(dtype),
                 lambda: tg.tensor([1.0, 2.0], dtype=tg.bfloat16).to(dtype=dtype)):
        with pytest.raises(TypeError, match=re.escape(name)):
            make()


def test_an_unsupported_array_is_a_type_error():
    with pytest.raises(TypeError, match="complex64"):
        tg.from_numpy(np.ones(2, np.complex64))
    with pytest.raises(TypeError, match="float8_e4m3fn"):
        tg.tensor(np.ones(2, ml_dtypes.float8_e4m3fn))


PROMOTION = [  # (a, b, result): NumPy's array promotion, with float16 + bfloat16 -> float32 (torch, ml_dtypes)
    ("float16", "float32", "float32"),
    ("bfloat16", "float32", "float32"),
    ("bfloat16", "float16", "float32"),
    ("float16", "float16", "float16"),
    ("bfloat16", "bfloat16", "bfloat16"),
    ("bfloat16", "float64", "float64"),
    ("float16", "float64", "float64"),
    ("int64", "float16", "float64"),  # NumPy's rule (int64 needs 64-bit floats); torch gives float16 here
    ("int64", "bfloat16", "float64"),
    ("bool", "bfloat16", "bfloat16"),
    ("bool", "float16", "float16"),
]


@pytest.mark.parametrize("a,b,want", PROMOTION, ids=[f"{a}+{b}" for a, b, _ in PROMOTION])
def test_promotion(a, b, want):
    def make(d: str) -> Any:
        return tg.tensor(np.array([1, 0, 1]).astype(np.bool_ if d == "bool" else np.int64),
                         dtype=None if d in ("bool", "int64") else TG[d])

    x, y = make(a), make(b)
    for r in (x + y, y + x, x * y, tg.maximum(x, y)):
        assert r.dtype == np.dtype(NP[want] if want in NP else want), (a, b, r.dtype)
    if "int64" not in (a, b):  # torch's table agrees except for integer tensors with 16-bit ones
        assert (torch.ones(3, dtype=TORCH.get(a, torch.bool)) + torch.ones(3, dtype=TORCH.get(b, torch.bool))).dtype \
            == TORCH[want]


@pytest.mark.parametrize("dt", HALF)
def test_scalars_are_weak(dt):
    t = tg.tensor([1.0, 2.0], dtype=TG[dt])
    for r in (t * 2.0, 2.0 * t, t + 1, t / 3.0, t**2, 2**t):
        assert r.dtype == np.dtype(NP[dt]), r.dtype
    # a 0-d float32 tensor takes the dtype of the 16-bit one, as torch's
    z = tg.tensor(3.0, dtype=np.float32)
    assert (t + z).dtype == np.dtype(NP[dt]) and (z + t).dtype == np.dtype(NP[dt])
    assert (torch.ones(2, dtype=TORCH[dt]) + torch.tensor(3.0)).dtype == TORCH[dt]
    # a NumPy float32 scalar keeps its dtype (NEP 50)
    assert (t * np.float32(2)).dtype == np.float32
    assert (t * 2.0).tolist() == [2.0, 4.0]


def test_repr():
    assert repr(tg.tensor([1.5, -2.0], dtype=np.float16)) == "tensor([ 1.5, -2. ], dtype=float16)"
    b = tg.tensor([1.0, 3.3], dtype=tg.bfloat16, requires_grad=True)
    assert repr(b) == "tensor([1.      , 3.296875], dtype=bfloat16, requires_grad=True)"
    assert repr(b * b) == "tensor([ 1.   , 10.875], dtype=bfloat16, grad_fn=<MulBackward0>)"
    assert repr(tg.tensor(0.1, dtype=np.float16)) == "tensor(0.1, dtype=float16)"


@pytest.mark.parametrize("dt", HALF)
def test_pickle_round_trip(dt):
    t = tg.tensor([1.1, -2.2, 65504.0 if dt == "float16" else 3e38, float("inf")], dtype=TG[dt], requires_grad=True)
    for r in (pickle.loads(pickle.dumps(t)), copy.deepcopy(t)):
        assert r.dtype == t.dtype and r.requires_grad and r.is_leaf
        assert_array_equal(bits(r.numpy()), bits(t.numpy()))
    r = pickle.loads(pickle.dumps(t * 2))  # a recorded result: values only
    assert r.dtype == t.dtype and not r.requires_grad
    assert_array_equal(bits(r.numpy()), bits((t * 2).detach().numpy()))
    p = pickle.loads(pickle.dumps(nn.Linear(3, 2, dtype=TG[dt])))
    assert p.weight.dtype == np.dtype(NP[dt])


FLOATS = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("dst", FLOATS)
@pytest.mark.parametrize("src", FLOATS)
def test_astype_between_float_dtypes(src, dst):
    rng = np.random.default_rng(5)
    with np.errstate(over="ignore"):
        x = np.concatenate([rng.standard_normal(500) * np.exp(rng.uniform(-30, 30, 500)),
                            [0.0, -0.0, np.inf, -np.inf, 1e-6, 7e4]]).astype(NP[src])
        want = x.astype(NP[dst])
    t = tg.from_numpy(x.copy()).requires_grad_(True)
    r = t.astype(TG[dst])
    assert r.dtype == np.dtype(NP[dst])
    if src == "float64" and dst == "bfloat16":  # (ml_dtypes before 0.7 rounds through float32)
        assert_array_equal(sixteen_bits(r), rounded_bits(x, dst))
    else:
        assert_array_equal(bits(r.numpy()), bits(want))
    # the cast is differentiable: the gradient comes back in the source dtype
    r.sum().backward()
    assert t.grad.dtype == np.dtype(NP[src]) and (t.grad.astype(np.float64).numpy() == 1.0).all()


def test_tolist_and_item():
    h = tg.tensor([[0.1, 1000.0], [65504.0, -2.0**-24]], dtype=np.float16)
    assert h.tolist() == [[0.0999755859375, 1000.0], [65504.0, -5.960464477539063e-08]]
    b = tg.tensor([[3.3], [-0.1]], dtype=tg.bfloat16)
    assert b.tolist() == [[3.296875], [-0.10009765625]]
    assert all(type(v) is float for row in b.tolist() + h.tolist() for v in row)
    assert tg.tensor(1.5, dtype=tg.bfloat16).tolist() == 1.5
    assert tg.tensor(0.1, dtype=np.float16).item() == 0.0999755859375


def test_tensor_conversion_methods():
    t = tg.tensor([1.0, 3.3], dtype=np.float32)
    assert t.half().dtype == np.float16 and t.half().float().dtype == np.float32
    assert t.to(tg.bfloat16).dtype.name == "bfloat16" and t.to(tg.bfloat16).double().dtype == np.float64
    assert t.to(tg.bfloat16).type_as(tg.ones(1, dtype=np.float16)).dtype == np.float16
    assert t.to(tg.bfloat16).element_size() == 2 and t.to(tg.bfloat16).nbytes == 4
    assert tg.zeros_like(t.to(tg.bfloat16)).dtype.name == "bfloat16"
    assert tg.is_floating_point(t.half()) and t.half().is_floating_point()


def test_bfloat16_is_floating_point():
    b = tg.tensor([1.0], dtype=tg.bfloat16)
    assert torch.is_floating_point(torch.ones(1, dtype=torch.bfloat16))
    assert tg.is_floating_point(b) and b.is_floating_point()


# =====================================================================================================
# 2. ops on 16-bit tensors against torch
# =====================================================================================================

_TORCH_OP = {"min": torch.minimum, "max": torch.maximum, "softplus": torch.nn.functional.softplus}
_TG_OP = {"min": tg.minimum, "max": tg.maximum}


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dt", HALF)
def test_elementwise_ops_against_torch(dt, name):
    rng = np.random.default_rng(zlib.crc32(f"{dt} {name}".encode()))
    row = OPS[name]
    xs = [rounded(rng, dt, (16, 24), lo, hi) for lo, hi in row.domain]
    ours, theirs = zip(*(leaves(x, dt) for x in xs))
    y = _TG_OP.get(name, getattr(tg, name, None))(*ours)
    z = _TORCH_OP.get(name, getattr(torch, name, None))(*theirs)
    assert y.dtype == np.dtype(NP[dt]) and z.dtype == TORCH[dt]
    assert_ulps(y, z, dt, 1, f"{name} forward")
    # and within an ulp of the exact value on the same inputs (computed in float64, then rounded)
    exact = _TORCH_OP.get(name, getattr(torch, name, None))(*(torch.tensor(x, dtype=torch.float64) for x in xs))
    assert_ulps(y, exact.to(TORCH[dt]), dt, 1, f"{name} forward vs float64", subnormal_ulps=1)
    g = rounded(rng, dt, (16, 24), -1, 1)
    y.backward(tg.tensor(g, dtype=TG[dt]))
    z.backward(torch.tensor(g).to(TORCH[dt]))
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.grad.dtype == np.dtype(NP[dt]), f"{name}: operand {k}'s gradient is {a.grad.dtype}"
        assert_ulps(a.grad, b.grad, dt, 4, f"{name} gradient of operand {k}")


REDUCTIONS: Dict[str, Tuple[Callable[[Any, Any], Any], Tuple[float, float]]] = {
    "sum": (lambda m, x: x.sum(), (-2, 2)),
    "sum(dim)": (lambda m, x: x.sum(dim=1), (-2, 2)),
    "mean": (lambda m, x: x.mean(), (-2, 2)),
    "mean(dim)": (lambda m, x: x.mean(dim=0), (-2, 2)),
    "prod(dim)": (lambda m, x: x[:, :8].prod(dim=1), (0.5, 1.5)),
    "var(dim)": (lambda m, x: x.var(dim=1, correction=1), (-2, 2)),
    "std": (lambda m, x: x.std(correction=1), (-2, 2)),
    "logsumexp(dim)": (lambda m, x: x.logsumexp(dim=1), (-2, 2)),
    "amax(dim)": (lambda m, x: x.amax(dim=1), (-2, 2)),
    "softmax": (lambda m, x: m.softmax(x, 1), (-2, 2)),
    "log_softmax": (lambda m, x: m.log_softmax(x, 1), (-2, 2)),
    "x @ x.T": (lambda m, x: x @ x.T, (-2, 2)),
    "matmul(x, x.T[:, :5])": (lambda m, x: m.matmul(x, x.T[:, :5]), (-2, 2)),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@pytest.mark.parametrize("dt", HALF)
def test_reductions_softmax_matmul_against_torch(dt, name):
    f, (lo, hi) = REDUCTIONS[name]
    rng = np.random.default_rng(zlib.crc32(f"{dt} {name}".encode()))
    x = rounded(rng, dt, (16, 32), lo, hi)
    a, b = leaves(x, dt)
    y, z = f(tg, a), f(torch, b)
    assert y.dtype == np.dtype(NP[dt]) and z.dtype == TORCH[dt], (y.dtype, z.dtype)
    assert_normwise(y, z, dt, 4, f"{name} forward")
    g = rounded(rng, dt, tuple(z.shape), -1, 1)
    y.backward(tg.tensor(g, dtype=TG[dt]))
    z.backward(torch.tensor(g).to(TORCH[dt]))
    assert a.grad.dtype == np.dtype(NP[dt])
    assert_normwise(a.grad, b.grad, dt, 4, f"{name} gradient")


@pytest.mark.parametrize("dt", HALF)
def test_matmul_of_two_parameters_against_torch(dt):
    rng = np.random.default_rng(7)
    x, w = rounded(rng, dt, (16, 24), -2, 2), rounded(rng, dt, (24, 8), -2, 2)
    (a, b), (v, u) = leaves(x, dt), leaves(w, dt)
    y, z = a @ v, b @ u
    assert y.dtype == np.dtype(NP[dt])
    assert_normwise(y, z, dt, 4, "x @ w")
    g = rounded(rng, dt, (16, 8), -1, 1)
    y.backward(tg.tensor(g, dtype=TG[dt]))
    z.backward(torch.tensor(g).to(TORCH[dt]))
    for ours, theirs, what in ((a, b, "x"), (v, u, "w")):
        assert ours.grad.dtype == np.dtype(NP[dt])
        assert_normwise(ours.grad, theirs.grad, dt, 4, f"gradient of {what}")


@pytest.mark.parametrize("dt", HALF)
def test_16bit_sums_and_products_accumulate_in_float32(dt):
    """2048 + 1 is 2048 in float16 (256 + 1 is 256 in bfloat16): only a float32 accumulator reaches 4096."""
    ones = tg.ones(4096, dtype=TG[dt], requires_grad=True)
    s = ones.sum()
    assert s.dtype == np.dtype(NP[dt]) and s.item() == 4096.0
    assert ones.mean().item() == 1.0
    s.backward()
    assert ones.grad.tolist() == [1.0] * 4096
    a = tg.ones((2, 4096), dtype=TG[dt], requires_grad=True)
    b = tg.ones((4096, 3), dtype=TG[dt], requires_grad=True)
    p = a @ b
    assert p.dtype == np.dtype(NP[dt])
    assert p.tolist() == [[4096.0] * 3] * 2
    p.sum().backward()
    assert (f64(a.grad) == 3.0).all() and (f64(b.grad) == 2.0).all()
    # torch accumulates these in float32 as well
    assert torch.ones(4096, dtype=TORCH[dt]).sum().item() == 4096.0


@pytest.mark.parametrize("dt", HALF)
def test_mixed_dtype_gradients_come_back_in_each_operands_dtype(dt):
    a = tg.tensor([1.0, 2.0, 3.0], dtype=TG[dt], requires_grad=True)
    b = tg.tensor([0.5, 0.25, 2.0], dtype=np.float32, requires_grad=True)
    y = a * b
    assert y.dtype == np.float32
    y.sum().backward()
    assert a.grad.dtype == np.dtype(NP[dt]) and a.grad.tolist() == [0.5, 0.25, 2.0]
    assert b.grad.dtype == np.float32 and b.grad.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("dt", HALF)
def test_cumsum_on_16bit_against_torch(dt):
    rng = np.random.default_rng(3)
    a, b = leaves(rounded(rng, dt, (4, 16), -2, 2), dt)
    y, z = a.cumsum(1), b.cumsum(1)
    assert y.dtype == np.dtype(NP[dt]), y.dtype
    assert_normwise(y, z, dt, 4, "cumsum")


@pytest.mark.parametrize("dt", HALF)
def test_norm_on_16bit_against_torch(dt):
    rng = np.random.default_rng(4)
    a, b = leaves(rounded(rng, dt, (4, 16), -2, 2), dt)
    y, z = a.norm(), b.norm()
    assert y.dtype == np.dtype(NP[dt])
    assert_normwise(y, z, dt, 4, "norm")


@pytest.mark.parametrize("dt", HALF)
def test_sgd_on_16bit_parameters_against_torch(dt):
    """16-bit parameters and momentum buffers, updated in float32 (cpp/src/optim): exactly a NumPy
    emulation of that; torch's rounds every intermediate to 16 bits, and p - lr * buf cancels, so
    against torch the tolerance is 4 EPS of the initial values' size."""
    rng = np.random.default_rng(8)
    x = rounded(rng, dt, (5,), -2, 2)
    a, b = leaves(x, dt)
    oa, ob = tg.optim.SGD([a], lr=0.1, momentum=0.9), torch.optim.SGD([b], lr=0.1, momentum=0.9)
    p, buf = x.astype(NP[dt]), None
    for _ in range(3):
        oa.zero_grad()
        ob.zero_grad()
        (a * a).sum().backward()
        (b * b).sum().backward()
        oa.step()
        ob.step()
        g = (2 * p.astype(np.float32)).astype(NP[dt])
        buf = g if buf is None else (np.float32(0.9) * buf.astype(np.float32) + g.astype(np.float32)).astype(NP[dt])
        p = (p.astype(np.float32) - np.float32(0.1) * buf.astype(np.float32)).astype(NP[dt])
    assert a.dtype == np.dtype(NP[dt])
    assert_array_equal(bits(a.detach().numpy()), bits(p))
    err = np.abs(f64(a) - f64(b)).max()
    assert err <= 4 * EPS[dt] * np.abs(x).max(), f"parameters after 3 SGD steps: {f64(a)} vs torch's {f64(b)}"


@pytest.mark.parametrize("dt", HALF)
def test_module_to_16bit(dt):
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).float()
    w = m[0].weight.detach().numpy().copy()
    m.to(TG[dt])
    assert all(p.dtype == np.dtype(NP[dt]) for p in m.parameters())
    assert_array_equal(bits(m[0].weight.detach().numpy()), bits(w.astype(NP[dt])))
    assert m(tg.ones((1, 3), dtype=TG[dt])).dtype == np.dtype(NP[dt])


@pytest.mark.parametrize("dt", HALF)
def test_load_state_dict_of_16bit_tensors(dt):
    src = nn.Linear(3, 2, dtype=TG[dt])
    dst = nn.Linear(3, 2, dtype=TG[dt])
    dst.load_state_dict(src.state_dict())
    assert_array_equal(bits(dst.weight.detach().numpy()), bits(src.weight.detach().numpy()))
    f32 = nn.Linear(3, 2).float()
    f32.load_state_dict(src.state_dict())  # converted to the target's dtype
    assert f32.weight.dtype == np.float32
    assert_array_equal(f32.weight.detach().numpy(), src.weight.astype(np.float32).detach().numpy())


def test_cross_entropy_with_bfloat16_probabilities_against_torch():
    rng = np.random.default_rng(9)
    a, b = leaves(rounded(rng, "bfloat16", (4, 5), -2, 2), "bfloat16")
    p = rounded(rng, "bfloat16", (4, 5), 0, 1)
    y = F.cross_entropy(a, tg.tensor(p, dtype=tg.bfloat16))
    z = torch.nn.functional.cross_entropy(b, torch.tensor(p).bfloat16())
    assert y.dtype.name == "bfloat16"
    assert_normwise(y, z, "bfloat16", 4, "cross_entropy")


# =====================================================================================================
# 3. autocast
# =====================================================================================================


def test_autocast_state_and_nesting():
    assert not tg.is_autocast_enabled() and not tg.is_autocast_enabled("cpu")
    assert tg.get_autocast_dtype() == tg.bfloat16  # torch's CPU default
    assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with tg.autocast(dtype=tg.bfloat16) as ac:
        assert isinstance(ac, tg.autocast)
        assert tg.is_autocast_enabled() and tg.get_autocast_dtype() == tg.bfloat16
        with tg.autocast("cpu", dtype=np.float16):
            assert tg.is_autocast_enabled() and tg.get_autocast_dtype() == np.float16
            with tg.autocast(enabled=False):
                assert not tg.is_autocast_enabled()
                x = tg.ones((2, 2), dtype=np.float32)
                assert (x @ x).dtype == np.float32
            assert tg.is_autocast_enabled() and tg.get_autocast_dtype() == np.float16
        assert tg.get_autocast_dtype() == tg.bfloat16
    assert not tg.is_autocast_enabled() and tg.get_autocast_dtype() == tg.bfloat16
    with tg.autocast():  # bfloat16 by default
        assert tg.get_autocast_dtype() == tg.bfloat16


def test_autocast_restores_on_exception():
    with pytest.raises(KeyError):
        with tg.autocast(dtype=np.float16):
            with tg.autocast(enabled=False):
                raise KeyError("inside")
    assert not tg.is_autocast_enabled() and tg.get_autocast_dtype() == tg.bfloat16
    x = tg.ones((2, 2), dtype=np.float32)
    assert (x @ x).dtype == np.float32


def test_autocast_as_decorator():
    @tg.autocast(dtype=np.float16)
    def product(a: Any, b: Any) -> Tuple[Any, bool]:
        """doc"""
        return a @ b, tg.is_autocast_enabled()

    x = tg.ones((2, 3), dtype=np.float32)
    y, on = product(x, x.T)
    assert on and y.dtype == np.float16 and y.tolist() == [[3.0, 3.0]] * 2
    assert product.__name__ == "product" and product.__doc__ == "doc"
    assert not tg.is_autocast_enabled() and (x @ x.T).dtype == np.float32
    with pytest.raises(ZeroDivisionError):
        tg.autocast(dtype=np.float16)(lambda: 1 / 0)()
    assert not tg.is_autocast_enabled()


def test_autocast_errors():
    for dtype in (np.float32, np.float64, np.int64):
        with pytest.raises(ValueError, match=np.dtype(dtype).name):
            tg.autocast(dtype=dtype)
    with pytest.raises(TypeError, match="float8"):
        tg.autocast(dtype="float8")
    for make in (lambda: tg.autocast("tpu"), lambda: tg.autocast(device_type="gpu", dtype=tg.bfloat16),
                 lambda: tg.is_autocast_enabled("CUDA"), lambda: tg.get_autocast_dtype(""),
                 lambda: tg.amp.GradScaler("cuda0")):
        with pytest.raises(ValueError, match="device_type"):
            make()
    with pytest.raises(TypeError, match="enabled"):
        tg.autocast(enabled=1)
    # nothing changed
    assert not tg.is_autocast_enabled() and tg.get_autocast_dtype() == tg.bfloat16


def test_autocast_is_per_thread():
    seen: List[Any] = []

    def other() -> None:
        x = tg.ones((2, 2), dtype=np.float32)
        seen.append((tg.is_autocast_enabled(), (x @ x).dtype))

    with tg.autocast(dtype=tg.bfloat16):
        th = threading.Thread(target=other)
        th.start()
        th.join()
        assert tg.is_autocast_enabled()
    assert seen == [(False, np.float32)]


def test_nested_autocast_without_dtype_keeps_the_enclosing_dtype():
    a, ta = tg.ones((2, 2), dtype=np.float32), torch.ones(2, 2)
    with torch.autocast("cpu", dtype=torch.float16), torch.autocast("cpu"):
        assert (ta @ ta).dtype == torch.float16
    with tg.autocast(dtype=np.float16), tg.autocast():
        assert tg.get_autocast_dtype() == np.float16 and (a @ a).dtype == np.float16


@pytest.mark.parametrize("dt", HALF)
def test_what_autocast_returns(dt):
    rng = np.random.default_rng(11)
    x = tg.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    w = tg.tensor(rng.standard_normal((3, 5)).astype(np.float32), requires_grad=True)
    x64 = tg.tensor(rng.standard_normal((4, 3)))
    lin32 = nn.Linear(3, 5).float()
    lin64 = nn.Linear(3, 5)  # float64 parameters by default
    half = np.dtype(NP[dt])
    with tg.autocast(dtype=TG[dt]):
        y = x @ w
        for r in (y, tg.matmul(x, w), x.matmul(w), x.mm(w), lin32(x), F.linear(x, w.T), y.relu(), y.tanh(), y * 2.0):
            assert r.dtype == half, r.dtype
        # float64 too (tapegrad's default dtype; torch's autocast leaves float64 alone)
        for r in (x64 @ x64.T, lin64(x64), F.linear(x64, x64)):
            assert r.dtype == half, r.dtype
        assert (x * x).dtype == np.float32 and x.exp().dtype == np.float32  # elementwise ops are not cast
        for r in (y.sum(), y.mean(), tg.softmax(y, 1), tg.log_softmax(y, 1), y.prod(), y.var(), y.std(),
                  y.logsumexp(1), x.sum(), F.cross_entropy(y, tg.tensor([0, 1, 2, 3])),
                  F.mse_loss(y, tg.zeros((4, 5), dtype=np.float32)), F.l1_loss(y, tg.zeros((4, 5), dtype=np.float32))):
            assert r.dtype == np.float32, r.dtype
        assert x64.sum().dtype == np.float64
        loss = F.cross_entropy(lin32(x), tg.tensor([0, 1, 2, 3]))
    # the product of the 16-bit copies, accumulated in float32 and rounded once
    exact = f64(x.astype(TG[dt])) @ f64(w.astype(TG[dt]))
    assert np.abs(f64(y) - exact).max() <= EPS[dt] * np.abs(exact).max()
    assert (x @ w).dtype == np.float32  # off again
    loss.backward()
    assert lin32.weight.grad.dtype == np.float32 and lin32.bias.grad.dtype == np.float32
    assert x.grad.dtype == np.float32 and np.isfinite(x.grad.numpy()).all()


def test_cumsum_under_autocast_is_float32():
    x = tg.ones(1000, dtype=np.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.ones(1000).cumsum(0).dtype == torch.float32
    with tg.autocast(dtype=tg.bfloat16):
        r = x.cumsum(0)
        rb = x.astype(tg.bfloat16).cumsum(0)
    assert r.dtype == np.float32 and r.tolist() == list(map(float, range(1, 1001)))
    assert rb.dtype == np.float32


def test_autocast_casts_16bit_operands_as_torch():
    a, b = tg.ones((2, 2), dtype=np.float16), tg.ones((2, 2), dtype=np.float32)
    ta, tb = torch.ones(2, 2, dtype=torch.float16), torch.ones(2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = [(ta @ tb).dtype, (ta @ ta).dtype]
    with tg.autocast(dtype=tg.bfloat16):
        got = [(a @ b).dtype, (a @ a).dtype]
    assert want == [torch.bfloat16, torch.bfloat16]
    assert [d.name for d in got] == ["bfloat16", "bfloat16"]


def _twin_mlps(seed: int, sizes: Tuple[int, ...]) -> Tuple[Any, Any]:
    """A float32 torch MLP (Linear + ReLU) and tapegrad's with the same weights."""
    torch.manual_seed(seed)
    layers_t: List[Any] = []
    layers_g: List[Any] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        if i:
            layers_t.append(torch.nn.ReLU())
            layers_g.append(nn.ReLU())
        layers_t.append(torch.nn.Linear(n_in, n_out))
        layers_g.append(nn.Linear(n_in, n_out))
    tm, gm = torch.nn.Sequential(*layers_t), nn.Sequential(*layers_g).float()
    gm.load_state_dict({k: tg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    assert all(p.dtype == np.float32 for p in gm.parameters())
    return gm, tm


LOSSES = {
    "cross_entropy": (lambda m, out, y, t: (F if m is tg else torch.nn.functional).cross_entropy(out, m.tensor(y))),
    "mse_loss": (lambda m, out, y, t: (F if m is tg else torch.nn.functional).mse_loss(out, m.tensor(t))),
}


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("dt", HALF)
def test_autocast_mlp_against_torch(dt, loss_name):
    """Tolerances: the logits to 2 EPS of their largest (both round float32 sums to 16 bits; the order of
    the float32 accumulation can move a value by one ulp); the float32 losses to 1 EPS; the gradients, as
    a whole (relative Frobenius norm), to 16 EPS: a pre-activation one ulp apart can sit on the other side
    of 0 and flip a ReLU, which moves a whole row of the backward (over 12 seeds the worst was 14 EPS,
    typically 0.3-6; a wrong rule is off by O(1))."""
    gm, tm = _twin_mlps(0, (20, 32, 32, 10))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 20)).astype(np.float32)
    y, t = rng.integers(0, 10, 64), rng.standard_normal((64, 10)).astype(np.float32)
    loss_fn = LOSSES[loss_name]
    with tg.autocast(dtype=TG[dt]):
        hidden = gm[:2](tg.tensor(x))
        out = gm[2:](hidden)
        loss = loss_fn(tg, out, y, t)
    with torch.autocast("cpu", dtype=TORCH[dt]):
        t_hidden = tm[:2](torch.tensor(x))
        t_out = tm[2:](t_hidden)
        t_loss = loss_fn(torch, t_out, y, t)
    loss.backward()
    t_loss.backward()
    for ours, theirs in ((hidden, t_hidden), (out, t_out), (loss, t_loss)):
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", ""), (ours.dtype, theirs.dtype)
    assert out.dtype == np.dtype(NP[dt]) and loss.dtype == np.float32
    assert_normwise(out, t_out, dt, 2, "logits")
    assert abs(loss.item() - t_loss.item()) <= EPS[dt] * abs(t_loss.item()), (loss.item(), t_loss.item())
    for (name, p), q in zip(gm.named_parameters(), tm.parameters()):
        assert p.grad.dtype == np.float32 and q.grad.dtype == torch.float32
        rel = np.linalg.norm(p.grad.numpy() - q.grad.numpy()) / np.linalg.norm(q.grad.numpy())
        assert rel <= 16 * EPS[dt], f"{name}.grad: relative error {rel:.3g} = {rel / EPS[dt]:.1f} EPS ({dt})"


@pytest.mark.parametrize("dt", HALF)
def test_autocast_losses_against_torch(dt):
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    t, p, c = (rng.standard_normal((6, 3)).astype(np.float32), rng.uniform(0.1, 0.9, (6, 3)).astype(np.float32),
               rng.integers(0, 3, 6))

    def run(m: Any) -> Dict[str, Any]:
        fn = F if m is tg else torch.nn.functional
        y = m.tensor(x) @ m.tensor(w)
        return {"logits": y, "mse_loss": fn.mse_loss(y, m.tensor(t)), "l1_loss": fn.l1_loss(y, m.tensor(t)),
                "huber_loss": fn.huber_loss(y, m.tensor(t)), "smooth_l1_loss": fn.smooth_l1_loss(y, m.tensor(t)),
                "cross_entropy": fn.cross_entropy(y, m.tensor(c)),
                "binary_cross_entropy_with_logits": fn.binary_cross_entropy_with_logits(y, m.tensor(p)),
                "binary_cross_entropy": fn.binary_cross_entropy(m.sigmoid(y), m.tensor(p))}

    with tg.autocast(dtype=TG[dt]):
        ours = run(tg)
    with torch.autocast("cpu", dtype=TORCH[dt]):
        theirs = run(torch)
    for k in ours:
        assert ours[k].dtype.name == str(theirs[k].dtype).replace("torch.", ""), (k, ours[k].dtype, theirs[k].dtype)
        assert_normwise(ours[k], theirs[k], dt, 1, k)


def test_backward_inside_or_outside_autocast_is_the_same():
    def grads(inside: bool) -> List[np.ndarray]:
        gm, _ = _twin_mlps(1, (6, 8, 3))
        x = tg.tensor(np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32))
        with tg.autocast(dtype=tg.bfloat16):
            loss = F.cross_entropy(gm(x), tg.tensor([0, 1, 2, 0, 1]))
            if inside:
                loss.backward()
        if not inside:
            loss.backward()
        return [p.grad.numpy().copy() for p in gm.parameters()]

    for a, b in zip(grads(True), grads(False)):
        assert a.dtype == np.float32
        assert_array_equal(bits(a), bits(b))


# =====================================================================================================
# 4. GradScaler
# =====================================================================================================


class _Counting:
    """Wraps an optimizer's step: counts the calls and returns 'stepped', so that what GradScaler.step
    returns tells whether it called it."""

    def __init__(self, opt: Any) -> None:
        self.calls = 0
        inner = opt.step

        def step(*args: Any, **kwargs: Any) -> str:
            self.calls += 1
            inner(*args, **kwargs)
            return "stepped"

        opt.step = step


def _twin_training(seed: int = 0) -> Tuple[Any, Any, Any, Any, np.ndarray, np.ndarray]:
    gm, tm = _twin_mlps(seed, (3, 4, 2))
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 2)).astype(np.float32)
    return gm, tm, tg.optim.SGD(gm.parameters(), lr=0.1), torch.optim.SGD(tm.parameters(), lr=0.1), x, y


def _backward(gm: Any, tm: Any, gs: Any, ts: Any, x: np.ndarray, y: np.ndarray, inject: Any = None,
              which: int = 0) -> None:
    """zero_grad, scaled loss, backward in both; then `inject` (inf, -inf, nan) into parameter `which`'s
    gradient in both."""
    for p in gm.parameters():
        p.grad = None
    tm.zero_grad()
    gs.scale(F.mse_loss(gm(tg.tensor(x)), tg.tensor(y))).backward()
    ts.scale(torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y))).backward()
    if inject is not None:
        p, q = list(gm.parameters())[which], list(tm.parameters())[which]
        g = p.grad.numpy().copy()
        g.flat[0] = inject
        p.grad = tg.tensor(g)
        q.grad.view(-1)[0] = inject


def _same_params(gm: Any, tm: Any, what: str) -> None:
    for (name, p), q in zip(gm.named_parameters(), tm.parameters()):
        assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-6, atol=1e-7, err_msg=f"{what}: {name}")


PLAN = ["ok", "ok", "inf", "ok", "ok", "ok", "ok", "nan", "ok", "ok", "ok", "ok", "ok", "ok", "-inf", "ok"]


@pytest.mark.parametrize("explicit_unscale", [False, True], ids=["step", "unscale_-then-step"])
def test_grad_scaler_matches_torch_step_by_step(explicit_unscale):
    gm, tm, go, to, x, y = _twin_training()
    kw = dict(init_scale=2.0**10, growth_factor=4.0, backoff_factor=0.25, growth_interval=3)
    gs, ts = tg.amp.GradScaler("cpu", **kw), torch.amp.GradScaler("cpu", **kw)
    assert gs.get_scale() == ts.get_scale() == 1024.0 and gs.state_dict() == ts.state_dict()
    gc, tc = _Counting(go), _Counting(to)
    skipped = 0
    for i, kind in enumerate(PLAN):
        value = {"ok": None, "inf": math.inf, "-inf": -math.inf, "nan": math.nan}[kind]
        _backward(gm, tm, gs, ts, x, y, value, which=i % 4)
        before = [p.detach().numpy().copy() for p in gm.parameters()]
        if explicit_unscale:
            gs.unscale_(go)
            ts.unscale_(to)
            if kind == "ok":
                for p, q in zip(gm.parameters(), tm.parameters()):
                    assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-7)
        grads = [p.grad.numpy().copy() for p in gm.parameters()]
        inv = 1.0 if explicit_unscale else np.float32(1.0 / gs.get_scale())  # what step() still has to divide by
        r_ours, r_theirs = gs.step(go), ts.step(to)
        after_step = [p.grad.numpy().copy() for p in gm.parameters()]
        gs.update()
        ts.update()
        what = f"step {i} ({kind})"
        assert r_ours == r_theirs == (None if kind != "ok" else "stepped"), what
        skipped += kind != "ok"
        assert gc.calls == tc.calls == i + 1 - skipped, what
        assert gs.get_scale() == ts.get_scale(), what
        assert gs.state_dict() == ts.state_dict(), f"{what}: {gs.state_dict()} != torch's {ts.state_dict()}"
        assert gs._get_growth_tracker() == ts._get_growth_tracker()
        _same_params(gm, tm, what)
        if kind != "ok":
            for b, p in zip(before, gm.parameters()):
                assert_array_equal(p.detach().numpy(), b, err_msg=f"{what}: a skipped step changed a parameter")
        else:  # the gradients were unscaled once: by step(), or by unscale_() and not again by step()
            for g, a, q in zip(grads, after_step, tm.parameters()):
                assert_array_equal(a, g * inv)
                assert_allclose(a, q.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert gs.get_scale() == 1024.0  # grown to 4096 at step 13, backed off at the -inf, then one good step


def test_unscale_divides_once():
    gm, tm, go, to, x, y = _twin_training(2)
    gs, ts = tg.amp.GradScaler(init_scale=512.0), torch.amp.GradScaler("cpu", init_scale=512.0)
    # the unscaled reference: the same loss without scaling
    ref, _ = _twin_mlps(2, (3, 4, 2))
    F.mse_loss(ref(tg.tensor(x)), tg.tensor(y)).backward()
    _backward(gm, tm, gs, ts, x, y)
    for p, r in zip(gm.parameters(), ref.parameters()):
        assert_allclose(p.grad.numpy(), 512.0 * r.grad.numpy(), rtol=1e-6)
    gs.unscale_(go)
    ts.unscale_(to)
    for p, r, q in zip(gm.parameters(), ref.parameters(), tm.parameters()):
        assert_allclose(p.grad.numpy(), r.grad.numpy(), rtol=1e-6, atol=1e-8)
        assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-8)
    unscaled = [p.grad.numpy().copy() for p in gm.parameters()]
    gs.step(go)
    ts.step(to)
    for u, p in zip(unscaled, gm.parameters()):
        assert_array_equal(p.grad.numpy(), u)
    _same_params(gm, tm, "after unscale_ and step")


def _message(fn: Callable[[], Any], kind: type = RuntimeError) -> str:
    with pytest.raises(kind) as info:
        fn()
    return str(info.value)


def test_grad_scaler_errors_are_torchs():
    gm, tm, go, to, x, y = _twin_training()
    gs, ts = tg.amp.GradScaler(), torch.amp.GradScaler("cpu")
    # before any scale()
    assert _message(lambda: gs.step(go), AssertionError) == _message(lambda: ts.step(to), AssertionError)
    assert _message(gs.update, AssertionError) == _message(ts.update, AssertionError)
    assert _message(lambda: gs.unscale_(go), AssertionError) == _message(lambda: ts.unscale_(to), AssertionError)
    _backward(gm, tm, gs, ts, x, y)
    # update() before any step or unscale_
    assert _message(gs.update, AssertionError) == _message(ts.update, AssertionError)
    gs.unscale_(go)
    ts.unscale_(to)
    assert _message(lambda: gs.unscale_(go)) == _message(lambda: ts.unscale_(to)) == \
        "unscale_() has already been called on this optimizer since the last update()."
    gs.step(go)
    ts.step(to)
    assert _message(lambda: gs.step(go)) == _message(lambda: ts.step(to))
    assert _message(lambda: gs.unscale_(go)) == _message(lambda: ts.unscale_(to))
    gs.update()
    ts.update()
    _backward(gm, tm, gs, ts, x, y)
    assert _message(lambda: gs.step(go, closure=lambda: 0)) == _message(lambda: ts.step(to, closure=lambda: 0))
    assert "Tensor" in _message(lambda: gs.scale(3.0), ValueError) and "Tensor" in _message(lambda: ts.scale(3.0),
                                                                                          ValueError)
    assert _message(lambda: gs.load_state_dict({})) == _message(lambda: ts.load_state_dict({}))


def test_float16_gradients_cannot_be_unscaled():
    p = nn.Parameter(np.ones(3, np.float16))
    q = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    gs, ts = tg.amp.GradScaler(), torch.amp.GradScaler("cpu")
    gs.scale((p * 2).sum()).backward()
    ts.scale((q * 2).sum()).backward()
    assert p.grad.dtype == np.float16
    ours = _message(lambda: gs.unscale_(tg.optim.SGD([p], lr=0.1)), ValueError)
    theirs = _message(lambda: ts.unscale_(torch.optim.SGD([q], lr=0.1)), ValueError)
    assert ours == theirs == "Attempting to unscale FP16 gradients."


def test_update_with_a_new_scale():
    gm, tm, go, to, x, y = _twin_training()
    gs, ts = tg.amp.GradScaler(growth_interval=5), torch.amp.GradScaler("cpu", growth_interval=5)
    for new in (None, None, 123.0, None, ("tensor", 50.0), None):
        _backward(gm, tm, gs, ts, x, y)
        gs.step(go)
        ts.step(to)
        if isinstance(new, tuple):
            gs.update(tg.tensor(new[1]))
            ts.update(torch.tensor(new[1]))
        else:
            gs.update(new)
            ts.update(new)
        assert gs.state_dict() == ts.state_dict(), (new, gs.state_dict(), ts.state_dict())
    assert gs.get_scale() == 50.0
    _same_params(gm, tm, "after the steps")


def test_disabled_scaler_passes_through():
    gm, tm, go, to, x, y = _twin_training()
    gs, ts = tg.amp.GradScaler(enabled=False), torch.amp.GradScaler("cpu", enabled=False)
    gc, tc = _Counting(go), _Counting(to)
    loss = F.mse_loss(gm(tg.tensor(x)), tg.tensor(y))
    t_loss = torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y))
    assert gs.scale(loss) is loss and ts.scale(t_loss) is t_loss
    pair = [loss, loss]
    assert gs.scale(pair) is pair
    loss.backward()
    t_loss.backward()
    grads = [p.grad.numpy().copy() for p in gm.parameters()]
    gs.unscale_(go)
    ts.unscale_(to)
    for g, p in zip(grads, gm.parameters()):
        assert_array_equal(p.grad.numpy(), g)
    assert gs.step(go) == ts.step(to) == "stepped" and gc.calls == tc.calls == 1
    gs.update()
    ts.update()
    assert gs.get_scale() == ts.get_scale() == 1.0
    assert gs.state_dict() == ts.state_dict() == {}
    assert not gs.is_enabled() and not ts.is_enabled()
    gs.load_state_dict({})  # a no-op when disabled, as torch's
    ts.load_state_dict({})
    _same_params(gm, tm, "after a plain step")


def test_state_dict_round_trip_and_exchange_with_torch():
    gm, tm, go, to, x, y = _twin_training()
    kw = dict(init_scale=64.0, growth_interval=2)
    gs, ts = tg.amp.GradScaler(**kw), torch.amp.GradScaler("cpu", **kw)
    for inject in (None, None, None, math.inf, None):
        _backward(gm, tm, gs, ts, x, y, inject)
        gs.step(go)
        ts.step(to)
        gs.update()
        ts.update()
    sd = gs.state_dict()
    assert sd == ts.state_dict()
    assert sorted(sd) == ["_growth_tracker", "backoff_factor", "growth_factor", "growth_interval", "scale"]
    fresh = tg.amp.GradScaler()
    fresh.load_state_dict(sd)
    assert fresh.state_dict() == sd and fresh.get_scale() == gs.get_scale()
    assert pickle.loads(pickle.dumps(gs)).state_dict() == sd
    # torch's state into tapegrad's and tapegrad's into torch's: both continue the same
    g2, t2 = tg.amp.GradScaler(), torch.amp.GradScaler("cpu")
    g2.load_state_dict(ts.state_dict())
    t2.load_state_dict(gs.state_dict())
    for inject in (None, None, math.nan, None, None, None):
        _backward(gm, tm, g2, t2, x, y, inject)
        g2.step(go)
        t2.step(to)
        g2.update()
        t2.update()
        assert g2.state_dict() == t2.state_dict()
    _same_params(gm, tm, "after continuing from the exchanged states")


def test_scale_of_lists_and_tuples():
    gs, ts = tg.amp.GradScaler(init_scale=8.0), torch.amp.GradScaler("cpu", init_scale=8.0)
    ours = gs.scale([tg.ones(2, dtype=np.float32), (tg.tensor([3.0], dtype=np.float32), tg.tensor(0.5))])
    theirs = ts.scale([torch.ones(2), (torch.tensor([3.0]), torch.tensor(0.5))])
    assert type(ours) is list and type(ours[1]) is tuple and type(theirs) is list and type(theirs[1]) is tuple
    assert ours[0].tolist() == theirs[0].tolist() == [8.0, 8.0]
    assert ours[1][0].tolist() == theirs[1][0].tolist() == [24.0]
    assert ours[1][1].item() == theirs[1][1].item() == 4.0


def test_growth_after_growth_interval_good_steps():
    gm, tm, go, to, x, y = _twin_training()
    kw = dict(init_scale=2.0, growth_factor=3.0, growth_interval=4)
    gs, ts = tg.amp.GradScaler(**kw), torch.amp.GradScaler("cpu", **kw)
    scales = []
    for _ in range(10):
        _backward(gm, tm, gs, ts, x, y)
        gs.step(go)
        ts.step(to)
        gs.update()
        ts.update()
        assert gs.get_scale() == ts.get_scale()
        scales.append(gs.get_scale())
    assert scales == [2.0] * 3 + [6.0] * 4 + [18.0] * 3


def test_growth_that_would_overflow_keeps_the_scale_silently():
    p, q = nn.Parameter(np.ones(1, np.float32)), torch.nn.Parameter(torch.ones(1))
    go, to = tg.optim.SGD([p], lr=0.0), torch.optim.SGD([q], lr=0.0)
    gs, ts = tg.amp.GradScaler(init_scale=2.0**127, growth_interval=1), \
        torch.amp.GradScaler("cpu", init_scale=2.0**127, growth_interval=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            gs.scale(p.sum()).backward()
            ts.scale(q.sum()).backward()
            gs.step(go)
            ts.step(to)
            ts.update()
            gs.update()
            assert gs.state_dict() == ts.state_dict() and gs.get_scale() == 2.0**127


# =====================================================================================================
# 5. the measured claim: saved activations under bfloat16 autocast
# =====================================================================================================


def test_bfloat16_autocast_keeps_at_most_60_percent_of_the_saved_bytes(record_property):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).float()
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((1024, 784)).astype(np.float32))
    y = tg.tensor(rng.integers(0, 10, 1024))
    saved = {}
    for mixed in (False, True):
        tape = tg.Tape()
        with tape, tg.autocast(dtype=tg.bfloat16, enabled=mixed):
            loss = F.cross_entropy(model(x), y)
            saved[mixed] = tape.stats()["saved_bytes"]
        assert loss.dtype == np.float32 and math.isfinite(loss.item())
    full, half = saved[False], saved[True]
    ratio = half / full
    record_property("saved_bytes_float32", full)
    record_property("saved_bytes_bfloat16_autocast", half)
    # a sanity floor: float32 keeps at least the four 1024 x 256 float32 activations (4 MiB)
    assert full >= 4 * 1024 * 256 * 4, f"float32 saved {full} bytes: less than its hidden activations"
    assert half > 0
    assert ratio <= 0.60, f"bfloat16 autocast saved {half} bytes, float32 {full} bytes: ratio {ratio:.3f} > 0.60"
    print(f"saved_bytes: float32 {full}, bfloat16 autocast {half}, ratio {ratio:.3f}")


# --- hostile arguments (from a fuzzing pass): clear errors, no silent change ----------------------------


@pytest.mark.parametrize("kwargs,exc,word", [
    ({"init_scale": 1e40}, ValueError, "init_scale"), ({"init_scale": 1e-50}, ValueError, "init_scale"),
    ({"init_scale": float("nan")}, ValueError, "init_scale"), ({"init_scale": "8"}, TypeError, "init_scale"),
    ({"growth_factor": "x"}, TypeError, "growth_factor"), ({"growth_factor": None}, TypeError, "growth_factor"),
    ({"growth_factor": 1.0}, ValueError, "growth_factor"), ({"backoff_factor": 1.5}, ValueError, "backoff_factor"),
    ({"backoff_factor": None}, TypeError, "backoff_factor"), ({"growth_interval": 0}, ValueError, "growth_interval"),
    ({"growth_interval": 2.5}, ValueError, "growth_interval"),
    ({"growth_interval": True}, ValueError, "growth_interval"),
    ({"device": "gpu"}, ValueError, "device_type"),
])
def test_grad_scaler_refuses_bad_settings_naming_them(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        tg.amp.GradScaler(**kwargs)


def test_grad_scaler_takes_numpy_numbers_and_validates_updates_and_state():
    gs = tg.amp.GradScaler(init_scale=np.float32(8.0), growth_interval=np.int64(3))
    assert gs.get_scale() == 8.0 and gs.get_growth_interval() == 3
    p = nn.Parameter(np.ones(2, np.float32))
    opt = tg.optim.SGD([p], lr=0.1)
    gs.scale((p * 2.0).sum()).backward()
    gs.step(opt)
    for bad, exc in [(float("nan"), ValueError), (0.0, ValueError), (-1.0, ValueError), (1e40, ValueError),
                     ("8", TypeError), (True, TypeError), (tg.tensor([8.0, 4.0]), ValueError)]:
        with pytest.raises(exc):
            gs.update(new_scale=bad)
    gs.update(new_scale=tg.tensor([4.0]))
    assert gs.get_scale() == 4.0
    before = gs.state_dict()
    for bad in [{"scale": 2.0}, {**before, "_growth_tracker": -7}, {**before, "growth_factor": 0.1},
                {**before, "scale": float("nan")}, {**before, "growth_interval": 2.7}]:
        with pytest.raises((KeyError, ValueError, TypeError)):
            gs.load_state_dict(bad)
        assert gs.state_dict() == before  # nothing half-loaded
    with pytest.raises(TypeError, match="dict"):
        gs.load_state_dict("abc")
    for setter, bad in [(gs.set_growth_factor, -1), (gs.set_backoff_factor, 2), (gs.set_growth_interval, 0)]:
        with pytest.raises(ValueError):
            setter(bad)
    with pytest.raises(RuntimeError, match="__enter__"):
        tg.autocast().__exit__(None, None, None)


def test_array_protocol_copies_only_when_allowed():
    a = tg.tensor([1.0, 2.0], dtype=np.float16)
    assert np.shares_memory(np.asarray(a), a.numpy())
    assert np.asarray(a, dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError):
        a.__array__(np.float32, copy=False)
    assert not np.shares_memory(a.__array__(copy=True), a.numpy())
    b = tg.tensor([1.0, 2.5], dtype=tg.bfloat16)
    assert np.asarray(b).dtype.name == "bfloat16" and np.asarray(b, dtype=np.float32).tolist() == [1.0, 2.5]


@pytest.mark.parametrize("dt", HALF)
def test_16bit_sort_topk_randn_to_and_module_conversions(dt):
    nan, inf = float("nan"), float("inf")
    t = tg.tensor([nan, 1.0, -inf, inf, 0.0, -1.0, nan], dtype=TG[dt])
    values, idx = tg.sort(t)
    assert str(values.tolist()) == str([-inf, -1.0, 0.0, 1.0, inf, nan, nan])  # NaN last, as NumPy and torch
    assert idx.tolist()[:5] == [2, 5, 4, 1, 3]
    assert tg.topk(tg.tensor([3.0, 1.0, 2.0], dtype=TG[dt]), 2).values.tolist() == [3.0, 2.0]
    assert tg.cumsum(tg.ones(3, dtype=TG[dt]), 0).dtype.name == dt
    assert tg.is_floating_point(t) and t.is_floating_point()
    r = tg.randn(1000, dtype=TG[dt])
    assert r.dtype.name == dt and abs(float(r.astype(np.float32).mean())) < 0.2
    assert tg.rand(5, dtype=TG[dt]).dtype.name == dt
    assert tg.tensor([1.0, 2.0]).to(dt).dtype.name == dt
    m = nn.Linear(3, 2)
    converted = m.half() if dt == "float16" else m.bfloat16()
    assert converted.weight.dtype.name == dt and converted.bias.dtype.name == dt
    opt = tg.optim.SGD(converted.parameters(), lr=0.1)
    converted(tg.ones(4, 3, dtype=TG[dt])).sum().backward()
    opt.step()
    assert converted.weight.grad.dtype.name == dt
    state = {k: v.astype(TG[dt]) for k, v in nn.Linear(3, 2).state_dict().items()}
    nn.Linear(3, 2).load_state_dict(state)
    with pytest.raises(TypeError, match="int32"):
        tg.linspace(0, 1, 5, dtype="int32") if dt == "float16" else tg.tensor([1], dtype=np.int32)
