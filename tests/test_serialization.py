"""tapegrad.save and tapegrad.load (tapegrad/serialization.py): what PyTorch programs save
(state_dicts, optimizer checkpoints, nested containers of tensors) comes back equal, in a format
whose loading never runs code; a file that is not one (a PyTorch checkpoint, truncated, altered
bytes, a hostile manifest) raises a RuntimeError that says what is wrong, never anything worse.
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Dict

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import tapegrad as tg
from tapegrad import nn


def _roundtrip(obj: Any, **load_kwargs: Any) -> Any:
    buf = io.BytesIO()
    tg.save(obj, buf)
    buf.seek(0)
    return tg.load(buf, **load_kwargs)


def _same(a: Any, b: Any) -> None:
    """Equal values, types, dtypes, shapes and flags, recursively (a dtype comes back as the dtype
    object a tensor's .dtype is: tg.float32, NumPy's scalar type, as np.dtype('float32'))."""
    if isinstance(a, type) and issubclass(a, np.generic):
        assert isinstance(b, np.dtype) and b == a
        return
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, tg.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        assert_array_equal(a.astype(np.float64).numpy() if a.dtype.name == "bfloat16" else a.numpy(),
                           b.astype(np.float64).numpy() if b.dtype.name == "bfloat16" else b.numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    elif isinstance(a, tg.Var):
        assert a.data == b.data and a.requires_grad == b.requires_grad
    else:
        assert a == b


def _everything() -> Dict[str, Any]:
    p = nn.Parameter(tg.tensor([1.0, -2.0]))
    return {
        "numbers": [0, -1, 2**100, -(2**70), 1.5, -0.0, float("inf"), float("-inf"), float("nan"), 1e-308, True, False],
        "strings": ["", "é ✓ \x00 \"quoted\"", "a" * 1000],
        "none": None,
        "tuple": (1, (2, (3, ())), []),
        "int keys": {0: "a", -5: "b", 2**80: "c"},
        "odd keys": {None: 1, True: 2, 1.5: 3, (1, "x"): 4},
        "ordered": OrderedDict([("z", 1), ("a", 2)]),
        "tensors": [tg.tensor(np.arange(6.0).reshape(2, 3)), tg.tensor(np.float32([[0.1]])), tg.tensor([1, -2]),
                    tg.tensor([True, False]), tg.tensor(np.float16([1.5, 65504.0])), tg.zeros(0, 3), tg.tensor(3.25),
                    tg.tensor([1.5, -0.0078125, 3e38], dtype="bfloat16"), tg.ones(2, requires_grad=True)],
        "parameter": p,
        "parameter again": p,
        "arrays": [np.arange(4, dtype=np.int32), np.zeros((2, 0)), np.array([1 + 2j]), np.float32(2.5), np.int64(-7),
                   np.bool_(True)],
        "dtypes": [tg.float32, np.dtype("int64"), tg.bfloat16],
        "device": tg.device("cpu"),
        "devices named": [tg.device("cuda:1"), tg.device("meta")],  # (named, as PyTorch may name them)
        "var": tg.Var(2.5),
        "var no grad": tg.Var(-1.0, requires_grad=False),
    }


def test_everything_it_keeps_comes_back_equal() -> None:
    obj = _everything()
    back = _roundtrip(obj)
    _same(obj, back)
    assert back["parameter"] is back["parameter again"]  # one object, as saved
    assert isinstance(back["parameter"], nn.Parameter) and back["parameter"].requires_grad
    assert back["tensors"][-1].is_leaf and back["tensors"][-1].requires_grad
    assert back["tensors"][0].numpy().flags.writeable  # a tensor of its own, not a view of the file


def test_a_recorded_result_saves_its_value_as_a_leaf() -> None:
    x = tg.ones(3, requires_grad=True)
    y = x * 2.0
    back = _roundtrip({"y": y})["y"]
    assert back.is_leaf and back.requires_grad and back.grad_fn is None
    assert_array_equal(back.numpy(), [2.0, 2.0, 2.0])


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 3))


def test_the_save_and_load_tutorial_state_dict(tmp_path: pathlib.Path) -> None:
    tg.manual_seed(0)
    model = _model()
    path = tmp_path / "model.pth"
    tg.save(model.state_dict(), path)
    tg.manual_seed(1)
    fresh = _model()
    x = tg.randn(5, 4)
    assert not np.array_equal(fresh(x).numpy(), model(x).numpy())
    fresh.load_state_dict(tg.load(path, weights_only=True))
    fresh.eval()
    assert_array_equal(fresh(x).numpy(), model(x).numpy())
    tg.save(model.state_dict(), str(path))  # a str path too
    assert list(tg.load(str(path), map_location=tg.device("cpu"))) == list(model.state_dict())


def test_a_training_checkpoint_resumes_exactly() -> None:
    """PyTorch's checkpoint recipe: epoch, model and optimizer state, loss; training resumed from
    it continues exactly as training that never stopped."""
    x, y = tg.randn(16, 4), tg.tensor(np.arange(16) % 3)

    def step(model: nn.Module, opt: Any) -> float:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    tg.manual_seed(2)
    model = _model()
    opt = tg.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        step(model, opt)
    buf = io.BytesIO()
    tg.save({"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
             "loss": 0.5}, buf)
    straight = [step(model, opt) for _ in range(3)]

    buf.seek(0)
    ckpt = tg.load(buf)
    tg.manual_seed(9)
    resumed = _model()
    resumed_opt = tg.optim.Adam(resumed.parameters(), lr=0.5)
    resumed.load_state_dict(ckpt["model_state_dict"])
    resumed_opt.load_state_dict(ckpt["optimizer_state_dict"])
    assert ckpt["epoch"] == 3 and ckpt["loss"] == 0.5
    assert [step(resumed, resumed_opt) for _ in range(3)] == straight


@pytest.mark.parametrize("obj,word", [
    ({1, 2}, "set"), (lambda: 0, "function"), (object(), "object"), ({"a": [b"bytes"]}, "bytes"),
    (np.array([object()]), "dtype object"), (np.zeros(2, dtype=[("a", "f8")]), "dtype"), (1 + 2j, "complex"),
    (tg.no_grad(), "no_grad"),
])
def test_what_it_cannot_keep_is_a_type_error_naming_it_and_writes_nothing(obj: Any, word: str,
                                                                         tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.tg"
    with pytest.raises(TypeError, match=word):
        tg.save({"x": [obj]}, path)
    assert not path.exists()


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    deep: Any = []
    for _ in range(tg.serialization.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ValueError, match="nests deeper"):
        tg.save(deep, io.BytesIO())
    ok: Any = []
    for _ in range(tg.serialization.MAX_DEPTH - 2):
        ok = [ok]
    _roundtrip(ok)


def _saved_bytes(obj: Any = None) -> bytes:
    buf = io.BytesIO()
    tg.save({"w": tg.tensor(np.arange(12.0).reshape(3, 4)), "n": 3, "s": "x"} if obj is None else obj, buf)
    return buf.getvalue()


def _load_bytes(data: bytes) -> Any:
    return tg.load(io.BytesIO(data))


def test_bytes_that_are_not_a_saved_file_raise_a_runtime_error() -> None:
    for data in [b"", b"\x00", b"PK", b"hello world" * 10, bytes(range(256)), b"PK\x03\x04" + b"\xff" * 100]:
        with pytest.raises(RuntimeError, match="tapegrad.load"):
            _load_bytes(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("other.txt", "hi")
    with pytest.raises(RuntimeError, match="no tapegrad/manifest.json"):
        _load_bytes(buf.getvalue())


def test_every_truncation_and_many_byte_flips_raise_or_load_the_same() -> None:
    """A file cut anywhere raises RuntimeError; a changed byte either raises RuntimeError or (a
    byte no reader checks: a timestamp) loads what was saved. Never another exception, never
    different values."""
    good = _saved_bytes()
    expected = _load_bytes(good)
    for cut in range(0, len(good), 7):
        with pytest.raises(RuntimeError):
            _load_bytes(good[:cut])
    rng = np.random.default_rng(0)
    for pos in list(range(len(good))) + list(rng.integers(0, len(good), 200)):
        for value in (0x00, 0xFF, good[pos] ^ 0x01):
            data = bytearray(good)
            if data[pos] == value:
                continue
            data[pos] = value
            try:
                back = _load_bytes(bytes(data))
            except RuntimeError:
                continue
            _same(expected, back)


def _with_manifest(edit: Callable[[Dict[str, Any]], Any], extra: Dict[str, bytes] | None = None) -> bytes:
    """The saved file's bytes with its manifest changed by `edit` (and files added)."""
    src = zipfile.ZipFile(io.BytesIO(_saved_bytes()))
    manifest = json.loads(src.read("tapegrad/manifest.json"))
    replaced = edit(manifest)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in src.namelist():
            if name != "tapegrad/manifest.json":
                z.writestr(name, src.read(name))
        z.writestr("tapegrad/manifest.json", replaced if isinstance(replaced, (str, bytes)) else
                   json.dumps(manifest))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return out.getvalue()


def _object_array_npy() -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _tensor_node(m: Dict[str, Any]) -> Dict[str, Any]:
    return next(v for k, v in m["root"]["items"] if k["value"] == "w")


def _nested(levels: int) -> str:
    """A manifest whose root is `levels` lists, one inside the other."""
    return ('{"format": "tapegrad.save", "version": 1, "root": ' + '{"type": "list", "items": [' * levels +
            "]}" * levels + "}")


HOSTILE_MANIFESTS: Dict[str, Any] = {
    "not json": (lambda m: "{not json", None, "not valid JSON"),
    "not utf-8": (lambda m: b"\xff\xfe", None, "not valid JSON"),
    "a list": (lambda m: "[1, 2]", None, "format"),
    "other format": (lambda m: m.update(format="other"), None, "format"),
    "newer version": (lambda m: m.update(version=99), None, "version 99"),
    "bad version": (lambda m: m.update(version="1"), None, "version"),
    "no root": (lambda m: m.pop("root"), None, "no root"),
    "unknown type": (lambda m: m.update(root={"type": "pickle", "value": "cos\nsystem\n"}), None, "unknown type"),
    "root not object": (lambda m: m.update(root=[1]), None, "'type'"),
    "int not digits": (lambda m: m.update(root={"type": "int", "value": "1e5"}), None, "digits"),
    "int huge": (lambda m: m.update(root={"type": "int", "value": "9" * 6000}), None, "digits"),
    "float text": (lambda m: m.update(root={"type": "float", "value": "__import__('os')"}), None, "not a number"),
    "bool as int": (lambda m: m.update(root={"type": "bool", "value": 1}), None, "'value'"),
    "device bogus": (lambda m: m.update(root={"type": "device", "value": "quantum:x"}), None, "device"),
    "dtype object": (lambda m: m.update(root={"type": "dtype", "value": "object"}), None, "dtype"),
    "pair not pair": (lambda m: m.update(root={"type": "dict", "ordered": False, "items": [[1]]}), None, "pair"),
    "unhashable key": (lambda m: m.update(root={"type": "dict", "ordered": False,
                                                "items": [[{"type": "list", "items": []}, {"type": "none"}]]}),
                       None, "hashable"),
    "dangling ref": (lambda m: m.update(root={"type": "ref", "id": 5}), None, "id 5"),
    "missing array": (lambda m: _tensor_node(m).update(file="tapegrad/data/77.npy"), None, "missing"),
    "wrong shape": (lambda m: _tensor_node(m).update(shape=[4, 3]), None, "manifest says"),
    "wrong dtype": (lambda m: _tensor_node(m).update(dtype="float32"), None, "manifest says"),
    "tensor dtype": (lambda m: _tensor_node(m).update(dtype="int8"), None, "do not have"),
    "no requires_grad": (lambda m: _tensor_node(m).pop("requires_grad"), None, "requires_grad"),
    "pickled array": (lambda m: _tensor_node(m).update(file="tapegrad/data/evil.npy"),
                      {"tapegrad/data/evil.npy": _object_array_npy()}, "not a valid .npy"),
    "not npy": (lambda m: _tensor_node(m).update(file="tapegrad/data/junk.npy"),
                {"tapegrad/data/junk.npy": b"\x93NUMPY junk"}, "not a valid .npy"),
    "scalar not 0-d": (lambda m: m.update(root={"type": "numpy_scalar", "id": 0,
                                                "file": _tensor_node(m)["file"]}), None, "0-d"),
    "deep json": (lambda m: _nested(100000), None, "JSON|deep"),
    "deep nodes": (lambda m: _nested(400), None, "deep"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_MANIFESTS))
def test_a_hostile_manifest_raises_a_runtime_error_naming_the_problem(name: str) -> None:
    edit, extra, word = HOSTILE_MANIFESTS[name]
    with pytest.raises(RuntimeError, match=word):
        _load_bytes(_with_manifest(edit, extra))


def test_a_pytorch_checkpoint_is_named_and_not_unpickled(tmp_path: pathlib.Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "torch.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(RuntimeError, match="PyTorch checkpoint"):
        tg.load(path)


def test_map_location_and_file_arguments() -> None:
    data = _saved_bytes()
    for where in (None, "cpu", "cpu:0", tg.device("cpu"), {"cuda:0": "cpu"}, lambda storage, loc: storage):
        assert tg.load(io.BytesIO(data), map_location=where)["n"] == 3
    for where, exc in (("cuda", RuntimeError), ({"cpu": "cuda:1"}, RuntimeError), (3.5, TypeError)):
        with pytest.raises(exc):
            tg.load(io.BytesIO(data), map_location=where)
    for bad in (3, None, [1]):
        with pytest.raises(TypeError, match="path or a binary file"):
            tg.save({}, bad)
        with pytest.raises(TypeError, match="path or a binary file"):
            tg.load(bad)
    with pytest.raises(FileNotFoundError):
        tg.load(os.path.join("no", "such", "file.tg"))
