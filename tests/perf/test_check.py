"""The regression check: passes on unchanged code, fails on worse accuracy, slower masking,
changed model sizes; the baseline file is validated and rewritten atomically."""

from __future__ import annotations

import copy
import json
import math
import statistics
from pathlib import Path

import pytest
import torch

from asma_bench.cli import main
from asma_bench.perf import check as check_module
from asma_bench.perf.check import (
    CheckSettings,
    CheckUnit,
    accuracy_tolerance,
    compare,
    latency_band,
    load_baseline,
    measure,
    other_cpu,
    write_baseline,
)
from asma_bench.strategies import MASKINGS

REPO = Path(__file__).resolve().parents[2]

SMALL = CheckSettings(
    seeds=[0, 1],
    units={
        "bt": CheckUnit(
            overrides={
                "pretrain": {"objective": "barlow_twins", "epochs": 1},
                "linear": {"epochs": 10},
            }
        )
    },
    latency_profile="quick",
    latency_rounds=5,
    masking_batch=8,
)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The small benchmark measured once: (settings, measurement, baseline dict)."""
    current = measure(SMALL, workdir=tmp_path_factory.mktemp("check"))
    return SMALL, current, current.to_json(SMALL)


def _status(rows, name):
    return {r.name: r.status for r in rows}[name]


def test_tolerances():
    s = CheckSettings()
    assert accuracy_tolerance(3.0, 3, s) == pytest.approx(2 * 3.0 * math.sqrt(2 / 3))
    assert accuracy_tolerance(0.0, 3, s) == s.accuracy_floor
    assert latency_band(0.1, 0.05, s) == s.latency_floor
    assert latency_band(0.4, 0.1, s) == pytest.approx(0.8)
    assert latency_band(5.0, 0.1, s) == s.latency_cap
    assert latency_band(0.1, 0.05, s, s.masking_floor) == s.masking_floor == 1.0


def test_measurement_is_what_it_claims(measured):
    settings, current, baseline = measured
    assert len(current.accuracy["bt"]) == 2
    assert baseline["accuracy"]["bt"]["mean"] == pytest.approx(
        statistics.fmean(current.accuracy["bt"])
    )
    assert set(current.latency) == {"student_over_teacher"} | {
        f"masking/{name}_over_matmul" for name in MASKINGS.list()
    }
    assert all(s.ratio > 0 and s.spread >= 0 for s in current.latency.values())
    teacher, student, _ = check_module.check_models(settings)
    assert current.counts["teacher_params"] == sum(p.numel() for p in teacher.parameters())
    assert current.counts["student_params"] == sum(p.numel() for p in student.parameters())
    assert current.counts["teacher_flops"] > 0 and current.counts["student_flops"] > 0


def test_unchanged_code_passes(measured, tmp_path):
    settings, _, baseline = measured
    again = measure(settings, workdir=tmp_path)
    rows = compare(baseline, again)
    assert not [r for r in rows if r.failed], [r for r in rows if r.failed]
    assert again.accuracy == measured[1].accuracy  # fixed seeds: the same accuracies


def test_worse_accuracy_fails_beyond_the_seed_tolerance(measured):
    settings, current, baseline = measured
    base = baseline["accuracy"]["bt"]
    tol = accuracy_tolerance(base["std"], len(base["values"]), settings)
    for shift, status in [(tol + 0.5, "REGRESSED"), (tol - 0.01, "ok"), (-(tol + 0.5), "improved")]:
        edited = copy.deepcopy(baseline)
        edited["accuracy"]["bt"]["mean"] = base["mean"] + shift
        rows = compare(edited, current)
        assert _status(rows, "bt") == status
        assert [r.failed for r in rows if r.name == "bt"] == [status == "REGRESSED"]


def test_slower_masking_strategy_fails(measured, monkeypatch):
    settings, _, baseline = measured
    original = MASKINGS.get("hdsm")

    def slow_hdsm(**params):
        strategy = original(**params)
        draw = strategy._draw

        def six_times(x, generator, lengths):
            for _ in range(5):
                draw(x, generator, lengths)
            return draw(x, generator, lengths)

        strategy._draw = six_times
        return strategy

    monkeypatch.setitem(MASKINGS._entries, "hdsm", slow_hdsm)
    latency_only = settings.model_copy(update={"units": {}})
    rows = compare(baseline, measure(latency_only))
    failed = {r.name: r for r in rows if r.failed}
    assert "masking/hdsm_over_matmul" in failed
    row = failed["masking/hdsm_over_matmul"]
    assert row.status == "REGRESSED" and row.current > row.limit
    assert _status(rows, "bt") == "MISSING"  # the unit was not measured


def test_latency_is_compared_only_on_the_baselines_kind_of_cpu(measured):
    """A ratio from an AVX-512 baseline is reported, not judged, on an AVX2 CPU; accuracy
    and counts are still judged, and a baseline without the field compares as before."""
    _, current, baseline = measured
    ours = current.environment["cpu_capability"]
    assert ours == torch.backends.cpu.get_cpu_capability()
    name = next(iter(baseline["latency"]))
    slower = copy.deepcopy(current)
    slower.latency[name] = type(slower.latency[name])(100 * slower.latency[name].ratio, 0.0)
    slower.counts["teacher_params"] += 1
    other = copy.deepcopy(baseline)
    other["environment"]["cpu_capability"] = "SOME_OTHER_ISA"  # no real capability
    other["environment"]["cpu_kind"] = "SOME_OTHER_ISA"
    rows = {r.name: r for r in compare(other, slower)}
    assert not rows[name].failed and rows[name].status.startswith("not compared")
    assert rows["teacher_params"].failed  # counts are judged on every machine
    assert other_cpu(other, slower) == other["environment"]["cpu_capability"]
    same = {r.name: r for r in compare(baseline, slower)}
    assert same[name].status == "REGRESSED"  # the baseline's own kind of CPU: judged
    legacy = copy.deepcopy(baseline)
    legacy["environment"].pop("cpu_capability", None)
    legacy["environment"].pop("cpu_kind", None)
    assert other_cpu(legacy, slower) is None
    assert {r.name: r for r in compare(legacy, slower)}[name].failed
    # a CPU with AMX tiles is a kind of its own; a baseline without cpu_kind compares by
    # its capability
    amx = copy.deepcopy(baseline)
    amx["environment"]["cpu_kind"] = ours + "+AMX"
    here = copy.deepcopy(slower)
    here.environment["cpu_kind"] = ours
    assert other_cpu(amx, here) == ours + "+AMX"
    older = copy.deepcopy(baseline)
    older["environment"].pop("cpu_kind", None)
    older["environment"]["cpu_capability"] = ours
    assert other_cpu(older, here) is None


def test_changed_counts_and_missing_or_new_checks(measured):
    _, current, baseline = measured
    edited = copy.deepcopy(baseline)
    edited["counts"]["teacher_params"] += 1
    del edited["latency"]["masking/tube_over_matmul"]
    edited["latency"]["masking/gone_over_matmul"] = {"ratio": 1.0, "spread": 0.0}
    rows = compare(edited, current)
    assert _status(rows, "teacher_params") == "CHANGED"
    assert _status(rows, "masking/tube_over_matmul") == "new"
    assert _status(rows, "masking/gone_over_matmul") == "MISSING"
    assert {r.name for r in rows if r.failed} == {"teacher_params", "masking/gone_over_matmul"}


def test_cli_check_update_and_regression_table(measured, tmp_path, monkeypatch, capsys):
    settings, current, _ = measured
    calls = []

    def fake_measure(s, workdir=None, progress=None):
        calls.append(s)
        return current

    monkeypatch.setattr(check_module, "measure", fake_measure)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"settings": settings.model_dump(mode="json")}))
    assert main(["check", "--baseline", str(path), "--update", "--no-progress"]) == 0
    assert calls == [settings]  # the file's own settings were measured
    assert load_baseline(path)["accuracy"]["bt"]["values"] == current.accuracy["bt"]
    assert main(["check", "--baseline", str(path), "--no-progress"]) == 0
    assert "checks within tolerance" in capsys.readouterr().out
    data = json.loads(path.read_text())
    data["accuracy"]["bt"]["mean"] += 50
    path.write_text(json.dumps(data))
    assert main(["check", "--baseline", str(path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "1 of" in out and "regressed" in out
    table = [line for line in out.splitlines() if "REGRESSED" in line]
    assert len(table) == 1 and "bt" in table[0]


def test_check_prints_one_line_per_check_without_a_terminal(measured, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from asma_bench import commands
    from asma_bench.cli import app

    settings, current, _ = measured

    def fake_measure(s, workdir=None, progress=None):  # the steps the real one reports
        for name in s.units:
            for seed in s.seeds:
                progress(f"{name} seed {seed}")
        progress("latency")
        return current

    monkeypatch.setattr(check_module, "measure", fake_measure)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"settings": settings.model_dump(mode="json")}))
    commands.load_all()
    result = CliRunner().invoke(app, ["check", "--baseline", str(path), "--update"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert [line.rsplit(" (", 1)[0] for line in lines] == [
        "[1/3] check bt seed 0",
        "[2/3] check bt seed 1",
        "[3/3] check latency",
    ]
    assert all(line.endswith(" s)") for line in lines)
    quiet = CliRunner().invoke(app, ["check", "--baseline", str(path), "--no-progress"])
    assert quiet.exit_code == 0, quiet.output
    assert "[1/3]" not in quiet.stderr and "checks within tolerance" in quiet.stdout


def test_update_is_atomic_and_bad_files_give_one_line(measured, tmp_path, monkeypatch, capsys):
    settings, current, _ = measured
    path = write_baseline(tmp_path / "b.json", current, settings)
    before = path.read_bytes()

    def broken(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(check_module, "measure", broken)
    assert main(["check", "--baseline", str(path), "--update", "--no-progress"]) == 130
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["b.json"]
    capsys.readouterr()
    for content, message in [
        ("{\n  oops", "b2.json:2: not valid JSON"),
        ('{"format": 7}', "not a check baseline"),
        ('{"format": 1, "settings": {"seeds": [0]}}', "'seeds'"),
    ]:
        (tmp_path / "b2.json").write_text(content)
        assert main(["check", "--baseline", str(tmp_path / "b2.json")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert main(["check", "--baseline", str(tmp_path / "none.json")]) == 2
    assert "create it with --update" in capsys.readouterr().err


def test_committed_baseline_measures_the_default_benchmark():
    data = load_baseline(REPO / "benchmarks" / "check_baseline.json")
    assert CheckSettings.model_validate(data["settings"]) == CheckSettings()
    assert set(data["accuracy"]) == set(CheckSettings().units)
    assert {"teacher_params", "student_params", "teacher_flops", "student_flops"} == set(
        data["counts"]
    )
