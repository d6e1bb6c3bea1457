"""Mixed precision, as ``torch.amp``: ``autocast`` (16-bit matrix products, float32 reductions
and losses) and ``GradScaler`` (loss scaling that skips the steps whose gradients overflowed).

    model = tg.nn.Sequential(tg.nn.Linear(784, 256), tg.nn.ReLU(), tg.nn.Linear(256, 10))
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    scaler = tg.amp.GradScaler()
    with tg.autocast(dtype=tg.bfloat16):
        loss = tg.nn.functional.cross_entropy(model(x), y)   # float32
    scaler.scale(loss).backward()      # the parameters' .grad are float32, scaled
    scaler.step(opt)                   # unscales; skips the step if a gradient is inf or NaN
    scaler.update()                    # grows or backs off the scale
"""

from __future__ import annotations

import enum
import functools
import math
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, cast

import numpy as np

from . import _core
from ._core import Tensor
from ._dtypes import bfloat16

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _check_device(device_type: str, who: str) -> None:
    if device_type != "cpu":
        raise ValueError(f"tapegrad.{who}: tapegrad runs on the CPU, so device_type must be 'cpu', not {device_type!r}")


def is_autocast_enabled(device_type: str = "cpu") -> bool:
    """Whether autocast is on in this thread (``torch.is_autocast_enabled``)."""
    _check_device(device_type, "is_autocast_enabled")
    return bool(_core._autocast_state()[0])


def get_autocast_dtype(device_type: str = "cpu") -> Any:
    """The dtype autocast runs matrix products in (``torch.get_autocast_dtype``): bfloat16 unless set."""
    _check_device(device_type, "get_autocast_dtype")
    return _core._autocast_state()[1]


class autocast:
    """``torch.autocast`` for tapegrad: a context manager (and decorator) under which

    - ``matmul``, ``@`` and ``nn.Linear`` run on ``dtype`` (float16 or bfloat16) copies of their
      float32 operands, so what they return and what the graph saves for them is 16-bit, and ops on
      their results (``relu``, ``tanh``, ...) stay 16-bit;
    - the reductions (``sum``, ``mean``, ``prod``, ``var``, ``std``, ``logsumexp``), ``softmax``,
      ``log_softmax`` and the losses of ``tapegrad.nn.functional`` compute and return float32;
    - the copies are recorded casts, so gradients come back in each parameter's own dtype.

    ``backward()`` may run inside or outside the block: derivative sweeps run with autocast off.
    The state is per thread and blocks nest (``enabled=False`` turns it off inside another).
    """

    def __init__(self, device_type: str = "cpu", dtype: Any = None, enabled: bool = True,
                 cache_enabled: Optional[bool] = None) -> None:
        _check_device(device_type, "autocast")
        if not isinstance(enabled, bool):
            raise TypeError(f"tapegrad.autocast: enabled must be a bool, not {type(enabled).__name__}")
        self.device = device_type
        self.fast_dtype = bfloat16 if dtype is None else dtype
        self._enabled = enabled
        self._saved: List[Tuple[bool, Any]] = []
        _check_dtype(self.fast_dtype)

    def __enter__(self) -> "autocast":
        self._saved.append(_core._autocast_state())
        _core._set_autocast(self._enabled, self.fast_dtype)
        return self

    def __exit__(self, *exc: Any) -> None:
        enabled, dtype = self._saved.pop()
        _core._set_autocast(enabled, dtype)

    def __call__(self, fn: _F) -> _F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.device, self.fast_dtype, self._enabled):
                return fn(*args, **kwargs)

        return cast(_F, run)


def _check_dtype(dtype: Any) -> None:
    """A ValueError (or TypeError) now, for a dtype autocast cannot run in, rather than at ``with``."""
    enabled, current = _core._autocast_state()
    _core._set_autocast(enabled, dtype)  # validates; restores below
    _core._set_autocast(enabled, current)


def _float32_under_autocast(fn: _F) -> _F:
    """A loss that computes in float32 under autocast: its 16-bit tensor arguments are widened first."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if _core._autocast_state()[0]:
            args = tuple(_widen(a) for a in args)
            kwargs = {k: _widen(v) for k, v in kwargs.items()}
        return fn(*args, **kwargs)

    return cast(_F, run)


def _widen(x: Any) -> Any:
    if isinstance(x, Tensor) and x.dtype.itemsize == 2 and x.dtype.kind in "fV":
        return x.astype(np.float32)
    return x


class _Stage(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _fresh_state() -> Dict[str, Any]:
    return {"stage": _Stage.READY, "found_inf": None}


class GradScaler:
    """``torch.amp.GradScaler``: multiplies the loss by a scale before ``backward()`` so that small
    gradients survive 16-bit arithmetic, divides the gradients by it before the optimizer's step,
    skips the steps whose gradients hold an inf or NaN, and adapts the scale: times
    ``backoff_factor`` after a skipped step, times ``growth_factor`` after ``growth_interval``
    steps in a row without one. The scale is a float32, as torch's, so the sequence of scales is
    torch's on the same sequence of finite and non-finite steps.

    With ``enabled=False`` every method passes through (``scale`` returns its argument, ``step``
    calls ``optimizer.step()``), so one training loop serves both.
    """

    def __init__(self, device: str = "cpu", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        _check_device(device, "amp.GradScaler")
        if not growth_factor > 1.0:
            raise ValueError(f"tapegrad.amp.GradScaler: growth_factor must be > 1.0, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"tapegrad.amp.GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if not isinstance(growth_interval, int) or isinstance(growth_interval, bool) or growth_interval <= 0:
            raise ValueError(
                f"tapegrad.amp.GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        if not (isinstance(init_scale, (int, float)) and math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(
                f"tapegrad.amp.GradScaler: init_scale must be a finite positive number, got {init_scale!r}")
        self._device = device
        self._enabled = bool(enabled)
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._scale: Optional[np.float32] = None  # made by the first scale(), as torch's
        self._growth_tracker = 0
        self._per_optimizer: Dict[int, Dict[str, Any]] = {}

    # --- the training-loop calls -------------------------------------------------------------

    def scale(self, outputs: Any) -> Any:
        """``outputs`` (a tensor, or lists and tuples of them) times the current scale."""
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._scale = np.float32(self._init_scale)
        s = float(self._scale)

        def apply(v: Any) -> Any:
            if isinstance(v, Tensor):
                return v * s
            if isinstance(v, (list, tuple)):
                return type(v)(apply(x) for x in v)
            raise ValueError("tapegrad.amp.GradScaler.scale: outputs must be a Tensor or an iterable of Tensors, "
                             f"not {type(v).__name__}")

        return apply(outputs)

    def unscale_(self, optimizer: Any) -> None:
        """Divides ``optimizer``'s gradients by the scale, in place, and notes whether any is inf or NaN
        (then ``step`` skips). At most once per optimizer between ``update()``s, before ``step``."""
        if not self._enabled:
            return
        self._check_scale("unscale_")
        state = self._per_optimizer.setdefault(id(optimizer), _fresh_state())
        if state["stage"] is _Stage.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is _Stage.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        assert self._scale is not None
        inv = float(np.float32(1.0 / float(self._scale)))  # torch: scale.double().reciprocal().float()
        found = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.dtype == np.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                values = g.astype(np.float32).numpy() if g.dtype.name == "bfloat16" else g.numpy()
                found = found or not bool(np.isfinite(values).all())
                g *= inv
        state["found_inf"] = found
        state["stage"] = _Stage.UNSCALED

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """``optimizer.step()`` on unscaled gradients (``unscale_`` first if it was not called), or
        nothing when a gradient was inf or NaN. Returns what ``optimizer.step`` returned, or None."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale("step")
        state = self._per_optimizer.setdefault(id(optimizer), _fresh_state())
        if state["stage"] is _Stage.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is _Stage.READY:
            self.unscale_(optimizer)
        result = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = _Stage.STEPPED
        return result

    def update(self, new_scale: Any = None) -> None:
        """Backs the scale off if any optimizer's step was skipped since the last update, else counts a
        good step and grows it every ``growth_interval`` of them; or sets it to ``new_scale``."""
        if not self._enabled:
            return
        self._check_scale("update")
        if new_scale is not None:
            value = float(new_scale.item() if isinstance(new_scale, Tensor) else new_scale)
            if isinstance(new_scale, Tensor) and new_scale.numel() != 1:
                raise ValueError("tapegrad.amp.GradScaler.update: new_scale must be a number or a one-element tensor")
            self._scale = np.float32(value)
        else:
            found = [s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None]
            assert found, "No inf checks were recorded prior to update."
            assert self._scale is not None
            if any(found):
                self._scale = np.float32(self._scale * np.float32(self._backoff_factor))
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    grown = np.float32(self._scale * np.float32(self._growth_factor))
                    if np.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
        self._per_optimizer = {}

    # --- accessors and state -------------------------------------------------------------------

    def _check_scale(self, name: str) -> None:
        if self._scale is None:
            raise AssertionError(f"Attempted {name} but _scale is None.  This may indicate your script did not use "
                                 "scaler.scale(loss or outputs) earlier in the iteration.")

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        """The current scale (the initial one before the first ``scale()``; 1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return float(self._init_scale if self._scale is None else self._scale)

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self) -> int:
        return self._growth_tracker if self._enabled else 0

    def state_dict(self) -> Dict[str, Any]:
        """torch's keys: ``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``,
        ``_growth_tracker`` (empty when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._scale = np.float32(self._init_scale)
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_per_optimizer"] = {}
        return state
