"""``tune --jobs``: trials in several processes sharing the study, each trial once, its
values those of one process at the same threads; the SQLite storage hands a queued trial
to one process only; a pretraining two trials need at once is trained once; a stop ends
every worker with no trial left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
import torch

from asma_bench.cli import main
from asma_bench.harness.queue import open_storage
from asma_bench.harness.tracking import Tracker
from asma_bench.harness.tuning import (
    ATTR_COMMAND,
    ATTR_RETRY_OF,
    ATTR_RUN,
    ATTR_WORKER,
    SearchSpace,
    TuneOptions,
    load_space,
    tune,
)

SPACE = textwrap.dedent("""
    name: probe_lr
    description: linear-probe learning rate on one Barlow Twins encoder
    protocol: linear
    base: {pretrain: {objective: barlow_twins}, masking: {pairing: ldsm_hmtm}, linear: {epochs: 4}}
    params:
      linear.lr: {type: float, low: 1.0e-3, high: 0.5, log: true}
""")


@pytest.fixture
def probe_space(tmp_path) -> SearchSpace:
    path = tmp_path / "probe_lr.yaml"
    path.write_text(SPACE)
    return load_space(str(path))


def _trials(out):
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out}/optuna.db")
    return sorted(study.get_trials(), key=lambda t: t.number)


@pytest.mark.slow
def test_two_workers_run_each_trial_once_on_their_share_of_the_cores(
    tmp_path, probe_space, monkeypatch
):
    lines: list[str] = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # two cores, whatever the host
    out = tmp_path / "two"
    outcome = tune(
        probe_space,
        TuneOptions(profile="smoke", trials=4, out=out, jobs=2, progress_lines=lines.append),
    )
    monkeypatch.undo()
    trials = _trials(out)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert trials[0].params == {"linear.lr": 0.01}  # the profile's own point, run once
    assert len({t.params["linear.lr"] for t in trials}) == 4
    workers = {t.user_attrs[ATTR_WORKER]["pid"] for t in trials}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2
    assert len({t.user_attrs[ATTR_COMMAND] for t in trials}) == 1
    # one progress line per trial, counted in the order they finished
    assert [line.split(" trial ")[0] for line in lines] == [
        f"[{i}/4] tune probe_lr" for i in range(1, 5)
    ]
    assert sorted(int(line.split(" trial ")[1].split(":")[0]) for line in lines) == [0, 1, 2, 3]
    # every trial's run is finished and trained on one thread (two cores, two workers)
    tracker = Tracker(outcome.tracking_uri, experiment=outcome.experiment)
    for t in trials:
        run = tracker.client.get_run(t.user_attrs[ATTR_RUN])
        assert run.info.status == "FINISHED" and run.data.tags["asma.threads"] == "1"
    # the trials share one pretraining: trained once, and its lock file is gone
    assert len(list((out / "checkpoints").glob("pretrain-*.pt"))) == 1
    assert not list((out / "checkpoints").glob("*.lock"))
    # a trial's value is the one a single process gives at the same point and threads
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = tune(probe_space, TuneOptions(profile="smoke", trials=1, out=tmp_path / "one"))
    finally:
        torch.set_num_threads(threads)
    assert alone.trials[0].params == trials[0].params
    assert alone.trials[0].value == trials[0].value


_POP = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import optuna
    from asma_bench.harness.queue import open_storage
    url, go = sys.argv[1], Path(sys.argv[2])
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="pop", storage=open_storage(url))
    while not go.exists():
        time.sleep(0.005)
    popped = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:
        popped.append(trial_id)
    print(" ".join(map(str, popped)))
""")


def test_a_queued_trial_goes_to_one_process_of_an_sqlite_storage(tmp_path):
    """Optuna's WAITING → RUNNING step reads then writes; SQLite ignores its FOR UPDATE,
    so without a transaction that locks from its start two processes could both take one
    trial (seen: the enqueued first trial of a ``tune --jobs 2`` run twice)."""
    url = f"sqlite:///{tmp_path}/q.db"
    study = optuna.create_study(study_name="pop", storage=open_storage(url))
    for i in range(40):
        study.enqueue_trial({"x": i}, skip_if_exists=False)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _POP, url, str(go)], stdout=subprocess.PIPE, text=True
        )  # fmt: skip
        for _ in range(3)
    ]
    time.sleep(3.0)  # all three loaded the study and wait for the start
    go.touch()
    popped = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        popped += [int(x) for x in out.split()]
    assert sorted(popped) == sorted(t._trial_id for t in study.get_trials())  # each once


def test_jobs_out_of_range_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "space.yaml").write_text(SPACE)
    base = ["tune", "--space", str(tmp_path / "space.yaml"), "--profile", "smoke",
            "--runs", str(tmp_path / "runs")]  # fmt: skip
    assert main([*base, "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --jobs 0: give 1 to 64 processes"
    monkeypatch.setenv("ASMA_BENCH_JOBS", "many")  # the default's value, checked alike
    assert main(base) == 2
    assert "--jobs 'many' (or ASMA_BENCH_JOBS)" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_sigterm_stops_every_worker_and_leaves_no_trial_running(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-c", "import sys; from asma_bench.cli import main; "
           "sys.exit(main(sys.argv[1:]))", "tune", "--space", str(tmp_path / "space.yaml"),
           "--profile", "smoke", "--trials", "4", "--runs", str(out), "--no-progress",
           "--jobs", "2", "--set", "pretrain.epochs=5000"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    running = []
    while time.monotonic() < deadline and proc.poll() is None:  # both workers in a trial
        time.sleep(0.5)
        try:  # a trial is in its objective once it names its worker
            running = [t for t in _trials(out)
                       if t.state.name == "RUNNING" and ATTR_WORKER in t.user_attrs]  # fmt: skip
        except Exception:  # noqa: BLE001 - the storage is being created
            continue
        if len(running) >= 2:
            break
    assert len(running) >= 2, proc.stderr.read() if proc.poll() is not None else ""
    workers = [t.user_attrs[ATTR_WORKER]["pid"] for t in running]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err.strip().splitlines()[-1]
    trials = _trials(out)
    # every trial failed; one that a worker left RUNNING (stopped inside Optuna, before its
    # objective ran) is failed by the command and its point, never evaluated, queued again
    failed = [t for t in trials if t.state.name == "FAIL"]
    retries = [t for t in trials if t.state.name == "WAITING"]
    assert len(failed) >= 2 and len(failed) + len(retries) == len(trials), trials
    assert all(t.user_attrs[ATTR_RETRY_OF] in {f.number for f in failed} for t in retries)
    tracker = Tracker(f"sqlite:///{out}/mlflow.db", experiment="tune:probe_lr")
    for t in failed:  # every trial's run is closed
        if ATTR_RUN in t.user_attrs:
            assert tracker.client.get_run(t.user_attrs[ATTR_RUN]).info.status != "RUNNING"
    for pid in workers:  # and the workers are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
