"""Suites (`run --grid paper`) and what a plan costs (`--dry-run`): the epoch cap the
estimate measures with, the extrapolation, pretrainings paid once, and a suite whose grids
share a pretraining training it once."""

import pytest
import torch
from torch import nn

from asma_bench.cli import main
from asma_bench.harness import cost
from asma_bench.harness.cost import Probe, Stage, cost_kind, estimate, pretrain_digests
from asma_bench.harness.grids import load_grid
from asma_bench.harness.plan import RunOptions, plan_units
from asma_bench.harness.suites import find_suite
from asma_bench.training.loop import epoch_cap, fit_classifier


def test_epoch_cap_stops_the_loop_but_keeps_the_schedule_and_the_reported_total():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    seen = []
    kwargs = dict(epochs=10, lr=0.1, batch_size=8, generator=torch.Generator().manual_seed(0))
    with epoch_cap(2):
        fit_classifier(model, model, (x, y), None, progress=lambda d, n: seen.append((d, n)),
                       **kwargs)  # fmt: skip
    assert seen == [(0, 10), (1, 10), (2, 10)]  # a start mark, two epochs of ten
    seen.clear()
    fit_classifier(model, model, (x, y), None, progress=lambda d, n: seen.append((d, n)), **kwargs)
    assert seen[-1] == (10, 10) and len(seen) == 11  # outside the block: every epoch


def test_a_stage_is_extrapolated_at_its_last_epochs_pace():
    s = Stage("pretrain", epochs=10, start=1.0, ends=[4.0, 5.0])  # 3 s first epoch, then 1 s
    assert s.measured == pytest.approx(4.0)
    assert s.full == pytest.approx(4.0 + 8 * 1.0)
    probe = Probe(seconds=20.0, stages=[s, Stage("linear", 2, 6.0, [7.0, 8.0])])
    assert probe.total == pytest.approx(20.0 + 8.0)  # the linear stage ran whole
    assert probe.pretrainings == [pytest.approx(12.0)]
    assert probe.evaluation == pytest.approx(28.0 - 12.0)


def units_of(grid, **opts):
    return plan_units(load_grid(grid), RunOptions(profile="smoke", **opts))


def test_pretrainings_are_paid_once_across_grids_and_not_at_all_when_on_disk(tmp_path, monkeypatch):
    pairs = units_of("masking_pairs", seeds=[0])
    objectives = units_of("objectives", seeds=[0])
    shared = {d for u in pairs for d in pretrain_digests(u)} & {
        d for u in objectives for d in pretrain_digests(u)
    }
    assert len(shared) == 2  # Barlow Twins with random masking and with ldsm_hmtm
    # a 10 s probe whose 4-epoch pretraining ran 2 epochs (3 s, then 1 s): 12 s in all,
    # 6 of them the pretraining
    fixed = Probe(seconds=10.0, stages=[Stage("pretrain", 4, 0.0, [3.0, 4.0])])
    assert fixed.total == 12.0 and fixed.pretrainings == [6.0] and fixed.evaluation == 6.0
    monkeypatch.setattr(cost, "probe_unit", lambda unit, work: fixed)
    plan = [("masking_pairs", pairs), ("objectives", objectives)]
    got = estimate(plan)
    need = {g: [u for u in us if pretrain_digests(u)] for g, us in plan}
    first, second = got.grids
    assert first.shared == 0 and second.shared == 2
    assert first.seconds == pytest.approx(len(pairs) * 6.0 + len(need["masking_pairs"]) * 6.0)
    assert second.seconds == pytest.approx(
        len(objectives) * 6.0 + (len(need["objectives"]) - 2) * 6.0
    )
    assert (
        got.pretrainings
        == got.pretrainings_needed
        == len({d for _, us in plan for u in us for d in pretrain_digests(u)})
    )
    # units already finished cost nothing; a pretraining already in the folder neither
    hdsm_lmtm = next(u for u in pairs if u.cell.name == "hdsm_lmtm")  # only masking_pairs
    moco = next(u for u in objectives if u.cell.name == "moco_random")  # only objectives
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / f"pretrain-{pretrain_digests(moco)[0]}.pt").write_bytes(b"x")
    again = estimate(
        plan, finished=lambda g: {hdsm_lmtm.id} if g == "masking_pairs" else (), runs=tmp_path
    )
    assert again.grids[0].to_run == len(pairs) - 1
    assert again.pretrainings == got.pretrainings - 1  # hdsm_lmtm's is not needed any more
    assert again.pretrainings_needed == got.pretrainings_needed - 2  # ... nor moco's trained
    assert again.seconds == pytest.approx(got.seconds - 2 * 6.0 - 6.0 + (
        again.setup_seconds - got.setup_seconds))  # fmt: skip


def test_units_that_differ_only_in_masking_or_seed_are_one_kind():
    pairs = units_of("masking_pairs", seeds=[0, 1])
    kinds = {cost_kind(u) for u in pairs}
    assert len(kinds) == 3  # pretrained + linear, random_init, supervised
    ratio = units_of("masking_ratio", seeds=[0])
    assert len({cost_kind(u) for u in ratio}) == 2  # n and k set no cost


def test_the_probe_measures_every_stage_of_a_real_unit(tmp_path):
    unit = units_of("masking_pairs", seeds=[0])[0]
    from asma_bench.harness.plan import prepare_synthetic

    prepare_synthetic([unit], tmp_path / "data", "test")
    probe = cost.probe_unit(unit, tmp_path)
    assert probe.error is None
    names = [s.name for s in probe.stages]
    assert names[0] == "pretrain" and len(probe.pretrainings) == 1
    epochs = unit.config.pretrain.epochs
    assert probe.stages[0].epochs == epochs
    assert len(probe.stages[0].ends) == min(epochs, cost.PROBE_EPOCHS)
    assert probe.total >= probe.seconds > 0 and probe.evaluation > 0


def test_paper_suite_plans_every_grid_and_shares_pretrainings(capsys, tmp_path):
    suite = find_suite("paper")
    assert suite is not None and len(suite.grids) == 12
    from asma_bench.harness.grids import list_grids

    assert sorted(suite.grids) == list_grids()
    code = main(["run", "--grid", "paper", "--profile", "smoke", "--seeds", "1", "--dry-run",
                 "--no-estimate", "--out", str(tmp_path / "runs")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and not (tmp_path / "runs").exists()
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.strip()}
    for grid in suite.grids:
        assert grid in lines
    # ASMa's default pretraining, first needed by encoders, serves the later grids
    assert int(lines["encoders"][-1]) == 0
    for later in ("streams", "backbones", "teacher_kind", "distill_kind", "student_depth"):
        assert int(lines[later][-1]) >= 1, later


def test_suite_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text("name: s\ngrids: [masking_pairs, no_such_grid]\n")
    code = main(["run", "--grid", str(bad), "--profile", "smoke", "--dry-run",
                 "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "no_such_grid" in err and len(err.strip().splitlines()) == 1
    bad.write_text("name: s\ngrids: [masking_pairs, masking_pairs]\n")
    code = main(["run", "--grid", str(bad), "--dry-run", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "listed twice" in err


def test_a_suite_trains_a_pretraining_two_grids_share_once(tmp_path, capsys):
    a = tmp_path / "a.yaml"
    a.write_text(
        "name: share_a\nprotocol: linear\nreferences: []\nbase: {pretrain: {objective: "
        "barlow_twins}}\ncells:\n  - {name: lh, overrides: {masking: {pairing: ldsm_hmtm}}}\n"
    )
    b = tmp_path / "b.yaml"
    b.write_text(
        "name: share_b\nprotocol: linear\nreferences: []\ncells:\n  - {name: knn, overrides: "
        "{pretrain: {objective: barlow_twins}, masking: {pairing: ldsm_hmtm}, "
        "linear: {knn_k: 5}}}\n"
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: both\ngrids: [{a}, {b}]\n")
    out = tmp_path / "runs"
    args = ["run", "--grid", str(suite), "--profile", "smoke", "--seeds", "1", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main([*args, "--dry-run"]) == 0
    plan = capsys.readouterr()
    assert "1 pretraining to train (1 needed" in plan.out
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "suite both: 2 grid runs, 2 units run" in text
    assert len(list((out / "checkpoints").glob("pretrain-*.pt"))) == 1
    from asma_bench.harness.tracking import Tracker, default_tracking_uri

    tracker = Tracker(default_tracking_uri(out), experiment="asma-bench")
    curves = {}
    for grid in ("share_a", "share_b"):
        (run,) = tracker.unit_runs(grid)
        curves[grid] = tracker.client.get_metric_history(run.info.run_id, "pretrain_loss")
    assert curves["share_a"] and not curves["share_b"]  # the second grid loaded it
    # one report command for the suite: every grid of it that has runs
    rep = tmp_path / "rep"
    assert main(["report", "--grid", str(suite), "--runs", str(out), "--out", str(rep),
                 "--no-embeddings", "--masking-draws", "0"]) == 0  # fmt: skip
    assert "suite both: 2 of 2 grids reported" in capsys.readouterr().out
    assert (rep / "share_a" / "share_a.md").is_file() and (rep / "share_b" / "share_b.md").is_file()
    assert main(["report", "--grid", "paper", "--runs", str(out), "--out", str(tmp_path / "p"),
                 "--no-embeddings", "--masking-draws", "0"]) == 1  # fmt: skip
    said = capsys.readouterr()
    assert "grid masking_pairs: not reported" in said.out and "none of its grids" in said.err
    # planned again, everything is done: nothing to run, nothing to measure
    assert main([*args, "--dry-run"]) == 0
    again = capsys.readouterr().out
    assert "0 of 2 units to run, 0 pretrainings to train" in again


def test_a_distill_unit_another_grid_already_trains_costs_nothing(monkeypatch):
    teacher = units_of("teacher_kind", seeds=[0])
    kinds = units_of("distill_kind", seeds=[0])
    same = {u.id for u in teacher} & {u.id for u in kinds}
    assert {u.cell.name for u in kinds if u.id in same} == {"logit"}
    fixed = Probe(seconds=10.0, stages=[Stage("pretrain", 4, 0.0, [3.0, 4.0])])  # 6 + 6 s
    monkeypatch.setattr(cost, "probe_unit", lambda unit, work: fixed)
    got = estimate([("teacher_kind", teacher), ("distill_kind", kinds)])
    first, second = got.grids
    # distill_kind trains its feature cell (its teacher's pretraining exists) and its
    # random_init, set up like its own baseline (a linear-probed teacher), not like
    # teacher_kind's (a fine-tuned one); its logit cell is teacher_kind's unit
    assert second.seconds == pytest.approx(12.0) and second.shared == 1
    assert first.seconds == pytest.approx(3 * 6.0 + 6.0)  # both teachers: one pretraining
