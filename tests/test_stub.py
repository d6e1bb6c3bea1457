"""The hand-written type stub lists every op of the table, as method and as function."""

import ast
import pathlib

import tapegrad as tg

STUB = pathlib.Path(tg.__file__).with_name("_core.pyi")


def test_stub_has_every_op() -> None:
    tree = ast.parse(STUB.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    var = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Var")
    methods = {n.name for n in var.body if isinstance(n, ast.FunctionDef)}
    for name, _ in tg.op_table:
        assert name in functions, name
        assert name in methods, name
        assert callable(getattr(tg, name)) and callable(getattr(tg.Var, name))


def test_stub_has_every_op_on_tensor() -> None:
    tree = ast.parse(STUB.read_text())
    tensor = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    methods = {n.name for n in tensor.body if isinstance(n, ast.FunctionDef)}
    ops = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_TensorOps")
    functions = {n.name for n in ops.body if isinstance(n, ast.FunctionDef)}
    for name, _ in tg.op_table:
        assert name in methods, name
        assert name in functions, name
        assert callable(getattr(tg.Tensor, name)) and callable(getattr(tg._core.tensor_ops, name))
    # and nothing the stub promises is missing from the module
    for name in methods:
        assert hasattr(tg.Tensor, name), name
    for name in functions:
        assert hasattr(tg._core.tensor_ops, name), name
