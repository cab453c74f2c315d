"""The shared work queue: idempotent enqueuing, one run per unit, dead workers' units retried.

The slow tests start a real PostgreSQL server (the Debian ``postgresql`` package, which CI
installs) on a free loopback port and run workers as separate processes.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.queue import (
    ATTR_DUPLICATE,
    ATTR_FAILURE,
    ATTR_UNIT,
    ATTR_WORKER,
    GridQueue,
    QueueSettings,
    StorageError,
    UnitFailed,
    open_storage,
    redact,
    storage_lock,
    study_name,
)
from asma_bench.harness.runner import RunOptions, plan_units, run_grid
from asma_bench.harness.tracking import TAG_UNIT, Tracker, with_installed_driver


@pytest.fixture(scope="module")
def units():
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells = grid.cells[:2]
    grid.references = ["random_init"]
    grid.baseline = None
    return plan_units(grid, RunOptions(profile="smoke", seeds=[0, 1]))


def _queue(url, units, **settings):
    storage = open_storage(url, QueueSettings(**settings))
    return GridQueue.open(storage, study_name(units[0].grid, units), units)


def _states(queue):
    return Counter(t.state.name for t in queue.study.get_trials(deepcopy=False))


def test_study_name_depends_on_the_resolved_plan(units):
    assert study_name("g", units) == study_name("g", list(units))
    assert study_name("g", units) != study_name("g", units[:-1])
    assert study_name("g", units).startswith("grid:g:")


def test_enqueue_is_idempotent_and_skips_finished_units(tmp_path, units):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    queue = _queue(url, units)
    finished = {units[0].id}
    added = queue.enqueue(finished)
    assert set(added) == {u.id for u in units[1:]}
    assert queue.enqueue(finished) == []
    reopened = _queue(url, units)  # another worker starting later
    assert reopened.enqueue(finished) == []
    trials = reopened.study.get_trials(deepcopy=False)
    assert len(trials) == len(units) - 1 and _states(reopened) == {"WAITING": len(units) - 1}
    by_unit = {t.user_attrs[ATTR_UNIT]: t for t in trials}
    for u in units[1:]:
        assert by_unit[u.id].user_attrs["asma.cell"] == u.cell.name
        assert by_unit[u.id].user_attrs["asma.seed"] == u.seed


def test_workers_starting_together_enqueue_each_unit_once(tmp_path, units):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    name = study_name(units[0].grid, units)
    added: list[list[str]] = []
    errors: list[BaseException] = []

    def start_worker() -> None:
        try:
            with storage_lock(url, name):
                added.append(_queue(url, units).enqueue())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start_worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(len(a) for a in added) == [0, 0, 0, len(units)]
    assert _states(_queue(url, units)) == {"WAITING": len(units)}


def test_each_unit_runs_once_and_duplicates_are_pruned(tmp_path, units):
    queue = _queue(f"sqlite:///{tmp_path / 'q.db'}", units)
    queue.enqueue()
    dup = units[2]  # a second trial for the same unit, as a storage without a lock could get
    queue.study.enqueue_trial(
        {"cell": dup.cell.name, "seed": dup.seed}, user_attrs={ATTR_UNIT: dup.id}
    )
    ran: list[str] = []

    def run(unit):
        ran.append(unit.id)
        return float(len(ran)), {}

    report = queue.work(run, wait_for_others=True, poll_seconds=0.1)
    assert sorted(ran) == sorted(u.id for u in units)
    assert sorted(report.ran) == sorted(ran) and report.duplicates == 1
    assert _states(queue) == {"COMPLETE": len(units), "PRUNED": 1}
    pruned = [t for t in queue.study.get_trials() if t.state.name == "PRUNED"]
    assert pruned[0].user_attrs[ATTR_DUPLICATE] and pruned[0].user_attrs[ATTR_UNIT] == dup.id
    assert queue.unfinished() == {}
    assert queue.enqueue() == []  # everything complete: nothing to add on a rerun


def test_failed_unit_is_reported_and_not_retried(tmp_path, units):
    queue = _queue(f"sqlite:///{tmp_path / 'q.db'}", units[:2])
    queue.enqueue()

    def run(unit):
        if unit.id == units[0].id:
            raise UnitFailed("pretrain: loss is nan at epoch 0")
        return 1.0, {}

    report = queue.work(run, poll_seconds=0.1)
    assert report.failed == {units[0].id: "pretrain: loss is nan at epoch 0"}
    assert report.ran == [units[1].id]
    assert _states(queue) == {"FAIL": 1, "COMPLETE": 1}
    assert queue.unfinished() == {units[0].id: "pretrain: loss is nan at epoch 0"}
    failed = [t for t in queue.study.get_trials() if t.state.name == "FAIL"][0]
    assert failed.user_attrs[ATTR_FAILURE].startswith("pretrain: loss is nan")
    assert queue.enqueue() == [units[0].id]  # a rerun of the command tries it again


def test_unit_of_a_silent_worker_goes_back_in_the_queue(tmp_path, units):
    """A worker that popped a unit and stopped beating: after the grace period another
    worker fails its trial, the retry callback re-enqueues it, and the unit runs once."""
    from optuna.trial import TrialState

    queue = _queue(
        f"sqlite:///{tmp_path / 'q.db'}", units[:2], heartbeat_interval=1, grace_period=2
    )
    queue.enqueue()
    storage = queue.study._storage
    first = queue.study.get_trials(deepcopy=False)[0]
    # what a worker does when it pops a unit, then dies without another heartbeat
    assert storage.set_trial_state_values(first._trial_id, state=TrialState.RUNNING)
    storage.record_heartbeat(first._trial_id)
    ran: list[str] = []
    start = time.monotonic()
    report = queue.work(lambda u: (ran.append(u.id), (1.0, {}))[1], poll_seconds=0.2)
    assert sorted(ran) == sorted(u.id for u in units[:2]) == sorted(report.ran)
    assert time.monotonic() - start > 1.5  # it waited for the grace period (2 s)
    trials = queue.study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    retry = trials[2]
    assert retry.user_attrs[ATTR_UNIT] == first.user_attrs[ATTR_UNIT]
    assert retry.system_attrs["failed_trial"] == first.number
    assert queue.unfinished() == {}


def test_bad_storage_urls_fail_with_one_line():
    with pytest.raises(ConfigError, match="expected a database URL"):
        open_storage("optuna.db")
    with pytest.raises(StorageError) as err:
        open_storage("postgresql+psycopg2://bob:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)
    assert "s3cret" not in redact("postgresql://bob:s3cret@host/db")
    with pytest.raises(ConfigError, match="grace period"):
        QueueSettings(heartbeat_interval=5, grace_period=5)


def test_a_bare_postgresql_url_uses_the_installed_driver():
    import importlib.util

    driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
    assert with_installed_driver("postgresql://u@h/db") == f"postgresql+{driver}://u@h/db"
    assert with_installed_driver("postgresql+pg8000://u@h/db") == "postgresql+pg8000://u@h/db"
    assert with_installed_driver("sqlite:///q.db") == "sqlite:///q.db"


@pytest.mark.slow
def test_run_grid_through_a_local_queue_then_rerun_skips(tmp_path):
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells = grid.cells[:1]
    grid.references = []
    grid.baseline = None
    opts = RunOptions(
        profile="smoke",
        seeds=[0],
        out=tmp_path,
        progress=False,
        storage=f"sqlite:///{tmp_path / 'queue.db'}",
        heartbeat=1,
    )
    first = run_grid(grid, opts)
    assert first.ran == ["ldsm_hmtm/seed0"] and not first.failed and not first.skipped
    second = run_grid(grid, opts)
    assert second.ran == [] and second.skipped == ["ldsm_hmtm/seed0"]
    runs = Tracker(first.tracking_uri, experiment="asma-bench").unit_runs(grid.name)
    assert [r.info.status for r in runs] == ["FINISHED"]


# --------------------------------------------------------------------------- PostgreSQL
def _postgres_bin() -> Path | None:
    candidates = [os.environ.get("ASMA_BENCH_PG_BIN", "")]
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and all((Path(c) / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throw-away PostgreSQL server on a loopback port, data and socket in a temp dir."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="asma-pg-"))
        self.kwargs: dict = {}
        if os.geteuid() == 0:  # the server refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.data = self.root / "data"
        self.port = _free_port()

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            cwd=self.root,
            **self.kwargs,
        )

    def start(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def createdb(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def postgres():
    pytest.importorskip("psycopg2", reason="psycopg2 is needed to talk to PostgreSQL")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install the "
            "Debian package 'postgresql' (CI does)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the server as")
    server = Postgres(bindir)
    server.start()
    yield server
    server.stop()


GRID = textwrap.dedent("""
    name: queue_test
    protocol: linear
    base: {pretrain: {objective: barlow_twins}}
    references: [random_init]
    cells:
      - {name: ldsm_hmtm, overrides: {masking: {pairing: ldsm_hmtm}}}
      - {name: hdsm_lmtm, overrides: {masking: {pairing: hdsm_lmtm}}}
""")


def _setup(tmp: Path, pretrain_epochs: int, cells: int = 2, references: bool = True):
    """A small grid and a smoke-based profile file with ``pretrain_epochs``; the planned units."""
    import yaml

    from asma_bench.config import deep_merge, profile_dict

    grid = yaml.safe_load(GRID)
    grid["cells"] = grid["cells"][:cells]
    grid["references"] = ["random_init"] if references else []
    (tmp / "grid.yaml").write_text(yaml.safe_dump(grid))
    profile = deep_merge(profile_dict("smoke"), {"pretrain": {"epochs": pretrain_epochs}})
    (tmp / "profile.yaml").write_text(yaml.safe_dump(profile))
    spec = load_grid(tmp / "grid.yaml")
    units = plan_units(spec, RunOptions(profile=str(tmp / "profile.yaml"), seeds=[0, 1]))
    return spec, units


def _worker(tmp: Path, name: str, storage: str, tracking: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "asma_bench.cli",
        "run",
        "--grid",
        str(tmp / "grid.yaml"),
        "--profile",
        str(tmp / "profile.yaml"),
        "--seeds",
        "2",
        "--out",
        str(tmp / name),
        "--storage",
        storage,
        "--tracking-uri",
        tracking,
        "--no-progress",
        "--heartbeat",
        "1",
    ]
    log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    # one thread per worker: two workers share a small CI machine
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _finished_runs(tracking: str, grid: str) -> Counter:
    runs = Tracker(tracking, experiment="asma-bench").unit_runs(grid)
    return Counter(r.data.tags[TAG_UNIT] for r in runs if r.info.status == "FINISHED")


@pytest.mark.slow
def test_two_workers_finish_every_unit_exactly_once(postgres, tmp_path):
    grid, units = _setup(tmp_path, pretrain_epochs=2)
    assert len({u.id for u in units}) == len(units) == 6
    storage, tracking = postgres.createdb("queue_a"), postgres.createdb("mlflow_a")
    workers = [_worker(tmp_path, f"w{i}", storage, tracking) for i in range(2)]
    codes = [w.wait(timeout=300) for w in workers]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    assert _finished_runs(tracking, grid.name) == Counter({u.id: 1 for u in units})
    queue = _queue(storage, units)
    complete = [t for t in queue.study.get_trials() if t.state.name == "COMPLETE"]
    assert Counter(t.user_attrs[ATTR_UNIT] for t in complete) == Counter({u.id: 1 for u in units})
    pids = {t.user_attrs[ATTR_WORKER].rsplit(":", 1)[1] for t in complete}
    assert pids == {str(w.pid) for w in workers}, "both workers took units from the queue"


@pytest.mark.slow
def test_unit_of_a_killed_worker_is_finished_by_the_other(postgres, tmp_path):
    # several pretraining epochs per unit, so the worker can be killed in the middle
    grid, units = _setup(tmp_path, pretrain_epochs=10, cells=1, references=False)
    assert len(units) == 2
    storage, tracking = postgres.createdb("queue_b"), postgres.createdb("mlflow_b")
    doomed = _worker(tmp_path, "doomed", storage, tracking)
    deadline = time.monotonic() + 120
    # kill it while it pretrains its first unit (the partial checkpoint exists)
    while not list((tmp_path / "doomed" / "checkpoints").glob("*.partial.pt")):
        assert doomed.poll() is None, (tmp_path / "doomed.log").read_text()
        assert time.monotonic() < deadline, "worker never started pretraining"
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    survivor = _worker(tmp_path, "survivor", storage, tracking)
    assert survivor.wait(timeout=300) == 0, (tmp_path / "survivor.log").read_text()
    assert _finished_runs(tracking, grid.name) == Counter({u.id: 1 for u in units})
    queue = _queue(storage, units)
    trials = queue.study.get_trials()
    killed = [t for t in trials if t.state.name == "FAIL"]
    assert len(killed) == 1 and killed[0].user_attrs[ATTR_WORKER].endswith(f":{doomed.pid}")
    lost = killed[0].user_attrs[ATTR_UNIT]
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    assert retried[0].user_attrs[ATTR_UNIT] == lost
    assert retried[0].user_attrs[ATTR_WORKER].endswith(f":{survivor.pid}")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert Counter(t.user_attrs[ATTR_UNIT] for t in complete) == Counter({u.id: 1 for u in units})
    # the killed worker's MLflow run is closed as KILLED, never counted as a result
    runs = Tracker(tracking, experiment="asma-bench").unit_runs(grid.name)
    assert Counter(r.info.status for r in runs if r.data.tags[TAG_UNIT] == lost) == {
        "KILLED": 1,
        "FINISHED": 1,
    }
