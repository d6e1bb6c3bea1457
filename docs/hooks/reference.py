"""MkDocs hook: the API reference, generated at build time from the package itself.

One page per public module (``reference/<module>.md``): a table of every public name, with the
one-line summary from its docstring (the stub's for the compiled core) and its PyTorch or JAX
counterpart where one exists, then each name's full entry rendered by mkdocstrings. A
counterpart is the same name in the matching PyTorch module unless ``RENAMED`` says otherwise,
kept only where that name exists (checked against torch when it is importable, as it is in the
test command). Nothing here is checked in: the pages are made anew by every build.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any, Dict, List, Optional, Tuple

from mkdocs.structure.files import File, Files

# (module, its PyTorch counterpart module or None, a one-line description of the page)
MODULES: List[Tuple[str, Optional[str], str]] = [
    ("tapegrad", "torch", "Var, Tensor, the tape, creation and the ops of the table."),
    ("tapegrad.autograd", "torch.autograd", "grad and jvp over outputs, custom Functions."),
    ("tapegrad.functional", "torch.func", "JAX's transformations: grad, vjp, jvp, jacobians, hessian."),
    ("tapegrad.nn", "torch.nn", "Modules and parameters, micrograd's MLP."),
    ("tapegrad.nn.functional", "torch.nn.functional", "Activations, linear, dropout and the losses as functions."),
    ("tapegrad.nn.init", "torch.nn.init", "Initialisation of parameters in place."),
    ("tapegrad.nn.utils", "torch.nn.utils", "Gradient clipping and parameter vectors."),
    ("tapegrad.optim", "torch.optim", "Optimizers."),
    ("tapegrad.optim.lr_scheduler", "torch.optim.lr_scheduler", "Learning-rate schedules."),
    ("tapegrad.amp", "torch.amp", "Mixed precision: autocast and GradScaler."),
    ("tapegrad.serialization", "torch.serialization", "save and load: files that loading never runs code from."),
    ("tapegrad.cuda", "torch.cuda", "The CUDA probes, answering as PyTorch's do without a GPU."),
    ("tapegrad.cuda.amp", "torch.cuda.amp", "The old GPU spellings of mixed precision, disabled here."),
    ("tapegrad.accelerator", "torch.accelerator", "The accelerator probes: there is none."),
    ("tapegrad.backends.cudnn", "torch.backends.cudnn", "cuDNN's switches, which change nothing here."),
    ("tapegrad.backends.cuda", "torch.backends.cuda", "CUDA's switches, which change nothing here."),
    ("tapegrad.backends.mps", "torch.backends.mps", "Apple's GPUs: not available."),
    ("tapegrad.utils.checkpoint", "torch.utils.checkpoint", "Recomputing segments instead of saving them."),
    ("tapegrad.utils.hooks", "torch.utils.hooks", "Hook handles."),
    ("tapegrad.utils.data", "torch.utils.data", "Datasets and batches."),
    ("tapegrad.random", "torch", "Random numbers and generators."),
    ("tapegrad.viz", None, "Pictures of a computation graph."),
]

# Counterparts that are not the same name in the module's PyTorch counterpart (None: there is none).
RENAMED: Dict[str, Optional[str]] = {
    "tapegrad.Var": "micrograd.engine.Value",
    "tapegrad.Value": "micrograd.engine.Value",
    "tapegrad.Tape": None,
    "tapegrad.OpRow": None,
    "tapegrad.op_table": None,
    "tapegrad.active_tape": None,
    "tapegrad.gemm_backend": None,
    "tapegrad.get_include": None,
    "tapegrad.get_cmake_dir": None,
    "tapegrad.grad": "jax.grad",
    "tapegrad.value_and_grad": "jax.value_and_grad",
    "tapegrad.vjp": "jax.vjp",
    "tapegrad.jvp": "jax.jvp",
    "tapegrad.jacrev": "jax.jacrev",
    "tapegrad.jacfwd": "jax.jacfwd",
    "tapegrad.jacobian": "jax.jacobian",
    "tapegrad.hessian": "jax.hessian",
    "tapegrad.hvp": "torch.autograd.functional.hvp",
    "tapegrad.bool_": "torch.bool",
    "tapegrad.float16": "torch.float16",
    "tapegrad.bfloat16": "torch.bfloat16",
    "tapegrad.autocast": "torch.autocast",
    "tapegrad.is_autocast_enabled": "torch.is_autocast_enabled",
    "tapegrad.get_autocast_dtype": "torch.get_autocast_dtype",
    "tapegrad.concatenate": "torch.cat",
    "tapegrad.expand_dims": "torch.unsqueeze",
    "tapegrad.clip": "torch.clamp",
    "tapegrad.amax": "torch.amax",
    "tapegrad.functional.grad": "jax.grad",
    "tapegrad.functional.value_and_grad": "jax.value_and_grad",
    "tapegrad.functional.vjp": "jax.vjp",
    "tapegrad.functional.jvp": "jax.jvp",
    "tapegrad.functional.jacrev": "jax.jacrev",
    "tapegrad.functional.jacfwd": "jax.jacfwd",
    "tapegrad.functional.jacobian": "jax.jacobian",
    "tapegrad.functional.hessian": "jax.hessian",
    "tapegrad.functional.hvp": "torch.autograd.functional.hvp",
    "tapegrad.nn.MLP": "micrograd.nn.MLP",
    "tapegrad.nn.Neuron": "micrograd.nn.Neuron",
    "tapegrad.nn.Layer": "micrograd.nn.Layer",
    "tapegrad.amp.autocast": "torch.autocast",
    "tapegrad.amp.is_autocast_enabled": "torch.is_autocast_enabled",
    "tapegrad.amp.get_autocast_dtype": "torch.get_autocast_dtype",
    "tapegrad.viz.draw": "micrograd's draw_dot",
}
# Names whose full entry mkdocstrings cannot render (other packages' objects): the table only.
FOREIGN = ("numpy",)


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - the test command installs torch
        return None
    return torch


def _exists(path: str) -> bool:
    """Whether a dotted PyTorch name exists (True for other libraries' names, and without torch)."""
    torch = _torch()
    if torch is None or not path.startswith("torch"):
        return True
    obj: Any = torch
    for part in path.split(".")[1:]:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def counterpart(module: str, name: str, torch_module: Optional[str]) -> str:
    full = f"{module}.{name}"
    if full in RENAMED:
        other = RENAMED[full]
        return f"`{other}`" if other else ""
    if torch_module is None:
        return ""
    guess = f"{torch_module}.{name}"
    return f"`{guess}`" if _exists(guess) else ""


def public_names(mod: Any) -> List[str]:
    names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
    return [n for n in names if not inspect.ismodule(getattr(mod, n, None))]


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", text.strip(), maxsplit=1)[0]


def summary(obj: Any) -> str:
    """The first sentence of the docstring, on one line (a dtype or constant says what it is)."""
    module = getattr(obj, "__module__", "") or ""
    if isinstance(obj, type) and module.startswith("numpy"):
        return f"NumPy's `{obj.__name__}` dtype, a tensor dtype."
    if not (callable(obj) or isinstance(obj, type)):
        doc = inspect.getdoc(type(obj)) if type(obj).__module__.startswith("tapegrad") else None
        return first_sentence((doc or f"A `{type(obj).__name__}` constant.").split("\n\n")[0].replace("\n", " "))
    doc = inspect.getdoc(obj) or ""
    para = doc.split("\n\n")[0].replace("\n", " ").strip()
    if para.startswith(getattr(obj, "__name__", "\0") + "(") and "\n\n" in doc:  # a pybind11 signature line
        para = doc.split("\n\n")[1].replace("\n", " ").strip()
    return first_sentence(para).replace("|", "\\|")


_GRIFFE: Dict[str, Any] = {}


def readable(path: str) -> bool:
    """Whether mkdocstrings can find the name by reading the sources and the stub (griffe's static
    analysis): not a name bound by a tuple assignment or installed with globals()."""
    import griffe

    if "pkg" not in _GRIFFE:
        _GRIFFE["pkg"] = griffe.load("tapegrad", allow_inspection=False)
    try:
        obj = _GRIFFE["pkg"][path[len("tapegrad."):]] if path != "tapegrad" else _GRIFFE["pkg"]
        _ = obj.final_target if obj.is_alias else obj
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):  # a compiled function: its docstring's first line has it
        first = (inspect.getdoc(obj) or "").split("\n")[0]
        return first[first.index("("):] if "(" in first else "(...)"


def page(module: str, torch_module: Optional[str], about: str) -> Tuple[str, List[str]]:
    """The reference page of a module, and the names that lack a summary."""
    mod = importlib.import_module(module)
    lines = [f"# `{module}`", "", about, ""]
    doc = inspect.getdoc(mod)
    if doc:
        lines += [doc.split("\n\n")[0], ""]
    lines += ["| name | summary | PyTorch / JAX |", "|---|---|---|"]
    entries: List[str] = []
    missing: List[str] = []
    ops = {row.name: row for row in getattr(mod, "op_table", ())} if module == "tapegrad" else {}
    for name in public_names(mod):
        obj = getattr(mod, name)
        text = summary(obj)
        if not text:
            missing.append(f"{module}.{name}")
        foreign = (getattr(obj, "__module__", "") or "").startswith(FOREIGN) or not (
            callable(obj) or isinstance(obj, type))
        link = f"[`{name}`](#{module}.{name})" if not foreign else f"`{name}`"
        lines.append(f"| {link} | {text} | {counterpart(module, name, torch_module)} |")
        if foreign:
            continue
        if module == "tapegrad" and name in ops:  # (installed at import from the table: no source to read)
            row = ops[name]
            entries += ["", f'<h2 id="{module}.{name}"><code>{module}.{name}</code></h2>', "",
                        f"`{name}({', '.join('xy'[:row.arity])})`: {text} On a `Var`, a number, or a `Tensor` "
                        f"(elementwise{', broadcasting' if row.arity == 2 else ''}). Its derivative is the row "
                        f"`{name}` of the op table, `cpp/include/tapegrad/ops.def`."]
        elif not readable(f"{module}.{name}"):  # (made by code griffe does not follow: from the object)
            entries += ["", f'<h2 id="{module}.{name}"><code>{module}.{name}</code></h2>', "",
                        f"```python\n{name}{signature(obj)}\n```", "", inspect.getdoc(obj) or ""]
        else:
            entries += ["", f"::: {module}.{name}", "    options:", "      show_root_heading: true",
                        "      show_root_full_path: true", "      heading_level: 2"]
    return "\n".join(lines + entries) + "\n", missing


def on_files(files: Files, config: Any) -> Files:
    missing: List[str] = []
    for module, torch_module, about in MODULES:
        text, lacking = page(module, torch_module, about)
        missing += lacking
        files.append(File.generated(config, f"reference/{module}.md", content=text))
    if missing:
        raise RuntimeError(f"public names without a one-line summary (write their docstrings): {missing}")
    return files
