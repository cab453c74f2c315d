"""The grid runner: units into MLflow, exactly one finished run per unit, reruns skip."""

import os
import textwrap

import pytest

from asma_bench.errors import ConfigError
from asma_bench.harness.grids import list_grids, load_grid
from asma_bench.harness.locks import unit_lock
from asma_bench.harness.runner import (
    RunOptions,
    grid_results,
    plan_units,
    run_grid,
    run_unit,
    summary_table,
)
from asma_bench.harness.tracking import TAG_UNIT, Tracker


@pytest.mark.parametrize("name", list_grids())
def test_every_builtin_grid_resolves(name):
    grid = load_grid(name)
    units = plan_units(grid, RunOptions(profile="smoke", seeds=[0, 1]))
    assert len(units) == 2 * len(grid.all_cells())
    assert len({u.id for u in units}) == len(units), "two units share a config"
    assert "random_init" in grid.references  # every built-in grid shows random features
    ref = [u for u in units if u.cell.name == "random_init"]
    assert len(ref) == 2 and all(u.config.pretrain.epochs == 0 for u in ref)


@pytest.mark.parametrize("name", list_grids())
def test_reference_rows_are_set_up_like_the_baseline_they_are_compared_with(name):
    """random_init differs from the cell the report compares it with (the baseline; the
    first cell where there is none) only in its 0 pretraining epochs: the random-init row
    of `encoders` probes the aligned pair, that of `distill_tau` distils at tau = 8."""
    grid = load_grid(name)
    units = plan_units(grid, RunOptions(profile="smoke", seeds=[0]))
    by_cell = {u.cell.name: u for u in units}
    regular = [c.name for c in grid.cells]
    like = by_cell[grid.baseline if grid.baseline in regular else regular[0]]
    ref = by_cell["random_init"]
    assert ref.protocol == like.protocol
    differ = {k for k, v in ref.config.flat().items() if like.config.flat().get(k) != v}
    assert differ <= {"pretrain.epochs"}, differ
    wanted = {"encoders": ("linear.features", "aligned"), "distill_tau": ("distill.tau", 8.0),
              "student_depth": ("distill.student_depth", 5),
              "teacher_kind": ("distill.teacher", "finetune")}  # fmt: skip
    if name in wanted:
        key, value = wanted[name]
        assert ref.config.flat()[key] == value


def test_cells_whose_fractions_round_to_the_same_counts_are_refused():
    grid = load_grid("masking_ratio")
    units = plan_units(grid, RunOptions(profile="quick", seeds=[0]))
    assert {u.config.data.frames for u in units} == {50}  # the paper's T, whatever the profile
    with pytest.raises(ConfigError, match=r"'n7_k7' and 'n7_k8' mask the same 7 joints and 3 of "
                       r"20 frames.*--set data.frames=50"):  # fmt: skip
        plan_units(grid, RunOptions(profile="quick", seeds=[0], overrides=["data.frames=20"]))


def test_yaml_grid_and_bad_grids(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text(
        textwrap.dedent("""
        name: mine
        protocol: linear
        cells:
          - {name: a, overrides: {masking: {pairing: hdsm_lmtm}}}
    """)
    )
    assert [c.name for c in load_grid(good).all_cells()] == ["a", "random_init"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncells: [{name: '../../etc', overrides: {}}]\n")
    with pytest.raises(ConfigError, match="bad.yaml: grid field 'cells.0.name'"):
        load_grid(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ncells: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+"):
        load_grid(broken)
    with pytest.raises(ConfigError, match="unknown grid 'nope'; available: backbones"):
        load_grid("nope")


def test_bad_override_fails_before_any_training(tmp_path):
    grid = load_grid("masking_pairs")
    with pytest.raises(ConfigError, match="pretrain.epoch"):
        run_grid(
            grid,
            RunOptions(
                profile="smoke",
                seeds=[0],
                out=tmp_path,
                overrides=["pretrain.epoch=3"],
                progress=False,
            ),
        )
    assert not (tmp_path / "mlflow.db").exists()


def test_rerun_trains_nothing_and_store_has_one_finished_run_per_unit(tmp_path):
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells = grid.cells[:2]
    grid.baseline = None
    opts = RunOptions(profile="smoke", seeds=[0, 1], out=tmp_path, progress=False)
    first = run_grid(grid, opts)
    n_units = 2 * len(grid.all_cells())
    assert len(first.ran) == n_units and not first.failed
    second = run_grid(grid, opts)
    assert second.ran == [] and len(second.skipped) == n_units
    tracker = Tracker(first.tracking_uri, experiment="asma-bench")
    runs = tracker.unit_runs(grid.name)
    assert len(runs) == n_units
    assert len({r.data.tags[TAG_UNIT] for r in runs}) == n_units
    assert all(r.info.status == "FINISHED" for r in runs)
    results = grid_results(tracker, grid.name)
    table = summary_table(results, [c.name for c in grid.all_cells()])
    assert table["seeds"].tolist() == [2] * len(grid.all_cells())
    assert {"predictions.npz", "config.json", "per_class_accuracy.json"} <= {
        a.path for a in tracker.client.list_artifacts(runs[0].info.run_id)
    }


def test_diverging_unit_is_recorded_as_failed_and_grid_goes_on(tmp_path, capsys):
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells = grid.cells[:1]
    grid.baseline = None
    grid.references = ["random_init"]
    opts = RunOptions(
        profile="smoke", seeds=[0], out=tmp_path, progress=False, overrides=["pretrain.lr=1e30"]
    )
    outcome = run_grid(grid, opts)
    assert list(outcome.failed) == ["ldsm_hmtm/seed0"]
    assert "random_init/seed0" in outcome.ran
    tracker = Tracker(outcome.tracking_uri, experiment="asma-bench")
    failed = [r for r in tracker.unit_runs(grid.name) if r.info.status == "FAILED"]
    assert len(failed) == 1 and "epoch 0" in failed[0].data.tags["asma.failure"]
    # without a progress bar every unit reports one line as it ends
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[")]
    assert len(lines) == 2 and lines[0].startswith("[1/2] masking_pairs ldsm_hmtm/seed0: FAILED (")
    assert lines[1].startswith("[2/2] masking_pairs random_init/seed0: test_top1=")


def test_reference_rows_survive_command_line_overrides():
    grid = load_grid("masking_pairs")
    units = plan_units(
        grid, RunOptions(profile="smoke", seeds=[0], overrides=["pretrain.epochs=5"])
    )
    epochs = {u.cell.name: u.config.pretrain.epochs for u in units}
    assert epochs["random_init"] == 0 and epochs["supervised"] == 0
    assert epochs["ldsm_hmtm"] == 5


def test_overrides_that_erase_cell_differences_are_refused():
    with pytest.raises(ConfigError, match="resolve to the same configuration"):
        plan_units(
            load_grid("masking_pairs"),
            RunOptions(profile="smoke", seeds=[0], overrides=["masking.pairing=pstl"]),
        )


def test_a_rerun_may_add_seeds_and_change_the_profile(tmp_path):
    import json

    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells, grid.baseline, grid.references = grid.cells[:1], None, []
    first = run_grid(grid, RunOptions(profile="smoke", seeds=[0], out=tmp_path, progress=False))
    more = run_grid(grid, RunOptions(profile="smoke", seeds=[0, 1], out=tmp_path, progress=False))
    assert first.ran == ["ldsm_hmtm/seed0"] and more.ran == ["ldsm_hmtm/seed1"]
    tracker = Tracker(more.tracking_uri, experiment="asma-bench")
    parent = tracker.parent_run(grid.name, {})
    tags = tracker.client.get_run(parent).data.tags
    assert json.loads(tags["asma.seeds"]) == [0, 1]  # every seed requested so far
    other = RunOptions(profile="smoke", seeds=[2], out=tmp_path, progress=False,
                       overrides=["pretrain.epochs=2"])  # fmt: skip
    assert run_grid(grid, other).ran == ["ldsm_hmtm/seed2"]
    assert json.loads(tracker.client.get_run(parent).data.tags["asma.seeds"]) == [0, 1, 2]
    # the summary of a run averages that run's settings only, never other runs in the store
    assert len(grid_results(tracker, grid.name)) == 3
    planned = [u.id for u in plan_units(grid, other)]
    assert grid_results(tracker, grid.name, unit_ids=planned)["seed"].tolist() == [2]


def test_a_grid_without_cells_is_refused_naming_the_file_and_field(tmp_path):
    import re

    path = tmp_path / "empty.yaml"
    path.write_text("name: empty\nprotocol: linear\ncells: []\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: grid field 'cells'"):
        load_grid(path)


def test_unit_lock_is_exclusive_and_leaves_nothing(tmp_path):
    with unit_lock(tmp_path, "u1") as first:
        with unit_lock(tmp_path, "u1") as second, unit_lock(tmp_path, "u2") as other:
            assert first and not second and other
    assert list((tmp_path / ".locks").iterdir()) == []


def test_a_unit_another_process_holds_is_skipped_and_counted_once(tmp_path):
    """Two runs on one folder: the unit the other process is training is not trained twice,
    and the end-of-run table counts each (cell, seed) once even when the store holds two
    FINISHED runs of it."""
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells, grid.baseline, grid.references = grid.cells[:1], None, []
    opts = RunOptions(profile="smoke", seeds=[0, 1], out=tmp_path, progress=False)
    busy = plan_units(grid, opts)[0]
    with unit_lock(tmp_path, busy.id):  # the other terminal is training it right now
        first = run_grid(grid, opts)
    assert first.held == [f"{busy.name} (process {os.getpid()})"] and len(first.ran) == 1
    assert not first.skipped
    second = run_grid(grid, opts)
    assert second.ran == [busy.name]
    tracker = Tracker(first.tracking_uri, experiment="asma-bench")
    # a store that already holds a duplicate (written by an older version) counts it once
    run_unit(busy, tracker, tracker.parent_run(grid.name, {}), tmp_path)
    assert len(tracker.unit_runs(grid.name)) == 3
    table = summary_table(grid_results(tracker, grid.name), [c.name for c in grid.all_cells()])
    assert table["seeds"].tolist() == [2]


def test_a_curve_never_steps_back_to_zero(tmp_path):
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells, grid.baseline, grid.references = grid.cells[:1], None, []
    out = run_grid(grid, RunOptions(profile="smoke", seeds=[0], out=tmp_path, progress=False))
    tracker = Tracker(out.tracking_uri, experiment="asma-bench")
    (run,) = tracker.unit_runs(grid.name)
    for key in ("pretrain_loss", "linear_objective", "linear_val_top1"):
        steps = [m.step for m in tracker.client.get_metric_history(run.info.run_id, key)]
        assert steps and steps == sorted(steps), (key, steps)


def test_a_mask_choice_the_objective_cannot_read_is_refused_not_hashed(monkeypatch):
    from asma_bench.objectives.asma import ASMaObjective

    grid = load_grid("encoders")  # objective asma: two encoders with their own pairings
    with pytest.raises(ConfigError, match=r"cell 'phi': masking.encoders.encoder: "
                       r"objective 'asma' masks theta, phi"):  # fmt: skip
        plan_units(grid, RunOptions(profile="smoke", seeds=[0],
                                    overrides=["masking.encoders.encoder=hdsm_hmtm"]))  # fmt: skip
    # the section's pairing reaches both encoders, planned as one entry per encoder
    both = plan_units(grid, RunOptions(profile="smoke", seeds=[0],
                                       overrides=["masking.pairing=hdsm_hmtm"]))  # fmt: skip
    masking = both[0].config.masking
    assert masking.pairing is None and set(masking.encoders) == {"theta", "phi"}
    assert {e.pairing for e in masking.encoders.values()} == {"hdsm_hmtm"}
    monkeypatch.setattr(ASMaObjective, "mask_roles", {})  # an objective that draws no masks
    with pytest.raises(ConfigError, match=r"masking.pairing: objective 'asma' draws no masks"):
        plan_units(grid, RunOptions(profile="smoke", seeds=[0],
                                    overrides=["masking.pairing=hdsm_hmtm"]))  # fmt: skip


def test_n_values_that_round_alike_on_a_smaller_skeleton_are_run_once(
    tmp_path, caplog, monkeypatch
):
    """On 20 joints (NW-UCLA's Kinect v1) the paper's n = 7 and 8 of 25 both mask 6 joints:
    the n8 cells would be the n7 cells' experiment under another name, so they are left out
    with a warning instead of stopping the grid."""
    from asma_bench.data.synthetic import generate
    from asma_bench.harness import plan

    monkeypatch.setattr(plan, "_SAID", set())  # said once per process: not yet in this one
    data = generate(tmp_path / "k20", "tiny", layout="kinect20")
    grid = load_grid("masking_ratio")
    with caplog.at_level("WARNING", logger="asma_bench.harness.plan"):
        units = plan_units(grid, RunOptions(profile="smoke", seeds=[0], data=str(data)))
    cells = {u.cell.name for u in units}
    assert not any(c.startswith("n8_") for c in cells)
    assert {f"n{n}_k{k}" for n in (7, 9, 10) for k in range(7, 12)} <= cells
    assert "cell n8_k7 masks the same 6 of 20 joints as cell n7_k7" in caplog.text
    masks = {u.cell.name: round(u.config.masking.n * 20) for u in units if u.cell.name[0] == "n"}
    assert len({(masks[c], c.split("_")[1]) for c in masks}) == len(masks)  # all distinct
