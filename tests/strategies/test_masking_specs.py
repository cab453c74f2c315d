"""The ``masking`` section, the one home of the mask choice: ``pairing``, ``spatial`` /
``temporal`` (a strategy and its own parameters, straight from the config to the strategy,
which checks them itself) and ``encoders.<role>``; the old homes still read, said once."""

from __future__ import annotations

import pytest
import torch

from asma_bench.config import build_config
from asma_bench.data.layouts import get_layout
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.plan import RunOptions, plan_units
from asma_bench.objectives import objective_class
from asma_bench.strategies.pairs import choose_masks

NTU = get_layout("ntu25")


def _masks(*overrides: str, pairing: str = "ldsm_lmtm"):  # noqa: ANN202
    cfg = build_config("smoke", list(overrides))
    return choose_masks(cfg.masking, "encoder", pairing, NTU)


def _joint_shares(strategy, draws: int = 2000) -> torch.Tensor:  # noqa: ANN001
    x = torch.randn(draws, 3, 10, NTU.num_joints, 1)
    mask = strategy(x, generator=torch.Generator().manual_seed(0))  # True = masked
    return mask.reshape(draws, -1, NTU.num_joints).any(dim=1).float().mean(dim=0)


def test_a_spec_replaces_one_side_and_its_params_reach_the_strategy() -> None:
    spatial, temporal = _masks("masking.spatial={name: ldsm, params: {law: inverse_degree}}")
    assert (spatial.name, spatial.params["law"]) == ("ldsm", "inverse_degree")
    assert temporal.name == "lmtm"  # the pairing's own temporal side stays
    eq2, _ = _masks()
    assert eq2.params["law"] == "eq2"
    # the law changes what is masked: inverse degree favours leaves even more than eq. 2
    leaves = torch.as_tensor(NTU.degrees) == 1
    inverse, plain = _joint_shares(spatial), _joint_shares(eq2)
    assert inverse[leaves].mean() > plain[leaves].mean() + 0.02


def test_a_bare_name_swaps_the_strategy_and_the_runs_sizes_still_apply() -> None:
    spatial, temporal = _masks("masking.temporal=random_frame", "masking.k=4")
    assert (spatial.name, temporal.name) == ("ldsm", "random_frame")
    assert temporal.params["k"] == 4
    # a spec's own size wins over masking.n
    spatial, _ = _masks("masking.spatial={name: hdsm, params: {n: 3}}", "masking.n=9")
    assert spatial.name == "hdsm" and spatial.params["n"] == 3
    assert int(_joint_shares(spatial, 200).sum().round()) == 3


def test_bad_specs_are_one_line_naming_the_strategy_or_the_field() -> None:
    with pytest.raises(ConfigError, match=r"'ldsm': unknown parameter 'lw'; accepted: law, n"):
        _masks("masking.spatial={name: ldsm, params: {lw: 1}}")
    with pytest.raises(ConfigError, match=r"unknown masking 'nosuch'; available: .*hdsm"):
        _masks("masking.spatial=nosuch")
    with pytest.raises(ConfigError, match=r"masking.spatial.name"):
        build_config("smoke", ["masking.spatial={params: {n: 3}}"])
    with pytest.raises(ConfigError) as moved:
        build_config("smoke", ["masking.ldsm_law=inverse_degree"])
    assert "masking.spatial={name: ldsm, params: {law: inverse_degree}}" in str(moved.value)
    assert "got {" not in str(moved.value)  # no dump of the whole section


def test_the_factorial_grid_reaches_ldsm_with_the_inverse_degree_law() -> None:
    grid = load_grid("masking_factorial")
    units = plan_units(grid, RunOptions(profile="smoke", seeds=[0]))
    laws = {
        u.cell.name: objective_class(u.config.pretrain.objective).masks(u.config, NTU)[0][0]
        for u in units
        if u.config.pretrain.epochs > 0
    }
    assert laws["ldsminv_hmtm"].params["law"] == "inverse_degree"
    assert laws["ldsm_hmtm"].params["law"] == "eq2"


def test_asma_takes_a_choice_per_encoder_and_the_sections_for_both() -> None:
    cfg = build_config(
        "smoke",
        ["pretrain.objective=asma",
         "masking.encoders={phi: {spatial: {name: ldsm, params: {law: inverse_degree}}}}"],
    )  # fmt: skip
    (s_theta, t_theta), (s_phi, t_phi) = objective_class("asma").masks(cfg, NTU)
    assert (s_theta.name, t_theta.name) == ("hdsm", "lmtm")  # f_θ keeps its own pairing
    assert (s_phi.name, s_phi.params["law"], t_phi.name) == ("ldsm", "inverse_degree", "hmtm")
    # the section's own fields reach both encoders; an encoder's entry wins over them
    both = build_config("smoke", ["pretrain.objective=asma", "masking.spatial=random_joint",
                                  "masking.encoders.theta={temporal: random_frame}"])  # fmt: skip
    (s_theta, t_theta), (s_phi, t_phi) = objective_class("asma").masks(both, NTU)
    assert (s_theta.name, t_theta.name) == ("random_joint", "random_frame")
    assert (s_phi.name, t_phi.name) == ("random_joint", "hmtm")
    with pytest.raises(ConfigError, match=r"masking.encoders.theta.spacial"):
        build_config("smoke", ["pretrain.objective=asma",
                               "masking.encoders={theta: {spacial: hdsm}}"])  # fmt: skip


def test_two_ways_of_writing_one_choice_plan_one_unit() -> None:
    grid = load_grid("encoders")  # objective asma

    def unit_ids(*overrides: str) -> list[str]:
        units = plan_units(grid, RunOptions(profile="smoke", seeds=[0], overrides=list(overrides)))
        return [u.id for u in units]

    section = unit_ids("masking.pairing=random_random")
    each = unit_ids("masking.encoders={theta: random_random, phi: random_random}")
    assert section == each
    assert section != unit_ids()  # and it is another choice than the default
    with pytest.raises(ConfigError, match=r"masking.encoders.encoder: objective 'asma' masks "
                       r"theta, phi"):  # fmt: skip
        unit_ids("masking.encoders.encoder=ldsm_hmtm")
    pairs = load_grid("masking_pairs")  # one encoder: its entry is the section's fields
    one = plan_units(pairs, RunOptions(profile="smoke", seeds=[0]))[0]
    assert one.config.masking.pairing == "ldsm_hmtm" and not one.config.masking.encoders


def test_the_old_homes_still_choose_said_once_with_the_new_form() -> None:
    from asma_bench.config import ConfigDeprecation

    with pytest.warns(ConfigDeprecation, match=r"pretrain.pairing is deprecated; use "
                      r"masking.pairing \(--set masking.pairing=hdsm_lmtm\)"):  # fmt: skip
        old = build_config("smoke", ["pretrain.pairing=hdsm_lmtm"])
    new = build_config("smoke", ["masking.pairing=hdsm_lmtm"])
    assert old == new and old.identity() == new.identity()
    # the published form of a unit's identity: runs folders made before keep their units
    assert new.identity()["pretrain"]["pairing"] == "hdsm_lmtm"
    assert build_config("smoke").identity()["pretrain"]["pairing"] == "ldsm_hmtm"
    with pytest.warns(ConfigDeprecation, match=r"pretrain.params.phi_masks is deprecated; use "
                      r"masking.encoders.phi"):  # fmt: skip
        old = build_config("smoke", ["pretrain.objective=asma",
                                     "pretrain.params={phi_masks: hdsm_hmtm}"])  # fmt: skip
    assert old.masking.encoders["phi"].pairing == "hdsm_hmtm" and old.pretrain.params == {}
    assert old.identity()["pretrain"]["params"] == {"phi_masks": "hdsm_hmtm"}
    # a later layer's new key wins over an earlier layer's old one
    with pytest.warns(ConfigDeprecation):
        cfg = build_config("smoke", [{"pretrain": {"pairing": "pstl"}}, "masking.pairing=hacm"])
    assert cfg.masking.pairing == "hacm"
    with pytest.raises(ConfigError, match=r"pretrain.pairing='pstl' and masking.pairing='hacm'"):
        build_config("smoke", [{"pretrain": {"pairing": "pstl"}, "masking": {"pairing": "hacm"}}])
