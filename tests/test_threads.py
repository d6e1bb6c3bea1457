"""Python threads: long kernels (matrix products, big elementwise loops and reductions, in
forward passes and in backward sweeps) release the GIL, so another thread makes progress
meanwhile; tapes on several threads, and one leaf shared by them, give the serial results;
a thread that uses a tape another thread is sweeping waits for it instead of corrupting it."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np

import tapegrad as tg

N = 600  # 600^3 products: long enough for another thread to run many times meanwhile


def _model(seed: int = 0):
    rng = np.random.default_rng(seed)
    W = [tg.tensor(rng.normal(size=(N, N)) / 25, requires_grad=True) for _ in range(3)]
    X = [tg.tensor(rng.normal(size=(N, N))) for _ in range(4)]

    def loss(k: int):
        h = X[k]
        for w in W:
            h = tg.tanh(h @ w)
        return (h * h).mean()

    return W, loss


def test_another_thread_runs_during_a_long_backward() -> None:
    W, loss = _model()
    L = loss(0)
    count = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        before = count
        L.backward()  # six 600^3 products and big loops, each with the GIL released
        during = count - before
    finally:
        stop.set()
        t.join()
    # With the GIL held for the whole sweep, the spinner could only run at its edges (a few
    # iterations); released in each kernel, it runs on the other core meanwhile.
    assert during > 10_000, during
    assert all(w.grad is not None for w in W)


def test_tapes_on_several_threads_and_a_shared_leaf_give_the_serial_results() -> None:
    W, loss = _model(1)
    serial = []
    for k in range(4):
        for w in W:
            w.grad = None
        loss(k).backward()
        serial.append([w.grad.numpy().copy() for w in W])
    for w in W:
        w.grad = None
    errors: list = []

    def worker(k: int) -> None:
        try:
            loss(k).backward()  # a tape per thread (its default tape); W shared by all
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, w in enumerate(W):
        np.testing.assert_allclose(w.grad.numpy(), sum(s[i] for s in serial), rtol=1e-12, atol=1e-15)


def test_vars_and_functional_on_several_threads() -> None:
    def work(k: int):
        x = tg.Var(0.5 + k)
        y = x
        for _ in range(2000):
            y = tg.sin(y) * 0.5 + x * 0.25
        y.backward()
        h = tg.hessian(lambda v: (v * v * v).sum())(np.full(2, 1.0 + k))
        return x.grad, float(h.numpy()[0, 0])

    serial = [work(k) for k in range(4)]
    results: dict = {}
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, work(k))) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[k] for k in range(4)] == serial
    assert [h for _, h in serial] == [6.0, 12.0, 18.0, 24.0]


SWEPT_TAPE = """
import threading, time
import numpy as np
import tapegrad as tg
N = 600
rng = np.random.default_rng(2)
W = [tg.tensor(rng.normal(size=(N, N)) / 25, requires_grad=True) for _ in range(3)]
X = [tg.tensor(rng.normal(size=(N, N))) for _ in range(2)]

def deep():  # twelve 600^3 products in its backward
    total = 0.0
    for x in X:
        h = x
        for w in W:
            h = tg.tanh(h @ w)
        total = total + (h * h).mean()
    return total

with tg.Tape():
    deep().backward()
    ref = [w.grad.numpy().copy() for w in W]
for w in W:
    w.grad = None
tape = tg.Tape()
with tape:
    L = deep()
started = threading.Event()
done = []

def other():
    started.wait()
    time.sleep(0.05)  # by then the sweep below has begun (it holds the GIL until a kernel)
    y = L * 2.0  # records on `tape`: waits for the sweep
    tape.clear()  # clears it: waits too
    done.append(y.item())

t = threading.Thread(target=other)
t.start()
started.set()
L.backward()
t.join()
for w, r in zip(W, ref):
    np.testing.assert_allclose(w.grad.numpy(), r, rtol=1e-13, atol=1e-16)
assert done and done[0] == 2.0 * L.item()
print("ok")
"""


def test_a_tape_swept_by_one_thread_waits_for_another_thread() -> None:
    """Thread B records on and clears the tape that thread A is sweeping (with the GIL
    released in its kernels): B waits until A's sweep is over, and A's gradients are right.
    (Without the wait, B's clear() frees the records A is sweeping: a segfault; hence a child
    process.)"""
    proc = subprocess.run([sys.executable, "-c", SWEPT_TAPE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-3000:])
