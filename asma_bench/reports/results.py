"""A grid's results read back from the MLflow store (``mlflow.search_runs`` into pandas).

The store is the only results database: nothing is copied elsewhere. Only FINISHED unit runs
count as results; a unit whose every run FAILED (or was KILLED) is reported as failed with
its reason, never as a number.

MLflow keeps every parameter as text (``True``, ``None``, ``[0.0001, 0.01]``), so the
``params.*`` columns of :func:`load_grid_runs` are text, compared as text (``--where``, the
consistency check). The one-row-per-unit table of ``results`` and
:func:`asma_bench.api.load_results` (:func:`unit_table`) takes each unit's settings with
their real types from the run's ``config.json`` artifact, flattened to dotted names, and
parses the text back (:func:`~asma_bench.harness.tracking.parse_param`) only for a run
without one (a unit that failed before logging it).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asma_bench.config import flatten
from asma_bench.errors import AsmaBenchError, ConfigError, DataFormatError, library_error
from asma_bench.harness.tracking import (
    MLFLOW_TABLES,
    TAG_CELL,
    TAG_FAILURE,
    TAG_GRID,
    TAG_KIND,
    TAG_LEFT_OUT,
    TAG_PROFILE,
    TAG_SEED,
    TAG_SEEDS,
    TAG_UNIT,
    TrackingError,
    _probe_server,
    grid_filter,
    parse_param,
    quiet_artifact_downloads,
    reroot_artifacts,
    sqlite_path,
    sqlite_tables,
)
from asma_bench.training.metrics import Predictions, per_sample_scores

log = logging.getLogger(__name__)

EXPERIMENT = "asma-bench"
# params that legitimately differ between the seeds of one cell
PER_SEED_PARAMS = ("seed",)
# what names a unit's dataset: runs of one cell may differ in these only between datasets
_DATA_FIELDS = ("source", "preset", "synth_seed", "split", "layout", "fingerprint")
#: what names a run's dataset (see :func:`dataset_key`): not a setting of the experiment
DATASET_PARAMS = tuple(f"{p}{f}" for p in ("data.", "transfer.target.") for f in _DATA_FIELDS)
# where the runner records the seeds a grid was asked for, on the grid's parent run
SEEDS_PARAM = "seeds"  # older runners logged the requested seeds as a parameter
MAX_LISTED = 8  # cells named in a one-line message before "… and N more"


class NoResultsError(AsmaBenchError):
    """The store has runs of the grid, but not one of them FINISHED: nothing to report."""

    exit_code = 1


class NoRunsError(ConfigError):
    """The store has no run of the grid at all (a suite's report skips such a grid)."""


def resolve_tracking_uri(store: str | None, runs_dir: Path | str = "runs") -> str:
    """``store`` if given, else the SQLite store the runner writes in ``runs_dir``.

    A SQLite path that does not exist, or is not an MLflow store, is an error rather than a
    new, empty store (see :func:`check_sqlite_store`).
    """
    uri = store or f"sqlite:///{(Path(runs_dir) / 'mlflow.db').resolve()}"
    check_sqlite_store(uri, "--store" if store else "--runs")
    return uri


def check_sqlite_store(uri: str, what: str = "tracking store") -> None:
    """Refuse a SQLite URI whose file is missing or holds no MLflow tables.

    MLflow creates a missing file and migrates an empty one (or one of another program,
    e.g. an Optuna study) into a tracking store on first contact; a report only reads, so
    the file is inspected read-only (``mode=ro``) before MLflow opens it. Other URIs pass.
    """
    if not uri.startswith("sqlite:///"):
        return
    path = sqlite_path(uri)
    if not path.is_file():
        raise ConfigError(f"{what}: no MLflow store at {path} (run `asma-bench run` first)")
    try:
        names = sqlite_tables(path)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    lacking = [t for t in MLFLOW_TABLES if t not in names]
    if lacking:
        what_is = "an empty SQLite file" if not names else f"no table {', '.join(lacking)}"
        raise ConfigError(f"{what}: {path} is not an MLflow tracking store ({what_is})")
    reroot_artifacts(path)  # a runs folder that was moved or copied reads its own artifacts
    quiet_artifact_downloads()


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
    # completeness: the seeds every cell should have, where they come from, and the
    # (cell -> seeds) units with no run at all in the store (failed runs are in ``runs``)
    expected_seeds: list[int] = field(default_factory=list)
    seeds_source: str = ""
    missing: dict[str, list[int]] = field(default_factory=dict)
    # cells planning left out (another cell's experiment on this dataset) → why
    left_out: dict[str, str] = field(default_factory=dict)

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

    @property
    def datasets(self) -> list[str]:
        """The datasets the grid's finished runs were made on (see :func:`dataset_key`)."""
        if "dataset" not in self.runs:
            return []
        return sorted(set(self.finished["dataset"]))

    def for_dataset(self, dataset: str) -> GridRuns:
        """The runs on one dataset, with that dataset's missing units.

        The grid's parent run records the seeds requested over all its datasets; a seed
        no unit of this dataset has any run for (finished, failed or killed) was not
        requested for it, so this dataset expects the others only."""
        df = self.runs[self.runs["dataset"] == dataset].reset_index(drop=True)
        expected = [s for s in self.expected_seeds if (df["seed"] == s).any()]
        have = set(zip(df["cell"], df["seed"], strict=True))
        missing = {
            c: miss for c in self.cells if c not in self.left_out
            if (miss := [s for s in expected if (c, s) not in have])
        }  # fmt: skip
        sub = replace(self, runs=df, missing=missing, notes=[], expected_seeds=expected)
        sub.notes = [n for n in self.notes if not n.startswith("warning: ")]
        sub.notes[:0] = completeness_notes(sub, [f"data.source={dataset}"])
        return sub

    def unfinished_cells(self) -> list[str]:
        """Cells of the table without any FINISHED run (no run at all, or all failed);
        cells planning left out are not among them (a note says why they are empty)."""
        done = set(self.finished["cell"])
        return [c for c in self.cells if c not in done and c not in self.left_out]

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

    Every cell of ``spec`` is a row even without runs, and :func:`completeness_notes` name
    the cells without a finished run and the (cell, seed) units missing against the seeds
    requested on the grid's parent run (or, where unrecorded, every seed seen). A store
    that is not an MLflow store, a server that does not answer, or a grid none of whose
    units finished (:class:`NoResultsError`) are one-line errors.
    """
    if not grid or not all(c.isalnum() or c in "_-.+" for c in grid):
        raise ConfigError(f"--grid {grid!r}: grid names use letters, digits and _ - . + only")
    check_sqlite_store(uri)
    _probe_server(uri)  # a refused connection fails now, not after minutes of retries
    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        mlflow.set_tracking_uri(uri)
        exp = MlflowClient(uri).get_experiment_by_name(experiment)
        if exp is None:
            raise ConfigError(
                f"tracking store {uri} has no {experiment!r} experiment "
                f"(no `asma-bench run` has logged to it)"
            )
        df = mlflow.search_runs(
            experiment_ids=[exp.experiment_id],
            filter_string=grid_filter(grid, "unit"),
            max_results=100000, output_format="pandas",
        )  # fmt: skip
        parents = mlflow.search_runs(
            experiment_ids=[exp.experiment_id],
            filter_string=f"tags.`{TAG_KIND}` = 'grid'",
            output_format="pandas",
        )  # fmt: skip
    except AsmaBenchError:
        raise
    except Exception as exc:  # MLflow raises many types for an unreachable store
        raise TrackingError(f"tracking store {uri}: {library_error(exc)}") from None
    grid_col = f"tags.{TAG_GRID}"
    others = sorted(set(parents[grid_col].dropna().astype(str))) if grid_col in parents else []
    parents = parents[parents[grid_col] == grid] if grid_col in parents else parents.iloc[:0]
    if df.empty:
        there = f"grids there: {', '.join(others)}" if others else "it has no grid runs"
        raise NoRunsError(f"--grid {grid}: no runs of this grid in {uri} ({there})")
    df = df.copy()
    df["cell"] = df[f"tags.{TAG_CELL}"].astype(str)
    df["seed"] = pd.to_numeric(df[f"tags.{TAG_SEED}"], errors="coerce").fillna(-1).astype(int)
    df = _filter(df, where)
    df = _one_run_per_unit(df)
    df["dataset"] = dataset_key(df)
    if not (df["status"] == "FINISHED").any():
        raise NoResultsError(_no_results_message(grid, uri, df))

    notes: list[str] = []
    if spec is not None:
        spec_cells = spec.all_cells()
        # every cell of the definition is a row, with or without runs: none silently vanishes
        order = [c.name for c in spec_cells]
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
    if spec is not None:
        df, older = _latest_references(df, spec)
        if older:
            notes.append(
                f"reference rows ({', '.join(older)}): only the runs set up as the latest "
                f"was (like {spec.reference_model}); earlier runs set up otherwise are left "
                "out (before this version reference rows were set up like the first cell)"
            )
    _check_consistent(df, grid)
    profile = ""
    if len(parents) and f"tags.{TAG_PROFILE}" in parents:
        profile = (
            str(parents[f"tags.{TAG_PROFILE}"].dropna().iloc[0])
            if parents[f"tags.{TAG_PROFILE}"].notna().any()
            else ""
        )
    requested = requested_seeds(parents)
    if requested:
        expected, source = requested, "requested on the grid's parent run"
    else:
        expected = sorted(s for s in set(df["seed"]) if s >= 0)
        source = "seen in the store; the requested seeds were not recorded"
    have = set(zip(df["cell"], df["seed"], df["dataset"], strict=True))
    datasets = list(dict.fromkeys(df["dataset"]))
    left_out = {c: why for c, why in _left_out(parents).items() if c not in set(df["cell"])}
    if left_out:
        notes.append(
            "not run (planning left them out: on this dataset each would be another cell's "
            "experiment under its name): "
            + "; ".join(f"{c} {why}" for c, why in left_out.items())
            + "."
        )
    missing = {
        c: miss for c in cells if c not in left_out
        if (miss := [s for s in expected if any((c, s, d) not in have for d in datasets)])
    }  # fmt: skip
    runs = GridRuns(
        grid, uri, df.reset_index(drop=True), cells, labels, base, table, metric, profile, notes,
        expected, source, missing, left_out,
    )  # fmt: skip
    if base is not None and base in runs.unfinished_cells():
        if baseline is not None:
            raise ConfigError(f"--baseline {base!r}: no finished run of this cell in grid {grid!r}")
        runs.notes.append(
            f"warning: baseline {base} has no finished run: no Δ or significance computed "
            f"(choose another with --baseline)"
        )
        runs.baseline = None
    runs.notes[:0] = completeness_notes(runs, where)
    return runs


def _left_out(parents: pd.DataFrame) -> dict[str, str]:
    """Cells the grid's planning left out (``asma.left_out`` on its grid run), with why."""
    col = f"tags.{TAG_LEFT_OUT}"
    found: dict[str, str] = {}
    if col in parents:
        for text in parents[col].dropna().astype(str):
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.update({str(k): str(v) for k, v in value.items()})
    return found


def requested_seeds(parents: pd.DataFrame) -> list[int]:
    """Seeds the grid was asked for, from its parent run(s): the ``seeds`` param of older
    runners and the ``asma.seeds`` tag of newer ones (both JSON lists, e.g. "[0, 1, 2]");
    their union, or [] when neither is recorded or readable."""
    found: set[int] = set()
    for col in (f"params.{SEEDS_PARAM}", f"tags.{TAG_SEEDS}"):
        if col not in parents:
            continue
        for text in parents[col].dropna().astype(str):
            found |= _parse_seeds(text)
    return sorted(found)


def _parse_seeds(text: str) -> set[int]:
    try:
        value = json.loads(text)
    except ValueError:
        value = [s for s in text.strip().strip("[]()").split(",") if s.strip()]
    items = value if isinstance(value, list) else [value]
    try:
        return {int(str(v).strip()) for v in items}
    except ValueError:
        log.warning("grid seeds %r are not a list of integers; ignored", text)
        return set()


def completeness_notes(runs: GridRuns, where: Sequence[str] = ()) -> list[str]:
    """Warnings naming the cells without a finished run and the (cell, seed) units that have
    no run at all, against the seeds the grid expects; [] for a complete grid."""
    if not runs.expected_seeds:
        return []
    cells = [c for c in runs.cells if c not in runs.left_out]
    n_cells, seeds = len(cells), runs.expected_seeds
    expected = {(c, s) for c in cells for s in seeds}
    done = set(zip(runs.finished["cell"], runs.finished["seed"], strict=True))
    lacking = expected - done
    if not lacking:
        return []
    selection = f" among runs with {' '.join(where)}" if where else ""
    no_run = sum(len(v) for v in runs.missing.values())
    notes = [
        f"warning: incomplete grid{selection}: {len(lacking)} of {len(expected)} units "
        f"({n_cells} cells × seeds {_seed_list(seeds)}, {runs.seeds_source}) have no "
        f"finished run: {no_run} with no run in the store, {len(lacking) - no_run} failed "
        f"or unfinished (column 'seeds': finished/expected)."
    ]
    empty = runs.unfinished_cells()
    if empty:
        notes.append(
            f"warning: no finished run at all (row shows 'no result' or 'failed'): "
            f"{', '.join(empty)}."
        )
    if runs.missing:
        notes.append(
            "warning: no run in the store for "
            + "; ".join(f"{c} ({_which_seeds(m, seeds)})" for c, m in runs.missing.items())
            + "."
        )
    return notes


def _which_seeds(missing: list[int], expected: list[int]) -> str:
    if missing == expected and len(expected) > 1:
        return f"every seed: {_seed_list(missing)}"
    return f"seed{'s' if len(missing) > 1 else ''} {_seed_list(missing)}"


def _seed_list(seeds: Iterable[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def _no_results_message(grid: str, uri: str, df: pd.DataFrame) -> str:
    """One line: no unit finished, how many of each status, which cells, a first reason."""
    counts = ", ".join(f"{n} {status}" for status, n in df["status"].value_counts().items())
    cells = [
        f"{cell} (seed{'s' if len(g) > 1 else ''} {_seed_list(sorted(g['seed']))})"
        for cell, g in df.groupby("cell", sort=True)
    ]
    more = f" and {len(cells) - MAX_LISTED} more" if len(cells) > MAX_LISTED else ""
    reasons = df.get(f"tags.{TAG_FAILURE}", pd.Series(dtype=object)).dropna().astype(str)
    reasons = [r for r in reasons if r.strip()]
    why = f"; first reason: {reasons[0].strip().splitlines()[0][:160]}" if reasons else ""
    return (
        f"grid {grid!r}: no unit finished in {uri} ({counts}): "
        f"{'; '.join(cells[:MAX_LISTED])}{more}{why}"
    )


def load_predictions(uri: str, run_id: str) -> dict[str, Predictions]:
    """The per-sample predictions a unit logged (``predictions.npz``), by evaluation name."""
    from mlflow.tracking import MlflowClient

    quiet_artifact_downloads()
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

    quiet_artifact_downloads()
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


#: the columns that name a unit, first in every results table in this order (then the
#: cell's ``label.*`` values, then its settings, then its metrics, each in sorted order)
UNIT_COLUMNS = ("cell", "seed", "status", "run_id", "protocol")


def unit_table(runs: GridRuns, finished_only: bool = True) -> pd.DataFrame:
    """One row per unit of ``runs`` (its FINISHED units, or all with ``finished_only=False``)
    with typed values, in a fixed column order: :data:`UNIT_COLUMNS`, the ``label.*``
    columns, the resolved settings under their dotted names, the final metrics.

    Settings come from each run's ``config.json`` (exact types), else from its parameters
    parsed back (:func:`~asma_bench.harness.tracking.parse_param`); the ``label.*`` and
    ``protocol`` parameters stay text, numbers where a whole column is. Columns are bool,
    int or float where every value is one (pandas' nullable ``boolean``/``Int64`` where a
    unit lacks the value), otherwise objects: text, lists, dicts and None."""
    df = runs.finished if finished_only else runs.runs
    params = sorted(c for c in df.columns if c.startswith("params."))
    metrics = sorted(c for c in df.columns if c.startswith("metrics."))
    rows: list[dict[str, Any]] = []
    labels: set[str] = set()
    for _, r in df.iterrows():
        row: dict[str, Any] = {"cell": str(r["cell"]), "seed": int(r["seed"]),
                               "status": str(r["status"]), "run_id": str(r["run_id"])}  # fmt: skip
        config = _run_config(runs.uri, r)
        for col in params:
            key = col.removeprefix("params.")
            text = r[col]
            if key in ("cell", "seed") or (key not in config and pd.isna(text)):
                continue
            if key == "protocol" or key.startswith("label."):
                labels.add(key)
                row[key] = None if pd.isna(text) else str(text)
            else:
                row[key] = config[key] if key in config else parse_param(text)
        for key, value in config.items():
            row.setdefault(key, value)
        rows.append(row)
    names = [c.removeprefix("metrics.") for c in metrics]
    label_cols = sorted(labels - {"protocol"})
    settings = sorted({k for row in rows for k in row} - set(UNIT_COLUMNS) - labels)
    first = [c for c in UNIT_COLUMNS if c != "protocol" or c in labels]
    out = pd.DataFrame(
        {c: _typed([row.get(c) for row in rows]) for c in [*first, *label_cols, *settings]},
        index=range(len(rows)),
    )
    for c in label_cols:  # label values are text; numbers where every unit's is one
        numbers = pd.to_numeric(out[c], errors="coerce")
        if numbers.notna().sum() == out[c].notna().sum() and out[c].notna().any():
            out[c] = numbers
    for col, name in zip(metrics, names, strict=True):
        if name not in out:  # a metric never shadows a setting or a unit column
            out[name] = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    return out


def _run_config(uri: str, row: pd.Series) -> dict[str, Any]:
    """The flattened ``config.json`` of a run ({} without one): read in place from a local
    artifact store, downloaded from another."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    location = str(row.get("artifact_uri") or "")
    try:
        if location.startswith("file:"):
            path = Path(url2pathname(urlparse(location).path)) / "config.json"
            if not path.is_file():
                return {}
            config = json.loads(path.read_text())
        else:
            config = load_artifact_json(uri, str(row["run_id"]), "config.json")
    except (OSError, ValueError, DataFormatError) as exc:
        log.debug("run %s: no config.json (%s); parameters parsed", row["run_id"], exc)
        return {}
    return flatten(config) if isinstance(config, dict) else {}


def _typed(values: list[Any]) -> pd.Series:
    """A column of python values with the narrowest dtype that holds them all."""
    present = [v for v in values if v is not None]
    full = len(present) == len(values)
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype=bool if full else "boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="int64" if full else "Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype=float)
    return pd.Series(values, dtype=object)


def _plain(value: Any) -> Any:  # noqa: ANN401 - a cell of a results table
    """A table cell as a plain python value: None for a missing one (NaN, pd.NA)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def results_csv(df: pd.DataFrame) -> str:
    """``df`` as CSV: booleans ``true``/``false``, an empty field for None or NaN, lists and
    dicts as JSON, floats exactly as python writes them."""

    def field(value: Any) -> str:  # noqa: ANN401
        value = _plain(value)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, dict)):
            return json.dumps(value)
        return repr(value) if isinstance(value, float) else str(value)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(df.columns)
    for row in df.itertuples(index=False):
        writer.writerow([field(v) for v in row])
    return buffer.getvalue()


def results_json(df: pd.DataFrame) -> str:
    """``df`` as a JSON list of records with real booleans, numbers, lists and null."""
    records = [
        {c: _plain(v) for c, v in zip(df.columns, row, strict=True)}
        for row in df.itertuples(index=False)
    ]
    return json.dumps(records, indent=1)


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


#: Per-clip outcomes a metric averages: correctness (in points) for a top-1 accuracy, the
#: proper scoring rules of :func:`~asma_bench.training.metrics.per_sample_scores`.
CLIP_OUTCOMES = ("top1", "nll", "brier")


@dataclass(frozen=True)
class ClipOutcome:
    """Where a metric's per-clip values come from: the logged predictions ``name``, the
    ``outcome`` (one of :data:`CLIP_OUTCOMES`) and what the scores are (``logits`` or a
    k-NN's ``votes``)."""

    name: str
    outcome: str
    scores: str

    def values(self, pred: Predictions) -> np.ndarray:
        """Each clip's outcome, on the metric's scale (top-1 in points: 0 or 100)."""
        if self.outcome == "top1":
            return 100.0 * pred.correct.astype(float)
        return per_sample_scores(pred, self.scores)[self.outcome]


def clip_outcome(metric: str) -> ClipOutcome | None:
    """The per-clip outcome a metric is the mean of (``test_top1`` → correctness of the
    ``test`` predictions, ``test_knn_brier`` → Brier score of the ``knn_test`` votes,
    ``theta_test_top1`` → ``theta_test``); None for other metrics (top-5, per-class)."""
    stem, _, outcome = metric.rpartition("_")
    if outcome not in CLIP_OUTCOMES or not stem:
        return None
    if stem.endswith("_knn"):
        return ClipOutcome(f"knn_{stem.removesuffix('_knn')}", outcome, "votes")
    return ClipOutcome(stem, outcome, "logits")


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


def dataset_key(df: pd.DataFrame) -> pd.Series:
    """Each run's dataset: its ``data.source`` as recorded (``synthetic/PRESET`` for the
    synthetic data), so the report can analyse one grid run on several datasets. A
    transfer unit's is ``SOURCE → TARGET``: the target is the data it is evaluated on, so
    two targets in one store are two datasets, never averaged together."""
    names = _data_keys(df, "data.")
    if "params.transfer.target.source" in df:
        targets = _data_keys(df, "transfer.target.")
        given = df["params.transfer.target.source"].astype(str).isin(["None", "nan", ""])
        names = [n if no else f"{n} → {t}" for n, t, no in zip(names, targets, given, strict=True)]
    return pd.Series(names, index=df.index, dtype=object)


def _data_keys(df: pd.DataFrame, prefix: str) -> list[str]:
    """The dataset keys of one data section (``data.`` or ``transfer.target.``)."""

    def column(name: str, default: str) -> pd.Series:
        values = df.get(f"params.{prefix}{name}", pd.Series(default, index=df.index))
        return values.fillna(default).astype(str)

    source, preset = column("source", "?"), column("preset", "")
    layout = column("layout", "").replace("None", "")
    content = column("fingerprint", "").replace("None", "")
    names = [
        (f"synthetic/{p}" + (f"@{lay}" if lay else "")) if s == "synthetic" else s
        for s, p, lay in zip(source, preset, layout, strict=True)
    ]
    # a folder rebuilt in place holds another dataset: its runs are told apart by content
    versions = pd.Series(content.to_numpy(), index=names).groupby(level=0).nunique()
    return [
        f"{n} ({c[:8]})" if c and versions.get(n, 0) > 1 else n
        for n, c in zip(names, content, strict=True)
    ]


def _latest_references(df: pd.DataFrame, spec: Any) -> tuple[pd.DataFrame, list[str]]:  # noqa: ANN401 - a GridSpec
    """Where a reference row's finished runs on one dataset differ in their settings, keep
    those of its latest finished run's settings; returns the runs kept and the cells that
    lost some.

    Reference rows are set up like the grid's baseline cell; earlier versions set them up
    like its first cell, so a store used before and after holds both kinds for grids
    whose baseline is not their first cell (the runs of other cells do not change). The
    latest is the one the grid defines now. A store whose other cells differ too (two
    profiles in one folder) is still refused by :func:`_check_consistent`."""
    params = _compared_params(df)
    references = {c.name for c in spec.all_cells() if "reference" in c.labels}
    drop = pd.Series(False, index=df.index)
    older: list[str] = []
    for (cell, dataset), rows in df[df["status"] == "FINISHED"].groupby(["cell", "dataset"]):
        differing = _differing(rows, params) if cell in references else []
        if not differing:
            continue
        latest = _texts(rows.sort_values("start_time").iloc[-1][differing])
        mine = (df["cell"] == cell) & (df["dataset"] == dataset)
        drop |= mine & ~_texts(df[differing]).eq(latest).all(axis=1)
        older += [cell] if cell not in older else []
    return df[~drop], older


def _compared_params(df: pd.DataFrame) -> list[str]:
    """The ``params.*`` columns that must agree between the runs of one cell: every
    setting but the seed's and the dataset's."""
    ignored = set(PER_SEED_PARAMS) | set(DATASET_PARAMS)
    return [c for c in df.columns
            if c.startswith("params.") and c.removeprefix("params.") not in ignored]  # fmt: skip


def _differing(rows: pd.DataFrame, params: list[str]) -> list[str]:
    """The columns of ``params`` whose values are not the same in every row (missing
    counts as one value)."""
    return [c for c in params if _texts(rows[c]).nunique() > 1]


def _texts(values: Any) -> Any:  # noqa: ANN401 - a DataFrame or a Series
    """Parameter values as text that compare equal where both are missing (a parameter an
    earlier version did not log: NaN, which equals nothing, not even itself)."""
    return values.astype(object).where(values.notna(), "<missing>").astype(str)


def _check_consistent(df: pd.DataFrame, grid: str) -> None:
    """Refuse a cell whose finished runs on one dataset differ in any setting but the
    seed (a store holding two profiles, or runs made before and after a change of
    ``rng``): averaging them would mix two experiments."""
    params = _compared_params(df)
    for (cell, _), rows in df[df["status"] == "FINISHED"].groupby(["cell", "dataset"]):
        differing = [c.removeprefix("params.") for c in _differing(rows, params)]
        if differing:
            raise ConfigError(
                f"grid {grid!r} cell {cell!r}: finished runs differ in "
                f"{', '.join(differing[:4])}; select one configuration with --where "
                f"{differing[0]}=VALUE or use a separate --runs folder per profile"
            )
