"""``asma-bench run --jobs N``: units in N local processes that share the cores, the units
that share a pretraining kept together, lines in the plan's order, the same numbers as one
process, and a stop that closes every unit's run."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from asma_bench.cli import main
from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import RunOptions, plan_units, unit_groups
from asma_bench.harness.tracking import Tracker, default_tracking_uri

GRID = textwrap.dedent("""
    name: jobs
    protocol: linear
    references: [random_init]
    base: {pretrain: {objective: barlow_twins, epochs: 1}}
    cells:
      - {name: a, overrides: {masking: {pairing: ldsm_hmtm}}}
      - {name: b, overrides: {masking: {pairing: hdsm_lmtm}}}
      - {name: c, overrides: {masking: {pairing: random_random}}}
""")


def test_units_that_share_a_pretraining_run_in_one_group_in_plan_order():
    units = plan_units(load_grid("streams"), RunOptions(profile="smoke", seeds=[0, 1]))
    groups = [[u.name for u in g] for g in unit_groups(units)]
    # the ensemble reads the single-stream cells' pretrainings: all four in one process
    assert groups[0] == ["joint/seed0", "bone/seed0", "motion/seed0", "three_stream/seed0"]
    assert ["random_init/seed0"] in groups and len(groups) == 4
    pairs = plan_units(load_grid("masking_pairs"), RunOptions(profile="smoke", seeds=[0]))
    assert [len(g) for g in unit_groups(pairs)] == [1] * 7  # every cell its own pretraining


def _results(capsys, runs):
    assert main(["results", "--grid", "jobs", "--runs", str(runs), "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    header = rows[0].split(",")
    cell, top1 = header.index("cell"), header.index("test_top1")
    return {r.split(",")[cell]: r.split(",")[top1] for r in rows[1:]}


@pytest.mark.slow
def test_two_jobs_give_one_process_numbers_with_lines_in_plan_order(tmp_path, capsys, monkeypatch):
    grid = tmp_path / "jobs.yaml"
    grid.write_text(GRID)
    args = ["run", "--grid", str(grid), "--profile", "smoke", "--seeds", "1", "--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each of two workers gets on two cores
    try:
        assert main([*args, "--runs", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # two cores, whatever the host
    assert main([*args, "--runs", str(tmp_path / "two"), "--jobs", "2"]) == 0
    err = capsys.readouterr().err
    lines = [line.split(":")[0] for line in err.splitlines() if line.startswith("[")]
    assert lines == [f"[{i}/4] jobs {c}/seed0" for i, c in enumerate("abc", 1)] + [
        "[4/4] jobs random_init/seed0"
    ]
    one, two = _results(capsys, tmp_path / "one"), _results(capsys, tmp_path / "two")
    assert set(one) == {"a", "b", "c", "random_init"} and one == two


def test_jobs_out_of_range_or_beside_a_queue_are_one_line(tmp_path, capsys, monkeypatch):
    base = ["run", "--grid", "masking_pairs", "--profile", "smoke", "--runs", str(tmp_path)]
    assert main([*base, "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --jobs 0: give 1 to 64 processes"
    assert main([*base, "--jobs", "two"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --jobs 'two' (or ASMA_BENCH_JOBS): give a number of processes or auto"
    )
    monkeypatch.setenv("ASMA_BENCH_JOBS", "many")  # the default's value, checked alike
    assert main(base) == 2
    assert "--jobs 'many' (or ASMA_BENCH_JOBS)" in capsys.readouterr().err
    assert main([*base, "--jobs", "2", "--storage", "sqlite:///q.db"]) == 2
    assert "start 2 workers on the queue instead" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_sigterm_stops_every_job_and_closes_their_runs(tmp_path):
    grid = tmp_path / "jobs.yaml"
    grid.write_text(GRID)
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-c", "import sys; from asma_bench.cli import main; "
           "sys.exit(main(sys.argv[1:]))", "run", "--grid", str(grid), "--profile", "smoke",
           "--seeds", "1", "--runs", str(runs), "--no-progress", "--jobs", "2",
           "--set", "pretrain.epochs=5000"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    uri = default_tracking_uri(runs)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # wait until both workers have a unit's run open
        time.sleep(0.5)
        if (runs / "mlflow.db").is_file():
            try:
                if len(Tracker(uri, experiment="asma-bench").unit_runs("jobs")) >= 2:
                    break
            except Exception:  # noqa: BLE001 - the store is being created
                continue
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err
    statuses = [r.info.status for r in Tracker(uri, experiment="asma-bench").unit_runs("jobs")]
    # the units training when the signal came are KILLED (random_init, which trains
    # nothing, may have finished first); none is left RUNNING
    assert statuses.count("KILLED") >= 2 and "RUNNING" not in statuses, statuses
    assert "terminated (SIGTERM)" in err.strip().splitlines()[-1]
    assert not list((runs / ".locks").glob("*.lock"))


def test_auto_is_one_process_per_thread_within_memory_and_one_on_a_gpu_or_queue(monkeypatch):
    from asma_bench.commands.run import parse_jobs
    from asma_bench.harness import runner

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(runner, "_available_memory", lambda: 64 * 2**30)
    assert parse_jobs("auto") == 2 and parse_jobs("AUTO") == 2  # two cores: two processes
    assert parse_jobs("auto", device="cuda") == 1
    assert parse_jobs("auto", storage="sqlite:///q.db") == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    monkeypatch.setattr(runner, "_available_memory", lambda: 9 * 2**30)
    assert parse_jobs("auto") == 2  # room for two 4 GiB processes, not sixteen
    monkeypatch.setattr(runner, "_available_memory", lambda: 2**30)
    assert parse_jobs("auto") == 1
    monkeypatch.setattr(runner, "_available_memory", lambda: None)  # no /proc/meminfo
    assert parse_jobs("auto") == 16
    assert parse_jobs("3") == 3


def test_the_command_lines_default_is_auto_and_the_environment_may_set_it(tmp_path, monkeypatch):
    from asma_bench.harness import runner

    seen = []
    monkeypatch.setattr(runner, "auto_jobs", lambda device=None, storage=None: seen.append(1) or 1)
    monkeypatch.delenv("ASMA_BENCH_JOBS", raising=False)
    args = ["run", "--grid", "masking_pairs", "--profile", "smoke", "--runs", str(tmp_path)]
    assert main([*args, "--dry-run", "--no-estimate"]) == 0
    assert seen == [1]  # no --jobs: auto
    monkeypatch.setenv("ASMA_BENCH_JOBS", "1")
    assert main([*args, "--dry-run", "--no-estimate"]) == 0
    assert seen == [1]


@pytest.mark.slow
def test_a_units_threads_are_set_by_jobs_however_few_units_are_left(tmp_path, capsys, monkeypatch):
    grid = tmp_path / "one.yaml"
    grid.write_text(
        textwrap.dedent("""
        name: one
        protocol: linear
        references: []
        base: {pretrain: {objective: barlow_twins, epochs: 1}}
        cells:
          - {name: a, overrides: {masking: {pairing: ldsm_hmtm}}}
    """)
    )
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    args = ["run", "--grid", str(grid), "--profile", "smoke", "--seeds", "1", "--no-progress"]
    assert main([*args, "--runs", str(tmp_path / "r"), "--jobs", "2"]) == 0
    runs = Tracker(default_tracking_uri(tmp_path / "r"), experiment="asma-bench").unit_runs("one")
    assert [r.data.tags.get("asma.threads") for r in runs] == ["1"]  # one unit, one thread


def test_rerun_trains_on_the_threads_the_run_recorded(tmp_path, monkeypatch, capsys):
    from asma_bench.commands import runs as runs_command

    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(n) or real(n))
    own = torch.get_num_threads()
    with runs_command._threads_of({"asma.threads": "1"}):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == own and seen == [1, own]  # the suite's own restored
    seen.clear()
    with runs_command._threads_of({"asma.threads": str(own + 1)}):
        assert torch.get_num_threads() == own  # more than here: a note, not a change
    assert f"the run trained on {own + 1} threads" in capsys.readouterr().err
    with runs_command._threads_of({}):  # runs of earlier versions recorded none
        assert torch.get_num_threads() == own
