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
    LatencyStat,
    accuracy_tolerance,
    compare,
    judged_ratios,
    latency_band,
    load_baseline,
    measure,
    median_bound_rank,
    other_cpu,
    paired_rounds,
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
    for stat in current.latency.values():  # one ratio per paired round, the median recorded
        assert len(stat.rounds) == settings.latency_rounds
        assert stat.ratio == pytest.approx(statistics.median(stat.rounds))
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


def _slow_down(name: str, times: int, monkeypatch) -> None:
    """Register masking ``name`` anew so that every draw does its work ``times`` times."""
    original = MASKINGS.get(name)

    def slowed(**params):
        strategy = original(**params)
        draw = strategy.draw

        def repeated(x, generator, lengths):
            for _ in range(times - 1):
                draw(x, generator, lengths)
            return draw(x, generator, lengths)

        strategy.draw = repeated
        return strategy

    monkeypatch.setitem(MASKINGS._entries, name, slowed)


def test_slower_masking_strategy_fails(measured, monkeypatch):
    settings, _, baseline = measured
    _slow_down("hdsm", 6, monkeypatch)
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
    # the summary lists every check, not only the failed one, with its tolerance
    rows = compare(json.loads(path.read_text()), current)
    assert all(r.name in out for r in rows) and len(rows) > 10
    assert "tolerance" in out and "exact" in out and "+100%" in out


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


def test_paired_rounds_count_cpu_time_not_time_spent_descheduled():
    """A side that waits 50 ms (as if another job held the core) besides its 2 ms of work:
    the thread's CPU time sees the same work on both sides, elapsed time a 25x ratio."""
    import time

    def busy():
        end = time.thread_time() + 0.002
        while time.thread_time() < end:
            pass

    timers = {"waits": lambda: (busy(), time.sleep(0.05)), "works": busy}
    args = (timers, {"waits": 1, "works": 1}, {"r": ("waits", "works")}, 3)
    cpu = paired_rounds(*args, time.thread_time)["r"]
    wall = paired_rounds(*args, time.perf_counter)["r"]
    assert len(cpu) == 3 and all(0.8 < r < 1.5 for r in cpu), cpu
    assert max(wall) > 5, wall


def test_median_bound_rank_and_judged_ratios():
    # P(Binomial(n, 1/2) <= k - 1) <= 5 %: n = 7 -> 1/128 (k = 1), n = 9 -> 10/512 (k = 2),
    # n = 20 -> 0.0207 (k = 6; k = 7 would be 0.0577)
    assert [median_bound_rank(n, 0.95) for n in (3, 7, 9, 20)] == [1, 1, 2, 6]
    assert median_bound_rank(7, 0.9) == 2  # P(X <= 1) = 8/128 = 0.0625
    rounds = [3.0, 1.0, 2.0, 10.0, 2.5, 2.2, 1.5, 2.8, 2.4]
    judged = {
        stat: judged_ratios(rounds, CheckSettings(latency_statistic=stat))
        for stat in ("best", "bound", "median")
    }
    assert judged == {"best": (1.0, 10.0), "bound": (1.5, 3.0), "median": (2.4, 2.4)}


def _latency_baseline(baseline, name, ratio, statistic="best"):
    edited = copy.deepcopy(baseline)
    edited["latency"][name] = {"ratio": ratio, "spread": 0.0, "rounds": [ratio] * 5}
    edited["settings"]["latency_statistic"] = statistic
    return edited


def test_a_ratio_regresses_only_when_its_whole_spread_is_beyond_the_limit(measured):
    """Two disturbed rounds of seven (the user's 2x false alarm on a busy machine) fail
    nothing; slower in every round fails with every statistic; "median" is the strictest."""
    _, current, baseline = measured
    name = "masking/csm_over_matmul"  # masking floor: 2x the baseline fails

    def status(rounds, statistic="best"):
        now = copy.deepcopy(current)
        now.latency[name] = LatencyStat.of_rounds(rounds)
        row = {r.name: r for r in compare(_latency_baseline(baseline, name, 1.0, statistic), now)}
        return row[name].status, row[name].current, row[name].limit

    disturbed = [1.05, 0.98, 2.6, 1.0, 3.1, 1.02, 0.99]
    assert status(disturbed)[0] == status(disturbed, "bound")[0] == "ok"
    slower = [2.5, 2.6, 2.4, 2.55, 2.45, 2.5, 2.6]
    for stat in ("best", "bound", "median"):
        got, value, limit = status(slower, stat)
        assert got == "REGRESSED" and value > limit == pytest.approx(2.0)
    mostly_slower = [0.9, 2.2, 2.3, 2.4, 2.5, 2.2, 2.1]  # one round at the old speed
    assert status(mostly_slower)[0] == "ok" and status(mostly_slower, "median")[0] == "REGRESSED"
    faster = [0.3, 0.32, 0.31, 0.3, 0.33, 0.3, 0.31]
    assert status(faster)[0] == "improved"
    assert status([*faster[:6], 1.2])[0] == "ok"  # improved only when every round is


def test_a_bad_latency_statistic_is_one_line(measured, tmp_path, capsys):
    _, _, baseline = measured
    bad = copy.deepcopy(baseline)
    bad["settings"]["latency_statistic"] = "fastest"
    (tmp_path / "b.json").write_text(json.dumps(bad))
    assert main(["check", "--baseline", str(tmp_path / "b.json"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "b.json" in err and "latency_statistic" in err and err.count("\n") == 1


def _junit(path):
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    return suite, cases


def test_json_and_junit_outputs_pass_and_fail(measured, tmp_path, monkeypatch, capsys):
    """Both files hold every check, on success and on failure, with the same counts as
    the exit code, and are written by renaming a temporary file (nothing left beside)."""
    settings, current, baseline = measured
    monkeypatch.setattr(check_module, "measure", lambda s, workdir=None, progress=None: current)
    path, out = tmp_path / "baseline.json", tmp_path / "out"
    path.write_text(json.dumps(baseline))
    files = ["--json", str(out / "check.json"), "--junit-xml", str(out / "junit.xml")]
    n = len(compare(baseline, current))
    assert main(["check", "--baseline", str(path), "--no-progress", *files]) == 0
    report = json.loads((out / "check.json").read_text())
    assert (report["passed"], report["exit_code"], report["checks"], report["failed"]) == (
        True, 0, n, 0)  # fmt: skip
    suite, cases = _junit(out / "junit.xml")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (str(n), "0", "0")
    assert len(cases) == n and not any(c.find("failure") is not None for c in cases.values())

    name = "masking/hdsm_over_matmul"  # a baseline that demands a 100x faster strategy
    impossible = _latency_baseline(baseline, name, current.latency[name].ratio / 100)
    path.write_text(json.dumps(impossible))
    capsys.readouterr()
    assert main(["check", "--baseline", str(path), "--no-progress", *files]) == 1
    printed = capsys.readouterr().out
    assert f"1 of {n} checks regressed" in printed and "within tolerance" not in printed
    assert [line.split()[-1] for line in printed.splitlines() if name in line] == ["REGRESSED"]
    report = json.loads((out / "check.json").read_text())
    assert (report["passed"], report["exit_code"], report["failed"]) == (False, 1, 1)
    row = {r["name"]: r for r in report["rows"]}[name]
    assert row["status"] == "REGRESSED" and row["value"] > row["limit"]
    assert row["statistic"] == "best" and row["value"] == min(row["rounds"])
    assert row["tolerance"] == "+100%"
    suite, cases = _junit(out / "junit.xml")
    assert (suite.get("tests"), suite.get("failures")) == (str(n), "1")
    failed = [k for k, c in cases.items() if c.find("failure") is not None]
    assert failed == [name] and cases[name].find("failure").get("type") == "REGRESSED"
    props = {p.get("name"): p.get("value") for p in cases[name].iter("property")}
    assert float(props["value"]) == pytest.approx(row["value"])
    assert float(props["limit"]) == pytest.approx(row["limit"]) and props["tolerance"] == "+100%"
    assert "tolerance=+100%" in cases[name].find("system-out").text
    assert sorted(p.name for p in out.iterdir()) == ["check.json", "junit.xml"]

    # an output path that cannot be written fails before measuring, in one line
    capsys.readouterr()
    assert main(["check", "--baseline", str(path), "--no-progress", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and "folder" in err and err.count("\n") == 1


def test_a_real_slower_workload_is_caught_end_to_end(measured, tmp_path, monkeypatch):
    """The real measurement through the CLI: a strategy made 20x slower fails (exit 1,
    its row REGRESSED in the JSON), the other ratios of the same run pass."""
    settings, _, baseline = measured
    _slow_down("random_joint", 20, monkeypatch)
    latency_only = copy.deepcopy(baseline)
    latency_only["settings"]["units"] = {}
    latency_only["accuracy"] = {}
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(latency_only))
    assert main(["check", "--baseline", str(path), "--no-progress", "--json",
                 str(tmp_path / "r.json")]) == 1  # fmt: skip
    rows = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert rows["masking/random_joint_over_matmul"]["status"] == "REGRESSED"
    assert [k for k, r in rows.items() if r["failed"]] == ["masking/random_joint_over_matmul"]
