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


def test_an_unwritable_output_folder_fails_at_once(tmp_path):
    import os

    from asma_bench.harness.runner import ensure_writable

    assert ensure_writable(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError, match=r"--out .*a_file/runs: cannot write there"):
        ensure_writable(tmp_path / "a_file" / "runs")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root ignores permissions
            with pytest.raises(ConfigError, match=r"--out .*locked: cannot write there"):
                ensure_writable(locked)
    finally:
        locked.chmod(0o700)
