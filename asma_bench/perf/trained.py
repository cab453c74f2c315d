"""The teacher and student a grid trained, found in its runs folder for ``latency``.

``asma-bench latency --runs DIR --grid teacher_kind`` (or ``--run-id ID``) times the
models of one finished ``distill`` unit: its resolved config is read from the store, and
its pretraining, teacher and student are loaded from ``DIR/checkpoints`` by the same
digests the unit wrote them under, so nothing is trained again. ``--set`` may change the
models (``distill.teacher_streams=[joint,bone,motion]`` for the paper's three-stream
teacher); whatever the runs folder then lacks is trained into it and the table says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asma_bench.config import RunConfig, deep_merge, parse_override, validate_config
from asma_bench.errors import ConfigError

#: The ``distill`` unit's checkpoints Table 2 is measured on, by kind.
NEEDED = ("pretrain", "student")


@dataclass
class TrainedUnit:
    config: RunConfig
    run_id: str
    grid: str
    cell: str
    seed: int
    dataset: str

    @property
    def origin(self) -> str:
        return (
            f"the models of grid {self.grid}, cell {self.cell}, seed {self.seed} on "
            f"{self.dataset} (run {self.run_id})"
        )


def _same_data(params: dict[str, Any], source: str) -> bool:
    """Whether a unit's logged data settings name the dataset ``source``."""
    logged = str(params.get("data.source", ""))
    if source == "synthetic":
        return logged == "synthetic"
    from asma_bench.data.fingerprint import dataset_fingerprint

    path = Path(source).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--data {source}: no such dataset folder")
    if params.get("data.fingerprint"):
        return dataset_fingerprint(path) == params["data.fingerprint"]
    return Path(logged).resolve() == path.resolve() if logged else False


def find_unit(
    runs: Path,
    store: str | None = None,
    grid: str | None = None,
    cell: str | None = None,
    seed: int = 0,
    run_id: str | None = None,
    data: str | None = None,
    experiment: str = "asma-bench",
) -> TrainedUnit:
    """The finished ``distill`` unit named by ``run_id``, or by grid, cell (default: the
    grid's first distill cell), seed and dataset; one line saying why not otherwise."""
    from asma_bench.api import load_results, unit_run
    from asma_bench.harness.grids import load_grid
    from asma_bench.harness.tracking import TAG_CELL, TAG_GRID, TAG_SEED

    if run_id is None:
        if grid is None:
            raise ConfigError("--runs needs --grid (a distill grid, e.g. teacher_kind) or --run-id")
        spec = load_grid(grid)
        distill_cells = [c.name for c in spec.all_cells() if c.protocol == "distill"]
        if not distill_cells or (cell is not None and cell not in distill_cells):
            what = f"cell {cell!r} of grid {grid}" if cell else f"grid {grid}"
            raise ConfigError(
                f"{what} has no distill units to time; distill grids: teacher_kind, "
                "distill_kind, distill_tau, student_depth"
                + (f" (its distill cells: {', '.join(distill_cells)})" if distill_cells else "")
            )
        cell = cell or distill_cells[0]
        rows = load_results(spec.name, runs, store=store, experiment=experiment)
        rows = rows[(rows["cell"] == cell) & (rows["seed"] == seed)]
        if data is not None:
            rows = rows[[_same_data(r, data) for r in rows.to_dict("records")]]
        if rows.empty:
            on = f" on {data}" if data else ""
            raise ConfigError(
                f"grid {spec.name} has no finished unit {cell}/seed{seed}{on} in {runs} "
                f"(`asma-bench run --grid {spec.name} --runs {runs}` trains it)"
            )
        sources = sorted({str(r.get("data.fingerprint") or r.get("data.source"))
                          for r in rows.to_dict("records")})  # fmt: skip
        if len(sources) > 1:
            raise ConfigError(
                f"grid {spec.name}, {cell}/seed{seed} ran on {len(sources)} datasets in "
                f"{runs}; name one with --data"
            )
        run_id = str(rows.sort_values("run_id").iloc[-1]["run_id"])
    _, run, config = unit_run(run_id, runs, store, experiment)
    tags = run.data.tags
    if tags.get("asma.protocol") != "distill":
        raise ConfigError(
            f"run {run_id} is a {tags.get('asma.protocol', 'unknown')} unit; latency times "
            "the teacher and student of a distill unit"
        )
    if run.info.status != "FINISHED":
        raise ConfigError(f"run {run_id} did not finish ({run.info.status})")
    cfg = validate_config(config)
    source = cfg.data.source
    dataset = "synthetic" if source == "synthetic" else Path(source).name
    return TrainedUnit(cfg, run_id, tags.get(TAG_GRID, grid or "?"), tags.get(TAG_CELL, "?"),
                       int(tags.get(TAG_SEED, seed)), dataset)  # fmt: skip


def check_checkpoints(unit: TrainedUnit, runs: Path) -> None:
    """Refuse a unit whose trained models are not in ``runs/checkpoints`` (another
    machine's runs folder, a deleted checkpoint): timing would silently retrain them."""
    from asma_bench.protocols.unit_files import unit_checkpoints

    have = unit_checkpoints(unit.config, Path(runs) / "checkpoints")
    teacher = "linear" if unit.config.distill.teacher == "linear" else "finetune"
    needed = [k for k in (*NEEDED, teacher) if k != "pretrain" or unit.config.pretrain.epochs]
    missing = [k for k in needed if k not in have]
    if missing:
        raise ConfigError(
            f"run {unit.run_id}: its {', '.join(missing)} checkpoint is not under {runs} "
            f"(`asma-bench rerun {unit.run_id} --runs {runs}` recreates it)"
        )


def with_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """The unit's config with ``--set`` overrides (what the timed models should differ
    in, e.g. the teacher's streams); the seed stays the unit's."""
    if not overrides:
        return cfg
    merged = cfg.model_dump(mode="json")
    for text in overrides:
        merged = deep_merge(merged, parse_override(text))
    return validate_config(merged)
