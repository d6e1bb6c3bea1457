"""The main job: train a small multilayer perceptron on two moons, micrograd-style.

    python -m tapegrad.demo [--steps 100] [--seed 1337]

The model, loss and training loop are micrograd's demo, written with tapegrad's ``Var``
(the code reads exactly as it would with micrograd's ``Value``). Prints loss, accuracy and
the time of each step.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any, List, Sequence, Tuple

import numpy as np

from . import nn


def make_moons(n: int = 100, noise: float = 0.1, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's construction), labels -1 and +1."""
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack([
        np.column_stack([np.cos(t_out), np.sin(t_out)]),
        np.column_stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5]),
    ])
    y = np.hstack([-np.ones(n_out), np.ones(n_in)])
    X += rng.normal(scale=noise, size=X.shape)
    perm = rng.permutation(n)
    return X[perm], y[perm]


def loss(model: Any, X: Sequence[Sequence[float]], y: Sequence[float], alpha: float = 1e-4) -> Tuple[Any, float]:
    """micrograd's demo loss: SVM max-margin plus L2 regularisation; and the accuracy.

    Works with any scalar type with micrograd's interface (``relu``, ``*``, ``+``, ``.data``).
    """
    scores = [model(xi) for xi in X]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum(p * p for p in model.parameters())
    total = data_loss + reg_loss
    accuracy = sum((yi > 0) == (si.data > 0) for yi, si in zip(y, scores)) / len(y)
    return total, accuracy


def train_step(model: Any, X: List[List[float]], y: List[float], k: int, steps: int = 100) -> Tuple[float, float]:
    """One step of micrograd's demo: forward, zero_grad, backward, SGD with a decaying rate."""
    total, accuracy = loss(model, X, y)
    model.zero_grad()
    total.backward()
    learning_rate = 1.0 - 0.9 * k / steps
    for p in model.parameters():
        p.data -= learning_rate * p.grad
    return total.data, accuracy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tapegrad.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args(argv)

    random.seed(args.seed)
    Xa, ya = make_moons(100, noise=0.1, seed=args.seed)
    X, y = Xa.tolist(), ya.tolist()
    model = nn.MLP(2, [16, 16, 1])
    print(f"two moons, 100 points; MLP(2, [16, 16, 1]) with {len(model.parameters())} parameters")
    times = []
    for k in range(args.steps):
        t0 = time.perf_counter()
        total, accuracy = train_step(model, X, y, k, args.steps)
        times.append(time.perf_counter() - t0)
        if k % 10 == 0 or k == args.steps - 1:
            print(f"step {k:3d}  loss {total:.6f}  accuracy {accuracy * 100:5.1f}%  {times[-1] * 1e3:7.2f} ms/step")
    median = sorted(times)[len(times) // 2]
    print(f"median time per step: {median * 1e3:.2f} ms (forward over 100 points, backward, SGD update)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
