"""Convolution and pooling layers (``torch.nn.Conv2d``, ``ConvTranspose2d``, ``MaxPool2d``, ``AvgPool2d``,
``AdaptiveAvgPool2d`` and their 1-d and 3-d forms); each ``forward`` calls its function in
``tapegrad.nn.functional``, and the parameters are initialised as PyTorch's."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple, Union

from .._core import Tensor
from .._device import check as _check_device
from . import _conv as C
from . import init
from .layers import _empty
from .module import Module, Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """The shared body of the convolutions: the weight (kaiming_uniform_ with a = sqrt(5)) and the bias
    (U(-1/sqrt(fan_in), 1/sqrt(fan_in))), as PyTorch's ``_ConvNd``."""

    _d = 0
    _transposed = False
    weight: Parameter
    bias: Optional[Parameter]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Union[str, Any] = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None, output_padding: Any = 0) -> None:
        name = type(self).__name__
        _check_device(device, name)
        super().__init__()
        d = self._d
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, not {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = C._ints(kernel_size, d, name, "kernel_size")
        self.stride = C._ints(stride, d, name, "stride")
        self.dilation = C._ints(dilation, d, name, "dilation")
        self.output_padding = C._ints(output_padding, d, name, "output_padding")
        self.transposed = self._transposed
        self.padding_mode = padding_mode
        self.padding: Union[str, Tuple[int, ...]]
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self._transposed:
                raise ValueError(f"{name}: padding {padding!r} must be 'valid', 'same' or ints")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = C._ints(padding, d, name, "padding")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f'{name}: only "zeros" padding_mode is supported')
        shape = ((in_channels, out_channels // groups) if self._transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = _empty(shape, dtype)
        if bias:
            self.bias = _empty((out_channels,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: kaiming_uniform_(a=sqrt(5)) for the weight, U(-1/sqrt(fan_in), ...) for the
        bias, fan_in = weight.shape[1] * the kernel's size."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _reversed_padding(self) -> List[int]:
        """F.pad's (before, after) pairs from the last axis back, for a padding_mode other than zeros."""
        if isinstance(self.padding, str):
            lo, hi = C._same_padding(type(self).__name__, self._d, self.weight, self.stride, self.dilation) \
                if self.padding == "same" else ([0] * self._d, [0] * self._d)
        else:
            lo = hi = list(self.padding)
        return [p for k in reversed(range(self._d)) for p in (lo[k], hi[k])]

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if self.padding_mode != "zeros":
            padded = C.pad(input, self._reversed_padding(), mode=self.padding_mode)
            return C._conv(self._d, f"conv{self._d}d", padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return C._conv(self._d, f"conv{self._d}d", input, weight, bias, self.stride, self.padding, self.dilation,
                       self.groups)

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._d:
            s += f", padding={self.padding}"  # (a string without quotes, as PyTorch's)
        if self.dilation != (1,) * self._d:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._d:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """A 1-d convolution over (N, C_in, L) inputs (``torch.nn.Conv1d``): weight (C_out, C_in / groups, k)."""

    _d = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Union[str, Any] = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         device, dtype)


class Conv2d(_ConvNd):
    """A 2-d convolution over (N, C_in, H, W) inputs (``torch.nn.Conv2d``): weight (C_out, C_in / groups, kh,
    kw), bias (C_out); ``stride``, ``padding`` (ints, ``'same'`` or ``'valid'``), ``dilation`` and ``groups``
    as in ``functional.conv2d``; ``padding_mode`` ``'zeros'``, ``'reflect'``, ``'replicate'`` or
    ``'circular'``."""

    _d = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Union[str, Any] = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         device, dtype)


class Conv3d(_ConvNd):
    """A 3-d convolution over (N, C_in, D, H, W) inputs (``torch.nn.Conv3d``)."""

    _d = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Union[str, Any] = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         device, dtype)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         device, dtype, output_padding)

    def _output_padding(self, input: Tensor, output_size: Optional[Sequence[int]]) -> Tuple[int, ...]:
        """The output_padding that gives ``output_size`` (its last d entries), as PyTorch's."""
        if output_size is None:
            return self.output_padding
        d, name = self._d, type(self).__name__
        want = [int(s) for s in output_size][-d:]
        if len(want) != d:
            raise ValueError(f"{name}: output_size must have {d} or {d + 2} elements, got {tuple(output_size)}")
        pads: List[int] = []
        for i in range(d):
            n = input.shape[input.ndim - d + i]
            assert not isinstance(self.padding, str)
            least = (n - 1) * self.stride[i] - 2 * self.padding[i] + self.dilation[i] * (self.kernel_size[i] - 1) + 1
            extra = want[i] - least
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"{name}: requested an output size of {tuple(want)}, but valid sizes along axis {i} "
                                 f"range from {least} to {least + max(self.stride[i], self.dilation[i]) - 1}")
            pads.append(extra)
        return tuple(pads)

    def forward(self, input: Tensor, output_size: Optional[Sequence[int]] = None) -> Tensor:
        d = self._d
        assert not isinstance(self.padding, str)
        return C._conv_transpose(d, f"conv_transpose{d}d", input, self.weight, self.bias, self.stride, self.padding,
                                 self._output_padding(input, output_size), self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """The transposed 1-d convolution (``torch.nn.ConvTranspose1d``): weight (C_in, C_out / groups, k)."""

    _d = 1


class ConvTranspose2d(_ConvTransposeNd):
    """The transposed 2-d convolution (``torch.nn.ConvTranspose2d``), the layer that upsamples in decoders and
    GANs: weight (C_in, C_out / groups, kh, kw); ``forward(input, output_size=None)`` picks the
    output_padding that gives ``output_size``."""

    _d = 2


class ConvTranspose3d(_ConvTransposeNd):
    """The transposed 3-d convolution (``torch.nn.ConvTranspose3d``)."""

    _d = 3


# --- pooling --------------------------------------------------------------------------------------------------


class _MaxPoolNd(Module):
    _d = 0

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.padding, self.dilation = kernel_size, padding, dilation
        self.stride = kernel_size if stride is None else stride
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor) -> Any:
        d = self._d
        return C._max_pool(d, f"max_pool{d}d", input, self.kernel_size, self.stride, self.padding, self.dilation,
                           self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """The largest element of each window of the last axis (``torch.nn.MaxPool1d``)."""

    _d = 1


class MaxPool2d(_MaxPoolNd):
    """The largest element of each kernel_size window of the last two axes (``torch.nn.MaxPool2d``); stride
    defaults to kernel_size. See ``functional.max_pool2d``."""

    _d = 2


class MaxPool3d(_MaxPoolNd):
    """The largest element of each window of the last three axes (``torch.nn.MaxPool3d``)."""

    _d = 3


class _AvgPoolNd(Module):
    _d = 0

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: Optional[int] = None) -> None:
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        d = self._d
        return C._avg_pool(d, f"avg_pool{d}d", input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                           self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """The mean of each window of the last axis (``torch.nn.AvgPool1d``)."""

    _d = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        def one(v: Any) -> Tuple[int, ...]:  # tuples, as PyTorch's AvgPool1d keeps them
            return C._ints(v, 1, "AvgPool1d", "an argument")

        super().__init__(one(kernel_size), one(kernel_size if stride is None else stride), one(padding), ceil_mode,
                         count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """The mean of each kernel_size window of the last two axes (``torch.nn.AvgPool2d``); stride defaults to
    kernel_size. See ``functional.avg_pool2d``."""

    _d = 2


class AvgPool3d(_AvgPoolNd):
    """The mean of each window of the last three axes (``torch.nn.AvgPool3d``)."""

    _d = 3


class _AdaptiveAvgPoolNd(Module):
    _d = 0

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        d = self._d
        return C._adaptive(d, f"adaptive_avg_pool{d}d", input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """The mean over ``output_size`` adaptive windows of the last axis (``torch.nn.AdaptiveAvgPool1d``)."""

    _d = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """The mean over an ``output_size`` grid of adaptive windows of the last two axes
    (``torch.nn.AdaptiveAvgPool2d``): ``AdaptiveAvgPool2d((1, 1))`` is a global average, ``(7, 7)`` the
    classifier input of torchvision's models."""

    _d = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """The mean over an ``output_size`` grid of adaptive windows of the last three axes
    (``torch.nn.AdaptiveAvgPool3d``)."""

    _d = 3
