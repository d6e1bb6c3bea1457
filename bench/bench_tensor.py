#!/usr/bin/env python3
"""Tensor autodiff, side by side in one process: tapegrad Tensor vs PyTorch, JAX, HIPS autograd, NumPy.

    python bench/bench_tensor.py                 # full run, prints a markdown table
    python bench/bench_tensor.py --quick         # smoke run: smaller sizes, fewer repeats
    python bench/bench_tensor.py --json out.json # also write the results as JSON

Every peer is optional: one whose package is missing (or a tapegrad without ``Tensor``)
prints "skipped (not installed)" and the run goes on.

(a) MLP 784-256-256-10, batch 128, float32, relu hidden layers, softmax cross-entropy
    loss = mean(logsumexp(logits, axis=1) - logits[arange(128), labels]); one timed
    iteration = forward + backward of all 6 parameters (3 weights, 3 biases), the
    gradients read back. Same initial weights and data for every engine (seeded
    np.random.default_rng). Engines: hand-written NumPy forward + backward (the floor),
    PyTorch eager, JAX jax.jit(jax.grad(loss)) + block_until_ready, HIPS autograd
    autograd.grad(loss), tapegrad Tensor. Every engine's gradients must agree with the
    hand-written reference evaluated in float64 from the same float32 weights:
    max|g - ref| / max|ref| <= 1e-4 for each parameter, and the gradients must be float32.
(b) gradient of the Rosenbrock function of n = 10^6 float64 variables, in array ops:
        f(x) = sum(100*(x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)
    Engines: PyTorch eager, JAX jit(grad(f)), autograd grad(f), tapegrad Tensor, and
    plain NumPy evaluating f alone (a reference line, no gradient). The gradients must
    agree with the analytic gradient: max|g - ref| / max|ref| <= 1e-10.
(c) one small-tensor operation from Python: a * b and a + b on shape-(3,) float64
    tensors that require grad (so every operation is recorded), in microseconds per
    operation (a loop of N operations, divided by N; the loop's own ~0.02 us is
    included). Engines: tapegrad, PyTorch, and NumPy arrays (no gradient; reference).

Timing: time.perf_counter around each iteration (a, b) or each loop of N operations (c),
after warm-up iterations; the table reports the MEDIAN over the timed runs (the minimum
is listed beside it). PyTorch runs with torch.set_num_threads(2); JAX runs with
jax_enable_x64 on (needed for float64 in (b); the MLP's arrays stay float32). Ratios are
peer time / tapegrad time, so above 1 means tapegrad is faster.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import os
import platform
import statistics
import sys
import time
import traceback
from importlib import metadata

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_model  # noqa: E402

# ----------------------------------------------------------------------------- optional peers

SKIPS: dict = {}


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        SKIPS[name] = f"skipped (not installed: {exc})"
        return None


torch = _optional("torch")
jax = _optional("jax")
if jax is not None:
    jax.config.update("jax_enable_x64", True)  # before any array is made; float32 inputs stay float32
    import jax.numpy as jnp
else:
    jnp = None
autograd = _optional("autograd")
anp = ag_logsumexp = None
if autograd is not None:
    try:
        import autograd.numpy as anp
        from autograd.scipy.special import logsumexp as ag_logsumexp  # needs scipy
    except ImportError as _exc:
        SKIPS["autograd"] = f"skipped (not installed: {_exc})"
        autograd = None
tg = _optional("tapegrad")
if tg is not None and not hasattr(tg, "Tensor"):
    SKIPS["tapegrad"] = "skipped (not installed: this tapegrad has no Tensor)"
    tg = None

NOT_INSTALLED = {"PyTorch": "torch", "JAX jit(grad)": "jax", "autograd": "autograd", "tapegrad": "tapegrad"}

MLP_RTOL = 1e-4
ROSEN_RTOL = 1e-10


# ----------------------------------------------------------------------------- header

def dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def header_info() -> dict:
    vers = {"python": platform.python_version(), "numpy": np.__version__}
    for label, mod, dist in (("tapegrad", tg, "tapegrad"), ("torch", torch, "torch"), ("jax", jax, "jax"),
                             ("jaxlib", jax, "jaxlib"), ("autograd", autograd, "autograd")):
        vers[label] = dist_version(dist) if mod is not None else None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "versions": vers,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "jax_backend": jax.default_backend() if jax is not None else None,
        "gc_thresholds": list(gc.get_threshold()),
        "skips": dict(SKIPS),
        "command": " ".join(["python"] + sys.argv),
    }


# ----------------------------------------------------------------------------- timing and checks

def time_iterations(step, warmup: int, runs: int):
    """Call ``step`` warmup times, then time ``runs`` calls one by one. Returns (seconds list, last output)."""
    out = None
    for _ in range(warmup):
        out = step()
    gc.collect()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = step()
        times.append(time.perf_counter() - t0)
    return times, out


def scaled_err(g, ref) -> float:
    """max|g - ref| / max|ref| (computed in float64); inf on a shape mismatch or non-finite values."""
    g = np.asarray(g, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if g.shape != ref.shape:
        return float("inf")
    d = np.abs(g - ref)
    if not np.all(np.isfinite(d)):
        return float("inf")
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return float(np.max(d)) / max(scale, 1e-300) if d.size else 0.0


def row(bench: str, engine: str, **kw) -> dict:
    r = {"bench": bench, "engine": engine, "status": "ok", "median_s": None, "min_s": None, "runs": 0,
         "unit": "ms", "check": "", "note": ""}
    r.update(kw)
    return r


def skipped_row(bench: str, engine: str) -> dict:
    reason = SKIPS.get(NOT_INSTALLED.get(engine, ""), "skipped (not installed)")
    return row(bench, engine, status="skipped", check=reason)


def run_engine(bench: str, engine: str, available: bool, measure) -> dict:
    """``measure()`` returns a row's fields; errors become an "error" row (traceback to stderr)."""
    if not available:
        return skipped_row(bench, engine)
    gc.collect()
    try:
        fields = measure()
    except Exception as exc:  # one broken peer must not stop the others
        traceback.print_exc(file=sys.stderr)
        return row(bench, engine, status="error", check=f"error: {type(exc).__name__}: {exc}"[:200])
    finally:
        gc.collect()
    return row(bench, engine, **fields)


def timing_fields(times) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": len(times), "times_s": list(times)}


# ----------------------------------------------------------------------------- (a) MLP

MLP_SIZES = (784, 256, 256, 10)
MLP_PARAM_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")


def mlp_data(batch: int, seed: int):
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):
        params.append((rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        params.append(rng.uniform(-0.1, 0.1, fan_out).astype(np.float32))
    X = rng.standard_normal((batch, MLP_SIZES[0])).astype(np.float32)
    y = rng.integers(0, MLP_SIZES[-1], batch).astype(np.int64)
    return params, X, y


def mlp_numpy_grad(params, X, y):
    """Hand-written forward + backward; works in the dtype of its inputs. Returns (loss, [6 grads])."""
    W1, b1, W2, b2, W3, b3 = params
    B = X.shape[0]
    rows = np.arange(B)
    a1 = X @ W1 + b1
    h1 = np.maximum(a1, 0)
    a2 = h1 @ W2 + b2
    h2 = np.maximum(a2, 0)
    z = h2 @ W3 + b3
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(s[:, 0])
    loss = np.mean(lse - z[rows, y])
    dz = e / s
    dz[rows, y] -= 1
    dz /= B
    dW3 = h2.T @ dz
    db3 = dz.sum(axis=0)
    dh = (dz @ W3.T) * (a2 > 0)
    dW2 = h1.T @ dh
    db2 = dh.sum(axis=0)
    dh = (dh @ W2.T) * (a1 > 0)
    dW1 = X.T @ dh
    db1 = dh.sum(axis=0)
    return loss, [dW1, db1, dW2, db2, dW3, db3]


def mlp_check(loss, grads, ref_loss, ref_grads) -> dict:
    errs = [scaled_err(g, r) for g, r in zip(grads, ref_grads)]
    worst = max(errs) if len(errs) == len(ref_grads) else float("inf")
    loss_err = abs(float(loss) - ref_loss) / abs(ref_loss)
    dtypes = sorted({np.asarray(g).dtype.name for g in grads})
    ok = worst <= MLP_RTOL and loss_err <= MLP_RTOL and dtypes == ["float32"]
    worst_name = MLP_PARAM_NAMES[int(np.argmax(errs))] if errs else "?"
    check = (f"{'ok' if ok else 'FAIL'}: grads max|Δ|/max|ref| ≤ {worst:.1e} ({worst_name}), "
             f"loss rel Δ {loss_err:.1e}, {'/'.join(dtypes)}")
    return {"status": "ok" if ok else "FAIL", "check": check, "max_scaled_grad_err": worst,
            "grad_errs": dict(zip(MLP_PARAM_NAMES, errs)), "loss": float(loss), "loss_rel_err": loss_err}


def torch_mlp_step(params, X, y):
    """One PyTorch eager step (forward + backward) of the MLP: a function returning (loss, grads)."""
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    Xt, yt, ar = torch.from_numpy(X), torch.from_numpy(y), torch.arange(X.shape[0])

    def step():
        for p in ps:
            p.grad = None
        W1, b1, W2, b2, W3, b3 = ps
        h = torch.relu(Xt @ W1 + b1)
        h = torch.relu(h @ W2 + b2)
        z = h @ W3 + b3
        loss = (torch.logsumexp(z, dim=1) - z[ar, yt]).mean()
        loss.backward()
        return loss, [p.grad for p in ps]

    return step


def jax_mlp_grad(params, X, y):
    """JAX's jit(grad) of the MLP's loss: (a function returning the gradients, one returning the loss)."""
    def loss_fn(ps, Xj, yj):
        W1, b1, W2, b2, W3, b3 = ps
        h = jax.nn.relu(Xj @ W1 + b1)
        h = jax.nn.relu(h @ W2 + b2)
        z = h @ W3 + b3
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - z[jnp.arange(z.shape[0]), yj])

    grad_fn = jax.jit(jax.grad(loss_fn))
    ps = tuple(jax.device_put(p) for p in params)
    Xj, yj = jax.device_put(X), jax.device_put(y)
    return (lambda: jax.block_until_ready(grad_fn(ps, Xj, yj))), (lambda: float(jax.jit(loss_fn)(ps, Xj, yj)))


def tapegrad_mlp_step(params, X, y):
    """One tapegrad step (forward + backward) of the MLP: a function returning (loss, grads)."""
    ps = [tg.tensor(p, requires_grad=True) for p in params]  # copies; float32 kept
    Xt, ar = tg.from_numpy(X), np.arange(X.shape[0])

    def step():
        for p in ps:
            p.grad = None
        W1, b1, W2, b2, W3, b3 = ps
        h = tg.relu(Xt @ W1 + b1)
        h = tg.relu(h @ W2 + b2)
        z = h @ W3 + b3
        loss = (tg.logsumexp(z, axis=1) - z[ar, y]).mean()
        loss.backward()
        return loss, [p.grad for p in ps]

    return step


def bench_mlp(batch: int, warmup: int, runs: int, seed: int) -> list:
    params, X, y = mlp_data(batch, seed)
    ref_loss, ref_grads = mlp_numpy_grad([p.astype(np.float64) for p in params], X.astype(np.float64), y)
    ref_loss = float(ref_loss)
    bench = f"(a) MLP 784-256-256-10, batch {batch}, float32: forward + backward"
    rows_ = []

    def numpy_measure():
        times, (loss, grads) = time_iterations(lambda: mlp_numpy_grad(params, X, y), warmup, runs)
        return {**timing_fields(times), **mlp_check(loss, grads, ref_loss, ref_grads)}

    rows_.append(run_engine(bench, "NumPy (hand-written)", True, numpy_measure))

    def torch_measure():
        times, (loss, grads) = time_iterations(torch_mlp_step(params, X, y), warmup, runs)
        return {**timing_fields(times),
                **mlp_check(loss.item(), [g.numpy() for g in grads], ref_loss, ref_grads)}

    rows_.append(run_engine(bench, "PyTorch", torch is not None, torch_measure))

    def jax_measure():
        t0 = time.perf_counter()
        grads_of, loss_of = jax_mlp_grad(params, X, y)
        grads_of()
        compile_s = time.perf_counter() - t0
        times, grads = time_iterations(grads_of, warmup, runs)
        loss = loss_of()
        return {**timing_fields(times), **mlp_check(loss, [np.asarray(g) for g in grads], ref_loss, ref_grads),
                "note": f"first call (trace + compile) {compile_s * 1e3:.0f} ms"}

    rows_.append(run_engine(bench, "JAX jit(grad)", jax is not None, jax_measure))

    def autograd_measure():
        def loss_fn(ps, Xa, ya):
            W1, b1, W2, b2, W3, b3 = ps
            h = anp.maximum(Xa @ W1 + b1, 0)
            h = anp.maximum(h @ W2 + b2, 0)
            z = h @ W3 + b3
            return anp.mean(ag_logsumexp(z, axis=1) - z[np.arange(z.shape[0]), ya])

        grad_fn = autograd.grad(loss_fn)
        ps = tuple(params)
        times, grads = time_iterations(lambda: grad_fn(ps, X, y), warmup, runs)
        loss = loss_fn(ps, X, y)
        return {**timing_fields(times), **mlp_check(loss, list(grads), ref_loss, ref_grads)}

    rows_.append(run_engine(bench, "autograd", autograd is not None, autograd_measure))

    def tapegrad_measure():
        times, (loss, grads) = time_iterations(tapegrad_mlp_step(params, X, y), warmup, runs)
        return {**timing_fields(times),
                **mlp_check(loss.item(), [np.array(g.numpy()) for g in grads], ref_loss, ref_grads)}

    rows_.append(run_engine(bench, "tapegrad", tg is not None, tapegrad_measure))
    return rows_


# ----------------------------------------------------------------------------- (b) Rosenbrock

def rosen_numpy(x):
    a, b = x[:-1], x[1:]
    return np.sum(100.0 * (b - a ** 2) ** 2 + (1.0 - a) ** 2)


def rosen_grad_analytic(x):
    a, b = x[:-1], x[1:]
    r = b - a * a
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * r - 2.0 * (1.0 - a)
    g[1:] += 200.0 * r
    return g


def rosen_check(f, g, ref_f, ref_g) -> dict:
    err = scaled_err(g, ref_g)
    dtype = np.asarray(g).dtype.name
    f_err = abs(float(f) - ref_f) / abs(ref_f) if f is not None else 0.0
    ok = err <= ROSEN_RTOL and f_err <= ROSEN_RTOL and dtype == "float64"
    check = f"{'ok' if ok else 'FAIL'}: grad max|Δ|/max|ref| ≤ {err:.1e}"
    if f is not None:
        check += f", f rel Δ {f_err:.1e}"
    check += f", {dtype}"
    return {"status": "ok" if ok else "FAIL", "check": check, "max_scaled_grad_err": err, "f_rel_err": f_err}


def bench_rosen(n: int, warmup: int, runs: int, seed: int) -> list:
    x0 = np.random.default_rng(seed).uniform(-1.5, 1.5, n)
    ref_f = float(rosen_numpy(x0))
    ref_g = rosen_grad_analytic(x0)
    bench = f"(b) Rosenbrock gradient, n = {n:,}, float64"
    rows_ = []

    def numpy_measure():
        times, f = time_iterations(lambda: rosen_numpy(x0), warmup, runs)
        return {**timing_fields(times), "check": f"reference: f alone, no gradient (f = {float(f):.6e})"}

    rows_.append(run_engine(bench, "NumPy (f alone)", True, numpy_measure))

    def torch_measure():
        x = torch.tensor(x0, requires_grad=True)

        def step():
            x.grad = None
            a, b = x[:-1], x[1:]
            f = torch.sum(100 * (b - a ** 2) ** 2 + (1 - a) ** 2)
            f.backward()
            return f, x.grad

        times, (f, g) = time_iterations(step, warmup, runs)
        return {**timing_fields(times), **rosen_check(f.item(), g.numpy(), ref_f, ref_g)}

    rows_.append(run_engine(bench, "PyTorch", torch is not None, torch_measure))

    def jax_measure():
        def f_fn(x):
            a, b = x[:-1], x[1:]
            return jnp.sum(100 * (b - a ** 2) ** 2 + (1 - a) ** 2)

        grad_fn = jax.jit(jax.grad(f_fn))
        xj = jax.device_put(x0)
        t0 = time.perf_counter()
        jax.block_until_ready(grad_fn(xj))
        compile_s = time.perf_counter() - t0
        times, g = time_iterations(lambda: jax.block_until_ready(grad_fn(xj)), warmup, runs)
        f = float(jax.jit(f_fn)(xj))
        return {**timing_fields(times), **rosen_check(f, np.asarray(g), ref_f, ref_g),
                "note": f"first call (trace + compile) {compile_s * 1e3:.0f} ms"}

    rows_.append(run_engine(bench, "JAX jit(grad)", jax is not None, jax_measure))

    def autograd_measure():
        def f_fn(x):
            a, b = x[:-1], x[1:]
            return anp.sum(100 * (b - a ** 2) ** 2 + (1 - a) ** 2)

        grad_fn = autograd.grad(f_fn)
        times, g = time_iterations(lambda: grad_fn(x0), warmup, runs)
        return {**timing_fields(times), **rosen_check(f_fn(x0), g, ref_f, ref_g)}

    rows_.append(run_engine(bench, "autograd", autograd is not None, autograd_measure))

    def tapegrad_measure():
        x = tg.tensor(x0, requires_grad=True)  # a copy; float64 kept

        def step():
            x.grad = None
            a, b = x[:-1], x[1:]
            f = tg.sum(100 * (b - a ** 2) ** 2 + (1 - a) ** 2)
            f.backward()
            return f, x.grad

        times, (f, g) = time_iterations(step, warmup, runs)
        return {**timing_fields(times), **rosen_check(f.item(), np.array(g.numpy()), ref_f, ref_g)}

    rows_.append(run_engine(bench, "tapegrad", tg is not None, tapegrad_measure))
    return rows_


# ----------------------------------------------------------------------------- (c) one small op

def loop_mul(a, b, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        _ = a * b
    return time.perf_counter() - t0


def loop_add(a, b, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        _ = a + b
    return time.perf_counter() - t0


SMALL_A = [0.5, -1.25, 2.0]
SMALL_B = [3.0, 0.75, -1.5]


def small_op_fields(a, b, value, recorded: bool, loop, ref, n_ops: int, warmup: int, runs: int) -> dict:
    """Time ``loop`` (N operations a op b) after warm-up; check the op's value and that it was recorded."""
    loop(a, b, max(1, n_ops // 10))
    for _ in range(warmup):
        loop(a, b, n_ops)
    gc.collect()
    times = [loop(a, b, n_ops) / n_ops for _ in range(runs)]
    err = float(np.max(np.abs(np.asarray(value, dtype=np.float64) - ref)))
    ok = err == 0.0 and recorded
    check = f"{'ok' if ok else 'FAIL'}: value exact" if err == 0.0 else f"FAIL: value |Δ| {err:.1e}"
    check += ", result requires grad" if recorded else ", result does NOT require grad"
    return {**timing_fields(times), "unit": "us", "status": "ok" if ok else "FAIL", "check": check,
            "ops_per_run": n_ops}


def bench_small(n_ops: int, warmup: int, runs: int) -> list:
    out = []
    an, bn = np.array(SMALL_A), np.array(SMALL_B)
    cfg = dict(n_ops=n_ops, warmup=warmup, runs=runs)
    for opname, loop, ref in (("a * b", loop_mul, an * bn), ("a + b", loop_add, an + bn)):
        bench = f"(c) `{opname}`, shape (3,) float64, inputs require grad"

        def numpy_measure(loop=loop, ref=ref, opname=opname):
            c = an * bn if opname == "a * b" else an + bn
            fields = small_op_fields(an, bn, c, True, loop, ref, **cfg)
            fields["check"] = "reference: ndarrays, no gradient"
            return fields

        def torch_measure(loop=loop, ref=ref, opname=opname):
            a = torch.tensor(SMALL_A, dtype=torch.float64, requires_grad=True)
            b = torch.tensor(SMALL_B, dtype=torch.float64, requires_grad=True)
            c = a * b if opname == "a * b" else a + b
            return small_op_fields(a, b, c.detach().numpy(), c.requires_grad, loop, ref, **cfg)

        def tapegrad_measure(loop=loop, ref=ref, opname=opname):
            a = tg.tensor(SMALL_A, requires_grad=True)  # Python floats -> float64
            b = tg.tensor(SMALL_B, requires_grad=True)
            c = a * b if opname == "a * b" else a + b
            return small_op_fields(a, b, np.array(c.detach().numpy()), c.requires_grad, loop, ref, **cfg)

        out.append(run_engine(bench, "NumPy (no grad)", True, numpy_measure))
        out.append(run_engine(bench, "PyTorch", torch is not None, torch_measure))
        out.append(run_engine(bench, "tapegrad", tg is not None, tapegrad_measure))
    return out


# ----------------------------------------------------------------------------- report

def fmt_time(seconds, unit: str) -> str:
    if seconds is None:
        return "—"
    if unit == "us":
        v = seconds * 1e6
        return f"{v:,.2f} µs" if v < 100 else f"{v:,.0f} µs"
    v = seconds * 1e3
    return f"{v:,.1f} ms" if v >= 10 else f"{v:.3g} ms"


def add_ratios(rows: list) -> None:
    tg_by_bench = {r["bench"]: r["median_s"] for r in rows if r["engine"] == "tapegrad" and r["median_s"]}
    for r in rows:
        t = tg_by_bench.get(r["bench"])
        r["over_tapegrad"] = r["median_s"] / t if (t and r["median_s"] is not None) else None


def print_report(info: dict, rows: list) -> None:
    v = info["versions"]
    peers = ", ".join(f"{k} {v[k]}" for k in ("tapegrad", "torch", "jax", "jaxlib", "autograd", "numpy") if v.get(k))
    print(f"# tapegrad tensor benchmark — {info['date']}")
    print(f"python {info['python']} | CPU: {info['cpu_model']} ({info['cpus']} logical CPUs, {info['machine']}) | "
          f"{peers} | torch threads {info['torch_threads']} | jax backend {info['jax_backend']} (x64 on) | "
          f"gc on {tuple(info['gc_thresholds'])}")
    print(f"command: {info['command']}")
    print()
    print("| benchmark | engine | median / iteration | min | runs | peer / tapegrad | check |")
    print("|---|---|---:|---:|---:|---:|---|")
    last = None
    for r in rows:
        bench = r["bench"] if r["bench"] != last else ""
        last = r["bench"]
        if r["status"] in ("skipped", "error"):
            print(f"| {bench} | {r['engine']} | — | — | — | — | {r['check']} |")
            continue
        ratio = "—" if r.get("over_tapegrad") is None else f"{r['over_tapegrad']:,.2f}×"
        check = r["check"] + (f"; {r['note']}" if r.get("note") else "")
        print(f"| {bench} | {r['engine']} | {fmt_time(r['median_s'], r['unit'])} | {fmt_time(r['min_s'], r['unit'])} | "
              f"{r['runs']} | {ratio} | {check} |")
    print()
    print("Times are the median (and min) of per-iteration perf_counter timings after warm-up; (c) is per operation, "
          "from loops of N operations (loop overhead included). Ratios: peer median / tapegrad median "
          "(above 1 = tapegrad faster). Checks: (a) vs a float64 hand-written NumPy reference, tolerance 1e-4 of each "
          "parameter's largest gradient; (b) vs the analytic gradient, tolerance 1e-10.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: smaller sizes, fewer repeats (still checks)")
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH")
    ap.add_argument("--seed", type=int, default=1337, help="seed of data and weights (default 1337)")
    args = ap.parse_args(argv)

    if torch is not None:
        torch.set_num_threads(2)
    info = header_info()
    if args.quick:
        mlp_cfg = dict(batch=128, warmup=2, runs=10)
        rosen_cfg = dict(n=100_000, warmup=1, runs=5)
        small_cfg = dict(n_ops=2_000, warmup=1, runs=5)
    else:
        mlp_cfg = dict(batch=128, warmup=10, runs=100)
        rosen_cfg = dict(n=1_000_000, warmup=3, runs=20)
        small_cfg = dict(n_ops=20_000, warmup=2, runs=15)
    info["quick"] = args.quick
    info["config"] = {"mlp": mlp_cfg, "rosenbrock": rosen_cfg, "small_op": small_cfg}

    rows = bench_mlp(seed=args.seed, **mlp_cfg) + bench_rosen(seed=args.seed, **rosen_cfg) + bench_small(**small_cfg)
    add_ratios(rows)
    print_report(info, rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"info": info, "results": rows}, fh, indent=1)
        print(f"\nJSON written to {args.json}")
    bad = [r for r in rows if r["status"] in ("FAIL", "error")]
    if bad:
        print(f"\n{len(bad)} row(s) failed: " + "; ".join(f"{r['bench']} / {r['engine']}" for r in bad), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
