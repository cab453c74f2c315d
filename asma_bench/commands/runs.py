"""``asma-bench show RUN`` and ``asma-bench rerun RUN``: one unit's record, and that unit
run again exactly (same resolved configuration, same protocol, same seed)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from asma_bench.commands.app import app

RunsOption = Annotated[Path, typer.Option(help="Folder of `asma-bench run`.")]
StoreOption = Annotated[
    str | None,  # noqa: UP007
    typer.Option("--store", "--tracking-uri", help="MLflow tracking URI (default: in --runs)."),
]


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="MLflow run id of a unit (see `results`).")],
    runs: RunsOption = Path("runs"),
    store: StoreOption = None,
) -> None:
    """A unit's grid, cell, seed, status, final metrics, checkpoints and resolved config."""
    from asma_bench.api import unit_run
    from asma_bench.config import flatten
    from asma_bench.harness.tracking import TAG_CELL, TAG_CHECKPOINT, TAG_GRID, TAG_SEED

    _, run, config = unit_run(run_id, runs, store)  # run_id may be a prefix of the id
    tags, run_id = run.data.tags, run.info.run_id
    typer.echo(f"run {run_id}: grid {tags.get(TAG_GRID)}, cell {tags.get(TAG_CELL)}, "
               f"seed {tags.get(TAG_SEED)}, protocol {tags.get('asma.protocol')}, "
               f"{run.info.status}")  # fmt: skip
    typer.echo("metrics:")
    for key, value in sorted(run.data.metrics.items()):
        typer.echo(f"  {key} = {value:.6g}")
    ckpts = {k.removeprefix(f"{TAG_CHECKPOINT}."): v for k, v in tags.items()
             if k.startswith(f"{TAG_CHECKPOINT}.")}  # fmt: skip
    typer.echo("checkpoints:" + ("" if ckpts else " none recorded"))
    for kind, recorded in sorted(ckpts.items()):
        path = Path(runs) / recorded  # relative to the runs folder; absolute in older stores
        moved = Path(runs) / "checkpoints" / path.name  # an older store's folder, moved
        if Path(recorded).is_absolute() and not path.is_file() and moved.is_file():
            path = moved
        exists = "" if path.is_file() else "  (missing)"
        typer.echo(f"  {kind}: {path}{exists}")
    typer.echo("config:")
    for key, value in flatten(config).items():
        typer.echo(f"  {key} = {json.dumps(value)}")


@contextlib.contextmanager
def _threads_of(tags: dict[str, str]) -> Iterator[None]:
    """Train on the threads the original run had (``asma.threads``; ``run --jobs`` gives
    each unit its share of the cores): a unit's numbers move with its thread count. A run
    that recorded none, or more than this machine has, keeps torch's own."""
    import torch

    own = torch.get_num_threads()
    threads = tags.get("asma.threads", "")
    if threads.isdigit() and int(threads) > own:
        typer.echo(f"note: the run trained on {threads} threads; this machine gives {own}, "
                   "so the numbers may differ", err=True)  # fmt: skip
    elif threads.isdigit() and int(threads) >= 1:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(own)


@app.command("rerun")
def rerun(
    run_id: Annotated[str, typer.Argument(help="MLflow run id of a unit (see `results`).")],
    runs: RunsOption = Path("runs"),
    store: StoreOption = None,
) -> None:
    """Run exactly that unit again (its resolved config, protocol and seed; nothing else)
    into the same store, and compare its metric with the original run's."""
    from asma_bench.api import unit_run
    from asma_bench.config import validate_config
    from asma_bench.errors import ConfigError
    from asma_bench.harness.execute import UnitHeld
    from asma_bench.harness.grids import CellSpec
    from asma_bench.harness.locks import holder, lock_root, unit_lock
    from asma_bench.harness.plan import check_unit_inputs
    from asma_bench.harness.runner import Unit, run_unit
    from asma_bench.harness.tracking import TAG_CELL, TAG_GRID, TAG_SEED

    tracker, run, config = unit_run(run_id, runs, store)  # run_id may be a prefix of the id
    tags = run.data.tags
    cfg = validate_config(config)
    labels = {k.removeprefix("label."): v for k, v in run.data.params.items()
              if k.startswith("label.")}  # fmt: skip
    protocol = tags.get("asma.protocol", run.data.params.get("protocol", "linear"))
    cell = CellSpec(name=tags[TAG_CELL], protocol=protocol, labels=labels)
    given = {k.removeprefix("asma.").removesuffix(".source_given"): v for k, v in tags.items()
             if k.startswith("asma.") and k.endswith(".source_given")}  # fmt: skip
    unit = Unit(tags[TAG_GRID], cell, int(tags[TAG_SEED]), protocol, cfg, given)
    # every check that needs no training before a run is created: a failed one writes none
    check_unit_inputs(unit, Path(runs), run_id)
    parent_id = tags.get("mlflow.parentRunId")
    locks = lock_root(tracker.uri, runs)
    # on the original run's threads, never beside a run training the same unit
    with _threads_of(tags), unit_lock(locks, unit.id) as mine:
        try:
            if not mine:  # a process on this machine holds it
                raise UnitHeld(holder(locks, unit.id))
            before = tracker.client.get_run(parent_id).info.status if parent_id else None
            parent = parent_id or tracker.parent_run(unit.grid, {})
            result = run_unit(unit, tracker, parent, Path(runs))  # (or one on another)
        except UnitHeld as exc:
            raise ConfigError(
                f"unit {unit.name} of grid {unit.grid} is being run by {exc.who}; rerun it "
                "once that is done"
            ) from None
    if before and before != "RUNNING":
        tracker.finish(parent, before)  # the grid's own status is not this rerun's business
    typer.echo(f"reran {unit.name} of grid {unit.grid} ({protocol}):")
    for key in ("test_top1", "test_knn_top1"):
        if key in result.metrics:
            old = run.data.metrics.get(key)
            was = f" (was {old:.4f})" if old is not None else ""
            typer.echo(f"  {key} = {result.metrics[key]:.4f}{was}")
