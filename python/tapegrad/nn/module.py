"""``Parameter``, ``Module`` and the containers ``Sequential``, ``ModuleList``, ``ModuleDict``: PyTorch's
``torch.nn.Module`` machinery on tapegrad tensors.

``Module`` also serves micrograd's ``Neuron``, ``Layer`` and ``MLP`` (``tapegrad.nn._micrograd``), which never
call ``Module.__init__`` and override ``parameters()`` and ``__call__``: every method here copes with a module
that has no registries (it has no parameters, buffers or children of its own) and with ``Var`` parameters.
"""

from __future__ import annotations

import itertools
import warnings
from collections import OrderedDict
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Set,
    Tuple,
    TypeVar,
    Union,
    overload,
)

import numpy as np

from .._core import Tensor, Var
from .._device import check as _check_device
from .._dtypes import as_dtype, is_dtype, is_float, numpy_values
from ..utils.hooks import RemovableHandle
from .init import _assign

T = TypeVar("T", bound="Module")
Hook = Callable[..., Any]


def _core_grad_enabled() -> bool:
    from .. import _core

    return bool(_core.is_grad_enabled())


def _default_dtype() -> Any:
    """tapegrad's default floating dtype (``tapegrad.get_default_dtype()`` where it exists, else float64)."""
    import tapegrad

    return getattr(tapegrad, "get_default_dtype", lambda: np.float64)()


class Parameter(Tensor):
    """A tensor that a ``Module`` registers as a parameter when assigned to one of its attributes
    (``torch.nn.Parameter``). Unlike torch's, it holds a copy of ``data``. ``Parameter()`` is an empty
    tensor of the default dtype."""

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty((0,), dtype=_default_dtype())
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        """Pickled (and deep-copied) as a Parameter: its values and requires_grad."""
        return (Parameter, (self.detach().numpy().copy(), self.requires_grad))


class _IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns: the keys it did not find, and those it did not expect."""

    missing_keys: List[str]
    unexpected_keys: List[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"  # (PyTorch's)
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


def _quoted(key: str) -> str:
    return f'"{key}"'


def _addindent(s: str, spaces: int) -> str:
    """Indent every line of ``s`` but the first (torch's ``_addindent``)."""
    first, *rest = s.split("\n")
    return "\n".join([first] + [" " * spaces + line for line in rest])


def _forward_unimplemented(self: Module, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')


class Module:
    """The base class of layers and models (``torch.nn.Module``): assigning a ``Parameter`` or a ``Module``
    to an attribute registers it; ``parameters()``, ``state_dict()``, ``train()``/``eval()``, ``to(dtype)``
    and ``zero_grad()`` walk the registered tree; calling the module runs its forward hooks and ``forward``."""

    #: Whether the module is in training mode (``train()``/``eval()`` set it); a class default for modules
    #: that never call ``Module.__init__`` (micrograd's).
    training: bool = True
    forward: Callable[..., Any] = _forward_unimplemented

    def __init__(self) -> None:
        for name in ("_parameters", "_buffers", "_modules", "_forward_hooks", "_forward_pre_hooks",
                     "_backward_hooks", "_backward_pre_hooks"):
            object.__setattr__(self, name, OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "training", True)

    # --- the registries -------------------------------------------------------------------------------------

    def _registry(self, name: str) -> Dict[str, Any]:
        """One of the registries, or an empty dict for a module without them (micrograd's)."""
        registry: Optional[Dict[str, Any]] = self.__dict__.get(name)
        return {} if registry is None else registry

    def _check_name(self, name: Any, kind: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f"{kind} name can't contain \".\" or be empty, got {name!r}")
        if hasattr(self, name) and name not in self._registry(f"_{kind}s"):
            raise KeyError(f"attribute '{name}' already exists")

    def _remove_elsewhere(self, name: str, keep: str) -> None:
        """Remove ``name`` from the instance dict and from the registries but ``keep`` (where a replacement keeps
        its place, as in torch)."""
        self.__dict__.pop(name, None)
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry != keep:
                self._registry(registry).pop(name, None)
        self._non_persistent().discard(name)

    def _non_persistent(self) -> Set[str]:
        found: Optional[Set[str]] = self.__dict__.get("_non_persistent_buffers")
        return set() if found is None else found

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Register ``param`` (a Parameter, or None for an absent one) under ``name``."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(tapegrad.nn.Parameter or None required)")
        self._remove_elsewhere(name, "_parameters")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Optional[Tensor], persistent: bool = True) -> None:
        """Register a tensor that is state but not a parameter (in ``state_dict()`` unless not ``persistent``)."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(tapegrad.Tensor or None required)")
        self._remove_elsewhere(name, "_buffers")
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Optional[Module]) -> None:
        """Register ``module`` as a child under ``name``."""
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign module before Module.__init__() call")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name(name, "module")
        self._remove_elsewhere(name, "_modules")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:  # before Module.__init__, or a module that never calls it (micrograd's)
            if isinstance(value, (Parameter, Module)):
                kind = "parameter" if isinstance(value, Parameter) else "module"
                raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
            object.__setattr__(self, name, value)
        elif isinstance(value, Parameter):
            self._remove_elsewhere(name, "_parameters")
            d["_parameters"][name] = value
        elif name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(tapegrad.nn.Parameter or None expected)")
            d["_parameters"][name] = None
        elif isinstance(value, Module):
            self._remove_elsewhere(name, "_modules")
            d["_modules"][name] = value
        elif name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(tapegrad.nn.Module or None expected)")
            d["_modules"][name] = None
        elif name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(tapegrad.Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in ("_parameters", "_buffers", "_modules"):
            if name in self._registry(registry):
                del self._registry(registry)[name]
                self._non_persistent().discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> List[str]:
        registered = [k for r in ("_parameters", "_buffers", "_modules") for k in self._registry(r)]
        return sorted(set(super().__dir__()) | set(registered))

    # --- walking the tree -----------------------------------------------------------------------------------

    def named_modules(self, memo: Optional[Set[int]] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, Module]]:
        """(name, module) for this module (name ``prefix``) and every module below it, each once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._registry("_modules").items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """This module and every module below it, each once."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[Tuple[str, Module]]:
        """(name, module) for each direct child, each once."""
        seen: Set[int] = set()
        for name, module in self._registry("_modules").items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct children, each once."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[Tuple[str, Any]]:
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen: Set[int] = set()
        for module_prefix, module in modules:
            for name, value in module._registry(registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """(dotted name, parameter) for each parameter of this module (and, with ``recurse``, its descendants)."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The parameters of this module (and, with ``recurse``, of its descendants), each once."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, Tensor]]:
        """(dotted name, buffer) for each buffer of this module (and, with ``recurse``, its descendants)."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """The buffers of this module (and, with ``recurse``, of its descendants), each once."""
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def get_submodule(self, target: str) -> Module:
        """The module at the dotted path ``target`` ("" is this module)."""
        if not isinstance(target, str):
            raise TypeError(f"get_submodule: target must be a dotted name (a str), not {type(target).__name__}")
        module = self
        for atom in target.split(".") if target else []:
            child = module._registry("_modules").get(atom)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule `{atom}` (looking up '{target}')")
            module = child
        return module

    def apply(self: T, fn: Callable[[Module], Any]) -> T:
        """Call ``fn`` on every child (recursively, children first), then on this module; returns self."""
        if not callable(fn):
            raise TypeError(f"apply: fn must be callable, not {type(fn).__name__}")
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # --- modes and gradients --------------------------------------------------------------------------------

    def train(self: T, mode: bool = True) -> T:
        """Set training mode (``mode=True``) or evaluation mode on this module and its descendants."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {type(mode).__name__}")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self: T) -> T:
        """Evaluation mode (``train(False)``): Dropout is the identity."""
        return self.train(False)

    def requires_grad_(self: T, requires_grad: bool = True) -> T:
        """Set ``requires_grad`` of every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of the parameters: a ``Var``'s to 0.0; a tensor's to None (``set_to_none``),
        else to zeros in place."""
        params: Iterable[Any] = self.parameters()
        for p in params:
            if isinstance(p, Var):
                p.grad = 0.0
            elif p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    _assign(p.grad, 0.0)

    # --- calling --------------------------------------------------------------------------------------------

    def _hooks(self, name: str) -> Dict[int, Hook]:
        """A hook registry, made on first use (a module that skipped ``Module.__init__`` has none)."""
        d: Optional[Dict[int, Hook]] = self.__dict__.get(name)
        if d is None:
            d = OrderedDict()
            object.__setattr__(self, name, d)
        return d

    def _register(self, name: str, hook: Hook, prepend: bool) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"the hook must be callable, not {type(hook).__name__}")
        hooks = self._hooks(name)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)  # type: ignore[attr-defined]
        return handle

    def _flag(self, name: str, handle: RemovableHandle, on: bool) -> None:
        """Marks hook ``handle`` in the set ``name`` (with_kwargs, always_call); the handle unmarks it."""
        if not on:
            return
        flags: Dict[int, Any] = self._hooks(name)
        flags[handle.id] = True
        handle.extra_dicts.append(flags)

    def register_forward_pre_hook(self, hook: Hook, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before each forward; a value it returns (a tuple, or one value) replaces
        the positional arguments. With ``with_kwargs=True``: ``hook(module, args, kwargs)``, which returns
        None or a tuple ``(args, kwargs)``."""
        handle = self._register("_forward_pre_hooks", hook, prepend)
        self._flag("_forward_pre_hooks_with_kwargs", handle, with_kwargs)
        return handle

    def register_forward_hook(self, hook: Hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each forward; a value it returns replaces the output. With
        ``with_kwargs=True``: ``hook(module, args, kwargs, output)``. With ``always_call=True`` it is also called
        (with ``output`` None) when the forward raises, before the error propagates."""
        handle = self._register("_forward_hooks", hook, prepend)
        self._flag("_forward_hooks_with_kwargs", handle, with_kwargs)
        self._flag("_forward_hooks_always_called", handle, always_call)
        return handle

    def register_full_backward_pre_hook(self, hook: Hook, *, prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_output)`` when the gradients of the module's outputs are known, before they
        flow into the module; a tuple it returns replaces ``grad_output`` (PyTorch's
        ``register_full_backward_pre_hook``)."""
        return self._register("_backward_pre_hooks", hook, prepend)

    def register_full_backward_hook(self, hook: Hook, *, prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` when the gradients of the module's inputs are known:
        ``grad_input`` has one entry per positional argument (None for one that is not a Tensor or needs no
        gradient), ``grad_output`` one per output; a tuple it returns replaces ``grad_input`` (PyTorch's
        ``register_full_backward_hook``). With no input that requires grad, it is called with ``grad_input``
        all None as soon as ``grad_output`` is known."""
        return self._register("_backward_hooks", hook, prepend)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        d = self.__dict__
        pre_kw = d.get("_forward_pre_hooks_with_kwargs", {})
        for hook_id, hook in list(d.get("_forward_pre_hooks", {}).items()):
            if hook_id in pre_kw:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("a forward pre-hook with with_kwargs=True must return None or a tuple "
                                           f"(new_args, new_kwargs), not {result!r}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward_hook = None
        if (d.get("_backward_hooks") or d.get("_backward_pre_hooks")) and _core_grad_enabled():
            from ._hooks import BackwardHook

            backward_hook = BackwardHook(self, d.get("_backward_hooks", {}), d.get("_backward_pre_hooks", {}))
            args = backward_hook.setup_input_hook(args)
        hooks = list(d.get("_forward_hooks", {}).items())
        with_kw = d.get("_forward_hooks_with_kwargs", {})
        always = d.get("_forward_hooks_always_called", {})
        output: Any = None
        called = set()
        try:
            output = self.forward(*args, **kwargs)
            for hook_id, hook in hooks:
                called.add(hook_id)
                result = hook(self, args, kwargs, output) if hook_id in with_kw else hook(self, args, output)
                if result is not None:
                    output = result
        except Exception:
            for hook_id, hook in hooks:  # always_call hooks not run yet, as PyTorch runs them
                if hook_id in always and hook_id not in called:
                    try:
                        result = hook(self, args, kwargs, output) if hook_id in with_kw else hook(self, args, output)
                        if result is not None:
                            output = result
                    except Exception as e:  # the forward's error is the one that propagates
                        warnings.warn(f"a forward hook with always_call=True raised {e!r}, silenced as the forward "
                                      "raised too", stacklevel=2)
            raise
        if backward_hook is not None:
            output = backward_hook.setup_output_hook(output)
        return output

    # --- state ----------------------------------------------------------------------------------------------

    def state_dict(self, *, destination: Optional[Dict[str, Any]] = None, prefix: str = "",
                   keep_vars: bool = False) -> Dict[str, Any]:
        """An OrderedDict of the parameters and persistent buffers by dotted name (detached tensors sharing
        their values, unless ``keep_vars``): the keys are torch's for the same structure."""
        if not isinstance(prefix, str):
            raise TypeError(f"state_dict: prefix must be a str, not {type(prefix).__name__}")
        if destination is None:
            destination = OrderedDict()
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            dot = module_prefix + ("." if module_prefix else "")
            skip = module._non_persistent()
            for registry in ("_parameters", "_buffers"):
                for name, value in module._registry(registry).items():
                    if value is not None and not (registry == "_buffers" and name in skip):
                        destination[dot + name] = value if keep_vars else value.detach()
        return destination

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> _IncompatibleKeys:
        """Copy the values of ``state_dict`` (tensors, arrays, torch tensors) into the parameters and buffers,
        keeping their dtypes. With ``strict``, missing and unexpected keys are errors; a shape mismatch always
        is (torch's ``RuntimeError``, listing them all). With ``assign=True`` the module's parameters and
        buffers are replaced by new ones of the checkpoint's values and dtypes (PyTorch's ``assign``; each
        parameter keeps its ``requires_grad``), so an optimizer made before holds the old ones."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors: List[str] = []
        updates: List[Tuple[str, Tensor, np.ndarray[Any, Any]]] = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = numpy_values(value) if isinstance(value, Tensor) else np.asarray(value)
            if array.dtype.name == "bfloat16":  # (ml_dtypes': as float32, exact)
                array = array.astype(np.float32)
            if array.dtype.kind not in "biuf":
                errors.append(f'While copying the parameter named "{key}", expected a tensor or array from '
                              f"checkpoint but received {type(value).__name__}")
            elif array.shape != target.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape {array.shape} from "
                              f"checkpoint, the shape in current model is {target.shape}.")
            else:
                updates.append((key, target, array))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(", ".join(map(_quoted, unexpected))))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(map(_quoted, missing))))
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                type(self).__name__, "\n\t".join(errors)))
        for key, target, array in updates:
            if not assign:
                _assign(target, array)
                continue
            prefix, _, name = key.rpartition(".")
            owner = self.get_submodule(prefix) if prefix else self
            if isinstance(target, Parameter):
                setattr(owner, name, Parameter(array.copy(), requires_grad=target.requires_grad))
            else:
                setattr(owner, name, Tensor(array.copy()))
        return _IncompatibleKeys(missing, unexpected)

    def to(self: T, *args: Any, **kwargs: Any) -> T:
        """``to(dtype)``, ``to(tensor)`` (its dtype), ``to("cpu")``: convert the floating parameters and buffers.

        A dtype change replaces each Parameter by a new one of that dtype (gradient converted too, sharing
        kept), as torch does semantically: create optimizers after it, since they hold the old objects."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif is_dtype(arg):
                dtype = arg
            else:
                device = arg
        _check_device(device, "Module.to()")
        if dtype is None:
            return self
        if not is_dtype(dtype):
            raise TypeError(f"to(): expected a dtype, got {dtype!r}")
        dtype = as_dtype(dtype)
        if not is_float(dtype):
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
        converted: Dict[int, Any] = {}
        for module in self.modules():
            for registry in ("_parameters", "_buffers"):
                entries = module._registry(registry)
                for name, value in entries.items():
                    if value is None or not is_float(value.dtype) or value.dtype == dtype:
                        continue
                    if id(value) not in converted:
                        converted[id(value)] = self._converted(value, dtype)
                    entries[name] = converted[id(value)]
        return self

    @staticmethod
    def _converted(value: Tensor, dtype: Any) -> Tensor:
        if not isinstance(value, Parameter):
            return value.detach().astype(dtype)
        param = Parameter(value.detach().astype(dtype), requires_grad=value.requires_grad)
        if value.grad is not None:
            param.grad = value.grad.detach().astype(dtype)
        return param

    def float(self: T) -> T:
        """Convert the floating parameters and buffers to float32 (see ``to``)."""
        return self.to(np.float32)

    def half(self: T) -> T:
        """Convert the floating parameters and buffers to float16 (see ``to``)."""
        return self.to(np.float16)

    def bfloat16(self: T) -> T:
        """Convert the floating parameters and buffers to bfloat16 (see ``to``)."""
        return self.to("bfloat16")

    def double(self: T) -> T:
        """Convert the floating parameters and buffers to float64 (see ``to``)."""
        return self.to(np.float64)

    def cpu(self: T) -> T:
        """The module itself (tapegrad runs on the CPU)."""
        return self

    def cuda(self: T, device: Any = None) -> T:
        """Raises RuntimeError: there is no CUDA device (tapegrad runs on the CPU; PyTorch raises
        there too). Write ``model.to(device)`` with ``device = "cuda" if tapegrad.cuda.is_available() else "cpu"``."""
        raise RuntimeError("tapegrad: Module.cuda(): there is no CUDA device: tapegrad computes on the CPU only "
                           "(use .to(device) with `device = 'cuda' if tapegrad.cuda.is_available() else 'cpu'`)")

    # --- printing -------------------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The module's own settings, shown inside its repr's parentheses."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        """torch's format: ``Name(extra)``, or the children's reprs indented one per line."""
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({key}): " + _addindent(repr(module), 2) for key, module in self._registry("_modules").items()]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            body = extra_lines[0] if len(extra_lines) == 1 and not child_lines else "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"


# --- containers -----------------------------------------------------------------------------------------------


def _index(idx: Any, n: int, what: str) -> int:
    i = int(idx)
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for a {what} of length {n}")
    return i % n


class Sequential(Module):
    """Modules called in order, each on the previous one's output (``torch.nn.Sequential``): from modules,
    or from an OrderedDict of named modules."""

    @overload
    def __init__(self, *args: Module) -> None: ...

    @overload
    def __init__(self, arg: Mapping[str, Module], /) -> None: ...

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], Mapping):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    @overload
    def __getitem__(self, idx: slice) -> Sequential: ...

    @overload
    def __getitem__(self, idx: int) -> Module: ...

    def __getitem__(self, idx: Union[int, slice]) -> Union[Module, Sequential]:
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        return items[_index(idx, len(items), "Sequential")][1]  # type: ignore[no-any-return]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[_index(idx, len(self), "Sequential")]
        self.add_module(key, module)

    def __delitem__(self, idx: Union[int, slice]) -> None:
        keys = list(self._modules)
        for key in keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(keys), "Sequential")]]:
            del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        """Add each of ``modules`` at the end."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        """Insert ``module`` before position ``index`` (the modules are renumbered)."""
        modules = list(self)
        modules.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)
        return self

    def forward(self, input: Any) -> Any:
        for module in self:
            input = module(input)
        return input


class ModuleList(Module):
    """A list of modules, registered as children ``0``, ``1``, ... (``torch.nn.ModuleList``)."""

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _renumber(self, modules: List[Module]) -> None:
        self._modules.clear()
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    @overload
    def __getitem__(self, idx: slice) -> ModuleList: ...

    @overload
    def __getitem__(self, idx: int) -> Module: ...

    def __getitem__(self, idx: Union[int, slice]) -> Union[Module, ModuleList]:
        modules = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(modules[idx])
        return modules[_index(idx, len(modules), "ModuleList")]  # type: ignore[no-any-return]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx: Union[int, slice]) -> None:
        modules = list(self._modules.values())
        del modules[idx if isinstance(idx, slice) else _index(idx, len(modules), "ModuleList")]
        self._renumber(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Add each of ``modules`` at the end."""
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError(f"ModuleList.extend should be called with an iterable, but got {type(modules).__name__}")
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index``."""
        modules = list(self)
        modules.insert(index, module)
        self._renumber(modules)

    def __repr__(self) -> str:
        """torch's: consecutive equal children are shown once, as ``(0-2): 3 x Linear(...)``."""
        reprs = [repr(m) for m in self]
        if not reprs:
            return self._get_name() + "()"
        lines = []
        for text, group in itertools.groupby(enumerate(reprs), key=lambda item: item[1]):
            ids = [i for i, _ in group]
            head = f"({ids[0]}): " if len(ids) == 1 else f"({ids[0]}-{ids[-1]}): {len(ids)} x "
            lines.append(_addindent(head + text, 2))
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """A dict of modules by name, registered as children (``torch.nn.ModuleDict``)."""

    def __init__(self, modules: Optional[Union[Mapping[str, Module], Iterable[Tuple[str, Module]]]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]  # type: ignore[no-any-return]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()  # type: ignore[no-any-return]

    def items(self) -> Iterable[Tuple[str, Module]]:
        return self._modules.items()  # type: ignore[no-any-return]

    def values(self) -> Iterable[Module]:
        return self._modules.values()  # type: ignore[no-any-return]

    def pop(self, key: str) -> Module:
        """Remove the module ``key`` and return it."""
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules: Union[Mapping[str, Module], Iterable[Tuple[str, Module]]]) -> None:
        """Add (or replace) modules from a mapping or from (name, module) pairs."""
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update expects a mapping or (name, module) pairs, got {pair!r}")
            self[pair[0]] = pair[1]
