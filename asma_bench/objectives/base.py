"""What an objective needs, declared by the objective: the pretraining protocol asks.

References: docs/references.md#asma, #pstl.

Every registered objective is an ``nn.Module`` subclassing :class:`Objective`. Its class
says which encoders it trains (``encoder_roles``: one ``("encoder",)``, or ASMa's
``("theta", "phi")``), which of them draw masks and from which pairing by default
(``mask_roles``: ``{"encoder": "ldsm_hmtm"}``, or ASMa's HDSM+LMTM for f_θ and LDSM+HMTM
for f_ϕ; the run's ``masking`` section chooses otherwise) and whether it ends in the Barlow
Twins projector sized by ``pretrain.projector_dim`` with weight ``pretrain.lambd``
(``uses_projector``). :meth:`Objective.from_config` builds it from a run's config; an
objective with other needs overrides it (MoCo caps its queue, ASMa gives each encoder its
masks). A plug-in objective declares the same three things and is trained by
``asma-bench run`` without any change to the protocols.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from asma_bench.data.layouts import SkeletonLayout
from asma_bench.errors import ConfigError
from asma_bench.registry import check_params
from asma_bench.strategies import create_masking
from asma_bench.strategies.apply import apply_mask
from asma_bench.strategies.base import MaskStream, slot_generator
from asma_bench.strategies.pairs import choose_masks

if TYPE_CHECKING:  # the config layer is imported for types only
    from asma_bench.config import RunConfig

MASK_MODES = ("zero", "drop")


class Objective(nn.Module):
    """Base class of self-supervised objectives (see the module docstring)."""

    encoder_roles: ClassVar[tuple[str, ...]] = ("encoder",)
    mask_roles: ClassVar[Mapping[str, str]] = {"encoder": "ldsm_hmtm"}
    uses_projector: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "takes_pairing" in cls.__dict__ and "mask_roles" not in cls.__dict__:
            import warnings

            warnings.warn(
                f"objective {cls.__qualname__}: takes_pairing is deprecated; declare "
                "mask_roles (each masked encoder's role and default pairing; {} for none)",
                DeprecationWarning,
                stacklevel=2,
            )
            cls.mask_roles = (
                {role: "ldsm_hmtm" for role in cls.encoder_roles} if cls.takes_pairing else {}
            )

    def forward_backward(
        self,
        *views: Tensor,
        generator: Any = None,
        backward: Callable[[Tensor], None] | None = None,
        context: Callable[[], AbstractContextManager] = nullcontext,
    ) -> dict[str, Tensor]:
        """One training step's forward and backward passes: the losses of ``views``, with
        their gradients accumulated into the parameters' ``.grad``; returns the losses
        detached.

        ``backward(loss)`` runs the backward pass (default ``loss.backward()``; the
        pretraining step checks the loss and scales it there, then steps the optimizer over
        the parameters that now have gradients and frees those gradients); each forward
        pass runs inside ``context()`` (autocast) and no backward pass does. An objective
        whose loss is a sum of terms over disjoint parameters overrides this to finish each
        term's backward pass before the next term's forward pass (ASMa, eq. 9): the same
        gradients and updates, and only one term's activations and gradients alive at a
        time. An override must call ``backward`` once per term, and only for terms whose
        parameters no later term of the step uses.
        """
        with context():
            out = self(*views, generator=generator)
        (backward or Tensor.backward)(out["loss"])
        return {name: value.detach() for name, value in out.items()}

    @classmethod
    def unused_settings(cls) -> tuple[str, ...]:
        """``pretrain`` settings this objective ignores (reset to their defaults when a run
        is planned, so that they never set two identical runs apart)."""
        return () if cls.uses_projector else ("projector_dim", "lambd")

    @classmethod
    def masks(cls, cfg: RunConfig, layout: SkeletonLayout | str) -> tuple[tuple[Any, Any], ...]:
        """The (spatial, temporal) strategies each masked encoder draws from, in the order
        of ``mask_roles``: the run's ``masking`` section's choice for the role, by default
        the role's own pairing (:func:`~asma_bench.strategies.pairs.choose_masks`)."""
        return tuple(
            choose_masks(cfg.masking, role, default, layout)
            for role, default in cls.mask_roles.items()
        )

    @classmethod
    def config_params(
        cls,
        cfg: RunConfig,
        encoders: Mapping[str, nn.Module],
        layout: SkeletonLayout,
        train_size: int | None = None,
    ) -> dict[str, Any]:
        """Constructor arguments from a run's config: the encoders under their roles, the
        masks (``spatial``/``temporal`` for one masked encoder, ``<role>_masks`` for
        several), the masking mode, the projector and ``pretrain.params``."""
        missing = [r for r in cls.encoder_roles if r not in encoders]
        if missing:
            raise ConfigError(f"objective {cls.__name__}: no encoder for role(s) {missing}")
        p = cfg.pretrain
        params: dict[str, Any] = {role: encoders[role] for role in cls.encoder_roles}
        params["mask_mode"] = cfg.masking.mode
        if cls.uses_projector:
            width = p.projector_dim
            params.update(projector_dims=[_out_dim(encoders), width, width, width], lambd=p.lambd)
        masks = cls.masks(cfg, layout)
        if len(masks) == 1:
            params["spatial"], params["temporal"] = masks[0]
        else:
            params.update({f"{r}_masks": m for r, m in zip(cls.mask_roles, masks, strict=True)})
        params.update(p.params)
        return params

    @classmethod
    def from_config(
        cls,
        cfg: RunConfig,
        encoders: Mapping[str, nn.Module],
        layout: SkeletonLayout,
        train_size: int | None = None,
    ) -> Objective:
        """The objective a run's config describes, around ``encoders``."""
        params = cls.config_params(cfg, encoders, layout, train_size)
        check_params(cls, params, f"objective {cfg.pretrain.objective!r}")
        return cls(**params)


def _out_dim(encoders: Mapping[str, nn.Module]) -> int:
    return int(next(iter(encoders.values())).out_dim)


# --- helpers shared by the objectives -------------------------------------------------------


def masked_view(
    x: Tensor,
    strategies: Sequence[Callable[..., Tensor] | None],
    mode: str = "zero",
    generator: torch.Generator | MaskStream | None = None,
    lengths: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Mask ``x`` with every strategy's mask (drawn on ``x``, in order) and apply the union:
    ``(x_masked, kept_joints or None)``.

    In ``drop`` mode each mask must be purely temporal (whole frames) or purely spatial
    (whole joints): the masked frames are removed first, then the masked joints.
    """
    # one generator per slot, drawn for every slot (an empty one included), so a run's
    # mask stream stays aligned across cells whatever their strategies draw (MaskStream)
    slots = [(s, slot_generator(generator)) for s in strategies]
    masks = [s(x, generator=g, lengths=lengths) for s, g in slots if s is not None]
    if not masks:
        return x, None
    if mode == "zero" or len(masks) == 1:
        union = masks[0]
        for m in masks[1:]:
            union = union | m
        return apply_mask(x, union, mode)
    frames = torch.zeros_like(masks[0][:, :, 0])
    joints = torch.zeros_like(masks[0][:, 0, :])
    for m in masks:
        if bool((m == m[:, :, :1]).all()):
            frames = frames | m[:, :, 0]
        elif bool((m == m[:, :1, :]).all()):
            joints = joints | m[:, 0, :]
        else:
            raise ConfigError(
                "mask_mode='drop' needs purely spatial or purely temporal masks; one mask "
                "varies over both frames and joints (use mask_mode='zero')"
            )
    n, _, t, v, _ = x.shape
    x, _ = apply_mask(x, frames[:, :, None].expand(n, t, v), "drop")
    return apply_mask(x, joints[:, None, :].expand(n, x.shape[2], v), "drop")


def resolve_strategy(strategy: Any, encoder: nn.Module | None, slot: str) -> Any:
    """A masking strategy object (or ``None``); names are built with ``create_masking`` for
    the encoder's layout."""
    if strategy is None:
        return None
    if isinstance(strategy, str):
        layout = getattr(encoder, "layout", "ntu25")
        return create_masking(strategy, layout=layout)
    if not callable(strategy):
        raise ConfigError(
            f"{slot} must be a masking strategy (callable) or a masking name, got "
            f"{type(strategy).__name__}"
        )
    return strategy


def encoder_dim(encoder: nn.Module) -> int:
    dim = getattr(encoder, "out_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(
            f"encoder {type(encoder).__name__} has no integer out_dim; objectives need it"
        )
    return dim


def check_mask_mode(mode: str) -> str:
    if mode not in MASK_MODES:
        raise ConfigError(f"mask_mode={mode!r} is not one of {', '.join(MASK_MODES)}")
    return mode


def check_non_negative(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}={value!r} must be a number")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={value!r} must be finite and >= 0")
    return float(value)


def check_positive(value: float, name: str) -> float:
    if check_non_negative(value, name) <= 0:
        raise ConfigError(f"{name}={value!r} must be > 0")
    return float(value)
