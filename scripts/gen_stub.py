"""Writes the op table's entries of the type stub python/tapegrad/_core.pyi from ops.def.

Each op of cpp/include/tapegrad/ops.def is a method of Var and Tensor, a module function and a
function of tensor_ops; the stub's four regions between ``# BEGIN op table: <region>`` and
``# END op table: <region>`` are generated here, the rest of the stub is written by hand.

    python scripts/gen_stub.py          # rewrite the stub
    python scripts/gen_stub.py --check  # exit 1 if the stub is not what this script writes

(tests/test_stub.py runs the check.)
"""

from __future__ import annotations

import pathlib
import re
import sys
from typing import Callable, Dict, List, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPS_DEF = ROOT / "cpp" / "include" / "tapegrad" / "ops.def"
STUB = ROOT / "python" / "tapegrad" / "_core.pyi"

Op = Tuple[str, int]  # (name, arity)


def read_ops(text: str) -> List[Op]:
    """The (name, arity) of every row of ops.def, in table order."""
    rows = re.findall(r"^TAPEGRAD_(UNARY|BINARY)\(\s*\w+\s*,\s*(\w+)\s*,", text, flags=re.M)
    return [(name, 1 if kind == "UNARY" else 2) for kind, name in rows]


def var_method(name: str, arity: int) -> List[str]:
    if arity == 1:
        return [f'    def {name}(self) -> "Var": ...']
    return [f'    def {name}(self, other: Operand) -> "Var": ...']


def function(name: str, arity: int) -> List[str]:
    if arity == 1:
        sigs = [f"def {name}(x: Var) -> Var: ...", f"def {name}(x: Number) -> float: ...",
                f'def {name}(x: Union["Tensor", Sequence[Any], np.ndarray[Any, Any]]) -> "Tensor": ...']
    else:
        sigs = [f"def {name}(x: Var, y: Operand) -> Var: ...", f"def {name}(x: Number, y: Var) -> Var: ...",
                f"def {name}(x: Number, y: Number) -> float: ...",
                f"def {name}(x: Any, y: Any) -> Any: ...  # tensors, arrays: a Tensor"]
    return [line for sig in sigs for line in ("@overload", sig)]


def tensor_method(name: str, arity: int) -> List[str]:
    if name in ("min", "max"):  # Tensor.min/max are the reductions (tapegrad._tensor installs them)
        return [f'    def {name}(self, axis: Axis = None, keepdims: bool = False, out: None = None) -> "Tensor": ...']
    if arity == 1:
        return [f'    def {name}(self) -> "Tensor": ...']
    return [f'    def {name}(self, other: ArrayLike) -> "Tensor": ...']


def tensor_op(name: str, arity: int) -> List[str]:
    return [f"    def {name}(self, x: ArrayLike) -> Tensor: ..." if arity == 1
            else f"    def {name}(self, x: ArrayLike, y: ArrayLike) -> Tensor: ..."]


REGIONS: Dict[str, Callable[[str, int], List[str]]] = {
    "Var methods": var_method,
    "functions": function,
    "Tensor methods": tensor_method,
    "tensor_ops functions": tensor_op,
}


def render(stub: str, ops: List[Op]) -> str:
    """The stub with each generated region rewritten from `ops`."""
    for region, entry in REGIONS.items():
        pattern = re.compile(rf"(^[ \t]*# BEGIN op table: {region}\b[^\n]*\n)(.*?)(^[ \t]*# END op table: {region}\n)",
                             flags=re.M | re.S)
        if not pattern.search(stub):  # (the regions must be there)
            raise SystemExit(f"{STUB}: no region '# BEGIN op table: {region}' ... '# END op table: {region}'")
        body = "".join(line + "\n" for name, arity in ops for line in entry(name, arity))
        m = pattern.search(stub)
        assert m
        stub = stub[: m.start(2)] + body + stub[m.end(2):]
    return stub


def main(argv: List[str]) -> int:
    ops = read_ops(OPS_DEF.read_text())
    current = STUB.read_text()
    wanted = render(current, ops)
    if "--check" in argv:
        if current != wanted:
            print(f"{STUB} is out of date with {OPS_DEF}: run `python scripts/gen_stub.py`", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        STUB.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
