#!/usr/bin/env python3
"""Checkpointing (issue 12, part 5): memory and time of a deep MLP, plain and checkpointed, on
tapegrad and on PyTorch.

    python bench/bench_checkpoint.py            # prints a markdown table
    python bench/bench_checkpoint.py --quick    # smoke run (one timed round)

The model: 32 layers ``Linear(1024, 1024)`` + ``Tanh``, batch 256, float32 in both engines,
the same weights (N(0, 1/1024) drawn by NumPy, copied into both) and the same data; one step
is ``zero_grad(set_to_none=False)``, forward, ``loss = y.sum()``, backward. Four
configurations: each engine plain, and each with ``checkpoint_sequential(model, 8, x)``
(PyTorch: ``torch.utils.checkpoint.checkpoint_sequential(..., use_reentrant=False)``; both
split 64 modules into 8 chunks of 8 and checkpoint all but the last).

Memory: each configuration runs one step in a fresh child process (so peaks do not mix): a
small model first, in the same configuration (BLAS buffers, lazy imports), then the big one
with its ``.grad`` already allocated (as a loop with ``zero_grad(set_to_none=False)`` has it:
the gradients are not part of the figure); then the peak RSS is reset
(``/proc/self/clear_refs``) and the step's peak RSS increase is VmHWM after it minus VmRSS
before it. The children run with ``MALLOC_MMAP_THRESHOLD_=131072`` (glibc's default threshold,
fixed: not raised as blocks are freed), so that every block of 128 KiB or more is its own
mapping, returned at once when freed, and RSS follows the live bytes (with the dynamic
threshold the same PyTorch step measured 40 or 82 MiB by the heap's history); tapegrad's
own block cache keeps what it keeps. For tapegrad the child also counts the bytes the tapes'
tensor records keep alive (values; a leaf's data excluded), by walking the graph: the graph
after the forward, the forward's segment tapes still alive then, and the peak of what is alive
together during the backward (the graph, live segment tapes, the segment being recomputed).

Time: in this process, the four configurations alternate, 10 rounds (``--rounds``) of one step each after
one warm-up step each; min and median per step. PyTorch runs with torch.set_num_threads(2),
the machine's cores; tapegrad's matrix products use OpenBLAS with its default threads. The
children report the loss and gradient norms, which must agree (exactly between tapegrad's
plain and checkpointed runs, to 1e-3 between the engines).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import weakref
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

LAYERS, WIDTH, BATCH, SEGMENTS = 32, 1024, 256, 8
CONFIGS: List[Tuple[str, str]] = [("tapegrad", "plain"), ("torch", "plain"), ("tapegrad", "checkpoint"),
                                  ("torch", "checkpoint")]


def state_dict() -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    state: Dict[str, np.ndarray] = {}
    for k in range(LAYERS):
        state[f"{2 * k}.weight"] = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        state[f"{2 * k}.bias"] = (0.1 * rng.standard_normal(WIDTH)).astype(np.float32)
    return state


def data() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((BATCH, WIDTH)).astype(np.float32)


def setup(engine: str, layers: int = LAYERS, width: int = WIDTH, batch: int = BATCH,
          state: Dict[str, np.ndarray] | None = None, x: np.ndarray | None = None) -> Tuple[Any, Any, Any]:
    """(lib, model, x) for the engine, float32."""
    if engine == "tapegrad":
        import tapegrad as lib

        lib.set_default_dtype(lib.float32)
    else:
        import torch as lib

        lib.set_num_threads(2)
    mods: List[Any] = []
    for _ in range(layers):
        mods += [lib.nn.Linear(width, width), lib.nn.Tanh()]
    model = lib.nn.Sequential(*mods)
    if state is not None:  # copied in place, without temporaries of the engine's own (see child())
        model.load_state_dict(state if engine == "tapegrad" else {k: lib.from_numpy(v) for k, v in state.items()})
    if x is None:
        x = np.random.default_rng(2).standard_normal((batch, width)).astype(np.float32)
    return lib, model, lib.tensor(x)


def forward(engine: str, mode: str, model: Any, functions: Any, x: Any) -> Any:
    if mode == "plain":
        return model(x)
    if engine == "tapegrad":
        from tapegrad.utils.checkpoint import checkpoint_sequential

        return checkpoint_sequential(functions, SEGMENTS, x)
    from torch.utils.checkpoint import checkpoint_sequential as torch_checkpoint_sequential

    return torch_checkpoint_sequential(functions, SEGMENTS, x, use_reentrant=False)


def make_step(engine: str, mode: str, model: Any, x: Any) -> Callable[[], float]:
    def step() -> float:
        model.zero_grad(set_to_none=False)  # (the first step allocates .grad, the others add into it)
        loss = forward(engine, mode, model, model, x).sum()
        loss.backward()
        return float(loss.item())

    return step


# --- a child: one configuration's memory ---------------------------------------------------------


def proc_status() -> Dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def saved_bytes(y: Any) -> int:
    """Bytes of the values the tensor records of y's graph keep alive, leaves' data excluded (the
    graph is walked; during the backward, when each record's saved values go as the sweep passes
    it, the graph's tape's stats()["saved_bytes"] is read instead)."""
    import tapegrad as tg

    return sum(r["value"].nbytes for r in tg._core._graph(y, grads=False)
               if not r["leaf"] and isinstance(r["value"], tg.Tensor))


def child(engine: str, mode: str) -> Dict[str, Any]:
    # warm-up on a small model, the same configuration: BLAS buffers, lazy imports (PyTorch's first
    # checkpoint imports modules worth about 65 MiB of RSS)
    lib, small, xs = setup(engine, layers=SEGMENTS, width=64, batch=16)
    forward(engine, mode, small, small, xs).sum().backward()
    del small, xs
    state = state_dict()
    lib, model, x = setup(engine, state=state, x=data())
    params = list(model.parameters())
    functions: Any = model
    info: Dict[str, Any] = {}
    probes: List[Dict[str, Any]] = []
    if engine == "tapegrad":
        import tapegrad as tg

        graph_tape = tg.active_tape()
        phase = {"now": "forward", "y": None}
        layers = list(model.children())
        size = len(layers) // SEGMENTS

        def probe(layer: Any) -> Callable[[Any], Any]:
            def run(h: Any) -> Any:
                h = layer(h)
                tape = tg.active_tape()
                if tape is not graph_tape:  # a checkpointed segment's own tape
                    alive = [p["unique"] for p in probes if p["tape"]() is not None]
                    b = saved_bytes(h)
                    probes.append(dict(phase=phase["now"], tape=weakref.ref(tape), bytes=b, alive=alive,
                                       unique=b - (h.nbytes if phase["now"] == "forward" else 0),
                                       graph=graph_tape.stats()["saved_bytes"] if phase["y"] is not None else 0))
                return h

            return run

        functions = [probe(m) if k % size == size - 1 else m for k, m in enumerate(layers)]
    for p in params:  # .grad exists before the step (zero_grad(set_to_none=False) in a loop): not measured
        p.grad = lib.zeros_like(p)
    del state
    gc.collect()
    try:  # memory freed during the setup goes back to the system: the step must not reuse it unseen
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # VmHWM := VmRSS
    except OSError:
        pass
    before = proc_status()
    t0 = time.perf_counter()
    y = forward(engine, mode, model, functions, x)
    if engine == "tapegrad":
        gc.collect()
        info["graph_after_forward"] = saved_bytes(y)
        info["forward_tapes_alive"] = sum(p["unique"] for p in probes if p["tape"]() is not None)
        phase["now"], phase["y"] = "backward", y
    loss = y.sum()
    loss.backward()
    seconds = time.perf_counter() - t0
    after = proc_status()
    if engine == "tapegrad":
        phase["y"] = None
        recomputes = [p for p in probes if p["phase"] == "backward"]
        info["segment_max"] = max((p["bytes"] for p in recomputes), default=0)
        info["peak_together"] = max([info["graph_after_forward"] + info["forward_tapes_alive"],
                                     *(p["graph"] + sum(p["alive"]) + p["bytes"] for p in recomputes)])
    grads = [p.grad.detach().numpy() if engine == "torch" else p.grad.numpy() for p in params]
    info.update(
        engine=engine, mode=mode, seconds=seconds, loss=float(loss.item()),
        rss_before=before["VmRSS"], peak_increase=after["VmHWM"] - before["VmRSS"],
        grad_bytes=sum(g.nbytes for g in grads),
        grad_norms=[float(np.linalg.norm(grads[k].astype(np.float64))) for k in (0, 1, 2 * LAYERS // 2, -2, -1)],
    )
    return info


def run_child(engine: str, mode: str) -> Dict[str, Any]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", engine, mode], capture_output=True,
                          text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child {engine} {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the parent: children for memory, then alternated timing -------------------------------------


def timing(rounds: int) -> Dict[Tuple[str, str], List[float]]:
    state, x = state_dict(), data()
    built = {engine: setup(engine, state=state, x=x) for engine in ("tapegrad", "torch")}
    steps = {(e, m): make_step(e, m, built[e][1], built[e][2]) for e, m in CONFIGS}
    for step in steps.values():  # warm-up
        step()
    times: Dict[Tuple[str, str], List[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, step in steps.items():
            gc.collect()
            t0 = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    import torch

    import tapegrad as tg
    from machine import cpu_model

    rounds = args.rounds or (1 if args.quick else 10)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
          f"CPython {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"tapegrad {tg.__version__} ({tg.gemm_backend()})")
    print(f"{LAYERS} x Linear({WIDTH}, {WIDTH}) + Tanh, batch {BATCH}, float32, {SEGMENTS} segments; "
          f"memory: one step per fresh process; time: {rounds} alternated rounds of one step\n")
    mem = {(e, m): run_child(e, m) for e, m in CONFIGS}

    # the same computation everywhere
    ref = mem[("tapegrad", "plain")]
    for k, r in mem.items():
        exact = k[0] == "tapegrad"
        for a, b in zip([r["loss"], *r["grad_norms"]], [ref["loss"], *ref["grad_norms"]]):
            assert (a == b) if exact else abs(a - b) <= 1e-3 * max(abs(b), 1e-30), (k, r["loss"], r["grad_norms"],
                                                                                    ref["loss"], ref["grad_norms"])

    times = timing(rounds)
    mib = 2.0**20
    print("| configuration | peak RSS increase in one step | tape bytes after the forward: graph + forward "
          "segment tapes alive | tape bytes, peak alive together | time per step, median (min) |")
    print("|---|---:|---:|---:|---:|")
    for e, m in CONFIGS:
        r = mem[(e, m)]
        name = f"{'tapegrad' if e == 'tapegrad' else 'PyTorch'} {m}" + (f" ({SEGMENTS} segments)" if m != "plain"
                                                                        else "")
        after = (f"{r['graph_after_forward'] / mib:.1f} + {r['forward_tapes_alive'] / mib:.1f} MiB"
                 if e == "tapegrad" else "—")
        together = f"{r['peak_together'] / mib:.1f} MiB" if e == "tapegrad" else "—"
        ts = times[(e, m)]
        print(f"| {name} | {r['peak_increase'] / mib:.1f} MiB | {after} | {together} | "
              f"{statistics.median(ts) * 1e3:.0f} ms ({min(ts) * 1e3:.0f}) |")
    print()
    for e in ("tapegrad", "torch"):
        p, c = mem[(e, "plain")], mem[(e, "checkpoint")]
        tp, tc = statistics.median(times[(e, "plain")]), statistics.median(times[(e, "checkpoint")])
        line = (f"{e}: checkpointed / plain: peak RSS increase {c['peak_increase'] / p['peak_increase']:.3f}, "
                f"time {tc / tp:.2f}")
        if e == "tapegrad":
            plain_graph = p["graph_after_forward"]
            kept = (c["graph_after_forward"] + c["forward_tapes_alive"]) / plain_graph
            line += (f", tape bytes after forward {kept:.3f}, peak alive together "
                     f"{c['peak_together'] / p['peak_together']:.3f} (graph alone "
                     f"{c['graph_after_forward'] / plain_graph:.3f}, one segment tape "
                     f"{c['segment_max'] / plain_graph:.3f})")
        print(line)


if __name__ == "__main__":
    main()
