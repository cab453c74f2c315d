"""Executing one unit inside its own MLflow run: the step the sequential runner and the
queue's workers share."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from asma_bench.harness.plan import Unit
from asma_bench.harness.tracking import (
    HEARTBEAT_SECONDS,
    TAG_CELL,
    TAG_CHECKPOINT,
    TAG_FAILURE,
    TAG_HEARTBEAT,
    TAG_PID,
    TAG_SEED,
    TAG_UNIT,
    Tracker,
    environment_tags,
)
from asma_bench.predict import save_pipeline
from asma_bench.protocols import ProtocolResult, UnitContext, run_protocol
from asma_bench.protocols.unit_files import unit_checkpoints
from asma_bench.training.loop import DivergenceError
from asma_bench.training.metrics import per_class_accuracy

log = logging.getLogger(__name__)


def runs_relative(path: Path, out: Path) -> str:
    """``path`` as recorded in the store: relative to the runs folder ``out`` when inside
    it (``checkpoints/pretrain-….pt``), so a moved or copied runs folder still finds its
    files; absolute otherwise."""
    path, out = Path(path).resolve(), Path(out).resolve()
    try:
        return path.relative_to(out).as_posix()
    except ValueError:
        return str(path)


def metric_text(metrics: dict[str, float], name: str) -> str:
    value = metrics.get(name)
    return f"{name}={value:.2f}" if value is not None else "done"


def run_unit(unit: Unit, tracker: Tracker, parent: str, out: Path, progress=None) -> ProtocolResult:
    """Run one (cell, seed) inside its own MLflow run; FINISHED only if it completed.

    From the moment the run exists, every way out closes it: FAILED for an error, KILLED for
    Ctrl-C or SIGTERM. The two signals are held back while the run is being created, so a
    stop never leaves a run RUNNING that this process no longer knows about."""
    tracker.close_stale(unit.grid, unit.id)
    run_id: str | None = None
    stop = threading.Event()
    try:
        with signals_deferred():
            run_id = tracker.start_unit(parent, unit.grid, unit.name, {
                TAG_UNIT: unit.id, TAG_CELL: unit.cell.name, TAG_SEED: unit.seed,
                "asma.protocol": unit.protocol, **environment_tags(),
                TAG_PID: os.getpid(), TAG_HEARTBEAT: f"{time.time():.0f}", **unit.source_tags,
            })  # fmt: skip
        who = tracker.rival(unit.grid, unit.id, run_id)  # a process on another machine
        if who is not None:  # started it first: it keeps the unit, this run never happened
            tracker.client.delete_run(run_id)
            run_id = None
            raise UnitHeld(who)
        beat = threading.Thread(
            target=_beat, args=(tracker, run_id, stop), name=f"heartbeat-{unit.name}", daemon=True
        )
        beat.start()
        result = _train(unit, tracker, run_id, out, progress)
        with signals_deferred():  # a stop now keeps the unit FINISHED
            tracker.finish(run_id, "FINISHED")
            run_id = None
        return result
    except BaseException as exc:
        if run_id is not None:
            why = str(exc) if isinstance(exc, DivergenceError) else f"{type(exc).__name__}: {exc}"
            try:
                tracker.set_tags(run_id, {TAG_FAILURE: why})
                tracker.finish(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            except Exception:  # noqa: BLE001 - the original error matters more
                log.debug("could not close the unit's run", exc_info=True)
        raise
    finally:
        stop.set()


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM back until the block ends: in the main thread (where Python
    runs signal handlers, whichever thread the signal reached) each is recorded instead of
    handled, and handed to the handler it had once the block is left."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda n, frame: caught.append(n))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in caught:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


class UnitHeld(Exception):  # noqa: N818 - it is a state, not an error of the user's
    """Another live process (on another machine) is training the unit."""

    def __init__(self, who: str):
        super().__init__(f"held by {who}")
        self.who = who


def _beat(tracker: Tracker, run_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        tracker.heartbeat(run_id)


def _train(unit: Unit, tracker: Tracker, run_id: str, out: Path, progress=None) -> ProtocolResult:
    params = {
        **unit.config.flat(),
        "protocol": unit.protocol,
        "cell": unit.cell.name,
        **{f"label.{k}": v for k, v in unit.cell.labels.items()},
    }
    tracker.log_params(run_id, params)
    tracker.log_dict(run_id, unit.config.model_dump(mode="json"), "config.json")
    last_step: dict[str, int] = {}  # a metric with a curve gets its final value as its last point

    def on_epoch(epoch: int, m: dict[str, float]) -> None:
        tracker.log_metrics(run_id, m, step=epoch)
        for key in m:
            last_step[key] = max(last_step.get(key, epoch), epoch)

    ctx = UnitContext(
        data_root=out / "data", ckpt_dir=out / "checkpoints", device=unit.config.device,
        on_epoch=on_epoch, progress=progress,
    )  # fmt: skip
    t0 = time.monotonic()
    result = run_protocol(unit.protocol, unit.config, ctx)
    metrics = {**result.metrics, "unit_seconds": time.monotonic() - t0}
    ckpts = unit_checkpoints(unit.config, ctx.ckpt_dir)
    pipeline = save_pipeline(unit.config, unit.protocol, ckpts, ctx.data_root)
    if pipeline is not None:  # the test-time pre-processing, for load_model(...).predict
        tracker.log_dict(run_id, json.loads(pipeline.to_json()), "pipeline.json")
    tracker.set_tags(
        run_id, {f"{TAG_CHECKPOINT}.{k}": runs_relative(p, out) for k, p in ckpts.items()}
    )
    by_step: dict[int, dict[str, float]] = {}  # never a step back to 0 on a curve
    for key, value in metrics.items():
        by_step.setdefault(last_step.get(key, 0), {})[key] = value
    for step, values in sorted(by_step.items()):
        tracker.log_metrics(run_id, values, step=step)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.npz"
        arrays: dict[str, np.ndarray] = {}
        per_class: dict[str, list] = {}
        for name, pred in result.predictions.items():
            arrays[f"{name}.logits"] = pred.logits.astype(np.float32)
            arrays[f"{name}.labels"] = pred.labels
            arrays[f"{name}.indices"] = pred.indices
            num_classes = pred.logits.shape[1]
            per_class[name] = per_class_accuracy(pred, num_classes).tolist()
        np.savez_compressed(path, **arrays)
        tracker.log_artifact(run_id, path)
        tracker.log_dict(run_id, per_class, "per_class_accuracy.json")
    return result
