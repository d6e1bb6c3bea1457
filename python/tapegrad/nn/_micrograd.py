"""Neurons, layers and multilayer perceptrons of scalar ``Var``s, in micrograd's shape.

Code written against micrograd's ``micrograd.nn`` runs unchanged with ``tapegrad.nn``. They subclass
tapegrad's one ``Module`` without calling its ``__init__``: ``zero_grad()`` sets each ``Var``'s grad to 0.0.
"""

from __future__ import annotations

import random
from typing import List, Sequence, Union

from .._core import Var
from .module import Module

Number = Union[float, int, Var]


class Neuron(Module):
    def __init__(self, nin: int, nonlin: bool = True) -> None:
        self.w = [Var(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Var(0.0)
        self.nonlin = nonlin

    def __call__(self, x: Sequence[Number]) -> Var:
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self) -> List[Var]:  # type: ignore[override]
        return self.w + [self.b]

    def __repr__(self) -> str:
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    def __init__(self, nin: int, nout: int, **kwargs: bool) -> None:
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence[Number]) -> Union[Var, List[Var]]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> List[Var]:  # type: ignore[override]
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    def __init__(self, nin: int, nouts: Sequence[int]) -> None:
        sz = [nin] + list(nouts)
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x: Sequence[Number]) -> Union[Var, List[Var]]:
        for layer in self.layers:
            x = layer(x)  # type: ignore[assignment]
        return x  # type: ignore[return-value]

    def parameters(self) -> List[Var]:  # type: ignore[override]
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
