"""Spatio-temporal motion-aware masking: Skeleton2vec's tubes and MAMP's patches.

References: docs/references.md#skeleton2vec, #mamp.

Both mask a high ratio (90 %) of positions, preferring moving joints: probabilities are a
softmax of motion normalised by its maximum, with a temperature, and positions are drawn
without replacement by Gumbel-top-k (exactly sequential sampling from that softmax).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from asma_bench.data.layouts import SkeletonLayout
from asma_bench.errors import ConfigError
from asma_bench.strategies.base import (
    MASKINGS,
    MaskingStrategy,
    check_choice,
    check_positive,
    check_ratio,
    count_spec,
    frames_valid,
    gumbel,
    num_masked,
    topk_mask,
    uniform,
)
from asma_bench.strategies.motion import joint_motion


def _normalised_softmax_logits(motion: Tensor, temperature: float, dims: tuple[int, ...]) -> Tensor:
    """log softmax(m / (max m · τ)) up to a constant: m / (max m · τ), max over ``dims``."""
    peak = motion.amax(dim=dims, keepdim=True).clamp(min=1e-12)
    return motion / (peak * temperature)


@MASKINGS.register("tube")
class TubeMasking(MaskingStrategy):
    """Skeleton2vec's motion-aware tube masking (Xu et al., 2024).

    The sequence is cut into tubes of ``alpha`` frames; within a tube the same joints stay
    masked. In each tube, ``V − floor(V·(1 − ratio))`` joints are masked (23 of 25 at the
    default ratio 0.9, Skeleton2vec's setting), drawn without replacement with
    p_v = softmax_v(m̃_v / temperature), where m̃ is the joint's mean motion (eq. 3 of ASMa,
    per joint) in the tube divided by the tube's largest. ``law="additive"`` is the rule
    of Skeleton2vec's public code instead: rank U[0,1) + ``motion_weight`` · m̃ and mask the
    largest (0.1 in its NTU-60 config). The default temperature 0.75 is MAMP's.

    ``alpha`` is a number of frames (int ≥ 1) or a fraction of T in (0, 1) (default 1/6:
    six tubes, as the public config's 90 frames in tubes of 15); the last tube is shorter
    when T is not a multiple. ``alpha = 1`` draws joints per frame; ``alpha = T`` is a
    single tube; ``alpha = 0`` is the paper's random masking: the same ratio of (frame,
    joint) cells, uniformly, with no tube structure. Padded frames (``lengths``) have zero
    motion and may be masked, which is harmless since they hold zeros.
    """

    kind = "spatiotemporal"

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        ratio: float = 0.9,
        alpha: int | float = 1 / 6,
        temperature: float = 0.75,
        law: str = "softmax",
        motion_weight: float = 0.1,
    ):
        super().__init__(layout)
        self.ratio = check_ratio(ratio, "ratio", self.name)
        self.alpha = count_spec(alpha, "alpha", self.name)  # frames, or a fraction of T
        self.temperature = check_positive(temperature, "temperature", self.name)
        self.law = check_choice(law, ("softmax", "additive"), "law", self.name)
        self.motion_weight = check_positive(motion_weight, "motion_weight", self.name)
        v = self.layout.num_joints
        self.per_tube = num_masked(v, self.ratio)
        if self.per_tube >= v:
            raise ConfigError(f"masking 'tube': ratio={ratio!r} leaves no joint visible in a tube")
        self.params.update(
            ratio=self.ratio,
            alpha=self.alpha,
            temperature=self.temperature,
            law=self.law,
            motion_weight=self.motion_weight,
        )

    def tube_frames(self, num_frames: int) -> int:
        """Tube length in frames for a sequence of T frames (0 = no tubes)."""
        if self.alpha == 0:
            return 0
        frames = (
            max(1, round(self.alpha * num_frames)) if isinstance(self.alpha, float) else self.alpha
        )
        if frames > num_frames:
            raise ConfigError(f"masking 'tube': alpha={self.alpha!r} is longer than T={num_frames}")
        return int(frames)

    def budget(self, num_frames: int) -> int:
        if self.tube_frames(num_frames) == 0:
            return num_masked(num_frames * self.layout.num_joints, self.ratio)
        return self.per_tube * num_frames

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        n, _, t, v, _ = x.shape
        a = self.tube_frames(t)
        if a == 0:
            cells = num_masked(t * v, self.ratio)
            if cells >= t * v:
                raise ConfigError(f"masking 'tube': ratio={self.ratio!r} masks every cell")
            return topk_mask(uniform((n, t * v), generator, x.device), cells).view(n, t, v)
        tubes = math.ceil(t / a)
        motion = joint_motion(x[:, : self.layout.dims], lengths)  # (N, T, V), coordinates
        padded = motion.new_zeros(n, tubes * a, v)
        padded[:, :t] = motion
        frames_in_tube = torch.full((tubes,), float(a), device=x.device)
        frames_in_tube[-1] = t - (tubes - 1) * a
        tube_motion = padded.view(n, tubes, a, v).sum(dim=2) / frames_in_tube[None, :, None]
        flat = tube_motion.reshape(n * tubes, v)
        if self.law == "softmax":
            keys = _normalised_softmax_logits(flat, self.temperature, (1,))
            keys = keys + gumbel(flat.shape, generator, x.device)
        else:
            peak = flat.amax(dim=1, keepdim=True).clamp(min=1e-12)
            keys = uniform(flat.shape, generator, x.device) + self.motion_weight * flat / peak
        per_tube = topk_mask(keys, self.per_tube).view(n, tubes, v)
        return per_tube.repeat_interleave(a, dim=1)[:, :t].contiguous()


@MASKINGS.register("mamp")
class MAMPMasking(MaskingStrategy):
    """MAMP's motion-aware masking of spatio-temporal patches (Mao et al., ICCV 2023).

    The sequence is cut into patches of ``patch_frames`` frames × 1 joint (4 in MAMP). A
    patch's motion is the mean |difference| between it and the previous patch of the same
    joint (frames t and t − patch_frames), over channels and bodies; the first patch copies
    the second's, as MAMP does. With m̃ = motion / its maximum over the sample's patches,
    ``num_masked(P·V, ratio)`` patches are drawn without replacement with
    p = softmax(m̃ / temperature) (ratio 0.9, temperature 0.75 as MAMP). MAMP works per
    body; here bodies are averaged so both share one mask. When T is not a multiple of
    ``patch_frames`` the last patch is shorter and its motion averages the frames it has.
    """

    kind = "spatiotemporal"

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        ratio: float = 0.9,
        temperature: float = 0.75,
        patch_frames: int = 4,
    ):
        super().__init__(layout)
        self.ratio = check_ratio(ratio, "ratio", self.name)
        self.temperature = check_positive(temperature, "temperature", self.name)
        if isinstance(patch_frames, bool) or not isinstance(patch_frames, int) or patch_frames < 1:
            raise ConfigError(f"masking 'mamp': patch_frames={patch_frames!r} must be an int >= 1")
        self.patch_frames = patch_frames
        self.params.update(
            ratio=self.ratio, temperature=self.temperature, patch_frames=patch_frames
        )

    def _patches(self, num_frames: int) -> int:
        if self.patch_frames > num_frames:
            raise ConfigError(
                f"masking 'mamp': patch_frames={self.patch_frames} is longer than T={num_frames}"
            )
        return math.ceil(num_frames / self.patch_frames)

    def budget(self, num_frames: int) -> int:
        patches = self._patches(num_frames) * self.layout.num_joints
        return min(
            num_masked(patches, self.ratio) * self.patch_frames, num_frames * self.layout.num_joints
        )

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        n, _, t, v, _ = x.shape
        u = self.patch_frames
        p = self._patches(t)
        masked = num_masked(p * v, self.ratio)
        if masked >= p * v:
            raise ConfigError(f"masking 'mamp': ratio={self.ratio!r} masks every patch")
        motion = patch_motion(x, u, lengths)  # (N, P, V)
        logits = _normalised_softmax_logits(motion, self.temperature, (1, 2)).reshape(n, p * v)
        chosen = topk_mask(logits + gumbel(logits.shape, generator, x.device), masked)
        return chosen.view(n, p, v).repeat_interleave(u, dim=1)[:, :t].contiguous()


def patch_motion(x: Tensor, patch_frames: int, lengths: Tensor | None = None) -> Tensor:
    """MAMP's patch motion (N, P, V): mean |x_t − x_{t−u}| over a patch's frames, channels
    and bodies; the first patch copies the second. Frames beyond ``lengths`` add nothing."""
    n, _, t, v, _ = x.shape
    u = patch_frames
    p = math.ceil(t / u)
    xf = x.float()
    diff = torch.zeros(n, t, v, dtype=torch.float32, device=x.device)
    if t > u:
        diff[:, u:] = (xf[:, :, u:] - xf[:, :, :-u]).abs().mean(dim=(1, 4))
    if lengths is not None:
        diff = diff.masked_fill(~frames_valid(lengths, t)[:, :, None], 0.0)
    padded = diff.new_zeros(n, p * u, v)
    padded[:, :t] = diff
    counts = torch.full((p,), float(u), device=x.device)
    counts[-1] = t - (p - 1) * u
    motion = padded.view(n, p, u, v).sum(dim=2) / counts[None, :, None]
    if p >= 2:
        motion[:, 0] = motion[:, 1]
    return motion
