"""A grid's results read back from the MLflow store (``mlflow.search_runs`` into pandas).

The store is the only results database: nothing is copied elsewhere. Only FINISHED unit runs
count as results; a unit whose every run FAILED (or was KILLED) is reported as failed with
its reason, never as a number.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.harness.tracking import (
    TAG_CELL,
    TAG_FAILURE,
    TAG_GRID,
    TAG_KIND,
    TAG_SEED,
    TAG_UNIT,
    TrackingError,
)
from asma_bench.protocols.metrics import Predictions

log = logging.getLogger(__name__)

EXPERIMENT = "asma-bench"
# params that legitimately differ between the seeds of one cell
PER_SEED_PARAMS = ("seed",)


def resolve_tracking_uri(store: str | None, runs_dir: Path | str = "runs") -> str:
    """``store`` if given, else the SQLite store the runner writes in ``runs_dir``.

    A SQLite path that does not exist is an error rather than a new, empty store.
    """
    uri = store or f"sqlite:///{(Path(runs_dir) / 'mlflow.db').resolve()}"
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            what = "--store" if store else "--runs"
            raise ConfigError(f"{what}: no MLflow store at {path} (run `asma-bench run` first)")
    return uri


@dataclass
class GridRuns:
    """The unit runs of one grid: every status, deduplicated per unit."""

    grid: str
    uri: str
    runs: pd.DataFrame  # one row per unit (its FINISHED run if any, else its latest run)
    cells: list[str]  # table order
    labels: dict[str, dict[str, str]]
    baseline: str | None = None
    table: str = ""
    metric: str = "test_top1"
    profile: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "FINISHED"]

    def per_seed(self, metric: str | None = None) -> pd.DataFrame:
        """cell, seed, value (NaN when the finished run lacks the metric), run_id."""
        metric = metric or self.metric
        col = f"metrics.{metric}"
        df = self.finished
        values = df[col] if col in df else pd.Series(np.nan, index=df.index)
        return pd.DataFrame(
            {"cell": df["cell"], "seed": df["seed"], "value": values, "run_id": df["run_id"]}
        ).reset_index(drop=True)

    def failures(self) -> pd.DataFrame:
        """Units without a FINISHED run: cell, seed, status, reason."""
        df = self.runs[self.runs["status"] != "FINISHED"]
        reason = df.get(f"tags.{TAG_FAILURE}", pd.Series("", index=df.index)).fillna("")
        return pd.DataFrame(
            {"cell": df["cell"], "seed": df["seed"], "status": df["status"], "reason": reason}
        ).reset_index(drop=True)

    def param(self, name: str, cells: Iterable[str] | None = None) -> list[str]:
        """Distinct values of a run parameter (over ``cells``, default all), in order seen."""
        col = f"params.{name}"
        if col not in self.runs:
            return []
        df = self.runs if cells is None else self.runs[self.runs["cell"].isin(list(cells))]
        return list(dict.fromkeys(v for v in df[col].dropna().astype(str)))

    def axes(self) -> list[str]:
        """Label axes of the grid's own cells (reference rows excluded), in order."""
        keys: dict[str, None] = {}
        for cell in self.cells:
            for k in self.labels.get(cell, {}):
                if k != "reference":
                    keys[k] = None
        return list(keys)


def load_grid_runs(
    uri: str,
    grid: str,
    spec: Any | None = None,
    baseline: str | None = None,
    where: Sequence[str] = (),
    experiment: str = EXPERIMENT,
) -> GridRuns:
    """Read the unit runs of ``grid`` from the store at ``uri``.

    ``spec`` (a :class:`~asma_bench.harness.grids.GridSpec`) gives cell order, labels,
    baseline and metric; without it they come from the runs' ``cell`` and ``label.*``
    params. ``where`` filters runs by parameter (``"pretrain.epochs=3"``); a cell whose
    seeds ran with different configurations is an error naming the differing parameters,
    since averaging them would mix, say, two profiles.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    if not grid or not all(c.isalnum() or c in "_-.+" for c in grid):
        raise ConfigError(f"--grid {grid!r}: grid names use letters, digits and _ - . + only")
    try:
        mlflow.set_tracking_uri(uri)
        exp = MlflowClient(uri).get_experiment_by_name(experiment)
    except Exception as exc:  # MLflow raises many types for an unreachable store
        raise TrackingError(f"tracking store {uri}: {str(exc).splitlines()[0]}") from None
    if exp is None:
        raise ConfigError(f"tracking store {uri} has no {experiment!r} experiment")
    df = mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string=f"tags.`{TAG_GRID}` = '{grid}' and tags.`{TAG_KIND}` = 'unit'",
        max_results=100000, output_format="pandas",
    )  # fmt: skip
    if df.empty:
        raise ConfigError(f"--grid {grid}: no runs of this grid in {uri}")
    parents = mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string=f"tags.`{TAG_GRID}` = '{grid}' and tags.`{TAG_KIND}` = 'grid'",
        output_format="pandas",
    )  # fmt: skip
    df = df.copy()
    df["cell"] = df[f"tags.{TAG_CELL}"].astype(str)
    df["seed"] = pd.to_numeric(df[f"tags.{TAG_SEED}"], errors="coerce").fillna(-1).astype(int)
    df = _filter(df, where)
    df = _one_run_per_unit(df)

    notes: list[str] = []
    if spec is not None:
        spec_cells = spec.all_cells()
        order = [c.name for c in spec_cells if c.name in set(df["cell"])]
        extra = sorted(set(df["cell"]) - {c.name for c in spec_cells})
        labels = {c.name: {k: str(v) for k, v in c.labels.items()} for c in spec_cells}
        if extra:
            notes.append(f"cells in the store but not in the grid definition: {', '.join(extra)}")
        base = baseline or spec.baseline
        table, metric = spec.table, spec.metric
    else:
        order, extra = [], sorted(set(df["cell"]))
        labels, base, table, metric = {}, baseline, "", "test_top1"
        if len(parents) and "params.table" in parents:
            table = str(parents["params.table"].iloc[0] or "")
    for cell in extra:  # MLflow keeps params unordered: axes in alphabetical order
        rows = df[df["cell"] == cell]
        labels[cell] = {
            c.removeprefix("params.label."): str(rows[c].dropna().iloc[0])
            for c in sorted(rows.columns)
            if c.startswith("params.label.") and rows[c].notna().any()
        }
    cells = order + extra
    if base is not None and base not in cells:
        raise ConfigError(
            f"--baseline {base!r} is not a cell of grid {grid!r} with runs "
            f"(cells: {', '.join(cells)})"
        )
    _check_consistent(df, grid)
    profile = ""
    if len(parents) and "tags.asma.profile" in parents:
        profile = (
            str(parents["tags.asma.profile"].dropna().iloc[0])
            if parents["tags.asma.profile"].notna().any()
            else ""
        )
    return GridRuns(
        grid, uri, df.reset_index(drop=True), cells, labels, base, table, metric, profile, notes
    )


def load_predictions(uri: str, run_id: str) -> dict[str, Predictions]:
    """The per-sample predictions a unit logged (``predictions.npz``), by evaluation name."""
    from mlflow.tracking import MlflowClient

    _quiet_downloads()
    client = MlflowClient(uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "predictions.npz", tmp)
        except Exception as exc:  # missing artifact or unreachable artifact store
            raise DataFormatError(
                f"run {run_id}/predictions.npz", str(exc).splitlines()[0]
            ) from None
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    names = sorted({k.rsplit(".", 1)[0] for k in arrays})
    out = {}
    for name in names:
        try:
            out[name] = Predictions(
                arrays[f"{name}.logits"], arrays[f"{name}.labels"], arrays[f"{name}.indices"]
            )
        except KeyError as exc:
            raise DataFormatError(
                f"run {run_id}/predictions.npz", f"entry {exc.args[0]!r} missing"
            ) from None
    return out


def load_artifact_json(uri: str, run_id: str, name: str) -> Any:
    """A JSON artifact of a run (e.g. ``config.json``)."""
    import json

    from mlflow.tracking import MlflowClient

    _quiet_downloads()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = MlflowClient(uri).download_artifacts(run_id, name, tmp)
            return json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"run {run_id}/{name}", f"invalid JSON: {exc.msg}", line=exc.lineno
            ) from None
        except Exception as exc:  # missing artifact or unreachable artifact store
            raise DataFormatError(f"run {run_id}/{name}", str(exc).splitlines()[0]) from None


def metric_histories(uri: str, run_ids: Sequence[str], keys: Sequence[str]) -> pd.DataFrame:
    """Per-step values of ``keys`` for ``run_ids``: run_id, key, step, value."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    rows = [
        {"run_id": run_id, "key": key, "step": m.step, "value": m.value}
        for run_id in run_ids
        for key in keys
        for m in client.get_metric_history(run_id, key)
    ]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])


def predictions_name(metric: str) -> str | None:
    """The predictions a top-1 metric was computed from (``theta_test_top1`` →
    ``theta_test``); None for metrics that are not a top-1 accuracy."""
    return metric.removesuffix("_top1") if metric.endswith("_top1") else None


def _quiet_downloads() -> None:
    # MLflow draws a progress bar per downloaded artifact; a report downloads dozens
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _filter(df: pd.DataFrame, where: Sequence[str]) -> pd.DataFrame:
    for item in where:
        if "=" not in item:
            raise ConfigError(f"--where {item!r} must look like param=value")
        key, value = (s.strip() for s in item.split("=", 1))
        col = f"params.{key}"
        if col not in df:
            raise ConfigError(f"--where {item!r}: the runs have no parameter {key!r}")
        df = df[df[col].astype(str) == value]
    if df.empty:
        raise ConfigError(f"--where {' '.join(where)}: no runs left")
    return df


def _one_run_per_unit(df: pd.DataFrame) -> pd.DataFrame:
    """The FINISHED run of each unit (latest if several), else its latest attempt."""
    unit = df.get(f"tags.{TAG_UNIT}", pd.Series(np.nan, index=df.index))
    df = df.assign(_unit=unit.fillna(df["run_id"]), _done=(df["status"] == "FINISHED"))
    df = df.sort_values(["_done", "start_time"], ascending=[False, False])
    return df.drop_duplicates("_unit").drop(columns=["_done"]).sort_values(["cell", "seed"])


def _check_consistent(df: pd.DataFrame, grid: str) -> None:
    params = [
        c
        for c in df.columns
        if c.startswith("params.") and c.removeprefix("params.") not in PER_SEED_PARAMS
    ]
    for cell, rows in df[df["status"] == "FINISHED"].groupby("cell"):
        differing = [
            c.removeprefix("params.")
            for c in params
            if rows[c].astype(str).nunique(dropna=False) > 1
        ]
        if differing:
            raise ConfigError(
                f"grid {grid!r} cell {cell!r}: finished runs differ in "
                f"{', '.join(differing[:4])}; select one configuration with --where "
                f"{differing[0]}=VALUE or use a separate --runs folder per profile"
            )
