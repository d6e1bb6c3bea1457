"""Layers (``torch.nn.Linear``, ``Embedding``, ``LayerNorm``, ``GroupNorm``, ``BatchNorm1d/2d``, ``Dropout``,
``Flatten``, ``Identity``) and the activation modules; each ``forward`` calls its function in
``tapegrad.nn.functional``."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from .._core import Tensor
from .._device import check as _check_device
from . import functional as F
from . import init
from .module import Module, Parameter, _default_dtype


def _empty(shape: Tuple[int, ...], dtype: Any) -> Parameter:
    return Parameter(np.zeros(shape, dtype=_default_dtype() if dtype is None else dtype))


class Identity(Module):
    """Returns its input (``torch.nn.Identity``); its arguments are ignored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Linear(Module):
    """y = x @ weight.T + bias, weight of shape (out_features, in_features) (``torch.nn.Linear``), initialised
    as torch's: weight and bias from U(-1/sqrt(in_features), 1/sqrt(in_features))."""

    weight: Parameter
    bias: Optional[Parameter]

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        _check_device(device, type(self).__name__)
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = _empty((out_features, in_features), dtype)
        if bias:
            self.bias = _empty((out_features,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation: kaiming_uniform_(a=sqrt(5)) for the weight, U(-1/sqrt(fan_in), ...) for bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: ``weight[input]`` for integer ``input`` (``torch.nn.Embedding``), weight from N(0, 1)
    with the row ``padding_idx`` zero (and getting no gradient)."""

    weight: Parameter

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None,
                 max_norm: Optional[float] = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Any = None, _freeze: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        _check_device(device, type(self).__name__)
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                                 f"({num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = _empty((num_embeddings, embedding_dim), dtype)
            self.reset_parameters()
        else:
            self.weight = Parameter(_weight, requires_grad=not _freeze)
            if self.weight.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {self.weight.shape}, expected "
                                 f"({num_embeddings}, {embedding_dim})")

    def reset_parameters(self) -> None:
        """N(0, 1), with the padding row zero."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            values = self.weight.numpy().copy()
            values[self.padding_idx] = 0
            init._assign(self.weight, values)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True, padding_idx: Optional[int] = None,
                        max_norm: Optional[float] = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding holding a copy of the 2-d ``embeddings`` (not trained if ``freeze``)."""
        shape = np.shape(embeddings.numpy() if isinstance(embeddings, Tensor) else embeddings)
        if len(shape) != 2:
            raise ValueError(f"Embeddings parameter is expected to be 2-dimensional, got shape {shape}")
        return cls(shape[0], shape[1], padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, input: Any) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse:
            s += ", sparse=True"
        return s


class LayerNorm(Module):
    """Normalisation over the trailing ``normalized_shape`` axes, then an elementwise affine map
    (``torch.nn.LayerNorm``: weight ones, bias zeros)."""

    weight: Optional[Parameter]
    bias: Optional[Parameter]

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        _check_device(device, type(self).__name__)
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = _empty(self.normalized_shape, dtype)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = _empty(self.normalized_shape, dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalisation over groups of channels (``torch.nn.GroupNorm``): the C channels of an (N, C, *)
    input split into ``num_groups`` groups, each normalised over its channels and the other axes, then
    ``* weight + bias`` per channel (weight ones, bias zeros)."""

    weight: Optional[Parameter]
    bias: Optional[Parameter]

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: Any = None, dtype: Any = None, *, bias: bool = True) -> None:
        _check_device(device, type(self).__name__)
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = int(num_groups), int(num_channels), eps, affine
        if affine:
            self.weight = _empty((self.num_channels,), dtype)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = _empty((self.num_channels,), dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class _BatchNorm(Module):
    """PyTorch's batch normalisation layers' shared body: per-channel weight (ones) and bias
    (zeros), running mean (zeros) and variance (ones) as buffers with ``num_batches_tracked``."""

    _dims: Tuple[int, ...] = ()  # the input ranks the layer takes
    weight: Optional[Parameter]
    bias: Optional[Parameter]

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *, bias: bool = True) -> None:
        _check_device(device, type(self).__name__)
        super().__init__()
        self.num_features = int(num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = _empty((self.num_features,), dtype)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = _empty((self.num_features,), dtype)
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            dt = _default_dtype() if dtype is None else dtype
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype=dt)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean to zeros, variance to ones, the batch count to 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self._dims:
            raise ValueError(f"expected {' or '.join(f'{d}D' for d in self._dims)} input (got {input.ndim}D input)")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or self.running_mean is None
        mean, var = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return F.batch_norm(input, mean, var, self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel (``torch.nn.BatchNorm1d``):
    in training the batch's statistics (and a running average of them, ``momentum`` 0.1; None: a
    cumulative average), in eval mode the running ones; then ``* weight + bias``."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, per channel (``torch.nn.BatchNorm2d``): in
    training the batch's statistics (and a running average of them), in eval mode the running
    ones; then ``* weight + bias``."""

    _dims = (4,)


class Dropout(Module):
    """In training mode, zeroes elements with probability ``p`` and scales the rest by 1/(1 - p); the identity
    in eval mode (``torch.nn.Dropout``)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = F._dropout_p(p)
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    """Zeroes whole channels of an (N, C, L) input with probability ``p`` in training mode, scaling
    the rest by 1/(1 - p) (``torch.nn.Dropout1d``)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(Dropout):
    """Zeroes whole channels of an (N, C, H, W) input with probability ``p`` in training mode,
    scaling the rest by 1/(1 - p) (``torch.nn.Dropout2d``)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Flatten(Module):
    """Merges the axes ``start_dim`` to ``end_dim`` into one (``torch.nn.Flatten``)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            raise TypeError(f"Flatten: input must be a tapegrad Tensor, not {type(input).__name__}")
        shape = input.shape
        if not shape:
            return input.reshape((1,))
        start, end = self.start_dim % len(shape), self.end_dim % len(shape)
        if start > end:
            raise ValueError(f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} "
                             f"for an input of shape {shape}")
        return input.reshape(shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# --- activations ----------------------------------------------------------------------------------------------


class _Inplace(Module):
    """An activation with torch's ``inplace`` flag (accepted; computed out of place)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Inplace):
    """max(x, 0) (``torch.nn.ReLU``)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)


class SiLU(_Inplace):
    """x * sigmoid(x) (``torch.nn.SiLU``)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.silu(input)


class LeakyReLU(_Inplace):
    """x for x > 0, else negative_slope * x (``torch.nn.LeakyReLU``)."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.negative_slope = negative_slope

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(_Inplace):
    """x for x > 0, else alpha * (exp(x) - 1) (``torch.nn.ELU``)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = alpha

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Tanh(Module):
    """The hyperbolic tangent (``torch.nn.Tanh``)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Sigmoid(Module):
    """1 / (1 + exp(-x)) (``torch.nn.Sigmoid``)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Softplus(Module):
    """log(1 + exp(beta x)) / beta, linear above ``threshold`` (``torch.nn.Softplus``)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class GELU(Module):
    """x * Phi(x), or its tanh approximation (``torch.nn.GELU``)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', not {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``dim`` (``torch.nn.Softmax``)."""

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """x - logsumexp(x) along ``dim`` (``torch.nn.LogSoftmax``)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.log_softmax(input, self.dim, _stacklevel=5)
