"""The Hessian of bench_hessian.py's problem, tapegrad alone, for A/B runs of two builds.

Run it with each build's Python alternately (the machine's speed drifts, so only alternated
pairs compare): prints the min and median of 200 calls of ``tg.hessian(f)`` after 20 warm-up
calls, where f(x) = logsumexp(A x) + |x|^2 / 2, x in R^200, A of shape (300, 200).
"""

import time

import numpy as np

import tapegrad as tg


def main() -> None:
    rng = np.random.default_rng(0)
    A = tg.tensor(rng.standard_normal((300, 200)) / 10)
    x0 = rng.standard_normal(200)

    def f(x):
        return tg.logsumexp(tg.matmul(A, x)) + 0.5 * (x * x).sum()

    h = tg.hessian(f)
    for _ in range(20):
        h(x0)
    ts = []
    for _ in range(200):
        t0 = time.perf_counter()
        h(x0)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    print(f"tapegrad {tg.__version__} hessian: min {ts[0] * 1e3:.3f} ms  median {ts[len(ts) // 2] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
