"""tapegrad alone on the benchmarks' hot paths, for A/B runs of two builds.

Run it with each build's Python alternately, several times (the machine's speed drifts, so
only alternated pairs compare); each run prints the min and median per workload:

  scalar expr   bench_scalar.py (b): the N = 10,000-term expression over N leaves, built and
                backpropagated (Var ops, the scalar sweep)
  demo step     a micrograd-shaped step on Vars: MLP(2, [16, 16, 1]) on 100 points
  tensor step   bench_tensor.py's MLP step: 2 -> 64 -> 64 -> 1 tanh, batch 256 (tensor ops,
                the tensor sweep)
  hessian       bench_hessian.py's Hessian (logsumexp(A x) + |x|^2 / 2, x in R^200)
  grad small    tg.grad of a 3-element function (the functional API's fixed cost)

    python bench/bench_ab.py
"""

from __future__ import annotations

import gc
import statistics
import time

import numpy as np

import tapegrad as tg


def timed(fn, warmup: int, runs: int):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


def scalar_expr(n: int = 10_000):
    rng = np.random.default_rng(0)
    vals = rng.uniform(-1, 1, n).tolist()

    def run():
        xs = [tg.Var(v) for v in vals]
        f = tg.Var(0.0, requires_grad=False)
        for i in range(n):
            a, b = xs[i], xs[(i + 1) % n]
            f = f + (a * b - 0.5 * a).relu() + (a - b) ** 2 / (1 + b ** 2)
        f.backward()

    return run


def demo_step():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 2)).tolist()
    y = [1.0 if a * b > 0 else -1.0 for a, b in X]
    sizes = [2, 16, 16, 1]
    W = [[[tg.Var(rng.uniform(-1, 1)) for _ in range(sizes[k])] for _ in range(sizes[k + 1])] for k in range(3)]
    B = [[tg.Var(0.0) for _ in range(sizes[k + 1])] for k in range(3)]
    params = [p for layer in W for row in layer for p in row] + [p for layer in B for p in layer]

    def run():
        loss = tg.Var(0.0, requires_grad=False)
        for x, t in zip(X, y):
            h = x
            for k in range(3):
                h = [sum((w * v for w, v in zip(row, h)), b) for row, b in zip(W[k], B[k])]
                if k < 2:
                    h = [v.relu() for v in h]
            loss = loss + (1 - t * h[0]).relu()
        loss = loss / len(X)
        for p in params:
            p.grad = 0.0
        loss.backward()
        for p in params:
            p.data -= 0.01 * p.grad

    return run


def tensor_step(batch: int = 256):
    rng = np.random.default_rng(2)
    X = tg.tensor(rng.normal(size=(batch, 2)))
    y = tg.tensor(rng.normal(size=(batch, 1)))
    ps = [tg.tensor(rng.normal(size=s) * 0.3, requires_grad=True) for s in [(2, 64), (64,), (64, 64), (64,), (64, 1), (1,)]]

    def run():
        h = tg.tanh(X @ ps[0] + ps[1])
        h = tg.tanh(h @ ps[2] + ps[3])
        loss = ((h @ ps[4] + ps[5] - y) ** 2).mean()
        for p in ps:
            p.grad = None
        loss.backward()
        with tg.no_grad():
            for p in ps:
                p -= 0.01 * p.grad

    return run


def hessian():
    rng = np.random.default_rng(0)
    A = tg.tensor(rng.standard_normal((300, 200)) / 10)
    x0 = rng.standard_normal(200)
    h = tg.hessian(lambda x: tg.logsumexp(tg.matmul(A, x)) + 0.5 * (x * x).sum())
    return lambda: h(x0)


def grad_small():
    x0 = np.array([0.3, -0.2, 0.5])
    g = tg.grad(lambda x: (tg.sin(x) * x).sum())
    return lambda: g(x0)


def main() -> None:
    work = [("scalar expr", scalar_expr(), 2, 15), ("demo step", demo_step(), 2, 15),
            ("tensor step", tensor_step(), 50, 500), ("hessian", hessian(), 20, 200),
            ("grad small", grad_small(), 200, 2000)]
    for name, fn, warmup, runs in work:
        lo, med = timed(fn, warmup, runs)
        print(f"{name:12s} min {lo * 1e3:9.3f} ms  median {med * 1e3:9.3f} ms")


if __name__ == "__main__":
    main()
