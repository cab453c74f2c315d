"""Temporal masking by motion: ASMa's HMTM/LMTM, PSTL's motion-attention masking and
HA-CM's attention masking, plus the motion helpers they share (ASMa eqs. 3–4).

References: docs/references.md#asma, #pstl, #ha-cm.

Every strategy here masks ``k`` frames per sample (the same frames for every joint).
Frames at or beyond a sample's ``lengths`` are zero padding: they carry no motion and are
never selected. The motion-ranked strategies also skip frames that repeat an earlier pose
exactly (``copies="skip"``): masking one copy of a pose whose other copy stays visible
removes nothing.
"""

from __future__ import annotations

import math
from typing import Any

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
COPIES = ("skip", "keep")
DIFFERENCES = ("forward", "central")


def repeated_poses(x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """(N, T) True where real frame t's pose occurs exactly in another real frame of its
    clip.

    The SSL lineage's temporal crop pads by mirroring (``[c b a | a b c d …]``, edge frame
    repeated), so an augmented view can hold the same pose twice: masking one copy while
    the other stays visible removes nothing. Frames are compared through an exact
    per-frame checksum first (identical frames always collide), and every candidate pair
    is then confirmed element by element, so the answer is exact.
    """
    n, t = x.shape[0], x.shape[2]
    valid = frames_valid(_lengths_or_full(x, lengths), t)
    checksum = _frame_checksum(x)
    earlier = torch.ones(t, t, dtype=torch.bool, device=x.device).tril(-1)  # s < t at [t, s]
    both = valid[:, :, None] & valid[:, None, :] & earlier[None]
    cand = (checksum[:, :, None] == checksum[:, None, :]) & both
    out = torch.zeros(n, t, dtype=torch.bool, device=x.device)
    b, later, first = torch.nonzero(cand, as_tuple=True)
    if len(b):
        same = (x[b, :, later] == x[b, :, first]).flatten(1).all(dim=1)
        out[b[same], later[same]] = True
        out[b[same], first[same]] = True
    return out


def _frame_checksum(x: Tensor) -> Tensor:
    """(N, T) a weighted sum of each frame's values: identical frames give identical sums
    (the same reduction over the same numbers), different frames almost never do; callers
    confirm candidate pairs element by element."""
    _, c, _, v, m = x.shape
    weights = torch.linspace(1.0, 2.0, c * v * m, device=x.device).reshape(c, 1, v, m)
    return (x.float() * weights).sum(dim=(1, 3, 4))


def _consecutive_repeats(x: Tensor) -> Tensor:
    """(N, T − 1) True where frame t + 1 equals frame t exactly."""
    checksum = _frame_checksum(x)
    repeat = checksum[:, 1:] == checksum[:, :-1]
    b, i = torch.nonzero(repeat, as_tuple=True)
    if len(b):
        repeat[b, i] = (x[b, :, i + 1] == x[b, :, i]).flatten(1).all(dim=1)
    return repeat


def _lengths_or_full(x: Tensor, lengths: Tensor | None) -> Tensor:
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[2], dtype=torch.long, device=x.device)
    return lengths.to(x.device).long()


def _neighbours(x: Tensor, lengths: Tensor, copies: str) -> tuple[Tensor, Tensor]:
    """(next, previous) frame indices (N, T), −1 where there is none among real frames.

    ``copies="keep"``: t + 1 and t − 1. ``copies="skip"``: the nearest frame after (before)
    t whose pose differs from frame t, skipping runs of repeats such as the doubled edge
    frame of a mirror-padded crop, whose difference to t is exactly zero.
    """
    n, _, t, _, _ = x.shape
    idx = torch.arange(t, device=x.device).expand(n, t)
    nxt, prv = idx + 1, idx - 1
    if copies == "skip" and t >= 2:
        # runs of equal consecutive frames; a frame's neighbours are the frames just
        # outside its run (vectorised: run starts by cummax, run ends by a reversed cummin)
        repeat = _consecutive_repeats(x)  # (N, T−1)
        starts_run = torch.ones(n, t, dtype=torch.bool, device=x.device)
        starts_run[:, 1:] = ~repeat
        ends_run = torch.ones(n, t, dtype=torch.bool, device=x.device)
        ends_run[:, :-1] = ~repeat
        run_start = torch.where(starts_run, idx, 0).cummax(dim=1).values
        run_end = torch.where(ends_run, idx, t - 1).flip(1).cummin(dim=1).values.flip(1)
        nxt, prv = run_end + 1, run_start - 1
    nxt = torch.where(nxt < lengths[:, None], nxt, -1)
    return nxt, prv.clamp(min=-1)


def joint_motion(
    x: Tensor,
    lengths: Tensor | None = None,
    last: str = "backward",
    *,
    copies: str = "keep",
    difference: str = "forward",
    power: int = 1,
) -> Tensor:
    """Per-joint motion (N, T, V): ASMa eq. 3, m(t) = |x_{t+1} − x_t|, averaged over the
    C channels and the M bodies (``power=2``: PSTL's squared differences).

    A frame with no successor (the last real frame, t = length − 1) has no eq. 3 value:
    ``last="backward"`` scores it by its own backward difference |x_t − x_{t−1}| (the
    same number as frame t − 1's eq. 3 score); ``"zero"`` gives it 0 (PSTL's code);
    ``"exclude"`` also gives it 0 and frame selectors then never choose it.
    ``difference="central"`` scores every frame by the mean of its backward and forward
    differences (one-sided at the ends), so no two frames share a difference.
    ``copies="skip"`` differences each frame against the nearest *different* pose (see
    :func:`repeated_poses`), so a pose repeated by mirror padding does not look still.
    Padded frames get 0. Absent bodies (all-zero) add no motion; they scale a sample's
    scores uniformly and do not change its ranking.
    """
    check_choice(last, LAST_FRAME, "last", "motion")
    check_choice(copies, COPIES, "copies", "motion")
    check_choice(difference, DIFFERENCES, "difference", "motion")
    n, _, t, v, _ = x.shape
    lengths = _lengths_or_full(x, lengths)
    out = torch.zeros(n, t, v, dtype=torch.float32, device=x.device)
    if t >= 2:
        xf = x.float()
        step = (xf[:, :, 1:] - xf[:, :, :-1]).abs()
        step = (step if power == 1 else step**power).mean(dim=(1, 4))  # (N, T−1, V)
        # with skipped copies a frame's difference to the nearest different pose is the
        # step out of its run of equal frames (forward) or into it (backward)
        nxt, prv = _neighbours(x, lengths, copies)
        has_next, has_prev = (nxt >= 0)[:, :, None], (prv >= 0)[:, :, None]
        # frame t's forward step is step[nxt − 1], its backward one step[prv]
        fwd = step.gather(1, (nxt - 1).clamp(0, t - 2)[:, :, None].expand(n, t, v)) * has_next
        bwd = step.gather(1, prv.clamp(0, t - 2)[:, :, None].expand(n, t, v)) * has_prev
        if difference == "central":
            count = has_next.float() + has_prev.float()
            out = (fwd + bwd) / count.clamp(min=1)
        else:
            end = bwd if last == "backward" else torch.zeros_like(bwd)
            out = torch.where(has_next, fwd, end)
    return out.masked_fill(~frames_valid(lengths, t)[:, :, None], 0.0)


def frame_motion(
    x: Tensor, lengths: Tensor | None = None, last: str = "backward", **options: Any
) -> Tensor:
    """Frame motion a_t (N, T): ASMa eq. 4, the mean of eq. 3 over channels C and joints V
    (and bodies M). ``options`` (``copies``, ``difference``, ``power``) and the last frame,
    copies and padding: see :func:`joint_motion`."""
    return joint_motion(x, lengths, last, **options).mean(dim=2)


def motion_selectable(
    lengths: Tensor,
    num_frames: int,
    last: str,
    x: Tensor | None = None,
    copies: str = "keep",
    difference: str = "forward",
) -> Tensor:
    """(N, T) frames a motion ranking may choose: real frames; minus the frames with no
    successor when ``last="exclude"`` (forward differences); minus every frame whose pose
    is repeated elsewhere in the clip when ``copies="skip"`` (needs the clips ``x``): such
    a pose cannot be hidden by masking one frame, so k masked frames always hide k poses."""
    valid = frames_valid(lengths, num_frames)
    if copies == "skip" and x is not None:
        valid &= ~repeated_poses(x, lengths)
    if last == "exclude" and difference == "forward":
        if copies == "skip" and x is not None:
            no_next = _neighbours(x, lengths.to(x.device).long(), copies)[0] < 0
        else:
            t = torch.arange(num_frames, device=lengths.device)[None, :]
            no_next = t == (lengths - 1)[:, None]
        valid &= ~no_next
    return valid


class _MotionRanked(FrameSelectingStrategy):
    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        k: int | float = 10,
        last: str = "backward",
        copies: str = "skip",
        difference: str = "forward",
        short: str = "clamp",
    ):
        super().__init__(layout, k=k, short=short)
        self.last = check_choice(last, LAST_FRAME, "last", self.name)
        self.copies = check_choice(copies, COPIES, "copies", self.name)
        self.difference = check_choice(difference, DIFFERENCES, "difference", self.name)
        self.params.update(last=self.last, copies=self.copies, difference=self.difference)

    def motion(self, x: Tensor, lengths: Tensor, power: int = 1) -> tuple[Tensor, Tensor]:
        """(a_t (N, T), selectable (N, T)) under this strategy's motion settings."""
        opts = {"copies": self.copies, "difference": self.difference}
        x = x[:, : self.layout.dims]  # coordinates only: a confidence channel is not motion
        a = frame_motion(x, lengths, self.last, power=power, **opts)
        return a, motion_selectable(lengths, x.shape[2], self.last, x, **opts)


@MASKINGS.register("hmtm")
class HMTM(_MotionRanked):
    """High-Motion Temporal Masking (ASMa, Section 3.2, eqs. 3–4): mask the k frames with
    the largest a_t (TopK).

    Only poses that occur once in the clip are ranked (``copies="skip"``, default): a pose
    repeated by the mirror padding of the temporal crop is never masked (one masked copy
    would leave the other visible), and motion is differenced against the nearest
    different pose. ``copies="keep"`` ranks every frame
    on eq. 3 as printed. ``last`` and ``difference``: see :func:`joint_motion`."""

    stochastic = False

    def frame_scores(
        self, x: Tensor, generator: torch.Generator | None, lengths: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor]:
        return self.motion(x, lengths)


@MASKINGS.register("lmtm")
class LMTM(_MotionRanked):
    """Low-Motion Temporal Masking (ASMa, Section 3.2, eqs. 3–4): mask the k frames with
    the smallest a_t (BottomK). Padded frames (zero motion) are never taken for still ones
    when ``lengths`` is given, and neither are repeated poses (``copies="skip"``, default;
    see :class:`HMTM`): with ``copies="keep"`` the doubled edge frame of a mirror-padded
    crop has a_t = 0 exactly and LMTM spends one of its k frames on it in most views."""

    stochastic = False

    def frame_scores(
        self, x: Tensor, generator: torch.Generator | None, lengths: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor]:
        a, selectable = self.motion(x, lengths)
        return -a, selectable


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
        copies: str = "skip",
        difference: str = "forward",
        short: str = "clamp",
    ):
        super().__init__(layout, k=k, last=last, copies=copies, difference=difference, short=short)
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
        a, selectable = self.motion(x, lengths, power=2 if self.squared else 1)
        if self.deterministic:
            return a, selectable
        peak = a.masked_fill(~selectable, 0.0).amax(dim=1, keepdim=True).clamp(min=1e-12)
        logits = a / (peak * self.temperature)
        return logits + gumbel(a.shape, generator, a.device), selectable

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        if self.random_extra == 0:
            return super().draw(x, generator, lengths)
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
