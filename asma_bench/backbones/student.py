"""The distillation student: a shallow ST-GCN (ASMa, Sec. 3.5 and 5.4).

ASMa distils its two encoders and alignment module into "5 ST-GCN layers with spatial
kernel 3 and temporal kernel 9" (0.54 M parameters); the paper gives no channel widths.
The default here — 5 blocks 32, 32, 64 (stride 2), 128 (stride 2), 128 — has about
0.46 M parameters on NTU-25; every width, the depth and the output size are parameters.

>>> import torch
>>> model = student("ntu25", base_channels=4, num_blocks=2, out_dim=8)
>>> model(torch.randn(2, 3, 16, 25, 1)).shape
torch.Size([2, 8])
"""

from __future__ import annotations

import inspect
from typing import Any

from asma_bench.backbones.stgcn import STGCN
from asma_bench.data.layouts import SkeletonLayout

#: What the student changes in ST-GCN's defaults (timm's habit: a variant is its model args).
STUDENT_ARGS: dict[str, Any] = dict(base_channels=32, num_blocks=5, out_dim=128)


def student(layout: str | SkeletonLayout = "ntu25", in_channels: int = 3, **kwargs: Any) -> STGCN:
    """ST-GCN with a student's defaults: 5 blocks, spatial kernel 3 (the 3 partition
    subsets), temporal kernel 9, 32 base channels, 128-d output (``out_dim=None``); every
    other parameter, and its meaning, is :class:`~asma_bench.backbones.stgcn.STGCN`'s."""
    model_args = dict(STUDENT_ARGS)
    if kwargs.get("out_dim") is None:
        kwargs.pop("out_dim", None)
        if kwargs.get("channels") is not None:
            del model_args["out_dim"]  # an explicit channel list decides the output size itself
    return STGCN(layout, in_channels, **dict(model_args, **kwargs))


# ST-GCN's signature with the student's defaults: the registry checks names against it
_stgcn = inspect.signature(STGCN)
student.__signature__ = _stgcn.replace(  # type: ignore[attr-defined]
    parameters=[
        p.replace(default=STUDENT_ARGS[p.name]) if p.name in ("base_channels", "num_blocks") else p
        for p in _stgcn.parameters.values()
    ]
)

#: the former class name, kept for callers that build the student directly
Student = student
