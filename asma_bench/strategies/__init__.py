"""Masking strategies by name: ASMa's HDSM/LDSM/HMTM/LMTM, the random baselines, PSTL's
CSM/MATM, Skeleton2vec's tubes, HA-CM's hierarchy/attention and MAMP's patches.

References: docs/references.md#asma, #pstl, #skeleton2vec, #ha-cm, #mamp.

>>> import torch
>>> create_masking("hmtm", k=10)(torch.randn(4, 3, 50, 25, 2)).shape
torch.Size([4, 50, 25])
"""

from asma_bench.strategies import degree, motion, random, tube  # noqa: F401  (register)
from asma_bench.strategies.apply import apply_mask
from asma_bench.strategies.base import (
    KINDS,
    MASKINGS,
    MaskingStrategy,
    create_masking,
    list_maskings,
)
from asma_bench.strategies.motion import frame_motion, joint_motion
from asma_bench.strategies.pairs import (
    ASMA_ENCODER_ROLES,
    ASMA_ENCODERS,
    PAIRINGS,
    MaskingPairing,
    create_pairing,
    list_pairings,
)

__all__ = [
    "ASMA_ENCODERS",
    "ASMA_ENCODER_ROLES",
    "KINDS",
    "MASKINGS",
    "PAIRINGS",
    "MaskingPairing",
    "MaskingStrategy",
    "apply_mask",
    "create_masking",
    "create_pairing",
    "frame_motion",
    "joint_motion",
    "list_maskings",
    "list_pairings",
]
