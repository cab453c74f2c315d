"""``masking.spatial`` / ``masking.temporal``: a strategy and its own parameters, straight
from the config to the strategy, which checks them itself."""

from __future__ import annotations

import pytest
import torch

from asma_bench.config import build_config
from asma_bench.data.layouts import get_layout
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.plan import RunOptions, plan_units
from asma_bench.objectives import objective_class
from asma_bench.strategies.pairs import pairing_masks

NTU = get_layout("ntu25")


def _masks(*overrides: str, pairing: str = "ldsm_lmtm"):  # noqa: ANN202
    cfg = build_config("smoke", list(overrides))
    return pairing_masks(cfg.masking, pairing, NTU)


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


def test_asma_takes_a_spec_per_encoder_and_refuses_a_global_one() -> None:
    grid = load_grid("encoders")  # objective asma
    with pytest.raises(ConfigError, match=r"masking.spatial does not apply to objective "
                       r"'asma'.*theta_masks: \{spatial: "):  # fmt: skip
        plan_units(grid, RunOptions(profile="smoke", seeds=[0],
                                    overrides=["masking.spatial=hdsm"]))  # fmt: skip
    cfg = build_config(
        "smoke",
        ["pretrain.objective=asma",
         "pretrain.params={phi_masks: {spatial: {name: ldsm, params: {law: inverse_degree}}}}"],
    )  # fmt: skip
    (s_theta, t_theta), (s_phi, t_phi) = objective_class("asma").masks(cfg, NTU)
    assert (s_theta.name, t_theta.name) == ("hdsm", "lmtm")  # f_θ keeps its own pairing
    assert (s_phi.name, s_phi.params["law"], t_phi.name) == ("ldsm", "inverse_degree", "hmtm")
    bad = build_config("smoke", ["pretrain.objective=asma",
                                 "pretrain.params={theta_masks: {spacial: hdsm}}"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"theta_masks: unknown key 'spacial'"):
        objective_class("asma").masks(bad, NTU)
