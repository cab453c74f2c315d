"""Nothing lost, nothing mistaken: what ``--overwrite`` may replace, datasets known by
their content, runs folders that travel, locks that follow the store, and a foreign
SQLite file left alone."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from asma_bench.cli import main
from asma_bench.config import build_config
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.locks import holder, lock_root, unit_lock
from asma_bench.harness.runner import RunOptions, plan_units, run_grid
from asma_bench.harness.tracking import TAG_UNIT, Tracker, default_tracking_uri

GRID = textwrap.dedent("""
    name: tiny
    protocol: linear
    references: []
    base: {pretrain: {objective: barlow_twins, epochs: 1}}
    cells:
      - {name: a, overrides: {masking: {pairing: ldsm_hmtm}}}
""")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def digest(path):
    """A folder's or a file's every byte, to prove it untouched."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "tiny.yaml"
    path.write_text(GRID)
    return path


def synth(capsys, out, seed=0, *extra):
    code, _, err = run(capsys, "data", "synth", "--preset", "tiny", "--out", out,
                       "--seed", seed, *extra)  # fmt: skip
    assert code == 0, err
    return out


# ------------------------------------------------------------------ --overwrite
def test_overwrite_replaces_a_dataset_it_wrote_and_nothing_else(tmp_path, capsys):
    ds = synth(capsys, tmp_path / "ds")
    before = digest(ds)
    synth(capsys, ds, 1, "--overwrite")  # a dataset it wrote: replaced
    assert digest(ds) != before

    runs = tmp_path / "runs"  # a runs folder
    (runs / "checkpoints").mkdir(parents=True)
    (runs / "mlflow.db").write_bytes(b"store")
    (runs / "checkpoints" / "pretrain-x.pt").write_bytes(b"weights")
    mine = tmp_path / "mine"  # a user's folder
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    paper = tmp_path / "paper.pdf"  # a file
    paper.write_bytes(b"%PDF")
    link = tmp_path / "link"  # a link to a dataset
    link.symlink_to(ds)
    for target, why in ((runs, "holds 'checkpoints' (and 1 more)"), (mine, "holds 'notes.txt'"),
                        (paper, "is a file"), (link, "is a symbolic link")):  # fmt: skip
        kept = digest(target)
        code, out, err = run(capsys, "data", "synth", "--preset", "tiny", "--out", target,
                             "--overwrite")  # fmt: skip
        assert code == 2 and err.count("\n") == 1 and why in err and str(target) in err, err
        assert "--overwrite replaces only a dataset folder" in err and not out
        assert digest(target) == kept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers

    empty = tmp_path / "empty"
    empty.mkdir()
    synth(capsys, empty)  # an empty folder loses nothing: written without --overwrite


def test_convert_never_replaces_an_input_inside_its_output(tmp_path, capsys):
    out = synth(capsys, tmp_path / "out")
    layout = out / "rig.yaml"
    layout.write_text("name: rig\n")
    src = synth(capsys, tmp_path / "src")
    code, _, err = run(capsys, "data", "convert", src, out, "--format", "generic",
                       "--layout", layout, "--overwrite")  # fmt: skip
    assert code == 2 and "--layout" in err and err.count("\n") == 1
    assert layout.read_text() == "name: rig\n"


def test_a_report_never_replaces_a_users_page(tmp_path, capsys, grid_file):
    runs = tmp_path / "runs"
    assert main(["run", "--grid", str(grid_file), "--profile", "smoke", "--seeds", "1",
                 "--out", str(runs), "--no-progress"]) == 0  # fmt: skip
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>my homepage</html>")
    capsys.readouterr()
    code, _, err = run(capsys, "report", "--grid", grid_file, "--runs", runs, "--out", site)
    assert code == 2 and "index.html was not written by asma-bench" in err
    assert (site / "index.html").read_text() == "<html>my homepage</html>"
    assert not (site / "tiny").exists()

    other = tmp_path / "other"
    (other / "tiny").mkdir(parents=True)
    (other / "tiny" / "draft.md").write_text("mine")
    code, _, err = run(capsys, "report", "--grid", grid_file, "--runs", runs, "--out", other)
    assert code == 2 and "holds files no report wrote" in err
    assert sorted(p.name for p in other.rglob("*")) == ["draft.md", "tiny"]

    fresh = tmp_path / "fresh"
    for _ in range(2):  # its own pages: written, then rewritten
        code, _, err = run(capsys, "report", "--grid", grid_file, "--runs", runs, "--out", fresh)
        assert code == 0, err
    assert "content='asma-bench'" in (fresh / "index.html").read_text()


# ------------------------------------------------------------- dataset identity
def test_a_dataset_is_known_by_its_content_not_its_name(tmp_path, capsys, grid_file,
                                                         monkeypatch):  # fmt: skip
    """``--data ds`` typed in two folders, and a dataset rebuilt in place, are other
    datasets: nothing is reused across them. The same bytes moved elsewhere are the same."""
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    synth(capsys, tmp_path / "A" / "ds", 1)
    synth(capsys, tmp_path / "B" / "ds", 2)
    grid = load_grid(str(grid_file))
    runs = tmp_path / "runs"

    def plan(where):
        monkeypatch.chdir(tmp_path / where)
        return plan_units(grid, RunOptions(profile="smoke", seeds=[0], data="ds", out=runs))

    (a,), (b,) = plan("A"), plan("B")
    assert a.id != b.id
    assert a.config.data.source == str((tmp_path / "A" / "ds").resolve())  # absolute
    assert a.config.data.fingerprint and a.config.data.fingerprint != b.config.data.fingerprint

    shutil.copytree(tmp_path / "A" / "ds", tmp_path / "A" / "copy")  # same bytes elsewhere
    monkeypatch.chdir(tmp_path / "A")
    (same,) = plan_units(grid, RunOptions(profile="smoke", seeds=[0], data="copy", out=runs))
    assert same.id == a.id

    monkeypatch.chdir(tmp_path / "A")
    synth(capsys, tmp_path / "A" / "ds", 3, "--overwrite")  # rebuilt in place
    (rebuilt,) = plan("A")
    assert rebuilt.id != a.id

    # a unit planned on the old bytes refuses to run on the new ones
    from asma_bench.training.data import prepare_data

    with pytest.raises(ConfigError, match="not the one this run was planned on"):
        prepare_data(a.config.data, 0, runs / "data")


def test_synthetic_units_keep_their_ids():
    """The fingerprint enters only units on a dataset folder: synthetic runs logged before
    it keep their ids."""
    cfg = build_config("smoke")
    assert "fingerprint" not in cfg.identity()["data"]
    assert "source" in cfg.identity()["data"]


# ------------------------------------------------------------- folders travel
def test_a_moved_or_copied_runs_folder_works_and_never_writes_into_the_original(
    tmp_path, capsys, grid_file
):
    runs = tmp_path / "runs"
    assert main(["run", "--grid", str(grid_file), "--profile", "smoke", "--seeds", "1",
                 "--out", str(runs), "--no-progress"]) == 0  # fmt: skip
    tracker = Tracker(default_tracking_uri(runs), experiment="asma-bench")
    (unit,) = tracker.unit_runs("tiny")
    run_id = unit.info.run_id
    assert unit.data.tags["asma.checkpoint.pretrain"].startswith("checkpoints/")  # relative
    del tracker

    moved = tmp_path / "moved"
    runs.rename(moved)
    capsys.readouterr()
    code, out, err = run(capsys, "show", run_id, "--runs", moved)
    assert code == 0, err
    assert "(missing)" not in out and str(moved / "checkpoints") in out

    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)
    original = digest(moved)
    code, out, err = run(capsys, "rerun", run_id, "--runs", copy)
    assert code == 0 and "reran a/seed0" in out, err
    assert digest(moved) == original  # the original is untouched
    reruns = Tracker(default_tracking_uri(copy), experiment="asma-bench").unit_runs("tiny")
    assert len(reruns) == 2
    for r in reruns:
        assert r.info.artifact_uri.startswith(copy.resolve().as_uri())
    code, _, err = run(capsys, "report", "--grid", grid_file, "--runs", copy,
                       "--out", tmp_path / "site")  # fmt: skip
    assert code == 0, err

    from asma_bench.api import load_model
    from asma_bench.reports.results import check_sqlite_store, load_predictions

    check_sqlite_store(default_tracking_uri(moved))  # what a report does first: re-roots
    preds = load_predictions(default_tracking_uri(moved), run_id)  # read from moved/
    assert preds and all(len(p.labels) > 0 for p in preds.values())

    model = load_model(run_id, runs=moved)
    assert sum(p.numel() for p in model.parameters()) > 0


# ------------------------------------------------------------------------ locks
def test_locks_follow_the_store_not_the_out_folder(tmp_path):
    shared = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert lock_root(shared, tmp_path / "one") == lock_root(shared, tmp_path / "two")
    assert lock_root(shared, tmp_path / "one") == (tmp_path / "store").resolve()
    server = "postgresql://db.example/mlflow"
    assert lock_root(server, tmp_path / "one") == lock_root(server, tmp_path / "two")
    assert (
        lock_root(default_tracking_uri(tmp_path / "x"), tmp_path / "x")
        == (tmp_path / "x").resolve()
    )  # the default store: OUT/.locks, as before


def test_a_unit_held_by_a_stopped_process_is_reported_and_the_run_fails(
    tmp_path, capsys, grid_file
):
    """A process that holds a unit and is stopped (SIGSTOP) keeps it: the run says who
    holds it and exits non-zero, since the grid is not complete; `rerun` refuses it."""
    runs = tmp_path / "runs"
    grid = load_grid(str(grid_file))
    opts = RunOptions(profile="smoke", seeds=[0], out=runs, progress=False)
    (unit,) = plan_units(grid, opts)
    code = textwrap.dedent(f"""
        import os, signal, time
        from asma_bench.harness.locks import unit_lock
        with unit_lock({str(runs)!r}, {unit.id!r}) as mine:
            print("held" if mine else "busy", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
            time.sleep(60)
    """)
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        for _ in range(100):  # wait until it has stopped itself
            if "(stopped)" in holder(runs, unit.id):
                break
            time.sleep(0.05)
        assert holder(runs, unit.id) == f"process {other.pid} (stopped)"
        capsys.readouterr()
        code_, out, _ = run(capsys, "run", "--grid", grid_file, "--profile", "smoke",
                            "--seeds", "1", "--out", runs, "--no-progress")  # fmt: skip
        assert code_ == 1
        assert "0 units run, 0 already finished, 1 held by other processes" in out
        assert f"NOT FINISHED a/seed0 (process {other.pid} (stopped))" in out
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    outcome = run_grid(grid, opts)  # the kernel released the lock with the process
    assert outcome.ran == ["a/seed0"] and not outcome.held


def test_rerun_takes_the_units_lock(tmp_path, capsys, grid_file):
    runs = tmp_path / "runs"
    assert main(["run", "--grid", str(grid_file), "--profile", "smoke", "--seeds", "1",
                 "--out", str(runs), "--no-progress"]) == 0  # fmt: skip
    tracker = Tracker(default_tracking_uri(runs), experiment="asma-bench")
    (unit,) = tracker.unit_runs("tiny")
    capsys.readouterr()
    with unit_lock(runs, unit.data.tags[TAG_UNIT]) as mine:
        assert mine
        code, _, err = run(capsys, "rerun", unit.info.run_id, "--runs", runs)
    assert code == 2 and f"is being run by process {os.getpid()}" in err
    assert len(tracker.unit_runs("tiny")) == 1  # nothing started


# -------------------------------------------------------------- foreign files
def test_another_programs_sqlite_file_is_refused_untouched(tmp_path, capsys, grid_file):
    runs = tmp_path / "runs"
    runs.mkdir()
    db = runs / "mlflow.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.commit()
    con.close()
    before = db.read_bytes()
    code, _, err = run(capsys, "run", "--grid", grid_file, "--profile", "smoke", "--seeds", "1",
                       "--out", runs, "--no-progress")  # fmt: skip
    assert code == 2 and "another program (tables invoices)" in err and err.count("\n") == 1
    assert db.read_bytes() == before
    db.write_bytes(b"not a database at all, just text" * 10)
    code, _, err = run(capsys, "run", "--grid", grid_file, "--profile", "smoke", "--seeds", "1",
                       "--out", runs, "--no-progress")  # fmt: skip
    assert code == 2 and "is not an MLflow tracking store" in err


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    from asma_bench import fileio

    def full(fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info:
        fileio.atomic_write(tmp_path / "ckpt.pt", full)
    assert info.value.filename == str(tmp_path / "ckpt.pt")
    assert not list(tmp_path.iterdir())


def test_a_killed_store_creation_leaves_no_journal_behind(tmp_path):
    from asma_bench.fileio import sweep_stale_beside

    dead = 2**22 + 12345  # above the default pid_max: no such process
    for name in (f".mlflow.db.{dead}.tmp", f".mlflow.db.{dead}.tmp-journal"):
        (tmp_path / name).write_bytes(b"x")
    live = tmp_path / f".mlflow.db.{os.getpid()}.tmp-journal"
    live.write_bytes(b"x")
    sweep_stale_beside(tmp_path / "mlflow.db")
    assert [p.name for p in tmp_path.iterdir()] == [live.name]


@pytest.mark.slow
def test_sigterm_closes_the_runs_and_says_so(tmp_path, grid_file):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-c", "import sys; from asma_bench.cli import main; "
           "sys.exit(main(sys.argv[1:]))", "run", "--grid", str(grid_file), "--profile",
           "smoke", "--seeds", "1", "--out", str(runs), "--no-progress",
           "--set", "pretrain.epochs=200"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    uri = default_tracking_uri(runs)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the unit's run is open
        time.sleep(0.5)
        if (runs / "mlflow.db").is_file():
            try:
                if Tracker(uri, experiment="asma-bench").unit_runs("tiny"):
                    break
            except Exception:  # noqa: BLE001 - the store is being created
                continue
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == "terminated (SIGTERM); a rerun of the command resumes"
    tracker = Tracker(uri, experiment="asma-bench")
    assert [r.info.status for r in tracker.unit_runs("tiny")] == ["KILLED"]
    assert not list((runs / ".locks").iterdir())


def test_a_stop_right_after_the_units_run_is_created_still_closes_it(
    tmp_path, grid_file, monkeypatch
):
    """The window a SIGTERM can land in before training starts: the run exists, the
    process stops. Sent inside the run's creation, the signal is held back until the run id
    is known; sent just after, it reaches the same close. Either way: KILLED, not RUNNING."""
    from asma_bench.cli import _STOPPED_BY, Terminated, _on_signal
    from asma_bench.harness.execute import run_unit

    unit = plan_units(load_grid(str(grid_file)), RunOptions(profile="smoke", seeds=[0]))[0]
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="asma-bench")
    start = Tracker.start_unit

    def start_then_signal(self, *args, **kwargs):
        run_id = start(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the run id is not yet returned
        return run_id

    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        monkeypatch.setattr(Tracker, "start_unit", start_then_signal)
        with pytest.raises(Terminated):
            run_unit(unit, tracker, tracker.parent_run("tiny", {}), tmp_path)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _STOPPED_BY.clear()  # what the handler noted for the command line, this process's
    monkeypatch.setattr(Tracker, "start_unit", start)

    def stopped(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(Tracker, "rival", stopped)  # the signal just after the creation
    with pytest.raises(Terminated):
        run_unit(unit, tracker, tracker.parent_run("tiny", {}), tmp_path)
    assert [r.info.status for r in tracker.unit_runs("tiny")] == ["KILLED", "KILLED"]


def test_a_unit_another_machine_trains_is_left_to_it_until_its_heartbeat_stops(tmp_path, grid_file):
    """Processes on two machines share no lock file: a unit run another machine started
    and keeps heartbeating is left to it (the run ends NOT FINISHED); once its heartbeat
    is older than STALE_AFTER the run is closed KILLED and the unit trained here."""
    from asma_bench.harness.tracking import TAG_HEARTBEAT, TAG_HOST, TAG_PID

    runs = tmp_path / "runs"
    grid = load_grid(str(grid_file))
    opts = RunOptions(profile="smoke", seeds=[0], out=runs, progress=False)
    (unit,) = plan_units(grid, opts)
    uri = default_tracking_uri(runs)
    runs.mkdir()
    tracker = Tracker(uri, experiment="asma-bench", artifact_root=runs / "artifacts")
    parent = tracker.parent_run("tiny", {})
    theirs = tracker.start_unit(parent, "tiny", unit.name, {
        TAG_UNIT: unit.id, TAG_HOST: "elsewhere", TAG_PID: 4242,
        TAG_HEARTBEAT: f"{time.time():.0f}"})  # fmt: skip
    outcome = run_grid(grid, opts)
    assert outcome.held == ["a/seed0 (process 4242 on elsewhere)"] and not outcome.ran
    assert [r.info.status for r in tracker.unit_runs("tiny")] == ["RUNNING"]  # ours deleted

    tracker.set_tags(theirs, {TAG_HEARTBEAT: f"{time.time() - 1000:.0f}"})  # it died
    outcome = run_grid(grid, opts)
    assert outcome.ran == ["a/seed0"] and not outcome.held
    status = {r.info.run_id: r.info.status for r in tracker.unit_runs("tiny")}
    assert status.pop(theirs) == "KILLED" and list(status.values()) == ["FINISHED"]


def test_of_two_live_runs_of_a_unit_the_earlier_keeps_it(tmp_path):
    from asma_bench.harness.tracking import TAG_HEARTBEAT, TAG_HOST, TAG_PID

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="asma-bench")
    parent = tracker.parent_run("g", {})
    made = []
    for host in ("one", "two"):
        tags = {TAG_UNIT: "u", TAG_HOST: host, TAG_PID: 7, TAG_HEARTBEAT: f"{time.time():.0f}"}
        made.append(tracker.start_unit(parent, "g", "a/seed0", tags))
        time.sleep(0.01)  # two start times
    first, second = made
    assert tracker.rival("g", "u", first) is None
    assert tracker.rival("g", "u", second) == "process 7 on one"
    tracker.close_stale("g", "u")  # both alive: nothing closed
    assert {r.info.status for r in tracker.unit_runs("g")} == {"RUNNING"}
