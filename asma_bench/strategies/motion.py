"""Temporal masking by motion: ASMa's HMTM/LMTM, PSTL's motion-attention masking and
HA-CM's attention masking, plus the motion helpers they share (ASMa eqs. 3–4).

Every strategy here masks ``k`` frames per sample (the same frames for every joint).
Frames at or beyond a sample's ``lengths`` are zero padding: they carry no motion and are
never selected.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from asma_bench.data.layouts import SkeletonLayout
from asma_bench.errors import ConfigError
from asma_bench.strategies.base import (
    MASKINGS,
    FrameSelectingStrategy,
    check_choice,
    check_positive,
    frames_valid,
    gumbel,
    temporal_to_mask,
    topk_mask,
)

LAST_FRAME = ("backward", "zero", "exclude")


def joint_motion(x: Tensor, lengths: Tensor | None = None, last: str = "backward") -> Tensor:
    """Per-joint motion (N, T, V): ASMa eq. 3, m(t) = |x_{t+1} − x_t|, averaged over the
    C channels and the M bodies.

    The last real frame of a sample (t = length − 1) has no x_{t+1}: ``last="backward"``
    gives it |x_t − x_{t−1}|; ``"zero"`` gives it 0 (PSTL's code); ``"exclude"`` also gives
    it 0 and frame selectors then never choose it. Padded frames get 0. Absent bodies
    (all-zero) add no motion; they scale a sample's scores uniformly and do not change its
    ranking.
    """
    check_choice(last, LAST_FRAME, "last", "motion")
    n, _, t, v, _ = x.shape
    if lengths is None:
        lengths = torch.full((n,), t, dtype=torch.long, device=x.device)
    out = torch.zeros(n, t, v, dtype=torch.float32, device=x.device)
    if t >= 2:
        xf = x.float()
        forward = (xf[:, :, 1:] - xf[:, :, :-1]).abs().mean(dim=(1, 4))  # (N, T-1, V)
        out[:, :-1] = forward
        last_idx = lengths - 1
        is_last = torch.arange(t, device=x.device)[None, :] == last_idx[:, None]
        if last == "backward":
            prev = (last_idx - 1).clamp(min=0)
            back = forward.gather(1, prev[:, None, None].expand(n, 1, v))
            back = back * (last_idx >= 1)[:, None, None]
            out = torch.where(is_last[:, :, None], back, out)
        else:
            out = out.masked_fill(is_last[:, :, None], 0.0)
    return out.masked_fill(~frames_valid(lengths, t)[:, :, None], 0.0)


def frame_motion(x: Tensor, lengths: Tensor | None = None, last: str = "backward") -> Tensor:
    """Frame motion a_t (N, T): ASMa eq. 4, the mean of eq. 3 over channels C and joints V
    (and bodies M). See :func:`joint_motion` for the last frame and padding."""
    return joint_motion(x, lengths, last).mean(dim=2)


def motion_selectable(lengths: Tensor, num_frames: int, last: str) -> Tensor:
    """(N, T) frames a motion ranking may choose: real frames, minus the last one when
    ``last="exclude"``."""
    valid = frames_valid(lengths, num_frames)
    if last == "exclude":
        is_last = torch.arange(num_frames, device=lengths.device)[None, :] == (lengths - 1)[:, None]
        valid &= ~is_last
    return valid


class _MotionRanked(FrameSelectingStrategy):
    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        k: int | float = 10,
        last: str = "backward",
        short: str = "clamp",
    ):
        super().__init__(layout, k=k, short=short)
        self.last = check_choice(last, LAST_FRAME, "last", self.name)
        self.params["last"] = self.last


@MASKINGS.register("hmtm")
class HMTM(_MotionRanked):
    """High-Motion Temporal Masking (ASMa, Section 3.2, eqs. 3–4): mask the k frames with
    the largest a_t (TopK)."""

    name = "hmtm"
    stochastic = False

    def frame_scores(
        self, x: Tensor, generator: torch.Generator | None, lengths: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor]:
        a = frame_motion(x, lengths, self.last)
        return a, motion_selectable(lengths, x.shape[2], self.last)


@MASKINGS.register("lmtm")
class LMTM(_MotionRanked):
    """Low-Motion Temporal Masking (ASMa, Section 3.2, eqs. 3–4): mask the k frames with
    the smallest a_t (BottomK). Padded frames (zero motion) are never taken for still ones
    when ``lengths`` is given."""

    name = "lmtm"
    stochastic = False

    def frame_scores(
        self, x: Tensor, generator: torch.Generator | None, lengths: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor]:
        a = frame_motion(x, lengths, self.last)
        return -a, motion_selectable(lengths, x.shape[2], self.last)


@MASKINGS.register("matm")
class MATM(_MotionRanked):
    """PSTL's motion-attention temporal masking: drop high-motion frames.

    PSTL ranks frames by motion and removes the top ones. Here k frames are drawn without
    replacement (Gumbel-top-k) with p_t = softmax_t(ã_t / temperature), where
    ã_t = a_t / max_u a_u is eq. 4's motion normalised per sample; the default temperature
    0.25 makes the highest-motion frame e^4 ≈ 55 times likelier than a still one.
    ``deterministic=True`` is PSTL's ranking: the top-k frames by a_t. ``squared=True``
    uses PSTL's squared differences instead of eq. 3's absolute ones. PSTL's public code
    also drops k further frames at random after the motion-selected ones: set
    ``random_extra=k`` to reproduce that (the mask then covers k + random_extra frames).
    """

    name = "matm"

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        k: int | float = 10,
        temperature: float = 0.25,
        deterministic: bool = False,
        squared: bool = False,
        random_extra: int = 0,
        last: str = "backward",
        short: str = "clamp",
    ):
        super().__init__(layout, k=k, last=last, short=short)
        self.temperature = check_positive(temperature, "temperature", self.name)
        for param, value in (("deterministic", deterministic), ("squared", squared)):
            if not isinstance(value, bool):
                raise ConfigError(f"masking 'matm': {param} must be true or false, got {value!r}")
        if isinstance(random_extra, bool) or not isinstance(random_extra, int) or random_extra < 0:
            raise ConfigError(f"masking 'matm': random_extra={random_extra!r} must be an int >= 0")
        self.deterministic, self.squared, self.random_extra = deterministic, squared, random_extra
        self.stochastic = not deterministic or random_extra > 0
        self.params.update(
            temperature=self.temperature,
            deterministic=deterministic,
            squared=squared,
            random_extra=random_extra,
        )

    def budget(self, num_frames: int) -> int:
        return self.resolve_k(num_frames) + self.random_extra

    def resolve_k(self, num_frames: int) -> int:
        k = super().resolve_k(num_frames)
        if k + self.random_extra >= num_frames:
            raise ConfigError(
                f"masking 'matm': k + random_extra = {k + self.random_extra} must be smaller "
                f"than T={num_frames}"
            )
        return k

    def frame_scores(
        self, x: Tensor, generator: torch.Generator | None, lengths: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor]:
        if self.squared:
            a = _squared_frame_motion(x, lengths, self.last)
        else:
            a = frame_motion(x, lengths, self.last)
        selectable = motion_selectable(lengths, x.shape[2], self.last)
        if self.deterministic:
            return a, selectable
        peak = a.masked_fill(~selectable, 0.0).amax(dim=1, keepdim=True).clamp(min=1e-12)
        logits = a / (peak * self.temperature)
        return logits + gumbel(a.shape, generator, a.device), selectable

    def _draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        if self.random_extra == 0:
            return super()._draw(x, generator, lengths)
        t = x.shape[2]
        k = self.resolve_k(t)
        valid = frames_valid(lengths, t)
        scores, selectable = self.frame_scores(x, generator, lengths, valid)
        cap = torch.minimum(selectable.sum(dim=1), valid.sum(dim=1) - 1)
        if self.short == "error" and bool((cap < k + self.random_extra).any()):
            raise ConfigError(
                f"masking 'matm': k + random_extra = {k + self.random_extra} but a sample has "
                f"only {int(cap.min())} selectable frames (see lengths)"
            )
        first = cap.clamp(max=k)
        by_motion = topk_mask(scores, k, allowed=selectable, counts=first)
        extra = (cap - first).clamp(max=self.random_extra)
        noise = gumbel(scores.shape, generator, x.device)
        at_random = topk_mask(
            noise, self.random_extra, allowed=selectable & ~by_motion, counts=extra
        )
        return temporal_to_mask(by_motion | at_random, x.shape[3])


def _squared_frame_motion(x: Tensor, lengths: Tensor, last: str) -> Tensor:
    """PSTL's motion score: mean over C, V, M of (x_{t+1} − x_t)², last frame as in eq. 3."""
    n, _, t, _, _ = x.shape
    xf = x.float()
    out = torch.zeros(n, t, dtype=torch.float32, device=x.device)
    if t >= 2:
        forward = ((xf[:, :, 1:] - xf[:, :, :-1]) ** 2).mean(dim=(1, 3, 4))
        out[:, :-1] = forward
        last_idx = lengths - 1
        is_last = torch.arange(t, device=x.device)[None, :] == last_idx[:, None]
        if last == "backward":
            back = (
                forward.gather(1, (last_idx - 1).clamp(min=0)[:, None]) * (last_idx >= 1)[:, None]
            )
            out = torch.where(is_last, back, out)
        else:
            out = out.masked_fill(is_last, 0.0)
    return out.masked_fill(~frames_valid(lengths, t), 0.0)


@MASKINGS.register("attention")
class AttentionMasking(FrameSelectingStrategy):
    """HA-CM's temporal masking by global joint attention (Yin & Cao, 2024).

    HA-CM scores frames with a learned per-joint temporal self-attention. This is its
    parameter-free form: for each joint, the coordinates (channels × bodies) centred on
    that joint's mean over the real frames are the queries and keys (identity projections);
    A_v = softmax_u(q_t · k_u / (√D · temperature)) over real frames u. A frame's global
    attention is the attention it receives, summed over all joints and real query frames.
    The k most attended frames are masked (``select="top"``; ``"bottom"`` masks the least).

    ``cross_grouping=True`` applies HA-CM's odd–even cross grouping: only even frames
    (t = 0, 2, …) can be masked, the odd ones being left to the spatial mask
    (``hierarchy`` with ``cross_grouping=True``). Cost is O(N·V·T²).
    """

    name = "attention"
    stochastic = False

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        k: int | float = 10,
        temperature: float = 1.0,
        select: str = "top",
        cross_grouping: bool = False,
        short: str = "clamp",
    ):
        super().__init__(layout, k=k, short=short)
        self.temperature = check_positive(temperature, "temperature", self.name)
        self.select = check_choice(select, ("top", "bottom"), "select", self.name)
        if not isinstance(cross_grouping, bool):
            raise ConfigError(
                f"masking 'attention': cross_grouping must be true or false, got {cross_grouping!r}"
            )
        self.cross_grouping = cross_grouping
        self.params.update(
            temperature=self.temperature, select=self.select, cross_grouping=cross_grouping
        )

    def resolve_k(self, num_frames: int) -> int:
        k = super().resolve_k(num_frames)
        even = (num_frames + 1) // 2
        if self.cross_grouping and k >= even:
            raise ConfigError(
                f"masking 'attention': k={self.k_spec!r} masks {k} frames; with cross_grouping "
                f"it must be smaller than the {even} even frames of T={num_frames}"
            )
        return k

    def frame_scores(
        self, x: Tensor, generator: torch.Generator | None, lengths: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor]:
        received = global_attention(x, valid, self.temperature)
        scores = received if self.select == "top" else -received
        selectable = valid
        if self.cross_grouping:
            even = torch.arange(x.shape[2], device=x.device) % 2 == 0
            selectable = valid & even[None, :]
        return scores, selectable


def global_attention(x: Tensor, valid: Tensor, temperature: float = 1.0) -> Tensor:
    """Attention each frame receives (N, T) in a parameter-free per-joint temporal
    self-attention, summed over joints and real query frames (see ``attention``)."""
    n, c, t, v, m = x.shape
    feats = x.float().permute(0, 3, 2, 1, 4).reshape(n, v, t, c * m)  # (N, V, T, D)
    w = valid[:, None, :, None].to(feats.dtype)
    mean = (feats * w).sum(dim=2, keepdim=True) / w.sum(dim=2, keepdim=True)
    feats = (feats - mean) * w
    sim = feats @ feats.transpose(-1, -2) / (math.sqrt(c * m) * temperature)  # (N, V, Tq, Tk)
    sim = sim.masked_fill(~valid[:, None, None, :], float("-inf"))
    att = torch.softmax(sim, dim=-1) * valid[:, None, :, None]
    return att.sum(dim=(1, 2))
