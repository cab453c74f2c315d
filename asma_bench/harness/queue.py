"""Grids spread over several machines through a shared Optuna storage used as a work queue.

Each (cell, seed) of a grid becomes one WAITING trial of an Optuna study named after the
grid and a hash of its resolved plan (so workers started with different profiles, seeds
or overrides never mix). Workers pop WAITING trials with ``study.optimize`` (RDB storage
moves a trial from WAITING to RUNNING with a conditional update inside a transaction that
locks the trial, so exactly one worker gets it; on SQLite see :func:`serialize_sqlite`),
run the unit into the shared MLflow store, and complete the trial. A worker's
heartbeat keeps its trial alive; when a worker dies, another one fails the stale trial
and Optuna's retry callback puts a copy of it back in the queue.

Enqueuing is idempotent even when many workers start at once: it runs under a lock tied
to the storage (a session-level advisory lock on PostgreSQL, ``GET_LOCK`` on MySQL, an
``flock`` on a file beside an SQLite database), and inside it a unit is enqueued only if
it has no WAITING, RUNNING or COMPLETE trial in the study and no FINISHED run in MLflow.
Database locks are released by the server when a worker's connection dies. As a second
line of defence a worker that pops a unit which another trial already owns (complete, or
active with a lower trial number) prunes its own trial instead of running it, so a unit is
never run twice even on a storage without a lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asma_bench.errors import AsmaBenchError, ConfigError, library_error
from asma_bench.harness.execute import UnitHeld, run_unit
from asma_bench.harness.plan import (
    GridOutcome,
    RunOptions,
    Unit,
    ensure_writable,
    open_grid_run,
    plan_units,
)
from asma_bench.harness.tracking import Tracker, default_tracking_uri, with_installed_driver
from asma_bench.training.loop import DivergenceError

if TYPE_CHECKING:
    import optuna

    from asma_bench.harness.grids import GridSpec

log = logging.getLogger(__name__)

ATTR_UNIT, ATTR_CELL, ATTR_SEED = "asma.unit", "asma.cell", "asma.seed"
ATTR_GRID, ATTR_WORKER, ATTR_FAILURE = "asma.grid", "asma.worker", "asma.failure"
ATTR_DUPLICATE, ATTR_EMPTY, ATTR_SKIPPED = "asma.duplicate", "asma.empty", "asma.skipped"
ATTR_RUN = "asma.mlflow_run"
STUDY_PREFIX = "grid"


class StorageError(AsmaBenchError):
    """The Optuna storage cannot be reached or used."""


@dataclass(frozen=True)
class QueueSettings:
    """Heartbeat and retry settings of the workers (seconds)."""

    heartbeat_interval: int = 60
    grace_period: int | None = None  # None: twice the heartbeat interval
    max_retry: int = 3
    poll_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.heartbeat_interval < 1:
            raise ConfigError(f"heartbeat interval must be >= 1 s, got {self.heartbeat_interval}")
        if self.grace_period is not None and self.grace_period <= self.heartbeat_interval:
            raise ConfigError(
                f"grace period ({self.grace_period} s) must exceed the heartbeat "
                f"interval ({self.heartbeat_interval} s)"
            )
        if self.max_retry < 0:
            raise ConfigError(f"max retry must be >= 0, got {self.max_retry}")
        if self.poll_seconds <= 0:
            raise ConfigError(f"poll seconds must be > 0, got {self.poll_seconds}")


def redact(url: str) -> str:
    """``url`` with any password hidden (for messages and logs)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: show the scheme only
        return url.split("://", 1)[0] + "://…" if "://" in url else "…"


def open_storage(url: str, settings: QueueSettings | None = None) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage at ``url`` with heartbeats and retry of stale trials."""
    import optuna

    settings = settings or QueueSettings()
    if "://" not in url:
        raise ConfigError(
            f"--storage {url!r}: expected a database URL such as "
            "sqlite:///study.db or postgresql://user@host/db"
        )
    url = with_installed_driver(url)
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    try:
        with quiet_optuna():
            if retry_cls is not None:  # Optuna >= 4.9 renamed the callback and its argument
                callback = {"heartbeat_stale_trial_callback": retry_cls(settings.max_retry)}
            else:
                callback = {
                    "failed_trial_callback": optuna.storages.RetryFailedTrialCallback(
                        max_retry=settings.max_retry
                    )
                }
            storage = optuna.storages.RDBStorage(
                url, heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period, engine_kwargs=_engine_kwargs(url),
                **callback,
            )  # fmt: skip
    except Exception as exc:  # SQLAlchemy raises many types for a bad or unreachable URL
        raise StorageError(f"storage {redact(url)}: {library_error(exc)}") from None
    if url.startswith("sqlite"):
        serialize_sqlite(storage.engine)
    return storage


#: Seconds an SQLite transaction waits for another process's to end before failing.
SQLITE_BUSY_SECONDS = 60.0


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    # pre-ping: a worker idle for a long unit must not die on a connection the server closed
    return {"pool_pre_ping": True}


def serialize_sqlite(engine: Any) -> None:  # noqa: ANN401 - an SQLAlchemy engine
    """Make each transaction on ``engine`` (SQLite) take the database's write lock when it
    begins (``BEGIN IMMEDIATE``), so that the transactions of several processes run one
    after the other.

    Optuna moves a trial from WAITING to RUNNING by reading its state and updating it in
    one transaction, with ``SELECT … FOR UPDATE``, which SQLite ignores; and Python's
    sqlite3 begins a transaction only at the first write, so the read ran outside it. Two
    processes could both read WAITING and both run the trial (seen with two ``tune
    --jobs`` workers and the enqueued first trial). With the write lock taken at BEGIN, the
    second reads RUNNING and leaves the trial (SQLAlchemy's documented pysqlite recipe for
    serializable transactions)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:  # noqa: ANN401
        dbapi_connection.isolation_level = None  # BEGIN is emitted below, not by sqlite3

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:  # noqa: ANN401
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners: closed, reopened with them


def plan_digest(grid: str, units: Sequence[Unit]) -> str:
    """Hash of a grid's resolved plan: its name and every unit id, in order."""
    blob = json.dumps({"grid": grid, "units": [u.id for u in units]})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def study_name(grid: str, units: Sequence[Unit]) -> str:
    return f"{STUDY_PREFIX}:{grid}:{plan_digest(grid, units)}"


def worker_id() -> str:
    return f"{platform.node()}:{os.getpid()}"


@contextlib.contextmanager
def storage_lock(url: str, name: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold a lock named ``name`` that every worker on the storage ``url`` sees.

    PostgreSQL: ``pg_advisory_lock`` on a dedicated connection; MySQL: ``GET_LOCK``;
    SQLite: ``flock`` on ``<database>.lock``. Other back ends get no lock (the duplicate
    check at pop time still keeps each unit to one run).
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(with_installed_driver(url))
    except Exception as exc:
        raise ConfigError(f"--storage {redact(url)}: {library_error(exc)}") from None
    backend = parsed.get_backend_name()
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            yield
            return
        with _file_lock(Path(database).with_name(Path(database).name + ".lock"), timeout_s):
            yield
        return
    if backend not in ("postgresql", "mysql"):
        log.warning("no lock for storage back end %r; relying on the duplicate check", backend)
        yield
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        engine = sqlalchemy.create_engine(parsed, poolclass=NullPool)
        conn = engine.connect()
    except Exception as exc:
        raise StorageError(f"storage {redact(url)}: {library_error(exc)}") from None
    try:
        if backend == "postgresql":
            conn.execute(sqlalchemy.text(f"SET lock_timeout = {int(timeout_s * 1000)}"))
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        else:
            got = conn.execute(
                sqlalchemy.text("SELECT GET_LOCK(:n, :t)"), {"n": name[:64], "t": int(timeout_s)}
            ).scalar()
            if got != 1:
                raise StorageError(
                    f"storage {redact(url)}: lock {name!r} not acquired within {timeout_s:.0f} s"
                )
        conn.commit()
        yield
    finally:
        with contextlib.suppress(Exception):
            if backend == "postgresql":
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            else:
                conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": name[:64]})
            conn.commit()
        conn.close()
        engine.dispose()


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no inter-process lock, the duplicate check remains
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"{path}: lock not acquired within {timeout_s:.0f} s"
                    raise StorageError(msg) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass
class WorkReport:
    """What one worker did: unit ids it ran, skipped (already in MLflow) or saw fail."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0


class UnitFailed(AsmaBenchError):
    """A unit failed in a way that retrying cannot fix (e.g. a diverging loss)."""


class GridQueue:
    """The queue of one grid plan in one Optuna study (see the module docstring)."""

    def __init__(self, study: optuna.Study, units: Sequence[Unit]):
        self.study = study
        self.units = {u.id: u for u in units}
        self._cells = sorted({u.cell.name for u in units})
        self._seeds = sorted({u.seed for u in units})

    @classmethod
    def open(
        cls,
        storage: optuna.storages.BaseStorage,
        name: str,
        units: Sequence[Unit],
    ) -> GridQueue:
        """Create (or load) the study ``name``; call under :func:`storage_lock`."""
        import optuna

        try:
            with quiet_optuna():
                study = optuna.create_study(
                    storage=storage, study_name=name, direction="maximize",
                    sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True,
                )  # fmt: skip
        except Exception as exc:
            raise StorageError(f"study {name!r}: {library_error(exc)}") from None
        return cls(study, units)

    # ------------------------------------------------------------------ state
    def unit_trials(self) -> dict[str, list[optuna.trial.FrozenTrial]]:
        """unit id → its trials, oldest first."""
        out: dict[str, list] = {}
        for t in self.study.get_trials(deepcopy=False):
            unit = t.user_attrs.get(ATTR_UNIT)
            if unit is not None:
                out.setdefault(unit, []).append(t)
        return out

    def enqueue(self, finished: Mapping[str, Any] | set[str] = frozenset()) -> list[str]:
        """Enqueue every unit without a live or complete trial and not in ``finished``.

        Idempotent; must run under :func:`storage_lock` when workers may start together.
        """
        from optuna.trial import TrialState

        live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
        owned = {
            uid
            for uid, trials in self.unit_trials().items()
            if any(t.state in live for t in trials)
        }
        added = []
        for uid, unit in self.units.items():
            if uid in owned or uid in finished:
                continue
            self.study.enqueue_trial(
                {"cell": unit.cell.name, "seed": unit.seed},
                user_attrs={ATTR_UNIT: uid, ATTR_CELL: unit.cell.name, ATTR_SEED: unit.seed,
                            ATTR_GRID: unit.grid},
            )  # fmt: skip
            added.append(uid)
        return added

    def counts(self) -> dict[str, int]:
        """Trials per state name (WAITING, RUNNING, COMPLETE, FAIL, PRUNED)."""
        out: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            out[t.state.name] = out.get(t.state.name, 0) + 1
        return out

    def _superseded(self, number: int, unit: str) -> bool:
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False):
            if t.number == number or t.user_attrs.get(ATTR_UNIT) != unit:
                continue
            if t.state == TrialState.COMPLETE:
                return True
            if t.state in (TrialState.WAITING, TrialState.RUNNING) and t.number < number:
                return True
        return False

    # ------------------------------------------------------------------- work
    def work(
        self,
        run: Callable[[Unit], tuple[float, dict[str, Any]]],
        *,
        wait_for_others: bool = True,
        poll_seconds: float = 2.0,
        on_unit: Callable[[Unit, str], None] | None = None,
    ) -> WorkReport:
        """Pop and run units until none is waiting.

        ``run(unit)`` returns the trial value and user attributes to record; it raises
        :class:`UnitFailed` for a failure that a retry would repeat. With
        ``wait_for_others`` the worker then waits while other workers still run units, so
        that it can take over the unit of a worker whose heartbeat stops.
        """
        import optuna
        from optuna.trial import TrialState

        report = WorkReport()
        me = worker_id()

        def objective(trial: optuna.Trial) -> float:
            uid = trial.user_attrs.get(ATTR_UNIT)
            if uid is None or uid not in self.units:
                # another worker popped the last waiting unit between our check and ask()
                trial.set_user_attr(ATTR_EMPTY, True)
                raise optuna.TrialPruned("no queued unit")
            unit = self.units[uid]
            trial.suggest_categorical("cell", self._cells)
            trial.suggest_categorical("seed", self._seeds)
            trial.set_user_attr(ATTR_WORKER, me)
            if self._superseded(trial.number, uid):
                trial.set_user_attr(ATTR_DUPLICATE, True)
                report.duplicates += 1
                raise optuna.TrialPruned(f"unit {uid} is owned by another trial")
            if on_unit:
                on_unit(unit, "start")
            try:
                value, attrs = run(unit)
            except UnitFailed as exc:
                trial.set_user_attr(ATTR_FAILURE, str(exc)[:1000])
                report.failed[uid] = str(exc)
                if on_unit:
                    on_unit(unit, "failed")
                raise
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            (report.skipped if attrs.get(ATTR_SKIPPED) else report.ran).append(uid)
            if on_unit:
                on_unit(unit, "done")
            return value

        while True:
            self.fail_stale()
            waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if waiting:
                with quiet_optuna():
                    self.study.optimize(objective, n_trials=1, catch=(UnitFailed,))
                continue
            if not wait_for_others:
                break
            if not self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                break
            time.sleep(poll_seconds)
        return report

    def fail_stale(self) -> None:
        """Fail trials whose worker stopped beating; the retry callback re-enqueues them."""
        from optuna.storages import fail_stale_trials

        with quiet_optuna():
            fail_stale_trials(self.study)

    def unfinished(self) -> dict[str, str]:
        """unit id → why it has no COMPLETE trial (for units of this plan)."""
        from optuna.trial import TrialState

        trials = self.unit_trials()
        out = {}
        for uid in self.units:
            ts = trials.get(uid, [])
            if any(t.state == TrialState.COMPLETE for t in ts):
                continue
            last = ts[-1] if ts else None
            if last is None:
                out[uid] = "never enqueued"
            else:
                failure = last.user_attrs.get(ATTR_FAILURE)
                out[uid] = str(failure or f"trial {last.number} {last.state.name}")
        return out


# --------------------------------------------------------------------------- grids
def run_grid_queued(
    grid: GridSpec, opts: RunOptions, units: list[Unit] | None = None
) -> GridOutcome:
    """:func:`~asma_bench.harness.runner.run_grid` through the shared queue at ``opts.storage``
    (``units``: the grid's plan, when the command has made it already)."""
    from tqdm.auto import tqdm

    assert opts.storage
    units = plan_units(grid, opts) if units is None else units
    out = ensure_writable(opts.out)
    settings = QueueSettings(
        heartbeat_interval=opts.heartbeat,
        max_retry=opts.max_retry,
        poll_seconds=min(2.0, opts.heartbeat),
    )
    uri = opts.tracking_uri or default_tracking_uri(out)
    if not opts.tracking_uri and not opts.storage.startswith("sqlite"):
        log.warning("shared storage but no --tracking-uri: results stay in %s on this machine", uri)
    name = study_name(grid.name, units)
    # schema creation (Optuna and MLflow), the parent run and enqueuing: one worker at a time
    with storage_lock(opts.storage, name):
        storage = open_storage(opts.storage, settings)
        queue = GridQueue.open(storage, name, units)
        tracker = Tracker(uri, experiment=opts.experiment, artifact_root=out / "artifacts")
        parent = open_grid_run(tracker, grid, opts, {"asma.study": name})
        finished = tracker.finished_units(grid.name)
        added = queue.enqueue(finished)
    log.info(
        "study %s: %d units enqueued, %d already finished",
        name,
        len(added),
        len({u.id for u in units} & set(finished)),
    )
    outcome = GridOutcome(grid.name, tracking_uri=uri)
    start = time.monotonic()
    bar = tqdm(
        total=len(units), desc=grid.name, unit="unit", disable=not opts.progress, dynamic_ncols=True
    )

    def progress(unit: Unit, event: str) -> None:
        bar.set_description(f"{grid.name} {unit.name}")
        if event != "start":
            bar.update(1)

    def stage_progress(stage: str, i: int, n: int) -> None:
        bar.set_postfix_str(f"{stage} {i}/{n}")

    def run(unit: Unit) -> tuple[float, dict[str, Any]]:
        done = tracker.finished_units(grid.name)
        if unit.id in done:  # finished elsewhere (e.g. by a single-machine run) after enqueuing
            return 0.0, {ATTR_SKIPPED: True, ATTR_RUN: done[unit.id]}
        try:
            result = run_unit(
                unit, tracker, parent, out, progress=stage_progress if opts.progress else None
            )
        except DivergenceError as exc:
            raise UnitFailed(str(exc)) from None
        except UnitHeld as exc:  # a process outside the queue trains it: try again later
            raise UnitFailed(str(exc)) from None
        value = result.metrics.get("val_top1", 0.0)
        return (float(value) if value == value else 0.0), {}

    report = queue.work(
        run, wait_for_others=not opts.worker, poll_seconds=settings.poll_seconds, on_unit=progress
    )
    bar.close()
    names = {u.id: u.name for u in units}
    outcome.ran = [names[u] for u in report.ran]
    outcome.skipped = [u.name for u in units if u.id in finished or u.id in report.skipped]
    outcome.failed = {names[u]: reason for u, reason in report.failed.items()}
    if not opts.worker:
        for uid, reason in queue.unfinished().items():
            if uid not in finished:
                outcome.failed.setdefault(names[uid], reason)
        if not outcome.failed:
            tracker.finish(parent)
    outcome.seconds = time.monotonic() - start
    return outcome


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's experimental/deprecation warnings about heartbeats and callbacks,
    and its per-trial INFO lines (the harness reports progress itself)."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
