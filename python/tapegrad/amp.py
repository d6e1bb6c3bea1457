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
import numbers
import os
import sys
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar, cast

import numpy as np

from . import _core, _device
from ._core import Tensor
from ._dtypes import is_half, numpy_values

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _is_cpu_device_type(device_type: str, who: str) -> bool:
    """Whether device_type is the CPU's. Another device PyTorch has ('cuda', 'mps', ...) is one
    without hardware here: False, and the caller disables itself with a warning, as PyTorch's
    autocast and GradScaler do on a machine without a GPU. Anything else is a ValueError."""
    if device_type == "cpu":
        return True
    if isinstance(device_type, str) and device_type in _device._KNOWN:
        return False
    raise ValueError(f"tapegrad.{who}: device_type must be a device type ('cpu'; 'cuda', 'mps', ... disable it), "
                     f"not {device_type!r}")


def _disabled_warning(device_type: str, who: str) -> None:
    level, frame = 1, sys._getframe(0)  # the warning names the user's line: the first frame outside tapegrad
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"tapegrad.{who}: device_type {device_type!r} is not available (tapegrad computes on the CPU); "
                  "disabling", UserWarning, stacklevel=level)


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def is_autocast_enabled(device_type: str = "cpu") -> bool:
    """Whether autocast is on in this thread (``torch.is_autocast_enabled``)."""
    if not _is_cpu_device_type(device_type, "is_autocast_enabled"):
        return False  # (no autocast on a device that is not there)
    return bool(_core._autocast_state()[0])


def get_autocast_dtype(device_type: str = "cpu") -> Any:
    """The dtype autocast runs matrix products in (``torch.get_autocast_dtype``): bfloat16 unless set."""
    if not _is_cpu_device_type(device_type, "get_autocast_dtype"):
        return np.dtype(np.float16)  # (PyTorch's default for a GPU)
    return _core._autocast_state()[1]


class autocast:
    """``torch.autocast`` for tapegrad: a context manager (and decorator) under which

    - ``matmul``, ``@`` and ``nn.Linear`` run on ``dtype`` (float16 or bfloat16) copies of their
      floating operands, so what they return and what the graph saves for them is 16-bit, and ops
      on their results (``relu``, ``tanh``, ...) stay 16-bit. (PyTorch's autocast leaves float64
      alone; float64 is tapegrad's default dtype, and a default model would not be cast);
    - the reductions (``sum``, ``mean``, ``prod``, ``var``, ``std``, ``logsumexp``, ``cumsum``, ``cumprod``),
      ``softmax``, ``log_softmax`` and the losses of ``tapegrad.nn.functional`` compute and return
      float32 for 16-bit inputs;
    - the copies are recorded casts, so gradients come back in each parameter's own dtype.

    ``dtype=None`` is the enclosing block's dtype (bfloat16 outside any). ``backward()`` may run
    inside or outside the block: derivative sweeps run with autocast off. The state is per
    thread and blocks nest (``enabled=False`` turns it off inside another).
    """

    def __init__(self, device_type: str = "cpu", dtype: Any = None, enabled: bool = True,
                 cache_enabled: Optional[bool] = None) -> None:
        on_cpu = _is_cpu_device_type(device_type, "autocast")
        if not isinstance(enabled, bool):
            raise TypeError(f"tapegrad.autocast: enabled must be a bool, not {type(enabled).__name__}")
        if not on_cpu:
            if enabled:
                _disabled_warning(device_type, "autocast")
            dtype = None  # (a GPU's dtype, float16 by default, is never used here)
        if dtype is not None:
            _check_dtype(dtype)
        self.device = device_type
        self.fast_dtype = dtype
        self._enabled = enabled and on_cpu
        self._on_cpu = on_cpu  # a block for another device leaves the CPU's autocast state as it is
        self._saved: List[Tuple[bool, Any]] = []

    def __enter__(self) -> "autocast":
        if not self._on_cpu:
            return self
        state = _core._autocast_state()
        self._saved.append(state)
        _core._set_autocast(self._enabled, state[1] if self.fast_dtype is None else self.fast_dtype)
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._on_cpu:
            return
        if not self._saved:
            raise RuntimeError("tapegrad.autocast: __exit__ without a matching __enter__")
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
    if isinstance(x, Tensor) and is_half(x.dtype):
        return x.astype(np.float32)
    return x


_STATE_KEYS = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
_FLT_MAX = float(np.finfo(np.float32).max)


def _real(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"tapegrad.amp.GradScaler: {name} must be a number, not {type(x).__name__}")
    return float(x)


def _scale_value(x: Any, name: str) -> float:
    """A scale: a number whose float32 is finite and positive (the scale is a float32, as torch's)."""
    v = _real(x, name)
    if not (math.isfinite(v) and 0 < v <= _FLT_MAX and np.float32(v) > 0):
        raise ValueError(f"tapegrad.amp.GradScaler: {name} must be a positive number that float32 holds "
                         f"(finite, not 0 once rounded), got {x!r}")
    return v


def _growth(x: Any) -> float:
    v = _real(x, "growth_factor")
    if not (math.isfinite(v) and v > 1.0):
        raise ValueError(f"tapegrad.amp.GradScaler: growth_factor must be a finite number > 1.0, got {x!r}")
    return v


def _backoff(x: Any) -> float:
    v = _real(x, "backoff_factor")
    if not 0.0 < v < 1.0:
        raise ValueError(f"tapegrad.amp.GradScaler: backoff_factor must be in (0, 1), got {x!r}")
    return v


def _interval(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x <= 0:
        raise ValueError(f"tapegrad.amp.GradScaler: growth_interval must be a positive int, got {x!r}")
    return int(x)


def _times(scale: Any, factor: float) -> Any:
    """scale * factor in float32 (torch's arithmetic on its float32 scale); inf past float32's range."""
    with np.errstate(over="ignore"):
        return np.float32(scale) * np.float32(factor)


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
        if not _is_cpu_device_type(device, "amp.GradScaler"):
            if enabled:
                _disabled_warning(device, "amp.GradScaler")
            enabled = False
        self._device = device
        self._enabled = bool(enabled)
        self._init_scale = _scale_value(init_scale, "init_scale")
        self._growth_factor = _growth(growth_factor)
        self._backoff_factor = _backoff(backoff_factor)
        self._growth_interval = _interval(growth_interval)
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
                found = found or not bool(np.isfinite(numpy_values(g)).all())
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
            if isinstance(new_scale, Tensor):
                if new_scale.numel() != 1:
                    raise ValueError("tapegrad.amp.GradScaler.update: new_scale must be a number or a one-element "
                                     f"tensor, not a tensor of shape {tuple(new_scale.shape)}")
                new_scale = new_scale.item()
            self._scale = np.float32(_scale_value(new_scale, "new_scale"))
        else:
            found = [s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None]
            assert found, "No inf checks were recorded prior to update."
            assert self._scale is not None
            if any(found):
                self._scale = _times(self._scale, self._backoff_factor)
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    grown = _times(self._scale, self._growth_factor)
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
        self._growth_factor = _growth(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = _backoff(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = _interval(new_interval)

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
        if not isinstance(state_dict, Mapping):
            raise TypeError("tapegrad.amp.GradScaler.load_state_dict: expected a dict, not "
                            f"{type(state_dict).__name__}")
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        missing = [k for k in _STATE_KEYS if k not in state_dict]
        if missing:
            raise KeyError(f"tapegrad.amp.GradScaler.load_state_dict: the state dict lacks {missing}")
        # every value checked before any is set
        scale = _scale_value(state_dict["scale"], "scale")
        growth, backoff = _growth(state_dict["growth_factor"]), _backoff(state_dict["backoff_factor"])
        interval = _interval(state_dict["growth_interval"])
        tracker = state_dict["_growth_tracker"]
        if not isinstance(tracker, numbers.Integral) or isinstance(tracker, bool) or not 0 <= int(tracker) < interval:
            raise ValueError("tapegrad.amp.GradScaler.load_state_dict: _growth_tracker must be an int in "
                             f"[0, growth_interval), got {tracker!r}")
        self._init_scale = scale
        if self._scale is not None:
            self._scale = np.float32(scale)
        self._growth_factor, self._backoff_factor, self._growth_interval = growth, backoff, interval
        self._growth_tracker = int(tracker)

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_per_optimizer"] = {}
        return state
