"""Planning a grid refuses what cannot run before anything runs."""

import pytest

from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import RunOptions, plan_units


def _grid(**cell):
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells, grid.baseline = grid.cells[:1], None
    grid.cells[0] = grid.cells[0].model_copy(update=cell)
    return grid


@pytest.mark.parametrize(
    ("cell", "overrides", "message"),
    [
        ({"protocol": "linaer"}, [], "unknown protocol 'linaer'"),
        ({"overrides": {"pretrain": {"pairing": "hdsm_lmtn"}}}, [], "hdsm_lmtn"),
        ({}, ["pretrain.objective=simclr"], "unknown objective 'simclr'"),
        ({}, ["backbone.name=resnet"], "unknown backbone 'resnet'"),
        ({}, ["data.preset=nope"], "unknown synthetic preset 'nope'"),
    ],
)
def test_unknown_names_fail_at_planning_naming_grid_and_cell(cell, overrides, message):
    with pytest.raises(ConfigError) as err:
        plan_units(_grid(**cell), RunOptions(profile="smoke", seeds=[0], overrides=overrides))
    assert str(err.value).startswith("grid 'masking_pairs', cell '")
    assert message in str(err.value)
