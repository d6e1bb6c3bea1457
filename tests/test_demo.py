"""The main job: micrograd's demo, trained with tapegrad."""

from __future__ import annotations

import io
import random
import shutil
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import demo


def test_make_moons_is_scikit_learns_construction() -> None:
    X, y = demo.make_moons(100, noise=None, seed=0)
    assert X.shape == (100, 2) and sorted(set(y.tolist())) == [0, 1]
    outer, inner = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0, atol=1e-12)  # unit half circle
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1, inner[:, 1] - 0.5), 1.0, atol=1e-12)
    assert (outer[:, 1] >= -1e-12).all() and (inner[:, 1] <= 0.5 + 1e-12).all()


def test_first_step_matches_micrograds_demo() -> None:
    # micrograd's demo.ipynb (np.random.seed(1337), random.seed(1337)) prints at step 0:
    # "step 0 loss 0.8958441028683222, accuracy 50.0%"
    random.seed(1337)
    X, y = demo.make_moons(100, noise=0.1, seed=1337)
    model = tg.nn.MLP(2, [16, 16, 1])
    loss, accuracy = demo.train_step(model, X.tolist(), (2 * y - 1).tolist(), 0)
    assert abs(loss - 0.8958441028683222) < 1e-12
    assert accuracy == 0.5


def test_demo_trains_to_full_accuracy_and_reports_time() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert demo.main(["--steps", "100"]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "two moons, 100 points; MLP(2, [16, 16, 1]) with 337 parameters"
    assert lines[1].startswith("step   0  loss 0.895844  accuracy  50.0%") and lines[1].endswith("ms/step")
    part1 = lines.index("") - 1  # part 1 ends at its median time; a blank line; part 2
    assert lines[part1 - 1].startswith("step  99  loss 0.010978  accuracy 100.0%")
    assert lines[part1].startswith("median time per step:")
    # part 2: PyTorch-style code on tensors (nn.Sequential, optim.Adam), the same data and loss
    part3 = lines.index("", part1 + 2)  # a blank line; part 3
    part2 = lines[part1 + 2:part3]
    assert lines[part1 + 2].startswith("the same with tensors: nn.Sequential") and "337 parameters" in lines[part1 + 2]
    assert part2[1].startswith("step   0  loss 1.030436  accuracy  50.0%")  # tapegrad.random, seed 1337
    assert part2[-2].startswith("step  99") and "accuracy 100.0%" in part2[-2]
    assert part2[-1].startswith("median time per step:") and "x the scalar Vars' speed" in part2[-1]
    # part 3: part 2 in float32, plainly and under bfloat16 autocast: both reach full accuracy
    assert lines[part3 + 1].startswith("mixed precision: part 2's model in float32")
    assert lines[part3 + 2].strip().startswith("float32: loss") and "accuracy 100.0%" in lines[part3 + 2]
    assert lines[part3 + 3].strip().startswith("bfloat16 autocast: loss") and "accuracy 100.0%" in lines[part3 + 3]


@pytest.mark.parametrize("seed", [1337, 0, 42])
def test_demo_model_under_bfloat16_autocast_reaches_float32_accuracy(seed: int) -> None:
    # the claim: the demo's tensor model trained under bfloat16 autocast (with a GradScaler)
    # reaches the float32 run's accuracy; its graph saves less
    X, y = demo.make_moons(100, noise=0.1, seed=seed)
    f32 = demo.mixed_precision_run(seed, X, y, 100)
    bf16 = demo.mixed_precision_run(seed, X, y, 100, demo.bfloat16)
    assert f32["accuracy"] == 1.0
    assert bf16["accuracy"] >= f32["accuracy"]
    assert bf16["loss"] < 0.05  # trained (from about 1.03 at step 0)
    assert bf16["saved_bytes"] < 0.6 * f32["saved_bytes"]


def has_graphviz() -> bool:
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def test_demo_plot_writes_both_decision_boundaries_and_a_neurons_graph(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "moons.png"
    out = io.StringIO()
    with redirect_stdout(out):
        assert demo.main(["--steps", "20", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    lines = out.getvalue().splitlines()
    assert lines[-2] == f"wrote {path}"
    neuron = tmp_path / "moons_neuron.png"
    if has_graphviz():
        assert lines[-1] == f"wrote {neuron} (the graph of one neuron, its values and gradients)"
        assert neuron.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and neuron.stat().st_size > 10_000
    else:
        assert lines[-1].startswith("no picture of a neuron's graph:") and not neuron.exists()


def test_demo_neuron_picture_is_the_graph_of_one_trained_neuron(tmp_path, monkeypatch) -> None:
    random.seed(1337)
    model = tg.nn.MLP(2, [16, 16, 1])
    point = [1.0, -0.5]
    drawn = {}

    def fake_render(graph, path, format=None):  # keep the picture instead of running Graphviz
        drawn["graph"], drawn["path"] = graph, str(path)
        return str(path)

    monkeypatch.setattr(tg.viz.Graph, "render", fake_render)
    line = demo.draw_neuron(str(tmp_path / "m_neuron.svg"), model, point)
    assert line == f"wrote {tmp_path / 'm_neuron.svg'} (the graph of one neuron, its values and gradients)"
    graph = drawn["graph"]
    leaves = {n.fields[0]: n.fields[1:] for n in graph.nodes if n.leaf}
    assert sorted(leaves) == ["b", "w0", "w1", "x0", "x1"]
    assert leaves["x0"] == ("data 1.0000", leaves["x0"][1]) and leaves["x1"][0] == "data -0.5000"
    # after the neuron's own backward, from zeroed grads: dx0 = w0 and dw0 = x0 (an active neuron)
    assert leaves["x0"][1] == "grad " + leaves["w0"][0].split()[1] and leaves["w0"][1] == "grad 1.0000"
    assert sorted(n.label for n in graph.nodes if n.kind == "op") == ["*", "*", "+", "+", "ReLU"]
    assert all(p.grad == 0.0 for p in model.parameters())  # the model is left as training left it, zeroed
    assert demo.neuron_path("a/moons.png") == "a/moons_neuron.png"
    assert demo.neuron_path("moons.svg") == "moons_neuron.svg" and demo.neuron_path("moons.jpg") == "moons_neuron.png"


def test_demo_without_graphviz_says_what_to_install_and_goes_on(tmp_path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz raises ImportError
    path = tmp_path / "moons.png"
    out = io.StringIO()
    with redirect_stdout(out):
        assert demo.main(["--steps", "2", "--plot", str(path)]) == 0
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("no picture of a neuron's graph:")
    assert "pip install graphviz" in last and "apt-get install graphviz" in last
    assert path.exists() and not (tmp_path / "moons_neuron.png").exists()


def test_demo_plot_without_matplotlib_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with redirect_stdout(io.StringIO()), pytest.raises(SystemExit, match=r"pip install tapegrad\[plot\]"):
        demo.main(["--steps", "2", "--plot", str(tmp_path / "x.png")])
