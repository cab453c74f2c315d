"""Tuning: search spaces, median pruning on validation curves, the best config as a profile."""

from __future__ import annotations

import textwrap

import numpy as np
import optuna
import pytest
import yaml
from typer.testing import CliRunner

from asma_bench import commands
from asma_bench.cli import app, main
from asma_bench.config import build_config, deep_merge, profile_dict
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import RunOptions, plan_units, profile_conflicts, run_grid
from asma_bench.harness.tracking import Tracker
from asma_bench.harness.tuning import (
    TUNING_EXPERIMENT,
    SearchSpace,
    TuneOptions,
    best_profile,
    config_values,
    count_fraction,
    count_totals,
    fraction_count,
    list_spaces,
    load_space,
    nested,
    profile_point,
    save_profile,
    tune,
)
from asma_bench.protocols import PROTOCOLS, ProtocolResult


@pytest.mark.parametrize("name", list_spaces())
def test_every_builtin_space_gives_valid_configs(name):
    space = load_space(name)
    assert space.prune_keys and "val" in space.objective
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    totals = count_totals(space, build_config("smoke", [space.base]))
    for _ in range(4):
        trial = study.ask()
        params = {k: spec.suggest(trial, k, totals) for k, spec in space.params.items()}
        cfg = build_config("smoke", [space.base, nested(config_values(space, params, totals))])
        flat = cfg.flat()
        for key, value in params.items():
            spec = space.params[key]
            stored = flat[key]
            if spec.type == "count":  # the config stores a fraction of V or T
                stored = fraction_count(stored, totals[spec.of])
            assert stored == value
            assert spec.contains(value, totals)
    for profile in ("smoke", "quick"):  # tuning starts from the profile's own values
        base = build_config(profile, [space.base])
        assert profile_point(space, base, count_totals(space, base)) is not None, profile


@pytest.mark.parametrize(
    "params, message",
    [
        (
            "objective: test_top1\nparams: {linear.lr: {type: float, low: 0.1, high: 1}}",
            "'objective'.*validation",
        ),
        ("params: {linear.lrr: {type: float, low: 0.1, high: 1}}", "not a config field"),
        ("params: {linear.lr: {type: float, low: 1, high: 0.1}}", "'params.linear.lr'.*low"),
        ("params: {linear.lr: {type: float, low: 0, high: 1, log: true}}", "log-scale"),
        ("params: {masking.pairing: {type: categorical}}", "choices"),
        (
            "protocol: robustness\nparams: {linear.lr: {type: float, low: 0.1, high: 1}}",
            "not tunable",
        ),
        ("params: {masking.n: {type: count, low: 0.2, high: 0.5}}", "'of: joints'"),
        ("params: {masking.n: {type: int, of: joints, low: 2, high: 5}}", "'of: joints'"),
        ("params: {masking.n: {type: count, of: joints, low: 2, high: 5}}", "fractions"),
    ],
)
def test_bad_space_files_fail_with_one_line(tmp_path, params, message):
    path = tmp_path / "space.yaml"
    path.write_text(f"name: bad\n{params}\n")
    with pytest.raises(ConfigError, match=message) as err:
        load_space(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown search space 'nope'; available: distill_tau"):
        load_space("nope")


def test_keys_inside_free_form_mappings_are_allowed():
    space = SearchSpace(
        name="s",
        params={
            "backbone.params.base_channels": {"type": "int", "low": 4, "high": 16},
            "distill.student_params.base_channels": {"type": "int", "low": 4, "high": 16},
        },
    )
    assert set(space.params) == {
        "backbone.params.base_channels",
        "distill.student_params.base_channels",
    }


@pytest.fixture
def curve_protocol(monkeypatch):
    """A protocol whose validation curve is a known function of ``linear.lr``:
    epoch e reports 100·lr·(e+1)/4 and the final val_top1 is 100·lr; test is the opposite."""

    def fake(cfg, ctx):
        x = cfg.linear.lr
        for epoch in range(4):
            ctx.on_epoch(epoch, {"curve_val_top1": 100 * x * (epoch + 1) / 4, "loss": 1.0})
        return ProtocolResult({"val_top1": 100 * x, "test_top1": 100 - 100 * x})

    monkeypatch.setitem(PROTOCOLS._entries, "curve", fake)
    return SearchSpace(
        name="curve",
        protocol="curve",
        prune_on=["curve_val_top1"],
        params={"linear.lr": {"type": "float", "low": 0.01, "high": 1.0}},
    )


def test_median_pruning_on_validation_curves(tmp_path, curve_protocol):
    lines: list[str] = []
    opts = TuneOptions(
        profile="smoke",
        trials=14,
        out=tmp_path,
        startup_trials=4,
        prune_startup_trials=3,
        prune_warmup_steps=1,
        progress_lines=lines.append,
    )
    outcome = tune(curve_protocol, opts)
    study = optuna.load_study(study_name=outcome.study, storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = study.get_trials()
    assert len(trials) == 14
    assert trials[0].params == {"linear.lr": 0.01}  # the smoke profile's own value comes first
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, "some trial should fall below the median"
    for t in trials:
        earlier = [c for c in trials if c.state.name == "COMPLETE" and c.number < t.number]
        for step, value in t.intermediate_values.items():
            assert value == pytest.approx(100 * t.params["linear.lr"] * (step + 1) / 4)
            if len(earlier) < 3 or step < 1:
                continue
            median = float(np.median([c.intermediate_values[step] for c in earlier]))
            last = step == max(t.intermediate_values)
            # pruned exactly when the curve fell below the median of completed trials
            assert (value < median) == (t.state.name == "PRUNED" and last)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    for t in complete:
        assert t.value == pytest.approx(100 * t.params["linear.lr"])  # validation, not test
    best = max(complete, key=lambda t: t.value)
    assert outcome.best.number == best.number and outcome.best.value == best.value
    assert outcome.first.number == 0 and outcome.improved == (best.value > trials[0].value)
    assert outcome.experiment == "tune:curve"  # the space's own experiment
    tracker = Tracker(outcome.tracking_uri, experiment=outcome.experiment)
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`asma.kind` = 'trial'")
    by_trial = {int(r.data.tags["asma.trial"]): r for r in runs}
    assert sorted(by_trial) == list(range(14))
    for t in pruned:
        run = by_trial[t.number]
        assert run.info.status == "KILLED" and run.data.tags["asma.trial_state"] == "PRUNED"
    assert by_trial[best.number].data.metrics["val_top1"] == pytest.approx(best.value)
    # one progress line per trial, a pruned one with the reason
    assert [line.split(":")[0] for line in lines] == [
        f"[{i + 1}/14] tune curve trial {i}" for i in range(14)
    ]
    for t in pruned:
        assert f"trial {t.number}: PRUNED: curve_val_top1 " in lines[t.number]
        assert "below the median at step" in lines[t.number]


def test_best_profile_is_the_base_profile_plus_only_the_tuned_keys(curve_protocol):
    space = curve_protocol.model_copy(
        update={"base": {"pretrain": {"objective": "asma"}, "linear": {"features": "aligned"}}}
    )
    opts = TuneOptions(profile="smoke", overrides=["linear.epochs=3"], data="synthetic")
    profile = best_profile(space, opts, {"linear.lr": 0.5})
    assert profile == deep_merge(profile_dict("smoke"), {"linear": {"lr": 0.5}})
    # what the space and the command line fixed is not in it
    assert "objective" not in profile["pretrain"] and "features" not in profile["linear"]
    assert profile["linear"]["epochs"] == profile_dict("smoke")["linear"]["epochs"] != 3
    assert "source" not in profile["data"]
    assert build_config(None, [profile]) == build_config("smoke", ["linear.lr=0.5"])


SPACE = textwrap.dedent("""
    name: probe_lr
    description: linear-probe learning rate on one Barlow Twins encoder
    protocol: linear
    base: {pretrain: {objective: barlow_twins}, masking: {pairing: ldsm_hmtm}, linear: {epochs: 4}}
    params:
      linear.lr: {type: float, low: 1.0e-3, high: 0.5, log: true}
""")


def test_tune_on_smoke_says_whether_it_beat_the_first_trial(tmp_path, capsys):
    (tmp_path / "space.yaml").write_text(SPACE)
    out, best = tmp_path / "tune", tmp_path / "best.yaml"
    args = [
        "tune",
        "--space",
        str(tmp_path / "space.yaml"),
        "--trials",
        "3",
        "--profile",
        "smoke",
        "--runs",
        str(out),
        "--save-profile",
        str(best),
        "--no-progress",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "trial 0" not in captured.err  # --no-progress: no progress lines either
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out}/optuna.db")
    trials = study.get_trials()
    assert len(trials) == 3 and trials[0].params == {"linear.lr": 0.01}
    first, best_value = trials[0].value, study.best_value
    if best_value > first:
        line = (
            f"improved: best val_top1 {best_value:.2f} (trial {study.best_trial.number}) "
            f"vs the first trial's {first:.2f}"
        )
    else:
        line = f"did NOT improve: no trial beat the first trial's val_top1 {first:.2f}"
    assert line in printed
    # the saved profile: smoke + the tuned key; the space's base stays out of it
    saved = yaml.safe_load(best.read_text())
    assert saved == deep_merge(
        profile_dict("smoke"), {"linear": {"lr": study.best_params["linear.lr"]}}
    )
    assert build_config(str(best)).linear.lr == study.best_params["linear.lr"]
    header = [line for line in best.read_text().splitlines() if line.startswith("#")]
    assert header[0].startswith("# Profile smoke + the parameters tuned by")
    assert header[1] == (
        f"# space: probe_lr; study: {study.study_name}; metric: val_top1; "
        f"trial: {study.best_trial.number}; value: {study.best_value:.4g}"
    )
    assert header[2] == f"# tuned: linear.lr={study.best_params['linear.lr']!r}"
    fixed = 'pretrain.objective="barlow_twins", masking.pairing="ldsm_hmtm", linear.epochs=4'
    assert header[3].endswith(f"(the space's base and the command line): {fixed}")
    # each trial is an MLflow run of its own kind: grids and reports never see it
    tracker = Tracker(f"sqlite:///{out}/mlflow.db", experiment="tune:probe_lr")
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`asma.kind` = 'trial'")
    assert len(runs) == 3 and not tracker.unit_runs("probe_lr")
    assert "(experiment tune:probe_lr)" in printed
    # resuming the study adds trials to it
    assert main([*args[:4], "1", *args[5:]]) == 0
    assert len(optuna.load_study(study_name=None, storage=f"sqlite:///{out}/optuna.db").trials) == 4


def test_save_profile_needs_a_complete_trial_and_a_yaml_name(tmp_path, curve_protocol):
    outcome = tune(curve_protocol, TuneOptions(profile="smoke", trials=1, out=tmp_path))
    with pytest.raises(ConfigError, match="must end in .yaml"):
        save_profile(outcome, tmp_path / "best.txt")
    path = save_profile(outcome, tmp_path / "best.yaml")
    assert build_config(str(path)).linear.lr == outcome.best.params["linear.lr"]
    outcome.best = None
    with pytest.raises(ConfigError, match="no complete trial"):
        save_profile(outcome, tmp_path / "other.yaml")


def test_the_study_names_its_objective_after_the_metric(tmp_path, curve_protocol):
    outcome = tune(curve_protocol, TuneOptions(profile="smoke", trials=1, out=tmp_path))
    study = optuna.load_study(study_name=outcome.study, storage=f"sqlite:///{tmp_path}/optuna.db")
    assert study.metric_names == ["val_top1"]  # plots and the dashboard say val_top1


ASMA_SETUP = {"pretrain": {"objective": "asma"}, "linear": {"features": "aligned"}}


def test_a_saved_profile_runs_a_grid_its_space_does_not_fit(tmp_path, curve_protocol):
    """Tuned with ASMa and the aligned probe (as the built-in spaces are), the profile still
    runs masking_pairs (one-encoder Barlow Twins): the space's setup is not in it."""
    space = curve_protocol.model_copy(update={"base": ASMA_SETUP})
    outcome = tune(space, TuneOptions(profile="smoke", trials=2, out=tmp_path / "tune"))
    path = save_profile(outcome, tmp_path / "best.yaml")
    saved = yaml.safe_load(path.read_text())
    assert "objective" not in saved["pretrain"] and "features" not in saved["linear"]
    assert saved["linear"]["lr"] == outcome.best.params["linear.lr"]
    header = path.read_text().splitlines()[3]
    assert header.startswith("# also set while tuning, not saved")
    assert header.endswith('pretrain.objective="asma", linear.features="aligned"')
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells, grid.baseline, grid.references = grid.cells[:1], None, ["random_init"]
    opts = RunOptions(profile=str(path), seeds=[0], out=tmp_path / "runs", progress=False)
    assert {u.config.linear.lr for u in plan_units(grid, opts)} == {saved["linear"]["lr"]}
    ran = run_grid(grid, opts)
    assert sorted(ran.ran) == ["ldsm_hmtm/seed0", "random_init/seed0"] and not ran.failed
    # a profile with the space's setup baked in (as it used to be saved) fails before any
    # training, in one line naming the key and the fix
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(deep_merge(saved, ASMA_SETUP)))
    with pytest.raises(ConfigError, match=r"cell 'ldsm_hmtm': linear.features='aligned' does "
                       r"not fit .*--set linear.features=auto$"):  # fmt: skip
        plan_units(grid, RunOptions(profile=str(old), seeds=[0]))


def test_a_key_both_profile_and_cells_set_takes_the_cells_value(tmp_path, capsys):
    """defaults ← profile ← grid cell: a tuned masking.pairing does not erase the
    masking_pairs cells' pairings, and `run` says which profile values it did not use."""
    path = tmp_path / "tuned.yaml"
    tuned = {"masking": {"pairing": "hdsm_hmtm"}, "linear": {"lr": 0.05}}
    path.write_text(yaml.safe_dump(deep_merge(profile_dict("smoke"), tuned)))
    grid = load_grid("masking_pairs")
    units = plan_units(grid, RunOptions(profile=str(path), seeds=[0]))
    pairing = {u.cell.name: u.config.masking.pairing for u in units}
    assert pairing["ldsm_hmtm"] == "ldsm_hmtm" and pairing["random_random"] == "random_random"
    assert {u.config.linear.lr for u in units} == {0.05}  # what no cell sets comes through
    assert profile_conflicts(grid, str(path)) == ["masking.pairing"]
    assert profile_conflicts(grid, "smoke") == []  # built-in profiles only size the runs
    args = ["run", "--grid", "masking_pairs", "--profile", str(path), "--seeds", "1",
            "--dry-run", "--no-estimate", "--runs", str(tmp_path / "runs")]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err == (
        "note: grid masking_pairs's cells set masking.pairing themselves; the cells' values "
        f"are used, not profile {path}'s\n"
    )


def test_tune_prints_one_line_per_trial_without_a_terminal(tmp_path, curve_protocol):
    space = tmp_path / "curve.yaml"
    space.write_text(yaml.safe_dump(curve_protocol.model_dump(mode="json")))
    commands.load_all()
    args = ["tune", "--space", str(space), "--trials", "3", "--profile", "smoke"]
    result = CliRunner().invoke(app, [*args, "--runs", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in lines] == [
        f"[{i + 1}/3] tune curve trial {i}" for i in range(3)
    ]
    # the smoke profile's linear.lr = 0.01 runs first: val_top1 = 100 * lr
    assert lines[0].startswith("[1/3] tune curve trial 0: COMPLETE val_top1=1.00 (best 1.00, ")
    assert all(line.endswith(" s)") for line in lines)
    quiet = CliRunner().invoke(app, [*args, "--runs", str(tmp_path / "b"), "--no-progress"])
    assert quiet.exit_code == 0, quiet.output
    assert "tune curve" not in quiet.stderr


def _gone_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_trial_left_running_by_a_dead_process_is_failed_and_its_point_rerun(
    tmp_path, curve_protocol
):
    import os
    import platform

    from asma_bench.harness.tuning import ATTR_REASON, ATTR_RETRY_OF, ATTR_RUN, ATTR_WORKER

    opts = TuneOptions(profile="smoke", trials=1, out=tmp_path)
    first = tune(curve_protocol, opts)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.load_study(study_name=first.study, storage=storage)
    tracker = Tracker(first.tracking_uri, experiment=first.experiment)
    # a trial a SIGKILLed tune left behind: RUNNING, its process gone, its MLflow run open
    dead = study.ask({"linear.lr": optuna.distributions.FloatDistribution(0.01, 1.0)})
    run_id = tracker.client.create_run(tracker.experiment_id).info.run_id
    dead.set_user_attr(ATTR_WORKER, {"host": platform.node(), "pid": _gone_pid()})
    dead.set_user_attr(ATTR_RUN, run_id)
    # and one another live tune process (here: this one) is running: it must stay RUNNING
    live = study.ask({"linear.lr": optuna.distributions.FloatDistribution(0.01, 1.0)})
    live.set_user_attr(ATTR_WORKER, {"host": platform.node(), "pid": os.getpid()})
    again = tune(curve_protocol, TuneOptions(profile="smoke", trials=2, out=tmp_path))
    trials = {
        t.number: t for t in optuna.load_study(study_name=again.study, storage=storage).trials
    }
    assert trials[dead.number].state.name == "FAIL"
    assert "ended before the trial did" in trials[dead.number].user_attrs[ATTR_REASON]
    assert trials[live.number].state.name == "RUNNING"
    assert tracker.client.get_run(run_id).info.status == "KILLED"
    # the dead trial's point, never evaluated, is run once more (first of the new trials)
    retry = next(t for t in trials.values() if t.user_attrs.get(ATTR_RETRY_OF) == dead.number)
    assert retry.state.name == "COMPLETE" and retry.params == trials[dead.number].params
    assert len(trials) == 5  # 1 + the dead and the live one + 2 new


def test_a_resumed_study_does_not_evaluate_its_points_again(tmp_path, curve_protocol):
    calls = []
    fake = PROTOCOLS.get("curve")

    def counted(cfg, ctx):
        calls.append(cfg.linear.lr)
        return fake(cfg, ctx)

    PROTOCOLS._entries["curve"] = counted
    for _ in range(3):  # random sampling throughout: the sampler's seed decides every point
        tune(curve_protocol, TuneOptions(profile="smoke", trials=3, out=tmp_path,
                                         startup_trials=20))  # fmt: skip
    points = [t.params["linear.lr"] for t in optuna.load_study(
        study_name=None, storage=f"sqlite:///{tmp_path}/optuna.db").trials]  # fmt: skip
    assert len(points) == 9 and len(set(points)) == 9 and sorted(calls) == sorted(points)
    # a new study with the same seed still draws the same points as before resuming existed
    fresh = tune(curve_protocol, TuneOptions(profile="smoke", trials=3, out=tmp_path / "b",
                                             startup_trials=20))  # fmt: skip
    assert [r.params["linear.lr"] for r in fresh.trials] == points[:3]


def test_a_point_already_evaluated_is_not_run_again(tmp_path, curve_protocol):
    from asma_bench.harness.tuning import ATTR_SAME_AS

    calls = []
    fake = PROTOCOLS.get("curve")
    PROTOCOLS._entries["curve"] = lambda cfg, ctx: calls.append(1) or fake(cfg, ctx)
    first = tune(curve_protocol, TuneOptions(profile="smoke", trials=1, out=tmp_path))
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.load_study(study_name=first.study, storage=storage)
    study.enqueue_trial({"linear.lr": 0.01})  # the profile's point, trial 0's
    outcome = tune(curve_protocol, TuneOptions(profile="smoke", trials=1, out=tmp_path))
    (trial,) = [t for t in optuna.load_study(study_name=first.study, storage=storage).trials
                if t.number == 1]  # fmt: skip
    assert trial.user_attrs[ATTR_SAME_AS] == 0 and trial.value == outcome.trials[0].value
    assert len(calls) == 1  # only trial 0 ran the protocol


@pytest.mark.parametrize("layout, frames", [("ntu25", 12), ("kinect20", 16), ("ntu25", 50)])
def test_every_count_survives_the_config_as_a_fraction(layout, frames):
    """count → the fraction the config stores → the count the masks draw: the identity for
    every count a mask can have, so each integer Optuna draws is a mask size of its own."""
    from asma_bench.data.layouts import get_layout
    from asma_bench.strategies.base import create_masking

    joints = get_layout(layout).num_joints
    for n in range(1, joints):
        assert create_masking("ldsm", layout=layout, n=count_fraction(n, joints)).n == n
        assert fraction_count(count_fraction(n, joints), joints) == n
    for k in range(1, frames):
        hmtm = create_masking("hmtm", layout=layout, k=count_fraction(k, frames))
        assert hmtm.resolve_k(frames) == k


COUNTS = SearchSpace(
    name="masks",
    protocol="masks",
    prune_on=["masks_val_top1"],
    params={
        "masking.n": {"type": "count", "of": "joints", "low": 0.2, "high": 0.52},
        "masking.k": {"type": "count", "of": "frames", "low": 0.1, "high": 0.3},
    },
)


def test_masking_sizes_are_tuned_as_whole_counts(tmp_path, monkeypatch):
    """smoke on the synthetic NTU-25 clips: n in 5..13 of V = 25 joints, k in 2..3 of
    T = 12 frames; the protocol sees the fractions the config stores, and no two trials
    that ran masked the same number of joints and frames."""
    ran: list[tuple[int, int]] = []

    def masks(cfg, ctx):
        n, k = fraction_count(cfg.masking.n, 25), fraction_count(cfg.masking.k, 12)
        assert 0 < cfg.masking.n < 1 and 0 < cfg.masking.k < 1
        ran.append((n, k))
        ctx.on_epoch(0, {"masks_val_top1": float(n + k)})
        return ProtocolResult({"val_top1": float(10 * n + k)})

    monkeypatch.setitem(PROTOCOLS._entries, "masks", masks)
    opts = TuneOptions(profile="smoke", trials=10, out=tmp_path / "runs", startup_trials=20)
    outcome = tune(COUNTS, opts)
    points = [(t.params["masking.n"], t.params["masking.k"]) for t in outcome.trials]
    assert points[0] == (9, 3)  # the profile's 0.36 and 0.25 of 25 joints and 12 frames
    assert all(isinstance(n, int) and 5 <= n <= 13 and k in (2, 3) for n, k in points)
    assert len(ran) == len(set(ran)) == len(set(points))  # a repeated point is not run again
    assert sorted(ran) == sorted(set(points))
    # the best profile stores the fractions, and the header says the counts
    best = save_profile(outcome, tmp_path / "best.yaml")
    n, k = outcome.best.params["masking.n"], outcome.best.params["masking.k"]
    assert yaml.safe_load(best.read_text())["masking"] == {"n": n / 25, "k": k / 12}
    assert f"(counts: masking.n {n} of 25 joints, masking.k {k} of 12 frames)" in best.read_text()
    # the trials are logged to the runs folder's store, in the space's own experiment
    assert outcome.tracking_uri == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    assert outcome.experiment == "tune:masks"
    # a range holding no whole count fails in one line before anything runs
    narrow = COUNTS.model_copy(deep=True)
    narrow.params["masking.k"] = narrow.params["masking.k"].model_copy(
        update={"low": 0.01, "high": 0.05}
    )
    with pytest.raises(ConfigError, match=r"masking.k spans no whole number of the 12 frames"):
        count_totals(narrow, build_config("smoke"))


def test_the_study_records_what_it_tunes_on_and_refuses_other_settings(
    tmp_path, curve_protocol, caplog
):
    opts = TuneOptions(profile="smoke", trials=1, out=tmp_path, study="s")
    tune(curve_protocol, opts)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    attrs = optuna.load_study(study_name="s", storage=storage).user_attrs
    assert attrs["asma.space"] == "curve" and attrs["asma.profile"] == "smoke"
    assert attrs["asma.params"] == {"linear.lr": {"type": "float", "low": 0.01, "high": 1.0}}
    assert attrs["asma.data"] == {"source": "synthetic", "preset": "tiny", "synth_seed": 0}
    assert attrs["asma.seeds"] == [0] and attrs["asma.experiment"] == "tune:curve"
    # another profile under the same study name: refused in one line, nothing run
    with pytest.raises(ConfigError) as err:
        tune(curve_protocol, TuneOptions(profile="quick", trials=1, out=tmp_path, study="s"))
    tiny, small = (
        f'{{"preset":"{p}","source":"synthetic","synth_seed":0}}' for p in ("tiny", "small")
    )
    assert str(err.value) == (
        f"study 's' was made with profile=\"smoke\", data={tiny}; this run has "
        f'profile="quick", data={small}: resume it with the same settings, or name a new '
        "--study"
    )
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 1
    # another seed: said in one line, and recorded
    with caplog.at_level("WARNING", logger="asma_bench.harness.tuning"):
        tune(curve_protocol, TuneOptions(profile="smoke", trials=1, out=tmp_path, study="s",
                                         seed=1))  # fmt: skip
    said = [r.getMessage() for r in caplog.records if "seed" in r.getMessage()]
    assert said == ["tune: study 's' ran its trials with seed [0]; its new trials run with seed 1"]
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs["asma.seeds"] == [0, 1] and len(study.trials) == 2


def test_a_study_of_an_earlier_version_keeps_logging_where_it_did(tmp_path, curve_protocol):
    """A tuning folder of before the attributes: its study goes on in its experiment."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    old = optuna.create_study(study_name="old", storage=storage, direction="maximize")
    lr = optuna.distributions.FloatDistribution(0.01, 1.0)
    point = {"params": {"linear.lr": 0.5}, "distributions": {"linear.lr": lr}}
    old.add_trial(optuna.trial.create_trial(**point, value=50.0))
    outcome = tune(curve_protocol, TuneOptions(profile="smoke", trials=1, out=tmp_path,
                                               study="old"))  # fmt: skip
    assert outcome.experiment == TUNING_EXPERIMENT == "asma-bench-tuning"
    assert len(outcome.trials) == 2 and outcome.best.value == 50.0
    study = optuna.load_study(study_name="old", storage=storage)
    assert study.user_attrs["asma.experiment"] == TUNING_EXPERIMENT
    # a space drawing a parameter of the study otherwise (as masking.n, once a float, is
    # now a count) is refused in one line, before it runs a trial
    categorical = {"linear.lr": {"type": "categorical", "choices": [0.1, 0.2]}}
    other = SearchSpace.model_validate({**curve_protocol.model_dump(), "params": categorical})
    with pytest.raises(ConfigError) as err:
        tune(other, TuneOptions(profile="smoke", trials=1, out=tmp_path, study="old"))
    assert str(err.value) == (
        "study 'old' drew linear.lr as float; space 'curve' draws it as categorical "
        "[0.1, 0.2]: name a new --study"
    )
    assert len(optuna.load_study(study_name="old", storage=storage).trials) == 2
