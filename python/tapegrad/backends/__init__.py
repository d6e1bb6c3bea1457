"""``torch.backends`` as PyTorch programs use it: the probes answer as PyTorch's do on a machine
without a GPU (``mps.is_available()`` is False, ``cudnn.is_available()`` is False), and the
switches programs set (``cudnn.deterministic``, ``cudnn.benchmark``,
``cuda.matmul.allow_tf32``) are plain attributes that change nothing: tapegrad's CPU kernels are
deterministic and never use TF32.
"""

from __future__ import annotations

from . import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
