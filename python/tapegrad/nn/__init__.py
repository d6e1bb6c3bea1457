"""Neural-network building blocks: PyTorch's ``torch.nn`` on tapegrad tensors, and micrograd's ``Neuron``,
``Layer`` and ``MLP`` on scalar ``Var``s (code written for ``micrograd.nn`` runs unchanged).

``Module`` is one class for both: torch's registration of ``Parameter``s and sub-modules, ``parameters()``,
``state_dict()``, ``train()``/``eval()``, ``to(dtype)``, hooks; micrograd's modules subclass it too.
``functional`` holds the functional forms (``torch.nn.functional``), ``init`` the initialisations
(``torch.nn.init``), ``utils`` gradient clipping (``torch.nn.utils``).
"""

from __future__ import annotations

from ..utils.hooks import RemovableHandle
from . import functional, init, utils
from ._micrograd import MLP, Layer, Neuron
from .conv import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from .layers import (
    ELU,
    GELU,
    BatchNorm1d,
    BatchNorm2d,
    Dropout,
    Dropout1d,
    Dropout2d,
    Embedding,
    Flatten,
    GroupNorm,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from .transformer import MultiheadAttention, TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "functional", "init", "utils", "Module", "Parameter", "RemovableHandle", "Sequential", "ModuleList",
    "ModuleDict", "Neuron", "Layer", "MLP", "Identity", "Linear", "Embedding", "LayerNorm", "GroupNorm", "Dropout",
    "Dropout1d", "Dropout2d", "Flatten", "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "Conv3d",
    "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "RNNBase",
    "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "MultiheadAttention",
    "TransformerEncoderLayer", "TransformerEncoder", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "ReLU", "LeakyReLU", "ELU", "SiLU", "Tanh", "Sigmoid", "Softplus",
    "GELU", "Softmax", "LogSoftmax", "L1Loss", "MSELoss", "HuberLoss", "SmoothL1Loss", "NLLLoss",
    "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss",
]
