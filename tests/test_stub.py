"""The type stub: its op-table entries are generated from ops.def, and it lists every op of the table."""

import ast
import importlib.util
import pathlib

import tapegrad as tg

STUB = pathlib.Path(tg.__file__).with_name("_core.pyi")


def test_stub_has_every_op() -> None:
    tree = ast.parse(STUB.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    var = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Var")
    methods = {n.name for n in var.body if isinstance(n, ast.FunctionDef)}
    for name in (row.name for row in tg.op_table):
        assert name in functions, name
        assert name in methods, name
        assert callable(getattr(tg, name)) and callable(getattr(tg.Var, name))


def test_stub_has_every_op_on_tensor() -> None:
    tree = ast.parse(STUB.read_text())
    tensor = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    methods = {n.name for n in tensor.body if isinstance(n, ast.FunctionDef)}
    ops = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_TensorOps")
    functions = {n.name for n in ops.body if isinstance(n, ast.FunctionDef)}
    for name in (row.name for row in tg.op_table):
        assert name in methods, name
        assert name in functions, name
        assert callable(getattr(tg.Tensor, name)) and callable(getattr(tg._core.tensor_ops, name))
    # and nothing the stub promises is missing from the module
    for name in methods:
        assert hasattr(tg.Tensor, name), name
    for name in functions:
        assert hasattr(tg._core.tensor_ops, name), name


def test_stub_op_entries_are_generated_from_the_table() -> None:
    """The stub's op-table regions are what scripts/gen_stub.py writes from ops.def, and ops.def
    lists the ops the module has."""
    script = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "gen_stub.py"
    spec = importlib.util.spec_from_file_location("gen_stub", script)
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.read_ops(gen.OPS_DEF.read_text()) == [(row.name, row.arity) for row in tg.op_table]
    current = gen.STUB.read_text()
    assert gen.render(current, gen.read_ops(gen.OPS_DEF.read_text())) == current, (
        "python/tapegrad/_core.pyi is out of date with ops.def: run `python scripts/gen_stub.py`")
