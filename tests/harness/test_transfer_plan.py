"""The transfer grid on a dataset folder: `--data` names the target, and the synthetic
source is written on the target's skeleton; skeletons that cannot meet are refused at
planning."""

from __future__ import annotations

import pytest

from asma_bench.data.synthetic import generate
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import RunOptions, plan_units, run_grid
from asma_bench.training.data import synthetic_path


@pytest.fixture(scope="module")
def kinect20(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("k20") / "k20", "tiny", seed=4, layout="kinect20")


def test_data_names_the_target_and_the_synthetic_source_takes_its_skeleton(kinect20, tmp_path):
    grid = load_grid("transfer")
    opts = RunOptions(profile="smoke", seeds=[0], data=str(kinect20), out=tmp_path,
                      progress=False)  # fmt: skip
    units = plan_units(grid, opts)
    for u in units:
        assert u.config.data.source == "synthetic" and u.config.data.layout == "kinect20"
        assert u.config.transfer.target.source == str(kinect20.resolve())
        assert u.config.transfer.target.fingerprint
    default = plan_units(grid, RunOptions(profile="smoke", seeds=[0], out=tmp_path))
    assert {u.config.data.layout for u in default} == {None}  # NTU-25 noisy target as before
    assert synthetic_path(units[0].config.data, tmp_path).name.endswith("-kinect20")
    outcome = run_grid(grid, opts)
    assert sorted(outcome.ran) == ["asma_transfer/seed0", "random_init/seed0"]
    assert (tmp_path / "data" / "synthetic-tiny-seed0-kinect20" / "info.json").is_file()


def test_skeletons_that_cannot_meet_are_refused_at_planning(kinect20, tmp_path):
    ntu = generate(tmp_path / "ntu", "tiny", seed=5)
    grid = load_grid("transfer")
    with pytest.raises(ConfigError, match="source's skeleton ntu25 differs from the target's "
                       "kinect20"):  # fmt: skip
        plan_units(grid, RunOptions(profile="smoke", seeds=[0], data=str(kinect20),
                                    overrides=[f"data.source={ntu}"]))  # fmt: skip
    with pytest.raises(ConfigError, match="data.layout='kinect20' applies to synthetic data"):
        plan_units(load_grid("transfer"), RunOptions(
            profile="smoke", seeds=[0], data=str(kinect20),
            overrides=[f"data.source={ntu}", "data.layout=kinect20"]))  # fmt: skip
    with pytest.raises(ConfigError, match="data.layout='mars': synthetic data is written"):
        plan_units(grid, RunOptions(profile="smoke", seeds=[0], data=str(kinect20),
                                    overrides=["data.layout=mars"]))  # fmt: skip


def test_two_targets_in_one_store_are_two_datasets_in_the_report(kinect20, tmp_path):
    """The transfer grid's source is synthetic whatever --data names: the report keys a
    transfer run by source and target, so two targets are never averaged together."""
    from asma_bench.reports.results import load_grid_runs

    other = generate(tmp_path / "other", "tiny", seed=6, layout="kinect20")
    grid = load_grid("transfer")
    for target in (kinect20, other):
        opts = RunOptions(profile="smoke", seeds=[0], data=str(target), out=tmp_path / "runs",
                          progress=False)  # fmt: skip
        assert not run_grid(grid, opts).failed
    runs = load_grid_runs(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", "transfer", grid)
    assert len(runs.datasets) == 2
    assert all(d.startswith("synthetic/tiny@kinect20 → ") for d in runs.datasets)
    assert {d.rsplit(" → ", 1)[1] for d in runs.datasets} == {
        str(kinect20.resolve()), str(other.resolve())}  # fmt: skip
