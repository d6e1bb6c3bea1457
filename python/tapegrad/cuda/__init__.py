"""``torch.cuda`` as it answers on a machine without a GPU: tapegrad computes on the CPU.

The probes PyTorch programs open with answer as PyTorch's do there, so their usual guards take
the CPU path: ``is_available()`` is False and ``device_count()`` 0; ``manual_seed`` and
``manual_seed_all`` do nothing (PyTorch queues them until a GPU is first used, which never
happens), nor does ``empty_cache``. What needs a GPU (``synchronize``, ``current_device``,
``get_device_name``, ``set_device``, ...) raises a RuntimeError naming itself, as PyTorch
raises there. ``tapegrad.cuda.amp`` has the old spellings of mixed precision.
"""

from __future__ import annotations

from typing import Any, NoReturn

from . import amp


def is_available() -> bool:
    """Whether a CUDA GPU can be used: never, in tapegrad (``torch.cuda.is_available``)."""
    return False


def device_count() -> int:
    """How many CUDA GPUs there are: 0."""
    return 0


def is_initialized() -> bool:
    """Whether CUDA was initialised: never."""
    return False


def manual_seed(seed: int) -> None:
    """Seeds the GPU's generator: nothing to seed (PyTorch ignores it without a GPU, too)."""
    int(seed)  # (a non-number still raises, as PyTorch's does)


def manual_seed_all(seed: int) -> None:
    """Seeds every GPU's generator: nothing to seed."""
    int(seed)


def empty_cache() -> None:
    """Releases the GPU memory cache: there is none."""


def _no_gpu(name: str) -> Any:
    def f(*args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(f"tapegrad.cuda.{name}(): there is no CUDA device: tapegrad computes on the CPU only "
                           "(guard the call with `if tapegrad.cuda.is_available():`)")

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Needs a CUDA GPU (``torch.cuda.{name}``): raises RuntimeError in tapegrad."
    return f


synchronize = _no_gpu("synchronize")
current_device = _no_gpu("current_device")
set_device = _no_gpu("set_device")
get_device_name = _no_gpu("get_device_name")
get_device_properties = _no_gpu("get_device_properties")
get_device_capability = _no_gpu("get_device_capability")
memory_allocated = _no_gpu("memory_allocated")
max_memory_allocated = _no_gpu("max_memory_allocated")

__all__ = ["amp", "is_available", "device_count", "is_initialized", "manual_seed", "manual_seed_all", "empty_cache",
           "synchronize", "current_device", "set_device", "get_device_name", "get_device_properties",
           "get_device_capability", "memory_allocated", "max_memory_allocated"]
