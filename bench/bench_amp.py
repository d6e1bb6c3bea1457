#!/usr/bin/env python3
"""Mixed precision (issue 12, part 6): saved-activation bytes and time of one training step of
the MLP 784-256-256-10 at batch 1024, in float32 and under bfloat16 autocast, on tapegrad and on
PyTorch.

    python bench/bench_amp.py            # prints a markdown table
    python bench/bench_amp.py --quick    # smoke run (two timed rounds)

Both engines hold the same float32 weights (drawn by NumPy, copied into both) and data. A step
is ``zero_grad()``, the forward and ``cross_entropy`` (under ``autocast(dtype=bfloat16)`` for
the mixed configurations), ``backward()``, ``SGD.step()``.

Saved-activation bytes are what the graph keeps alive for the backward, after the forward:
tapegrad's ``Tape.stats()['saved_bytes']`` (every record's value and the values its rule saved,
each storage once, parameters excluded); PyTorch's through
``torch.autograd.graph.saved_tensors_hooks``, summing the distinct storages of the saved
tensors (parameters excluded). The two measures differ in what they see (tapegrad's records
keep their outputs even where no rule reads them), so compare the ratios mixed / float32.

Time: the four configurations alternate, 20 rounds (``--rounds``) of one step each after a
warm-up step each; min and median per step. PyTorch runs with torch.set_num_threads(2).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

SIZES, BATCH = (784, 256, 256, 10), 1024
CONFIGS: List[Tuple[str, bool]] = [("tapegrad", False), ("torch", False), ("tapegrad", True), ("torch", True)]


def weights() -> List[Tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.normal(0, 1 / np.sqrt(i), (o, i)).astype(np.float32), np.zeros(o, np.float32))
            for i, o in zip(SIZES[:-1], SIZES[1:])]


def data() -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(BATCH, SIZES[0])).astype(np.float32), rng.integers(0, SIZES[-1], BATCH)


def setup(engine: str, mixed: bool) -> Tuple[Callable[[], float], Callable[[], int]]:
    """(one training step, the saved bytes of one forward) for a configuration."""
    X, y = data()
    if engine == "tapegrad":
        import tapegrad as tg
        from tapegrad import nn

        layers: List[Any] = []
        for w, b in weights():
            lin = nn.Linear(w.shape[1], w.shape[0]).float()
            lin.weight.data, lin.bias.data = tg.tensor(w), tg.tensor(b)
            layers += [lin, nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        opt = tg.optim.SGD(model.parameters(), lr=0.01)
        xt, yt = tg.tensor(X), tg.tensor(y)

        def forward() -> Any:
            with tg.autocast(dtype=tg.bfloat16, enabled=mixed):
                return nn.functional.cross_entropy(model(xt), yt)

        def saved() -> int:
            tape = tg.Tape()
            with tape:
                loss = forward()  # (held: the graph lives while its result does)
                n = int(tape.stats()["saved_bytes"])
                del loss
                return n
    else:
        import torch

        torch.set_num_threads(2)
        tlayers: List[Any] = []
        for w, b in weights():
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
            tlayers += [lin, torch.nn.ReLU()]
        model = torch.nn.Sequential(*tlayers[:-1])
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}

        def forward() -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
                return torch.nn.functional.cross_entropy(model(xt), yt)

        def saved() -> int:
            seen: Dict[int, int] = {}

            def pack(t: Any) -> Any:
                s = t.untyped_storage()
                if s.data_ptr() not in params:
                    seen[s.data_ptr()] = max(seen.get(s.data_ptr(), 0), s.nbytes())
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                forward()
            return sum(seen.values())

    def step() -> float:
        opt.zero_grad()
        loss = forward()
        loss.backward()
        opt.step()
        return float(loss.item())

    return step, saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    import torch

    import tapegrad as tg
    from machine import cpu_model

    rounds = args.rounds or (2 if args.quick else 20)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
          f"CPython {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"tapegrad {tg.__version__} ({tg.gemm_backend()})")
    print(f"MLP {'-'.join(map(str, SIZES))} (Linear + ReLU), batch {BATCH}, float32 weights, cross_entropy, SGD; "
          f"{rounds} alternated rounds of one step\n")
    runs = {c: setup(*c) for c in CONFIGS}
    saved = {c: runs[c][1]() for c in CONFIGS}
    losses = {c: runs[c][0]() for c in CONFIGS}  # (warm-up)
    times: Dict[Tuple[str, bool], List[float]] = {c: [] for c in CONFIGS}
    for _ in range(rounds):
        for c in CONFIGS:
            t0 = time.perf_counter()
            runs[c][0]()
            times[c].append(time.perf_counter() - t0)
    for mixed in (False, True):  # the same computation in both engines
        a, b = losses[("tapegrad", mixed)], losses[("torch", mixed)]
        assert abs(a - b) <= (2e-2 if mixed else 1e-4) * abs(b), (mixed, a, b)
    print("| configuration | saved-activation bytes after the forward | mixed / float32 | first loss | "
          "time per step, median (min) |")
    print("|---|---:|---:|---:|---:|")
    for e, mixed in CONFIGS:
        ratio = saved[(e, mixed)] / saved[(e, False)]
        ts = times[(e, mixed)]
        name = f"{'tapegrad' if e == 'tapegrad' else 'PyTorch'} {'bfloat16 autocast' if mixed else 'float32'}"
        print(f"| {name} | {saved[(e, mixed)] / 2**20:.2f} MiB | {ratio:.3f} | {losses[(e, mixed)]:.5f} | "
              f"{statistics.median(ts) * 1e3:.2f} ms ({min(ts) * 1e3:.2f}) |")
    print()
    for mixed in (False, True):
        tt, tp = statistics.median(times[("tapegrad", mixed)]), statistics.median(times[("torch", mixed)])
        print(f"{'bfloat16 autocast' if mixed else 'float32'}: PyTorch / tapegrad time per step (median) "
              f"{tp / tt:.2f}")


if __name__ == "__main__":
    main()
