"""MLflow tracking: a parent run per grid, one nested run per (cell, seed).

Uses ``MlflowClient`` explicitly (no global active-run state), so several workers can log
to one store. A unit is identified by the ``asma.unit`` tag (hash of its resolved config);
only runs with status FINISHED count as done, so a killed run never counts in reports.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from asma_bench.errors import AsmaBenchError, ConfigError, library_error
from asma_bench.fileio import pid_alive, sweep_stale_beside

log = logging.getLogger(__name__)

TAG_GRID, TAG_UNIT, TAG_CELL, TAG_SEED = "asma.grid", "asma.unit", "asma.cell", "asma.seed"
TAG_KIND, TAG_FAILURE, TAG_PARENT = "asma.kind", "asma.failure", "mlflow.parentRunId"
# on a grid's parent run: every seed requested so far (a JSON list) and the latest profile
TAG_SEEDS, TAG_PROFILE = "asma.seeds", "asma.profile"
TAG_LEFT_OUT = "asma.left_out"  # on a grid's run: JSON {cell: why planning left it out}
TAG_CHECKPOINT = "asma.checkpoint"  # asma.checkpoint.<kind> = the file a unit used
# on a RUNNING unit run: the process training it, and when it last said it was alive
TAG_HOST, TAG_PID, TAG_HEARTBEAT = "asma.host", "asma.pid", "asma.heartbeat"
HEARTBEAT_SECONDS = 30.0
#: a unit run whose heartbeat is older than this, on another machine, is a dead process's
STALE_AFTER = 3 * HEARTBEAT_SECONDS
# on an experiment whose artifacts live in ``artifacts/`` beside its SQLite store (the
# runner's default layout): the two travel together when the runs folder is moved
TAG_ARTIFACTS, BESIDE_STORE, ARTIFACTS = "asma.artifacts", "beside-store", "artifacts"
# tables every MLflow SQL store has; a SQLite file without them is another program's
MLFLOW_TABLES = ("alembic_version", "experiments", "runs")
MAX_PARAM_LEN = 6000


def is_live(run: Any, now: float | None = None) -> bool:  # noqa: ANN401 - an MLflow Run
    """Whether a RUNNING unit run is still being trained: on this machine, its process
    exists; on another, its heartbeat is younger than STALE_AFTER. Runs of versions before
    the heartbeat count as a dead process's, as they always did."""
    tags = run.data.tags
    beat, pid = tags.get(TAG_HEARTBEAT), tags.get(TAG_PID, "")
    if beat is None:
        return False
    if tags.get(TAG_HOST) == platform.node() and pid.isdigit():
        return int(pid) != os.getpid() and pid_alive(int(pid))
    try:
        return (time.time() if now is None else now) - float(beat) < STALE_AFTER
    except ValueError:
        return False


def filter_value(value: str) -> str:
    """``value`` quoted for an MLflow search filter. MLflow's filter language has no
    escape for a quote, so a name holding one (or a backslash) is refused in one line
    rather than becoming a malformed filter (names are checked earlier; this is the last
    guard)."""
    if "'" in value or '"' in value or "\\" in value:
        raise ConfigError(f"name {value!r}: quotes and backslashes are not allowed")
    return f"'{value}'"


def grid_filter(grid: str, kind: str) -> str:
    """The MLflow filter of a grid's runs of one kind (``grid``: its parent, ``unit``)."""
    return f"tags.`{TAG_GRID}` = {filter_value(grid)} and tags.`{TAG_KIND}` = '{kind}'"


class TrackingError(AsmaBenchError):
    """The tracking store cannot be reached or written."""


def _store_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an MLflow/SQLAlchemy failure of a store write or read (a full disk, a lost
    server) into one :class:`TrackingError` line naming the store."""

    @functools.wraps(method)
    def wrapper(self: Tracker, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        try:
            return method(self, *args, **kwargs)
        except (AsmaBenchError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types
            raise TrackingError(f"tracking store {self.uri}: {_store_reason(exc)}") from None

    return wrapper


def _store_reason(exc: BaseException) -> str:
    """The useful line of a store failure: SQLite's own words where there are some."""
    text = str(exc)
    for known in ("database or disk is full", "disk I/O error", "database is locked",
                  "No space left on device", "readonly database"):  # fmt: skip
        if known in text:
            return known
    return library_error(exc)


def with_installed_driver(url: str) -> str:
    """``postgresql://…`` with the PostgreSQL driver that is installed.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; the package declares the
    psycopg2 wheel, so a bare URL gets whichever of the two is importable. A URL that names
    its driver (``postgresql+psycopg2://``) is left alone.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    raise ConfigError(
        f"{scheme}:// URL: no PostgreSQL driver installed (pip install psycopg2-binary)"
    )


def default_tracking_uri(out: Path) -> str:
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


def git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def source_name(argv: list[str] | None = None) -> str:
    """What made the run, for ``mlflow.source.name``: ``asma-bench run`` for the command
    line (its first argument that is no flag), else the script's file name."""
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]) if argv else Path("python")
    if program.name.startswith("asma-bench") or program.parent.name == "asma_bench":
        command = next((a for a in argv[1:] if not a.startswith("-")), None)
        return f"asma-bench {command}" if command else "asma-bench"
    return program.name or "python"


def environment_tags() -> dict[str, str]:
    """The code and machine a run ran on: ``asma.*`` and MLflow's own ``mlflow.source.*``
    (the command, ``LOCAL``, and the git commit where the package is a git checkout); the
    machine's record (:func:`asma_bench.environment.environment`) as ``asma.<key>``."""
    from asma_bench.environment import environment

    commit = git_commit()
    return {
        "asma.git_commit": commit,
        **{f"asma.{k}": str(v) for k, v in environment().items()},
        "asma.host": platform.node(),
        "mlflow.source.name": source_name(),
        "mlflow.source.type": "LOCAL",
        **({"mlflow.source.git.commit": commit} if commit != "unknown" else {}),
    }


class Tracker:
    """Thin layer over an MLflow tracking store for grids of units."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None):
        import mlflow
        from mlflow.tracking import MlflowClient

        tracking_uri = with_installed_driver(tracking_uri)
        self.uri = tracking_uri
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        quiet_artifact_downloads()
        # mlflow sets its own loggers to INFO on import; keep them quiet unless debugging
        quiet = logging.getLogger().getEffectiveLevel() > logging.DEBUG
        for name in ("mlflow", "alembic", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.DEBUG)
        # MLflow logs every failed statement with its SQL before raising; the error it
        # raises becomes one line here, so its log stays quiet unless debugging
        logging.getLogger("mlflow.store.db.utils").setLevel(
            logging.CRITICAL if quiet else logging.DEBUG
        )
        _probe_server(tracking_uri)
        db = sqlite_path(tracking_uri)
        if db is not None:
            refuse_foreign_sqlite(db)  # another program's database is never migrated
            reroot_artifacts(db)  # a runs folder that was moved or copied
        try:
            _create_sqlite_store_atomically(tracking_uri)
            mlflow.set_tracking_uri(tracking_uri)
            self.client = MlflowClient(tracking_uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                location = artifact_root.resolve().as_uri() if artifact_root else None
                beside = (
                    db is not None
                    and artifact_root is not None
                    and artifact_root.resolve() == (db.resolve().parent / ARTIFACTS)
                )
                self.experiment_id = self.client.create_experiment(
                    experiment,
                    artifact_location=location,
                    tags={TAG_ARTIFACTS: BESIDE_STORE} if beside else None,
                )
            else:
                self.experiment_id = exp.experiment_id
        except Exception as exc:  # MLflow raises many types for an unreachable store
            raise TrackingError(f"tracking store {tracking_uri}: {library_error(exc)}") from None

    # ------------------------------------------------------------------ runs
    @_store_errors
    def parent_run(self, grid: str, tags: Mapping[str, str]) -> str:
        """The grid's parent run (reused across reruns of the same grid)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=grid_filter(grid, "grid"),
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        if runs:
            run_id = runs[0].info.run_id
            if runs[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id, run_name=grid,
            tags={TAG_GRID: grid, TAG_KIND: "grid", **tags},
        )  # fmt: skip
        return run.info.run_id

    @_store_errors
    def unit_runs(self, grid: str) -> list[Any]:
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=grid_filter(grid, "unit"),
            max_results=50000,
        )

    @_store_errors
    def finished_units(self, grid: str) -> dict[str, str]:
        """unit id → run id of FINISHED unit runs of ``grid``."""
        return {
            r.data.tags[TAG_UNIT]: r.info.run_id
            for r in self.unit_runs(grid)
            if r.info.status == "FINISHED" and TAG_UNIT in r.data.tags
        }

    @_store_errors
    def close_stale(self, grid: str, unit: str) -> None:
        """Mark the unfinished runs of a unit whose process is gone KILLED (a crashed or
        killed worker); a run another live process is training (see :func:`is_live`) is
        left alone."""
        now = time.time()
        for r in self.unit_runs(grid):
            if r.data.tags.get(TAG_UNIT) == unit and r.info.status == "RUNNING":
                if not is_live(r, now):
                    self.client.set_terminated(r.info.run_id, status="KILLED")

    @_store_errors
    def rival(self, grid: str, unit: str, mine: str) -> str | None:
        """Who else is training ``unit`` right now, in words, when their run started before
        run ``mine`` (the earlier run keeps the unit: two processes that started it at the
        same moment on two machines agree on which one goes on); None if nobody."""
        runs = [r for r in self.unit_runs(grid)
                if r.data.tags.get(TAG_UNIT) == unit and r.info.status == "RUNNING"]  # fmt: skip
        order = {r.info.run_id: (r.info.start_time, r.info.run_id) for r in runs}
        now = time.time()
        for r in sorted(runs, key=lambda r: order[r.info.run_id]):
            if r.info.run_id == mine:
                return None
            if is_live(r, now):
                tags = r.data.tags
                return f"process {tags.get(TAG_PID, '?')} on {tags.get(TAG_HOST, '?')}"
        return None

    def heartbeat(self, run_id: str) -> None:
        """Say that the process training ``run_id`` is alive (best effort: a missed beat
        only lets another machine take the unit over sooner)."""
        try:
            self.client.set_tag(run_id, TAG_HEARTBEAT, f"{time.time():.0f}")
        except Exception as exc:  # noqa: BLE001 - never stops the unit
            log.debug("heartbeat of %s failed: %s", run_id, exc)

    @_store_errors
    def start_unit(self, parent_id: str, grid: str, name: str, tags: Mapping[str, Any]) -> str:
        run = self.client.create_run(
            self.experiment_id, run_name=name,
            tags={TAG_PARENT: parent_id, TAG_GRID: grid, TAG_KIND: "unit",
                  **{k: str(v) for k, v in tags.items()}},
        )  # fmt: skip
        return run.info.run_id

    @_store_errors
    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    # --------------------------------------------------------------- logging
    @_store_errors
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    @_store_errors
    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(_metric_key(k), float(v), now, step)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i : i + 500])

    @_store_errors
    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k, str(v)[:5000])

    @_store_errors
    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    @_store_errors
    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        self.client.log_text(run_id, json.dumps(data, indent=1, default=str), name)


def _probe_server(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, in one line, when a tracking server cannot be reached at all.

    MLflow's client retries a refused connection with back-off for minutes; a quick
    request to the server's ``/health`` endpoint first tells a typo or a server that is
    down apart from a transient hiccup during a long run (where the retries help).
    """
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # the server answered; let MLflow deal with what it said
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"tracking server {uri} is unreachable: {reason}") from None


#: MLflow's switch for its "Downloading artifacts" progress bar (read at each download)
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def quiet_artifact_downloads() -> None:
    """No MLflow progress bar per downloaded artifact: a report reads hundreds of them, and
    ``show`` / ``rerun`` one or two whose bars would only clutter a log (stdout or stderr
    not a terminal) or the lines printed on one. Called before every download; a value the
    user set in the environment (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true``) is kept."""
    os.environ.setdefault(PROGRESS_BAR_ENV, "false")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (without URI parameters), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").partition("?")[0])


def sqlite_tables(path: Path) -> set[str]:
    """The tables of the SQLite file ``path``, opened read-only; ConfigError naming the
    file when it is no SQLite database."""
    import sqlite3

    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} is not an MLflow tracking store ({exc})") from None


def refuse_foreign_sqlite(path: Path) -> None:
    """Refuse, untouched, a non-empty file at the store's place that is not an MLflow
    store: MLflow would add its forty tables to another program's database (or fail on a
    file that is no database at all). A missing or empty file becomes a new store."""
    try:
        if not path.exists() or (path.is_file() and path.stat().st_size == 0):
            return
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise ConfigError(f"{path} is not a file, so it cannot be an MLflow tracking store")
    names = sqlite_tables(path)
    lacking = [t for t in MLFLOW_TABLES if t not in names]
    if lacking:
        theirs = ", ".join(sorted(names)[:3]) + (" …" if len(names) > 3 else "")
        raise ConfigError(
            f"{path} is a SQLite database of another program (tables {theirs or 'none'}), not "
            "an MLflow tracking store; choose another --runs or --tracking-uri"
        )


def reroot_artifacts(db: Path) -> None:
    """Point the artifacts of a store that was moved or copied with its runs folder at the
    ``artifacts/`` beside it.

    MLflow records absolute artifact locations. The runner keeps a store's artifacts in
    ``artifacts/`` beside its database (experiments tagged ``asma.artifacts``; stores from
    before the tag are recognised by their runs' folders being there), so when the two no
    longer sit where the store says, the folder has travelled: its experiments and runs are
    re-rooted in one transaction. Without this a moved folder's ``show`` fails on a missing
    ``config.json`` and a copy's ``rerun`` writes into the original's ``artifacts/``.
    """
    import sqlite3
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    if not db.is_file() or db.stat().st_size == 0:
        return
    here = db.resolve().parent / ARTIFACTS
    try:
        con = sqlite3.connect(str(db), timeout=30)
    except sqlite3.Error:
        return
    try:
        with con:
            rows = con.execute(
                "SELECT experiment_id, artifact_location FROM experiments "
                "WHERE artifact_location LIKE 'file://%'"
            ).fetchall()
            for exp_id, location in rows:
                old = Path(url2pathname(urlparse(location).path))
                if old == here or old.name != ARTIFACTS:
                    continue
                tagged = con.execute(
                    "SELECT 1 FROM experiment_tags WHERE experiment_id = ? AND key = ? "
                    "AND value = ?", (exp_id, TAG_ARTIFACTS, BESIDE_STORE),
                ).fetchone()  # fmt: skip
                if not tagged and not _runs_beside(con, exp_id, here):
                    continue
                new = here.as_uri()
                con.execute(
                    "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                    "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                    (new, len(location) + 1, exp_id, len(location), location),
                )
                con.execute(
                    "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                    (new, exp_id),
                )
                log.info("store %s moved: artifacts re-rooted from %s to %s", db, old, here)
    except sqlite3.Error as exc:  # a read-only copy: reading what is beside it still works
        log.debug("could not re-root the artifacts of %s: %s", db, exc)
    finally:
        con.close()


def _runs_beside(con: Any, exp_id: object, here: Path) -> bool:  # noqa: ANN401
    """Whether the runs of an (untagged, older) experiment have their artifact folders in
    ``here``: then the store and its artifacts travelled together."""
    runs = con.execute(
        "SELECT run_uuid FROM runs WHERE experiment_id = ? LIMIT 20", (exp_id,)
    ).fetchall()
    return any((here / r[0]).is_dir() for r in runs)


def _create_sqlite_store_atomically(uri: str) -> None:
    """Create a new SQLite store under a temporary name and rename it into place.

    MLflow builds its schema through a series of migrations; a process killed in the middle
    leaves a database that every later run refuses. Building it aside and renaming makes the
    store either absent or complete. Existing stores and other backends are left alone.
    """
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri.removeprefix("sqlite:///"))
    if path.exists():
        return
    from mlflow.tracking import MlflowClient

    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_beside(path)  # a store creation killed earlier left its temporary file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        MlflowClient(f"sqlite:///{tmp}").search_experiments()  # runs the migrations
        _dispose_engines()
        if not path.exists():  # another worker may have created it meanwhile
            os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(f"{tmp.name}-journal")):
            leftover.unlink(missing_ok=True)


def _dispose_engines() -> None:
    """Close MLflow's cached SQLAlchemy engines so the temporary file can be renamed."""
    try:
        from mlflow.store.db import utils as db_utils

        for engine in getattr(db_utils, "_engine_cache", {}).values():  # pragma: no cover
            engine.dispose()
    except Exception:  # noqa: BLE001 - best effort; sqlite files rename fine on POSIX anyway
        pass


def _param_value(v: Any) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= MAX_PARAM_LEN else s[: MAX_PARAM_LEN - 3] + "..."


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?inf|nan")


def parse_param(text: Any) -> Any:  # noqa: ANN401 - the value a parameter stood for
    """The value an MLflow parameter's text stands for, the inverse of :func:`_param_value`:
    ``"True"``/``"False"`` → bool, ``"None"`` → None, ``"3"`` → int, ``"0.25"`` → float,
    JSON lists and objects → list/dict; other text (and text cut at ``MAX_PARAM_LEN``)
    stays text, a missing value (NaN) is None. MLflow keeps every parameter as text, so a
    string setting that reads as one of these comes back as it: the run's ``config.json``
    is the exact record (see :func:`asma_bench.reports.results.unit_table`)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if not isinstance(text, str):
        return text
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text[:1] in "[{" and not text.endswith("..."):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


#: the shortest run-id prefix accepted for a run (MLflow's run ids are 32 hex digits)
MIN_RUN_PREFIX = 8
_HEX = re.compile(r"[0-9a-f]+")


def resolve_run_id(client: Any, run_id: str, uri: str) -> str:  # noqa: ANN401 - MlflowClient
    """The full id of the run ``run_id`` names in the store at ``uri``: the id itself, or
    the one active run whose id starts with it (at least :data:`MIN_RUN_PREFIX` hex
    digits, as ``results`` prints them cut). One line naming the store when no run has it
    (:class:`ConfigError`), or how many runs share the prefix when it is ambiguous."""
    text = run_id.strip().lower()
    try:
        return client.get_run(text).info.run_id
    except Exception:  # noqa: BLE001 - MLflow raises several types for an unknown id
        pass
    unknown = ConfigError(f"run {run_id!r} is not in the store {uri}")
    if len(text) < MIN_RUN_PREFIX or not _HEX.fullmatch(text):
        raise unknown from None
    found = _ids_with_prefix(client, text)
    if not found:
        raise unknown from None
    if len(found) > 1:
        raise ConfigError(
            f"run {run_id!r}: {len(found)} runs in the store {uri} have ids starting with "
            "it; give more of the id"
        )
    return found[0]


def _ids_with_prefix(client: Any, prefix: str) -> list[str]:  # noqa: ANN401 - MlflowClient
    """Ids of the active runs starting with ``prefix``, over every experiment of the store."""
    found: list[str] = []
    for exp in client.search_experiments():
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            found += [r.info.run_id for r in page if r.info.run_id.startswith(prefix)]
            token = page.token
            if not token:
                break
    return sorted(found)


def _metric_key(k: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in k)
