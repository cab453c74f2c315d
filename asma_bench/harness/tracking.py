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
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from asma_bench.errors import AsmaBenchError, ConfigError, library_error
from asma_bench.fileio import sweep_stale_beside

log = logging.getLogger(__name__)

TAG_GRID, TAG_UNIT, TAG_CELL, TAG_SEED = "asma.grid", "asma.unit", "asma.cell", "asma.seed"
TAG_KIND, TAG_FAILURE, TAG_PARENT = "asma.kind", "asma.failure", "mlflow.parentRunId"
# on a grid's parent run: every seed requested so far (a JSON list) and the latest profile
TAG_SEEDS, TAG_PROFILE = "asma.seeds", "asma.profile"
TAG_CHECKPOINT = "asma.checkpoint"  # asma.checkpoint.<kind> = the file a unit used
MAX_PARAM_LEN = 6000


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


def environment_tags() -> dict[str, str]:
    import numpy
    import torch

    return {
        "asma.git_commit": git_commit(),
        "asma.python": platform.python_version(),
        "asma.torch": torch.__version__,
        "asma.numpy": numpy.__version__,
        "asma.host": platform.node(),
    }


class Tracker:
    """Thin layer over an MLflow tracking store for grids of units."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None):
        import mlflow
        from mlflow.tracking import MlflowClient

        tracking_uri = with_installed_driver(tracking_uri)
        self.uri = tracking_uri
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
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
        try:
            _create_sqlite_store_atomically(tracking_uri)
            mlflow.set_tracking_uri(tracking_uri)
            self.client = MlflowClient(tracking_uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                location = artifact_root.resolve().as_uri() if artifact_root else None
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=location
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
            filter_string=f"tags.`{TAG_GRID}` = '{grid}' and tags.`{TAG_KIND}` = 'grid'",
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
            filter_string=f"tags.`{TAG_GRID}` = '{grid}' and tags.`{TAG_KIND}` = 'unit'",
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
        """Mark earlier unfinished runs of a unit KILLED (a crashed or killed worker)."""
        for r in self.unit_runs(grid):
            if r.data.tags.get(TAG_UNIT) == unit and r.info.status == "RUNNING":
                self.client.set_terminated(r.info.run_id, status="KILLED")

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
        tmp.unlink(missing_ok=True)


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


def _metric_key(k: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in k)
