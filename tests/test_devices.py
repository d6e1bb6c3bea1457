"""The device boilerplate of PyTorch programs (tapegrad/_device.py, cuda/, accelerator.py,
backends/): the probes answer as PyTorch's do on a machine without a GPU, ``device=`` takes the
CPU everywhere PyTorch takes a device, and any other device raises an error that names it.

The openings below are the shapes PyTorch's tutorials and examples open with (the quickstart,
the MNIST example, the AMP recipe); each picks the CPU and then trains to the same numbers as
the same loop written without any device code.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any, Callable, Dict, List

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import tapegrad as tg
import tapegrad.backends.cudnn as cudnn
from tapegrad import nn

CPU_FORMS: List[Any] = [None, "cpu", "cpu:0", tg.device("cpu"), tg.device("cpu", 0), tg.device("cpu:0")]
OTHER_DEVICES: List[Any] = ["cuda", "cuda:0", "cuda:1", "mps", "xpu", "meta", 0, 1]

# Every factory PyTorch gives a device= argument, called with one.
FACTORIES: Dict[str, Callable[[Any], Any]] = {
    "tensor": lambda d: tg.tensor([1.0, 2.0], device=d),
    "Tensor": lambda d: tg.Tensor([1.0, 2.0], device=d),
    "Tensor(sizes)": lambda d: tg.Tensor(2, 3, device=d),
    "as_tensor": lambda d: tg.as_tensor([1.0, 2.0], device=d),
    "zeros": lambda d: tg.zeros(2, 3, device=d),
    "ones": lambda d: tg.ones(2, device=d),
    "full": lambda d: tg.full((2,), 7.0, device=d),
    "empty": lambda d: tg.empty(2, device=d),
    "eye": lambda d: tg.eye(3, device=d),
    "arange": lambda d: tg.arange(5, device=d),
    "linspace": lambda d: tg.linspace(0, 1, 5, device=d),
    "rand": lambda d: tg.rand(2, device=d),
    "randn": lambda d: tg.randn(2, 2, device=d),
    "randint": lambda d: tg.randint(0, 5, (3,), device=d),
    "randperm": lambda d: tg.randperm(4, device=d),
    "normal": lambda d: tg.normal(0.0, 1.0, (2,), device=d),
    "zeros_like": lambda d: tg.zeros_like(tg.ones(2), device=d),
    "ones_like": lambda d: tg.ones_like(tg.ones(2), device=d),
    "full_like": lambda d: tg.full_like(tg.ones(2), 3.0, device=d),
    "empty_like": lambda d: tg.empty_like(tg.ones(2), device=d),
    "rand_like": lambda d: tg.rand_like(tg.ones(2), device=d),
    "randn_like": lambda d: tg.randn_like(tg.ones(2), device=d),
    "randint_like": lambda d: tg.randint_like(tg.ones(2), 0, 5, device=d),
    "new_zeros": lambda d: tg.ones(2).new_zeros(3, device=d),
    "new_ones": lambda d: tg.ones(2).new_ones(3, device=d),
    "new_full": lambda d: tg.ones(2).new_full((3,), 2.0, device=d),
    "new_empty": lambda d: tg.ones(2).new_empty(3, device=d),
    "new_tensor": lambda d: tg.ones(2).new_tensor([1.0], device=d),
    "Tensor.to": lambda d: tg.ones(2).to(d),
    "Tensor.to(device=)": lambda d: tg.ones(2).to(device=d, dtype=tg.float32),
    "nn.Linear": lambda d: nn.Linear(3, 2, device=d),
    "nn.Embedding": lambda d: nn.Embedding(5, 2, device=d),
    "nn.LayerNorm": lambda d: nn.LayerNorm(4, device=d),
    "Module.to": lambda d: nn.Linear(3, 2).to(d),
    "set_default_device": lambda d: tg.set_default_device(d),
    "Generator": lambda d: tg.Generator(device=d),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_factory_takes_the_cpu_in_every_spelling(name: str) -> None:
    for d in CPU_FORMS:
        r = FACTORIES[name](d)
        if isinstance(r, tg.Tensor):
            assert r.device == "cpu" and r.device == tg.device("cpu") and not r.is_cuda


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_factory_refuses_another_device_naming_it(name: str) -> None:
    for d in OTHER_DEVICES:
        with pytest.raises(RuntimeError, match=f"no device {d!r}"):
            FACTORIES[name](d)


def test_the_device_given_changes_nothing_but_is_checked() -> None:
    tg.manual_seed(3)
    a = tg.randn(4, device="cpu")
    tg.manual_seed(3)
    b = tg.randn(4)
    assert_array_equal(a.numpy(), b.numpy())
    assert_array_equal(tg.tensor([1.5, 2.5], device=tg.device("cpu")).numpy(), [1.5, 2.5])
    assert tg.eye(2, requires_grad=True, device="cpu").requires_grad


def test_the_device_object() -> None:
    d = tg.device("cpu")
    assert d.type == "cpu" and d.index is None and str(d) == "cpu" and repr(d) == "device(type='cpu')"
    e = tg.device("cpu", 0)
    assert e.index == 0 and str(e) == "cpu:0" and e == d and e == "cpu" and hash(e) == hash(d)
    assert tg.device(e) == e and tg.device("cpu:0").index == 0
    assert pickle.loads(pickle.dumps(e)).index == 0
    with tg.device("cpu") as inside:  # torch.device as a context manager (the default device)
        assert tg.zeros(1).device == inside
    assert tg.get_default_device() == "cpu"
    g = tg.Generator("cpu")  # torch.Generator(device): PyTorch's first argument
    assert g.device == "cpu" and g.initial_seed() == tg.Generator().initial_seed()
    assert tg.Generator(5).initial_seed() == 5
    assert d != "cuda" and d != 3


@pytest.mark.parametrize("bad,exc,word", [
    ("foo", RuntimeError, "not a device string"), ("", RuntimeError, "not a device string"),
    ("cpu:x", RuntimeError, "not a device string"), ("CUDA", RuntimeError, "not a device string"),
    (3.5, TypeError, "float"), ([], TypeError, "list"), (True, TypeError, "bool"), (b"cpu", TypeError, "bytes"),
    (object(), TypeError, "object"),
])
def test_hostile_devices_get_clear_errors(bad: Any, exc: type, word: str) -> None:
    for call in (lambda: tg.device(bad), lambda: tg.zeros(2, device=bad), lambda: tg.tensor([1.0], device=bad),
                 lambda: tg.ones(2).to(device=bad), lambda: nn.Linear(2, 2, device=bad),
                 lambda: tg.set_default_device(bad)):
        with pytest.raises(exc, match=word):
            call()
    with pytest.raises(RuntimeError, match="index"):
        tg.device("cpu", -1)
    with pytest.raises(ValueError, match="pin_memory"):
        tg.tensor([1.0], pin_memory=True)


def test_the_probes_answer_as_on_a_machine_without_a_gpu() -> None:
    assert tg.cuda.is_available() is False and tg.cuda.device_count() == 0 and not tg.cuda.is_initialized()
    assert tg.accelerator.is_available() is False and tg.accelerator.device_count() == 0
    assert tg.accelerator.current_accelerator() is None
    assert tg.backends.mps.is_available() is False and tg.backends.mps.is_built() is False
    assert tg.backends.cudnn.is_available() is False and tg.backends.cudnn.version() is None
    assert tg.backends.cuda.is_built() is False
    # the switches programs set: attributes, changing nothing
    cudnn.deterministic, cudnn.benchmark = True, False
    tg.backends.cuda.matmul.allow_tf32 = True
    assert tg.backends.cudnn.deterministic is True
    # seeding a GPU is a no-op (PyTorch queues it for a GPU that never comes): the CPU stream is untouched
    tg.manual_seed(7)
    a = tg.rand(3)
    tg.manual_seed(7)
    tg.cuda.manual_seed(123)
    tg.cuda.manual_seed_all(456)
    tg.cuda.empty_cache()
    assert_array_equal(tg.rand(3).numpy(), a.numpy())
    with pytest.raises(ValueError):
        tg.cuda.manual_seed("seed")
    for name in ("synchronize", "current_device", "set_device", "get_device_name", "get_device_properties",
                 "memory_allocated"):
        with pytest.raises(RuntimeError, match=f"cuda.{name}.*no CUDA device"):
            getattr(tg.cuda, name)()
    with pytest.raises(RuntimeError, match="no CUDA device"):
        tg.ones(2).cuda()
    with pytest.raises(RuntimeError, match="no CUDA device"):
        nn.Linear(2, 2).cuda()


def test_the_probes_agree_with_pytorch_on_this_machine() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available() or torch.backends.mps.is_available():  # pragma: no cover - a GPU machine
        pytest.skip("PyTorch sees a GPU here; tapegrad answers as it would without one")
    assert tg.cuda.is_available() == torch.cuda.is_available()
    assert tg.cuda.device_count() == torch.cuda.device_count()
    assert tg.accelerator.is_available() == torch.accelerator.is_available()
    assert (tg.accelerator.current_accelerator() is None) == (torch.accelerator.current_accelerator() is None)
    assert tg.backends.mps.is_available() == torch.backends.mps.is_available()
    assert tg.backends.cudnn.is_available() == torch.backends.cudnn.is_available()
    assert str(tg.device("cpu")) == str(torch.device("cpu")) and repr(tg.device("cpu")) == repr(torch.device("cpu"))
    assert str(tg.device("cpu", 0)) == str(torch.device("cpu", 0))
    for t, name in [(tg.float32, "float32"), (tg.float64, "float64"), (tg.int64, "int64"), (tg.bool_, "bool"),
                    (tg.float16, "float16")]:
        assert tg.zeros(1, dtype=t).type() == torch.zeros(1, dtype=getattr(torch, name)).type()
    # a disabled scaler passes everything through, as PyTorch's does without a GPU
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = tg.amp.GradScaler("cuda"), torch.amp.GradScaler("cuda")
    assert ours.is_enabled() == theirs.is_enabled() is False
    assert ours.get_scale() == theirs.get_scale()


def _data() -> Any:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    return x, y


def _train(opening: Callable[[], Any], steps: int = 5) -> List[float]:
    """A quickstart-shaped loop: the device from `opening`, moved to with .to(device)."""
    device = opening()
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to(device)
    x, y = _data()
    loader = tg.utils.data.DataLoader(tg.utils.data.TensorDataset(tg.tensor(x), tg.tensor(y)), batch_size=16,
                                      pin_memory=tg.cuda.is_available())
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(steps):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device, non_blocking=True)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


OPENINGS: Dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "quickstart (accelerator)": lambda: (tg.accelerator.current_accelerator().type  # type: ignore[union-attr]
                                         if tg.accelerator.is_available() else "cpu"),
    "cuda, mps or cpu": lambda: ("cuda" if tg.cuda.is_available() else "mps" if tg.backends.mps.is_available()
                                 else "cpu"),
    "torch.device(cuda:0 or cpu)": lambda: tg.device("cuda:0" if tg.cuda.is_available() else "cpu"),
    "mnist example": lambda: (tg.accelerator.current_accelerator() if tg.accelerator.is_available()
                              else tg.device("cpu")),
}


def test_the_openings_of_pytorch_programs_pick_the_cpu_and_train_to_the_same_numbers() -> None:
    reference = _train(OPENINGS["none"])
    assert reference[-1] < reference[0]
    for name, opening in OPENINGS.items():
        assert _train(opening) == reference, name


def test_an_amp_loop_written_for_a_gpu_runs_in_float32_with_a_warning() -> None:
    x, y = _data()

    def loop(use_gpu_spelling: bool) -> List[float]:
        tg.manual_seed(1)
        model = nn.Linear(6, 3, dtype=tg.float32)
        opt = tg.optim.SGD(model.parameters(), lr=0.05)
        scaler = tg.cuda.amp.GradScaler() if use_gpu_spelling else tg.amp.GradScaler(enabled=False)
        losses = []
        for _ in range(4):
            ctx = tg.autocast(device_type="cuda", dtype=tg.float16) if use_gpu_spelling else tg.autocast(enabled=False)
            with ctx:
                out = model(tg.tensor(x))
                assert out.dtype == np.float32  # the block changed nothing
                loss = nn.functional.cross_entropy(out, tg.tensor(y))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
            losses.append(loss.item())
        assert scaler.get_scale() == 1.0 and not scaler.is_enabled()
        return losses

    with pytest.warns(UserWarning, match="'cuda' is not available") as record:
        gpu = loop(True)
    assert all(w.filename == __file__ for w in record)  # the warning names the user's line
    assert gpu == loop(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tg.amp.GradScaler("cuda", enabled=False)  # disabled by the program itself: no warning
        tg.cuda.amp.autocast(enabled=False)


def test_a_cuda_autocast_block_leaves_the_cpus_autocast_as_it_is() -> None:
    w = tg.tensor(np.ones((3, 3), np.float32))
    with tg.autocast(dtype=tg.bfloat16):
        with pytest.warns(UserWarning, match="disabling"):
            gpu_block = tg.autocast("cuda")
        with gpu_block:
            assert tg.is_autocast_enabled() and (w @ w).dtype == tg.bfloat16
            assert not tg.is_autocast_enabled("cuda") and tg.get_autocast_dtype("cuda") == np.float16
        assert tg.is_autocast_enabled()
    assert not tg.is_autocast_enabled()


def test_tensor_type_names_and_conversions() -> None:
    t = tg.tensor([1.5, 2.5], dtype=tg.float32)
    assert t.type() == "torch.FloatTensor" and tg.ones(1).type() == "torch.DoubleTensor"
    assert tg.tensor([1]).type() == "torch.LongTensor" and tg.tensor([True]).type() == "torch.BoolTensor"
    assert t.type(tg.float32) is t
    assert t.type("torch.DoubleTensor").dtype == np.float64 and t.type(tg.int64).type() == "torch.LongTensor"
    assert_array_equal((tg.tensor([1, 2]) == tg.tensor([1, 0])).type(tg.float32).numpy(), [1.0, 0.0])
    with pytest.raises(TypeError, match="torch.IntTensor"):
        t.type("torch.IntTensor")


def test_as_tensor_shares_or_copies_as_pytorch() -> None:
    a = np.arange(4.0)
    t = tg.as_tensor(a)
    a[0] = 9.0
    assert t[0].item() == 9.0  # shared, as torch.as_tensor of an ndarray
    assert tg.as_tensor(t) is t and tg.as_tensor(t, dtype=tg.float64) is t
    assert tg.as_tensor(t, dtype=tg.float32).dtype == np.float32
    c = tg.as_tensor(a, dtype=tg.float32)
    a[1] = 7.0
    assert c[1].item() == 1.0  # another dtype: a copy
    assert tg.as_tensor([1, 2]).dtype == np.int64
