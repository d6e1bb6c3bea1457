#!/usr/bin/env python3
"""Timings on a busy machine: the same work with the machine idle and with two busy processes
beside it (each a Python loop that never sleeps: a notebook server's other kernel, a CI job),
in one process run, the engines alternated call by call.

    python bench/bench_load.py [--quick] [--rounds R]

"tapegrad before" is the same tapegrad with every product on OpenBLAS's own thread count (2 here),
as it ran before it chose a count per product (tapegrad._core._blas_thread_control).

(a) the BLAS's threads: the square matrix product n x n x n (float64) on the OpenBLAS that
    tapegrad loads (scipy-openblas32's, called directly through ctypes) with 1 and with 2
    threads, for n from 64 to 512: where a second thread starts to pay, idle and busy. This is
    what tapegrad.gemm_threads' threshold (kParallelFlops = 2^20 multiply-adds, n ~ 100) rests on.
(b) the Hessian of f(x) = logsumexp(A x) + |x|^2 / 2, x in R^200, A 300 x 200 (bench_hessian.py):
    tapegrad.hessian against jax.jit(jax.hessian) (compiled before timing).
(c) the MLP step of bench_tensor.py (784-256-256-10, batch 128, float32, forward + backward):
    tapegrad against PyTorch eager (torch.set_num_threads(2), its default here) and JAX jit(grad).

For (b) and (c), each round times one call of each engine in a shuffled order, R rounds after a warm-up; the
table gives each engine's min, median and max over the rounds, per condition. The ratios are
peer / tapegrad of the medians (above 1: tapegrad is faster) and of the maxima (the cliff).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, Iterator, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_tensor  # noqa: E402
from bench_tensor import jax_mlp_grad, mlp_data, tapegrad_mlp_step, torch_mlp_step  # noqa: E402

from machine import cpu_model  # noqa: E402


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """n processes that keep a core busy each, for the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(0.5)  # (let them start spinning)
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        time.sleep(0.5)


def openblas() -> ctypes.CDLL:
    import scipy_openblas32

    path = os.path.join(scipy_openblas32.get_lib_dir(), f"lib{scipy_openblas32.get_library()}.so")
    lib = ctypes.CDLL(path)
    lib.scipy_cblas_dgemm.restype = None
    lib.scipy_openblas_set_num_threads.argtypes = [ctypes.c_int]
    return lib


def gemm_times(lib: ctypes.CDLL, sizes: List[int], rounds: int) -> Dict[tuple, List[float]]:
    """Per (n, threads): the time of each call, threads alternated call by call."""
    out: Dict[tuple, List[float]] = {}
    for n in sizes:
        a = np.random.default_rng(n).standard_normal((n, n))
        b = np.random.default_rng(n + 1).standard_normal((n, n))
        c = np.empty((n, n))
        p = [x.ctypes.data_as(ctypes.c_void_p) for x in (a, b, c)]
        reps = max(1, int(2e7 // n**3))  # a few ms per timed call

        def call(threads: int, n: int = n, p: list = p, reps: int = reps) -> float:
            lib.scipy_openblas_set_num_threads(threads)
            t0 = time.perf_counter()
            for _ in range(reps):
                lib.scipy_cblas_dgemm(101, 111, 111, n, n, n, ctypes.c_double(1.0), p[0], n, p[1], n,
                                      ctypes.c_double(0.0), p[2], n)
            return (time.perf_counter() - t0) / reps

        for t in (1, 2):
            call(t)
        for _ in range(rounds):
            for t in (1, 2):
                out.setdefault((n, t), []).append(call(t))
        assert np.allclose(c, a @ b)
    lib.scipy_openblas_set_num_threads(os.cpu_count() or 1)
    return out


def before(fn: Callable[[], object]) -> Callable[[], object]:
    """fn as tapegrad ran it before it chose a thread count per product (issue 21): every product on
    OpenBLAS's own count, the cores (2 here)."""
    import tapegrad as tg

    cores = os.cpu_count() or 1

    def call() -> object:
        tg._core._blas_thread_control(False, cores)
        try:
            return fn()
        finally:
            tg._core._blas_thread_control(True, cores)

    return call


def engines(quick: bool) -> Dict[str, Callable[[], object]]:
    """The calls to time, by name, each checked once against a reference here."""
    import tapegrad as tg

    fns: Dict[str, Callable[[], object]] = {}
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 200)) / 10
    x0 = rng.standard_normal(200)
    z = A @ x0
    pr = np.exp(z - z.max())
    pr /= pr.sum()
    H_ref = A.T @ (np.diag(pr) - np.outer(pr, pr)) @ A + np.eye(200)
    At = tg.tensor(A)

    def f(x: tg.Tensor) -> tg.Tensor:
        return tg.logsumexp(At @ x) + 0.5 * (x * x).sum()

    fns["hessian: tapegrad"] = lambda: tg.hessian(f)(x0).numpy()
    fns["hessian: tapegrad before"] = before(lambda: tg.hessian(f)(x0).numpy())
    assert np.allclose(fns["hessian: tapegrad"](), H_ref, rtol=1e-10, atol=1e-12)
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        Aj = jnp.asarray(A)
        hess = jax.jit(jax.hessian(lambda x: jax.nn.logsumexp(Aj @ x) + 0.5 * jnp.sum(x * x)))
        xj = jnp.asarray(x0)
        fns["hessian: JAX jit(hessian)"] = lambda: jax.block_until_ready(hess(xj))
        assert np.allclose(np.asarray(fns["hessian: JAX jit(hessian)"]()), H_ref, rtol=1e-10, atol=1e-12)
    except ImportError:
        pass

    params, X, y = mlp_data(128, 0)
    tg_step = tapegrad_mlp_step(params, X, y)
    fns["MLP step: tapegrad"] = tg_step
    fns["MLP step: tapegrad before"] = before(tg_step)
    if bench_tensor.torch is not None:
        bench_tensor.torch.set_num_threads(2)
        torch_step = torch_mlp_step(params, X, y)
        fns["MLP step: PyTorch"] = torch_step
        assert np.allclose(tg_step()[1][0].numpy(), torch_step()[1][0].numpy(), rtol=1e-4, atol=1e-6)
    if bench_tensor.jax is not None:
        grads_of, _ = jax_mlp_grad(params, X, y)
        fns["MLP step: JAX jit(grad)"] = grads_of
        assert np.allclose(np.asarray(grads_of()[0]), tg_step()[1][0].numpy(), rtol=1e-4, atol=1e-6)
    return fns


def alternated(fns: Dict[str, Callable[[], object]], rounds: int) -> Dict[str, List[float]]:
    """Each round calls every engine once, in a shuffled order: a load that comes and goes hits them alike."""
    for fn in fns.values():  # warm-up: half a second of each
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.5:
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    order = list(fns.items())
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)  # (no engine always runs after the same one: another's thread pool may still spin)
        for name, fn in order:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def ms(t: float) -> str:
    return f"{t * 1e3:.3f}" if t < 0.01 else f"{t * 1e3:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0)
    args = ap.parse_args()
    rounds = args.rounds or (10 if args.quick else 200)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    import tapegrad as tg

    print(f"tapegrad {tg.__version__}: gemm {tg.gemm_backend()}, get_num_threads() = {tg.get_num_threads()}")

    lib = openblas()
    sizes = [64, 128, 192, 256, 320, 384, 512] if not args.quick else [64, 256]
    print("\n(a) OpenBLAS dgemm n x n x n, ms per product, median (min-max) over "
          f"{max(5, rounds // 10)} alternated calls")
    print("| n | multiply-adds | idle, 1 thread | idle, 2 threads | 2 busy, 1 thread | 2 busy, 2 threads |")
    print("|---:|---:|---:|---:|---:|---:|")
    idle = gemm_times(lib, sizes, max(5, rounds // 10))
    with busy(2):
        loaded = gemm_times(lib, sizes, max(5, rounds // 10))
    for n in sizes:
        cells = []
        for d in (idle, loaded):
            for t in (1, 2):
                v = d[(n, t)]
                cells.append(f"{ms(statistics.median(v))} ({ms(min(v))}-{ms(max(v))})")
        print(f"| {n} | 2^{np.log2(float(n) ** 3):.1f} | " + " | ".join(cells) + " |")

    fns = engines(args.quick)
    results = {}
    for label, load in (("idle", 0), ("2 busy processes", 2)):
        with busy(load) if load else contextlib.nullcontext():
            results[label] = alternated(fns, rounds)
    print(f"\n(b, c) ms per call over {rounds} alternated rounds: min / median / max")
    print("| work | engine | idle | 2 busy processes | median, peer / tapegrad (idle, busy) |"
          " max, peer / tapegrad (idle, busy) |")
    print("|---|---|---:|---:|---:|---:|")
    for name in fns:
        work, engine = name.split(": ")
        base = f"{work}: tapegrad"
        cells, med, mx = [], [], []
        for label in results:
            v = results[label][name]
            b = results[label][base]
            cells.append(f"{ms(min(v))} / {ms(statistics.median(v))} / {ms(max(v))}")
            med.append(f"{statistics.median(v) / statistics.median(b):.2f}")
            mx.append(f"{max(v) / max(b):.2f}")
        print(f"| {work} | {engine} | " + " | ".join(cells) + f" | {', '.join(med)} | {', '.join(mx)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
