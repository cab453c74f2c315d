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
        ({"overrides": {"masking": {"pairing": "hdsm_lmtn"}}}, [], "hdsm_lmtn"),
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
    with pytest.raises(ConfigError, match=r"--runs .*a_file/runs: cannot write there"):
        ensure_writable(tmp_path / "a_file" / "runs")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root ignores permissions
            with pytest.raises(ConfigError, match=r"--runs .*locked: cannot write there"):
                ensure_writable(locked)
    finally:
        locked.chmod(0o700)


@pytest.fixture
def xview_only(tmp_path):
    """A tiny dataset with only the xview split, as NW-UCLA has."""
    import json

    from asma_bench.data.synthetic import generate

    path = generate(tmp_path / "xview_only", "tiny", seed=3)
    info = json.loads((path / "info.json").read_text())
    info["splits"] = {"xview": info["splits"]["xview"]}
    (path / "info.json").write_text(json.dumps(info))
    return path


def test_a_dataset_with_one_split_is_planned_with_that_split(xview_only, caplog):
    import logging

    grid = load_grid("masking_pairs")
    opts = RunOptions(profile="smoke", seeds=[0, 1], data=str(xview_only))
    with caplog.at_level(logging.WARNING):
        units = plan_units(grid, opts)
        again = plan_units(grid, opts)  # `asma-bench run` plans twice: still one line
    assert {u.config.data.split for u in units} == {"xview"}
    assert [u.id for u in again] == [u.id for u in units]
    said = [r.getMessage() for r in caplog.records if "split" in r.getMessage()]
    assert said == [f"data.split 'xsub' not in {xview_only}; using its only split 'xview'"]
    # the same units (ids, hence resumption) as when the split is given
    explicit = RunOptions(profile="smoke", seeds=[0, 1], data=str(xview_only),
                          overrides=["data.split=xview"])  # fmt: skip
    assert [u.id for u in plan_units(grid, explicit)] == [u.id for u in units]


def test_a_split_missing_among_several_is_refused_at_planning():
    with pytest.raises(ConfigError) as err:
        plan_units(_grid(), RunOptions(profile="smoke", seeds=[0], overrides=["data.split=xset"]))
    assert str(err.value) == (
        "grid 'masking_pairs', cell 'ldsm_hmtm': data.split 'xset' not in synthetic data "
        "(has xsub, xview); choose one with --set data.split=NAME"
    )


def test_the_split_used_is_the_one_recorded_in_mlflow(xview_only, tmp_path):
    from asma_bench.harness.runner import run_grid
    from asma_bench.harness.tracking import Tracker

    grid = _grid()
    grid.references = []
    opts = RunOptions(
        profile="smoke", seeds=[0], data=str(xview_only), out=tmp_path / "runs", progress=False
    )
    outcome = run_grid(grid, opts)
    assert outcome.ran == ["ldsm_hmtm/seed0"] and not outcome.failed
    (run,) = Tracker(outcome.tracking_uri, experiment="asma-bench").unit_runs(grid.name)
    assert run.data.params["data.split"] == "xview"
    assert run_grid(grid, opts).skipped == ["ldsm_hmtm/seed0"]  # a rerun finds it done


def test_a_turn_2d_keypoints_cannot_take_falls_back_to_centring_in_one_line(tmp_path, caplog):
    import logging

    from asma_bench.data.synthetic import generate

    flat = generate(tmp_path / "coco", "tiny", seed=3, layout="coco17")
    grid = load_grid("masking_pairs")
    turn = ["data.normalize=center_every_frame_rotate"]
    opts = RunOptions(profile="smoke", seeds=[0, 1], data=str(flat), overrides=turn)
    with caplog.at_level(logging.WARNING):
        units = plan_units(grid, opts)
        plan_units(grid, opts)
    assert {u.config.data.normalize for u in units} == {"center_every_frame"}
    said = [r.getMessage() for r in caplog.records if "normalize" in r.getMessage()]
    assert said == [
        "data.normalize 'center_every_frame_rotate' cannot turn these skeletons (layout "
        "'coco17' is 2-D); using 'center_every_frame'"
    ]
    # the recorded config is the one that runs: the same units as asking for it directly
    plain = RunOptions(profile="smoke", seeds=[0, 1], data=str(flat),
                       overrides=["data.normalize=center_every_frame"])  # fmt: skip
    assert [u.id for u in plan_units(grid, plain)] == [u.id for u in units]
    # 3-D skeletons with shoulders keep the turn
    (unit, *_) = plan_units(grid, RunOptions(profile="smoke", seeds=[0], overrides=turn))
    assert unit.config.data.normalize == "center_every_frame_rotate"
