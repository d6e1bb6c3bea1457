#!/usr/bin/env python3
"""Scans, sorts and selections with their gradients, side by side, in one process run:

    python bench/bench_index.py [--sizes 10000,100000,1000000] [--rounds R]

For each size n, the gradient of a weighted sum of each op's result, w . op(x) (one forward and
one backward), for x of n float64 elements:

- cumsum(x), cumprod(x) (x near 1, so that the products stay finite), sort(x).values,
  topk(x, 10).values, gather(x, 0, i) for n random indices;

engines: tapegrad (the core's kernels, cpp/src/ops/index.cpp), PyTorch eager (CPU) and
jax.jit(jax.grad) (compiled before timing). Each round times one call of each engine in a
shuffled order; the table gives each engine's min and median over the rounds and the ratios
peer / tapegrad of the medians (above 1: tapegrad is faster). Before tapegrad's kernels
(issue 22), cumsum was a product with a triangular matrix: O(n^2) in time and memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_model  # noqa: E402


def engines(op: str, x0: np.ndarray, w: np.ndarray, idx: np.ndarray) -> Dict[str, Callable[[], object]]:
    import torch

    import tapegrad as tg

    r: Dict[str, Callable[[], object]] = {}
    k = 10

    def tg_step() -> object:
        x = tg.tensor(x0, requires_grad=True)
        y = {"cumsum": lambda: x.cumsum(0), "cumprod": lambda: x.cumprod(0), "sort": lambda: x.sort().values,
             "topk": lambda: x.topk(k).values, "gather": lambda: x.gather(0, ti)}[op]()
        (y * (tw if op not in ("topk",) else tw[:k])).sum().backward()
        return x.grad

    tw, ti = tg.tensor(w), tg.tensor(idx)
    r["tapegrad"] = tg_step

    pw, pi = torch.tensor(w), torch.tensor(idx)

    def torch_step() -> object:
        x = torch.tensor(x0, requires_grad=True)
        y = {"cumsum": lambda: x.cumsum(0), "cumprod": lambda: x.cumprod(0), "sort": lambda: x.sort().values,
             "topk": lambda: x.topk(k).values, "gather": lambda: x.gather(0, pi)}[op]()
        (y * (pw if op != "topk" else pw[:k])).sum().backward()
        return x.grad

    r["PyTorch"] = torch_step
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        jw, ji = jnp.asarray(w), jnp.asarray(idx)
        f = {"cumsum": lambda x: jnp.dot(jnp.cumsum(x), jw), "cumprod": lambda x: jnp.dot(jnp.cumprod(x), jw),
             "sort": lambda x: jnp.dot(jnp.sort(x), jw), "topk": lambda x: jnp.dot(jax.lax.top_k(x, k)[0], jw[:k]),
             "gather": lambda x: jnp.dot(x[ji], jw)}[op]
        g = jax.jit(jax.grad(f))
        jx = jnp.asarray(x0)
        g(jx).block_until_ready()
        r["JAX jit"] = lambda: g(jx).block_until_ready()
    except ImportError:
        pass
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--ops", default="cumsum,cumprod,sort,topk,gather")
    args = ap.parse_args()
    import torch

    import tapegrad as tg

    torch.set_num_threads(1)
    tg.set_num_threads(1)
    print(f"# {time.strftime('%Y-%m-%d')} | {platform.machine()} {cpu_model()} | {os.cpu_count()} cores | "
          f"Python {platform.python_version()} | tapegrad {tg.__version__} | torch {torch.__version__}")
    print(f"# python bench/bench_index.py --sizes {args.sizes} --rounds {args.rounds}; one thread each; "
          "medians of alternated rounds")
    print("| op | n | tapegrad min / median | PyTorch min / median | JAX jit min / median | PyTorch / tapegrad | "
          "JAX / tapegrad |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for op in args.ops.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            x0 = 1.0 + rng.standard_normal(n) / n if op == "cumprod" else rng.standard_normal(n)
            w, idx = rng.standard_normal(n), rng.integers(0, n, n)
            es = engines(op, x0, w, idx)
            for f in es.values():
                f()
            times: Dict[str, List[float]] = {name: [] for name in es}
            for _ in range(args.rounds):
                order = list(es.items())
                random.shuffle(order)
                for name, f in order:
                    t = time.perf_counter()
                    f()
                    times[name].append(time.perf_counter() - t)
            print(row(op, n, times), flush=True)


def row(op: str, n: int, times: Dict[str, List[float]]) -> str:
    med = {name: statistics.median(v) for name, v in times.items()}

    def cell(name: str) -> str:
        return f"{min(times[name]) * 1e3:.3f} / {med[name] * 1e3:.3f} ms" if name in times else "-"

    def ratio(name: str) -> str:
        return f"{med[name] / med['tapegrad']:.2f}" if name in med else "-"

    return (f"| {op} | {n} | {cell('tapegrad')} | {cell('PyTorch')} | {cell('JAX jit')} | {ratio('PyTorch')} | "
            f"{ratio('JAX jit')} |")


if __name__ == "__main__":
    main()
