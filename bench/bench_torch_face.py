#!/usr/bin/env python3
"""PyTorch-style training steps, the same code on tapegrad and on PyTorch, in one process.

    python bench/bench_torch_face.py            # prints a markdown table
    python bench/bench_torch_face.py --quick    # smoke run

The code of each step is written once and run with ``lib`` = ``tapegrad`` and ``lib`` =
``torch`` (the point of tapegrad's PyTorch face: ``import tapegrad as torch``):

(a) the loop of issue 11: MLP 2-16-1, batch 256, float32, ``BCEWithLogitsLoss``, Adam,
    ``clip_grad_norm_(max_norm=1.0)``; one step = zero_grad, forward, loss, backward, clip,
    optimizer step.
(b) MLP 784-256-256-10, batch 128, float32, ``nn.Sequential`` of Linear/ReLU,
    ``CrossEntropyLoss``, ``optim.SGD(lr=0.01)``; one step as above without clipping.
(c) LeNet-5 as PyTorch's tutorials write it (Conv2d 1-6-5 padding 2, ReLU, MaxPool2d, Conv2d 6-16-5,
    ReLU, MaxPool2d, Flatten, Linear 400-120-84-10), batch 64 of 28 x 28 images, float32, the step of (b).
(d) the character-level LSTM of PyTorch's tutorials: Embedding(65, 32), a two-layer LSTM(32, 128,
    batch_first), Linear(128, 65); batch 32 of 35 characters, float32, CrossEntropyLoss over every
    position, Adam.

Both engines start from the same weights (PyTorch's initialisation copied into tapegrad) and
the same data; their first losses must agree (rtol 1e-4 in float32) and their final ones stay
within 10% (float32 rounding drifts the runs apart over many steps). The engines
alternate, ROUNDS rounds of STEPS steps each after warm-up; the table gives the median and the
minimum over all rounds of the per-step times, and the ratio PyTorch / tapegrad of the
medians (above 1: tapegrad is faster). PyTorch runs with torch.set_num_threads(2), the
machine's cores; tapegrad's matrix products use OpenBLAS with its default threads.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch

import tapegrad as tg
from machine import cpu_model


def loop_step(lib: Any, d: Dict[str, Any]) -> Callable[[], float]:
    nn, optim = lib.nn, lib.optim
    model = d["model"]
    opt = optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    X, y = d["X"], d["y"]

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(X).squeeze(1), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        return loss

    return step


def mlp_step(lib: Any, d: Dict[str, Any]) -> Callable[[], float]:
    nn, optim = lib.nn, lib.optim
    model = d["model"]
    opt = optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    X, y = d["X"], d["y"]

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        return loss

    return step


def mlp(nn: Any, sizes: List[int]) -> Any:
    layers: List[Any] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def lenet(nn: Any) -> Any:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def char_lstm(nn: Any) -> Any:
    class CharLSTM(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(65, 32)
            self.lstm = nn.LSTM(32, 128, num_layers=2, batch_first=True)
            self.head = nn.Linear(128, 65)

        def forward(self, x: Any) -> Any:
            out, _ = self.lstm(self.embed(x))
            return self.head(out)

    return CharLSTM()


def seq_step(lib: Any, d: Dict[str, Any]) -> Callable[[], float]:
    model, X, y = d["model"], d["X"], d["y"]
    opt = lib.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = lib.nn.CrossEntropyLoss()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(X).reshape(-1, 65), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    return step


def setup(lib: Any, build: Callable[[Any], Any], X: np.ndarray, y: np.ndarray,
          state: Dict[str, np.ndarray]) -> Dict[str, Any]:
    model = build(lib.nn)
    model.load_state_dict({k: lib.tensor(v) for k, v in state.items()})
    return dict(model=model, X=lib.tensor(X), y=lib.tensor(y))


def workload(name: str, make: Callable[[Any, Dict[str, Any]], Callable[[], Any]], build: Callable[[Any], Any],
             shape: Tuple[int, ...], classes: int, labels: str, steps: int,
             rounds: int) -> Tuple[str, Dict[str, List[float]]]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal(shape).astype(np.float32)
    if labels == "xor":
        y = (X[:, 0] * X[:, 1] > 0).astype(np.float32)
    elif labels == "text":
        X = rng.integers(0, classes, shape)
        y = np.roll(X, -1, axis=1)
    else:
        y = rng.integers(0, classes, shape[0])
    torch.manual_seed(0)  # the initial weights: PyTorch's initialisation, copied into both engines
    state = {k: v.detach().numpy().copy() for k, v in build(torch.nn).state_dict().items()}
    runs = {lib.__name__: make(lib, setup(lib, build, X, y, state)) for lib in (tg, torch)}
    times: Dict[str, List[float]] = {k: [] for k in runs}
    last: Dict[str, float] = {}
    first = {k: float(step().item()) for k, step in runs.items()}  # (the same weights and data: the same loss)
    for _ in range(2):  # warm-up
        for step in runs.values():
            step()
    for _ in range(rounds):
        for k, step in runs.items():
            gc.collect()
            for _ in range(steps):
                t0 = time.perf_counter()
                loss = step()
                times[k].append(time.perf_counter() - t0)
            last[k] = float(loss.item())
    a, b = first["tapegrad"], first["torch"]
    assert abs(a - b) <= 1e-4 * max(1.0, abs(b)), f"{name}: first losses differ: tapegrad {a}, torch {b}"
    # (after many float32 steps the runs drift apart by rounding: the LSTM's by a few percent in 70 steps)
    a, b = last["tapegrad"], last["torch"]
    assert abs(a - b) <= 0.1 * max(1.0, abs(b)), f"{name}: final losses differ: tapegrad {a}, torch {b}"
    return name, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tg.set_default_dtype(tg.float32)
    torch.set_num_threads(2)
    steps, rounds = (20, 2) if args.quick else (100, 7)
    print(f"machine: {cpu_model()}, {platform.system()} {platform.release()}; CPython {platform.python_version()}, "
          f"numpy {np.__version__}, torch {torch.__version__}, tapegrad {tg.__version__} ({tg.gemm_backend()})")
    print(f"{rounds} alternated rounds of {steps} steps per engine\n")
    print("| workload | tapegrad median (min) | PyTorch median (min) | PyTorch / tapegrad |")
    print("|---|---|---|---|")
    for name, make, build, shape, classes, labels, n in [
        ("(a) issue 11's loop: 2-16-1, batch 256, BCEWithLogits, Adam, clip_grad_norm_", loop_step,
         lambda nn: mlp(nn, [2, 16, 1]), (256, 2), 1, "xor", steps),
        ("(b) MLP 784-256-256-10, batch 128, CrossEntropyLoss, SGD", mlp_step, lambda nn: mlp(nn, [784, 256, 256, 10]),
         (128, 784), 10, "classes", steps),
        ("(c) LeNet-5, batch 64 of 1 x 28 x 28, CrossEntropyLoss, SGD", mlp_step, lenet, (64, 1, 28, 28), 10, "classes",
         max(steps // 5, 4)),
        ("(d) char LSTM: Embedding 65-32, LSTM 32-128 x 2 layers, batch 32 x 35, Adam", seq_step, char_lstm, (32, 35),
         65, "text", max(steps // 10, 2)),
    ]:
        _, times = workload(name, make, build, shape, classes, labels, n, rounds)
        med = {k: statistics.median(v) for k, v in times.items()}
        cell = {k: f"{med[k] * 1e6:.1f} µs ({min(v) * 1e6:.1f})" for k, v in times.items()}
        print(f"| {name} | {cell['tapegrad']} | {cell['torch']} | {med['torch'] / med['tapegrad']:.2f} |")


if __name__ == "__main__":
    main()
