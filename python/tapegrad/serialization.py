"""``tapegrad.save`` and ``tapegrad.load``: tensors, ``state_dict``s and nested containers in a
file, as ``torch.save``/``torch.load`` keep them, in a format that loading never runs code from
(PyTorch's ``weights_only=True`` is the model; nothing is pickled).

    tg.save(model.state_dict(), "model.tg")
    model.load_state_dict(tg.load("model.tg"))

The format (version 1) is a ZIP archive, uncompressed, holding

- ``tapegrad/manifest.json``: ``{"format": "tapegrad.save", "version": 1, "root": node}``,
  where a node is a JSON object with a ``"type"``: ``none``; ``bool``, ``str`` (``"value"``);
  ``int`` (``"value"``: its decimal digits, so any int is exact); ``float`` (``"value"``:
  Python's ``repr``, so ``nan`` and ``inf`` too); ``list`` and ``tuple`` (``"items"``: nodes);
  ``dict`` (``"items"``: ``[key node, value node]`` pairs in order; ``"ordered"``: an
  ``OrderedDict``); ``tensor`` (``"file"``, ``"dtype"``, ``"shape"``, ``"requires_grad"``,
  ``"parameter"``: an ``nn.Parameter``); ``ndarray`` and ``numpy_scalar`` (``"file"``);
  ``var`` (a scalar ``Var``: ``"value"``, ``"requires_grad"``); ``device`` and ``dtype``
  (``"value"``: the name); ``ref`` (``"id"``: the same object as the tensor or array node
  with that ``"id"``, so that a tensor saved twice loads as one object);
- ``tapegrad/data/<n>.npy``: each array in NumPy's ``.npy`` format (no pickled objects;
  bfloat16 as its 16-bit patterns, ``uint16``).

Loading checks every node and every array against the manifest (dtype, shape, nesting at most
``MAX_DEPTH`` deep); a file that is not one (a PyTorch checkpoint, a truncated or altered
file) raises a ``RuntimeError`` that says what is wrong with it.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from collections import OrderedDict
from typing import IO, Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _core, _device
from ._core import Tensor, Var
from ._dtypes import as_dtype, bfloat16_dtype

FORMAT = "tapegrad.save"
VERSION = 1
MAX_DEPTH = 256
_MANIFEST = "tapegrad/manifest.json"
_DTYPES = ("float16", "bfloat16", "float32", "float64", "int64", "bool")

# What reading a damaged archive's entry raises (CRC mismatch, cut short, bad header or
# compression method, corrupt deflate stream).
_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError, struct.error)

FileLike = Union[str, "os.PathLike[str]", IO[bytes]]


def _parameter_type() -> Any:
    from .nn.module import Parameter  # (nn imports this package: imported when first needed)

    return Parameter


def _tensor_bits(t: Tensor) -> Tuple[np.ndarray[Any, Any], str]:
    """The tensor's values as an ndarray (a copy), and its dtype's name."""
    name = t.dtype.name
    if name == "bfloat16":  # its bit patterns: the top halves of its (exact) float32 values
        f32 = np.ascontiguousarray(t.detach().astype(np.float32).numpy())
        return (f32.view(np.uint32) >> 16).astype(np.uint16), name
    return np.array(t.detach().numpy(), copy=True), name


class _Writer:
    def __init__(self) -> None:
        self.arrays: List[Tuple[str, np.ndarray[Any, Any]]] = []
        self.seen: Dict[int, int] = {}  # id(object) -> the id of its node
        self.keep: List[Any] = []  # (the saved objects stay alive, so their ids stay theirs)

    def array_file(self, a: np.ndarray[Any, Any]) -> str:
        name = f"tapegrad/data/{len(self.arrays)}.npy"
        self.arrays.append((name, a))
        return name

    def encode(self, obj: Any, depth: int) -> Dict[str, Any]:
        if depth > MAX_DEPTH:
            raise ValueError(f"tapegrad.save: the object nests deeper than {MAX_DEPTH} levels")
        if obj is None:
            return {"type": "none"}
        if isinstance(obj, bool):
            return {"type": "bool", "value": obj}
        if isinstance(obj, int):
            return {"type": "int", "value": str(int(obj))}
        if isinstance(obj, float):
            return {"type": "float", "value": repr(float(obj))}
        if isinstance(obj, str):
            return {"type": "str", "value": obj}
        if isinstance(obj, _device.device):
            return {"type": "device", "value": str(obj)}
        if isinstance(obj, Var):
            return {"type": "var", "value": repr(float(obj.data)), "requires_grad": bool(obj.requires_grad)}
        if isinstance(obj, (Tensor, np.ndarray, np.generic)):
            return self.encode_array(obj)
        if obj is bfloat16_dtype or isinstance(obj, np.dtype) or (
                isinstance(obj, type) and issubclass(obj, np.generic)):
            return {"type": "dtype", "value": as_dtype(obj).name}
        if isinstance(obj, dict):
            items = [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in obj.items()]
            return {"type": "dict", "ordered": isinstance(obj, OrderedDict), "items": items}
        if isinstance(obj, (list, tuple)):
            return {"type": "list" if isinstance(obj, list) else "tuple",
                    "items": [self.encode(v, depth + 1) for v in obj]}
        raise TypeError(f"tapegrad.save: cannot save an object of type {type(obj).__module__}.{type(obj).__qualname__}"
                        " (it saves tensors, arrays, numbers, strings, None, devices, dtypes and lists, tuples and "
                        "dicts of them; it never pickles, so that tapegrad.load never runs code)")

    def encode_array(self, obj: Any) -> Dict[str, Any]:
        if id(obj) in self.seen:
            return {"type": "ref", "id": self.seen[id(obj)]}
        node_id = len(self.seen)
        self.seen[id(obj)] = node_id
        self.keep.append(obj)
        if isinstance(obj, Tensor):
            bits, name = _tensor_bits(obj)
            return {"type": "tensor", "id": node_id, "file": self.array_file(bits), "dtype": name,
                    "shape": list(obj.shape), "requires_grad": bool(obj.requires_grad),
                    "parameter": isinstance(obj, _parameter_type())}
        a = np.asarray(obj)
        if a.dtype.hasobject or a.dtype.names is not None:
            raise TypeError(f"tapegrad.save: cannot save an array of dtype {a.dtype} (object and structured arrays "
                            "would need pickling)")
        kind = "ndarray" if isinstance(obj, np.ndarray) else "numpy_scalar"
        return {"type": kind, "id": node_id, "file": self.array_file(np.array(a, copy=True))}


def _open(f: FileLike, mode: str) -> Tuple[IO[bytes], bool]:
    """A binary file for f, and whether it is ours to close."""
    if isinstance(f, (str, os.PathLike)):
        return open(f, mode), True  # noqa: SIM115 (closed by the caller)
    needed = "write" if "w" in mode else "read"
    if not hasattr(f, needed):
        raise TypeError(f"tapegrad.{'save' if needed == 'write' else 'load'}: f must be a path or a binary file, "
                        f"not {type(f).__name__}")
    return f, False


def save(obj: Any, f: FileLike, pickle_module: Any = None, pickle_protocol: Any = None,
         _use_new_zipfile_serialization: bool = True) -> None:
    """Writes ``obj`` (a tensor, a ``state_dict``, or lists, tuples and dicts of tensors, arrays,
    numbers and strings) to ``f``, a path or a binary file, as ``torch.save``; ``tapegrad.load``
    reads it back. Tensors keep their dtype, shape, ``requires_grad`` and whether they are an
    ``nn.Parameter``; a tensor saved twice comes back as one object. Nothing is pickled
    (``pickle_module`` and ``pickle_protocol`` are accepted and unused): the format is in this
    module's documentation."""
    writer = _Writer()
    manifest = {"format": FORMAT, "version": VERSION, "root": writer.encode(obj, 0)}
    fh, own = _open(f, "wb")
    try:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
            z.writestr(_MANIFEST, json.dumps(manifest))
            for name, array in writer.arrays:
                with z.open(name, "w", force_zip64=array.nbytes > 2**30) as out:
                    np.lib.format.write_array(out, array, allow_pickle=False)
    finally:
        if own:
            fh.close()


class _Reader:
    def __init__(self, z: zipfile.ZipFile, where: str) -> None:
        self.z = z
        self.where = where
        self.objects: Dict[int, Any] = {}

    def bad(self, why: str) -> RuntimeError:
        return RuntimeError(f"tapegrad.load: {self.where}: {why}")

    def field(self, node: Dict[str, Any], key: str, kinds: Any) -> Any:
        if key not in node or not isinstance(node[key], kinds) or (kinds is int and isinstance(node[key], bool)):
            raise self.bad(f"a {node.get('type')!r} entry of the manifest has no valid {key!r}")
        return node[key]

    def array(self, node: Dict[str, Any]) -> np.ndarray[Any, Any]:
        name = self.field(node, "file", str)
        try:
            with self.z.open(name) as fh:
                data = io.BytesIO(fh.read())
            a = np.lib.format.read_array(data, allow_pickle=False)
        except KeyError:
            raise self.bad(f"the array {name!r} the manifest names is missing") from None
        except (ValueError, *_ZIP_ERRORS) as e:
            raise self.bad(f"the array {name!r} is not a valid .npy array ({e})") from None
        return a

    def decode(self, node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.bad(f"the manifest nests deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            raise self.bad("a manifest entry is not an object with a 'type'")
        kind = node["type"]
        if kind == "none":
            return None
        if kind == "bool":
            return self.field(node, "value", bool)
        if kind == "str":
            return self.field(node, "value", str)
        if kind == "int":
            digits = self.field(node, "value", str)
            if not digits.lstrip("-").isdigit() or len(digits) > 5000:
                raise self.bad(f"an int entry holds {digits[:20]!r}, not the digits of an integer")
            return int(digits)
        if kind in ("float", "var"):
            text = self.field(node, "value", str)
            try:
                value = float(text)
            except ValueError:
                raise self.bad(f"a {kind} entry holds {text[:20]!r}, not a number") from None
            if kind == "float":
                return value
            return Var(value, requires_grad=self.field(node, "requires_grad", bool))
        if kind == "device":
            name = self.field(node, "value", str)
            try:
                return _device.device(name)
            except (RuntimeError, TypeError) as e:
                raise self.bad(f"a device entry names {name[:20]!r}: {e}") from None
        if kind == "dtype":
            name = self.field(node, "value", str)
            if name not in _DTYPES and name not in ("int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64",
                                                    "complex64", "complex128"):
                raise self.bad(f"a dtype entry names {name[:20]!r}, not a dtype")
            return as_dtype(name)
        if kind in ("list", "tuple"):
            items = [self.decode(v, depth + 1) for v in self.field(node, "items", list)]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            out: Dict[Any, Any] = OrderedDict() if self.field(node, "ordered", bool) else {}
            for pair in self.field(node, "items", list):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise self.bad("a dict entry's item is not a [key, value] pair")
                key = self.decode(pair[0], depth + 1)
                try:
                    out[key] = self.decode(pair[1], depth + 1)
                except TypeError:
                    raise self.bad(f"a dict key of type {type(key).__name__} is not hashable") from None
            return out
        if kind == "ref":
            ref = self.field(node, "id", int)
            if ref not in self.objects:
                raise self.bad(f"a ref entry names id {ref}, which no earlier tensor or array has")
            return self.objects[ref]
        if kind in ("tensor", "ndarray", "numpy_scalar"):
            node_id = self.field(node, "id", int)
            loaded: Any = self.tensor(node) if kind == "tensor" else self.array(node)
            if kind == "numpy_scalar":
                if loaded.ndim != 0:
                    raise self.bad("a numpy_scalar entry's array is not 0-d")
                loaded = loaded[()]
            self.objects[node_id] = loaded
            return loaded
        raise self.bad(f"a manifest entry has the unknown type {kind[:40]!r}")

    def tensor(self, node: Dict[str, Any]) -> Tensor:
        dtype = self.field(node, "dtype", str)
        shape = self.field(node, "shape", list)
        if dtype not in _DTYPES:
            raise self.bad(f"a tensor entry has the dtype {dtype[:20]!r}, which tensors do not have")
        a = self.array(node)
        stored = "uint16" if dtype == "bfloat16" else dtype
        if str(a.dtype) != stored or list(a.shape) != shape:
            raise self.bad(f"the array {node['file']!r} is {a.dtype}{list(a.shape)} where the manifest says "
                           f"{dtype}{shape}")
        if dtype == "bfloat16":
            t = _core.tensor((a.astype(np.uint32) << 16).view(np.float32), "bfloat16")
        else:
            t = _core.tensor(a, dtype)
        requires_grad = self.field(node, "requires_grad", bool)
        if self.field(node, "parameter", bool):
            return _parameter_type()(t, requires_grad=requires_grad)  # type: ignore[no-any-return]
        return t.requires_grad_(requires_grad) if requires_grad else t


def _check_map_location(map_location: Any) -> None:
    """Every tensor loads onto the CPU, so a map_location is only checked: a device or name must
    be the CPU, a dict's targets too; a function (PyTorch's ``lambda storage, loc: storage``) is
    accepted and not called."""
    if map_location is None or callable(map_location) and not isinstance(map_location, (str, _device.device)):
        return
    if isinstance(map_location, dict):
        for target in map_location.values():
            _device.check(target, "load(map_location=)")
        return
    _device.check(map_location, "load(map_location=)")


def load(f: FileLike, map_location: Any = None, pickle_module: Any = None, *, weights_only: Optional[bool] = None,
         mmap: Optional[bool] = None, **pickle_load_args: Any) -> Any:
    """Reads what ``tapegrad.save`` wrote to ``f`` (a path or a binary file), as ``torch.load``
    with ``weights_only=True``: tensors (on the CPU: a ``map_location`` must name it, or be a
    function, which is not called), arrays, numbers, strings and the lists, tuples and dicts
    of them. Nothing in the file is run, whatever ``weights_only`` says. A file tapegrad.save
    did not write (a PyTorch checkpoint, a truncated or altered file) raises a RuntimeError
    saying what is wrong."""
    _check_map_location(map_location)
    fh, own = _open(f, "rb")
    where = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "the file")
    try:
        try:
            z = zipfile.ZipFile(fh, "r")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise RuntimeError(f"tapegrad.load: {where}: not a file that tapegrad.save wrote (not a ZIP archive: "
                               f"{e})") from None
        with z:
            names = z.namelist()
            if _MANIFEST not in names:
                pytorch = any(n.endswith("data.pkl") for n in names)
                raise RuntimeError(f"tapegrad.load: {where}: not a file that tapegrad.save wrote (no {_MANIFEST})" +
                                   ("; it is a PyTorch checkpoint (torch.save's pickled format), which tapegrad does "
                                    "not unpickle: load it with torch.load and convert its tensors with "
                                    "tapegrad.tensor(t.numpy())" if pytorch else ""))
            reader = _Reader(z, str(where))
            try:
                manifest = json.loads(z.read(_MANIFEST).decode("utf-8"))
            except (ValueError, RecursionError, *_ZIP_ERRORS) as e:
                raise reader.bad(f"its manifest is not valid JSON ({e})") from None
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise reader.bad(f"its manifest does not say format {FORMAT!r}")
            version = manifest.get("version")
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise reader.bad(f"its manifest has no valid version ({version!r})")
            if version > VERSION:
                raise reader.bad(f"it was written in format version {version}, newer than this tapegrad reads "
                                 f"({VERSION}): upgrade tapegrad")
            if "root" not in manifest:
                raise reader.bad("its manifest has no root")
            try:
                return reader.decode(manifest["root"], 0)
            except RecursionError:
                raise reader.bad("the manifest nests too deeply") from None
    except _ZIP_ERRORS as e:  # the archive itself is damaged (a truncated or altered entry)
        raise RuntimeError(f"tapegrad.load: {where}: the file is damaged ({type(e).__name__}: {e})") from None
    finally:
        if own:
            fh.close()


__all__ = ["save", "load", "FORMAT", "VERSION", "MAX_DEPTH"]
