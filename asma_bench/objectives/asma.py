"""ASMa pre-training: two encoders on complementary masks (ASMa Sec. 3.3, eq. 9).

References: docs/references.md#asma.

By default f_θ learns from HDSM + LMTM and f_ϕ from LDSM + HMTM (the abstract's two
complementary pairs in Algorithm 1's order; see :mod:`asma_bench.strategies.pairs` for the
readings of Section 3.2), each through its own :class:`TripletBarlowTwins` (own projector);
``L_ASMa = L^θ + L^ϕ``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from asma_bench.errors import ConfigError
from asma_bench.objectives.barlow_twins import TripletBarlowTwins
from asma_bench.objectives.base import Objective
from asma_bench.strategies import ASMA_ENCODERS, create_pairing

if TYPE_CHECKING:  # the config layer is imported for types only
    pass

VIEW_SHARING = ("separate", "shared", "algorithm1")


class ASMaObjective(Objective):
    """``L_ASMa = L^θ + L^ϕ`` (ASMa eq. 9), each term the triplet loss of eq. 8.

    ``theta``/``phi`` are the encoders f_θ and f_ϕ. ``theta_masks``/``phi_masks`` are each
    a registered pairing name (built for the encoder's layout with ``masking_params`` as
    overrides, e.g. ``{"spatial": {"n": 9}, "temporal": {"k": 10}}``) or a
    ``(spatial, temporal)`` pair of strategies. Other parameters as for
    :class:`TripletBarlowTwins`.

    ``view_sharing`` — how the training step's augmented clips reach the two encoders.
    Sections 3.2–3.3 and Algorithm 1 (lines 6–8 and 11) describe one un-augmented anchor x
    shared by both encoders, with the augmented clips x′ and x̂ computed once and fed to
    both; the paper has no sentence giving each encoder views of its own:

    * ``separate`` (default; two runs of the PSTL recipe, not the paper's text): six
      augmented views, the first three for f_θ (anchor, spatial, temporal) and the last
      three for f_ϕ — kept as the default because the published tables were made with it;
    * ``shared``: three augmented views (anchor included) that both encoders see;
    * ``algorithm1``: Algorithm 1 — the anchor is the clip itself (not augmented) and the
      spatial and temporal streams are two augmented views x′, x̂ shared by both encoders.
      Algorithm 1 line 4 scores motion on the raw clip x; here HMTM/LMTM score the view
      they mask (x̂), because the augmentation's temporal crop and resize move the frames:
      the indices of x's highest-motion frames do not name the same poses in x̂.

    In every mode each encoder draws its own masks.

    From a run's config (:meth:`config_params`) f_θ and f_ϕ take their masks from the
    ``masking`` section: ``masking.encoders.theta`` / ``phi`` (default HDSM+LMTM and
    LDSM+HMTM), under the section's pairing, sides and sizes.
    """

    encoder_roles = ("theta", "phi")
    mask_roles = dict(zip(encoder_roles, ASMA_ENCODERS, strict=True))
    uses_projector = True

    def __init__(
        self,
        theta: nn.Module,
        phi: nn.Module,
        theta_masks: str | Sequence[Any] = "hdsm_lmtm",
        phi_masks: str | Sequence[Any] = "ldsm_hmtm",
        projector_dims: Sequence[int] | None = None,
        lambd: float = 2e-4,
        mask_mode: str = "zero",
        standardize: str = "batch",
        eps: float = 1e-5,
        masking_params: Mapping[str, Any] | None = None,
        view_sharing: str = "separate",
    ):
        super().__init__()
        if theta is phi:
            raise ConfigError("theta and phi must be two separate encoders")
        if view_sharing not in VIEW_SHARING:
            raise ConfigError(
                f"asma: view_sharing={view_sharing!r} is not one of {', '.join(VIEW_SHARING)}"
            )
        self.view_sharing = view_sharing
        self.num_views = {"separate": 6, "shared": 3, "algorithm1": 2}[view_sharing]
        # the training step puts the un-augmented clip before the augmented views
        self.raw_anchor = view_sharing == "algorithm1"
        params = dict(masking_params or {})
        common = dict(
            projector_dims=projector_dims,
            lambd=lambd,
            mask_mode=mask_mode,
            standardize=standardize,
            eps=eps,
        )
        s_theta, t_theta = _strategies(theta_masks, theta, params, "theta_masks")
        s_phi, t_phi = _strategies(phi_masks, phi, params, "phi_masks")
        self.theta = TripletBarlowTwins(theta, s_theta, t_theta, **common)
        self.phi = TripletBarlowTwins(phi, s_phi, t_phi, **common)

    def forward(
        self,
        *views: Tensor,
        generator: torch.Generator | None = None,
        lengths: Tensor | None = None,
        phi_views: Sequence[Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Losses of both encoders from six views (f_θ's anchor, spatial and temporal
        views, then f_ϕ's) or three that both share; ``phi_views`` gives f_ϕ's three
        explicitly."""
        theta_in, phi_in = self._split_views(views, phi_views)
        theta = self.theta(*theta_in, generator=generator, lengths=lengths)
        phi = self.phi(*phi_in, generator=generator, lengths=lengths)
        return _combined(theta, phi)

    def forward_backward(
        self,
        *views: Tensor,
        generator: torch.Generator | None = None,
        backward: Callable[[Tensor], None] | None = None,
        context: Callable[[], AbstractContextManager] = nullcontext,
    ) -> dict[str, Tensor]:
        """:meth:`forward` and the backward pass of ``L_ASMa = L^θ + L^ϕ`` (eq. 9), one
        encoder at a time: f_ϕ's parameters do not enter L^θ nor f_θ's L^ϕ, so running
        L^θ's backward pass before L^ϕ's forward pass gives the same gradients while only
        one encoder's activations are alive (half the step's activation memory); the
        pretraining step's ``backward`` also updates f_θ and frees its gradients there.
        Masks and dropout draw from the generators in the same order as :meth:`forward`."""
        theta_in, phi_in = self._split_views(views, None)
        run = backward or Tensor.backward
        losses = {}
        for name, triplet, inputs in (("theta", self.theta, theta_in), ("phi", self.phi, phi_in)):
            with context():
                out = triplet(*inputs, generator=generator)
            run(out["loss"])
            losses[name] = {key: value.detach() for key, value in out.items()}
        return _combined(losses["theta"], losses["phi"])

    @staticmethod
    def _split_views(
        views: Sequence[Tensor], phi_views: Sequence[Tensor] | None
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """(f_θ's three views, f_ϕ's three views) from six views, or three shared."""
        if len(views) == 6 and phi_views is None:
            views, phi_views = views[:3], views[3:]
        if len(views) != 3:
            raise ConfigError(f"asma takes 3 or 6 views, got {len(views)}")
        phi_in = tuple(views) if phi_views is None else tuple(phi_views)
        if len(phi_in) != 3:
            raise ConfigError(f"phi_views must hold 3 views, got {len(phi_in)}")
        return tuple(views), phi_in


def _combined(theta: Mapping[str, Tensor], phi: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """L_ASMa and its terms from the two encoders' triplet losses."""
    return {
        "loss": theta["loss"] + phi["loss"],
        "loss_theta": theta["loss"],
        "loss_phi": phi["loss"],
        "l1_theta": theta["l1"],
        "l2_theta": theta["l2"],
        "l1_phi": phi["l1"],
        "l2_phi": phi["l2"],
    }


def _strategies(
    pairing: str | Sequence[Any], encoder: nn.Module, params: dict[str, Any], name: str
) -> tuple[Any, Any]:
    if isinstance(pairing, str):
        return create_pairing(pairing).build(getattr(encoder, "layout", "ntu25"), **params)
    pair = tuple(pairing)
    if len(pair) != 2:
        raise ConfigError(f"{name} must be a pairing name or (spatial, temporal) strategies")
    return pair[0], pair[1]
