"""The masking interface shared by every strategy, its registry, and the random draws.

References: docs/references.md#gumbel-top-k.

A strategy is a small callable object: ``mask = strategy(x, generator=None, lengths=None)``
takes a batch ``x`` of shape (N, C, T, V, M) and returns a bool mask (N, T, V), True where
the input is masked. Masks are drawn per sample, vectorised on ``x``'s device, and are
reproducible under a ``torch.Generator``. A generator may live on another device than ``x``
(typically a CPU generator with a CUDA batch): the noise is then drawn on the generator's
device and moved, so the same seed gives the same mask on every device.

>>> strategy = create_masking("hdsm", n=9)
>>> strategy(torch.zeros(2, 3, 50, 25, 2)).shape
torch.Size([2, 50, 25])
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError
from asma_bench.registry import Registry

MASKINGS: Registry[Any] = Registry("masking", context=("layout",), name_attribute="name")

KINDS = ("spatial", "temporal", "spatiotemporal", "none")

# Smallest float32 above zero; keeps log(-log(u)) finite when the uniform draw is exactly 0.
_TINY = float(torch.finfo(torch.float32).tiny)

# Plug-in hooks renamed to public names: old name -> new name. The old names keep working
# for one release and warn (DeprecationWarning); they go in the release after.
RENAMED_HOOKS = {"_draw": "draw", "_set_law": "set_law"}


def _deprecated_alias(func: Callable[..., Any], old: str, new: str) -> Callable[..., Any]:
    """``func`` under its old name: warns, then calls ``func`` itself (not ``self.<new>``,
    so an old-style override calling ``super().<old>`` reaches the base's hook)."""

    def alias(self: Any, *args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"masking strategy {type(self).__name__}: {old}() is deprecated, use {new}()",
            DeprecationWarning,
            stacklevel=2,
        )
        return func(self, *args, **kwargs)

    alias.__name__ = old
    alias.__doc__ = f"Deprecated name of :meth:`{new}`."
    return alias


class MaskingStrategy:
    """Base class: validates the batch, then asks the subclass for a mask.

    Subclasses set ``kind``, validate their parameters in ``__init__`` (recording the
    resolved values in ``self.params``), and implement ``draw`` and ``budget``. ``name`` is
    the key the class is registered under (``MASKINGS.register`` sets it).

    A subclass that still defines a hook under its old private name (``_draw``,
    ``_set_law``) works for one release and warns when it is defined; calling an old name
    warns too.
    """

    name: ClassVar[str] = "base"
    kind: str = "none"
    stochastic: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        for old, new in RENAMED_HOOKS.items():
            if old in own and new not in own:  # an old-style plug-in: its hook is the new one
                warnings.warn(
                    f"masking strategy {cls.__qualname__} defines {old}(), which is deprecated "
                    f"and stops working in the next release; name it {new}()",
                    DeprecationWarning,
                    stacklevel=2,
                )
                setattr(cls, new, own[old])
            elif new in own and old not in own:
                setattr(cls, old, _deprecated_alias(own[new], old, new))

    def __init__(self, layout: str | SkeletonLayout = "ntu25"):
        self.layout = get_layout(layout)
        self.params: dict[str, Any] = {"layout": self.layout.name}

    def __setattr__(self, name: str, value: Any) -> None:
        if name in RENAMED_HOOKS:  # ``strategy._draw = f`` on an instance, the old way
            warnings.warn(
                f"masking strategy {type(self).__name__}: setting {name} is deprecated, "
                f"set {RENAMED_HOOKS[name]}",
                DeprecationWarning,
                stacklevel=2,
            )
            name = RENAMED_HOOKS[name]
        super().__setattr__(name, value)

    @torch.no_grad()
    def __call__(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        lengths: Tensor | Sequence[int] | None = None,
    ) -> Tensor:
        """Draw one mask per sample: bool (N, T, V), True = masked.

        ``lengths`` (N,) gives each sample's number of valid frames; frames at or beyond it
        are zero padding and are never chosen by frame-selecting strategies.
        """
        self._check_batch(x)
        return self.draw(x, generator, _check_lengths(lengths, x, self.name))

    def budget(self, num_frames: int) -> int:
        """Most positions one sample's mask can cover: joints (spatial), frames (temporal),
        (frame, joint) cells (spatiotemporal) or 0 (none)."""
        raise NotImplementedError

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        """The mask of a checked batch: bool (N, T, V), True = masked; ``lengths`` (N,) is
        checked and filled in. Plug-ins implement this (or a base's hook below)."""
        raise NotImplementedError

    _draw = _deprecated_alias(draw, "_draw", "draw")

    def _check_batch(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(
                f"masking {self.name!r}: x must be a (N, C, T, V, M) tensor, got {shape}"
            )
        if x.shape[3] != self.layout.num_joints:
            raise ConfigError(
                f"masking {self.name!r}: x has {x.shape[3]} joints but layout "
                f"{self.layout.name!r} has {self.layout.num_joints}"
            )
        if x.shape[2] < 1:
            raise ConfigError(f"masking {self.name!r}: x has no frames")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def create_masking(
    name: str, layout: str | SkeletonLayout = "ntu25", **params: Any
) -> MaskingStrategy:
    """Build the registered masking ``name`` for ``layout``; unknown names or parameters
    raise ConfigError listing what is available."""
    return MASKINGS.create(name, context={"layout": layout}, **params)


def size_params(name: str, **sizes: float | None) -> dict[str, int | float]:
    """Of the config's mask sizes (``n`` joints, ``k`` frames: a count, or a fraction when
    below 1), those the registered masking ``name`` takes, whole counts as ``int`` (a float
    count such as 9.0 would otherwise read as a fraction of V)."""
    accepted = accepted_params(MASKINGS.get(name))
    return {
        key: int(v) if v >= 1 and float(v).is_integer() else v
        for key, v in sizes.items()
        if v is not None and key in accepted
    }


def list_maskings(pattern: str = "*") -> list[str]:
    """Registered masking names matching an fnmatch ``pattern``."""
    return MASKINGS.list(pattern)


def accepted_params(factory: Any) -> set[str]:
    """Keyword parameters a strategy factory accepts, besides ``layout``."""
    sig = inspect.signature(factory)
    return {
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "layout")
    }


# --- parameter checks -------------------------------------------------------------------


def count_spec(value: Any, param: str, strategy: str) -> int | float:
    """Validate a count given as an int >= 0 or a fraction in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"masking {strategy!r}: {param} must be a number, got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"masking {strategy!r}: {param}={value!r} must be >= 0")
        if 0 < value < 1:
            return float(value)
        if value != int(value):
            raise ConfigError(
                f"masking {strategy!r}: {param}={value!r} must be an integer "
                "or a fraction in (0, 1)"
            )
    if value < 0:
        raise ConfigError(f"masking {strategy!r}: {param}={value!r} must be >= 0")
    return int(value)


def resolve_count(spec: int | float, total: int, param: str, strategy: str, what: str) -> int:
    """Turn a count spec into a count: fractions become ``round(spec * total)``; the count
    must leave at least one of the ``total`` items visible."""
    count = int(round(spec * total)) if isinstance(spec, float) else int(spec)
    if count >= total:
        raise ConfigError(
            f"masking {strategy!r}: {param}={spec!r} masks {count} of {total} {what}; "
            f"it must be smaller than {total}"
        )
    return count


def check_choice(value: Any, choices: Sequence[str], param: str, strategy: str) -> str:
    if value not in choices:
        raise ConfigError(
            f"masking {strategy!r}: {param}={value!r} is not one of {', '.join(choices)}"
        )
    return str(value)


def check_positive(value: Any, param: str, strategy: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"masking {strategy!r}: {param} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"masking {strategy!r}: {param}={value!r} must be > 0")
    return float(value)


def check_ratio(value: Any, param: str, strategy: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"masking {strategy!r}: {param} must be a number, got {value!r}")
    if not 0 < value < 1:
        raise ConfigError(f"masking {strategy!r}: {param}={value!r} must lie in (0, 1)")
    return float(value)


def num_masked(total: int, ratio: float) -> int:
    """Masked count for a ratio, as MAE-style code does: keep ``floor(total * (1 - ratio))``.

    The small epsilon absorbs binary rounding: 10 * (1 - 0.9) is 0.9999999999999998, which
    would otherwise keep nothing of 10 at ratio 0.9.
    """
    keep = math.floor(total * (1.0 - ratio) + 1e-6)
    return total - keep


def _check_lengths(lengths: Any, x: Tensor, strategy: str) -> Tensor:
    n, t = x.shape[0], x.shape[2]
    if lengths is None:
        return torch.full((n,), t, dtype=torch.long, device=x.device)
    lengths = torch.as_tensor(lengths, device=x.device)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.shape != (n,):
        raise ConfigError(
            f"masking {strategy!r}: lengths must be {n} integers (one per sample), "
            f"got {tuple(lengths.shape)} {lengths.dtype}"
        )
    lengths = lengths.long()
    if bool(((lengths < 1) | (lengths > t)).any()):
        raise ConfigError(f"masking {strategy!r}: lengths must lie in [1, T={t}]")
    return lengths


# --- random draws -----------------------------------------------------------------------


def uniform(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """U[0, 1) noise on ``device``; drawn on the generator's own device when one is given."""
    if generator is None:
        return torch.rand(tuple(shape), device=device)
    u = torch.rand(tuple(shape), generator=generator, device=generator.device)
    return u.to(device)


class MaskStream:
    """The random stream of a run's masks, handing every mask slot a generator of its own.

    Each call of :meth:`slot` draws exactly one 63-bit seed from the stream and returns a
    fresh generator seeded with it, whatever the strategy that uses it then draws (a random
    frame strategy draws (N, T) uniforms, HMTM nothing, HDSM a Gumbel key per joint). So
    the k-th mask slot of a run gets the same generator in every cell at one seed: two cells
    whose spatial strategies agree draw identical spatial masks even where their temporal
    strategies differ, and the stream after a step does not depend on the strategies used
    in it (common random numbers; :class:`~asma_bench.training.loop.RandomStreams`).
    A slot with no strategy still takes its draw (:func:`slot_generator`).
    """

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def slot(self) -> torch.Generator:
        seed = torch.randint(
            0, 2**63 - 1, (1,), generator=self.generator, device=self.generator.device
        )
        return torch.Generator(device=self.generator.device).manual_seed(int(seed))


def slot_generator(generator: torch.Generator | MaskStream | None) -> torch.Generator | None:
    """The generator one mask slot draws from: a fresh slot of a :class:`MaskStream`, or a
    plain generator itself (then every strategy draws from it in turn, as before streams)."""
    return generator.slot() if isinstance(generator, MaskStream) else generator


def gumbel(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard Gumbel noise ``-log(-log U)``."""
    u = uniform(shape, generator, device).clamp_(min=_TINY)
    return -torch.log(-torch.log(u))


def topk_mask(
    scores: Tensor, k: int, allowed: Tensor | None = None, counts: Tensor | None = None
) -> Tensor:
    """Bool mask of the ``k`` highest scores per row (N, K).

    ``allowed`` excludes entries (they rank last); ``counts`` (N,) takes only the first
    ``counts[i] <= k`` of row i's ranking, so rows may mask different numbers of entries
    without a Python loop. Callers guarantee ``k`` (or ``counts``) allowed entries per row.
    """
    out = torch.zeros_like(scores, dtype=torch.bool)
    if k == 0:
        return out
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    idx = scores.topk(k, dim=1).indices
    if counts is None:
        take = torch.ones_like(idx, dtype=torch.bool)
    else:
        take = torch.arange(k, device=scores.device)[None, :] < counts[:, None]
    return out.scatter_(1, idx, take)


def sample_without_replacement(
    logits: Tensor, k: int, generator: torch.Generator | None, counts: Tensor | None = None
) -> Tensor:
    """Draw ``k`` distinct entries per row with probabilities ``softmax(logits)``.

    Gumbel-top-k: the k largest of ``logits + Gumbel`` are distributed exactly as k
    sequential draws without replacement, each proportional to the remaining probabilities
    (Kool et al., 2019). ``-inf`` logits are never drawn. ``counts`` as in :func:`topk_mask`.
    Returns bool (N, K).
    """
    if logits.dim() != 2:
        raise ValueError("logits must be (N, K); expand a shared row first")
    keys = logits + gumbel(logits.shape, generator, logits.device)
    return topk_mask(keys, k, counts=counts)


def frames_valid(lengths: Tensor, num_frames: int) -> Tensor:
    """(N, T) bool: frame t is a real frame (t < length)."""
    t = torch.arange(num_frames, device=lengths.device)
    return t[None, :] < lengths[:, None]


def spatial_to_mask(joint_mask: Tensor, num_frames: int) -> Tensor:
    """(N, V) joint mask → (N, T, V): the same joints in every frame."""
    n, v = joint_mask.shape
    return joint_mask[:, None, :].expand(n, num_frames, v).contiguous()


def temporal_to_mask(frame_mask: Tensor, num_joints: int) -> Tensor:
    """(N, T) frame mask → (N, T, V): the same frames for every joint."""
    n, t = frame_mask.shape
    return frame_mask[:, :, None].expand(n, t, num_joints).contiguous()


# --- shared strategy shapes ------------------------------------------------------------


class JointSamplingStrategy(MaskingStrategy):
    """Spatial masking: ``n`` distinct joints per sample drawn from a fixed law over joints,
    the same joints in every frame. Subclasses provide ``joint_log_probs`` (V,)."""

    kind = "spatial"

    def __init__(self, layout: str | SkeletonLayout = "ntu25", *, n: int | float = 9):
        super().__init__(layout)
        v = self.layout.num_joints
        spec = count_spec(n, "n", self.name)
        self.n = resolve_count(spec, v, "n", self.name, "joints")
        self.params["n"] = self.n
        if isinstance(spec, float):
            self.params["n_fraction"] = spec

    def set_law(self, log_probs: Tensor) -> None:
        """Store the per-joint law (V,) log-probabilities; refuse one that cannot give ``n``
        distinct joints."""
        drawable = int(torch.isfinite(log_probs).sum())
        if drawable < self.n:
            raise ConfigError(
                f"masking {self.name!r}: n={self.n} but only {drawable} joints of layout "
                f"{self.layout.name!r} have non-zero probability"
            )
        self.joint_log_probs = log_probs.to(torch.float32)

    @property
    def joint_probs(self) -> Tensor:
        """The single-draw law p_v over joints (sums to 1)."""
        return torch.softmax(self.joint_log_probs, dim=0)

    def budget(self, num_frames: int) -> int:
        return self.n

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        n, t, v = x.shape[0], x.shape[2], x.shape[3]
        logits = self.joint_log_probs.to(x.device).expand(n, v)
        return spatial_to_mask(sample_without_replacement(logits, self.n, generator), t)


class FrameSelectingStrategy(MaskingStrategy):
    """Temporal masking: ``k`` frames per sample, the same frames for every joint.

    ``k`` may be a fraction of T, resolved when T is known. Frames at or beyond a sample's
    length are never selected, and at least one real frame stays visible: a sample with
    too few selectable frames gets fewer than ``k`` masked (``short="clamp"``, default) or
    raises ConfigError (``short="error"``). Subclasses implement ``frame_scores``; the ``k``
    highest scores among the selectable frames are masked.
    """

    kind = "temporal"

    def __init__(
        self, layout: str | SkeletonLayout = "ntu25", *, k: int | float = 10, short: str = "clamp"
    ):
        super().__init__(layout)
        self.k_spec = count_spec(k, "k", self.name)
        self.short = check_choice(short, ("clamp", "error"), "short", self.name)
        self.params.update(k=self.k_spec, short=self.short)

    def resolve_k(self, num_frames: int) -> int:
        return resolve_count(self.k_spec, num_frames, "k", self.name, "frames")

    def budget(self, num_frames: int) -> int:
        return self.resolve_k(num_frames)

    def frame_scores(
        self, x: Tensor, generator: torch.Generator | None, lengths: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(scores (N, T), selectable (N, T) bool); higher score = masked first."""
        raise NotImplementedError

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        t = x.shape[2]
        k = self.resolve_k(t)
        valid = frames_valid(lengths, t)
        scores, selectable = self.frame_scores(x, generator, lengths, valid)
        cap = torch.minimum(selectable.sum(dim=1), valid.sum(dim=1) - 1)
        if self.short == "error" and bool((cap < k).any()):
            raise ConfigError(
                f"masking {self.name!r}: k={k} but a sample has only {int(cap.min())} "
                f"selectable frames (see lengths); use short='clamp' to mask fewer"
            )
        frame_mask = topk_mask(scores, k, allowed=selectable, counts=cap.clamp(max=k))
        return temporal_to_mask(frame_mask, x.shape[3])
