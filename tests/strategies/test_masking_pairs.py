"""Named masking pairings, ASMa's encoder assignment included."""

from __future__ import annotations

import pytest
import torch

from asma_bench.errors import ConfigError
from asma_bench.strategies import (
    ASMA_ENCODER_ROLES,
    ASMA_ENCODERS,
    MaskingPairing,
    create_pairing,
    list_pairings,
)

EXPECTED = {
    "hdsm_lmtm": ("hdsm", "lmtm"),
    "ldsm_hmtm": ("ldsm", "hmtm"),
    "hdsm_hmtm": ("hdsm", "hmtm"),
    "ldsm_lmtm": ("ldsm", "lmtm"),
    "random_random": ("random_joint", "random_frame"),
    "pstl": ("csm", "matm"),
    "hacm": ("hierarchy", "attention"),
    "hacm_cross": ("hierarchy", "attention"),
    "none_none": ("none", "none"),
}


def test_asma_encoders_follow_the_abstract_and_algorithm_1() -> None:
    assert ASMA_ENCODERS == ("hdsm_lmtm", "ldsm_hmtm")
    assert ASMA_ENCODER_ROLES == {"theta": "hdsm_lmtm", "phi": "ldsm_hmtm"}
    assert create_pairing("asma_theta") is create_pairing("hdsm_lmtm")
    assert create_pairing("asma_phi") is create_pairing("ldsm_hmtm")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pairings_build_their_strategies(name: str) -> None:
    pairing = create_pairing(name)
    assert isinstance(pairing, MaskingPairing) and pairing.name == name and pairing.description
    spatial, temporal = pairing.build("kinect20")
    assert (spatial.name, temporal.name) == EXPECTED[name]
    assert spatial.layout.name == temporal.layout.name == "kinect20"
    x = torch.randn(3, 3, 30, 20, 1).cumsum(dim=2)
    s_mask, t_mask = spatial(x), temporal(x)
    if name != "none_none":
        assert s_mask.any() and t_mask.any()
    if temporal.kind == "temporal":
        assert torch.equal(t_mask, t_mask[:, :, :1].expand_as(t_mask))


def test_every_pairing_is_listed() -> None:
    assert set(EXPECTED) | {"asma_theta", "asma_phi"} <= set(list_pairings())
    assert list_pairings("asma_*") == ["asma_phi", "asma_theta"]


def test_overrides_are_routed_to_the_strategy_that_accepts_them() -> None:
    spatial, temporal = create_pairing("hdsm_lmtm").build(n=5, k=0.2)
    assert spatial.n == 5 and temporal.k_spec == 0.2
    spatial, temporal = create_pairing("hacm").build(cross_grouping=True, temporal={"k": 4})
    assert spatial.cross_grouping and temporal.cross_grouping and temporal.k_spec == 4
    spatial, temporal = create_pairing("hacm_cross").build()
    assert spatial.kind == "spatiotemporal" and temporal.params["cross_grouping"] is True


def test_bad_pairings_and_overrides_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown masking pairing 'asma'; available: .*asma_phi"):
        create_pairing("asma")
    with pytest.raises(ConfigError, match="'ratio' is accepted by neither"):
        create_pairing("pstl").build(ratio=0.5)
    with pytest.raises(ConfigError, match="n=30"):
        create_pairing("ldsm_hmtm").build(n=30)


def test_a_side_of_the_wrong_kind_is_one_line_not_a_traceback():
    with pytest.raises(ConfigError, match=r"pairing 'hdsm_lmtm': temporal must be a strategy "
                       r"name, a spec or a mapping of parameters, got int"):  # fmt: skip
        create_pairing("hdsm_lmtm").build(temporal=4)
