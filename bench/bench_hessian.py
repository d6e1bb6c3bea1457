"""The Hessian benchmark of the derivatives issue, side by side in one run.

f(x) = logsumexp(A x) + 1/2 |x|^2, x in R^200, A a 300 x 200 matrix (float64):
  (a) the full Hessian: tapegrad.hessian, jax.jit(jax.hessian), torch.func.hessian, HIPS
      autograd's hessian;
  (b) one Hessian-vector product: tapegrad.hvp, jax.jit(jvp of grad), torch.func (jvp of
      grad), autograd's hessian_vector_product.
Every engine's result is checked against the closed form H = A^T (diag(p) - p p^T) A + I,
p = softmax(A x). Medians of per-call timings after warm-up; ratios are peer / tapegrad.
Each engine starts after a half-second pause, so that the thread pools of the work before it
(NumPy's OpenBLAS, another engine's) have stopped spinning on the two cores.

    python bench/bench_hessian.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_model  # noqa: E402


def timed(fn, warmup: int, runs: int, warm_seconds: float = 0.5) -> tuple[float, object]:
    """Median time of `runs` calls, after `warmup` calls and at least `warm_seconds` of them
    (this VM's cores run slower for about 0.1 s after an idle pause: every engine is timed
    warm, as JAX is anyway after its compilation)."""
    out = None
    start = time.perf_counter()
    n = 0
    while n < warmup or time.perf_counter() - start < warm_seconds:
        out = fn()
        n += 1
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    warmup, runs = (1, 3) if args.quick else (5, 50)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 200)) / 10
    x0 = rng.standard_normal(200)
    v = rng.standard_normal(200)
    z = A @ x0
    p = np.exp(z - z.max())
    p /= p.sum()
    H_ref = A.T @ (np.diag(p) - np.outer(p, p)) @ A + np.eye(200)
    hv_ref = H_ref @ v

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    rows = []

    def record(bench: str, engine: str, fn) -> None:
        try:
            t, out = timed(fn, warmup, runs)
            ref = H_ref if bench == "hessian" else hv_ref
            err = float(np.max(np.abs(np.asarray(out) - ref)) / np.max(np.abs(ref)))
            rows.append((bench, engine, t, "ok" if err < 1e-10 else "FAIL", err))
        except ImportError as e:
            rows.append((bench, engine, float("nan"), f"skipped ({e})", float("nan")))

    def tapegrad_rows() -> None:
        import tapegrad as tg

        At = tg.tensor(A)

        def f(x):
            return tg.logsumexp(At @ x) + 0.5 * (x * x).sum()

        record("hessian", "tapegrad", lambda: tg.hessian(f)(x0).numpy())
        record("hvp", "tapegrad", lambda: tg.hvp(f, (x0,), (v,))[1][0].numpy())

    def jax_rows() -> None:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        Aj = jnp.asarray(A)

        def f(x):
            return jax.nn.logsumexp(Aj @ x) + 0.5 * jnp.sum(x * x)

        hess = jax.jit(jax.hessian(f))
        hvp = jax.jit(lambda x, t: jax.jvp(jax.grad(f), (x,), (t,))[1])
        xj, vj = jnp.asarray(x0), jnp.asarray(v)
        record("hessian", "JAX jit(hessian)", lambda: np.asarray(jax.block_until_ready(hess(xj))))
        record("hvp", "JAX jit(jvp of grad)", lambda: np.asarray(jax.block_until_ready(hvp(xj, vj))))

    def torch_rows() -> None:
        import torch

        torch.set_num_threads(2)
        At = torch.tensor(A)

        def f(x):
            return torch.logsumexp(At @ x, 0) + 0.5 * (x * x).sum()

        xt, vt = torch.tensor(x0), torch.tensor(v)
        record("hessian", "PyTorch torch.func.hessian", lambda: torch.func.hessian(f)(xt).numpy())
        record("hvp", "PyTorch torch.func (jvp of grad)",
               lambda: torch.func.jvp(torch.func.grad(f), (xt,), (vt,))[1].numpy())

    def autograd_rows() -> None:
        import autograd
        import autograd.numpy as anp
        from autograd.scipy.special import logsumexp

        def f(x):
            return logsumexp(anp.dot(A, x)) + 0.5 * anp.sum(x * x)

        hess = autograd.hessian(f)
        hvp = autograd.hessian_vector_product(f)
        record("hessian", "autograd", lambda: hess(x0))
        record("hvp", "autograd", lambda: hvp(x0, v))

    for part in (tapegrad_rows, jax_rows, torch_rows, autograd_rows):
        # Let the thread pools of the work before (NumPy's OpenBLAS computing the reference,
        # the previous engine) stop spinning, so that no engine is timed against them.
        time.sleep(0.5)
        try:
            part()
        except ImportError as e:
            rows.append(("-", part.__name__, float("nan"), f"skipped ({e})", float("nan")))

    base = {b: t for b, e, t, s, _ in rows if e == "tapegrad"}
    print("| benchmark | engine | median | peer / tapegrad | check |")
    print("|---|---|---:|---:|---|")
    for bench, engine, t, status, err in rows:
        ratio = base.get(bench, float("nan")) and t / base[bench] if bench in base else float("nan")
        print(f"| {bench} | {engine} | {t * 1e3:.3f} ms | {ratio:.2f}× | {status} (max rel err {err:.1e}) |")
    return 0 if all(s == "ok" or s.startswith("skipped") for _, _, _, s, _ in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
