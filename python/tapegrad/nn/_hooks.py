"""A module's backward hooks (``register_full_backward_hook``, ``register_full_backward_pre_hook``), as
PyTorch builds them: the module's Tensor inputs and outputs pass through identity functions
(``autograd.Function``) whose backward steps see the gradients of the module's outputs, then those of its
inputs, and hand them to the hooks, which may replace them."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from .._core import Tensor
from ..autograd import Function

Hook = Callable[..., Any]


class _PassThrough(Function):
    """The module's tensors, passed through unchanged; its backward hands their gradients to
    ``on_grads`` (a BackwardHook's method), which returns the gradients to pass on."""

    @staticmethod
    def forward(ctx: Any, on_grads: Callable[[Tuple[Optional[Tensor], ...]], Tuple[Optional[Tensor], ...]],
                *tensors: Tensor) -> Tuple[Tensor, ...]:
        ctx.on_grads = on_grads
        return tensors

    @staticmethod
    def backward(ctx: Any, *grads: Optional[Tensor]) -> Tuple[Any, ...]:
        on_grads: Callable[[Tuple[Optional[Tensor], ...]], Tuple[Optional[Tensor], ...]] = ctx.on_grads
        return (None,) + on_grads(grads)


def _check(what: str, module: Any, got: Any, want: int) -> Tuple[Any, ...]:
    if not isinstance(got, (tuple, list)) or len(got) != want:
        raise RuntimeError(f"a backward hook of {type(module).__name__} returned {got!r} for {what}: expected a "
                           f"tuple of {want} (Tensors or None), or None")
    return tuple(got)


class BackwardHook:
    """One call of a module with backward hooks: what its backward steps know."""

    def __init__(self, module: Any, hooks: Dict[int, Hook], pre_hooks: Dict[int, Hook]) -> None:
        self.module = module
        self.hooks = list(hooks.values())
        self.pre_hooks = list(pre_hooks.values())
        self.n_inputs = 0
        self.input_slots: List[int] = []  # which grad_input entries the input hook's gradients fill
        self.grad_outputs: Optional[Tuple[Optional[Tensor], ...]] = None
        self.output_slots: List[int] = []
        self.n_outputs = 0

    def setup_input_hook(self, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        # grad_input has an entry per positional argument (None for those that are not Tensors)
        self.n_inputs = len(args)
        req = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not req:
            return args
        self.input_slots = req
        passed = _PassThrough.apply(self.on_grad_inputs, *[args[i] for i in req])
        new = list(args)
        for i, t in zip(req, passed):
            new[i] = t
        return tuple(new)

    def setup_output_hook(self, output: Any) -> Any:
        single = isinstance(output, Tensor)
        items = [output] if single else (list(output) if isinstance(output, (tuple, list)) else None)
        if items is None:
            return output
        self.n_outputs = len(items)  # an entry per output item (None for those that are not Tensors)
        req = [j for j, o in enumerate(items) if isinstance(o, Tensor) and o.requires_grad]
        if not req:
            return output
        self.output_slots = req
        passed = _PassThrough.apply(self.on_grad_outputs, *[items[j] for j in req])
        for j, t in zip(req, passed):
            items[j] = t
        if single:
            return items[0]
        return tuple(items) if isinstance(output, tuple) else items

    def on_grad_outputs(self, grads: Tuple[Optional[Tensor], ...]) -> Tuple[Optional[Tensor], ...]:
        full: List[Optional[Tensor]] = [None] * self.n_outputs
        for slot, g in zip(self.output_slots, grads):
            full[slot] = g
        grad_output = tuple(full)
        for hook in self.pre_hooks:
            result = hook(self.module, grad_output)
            if result is not None:
                grad_output = _check("grad_output", self.module, result, self.n_outputs)
        self.grad_outputs = grad_output
        if not self.input_slots:  # no input needs a gradient: the hooks are called now
            for hook in self.hooks:
                hook(self.module, (None,) * self.n_inputs, grad_output)
        return tuple(grad_output[slot] for slot in self.output_slots)

    def on_grad_inputs(self, grads: Tuple[Optional[Tensor], ...]) -> Tuple[Optional[Tensor], ...]:
        full: List[Optional[Tensor]] = [None] * self.n_inputs
        for slot, g in zip(self.input_slots, grads):
            full[slot] = g
        grad_input = tuple(full)
        grad_output = self.grad_outputs if self.grad_outputs is not None else (None,) * self.n_outputs
        for hook in self.hooks:
            result = hook(self.module, grad_input, grad_output)
            if result is not None:
                grad_input = _check("grad_input", self.module, result, self.n_inputs)
        return tuple(grad_input[slot] for slot in self.input_slots)
