"""The main job: train a small multilayer perceptron on two moons, twice.

    python -m tapegrad.demo [--steps 100] [--seed 1337] [--plot moons.png]

Part 1 is micrograd's demo, written with tapegrad's scalar ``Var`` (the code reads exactly
as it would with micrograd's ``Value``). Part 2 trains the same data with PyTorch-style
code on tensors: ``nn.Sequential``, ``optim.Adam`` and the same max-margin loss. Each part
prints loss, accuracy and its time per step. Part 3 trains part 2's model in float32 twice, plainly
and under ``tapegrad.autocast(dtype=bfloat16)`` with a ``GradScaler``, and compares their
accuracy and the bytes their graphs saved. ``--plot FILE.png`` draws both models' decision
boundaries as micrograd's notebook does (needs matplotlib: ``pip install tapegrad[plot]``), and
next to it, in ``FILE_neuron.png``, the graph of one neuron of part 1's trained model on one
point, with its values and gradients, as micrograd's ``draw_dot`` draws it (``tapegrad.viz``;
needs Graphviz: ``pip install tapegrad[viz]`` and ``apt-get install graphviz``; without it the
demo says so and goes on).
"""

from __future__ import annotations

import argparse
import os
import random
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from . import amp, nn, optim, viz
from ._core import Tape, Tensor, Var
from ._dtypes import bfloat16
from ._tensor import float32, no_grad, tensor


def make_moons(n: int = 100, noise: float | None = 0.1, seed: int | None = 1337) -> Tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, built exactly as ``sklearn.datasets.make_moons``.

    Returns ``(X, y)``: ``X`` a float64 array of shape ``(n, 2)``, ``y`` an integer
    array of shape ``(n,)`` holding the class, 0 (outer moon) or 1 (inner moon).

    The construction and the order of random draws are scikit-learn's, so
    ``make_moons(n, noise, seed)`` equals
    ``sklearn.datasets.make_moons(n_samples=n, shuffle=True, noise=noise, random_state=seed)``:
    ``n // 2`` points on the outer half circle, the rest on the inner one, the
    points shuffled with ``RandomState(seed).shuffle`` of ``arange(n)``, then
    Gaussian noise of standard deviation ``noise`` added from the same generator.
    micrograd's demo calls ``np.random.seed(1337)`` then ``make_moons(100, noise=0.1)``
    on the global generator, which is the data of ``make_moons(100, 0.1, seed=1337)``.
    ``seed=None`` draws from NumPy's global generator, as scikit-learn does.
    """
    if n < 1:
        raise ValueError(f"make_moons: n must be >= 1, got {n}")
    rng = np.random.mtrand._rand if seed is None else np.random.RandomState(seed)
    n_out = n // 2
    n_in = n - n_out
    outer_x = np.cos(np.linspace(0, np.pi, n_out))
    outer_y = np.sin(np.linspace(0, np.pi, n_out))
    inner_x = 1 - np.cos(np.linspace(0, np.pi, n_in))
    inner_y = 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5
    X = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    idx = np.arange(n)
    rng.shuffle(idx)
    X, y = X[idx], y[idx]
    if noise is not None:
        X = X + rng.normal(scale=noise, size=X.shape)
    return X, y


def loss(model: Any, X: Sequence[Sequence[float]], y: Sequence[int], value: Callable[[float], Any] = Var,
         alpha: float = 1e-4) -> Tuple[Any, float]:
    """micrograd demo's ``loss()`` on the full batch, for any scalar type.

    ``value`` wraps a number into the scalar type (``micrograd.engine.Value``,
    ``tapegrad.Var``). Max-margin loss ``mean(relu(1 - y_i * score_i))`` plus
    ``alpha * sum(p * p)`` over the parameters; returns ``(total_loss, accuracy)``
    with the operations in the demo's order, so that two engines computing in
    float64 give the same loss.
    """
    inputs = [[value(v) for v in row] for row in X]
    scores = [model(row) for row in inputs]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum(p * p for p in model.parameters())
    total_loss = data_loss + reg_loss
    accuracy = [(yi > 0) == (si.data > 0) for yi, si in zip(y, scores)]
    return total_loss, sum(accuracy) / len(accuracy)


def train_step(model: Any, X: List[List[float]], y: List[int], k: int, steps: int = 100) -> Tuple[float, float]:
    """One step of micrograd's demo: forward, zero_grad, backward, SGD with a decaying rate."""
    total, accuracy = loss(model, X, y)
    model.zero_grad()
    total.backward()
    learning_rate = 1.0 - 0.9 * k / steps
    for p in model.parameters():
        p.data -= learning_rate * p.grad
    return total.data, accuracy


def tensor_model(seed: int) -> nn.Sequential:
    """The demo's MLP(2, [16, 16, 1]) as PyTorch code writes it, on tensors."""
    from . import random as tg_random

    tg_random.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))


def tensor_train_step(model: nn.Sequential, opt: optim.Optimizer, X: Tensor, y: Tensor,
                      alpha: float = 1e-4) -> Tuple[float, float]:
    """One step of part 2: the demo's max-margin loss and L2 penalty, on the whole batch."""
    opt.zero_grad()
    scores = model(X).squeeze(1)
    data_loss = (1 - y * scores).relu().mean()
    reg_loss = alpha * sum((p * p).sum() for p in model.parameters())
    total = data_loss + reg_loss
    total.backward()
    opt.step()
    accuracy = ((scores > 0) == (y > 0)).float().mean().item()
    return total.item(), accuracy


def mixed_precision_run(seed: int, X: np.ndarray, y: np.ndarray, steps: int, dtype: Any = None,
                        alpha: float = 1e-4) -> Dict[str, float]:
    """Part 3: part 2's model and loss in float32, under ``autocast(dtype=dtype)`` with a ``GradScaler``
    (both off for ``dtype=None``). Returns the final loss and accuracy, and the bytes the last step's
    graph saved (``Tape.stats()['saved_bytes']`` after the forward)."""
    mixed = dtype is not None
    model = tensor_model(seed).float()
    opt = optim.Adam(model.parameters(), lr=0.05)
    scaler = amp.GradScaler(enabled=mixed)
    Xt, yt = tensor(X, dtype=float32), tensor(2.0 * y - 1.0, dtype=float32)
    out: Dict[str, float] = {}
    for _ in range(steps):
        opt.zero_grad()
        tape = Tape()
        with tape, amp.autocast(dtype=dtype if mixed else bfloat16, enabled=mixed):
            scores = model(Xt).squeeze(1)  # bfloat16 under autocast
            data_loss = (1 - yt * scores).relu().mean()  # float32 (y is)
            total = data_loss + alpha * sum((p * p).sum() for p in model.parameters())
            out["saved_bytes"] = tape.stats()["saved_bytes"]
            scaler.scale(total).backward()  # gradients in float32, the parameters' dtype
        scaler.step(opt)
        scaler.update()
        out["loss"], out["accuracy"] = total.item(), ((scores > 0) == (yt > 0)).float().mean().item()
    return out


Scorer = Callable[[np.ndarray], np.ndarray]


def plot(path: str, X: np.ndarray, y: np.ndarray, models: Sequence[Tuple[str, Scorer]]) -> None:
    """Writes the decision boundary of each model over the data, as micrograd's notebook draws it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install tapegrad[plot] (or pip install matplotlib)") from None
    h = 0.25
    x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1
    y_min, y_max = X[:, 1].min() - 1, X[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
    grid = np.c_[xx.ravel(), yy.ravel()]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 5))
    for ax, (title, scores) in zip(np.atleast_1d(axes), models):
        Z = (scores(grid) > 0).reshape(xx.shape)
        ax.contourf(xx, yy, Z, cmap=plt.cm.Spectral, alpha=0.8)
        ax.scatter(X[:, 0], X[:, 1], c=y, s=40, cmap=plt.cm.Spectral)
        ax.set_xlim(xx.min(), xx.max())
        ax.set_ylim(yy.min(), yy.max())
        ax.set_title(title)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def neuron_path(plot_path: str) -> str:
    """Where the neuron's picture goes: ``moons.png`` -> ``moons_neuron.png`` (SVG and PDF
    keep their format; any other suffix gets a PNG)."""
    root, ext = os.path.splitext(plot_path)
    return root + "_neuron" + (ext if ext.lower() in (".png", ".svg", ".pdf") else ".png")


def draw_neuron(path: str, model: nn.MLP, point: Sequence[float]) -> str:
    """Writes the graph of one first-layer neuron of ``model`` on ``point`` (an active one
    when there is one), after its backward: ``relu(w0 * x0 + w1 * x1 + b)`` with each value
    and gradient. Returns the line to print."""
    neurons = model.layers[0].neurons
    x = [Var(v) for v in point]
    k = next((i for i, n in enumerate(neurons) if n(x).data > 0), 0)
    neuron = neurons[k]
    model.zero_grad()  # the leaves' .grad: this backward's alone, not the last training step's
    out = neuron(x)
    out.backward()
    names: Dict[str, Var] = {**{f"w{i}": w for i, w in enumerate(neuron.w)}, "b": neuron.b,
                             **{f"x{i}": xi for i, xi in enumerate(x)}}
    title = f"model.layers[0].neurons[{k}] on the point ({point[0]:.2f}, {point[1]:.2f}), after backward"
    try:
        viz.draw(out, names=names, title=title).render(path)
    except (ImportError, RuntimeError) as err:
        return f"no picture of a neuron's graph: {err}"
    finally:
        model.zero_grad()
    return f"wrote {path} (the graph of one neuron, its values and gradients)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tapegrad.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--plot", metavar="FILE.png", help="write both models' decision boundaries (matplotlib) "
                        "and the graph of one neuron, FILE_neuron.png (graphviz)")
    args = parser.parse_args(argv)

    random.seed(args.seed)
    Xa, ya = make_moons(100, noise=0.1, seed=args.seed)
    X, y = Xa.tolist(), (2 * ya - 1).tolist()  # labels -1, +1
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

    # Part 2: the same data and loss, PyTorch-style, on tensors.
    tmodel = tensor_model(args.seed)
    opt = optim.Adam(tmodel.parameters(), lr=0.05)
    Xt, yt = tensor(Xa), tensor(2.0 * ya - 1.0)
    print(f"\nthe same with tensors: nn.Sequential of Linear(2, 16), ReLU, Linear(16, 16), ReLU, Linear(16, 1) "
          f"({sum(p.numel() for p in tmodel.parameters())} parameters), optim.Adam")
    ttimes = []
    for k in range(args.steps):
        t0 = time.perf_counter()
        ttotal, taccuracy = tensor_train_step(tmodel, opt, Xt, yt)
        ttimes.append(time.perf_counter() - t0)
        if k % 10 == 0 or k == args.steps - 1:
            print(f"step {k:3d}  loss {ttotal:.6f}  accuracy {taccuracy * 100:5.1f}%  {ttimes[-1] * 1e3:7.3f} ms/step")
    tmedian = sorted(ttimes)[len(ttimes) // 2]
    print(f"median time per step: {tmedian * 1e3:.3f} ms (tensors: {median / tmedian:.0f}x the scalar Vars' speed)")

    # Part 3: part 2 in float32, plainly and in mixed precision.
    print("\nmixed precision: part 2's model in float32, then under autocast(dtype=bfloat16) with a GradScaler")
    runs = {name: mixed_precision_run(args.seed, Xa, ya, args.steps, dtype)
            for name, dtype in (("float32", None), ("bfloat16 autocast", bfloat16))}
    for name, r in runs.items():
        print(f"{name:>18}: loss {r['loss']:.6f}  accuracy {r['accuracy'] * 100:5.1f}%  "
              f"graph saved {r['saved_bytes'] / 1024:.1f} KiB")

    if args.plot:
        def var_scores(grid: np.ndarray) -> np.ndarray:
            return np.array([model([Var(a), Var(b)]).data for a, b in grid.tolist()])  # type: ignore[union-attr]

        def tensor_scores(grid: np.ndarray) -> np.ndarray:
            with no_grad():
                out: np.ndarray = tmodel(tensor(grid)).numpy()[:, 0]
            return out

        plot(args.plot, Xa, ya, [("part 1: micrograd's MLP of Vars", var_scores),
                                 ("part 2: nn.Sequential on tensors, Adam", tensor_scores)])
        print(f"wrote {args.plot}")
        print(draw_neuron(neuron_path(args.plot), model, Xa[0].tolist()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
