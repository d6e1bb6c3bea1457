"""Devices, as PyTorch programs name them. tapegrad computes on the CPU: every ``device=``
argument accepts it (and ``None``); any device PyTorch knows can be named (``device("cuda")``)
and compared, but making a tensor or a module on one raises a ``RuntimeError`` that names it.
The probes that PyTorch programs open with answer as PyTorch does on a machine without an
accelerator (``cuda.is_available()`` is False), so the usual
``device = "cuda" if torch.cuda.is_available() else "cpu"`` picks the CPU.
"""

from __future__ import annotations

from typing import Any, Optional, Union

# PyTorch's device types: a name among these is a device tapegrad does not have (RuntimeError);
# any other string is not a device at all (as torch.device("foo") raises).
_KNOWN = ("cpu", "cuda", "mps", "xpu", "xla", "meta", "hip", "mtia", "ipu", "hpu", "ve", "lazy", "vulkan", "mkldnn",
          "opengl", "opencl", "ideep", "fpga", "maia", "privateuseone")


def _type_of(kind: Any) -> str:
    """The device type a ``device=`` argument names: a device, a string ("cuda:1"), or an int
    (PyTorch's ordinal of the default accelerator)."""
    if isinstance(kind, device):
        return kind.type
    if isinstance(kind, bool) or not isinstance(kind, (str, int)):
        raise TypeError(f"tapegrad: a device is a str, an int or a tapegrad.device, not {type(kind).__name__}")
    if isinstance(kind, int):
        return "cuda"  # torch.device(0) is cuda:0
    name, _, index = kind.partition(":")
    if name not in _KNOWN or (index and not index.isdigit()):
        raise RuntimeError(f"tapegrad: {kind!r} is not a device string "
                           "(PyTorch's are 'cpu', 'cuda', 'cuda:0', 'mps', ...)")
    return name


def _no_device(kind: Any, who: str) -> RuntimeError:
    where = f"{who}: " if who else ""
    return RuntimeError(f"tapegrad: {where}there is no device {kind!r}: tapegrad computes on the CPU only "
                        "(use 'cpu', or pick it with `'cuda' if tapegrad.cuda.is_available() else 'cpu'`)")


class device:  # noqa: N801 (PyTorch's name)
    """A device, as ``torch.device`` names one: ``device('cpu')``, ``device('cuda:0')``,
    ``device('cuda', 1)``. Any device PyTorch knows can
    be named and compared (a program may test ``device('cuda').index``), but tapegrad computes on
    the CPU only: making a tensor or a module on another device, or entering ``with device(...)``
    for one, raises a RuntimeError naming it."""

    type: str
    index: Optional[int]

    def __init__(self, kind: Union[str, int, "device"] = "cpu", index: Optional[int] = None) -> None:
        name = _type_of(kind)
        if isinstance(kind, str) and ":" in kind:
            if index is not None:
                raise RuntimeError(f"tapegrad: device({kind!r}, {index!r}): the index is given twice")
            index = int(kind.partition(":")[2])
        elif isinstance(kind, device):
            index = kind.index if index is None else index
        elif isinstance(kind, int):  # the accelerator's ordinal: there is no accelerator (PyTorch raises too)
            raise _no_device(kind, "device()")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
            raise RuntimeError(f"tapegrad: device index must be a non-negative int, not {index!r}")
        self.type = name
        self.index = index

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, TypeError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and (self.index == other.index or None in (self.index, other.index))

    def __hash__(self) -> int:
        return hash(self.type)

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __enter__(self) -> "device":  # `with tapegrad.device("cpu"):` makes it the default: it is
        check(self, "with device()")
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __reduce__(self) -> Any:
        return (device, (self.type, self.index))


CPU = device("cpu")


def check(kind: Any, who: str = "") -> None:
    """A ``device=`` argument: None or the CPU, else a RuntimeError naming the device (``who``
    is the function, for the message)."""
    if kind is None or (isinstance(kind, str) and kind in ("cpu", "cpu:0")):
        return
    if _type_of(kind) != "cpu":
        raise _no_device(kind, who)


def set_default_device(kind: Any) -> None:
    """``torch.set_default_device``: the device of new tensors. Only the CPU (or None, the
    default) is accepted."""
    check(kind, "set_default_device")


def get_default_device() -> device:
    """``torch.get_default_device``: always ``device('cpu')``."""
    return CPU


__all__ = ["device", "set_default_device", "get_default_device"]
