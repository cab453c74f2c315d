"""What a plan will cost before it runs: units, shared pretrainings and CPU time.

The time comes from a measured per-unit cost, not from a formula. Units that cost the
same to train (same protocol, data, backbone, objective, epochs and batch sizes; seeds,
masking strategies, ratios, temperatures and learning rates set no cost) form one *kind*.
One unit of each kind is run for real, on this machine and in a temporary folder, with
every training loop stopped after :data:`PROBE_EPOCHS` epochs (:func:`epoch_cap`): the
data preparation, feature extraction, L-BFGS fits and predictions run whole, and each
training stage's remaining epochs are added at the speed of its last measured epoch.

A ``distill`` unit loads every model it trained (pretraining, teacher, student) from
checkpoints named by digest: one that an earlier unit of the plan already is (the same
unit in two grids, e.g. ``teacher_kind``'s ``linear_teacher`` and ``distill_kind``'s
``logit``), or whose student the runs folder holds, costs nothing to train.

Pretrainings are counted once. A unit's pretraining (its ``pretrain-<digest>.pt``) is
paid by the first unit of the plan that needs it, or by nobody when the runs folder
already holds it; every other unit that needs it costs only its evaluation. Other cached
steps (a linear teacher shared by distillation cells) are counted in every unit that
uses them, so the estimate errs high there. Units already finished in the store cost
nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asma_bench.harness.plan import Unit, prepare_synthetic
from asma_bench.protocols import UnitContext, run_protocol
from asma_bench.protocols.unit_files import unit_checkpoints
from asma_bench.training.loop import epoch_cap
from asma_bench.training.pretrain import pretrain_digest

log = logging.getLogger(__name__)

#: Epochs each training stage runs in a probe: the first carries the start-up (memory,
#: kernels' first calls), the second is the steady pace the rest are extrapolated from.
PROBE_EPOCHS = 2

#: Protocols whose unit, run again, loads the models it trained instead of training them.
REPLAYED = frozenset({"distill"})

#: Settings that change what a unit learns but not what it costs to train.
COST_NEUTRAL = frozenset({"seed", "masking", "device", "deterministic", "rng"})
COST_NEUTRAL_KEYS = frozenset(
    {"pairing", "lr", "align_lr", "lambd", "tau", "weight_decay", "alpha", "temperature",
     "momentum", "label_smoothing"}
)  # fmt: skip


def _strip(node: object) -> object:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in COST_NEUTRAL_KEYS}
    return node


def cost_kind(unit: Unit) -> str:
    """The kind of a unit: units of one kind cost the same to train (see the module)."""
    ident = {k: v for k, v in unit.config.identity().items() if k not in COST_NEUTRAL}
    blob = json.dumps({"protocol": unit.protocol, "config": _strip(ident)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def pretrain_digests(unit: Unit) -> list[str]:
    """The pretrainings a unit needs, in the order it runs them (none for a unit that
    trains from scratch or evaluates random weights)."""
    cfg = unit.config
    if unit.protocol == "supervised" or cfg.pretrain.epochs == 0:
        return []
    if unit.protocol == "streams":
        return [
            pretrain_digest(
                cfg.model_copy(update={"data": cfg.data.model_copy(update={"stream": s})})
            )
            for s in cfg.streams.names
        ]
    return [pretrain_digest(cfg)]


@dataclass
class Stage:
    """One training loop of a probe: its name, configured epochs and epoch-end times."""

    name: str
    epochs: int
    start: float
    ends: list[float] = field(default_factory=list)

    @property
    def measured(self) -> float:
        return (self.ends[-1] if self.ends else self.start) - self.start

    @property
    def full(self) -> float:
        """The whole stage: the measured epochs, then the rest at the last epoch's pace."""
        if not self.ends:
            return 0.0
        times = [self.start, *self.ends]
        pace = times[-1] - times[-2]
        return self.measured + pace * max(0, self.epochs - len(self.ends))


@dataclass
class Probe:
    """What one unit of a kind costs: measured seconds, extrapolated to the full run."""

    seconds: float  # the probe itself
    stages: list[Stage] = field(default_factory=list)
    error: str | None = None

    @property
    def total(self) -> float:
        return self.seconds + sum(s.full - s.measured for s in self.stages)

    @property
    def pretrainings(self) -> list[float]:
        """The full cost of each pretraining the unit ran, in order."""
        return [s.full for s in self.stages if s.name == "pretrain"]

    @property
    def evaluation(self) -> float:
        """Everything but the pretrainings (what a unit whose pretrainings exist costs)."""
        return max(0.0, self.total - sum(self.pretrainings))

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "error": self.error, "stages": [
            {"name": s.name, "epochs": s.epochs, "start": s.start, "ends": s.ends}
            for s in self.stages
        ]}  # fmt: skip


def probe_unit(unit: Unit, workdir: Path) -> Probe:
    """Run ``unit`` with every training loop capped at :data:`PROBE_EPOCHS` epochs in
    ``workdir`` (data and checkpoints of its own) and time each stage."""
    stages: list[Stage] = []
    t0 = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter() - t0
        if done == 0 or not stages or stages[-1].name != stage or done <= len(stages[-1].ends):
            stages.append(Stage(stage, total, now))
            if done == 0:
                return
        stages[-1].ends.append(now)

    ckpt = workdir / "checkpoints" / unit.id
    ctx = UnitContext(
        data_root=workdir / "data", ckpt_dir=ckpt, device=unit.config.device, progress=progress
    )
    error = None
    try:
        with epoch_cap(PROBE_EPOCHS):
            run_protocol(unit.protocol, unit.config, ctx)
    except Exception as exc:  # noqa: BLE001 - a probe that fails estimates nothing; say why
        error = f"{type(exc).__name__}: {exc}"
        log.debug("probe of %s failed", unit.name, exc_info=True)
    stages = [s for s in stages if s.ends]
    return Probe(time.perf_counter() - t0, stages, error)


@dataclass
class GridCost:
    """One grid of a plan: its units, what still has to run and what that costs."""

    grid: str
    units: int
    to_run: int
    pretrainings: int  # distinct pretrainings the grid's units need
    shared: int  # of those, how many an earlier grid of the plan or the runs folder provides
    seconds: float
    unknown: int = 0  # units whose kind could not be measured


@dataclass
class PlanCost:
    grids: list[GridCost]
    kinds: int
    probe_seconds: float
    pretrainings: int  # distinct pretrainings the units still to run need
    pretrainings_needed: int  # ... of which are not in the runs folder yet
    setup_seconds: float = 0.0  # generating synthetic data the runs folder does not hold
    failures: dict[str, str] = field(default_factory=dict)  # kind's first unit → why

    @property
    def seconds(self) -> float:
        return self.setup_seconds + sum(g.seconds for g in self.grids)


def estimate(
    plans: Sequence[tuple[str, list[Unit]]],
    finished: Callable[[str], Iterable[str]] = lambda _grid: (),
    runs: Path | None = None,
    on_probe: Callable[[int, int, Unit], None] | None = None,
) -> PlanCost:
    """The cost of running ``plans`` (grid name, its units) in order.

    ``finished(grid)`` gives the ids of the grid's units the store has finished;
    ``runs`` is the runs folder (pretrainings and synthetic data already there cost
    nothing; nothing is written there). ``on_probe(i, n, unit)`` is told before each of
    the n probes."""
    todo = [(g, [u for u in units if u.id not in set(finished(g))]) for g, units in plans]
    reps: dict[str, Unit] = {}
    for _, units in todo:
        for u in units:
            reps.setdefault(cost_kind(u), u)
    probes: dict[str, Probe] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="asma-cost-") as tmp:
        work = Path(tmp)
        t_data = time.perf_counter()
        prepare_synthetic(list(reps.values()), work / "data", "cost estimate")
        t_data = time.perf_counter() - t_data
        have = runs is not None and all(
            (runs / "data" / p.relative_to(work / "data") / "info.json").is_file()
            for p in (work / "data").glob("*/**/")
            if (p / "info.json").is_file()
        )
        for i, (kind, unit) in enumerate(reps.items()):
            if on_probe:
                on_probe(i, len(reps), unit)
            probes[kind] = probe_unit(unit, work)
    probe_seconds = time.perf_counter() - t0

    def exists(digest: str) -> bool:
        return runs is not None and (runs / "checkpoints" / f"pretrain-{digest}.pt").is_file()

    def replayed(u: Unit) -> bool:  # its models exist, or an earlier unit trains them
        if u.protocol not in REPLAYED:
            return False
        if u.id in ran:
            return True
        return runs is not None and "student" in unit_checkpoints(u.config, runs / "checkpoints")

    paid: set[str] = set()
    ran: set[str] = set()
    rows: list[GridCost] = []
    needed_all: set[str] = set()
    for (grid, units), (_, waiting) in zip(plans, todo, strict=True):
        grid_digests: set[str] = set()
        shared: set[str] = set()
        seconds, unknown = 0.0, 0
        for u in waiting:
            probe = probes[cost_kind(u)]
            digests = pretrain_digests(u)
            if replayed(u):
                for d in digests:
                    if d not in grid_digests and (d in paid or exists(d)):
                        shared.add(d)
                    grid_digests.add(d)
                    needed_all.add(d)
                ran.add(u.id)
                continue
            ran.add(u.id)
            if probe.error:
                unknown += 1
            costs = probe.pretrainings
            seconds += probe.evaluation
            for j, d in enumerate(digests):
                needed_all.add(d)
                if d in paid or exists(d):
                    if d not in grid_digests:
                        shared.add(d)
                else:
                    paid.add(d)
                    seconds += costs[j] if j < len(costs) else (costs[-1] if costs else 0.0)
                grid_digests.add(d)
        rows.append(
            GridCost(grid, len(units), len(waiting), len(grid_digests), len(shared), seconds,
                     unknown)
        )  # fmt: skip
    failures = {reps[k].name: p.error for k, p in probes.items() if p.error}
    return PlanCost(
        rows, len(reps), probe_seconds, len(needed_all), len(paid),
        setup_seconds=0.0 if have else t_data, failures=failures,
    )  # fmt: skip
