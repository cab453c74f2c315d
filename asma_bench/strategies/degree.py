"""Spatial masking by graph structure: ASMa's degree laws, PSTL's central masking and
HA-CM's hierarchy masking.

References: docs/references.md#asma, #pstl, #ha-cm.

All draw ``n`` joints per sample and mask them in every frame (HA-CM's cross grouping
aside). Distinct joints are drawn with Gumbel-top-k, which is distributed exactly as
sequential sampling without replacement from the stated law.
"""

from __future__ import annotations

import torch
from torch import Tensor

from asma_bench.data.layouts import SkeletonLayout
from asma_bench.errors import ConfigError
from asma_bench.strategies.base import (
    MASKINGS,
    JointSamplingStrategy,
    check_choice,
    check_positive,
    spatial_to_mask,
    uniform,
)


def hdsm_probs(degrees: Tensor) -> Tensor:
    """ASMa eq. 1: p_v^(H) = d_v / Σ_u d_u."""
    d = degrees.to(torch.float64)
    return d / d.sum()


def ldsm_probs(degrees: Tensor, law: str = "eq2") -> Tensor:
    """ASMa eq. 2: p_v^(L) ∝ 1 − p_v^(H), renormalised to sum to 1 (``law="eq2"``).

    On NTU-25 eq. 2 is close to uniform (weights 0.917–0.979), so ``law="inverse_degree"``
    offers the sharper p_v ∝ 1 / d_v; isolated joints (d_v = 0) make it undefined.
    """
    d = degrees.to(torch.float64)
    if law == "eq2":
        w = 1.0 - hdsm_probs(d)
    elif law == "inverse_degree":
        if bool((d <= 0).any()):
            raise ConfigError("masking 'ldsm': law='inverse_degree' needs every joint degree > 0")
        w = 1.0 / d
    else:
        raise ConfigError(f"masking 'ldsm': law={law!r} is not one of eq2, inverse_degree")
    return w / w.sum()


def _log(p: Tensor) -> Tensor:
    return torch.log(p.to(torch.float64)).to(torch.float32)


@MASKINGS.register("hdsm")
class HDSM(JointSamplingStrategy):
    """High-Degree Spatial Masking (ASMa, Section 3.2, eq. 1): n distinct joints per
    sample, drawn without replacement with p_v = d_v / Σd, so hubs are masked most."""

    def __init__(self, layout: str | SkeletonLayout = "ntu25", *, n: int | float = 9):
        super().__init__(layout, n=n)
        self.set_law(_log(hdsm_probs(torch.from_numpy(self.layout.degrees))))


@MASKINGS.register("ldsm")
class LDSM(JointSamplingStrategy):
    """Low-Degree Spatial Masking (ASMa, Section 3.2, eq. 2): n distinct joints drawn
    without replacement with p_v ∝ 1 − p_v^(H) (``law="eq2"``, the paper's) or
    p_v ∝ 1 / d_v (``law="inverse_degree"``), favouring extremities."""

    def __init__(
        self, layout: str | SkeletonLayout = "ntu25", *, n: int | float = 9, law: str = "eq2"
    ):
        super().__init__(layout, n=n)
        law = check_choice(law, ("eq2", "inverse_degree"), "law", self.name)
        self.params["law"] = law
        self.set_law(_log(ldsm_probs(torch.from_numpy(self.layout.degrees), law)))


@MASKINGS.register("csm")
class CSM(JointSamplingStrategy):
    """PSTL's central spatial masking: joints drawn from a degree-weighted pool.

    PSTL builds a pool in which joint v appears d_v times and takes n tokens from it
    without replacement, one draw per batch. Here draws are per sample. By default
    (``replacement=False``) n *distinct* joints are drawn sequentially with p_v ∝ d_v —
    the same law as HDSM (eq. 1), kept as a named strategy for the PSTL pairing.
    ``replacement=True`` reproduces PSTL's pool exactly: a joint can be drawn more than
    once, so fewer than n distinct joints may be masked.
    """

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        n: int | float = 9,
        replacement: bool = False,
    ):
        super().__init__(layout, n=n)
        if not isinstance(replacement, bool):
            raise ConfigError(
                f"masking 'csm': replacement must be true or false, got {replacement!r}"
            )
        self.replacement = replacement
        self.params["replacement"] = replacement
        degrees = torch.from_numpy(self.layout.degrees)
        self.set_law(_log(hdsm_probs(degrees)))
        # Token v of the pool belongs to joint pool_owner[v]; a degree-d joint owns d tokens.
        self.pool_owner = torch.repeat_interleave(torch.arange(len(degrees)), degrees)
        if replacement and self.n > len(self.pool_owner):
            raise ConfigError(
                f"masking 'csm': n={self.n} exceeds the pool of {len(self.pool_owner)}"
            )

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        if not self.replacement:
            return super().draw(x, generator, lengths)
        n, t, v = x.shape[0], x.shape[2], x.shape[3]
        owner = self.pool_owner.to(x.device)
        tokens = uniform((n, len(owner)), generator, x.device).topk(self.n, dim=1).indices
        joint_mask = torch.zeros(n, v, dtype=torch.bool, device=x.device)
        joint_mask.scatter_(1, owner[tokens], True)
        return spatial_to_mask(joint_mask, t)


@MASKINGS.register("hierarchy")
class HierarchyMasking(JointSamplingStrategy):
    """HA-CM's spatial masking by joint hierarchy (Yin & Cao, 2024).

    HA-CM learns the hierarchy in hyperbolic space; the quantity that space encodes is the
    joint's depth in the kinematic tree rooted at the centre joint, which we use directly
    (parameter-free). Law: p_v = softmax_v(depth_v / (max_depth · temperature)), so deeper
    joints (hands, feet) are likelier; large temperatures approach uniform. n distinct
    joints are drawn by Gumbel-max sampling without replacement, as in HA-CM.

    ``cross_grouping=True`` applies HA-CM's odd–even cross grouping: the drawn joints are
    masked only on odd frames (t = 1, 3, …), the even frames being left to the temporal
    mask (``attention`` with ``cross_grouping=True``). The mask is then spatiotemporal.
    """

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        n: int | float = 9,
        temperature: float = 0.5,
        cross_grouping: bool = False,
    ):
        super().__init__(layout, n=n)
        self.temperature = check_positive(temperature, "temperature", self.name)
        if not isinstance(cross_grouping, bool):
            raise ConfigError(
                f"masking 'hierarchy': cross_grouping must be true or false, got {cross_grouping!r}"
            )
        self.cross_grouping = cross_grouping
        self.kind = "spatiotemporal" if cross_grouping else "spatial"
        self.params.update(temperature=self.temperature, cross_grouping=cross_grouping)
        depth = torch.from_numpy(self.layout.depth.astype("float64"))
        if not bool(torch.isfinite(depth).all()):
            raise ConfigError(f"layout {self.layout.name!r}: joints unreachable from the centre")
        scaled = depth / (max(float(depth.max()), 1.0) * self.temperature)
        self.set_law(torch.log_softmax(scaled, dim=0))

    def budget(self, num_frames: int) -> int:
        return self.n * (num_frames // 2) if self.cross_grouping else self.n

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        mask = super().draw(x, generator, lengths)
        if self.cross_grouping:
            odd = torch.arange(x.shape[2], device=x.device) % 2 == 1
            mask &= odd[None, :, None]
        return mask


__all__ = ["CSM", "HDSM", "LDSM", "HierarchyMasking", "hdsm_probs", "ldsm_probs"]
