"""Named pairings of a spatial and a temporal masking, as first-class objects.

References: docs/references.md#asma.

ASMa pretrains two encoders, each on one spatial and one temporal mask: by default f_θ on
HDSM + LMTM and f_ϕ on LDSM + HMTM, the abstract's two complementary pairs in Algorithm 1's
order. The prose of Section 3.2 has been read as swapping the encoders and as giving the
symmetric pairs (f_ϕ = HDSM + HMTM, f_θ = LDSM + LMTM); either is one setting away:
``masking.encoders={theta: ldsm_lmtm, phi: hdsm_hmtm}``.

>>> theta, phi = (create_pairing(name) for name in ASMA_ENCODERS)
>>> spatial, temporal = theta.build("ntu25")
>>> spatial.name, temporal.name
('hdsm', 'lmtm')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from asma_bench.config import MaskingConfig, StrategySpec
from asma_bench.data.layouts import SkeletonLayout
from asma_bench.errors import ConfigError, validation_line
from asma_bench.registry import Registry
from asma_bench.strategies.base import MASKINGS, accepted_params, create_masking, size_params

PAIRINGS: Registry[Any] = Registry("masking pairing")


@dataclass(frozen=True)
class MaskingPairing:
    """A spatial and a temporal masking (names and parameters) under one name."""

    name: str
    spatial: str
    temporal: str
    spatial_params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    temporal_params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    description: str = ""
    aliases: tuple[str, ...] = ()

    def build(
        self,
        layout: str | SkeletonLayout = "ntu25",
        *,
        n: float | None = None,
        k: float | None = None,
        spatial: StrategySpec | str | Mapping[str, Any] | None = None,
        temporal: StrategySpec | str | Mapping[str, Any] | None = None,
        **params: Any,
    ) -> tuple[Any, Any]:
        """Create ``(spatial_strategy, temporal_strategy)`` for ``layout``.

        ``n`` / ``k``: the joints and frames to mask (counts, or fractions of V and T),
        given to the side whose strategy takes a size. ``spatial`` / ``temporal``: a
        :class:`~asma_bench.config.StrategySpec` or a bare strategy name replaces that side
        (its ``params`` win over ``n``/``k``); a plain mapping adds parameters to the
        pairing's own strategy. Other keyword parameters go to whichever strategy accepts
        them (both, for shared names such as ``cross_grouping``); a parameter neither
        accepts raises ConfigError, as does a strategy's own check of its parameters.
        """
        sides = {}
        for side, given, size in (("spatial", spatial, {"n": n}), ("temporal", temporal, {"k": k})):
            if isinstance(given, str | StrategySpec):
                spec = _spec(given, side)
                sides[side] = (spec.name, {}, spec.params)
            else:
                if not isinstance(given, Mapping | None):
                    raise ConfigError(
                        f"pairing {self.name!r}: {side} must be a strategy name, a spec or "
                        f"a mapping of parameters, got {type(given).__name__}"
                    )
                own = dict(given or {})
                sides[side] = (getattr(self, side), dict(getattr(self, f"{side}_params")), own)
            strategy, defaults, _ = sides[side]
            defaults.update(
                size_params(strategy, **{k_: v for k_, v in size.items() if v is not None})
            )
        accepted = {side: accepted_params(MASKINGS.get(sides[side][0])) for side in sides}
        for key, value in params.items():
            takers = [side for side in sides if key in accepted[side]]
            if not takers:
                raise ConfigError(
                    f"pairing {self.name!r}: parameter {key!r} is accepted by neither "
                    f"{sides['spatial'][0]!r} nor {sides['temporal'][0]!r}"
                )
            for side in takers:
                sides[side][1][key] = value
        return tuple(
            create_masking(strategy, layout=layout, **{**defaults, **own})
            for strategy, defaults, own in sides.values()
        )


def choose_masks(
    masking: MaskingConfig, role: str, default: str, layout: str | SkeletonLayout
) -> tuple[Any, Any]:
    """The (spatial, temporal) strategies of the encoder ``role`` under a run's ``masking``
    section (:meth:`~asma_bench.config.MaskingConfig.choice`: its ``encoders`` entry, then
    the section, then the objective's ``default`` pairing), with the run's n and k."""
    pairing, spatial, temporal = masking.choice(role, default)
    return create_pairing(pairing).build(
        layout, n=masking.n, k=masking.k, spatial=spatial, temporal=temporal
    )


def _spec(value: Any, side: str) -> StrategySpec:
    if isinstance(value, StrategySpec):
        return value
    try:
        return StrategySpec.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(validation_line(exc, f"masking.{side}")) from None


def register_pairing(pairing: MaskingPairing) -> MaskingPairing:
    """Register ``pairing`` under its name and aliases."""
    for key in (pairing.name, *pairing.aliases):
        PAIRINGS.register(key)(lambda p=pairing: p)
    return pairing


def create_pairing(name: str) -> MaskingPairing:
    """The pairing registered as ``name`` (or an alias); unknown names raise ConfigError."""
    return PAIRINGS.get(name)()


def list_pairings(pattern: str = "*") -> list[str]:
    """Registered pairing names and aliases matching an fnmatch ``pattern``."""
    return PAIRINGS.list(pattern)


for _pairing in (
    MaskingPairing(
        "hdsm_lmtm",
        "hdsm",
        "lmtm",
        description="ASMa encoder f_θ: high-degree joints + low-motion frames "
        "(the abstract's pair, Algorithm 1's order)",
        aliases=("asma_theta",),
    ),
    MaskingPairing(
        "ldsm_hmtm",
        "ldsm",
        "hmtm",
        description="ASMa encoder f_ϕ: low-degree joints + high-motion frames "
        "(the abstract's pair, Algorithm 1's order)",
        aliases=("asma_phi",),
    ),
    MaskingPairing(
        "hdsm_hmtm", "hdsm", "hmtm", description="ASMa ablation: high degree + high motion"
    ),
    MaskingPairing(
        "ldsm_lmtm", "ldsm", "lmtm", description="ASMa ablation: low degree + low motion"
    ),
    MaskingPairing(
        "random_random",
        "random_joint",
        "random_frame",
        description="uniform joints + uniform frames",
    ),
    MaskingPairing(
        "random_hmtm", "random_joint", "hmtm", description="factorial: uniform joints + HMTM"
    ),
    MaskingPairing(
        "random_lmtm", "random_joint", "lmtm", description="factorial: uniform joints + LMTM"
    ),
    MaskingPairing(
        "hdsm_random", "hdsm", "random_frame", description="factorial: HDSM + uniform frames"
    ),
    MaskingPairing(
        "ldsm_random", "ldsm", "random_frame", description="factorial: LDSM + uniform frames"
    ),
    MaskingPairing(
        "pstl",
        "csm",
        "matm",
        description="PSTL: central spatial + motion-attention temporal masking",
    ),
    MaskingPairing(
        "hacm", "hierarchy", "attention", description="HA-CM: joint hierarchy + global attention"
    ),
    MaskingPairing(
        "hacm_cross",
        "hierarchy",
        "attention",
        spatial_params={"cross_grouping": True},
        temporal_params={"cross_grouping": True},
        description="HA-CM with odd–even cross grouping: joints masked on odd frames, "
        "frames masked among even ones",
    ),
    MaskingPairing("none_none", "none", "none", description="no masking (anchor views)"),
):
    register_pairing(_pairing)

ASMA_ENCODERS: tuple[str, str] = ("hdsm_lmtm", "ldsm_hmtm")
"""ASMa's two encoders in order (θ, ϕ): f_θ = HDSM + LMTM, f_ϕ = LDSM + HMTM."""

ASMA_ENCODER_ROLES: dict[str, str] = {"theta": ASMA_ENCODERS[0], "phi": ASMA_ENCODERS[1]}
