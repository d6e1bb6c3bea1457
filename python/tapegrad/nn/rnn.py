"""Recurrent layers (``torch.nn.RNN``, ``LSTM``, ``GRU`` and their cells ``RNNCell``, ``LSTMCell``, ``GRUCell``)
with PyTorch's parameters, names, initialisation, shapes and options (layers, bidirectional, batch_first,
dropout between layers, LSTM's proj_size, unbatched inputs).

Each layer and direction runs natively over the whole sequence (``tapegrad::rnn_layer`` in the C++ core:
the input projections of all steps in one product, then the recurrence with PyTorch's formulas, recorded op
by op so that every sweep differentiates it); a cell is one step of it.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, List, Optional, Tuple

from .. import _core
from .._core import Tensor
from .._device import check as _check_device
from .._tensor import concatenate, stack
from . import functional as F
from . import init
from .layers import _empty
from .module import Module, Parameter

_ops = _core.tensor_ops
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _check_sizes(name: str, input_size: Any, hidden_size: Any) -> None:
    for what, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"{name}: {what} should be of type int, got: {type(v).__name__}")
    if hidden_size <= 0:
        raise ValueError(f"{name}: hidden_size must be greater than zero, got {hidden_size}")
    if input_size < 0:
        raise ValueError(f"{name}: input_size must be at least zero, got {input_size}")


class RNNBase(Module):
    """The shared body of ``RNN``, ``LSTM`` and ``GRU`` (``torch.nn.RNNBase``): the parameters
    ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (and ``weight_hr_l{k}`` with
    proj_size), ``_reverse`` for the second direction, all from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""

    mode: str
    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    dropout: float
    bidirectional: bool
    proj_size: int

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        name = type(self).__name__
        _check_device(device, name)
        super().__init__()
        _check_sizes(name, input_size, hidden_size)
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if not isinstance(num_layers, numbers.Integral) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be greater than zero, got {num_layers}")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          stacklevel=3)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, int(proj_size)
        directions = 2 if bidirectional else 1
        real_hidden = proj_size if proj_size > 0 else hidden_size
        gate_size = _GATES[mode] * hidden_size
        self._flat_weights_names: List[str] = []
        for layer in range(num_layers):
            for direction in range(directions):
                layer_input = input_size if layer == 0 else real_hidden * directions
                suffix = "_reverse" if direction == 1 else ""
                shapes = [(f"weight_ih_l{layer}{suffix}", (gate_size, layer_input)),
                          (f"weight_hh_l{layer}{suffix}", (gate_size, real_hidden))]
                if bias:
                    shapes += [(f"bias_ih_l{layer}{suffix}", (gate_size,)), (f"bias_hh_l{layer}{suffix}", (gate_size,))]
                if proj_size > 0:
                    shapes.append((f"weight_hr_l{layer}{suffix}", (proj_size, hidden_size)))
                for pname, shape in shapes:
                    setattr(self, pname, _empty(shape, dtype))
                    self._flat_weights_names.append(pname)
        self.reset_parameters()

    @property
    def all_weights(self) -> List[List[Parameter]]:
        """The parameters per layer and direction, as PyTorch's ``all_weights``."""
        per = 2 + 2 * self.bias + (self.proj_size > 0)
        ws = [getattr(self, n) for n in self._flat_weights_names]
        return [ws[i:i + per] for i in range(0, len(ws), per)]

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for n in self._flat_weights_names:
            init.uniform_(getattr(self, n), -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    def _states(self, hx: Any, n: int, dtype: Any, batched: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """(h0, c0) of shape (layers * directions, N, ...), each None for zeros."""
        name = type(self).__name__
        directions = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        if hx is None:
            return None, None
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: hx must be a tuple (h_0, c_0) of tensors")
            h, c = hx
        else:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{name}: hx must be a Tensor, not {type(hx).__name__}")
            h, c = hx, None
        wants = [(h, "hidden", real_hidden)] + ([(c, "cell", self.hidden_size)] if c is not None else [])
        out: List[Tensor] = []
        for t, what, size in wants:
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: the {what} state must be a Tensor, not {type(t).__name__}")
            if not batched:
                if t.ndim != 2:
                    raise ValueError(f"{name}: for an unbatched 2-D input, the {what} state should also be 2-D but "
                                     f"got a {t.ndim}-D tensor")
                t = t.unsqueeze(1)
            want = (self.num_layers * directions, n, size)
            if t.shape != want:
                raise ValueError(f"{name}: expected {what} size {want}, got {t.shape}")
            out.append(t)
        return out[0], (out[1] if len(out) > 1 else None)

    def forward(self, input: Tensor, hx: Any = None) -> Tuple[Tensor, Any]:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a tapegrad Tensor, not {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[2] != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {x.shape[2]}")
        h0, c0 = self._states(hx, x.shape[1], input.dtype, batched)
        directions = 2 if self.bidirectional else 1
        hs: List[Tensor] = []
        cs: List[Tensor] = []
        weights = self.all_weights
        for layer in range(self.num_layers):
            outs = []
            for d in range(directions):
                k = layer * directions + d
                w = weights[k]
                w_ih, w_hh = w[0], w[1]
                b_ih, b_hh = (w[2], w[3]) if self.bias else (None, None)
                w_hr = w[-1] if self.proj_size > 0 else None
                out, h, c = _ops._rnn_layer(self.mode, x, None if h0 is None else h0[k],
                                            None if c0 is None else c0[k], w_ih, w_hh, b_ih, b_hh, w_hr, d == 1)
                outs.append(out)
                hs.append(h)
                if c is not None:
                    cs.append(c)
            x = outs[0] if directions == 1 else concatenate(outs, 2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = stack(hs, 0)
        c_n = stack(cs, 0) if cs else None
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        if not batched:
            x = x.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        return x, ((h_n, c_n) if self.mode == "LSTM" else h_n)


class RNN(RNNBase):
    """An Elman RNN (``torch.nn.RNN``): h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (``nonlinearity``
    ``'relu'`` for relu), over ``num_layers`` layers; ``forward(input, h_0=None)`` returns (output, h_n),
    output of shape (L, N, D * hidden_size) ((N, L, ...) with batch_first), h_n (D * num_layers, N,
    hidden_size)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None, *, proj_size: int = 0) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, proj_size, device, dtype)


class LSTM(RNNBase):
    """Long short-term memory (``torch.nn.LSTM``): gates i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of
    x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh; c_t = f c_{t-1} + i g; h_t = o tanh(c_t) (times W_hr^T with
    proj_size). ``forward(input, (h_0, c_0)=None)`` returns (output, (h_n, c_n))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent units (``torch.nn.GRU``): r, z = sigmoid of the input and hidden projections' sums,
    n = tanh(x_t W_in^T + b_in + r (h_{t-1} W_hn^T + b_hn)), h_t = (1 - z) n + z h_{t-1}.
    ``forward(input, h_0=None)`` returns (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None, *, proj_size: int = 0) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


# --- cells ------------------------------------------------------------------------------------------------------


class RNNCellBase(Module):
    """The shared body of the cells: ``weight_ih`` (G H, input_size), ``weight_hh`` (G H, H), ``bias_ih``,
    ``bias_hh``, from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)); one step of the layer's recurrence."""

    _mode = "RNN_TANH"
    weight_ih: Parameter
    weight_hh: Parameter
    bias_ih: Optional[Parameter]
    bias_hh: Optional[Parameter]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        name = type(self).__name__
        _check_device(device, name)
        super().__init__()
        _check_sizes(name, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bias
        g = _GATES[self._mode] * hidden_size
        self.weight_ih = _empty((g, input_size), dtype)
        self.weight_hh = _empty((g, hidden_size), dtype)
        if bias:
            self.bias_ih = _empty((g,), dtype)
            self.bias_hh = _empty((g,), dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nonlinearity = getattr(self, "nonlinearity", "tanh")
        return s if nonlinearity == "tanh" else s + f", nonlinearity={nonlinearity}"

    def _step(self, input: Tensor, hx: Any) -> Tuple[Tensor, Optional[Tensor], bool]:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a tapegrad Tensor, not {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if x.shape[1] != self.input_size:
            raise ValueError(f"{name}: input has inconsistent input_size: got {x.shape[1]} expected "
                             f"{self.input_size}")
        h0: Optional[Tensor] = None
        c0: Optional[Tensor] = None
        if hx is not None:
            pair = isinstance(hx, (tuple, list))
            if pair != (self._mode == "LSTM"):
                raise TypeError(f"{name}: hx must be " + ("a tuple (h, c)" if self._mode == "LSTM" else "a Tensor"))
            states = list(hx) if pair else [hx]
            fixed = []
            for t in states:
                if not isinstance(t, Tensor):
                    raise TypeError(f"{name}: a state must be a Tensor, not {type(t).__name__}")
                t = t if batched else t.unsqueeze(0)
                if t.shape != (x.shape[0], self.hidden_size):
                    raise ValueError(f"{name}: hidden state has shape {t.shape}, expected "
                                     f"{(x.shape[0], self.hidden_size)}")
                fixed.append(t)
            h0 = fixed[0]
            c0 = fixed[1] if len(fixed) > 1 else None
        _, h, c = _ops._rnn_layer(self._mode, x.unsqueeze(0), h0, c0, self.weight_ih, self.weight_hh, self.bias_ih,
                                  self.bias_hh, None, False)
        return h, c, batched


class RNNCell(RNNCellBase):
    """One step of an Elman RNN (``torch.nn.RNNCell``): h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)
    (``nonlinearity='relu'``: relu); ``forward(input, hx=None)`` returns h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        h, _, batched = self._step(input, hx)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One step of an LSTM (``torch.nn.LSTMCell``): ``forward(input, (h, c)=None)`` returns (h', c')."""

    _mode = "LSTM"

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None) -> Tuple[Tensor, Tensor]:
        h, c, batched = self._step(input, hx)
        assert c is not None
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One step of a GRU (``torch.nn.GRUCell``): ``forward(input, hx=None)`` returns h'."""

    _mode = "GRU"

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        h, _, batched = self._step(input, hx)
        return h if batched else h.squeeze(0)


__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
