"""Named pairings of a spatial and a temporal masking, as first-class objects.

References: docs/references.md#asma.

ASMa pretrains two encoders, each on one spatial and one temporal mask: by default f_θ on
HDSM + LMTM and f_ϕ on LDSM + HMTM, the abstract's two complementary pairs in Algorithm 1's
order. The prose of Section 3.2 has been read as swapping the encoders and as giving the
symmetric pairs (f_ϕ = HDSM + HMTM, f_θ = LDSM + LMTM); either is one setting away:
``pretrain.params={theta_masks: ldsm_lmtm, phi_masks: hdsm_hmtm}``.

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

    def build(self, layout: str | SkeletonLayout = "ntu25", **overrides: Any) -> tuple[Any, Any]:
        """Create ``(spatial_strategy, temporal_strategy)`` for ``layout``.

        Overrides are ``spatial={...}`` / ``temporal={...}`` dicts, or flat parameters sent
        to whichever strategy accepts them (both, for shared names such as
        ``cross_grouping``). A parameter neither accepts raises ConfigError.
        """
        spatial_params = dict(self.spatial_params)
        temporal_params = dict(self.temporal_params)
        spatial_ok = accepted_params(MASKINGS.get(self.spatial))
        temporal_ok = accepted_params(MASKINGS.get(self.temporal))
        for key, value in overrides.items():
            if key in ("spatial", "temporal"):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"pairing {self.name!r}: {key} overrides must be a mapping")
                (spatial_params if key == "spatial" else temporal_params).update(value)
                continue
            if key not in spatial_ok and key not in temporal_ok:
                raise ConfigError(
                    f"pairing {self.name!r}: parameter {key!r} is accepted by neither "
                    f"{self.spatial!r} nor {self.temporal!r}"
                )
            if key in spatial_ok:
                spatial_params[key] = value
            if key in temporal_ok:
                temporal_params[key] = value
        return (
            create_masking(self.spatial, layout=layout, **spatial_params),
            create_masking(self.temporal, layout=layout, **temporal_params),
        )


def pairing_masks(
    masking: MaskingConfig,
    name: str,
    layout: str | SkeletonLayout,
    spatial: StrategySpec | str | Mapping[str, Any] | None = None,
    temporal: StrategySpec | str | Mapping[str, Any] | None = None,
) -> tuple[Any, Any]:
    """(spatial, temporal) strategies of the pairing ``name`` under a run's ``masking``
    section.

    Each side is the pairing's strategy unless a spec replaces it: ``spatial``/``temporal``
    here, else ``masking.spatial``/``masking.temporal`` (a :class:`StrategySpec`, a bare
    name, or a ``{name, params}`` mapping). The run's n and k go to the strategies that
    take a size; a spec's own ``params`` come last and win; each strategy checks its
    parameters itself (one line naming it and what it accepts).
    """
    pairing = create_pairing(name)
    sides = []
    for side, given, configured, sizes in (
        ("spatial", spatial, masking.spatial, {"n": masking.n}),
        ("temporal", temporal, masking.temporal, {"k": masking.k}),
    ):
        spec = _spec(given if given is not None else configured, side)
        if spec is None:  # the pairing's strategy, its own defaults under the run's sizes
            strategy, defaults, own = getattr(pairing, side), getattr(pairing, f"{side}_params"), {}
        else:
            strategy, defaults, own = spec.name, {}, spec.params
        params = {**defaults, **size_params(strategy, **sizes), **own}
        sides.append(create_masking(strategy, layout=layout, **params))
    return sides[0], sides[1]


def _spec(value: Any, side: str) -> StrategySpec | None:
    if value is None or isinstance(value, StrategySpec):
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
