"""bfloat16 without ml_dtypes: tensors still hold bfloat16 (tapegrad's own 16-bit storage), their
dtype is tapegrad's marker, and only the NumPy views (which need ml_dtypes' dtype) raise, naming
ml_dtypes. Run in a child interpreter where ``import ml_dtypes`` fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import sys
    sys.modules["ml_dtypes"] = None  # import ml_dtypes raises ImportError
    import pickle
    import numpy as np
    import tapegrad as tg

    assert tg._dtypes.have_ml_dtypes is False
    assert repr(tg.bfloat16) == "tapegrad.bfloat16" and tg.bfloat16 == "bfloat16"
    x = tg.tensor([1.0, 2.5, 3.3, -1e-3], dtype="bfloat16", requires_grad=True)
    assert x.dtype is tg.bfloat16 and x.dtype.name == "bfloat16" and x.dtype.itemsize == 2
    assert tg.tensor([1.0], dtype=tg.bfloat16).dtype is tg.bfloat16
    # values rounded to bfloat16 (3.3 -> 3.296875, -1e-3 -> -0.00099945068359375, as ml_dtypes rounds)
    assert x.tolist() == [1.0, 2.5, 3.296875, -0.00099945068359375], x.tolist()
    assert x.astype(np.float32).numpy().tolist() == x.tolist()
    assert "dtype=bfloat16" in repr(x)
    y = (x * x).sum()
    assert y.dtype == np.float32 or y.dtype is tg.bfloat16
    y.backward()
    assert x.grad.dtype is tg.bfloat16
    assert x.grad.tolist() == [2.0, 5.0, 6.59375, -0.0019989013671875], x.grad.tolist()
    for call in (lambda: x.numpy(), lambda: np.asarray(x.detach())):
        try:
            call()
        except TypeError as e:
            assert "ml_dtypes" in str(e), e
        else:
            raise AssertionError("a NumPy view of a bfloat16 tensor without ml_dtypes did not raise")
    try:
        memoryview(x.detach())
    except BufferError:
        pass
    else:
        raise AssertionError("a buffer of a bfloat16 tensor")
    z = pickle.loads(pickle.dumps(x.detach()))
    assert z.dtype is tg.bfloat16 and z.tolist() == x.tolist()
    with tg.autocast(dtype=tg.bfloat16):
        w = tg.ones(3, 2, dtype=np.float32, requires_grad=True)
        h = tg.ones(4, 3, dtype=np.float32) @ w
        assert h.dtype is tg.bfloat16
        assert tg.get_autocast_dtype() is tg.bfloat16
    h.sum().backward()
    assert w.grad.dtype == np.float32 and w.grad.tolist() == [[4.0, 4.0]] * 3
    print("ok")
""")


def test_bfloat16_tensors_work_without_ml_dtypes() -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
