#!/usr/bin/env python3
"""Scalar autodiff, side by side in one process: tapegrad vs micrograd (vs PyTorch).

    python bench/bench_scalar.py                 # full run, prints a markdown table
    python bench/bench_scalar.py --quick         # smoke run: smaller sizes, fewer repeats
    python bench/bench_scalar.py --json out.json # also write the results as JSON

(a) micrograd's demo (demo.ipynb): two moons, 100 points, MLP(2, [16, 16, 1]),
    max-margin loss + 1e-4 * sum(p*p), SGD with lr = 1.0 - 0.9*k/100. micrograd's
    MLP is built (random.seed(1337), as the demo) and its weights copied into a
    tapegrad MLP; each engine then trains from those weights. Timed: one full step
    (loss forward over all points incl. accuracy, zero_grad, backward, SGD update).
    The first steps are warm-up; the median over the rest is reported. All
    micrograd steps run first, then (after gc.collect()) all tapegrad steps, so
    that neither pays for the other's garbage. The losses must agree to 1e-9 at
    every step and the gradients to 1e-9 relative, or the script aborts.
(b) a scalar expression of N terms over N leaves, built from Python and
    backpropagated (timed together, leaf creation included; teardown of the graph
    is outside the timer and gc.collect() runs before every repeat):
        f = sum_i relu(x_i*x_j - 0.5*x_i) + (x_i - x_j)**2 / (1 + x_j**2),  j = (i+1) % N
    It uses only ops that PyPI micrograd 0.1.0's Value has (+ - * / ** number, relu;
    that release has no tanh/exp). Engines: micrograd Value, tapegrad Var, PyTorch
    0-d float64 tensors with requires_grad (torch.set_num_threads(2)). The values
    and all N gradients must agree to 1e-9 relative, or the script aborts.

The Python cyclic GC is left on with its default thresholds: micrograd's closures
make reference cycles, and collecting them is part of what a micrograd user pays.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import micrograd.nn as mgnn  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from micrograd.engine import Value as MGValue  # noqa: E402

import tapegrad as tg  # noqa: E402
import tapegrad.nn as tgnn  # noqa: E402
from common import allclose_rel, copy_weights, max_rel_diff, moons_lists, svm_loss  # noqa: E402
from machine import cpu_model  # noqa: E402

# micrograd's backward() sorts its graph with a recursive DFS: depth ~ graph depth.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 1_000_000))

LOSS_ATOL = 1e-9
GRAD_RTOL = 1e-9
GRAD_ATOL = 1e-12


class Disagreement(RuntimeError):
    pass


def fail(msg: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\nDISAGREEMENT: {msg}\n{bar}", file=sys.stderr, flush=True)
    raise Disagreement(msg)


# ----------------------------------------------------------------------------- header

def versions() -> dict:
    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "python": platform.python_version(),
        "tapegrad": tg.__version__,
        "micrograd": dist("micrograd"),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def header_info() -> dict:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "processor": platform.processor() or "(empty)",
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "gc_thresholds": list(gc.get_threshold()),
        "command": " ".join(["python"] + sys.argv),
    }


# ----------------------------------------------------------------------------- (a) demo

def train_step(model, X, y, value, k: int):
    total_loss, acc = svm_loss(model, X, y, value)
    model.zero_grad()
    total_loss.backward()
    learning_rate = 1.0 - 0.9 * k / 100
    for p in model.parameters():
        p.data -= learning_rate * p.grad
    return total_loss.data, acc


def run_engine_steps(model, X, y, value, steps: int):
    """Train `steps` steps; per step: (seconds, loss, accuracy, grads before the update)."""
    out = []
    params = model.parameters()
    for k in range(steps):
        t0 = time.perf_counter()
        loss, acc = train_step(model, X, y, value, k)
        dt = time.perf_counter() - t0
        out.append((dt, float(loss), float(acc), [float(p.grad) for p in params]))
    return out


def bench_demo(n_points: int, warmup: int, timed: int, seed: int) -> dict:
    X, y = moons_lists(n_points, 0.1, seed)
    random.seed(seed)
    mg_model = mgnn.MLP(2, [16, 16, 1])
    tg_model = tgnn.MLP(2, [16, 16, 1])
    copy_weights(mg_model, tg_model)
    w_ok, _ = allclose_rel([p.data for p in mg_model.parameters()], [p.data for p in tg_model.parameters()], 0.0, 0.0)
    if not w_ok:
        fail("(a) weights differ after copy_weights")

    steps = warmup + timed
    gc.collect()
    mg = run_engine_steps(mg_model, X, y, MGValue, steps)
    gc.collect()
    tgr = run_engine_steps(tg_model, X, y, tg.Var, steps)
    gc.collect()

    max_loss_diff = 0.0
    max_grad_rel = 0.0
    for k, (m, t) in enumerate(zip(mg, tgr)):
        dl = abs(m[1] - t[1])
        max_loss_diff = max(max_loss_diff, dl)
        if not dl <= LOSS_ATOL:
            fail(f"(a) step {k}: loss micrograd={m[1]!r} tapegrad={t[1]!r} (|diff|={dl:.3e} > {LOSS_ATOL})")
        ok, i = allclose_rel(m[3], t[3], GRAD_RTOL, GRAD_ATOL)
        max_grad_rel = max(max_grad_rel, max_rel_diff(m[3], t[3]))
        if not ok:
            fail(f"(a) step {k}: gradient of parameter {i}: micrograd={m[3][i]!r} tapegrad={t[3][i]!r}")
        if m[2] != t[2]:
            fail(f"(a) step {k}: accuracy micrograd={m[2]} tapegrad={t[2]}")
    mg_t = [s[0] for s in mg[warmup:]]
    tg_t = [s[0] for s in tgr[warmup:]]
    mg_ms = statistics.median(mg_t) * 1e3
    tg_ms = statistics.median(tg_t) * 1e3
    return {
        "name": f"(a) micrograd demo training step ({n_points} moons, MLP(2,[16,16,1]))",
        "n_points": n_points,
        "n_params": len(mg_model.parameters()),
        "warmup_steps": warmup,
        "timed_steps": timed,
        "micrograd_ms": mg_ms,
        "tapegrad_ms": tg_ms,
        "torch_ms": None,
        "micrograd_over_tapegrad": mg_ms / tg_ms,
        "torch_over_tapegrad": None,
        "repeats": {"micrograd": timed, "tapegrad": timed},
        "micrograd_step_s": [s[0] for s in mg],
        "tapegrad_step_s": [s[0] for s in tgr],
        "losses": [s[1] for s in mg],
        "accuracies": [s[2] for s in mg],
        "max_abs_loss_diff": max_loss_diff,
        "max_rel_grad_diff": max_grad_rel,
        "tape_stats_after": dict(tg.active_tape().stats()),
    }


# ----------------------------------------------------------------------------- (b) expression

def expr_generic(xs: list, value):
    """Leaves from floats, f = sum of N terms; returns (leaves, f)."""
    v = [value(x) for x in xs]
    n = len(v)
    f = None
    for i in range(n):
        a, b = v[i], v[(i + 1) % n]
        t = (a * b - 0.5 * a).relu() + (a - b) ** 2 / (1 + b ** 2)
        f = t if f is None else f + t
    return v, f


def torch_leaf(x: float):
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


def run_expr(engine: str, xs: list):
    """One timed build+backward. Returns (seconds, f, grads, extra)."""
    value = {"micrograd": MGValue, "tapegrad": tg.Var, "torch": torch_leaf}[engine]
    gc.collect()
    t0 = time.perf_counter()
    leaves, f = expr_generic(xs, value)
    f.backward()
    dt = time.perf_counter() - t0
    if engine == "torch":
        fval = f.item()
        grads = [x.grad.item() for x in leaves]
    else:
        fval = float(f.data)
        grads = [float(x.grad) for x in leaves]
    extra = {}
    if engine == "tapegrad":
        extra["tape_records"] = tg.active_tape().stats()["records"]
    del leaves, f
    gc.collect()
    return dt, fval, grads, extra


def micrograd_nodes(xs: list) -> int:
    _, f = expr_generic(xs, MGValue)
    seen, stack = {id(f)}, [f]
    while stack:
        v = stack.pop()
        for c in v._prev:
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
    del f
    gc.collect()
    return len(seen)


def bench_expr(n: int, repeats: int, slow_repeats: int, seed: int) -> dict:
    xs = [float(v) for v in np.random.RandomState(seed).uniform(-1.0, 1.0, n)]
    res = {}
    for engine in ("micrograd", "tapegrad", "torch"):
        dt0, fval, grads, extra = run_expr(engine, xs)  # warm-up; its results are checked
        reps = slow_repeats if dt0 > 1.0 else repeats
        times = [run_expr(engine, xs)[0] for _ in range(reps)]
        res[engine] = {"warmup_s": dt0, "times_s": times, "median_ms": statistics.median(times) * 1e3,
                       "f": fval, "grads": grads, **extra}

    ref = res["tapegrad"]
    checks = {}
    for other in ("micrograd", "torch"):
        o = res[other]
        ok, _ = allclose_rel([o["f"]], [ref["f"]], GRAD_RTOL, GRAD_ATOL)
        if not ok:
            fail(f"(b) f: {other}={o['f']!r} tapegrad={ref['f']!r}")
        ok, i = allclose_rel(o["grads"], ref["grads"], GRAD_RTOL, GRAD_ATOL)
        if not ok:
            fail(f"(b) gradient {i}: {other}={o['grads'][i]!r} tapegrad={ref['grads'][i]!r}")
        checks[other] = {"f_rel_diff": max_rel_diff([o["f"]], [ref["f"]]),
                         "max_rel_grad_diff": max_rel_diff(o["grads"], ref["grads"])}
    tg_ms = ref["median_ms"]
    out = {
        "name": f"(b) {n:,}-term scalar expression, build + backward",
        "n_terms": n,
        "expression": "sum_i relu(x_i*x_j - 0.5*x_i) + (x_i - x_j)**2 / (1 + x_j**2), j=(i+1)%N",
        "micrograd_ms": res["micrograd"]["median_ms"],
        "tapegrad_ms": tg_ms,
        "torch_ms": res["torch"]["median_ms"],
        "micrograd_over_tapegrad": res["micrograd"]["median_ms"] / tg_ms,
        "torch_over_tapegrad": res["torch"]["median_ms"] / tg_ms,
        "repeats": {e: len(res[e]["times_s"]) for e in res},
        "times_s": {e: res[e]["times_s"] for e in res},
        "warmup_s": {e: res[e]["warmup_s"] for e in res},
        "f": ref["f"],
        "checks_vs_tapegrad": checks,
        "tape_records": ref.get("tape_records"),
        "micrograd_nodes": micrograd_nodes(xs),
    }
    return out


# ----------------------------------------------------------------------------- report

def fmt_ms(v) -> str:
    if v is None:
        return "—"
    return f"{v:,.1f}" if v >= 10 else f"{v:.3g}"


def fmt_ratio(v) -> str:
    return "—" if v is None else f"{v:,.1f}×"


def print_report(info: dict, rows: list) -> None:
    v = info["versions"]
    print(f"# tapegrad scalar benchmark — {info['date']}")
    print(f"python {info['python']} | processor: {info['processor']} | CPU: {info['cpu_model']} "
          f"({info['cpus']} logical CPUs, {info['machine']}) | tapegrad {v['tapegrad']}, micrograd {v['micrograd']}, "
          f"torch {v['torch']} ({info['torch_threads']} threads), numpy {v['numpy']} | gc on {tuple(info['gc_thresholds'])}")
    print(f"command: {info['command']}")
    print()
    print("| benchmark | micrograd ms | tapegrad ms | torch ms | micrograd/tapegrad | torch/tapegrad | repeats (mg/tg/torch) | agreement |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        rep = r["repeats"]
        reps = "/".join(str(rep.get(e, "—")) for e in ("micrograd", "tapegrad", "torch"))
        if "max_abs_loss_diff" in r:
            agree = f"loss Δ≤{r['max_abs_loss_diff']:.1e}, grad rel Δ≤{r['max_rel_grad_diff']:.1e} (all {r['warmup_steps'] + r['timed_steps']} steps)"
        else:
            c = r["checks_vs_tapegrad"]
            agree = (f"grad rel Δ≤{c['micrograd']['max_rel_grad_diff']:.1e} (mg), "
                     f"{c['torch']['max_rel_grad_diff']:.1e} (torch)")
        print(f"| {r['name']} | {fmt_ms(r['micrograd_ms'])} | {fmt_ms(r['tapegrad_ms'])} | {fmt_ms(r['torch_ms'])} | "
              f"{fmt_ratio(r['micrograd_over_tapegrad'])} | {fmt_ratio(r['torch_over_tapegrad'])} | {reps} | {agree} |")
    print()
    for r in rows:
        if "max_abs_loss_diff" in r:
            print(f"(a) median ms per step over {r['timed_steps']} steps after {r['warmup_steps']} warm-up steps; "
                  f"{r['n_params']} parameters; losses {r['losses'][0]:.6f} → {r['losses'][-1]:.6f}, "
                  f"accuracy {r['accuracies'][0]:.2f} → {r['accuracies'][-1]:.2f}; "
                  f"tapegrad step ms min/max {min(r['tapegrad_step_s'][r['warmup_steps']:]) * 1e3:.2f}/"
                  f"{max(r['tapegrad_step_s'][r['warmup_steps']:]) * 1e3:.2f}")
        else:
            print(f"(b) f = {r['expression']}; median ms of build+backward after 1 warm-up; "
                  f"{r['micrograd_nodes']:,} micrograd nodes, {r['tape_records']:,} tapegrad tape records")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: smaller sizes, fewer repeats (still checks agreement)")
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH")
    ap.add_argument("--seed", type=int, default=1337, help="seed of data and weights (default 1337, as micrograd's demo)")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    info = header_info()
    if args.quick:
        demo_cfg = dict(n_points=40, warmup=1, timed=3)
        expr_cfg = dict(n=2_000, repeats=3, slow_repeats=2)
    else:
        demo_cfg = dict(n_points=100, warmup=2, timed=8)
        expr_cfg = dict(n=20_000, repeats=7, slow_repeats=3)
    info["quick"] = args.quick

    try:
        rows = [bench_demo(seed=args.seed, **demo_cfg), bench_expr(seed=args.seed, **expr_cfg)]
    except Disagreement:
        return 2

    print_report(info, rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"info": info, "results": rows}, fh, indent=1)
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
