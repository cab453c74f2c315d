"""Regression check: a small fixed-seed benchmark compared with a committed baseline.

Three kinds of checks, none of which uses absolute wall time:

- **accuracy**: a couple of units (protocol + overrides on the ``smoke`` profile) over a few
  seeds. A unit regresses when its mean falls below the baseline mean by more than
  ``max(k · s · sqrt(2 / n), floor)`` percentage points, where ``s`` is the baseline's
  standard deviation across its ``n`` seeds — ``s · sqrt(2 / n)`` is the standard deviation
  of the difference of two n-seed means, so ``k = 2`` is a two-sigma band.
- **latency ratios**, all measured in the same run on one thread: the student's forward
  time over the teacher's, and each masking strategy's time over a fixed-size matrix
  product. Each ratio is measured over ``latency_rounds`` rounds; in a round the two sides
  are timed back to back (numerator first in even rounds, denominator first in odd ones)
  and the round gives one ratio. Times are the timing thread's CPU time (``latency_clock
  = "thread"``; ``"wall"``: elapsed time): while other jobs run, the time the check
  spends descheduled is not its code's time. On a 2-core machine at load 6 one run's
  per-round ratios spread 1.2–1.8x in CPU time against 2.6–57x in elapsed time. The
  recorded ratio is the median of the rounds, its spread their interquartile range /
  median. The band is ``min(max(k · spread, floor), cap)`` (the larger spread of
  baseline and current run), the limit ``baseline · (1 + band)``, and a ratio regresses
  only when its *whole spread* is beyond the limit: with ``latency_statistic = "best"``
  (the default) when even its fastest round is, i.e. every round was slower than the
  limit. A disturbance (a context switch, a cache another job emptied) slows whichever
  side it happens to hit, so single rounds move while the code is unchanged; a slower
  strategy is slower in every round. ``"bound"`` judges a one-sided distribution-free
  lower confidence bound of the median ratio (an order statistic, ``latency_confidence``;
  with 7 rounds at 95 % it is the fastest round, with 9 the second fastest), ``"median"``
  the median (strictest, for quiet machines). "improved" mirrors it (the slowest round
  below ``baseline / (1 + band)``). Masking strategies are sub-millisecond operations whose
  speed relative to a matrix product moves more between runs than a model's, so their
  floor is higher (``masking_floor``: 2x slower fails; the regressions that matter, such
  as a Python loop over samples, cost 10x or more).
- **counts**: parameters and forward FLOPs of teacher and student, equal within
  ``count_rtol`` (exact by default).

The baseline file (JSON) holds the settings of the benchmark it was measured with, so a
check always re-measures the same thing; ``--update`` rewrites it atomically. A check's
rows can be written as JSON (:func:`report_json`) and as JUnit XML (:func:`junit_xml`),
both atomically.
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from asma_bench.backbones import count_flops, count_parameters
from asma_bench.config import build_config
from asma_bench.data.layouts import get_layout
from asma_bench.environment import environment as machine_environment
from asma_bench.errors import ConfigError, DataFormatError, validation_line
from asma_bench.fileio import atomic_write_text
from asma_bench.perf.models import TEACHER_OBJECTIVE, ModelShapes, teacher_and_student
from asma_bench.perf.timing import calibrate, sample_std, summarize
from asma_bench.protocols import UnitContext, run_protocol
from asma_bench.strategies import create_masking, list_maskings

BASELINE_FORMAT = 1
FAILING = ("REGRESSED", "CHANGED", "MISSING")
# the latency models' data: NTU's 25 joints, 3 coordinates, 2 bodies, 60 classes
MODEL_LAYOUT, MODEL_CHANNELS, MODEL_BODIES, MODEL_CLASSES = "ntu25", 3, 2, 60


class CheckUnit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: str = "linear"
    overrides: dict[str, Any] = Field(default_factory=dict)


def _default_units() -> dict[str, CheckUnit]:
    return {
        # one encoder, triplet Barlow Twins on ASMa's f_phi masking pair
        "barlow_twins_ldsm_hmtm": CheckUnit(overrides={
            "pretrain": {"objective": "barlow_twins", "epochs": 2},
            "masking": {"pairing": "ldsm_hmtm"},
            "linear": {"epochs": 30}}),
        # both encoders, complementary masks, cross-attention alignment probe
        "asma_aligned": CheckUnit(overrides={
            "pretrain": {"objective": "asma", "epochs": 2},
            "linear": {"epochs": 30, "features": "aligned"}}),
    }  # fmt: skip


class CheckSettings(BaseModel):
    """What the check measures and how strict it is (stored in the baseline)."""

    model_config = ConfigDict(extra="forbid")

    profile: str = "smoke"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=2)
    units: dict[str, CheckUnit] = Field(default_factory=_default_units)
    metric: str = "test_top1"
    accuracy_k: float = Field(2.0, gt=0)
    accuracy_floor: float = Field(2.0, ge=0, description="percentage points")
    latency_profile: str = Field("paper", description="model sizes for latency and counts")
    latency_batch: int = Field(4, ge=1)
    latency_rounds: int = Field(7, ge=3)
    latency_k: float = Field(2.0, gt=0)
    latency_floor: float = Field(0.5, ge=0, description="relative: 0.5 = 50 % slower")
    masking_floor: float = Field(1.0, ge=0, description="for masking ratios: 1.0 = 2x slower")
    latency_cap: float = Field(2.0, gt=0, description="widest band: 2.0 = 3x slower fails")
    latency_statistic: Literal["best", "bound", "median"] = Field(
        "best", description="which per-round ratio is judged: best round, median bound, median"
    )
    latency_confidence: float = Field(0.95, gt=0.5, lt=1, description="for 'bound'")
    latency_clock: Literal["thread", "wall"] = Field(
        "thread", description="thread: CPU time of the timing thread; wall: elapsed time"
    )
    masking_batch: int = Field(32, ge=1)
    reference_size: int = Field(256, ge=8, description="n of the n×n reference matmul")
    count_rtol: float = Field(0.0, ge=0)


@dataclass
class LatencyStat:
    ratio: float  # median of the per-round ratios
    spread: float  # interquartile range / median over rounds
    rounds: list[float] = field(default_factory=list)  # the ratio of each round

    @classmethod
    def of_rounds(cls, rounds: Sequence[float]) -> LatencyStat:
        s = summarize(rounds)
        return cls(s.median, s.iqr_spread, [float(r) for r in rounds])

    def to_json(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "spread": self.spread, "rounds": self.rounds}


@dataclass
class Measurement:
    accuracy: dict[str, list[float]] = field(default_factory=dict)  # unit → value per seed
    latency: dict[str, LatencyStat] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)

    def to_json(self, settings: CheckSettings) -> dict[str, Any]:
        return {
            "format": BASELINE_FORMAT,
            "environment": self.environment,
            "settings": settings.model_dump(mode="json"),
            "accuracy": {name: {"mean": statistics.fmean(v), "std": sample_std(v), "values": v}
                         for name, v in self.accuracy.items()},
            "latency": {name: s.to_json() for name, s in self.latency.items()},
            "counts": self.counts,
        }  # fmt: skip


@dataclass
class CheckRow:
    kind: str
    name: str
    baseline: float | None
    current: float | None
    limit: float | None
    status: str  # ok | improved | new | REGRESSED | CHANGED | MISSING | not compared (…)
    tolerance: str = ""  # the allowed change, e.g. "-4.5 pt", "+100 %", "exact"
    detail: dict[str, Any] = field(default_factory=dict)  # latency: rounds, median, statistic

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.name, "status": self.status, "failed": self.failed,
            "value": self.current, "baseline": self.baseline, "limit": self.limit,
            "tolerance": self.tolerance, **self.detail,
        }  # fmt: skip


# --------------------------------------------------------------------------- measuring
def measure(
    settings: CheckSettings,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Measurement:
    """Run the benchmark of ``settings``: accuracy units, latency ratios, counts."""
    m = Measurement(environment=_environment())
    with tempfile.TemporaryDirectory(prefix="asma-check-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        for name, unit in settings.units.items():
            m.accuracy[name] = []
            for seed in settings.seeds:
                if progress:
                    progress(f"{name} seed {seed}")
                m.accuracy[name].append(_accuracy(settings, unit, seed, root))
    if progress:
        progress("latency")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ratios of single-thread times travel better between machines
    try:
        m.latency, m.counts = _latency(settings)
    finally:
        torch.set_num_threads(threads)
    return m


def _accuracy(settings: CheckSettings, unit: CheckUnit, seed: int, root: Path) -> float:
    cfg = build_config(settings.profile, [unit.overrides, {"seed": seed}])
    ctx = UnitContext(data_root=root / "data", ckpt_dir=root / "checkpoints", device=cfg.device)
    result = run_protocol(unit.protocol, cfg, ctx)
    if settings.metric not in result.metrics:
        raise ConfigError(
            f"check metric {settings.metric!r} is not reported by protocol {unit.protocol!r}"
        )
    return float(result.metrics[settings.metric])


def check_models(settings: CheckSettings) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """ASMa's teacher (two encoders + alignment head) and the student, untrained, at the
    latency profile's sizes, in eval mode (:func:`~asma_bench.perf.models.teacher_and_student`,
    seed 0), with a fixed input batch."""
    cfg = build_config(settings.latency_profile, [{"pretrain": {"objective": TEACHER_OBJECTIVE}}])
    layout = get_layout(MODEL_LAYOUT)
    torch.manual_seed(0)
    teacher, student = teacher_and_student(cfg, ModelShapes(layout, MODEL_CHANNELS, MODEL_CLASSES))
    g = torch.Generator().manual_seed(0)
    shape = (settings.latency_batch, MODEL_CHANNELS, cfg.data.frames, layout.num_joints,
             MODEL_BODIES)  # fmt: skip
    x = torch.randn(*shape, generator=g).mul(0.05).cumsum(dim=2)
    return teacher, student, x


def _latency(settings: CheckSettings) -> tuple[dict[str, LatencyStat], dict[str, int]]:
    teacher, student, x = check_models(settings)
    counts = {
        "teacher_params": count_parameters(teacher),
        "student_params": count_parameters(student),
        "teacher_flops": count_flops(teacher, x),
        "student_flops": count_flops(student, x),
    }
    g = torch.Generator().manual_seed(1)
    n = settings.reference_size
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    batch = torch.randn(settings.masking_batch, 3, 50, 25, 2, generator=g).mul(0.05).cumsum(2)
    maskings = {name: create_masking(name) for name in list_maskings()}
    mask_gen = torch.Generator().manual_seed(2)
    timers: dict[str, Callable[[], Any]] = {
        "teacher": lambda: teacher(x), "student": lambda: student(x), "matmul": lambda: a @ b,
        **{f"masking/{k}": (lambda s=s: s(batch, generator=mask_gen)) for k, s in maskings.items()},
    }  # fmt: skip
    pairs = {"student_over_teacher": ("student", "teacher")}
    pairs.update({f"masking/{k}_over_matmul": (f"masking/{k}", "matmul") for k in maskings})
    with torch.no_grad():
        reps = {k: calibrate(f) for k, f in timers.items()}
        clock = time.thread_time if settings.latency_clock == "thread" else time.perf_counter
        rounds = paired_rounds(timers, reps, pairs, settings.latency_rounds, clock)
    return {name: LatencyStat.of_rounds(r) for name, r in rounds.items()}, counts


def paired_rounds(
    timers: Mapping[str, Callable[[], Any]],
    reps: Mapping[str, int],
    pairs: Mapping[str, tuple[str, str]],
    rounds: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """The ratio of each round of each ``name → (numerator, denominator)`` pair: in a round
    the two sides are timed back to back (ABAB…: numerator first in even rounds,
    denominator first in odd ones), so a slow moment of the machine tends to hit both, and
    one that hits only one side spoils that round alone. ``clock`` is read around each
    side's ``reps`` calls."""

    def timed(key: str) -> float:
        fn, start = timers[key], clock()
        for _ in range(reps[key]):
            fn()
        return max(clock() - start, 1e-9)

    out: dict[str, list[float]] = {name: [] for name in pairs}
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection of the process's garbage is no side's time
    try:
        for i in range(rounds):
            for name, (num, den) in pairs.items():
                order = (num, den) if i % 2 == 0 else (den, num)
                t = {k: timed(k) / reps[k] for k in order}
                out[name].append(t[num] / t[den])
    finally:
        if enabled:
            gc.enable()
    return out


def median_bound_rank(n: int, confidence: float) -> int:
    """The rank ``k`` (1 = the smallest) of the order statistic that is a one-sided
    distribution-free lower confidence bound of the median of ``n`` values: the largest
    ``k`` with ``P(Binomial(n, 1/2) ≤ k − 1) ≤ 1 − confidence`` (the k-th smallest exceeds
    the median only when fewer than k values fall below it); 1 when ``n`` is too small."""
    alpha, k, below = 1.0 - confidence, 0, 0.0
    while k < n:
        below += math.comb(n, k) / 2.0**n  # P(X ≤ k)
        if below > alpha:
            break
        k += 1
    return max(k, 1)


def judged_ratios(rounds: Sequence[float], settings: CheckSettings) -> tuple[float, float]:
    """(low, high): the per-round values a ratio is judged by, after
    ``settings.latency_statistic``: ``best`` the fastest and the slowest round, ``bound``
    the order statistics of :func:`median_bound_rank` from either end, ``median`` the
    median twice. A ratio regresses when ``low`` is above its limit and improved when
    ``high`` is below ``baseline / (1 + band)``."""
    values = sorted(rounds)
    if settings.latency_statistic == "median":
        mid = statistics.median(values)
        return mid, mid
    k = 1
    if settings.latency_statistic == "bound":
        k = median_bound_rank(len(values), settings.latency_confidence)
    return values[k - 1], values[-k]


def _environment() -> dict[str, str]:
    """The machine's record (:func:`asma_bench.environment.environment`) as strings: latency
    ratios are compared only between CPUs of the same ``cpu_kind`` (see :func:`compare`)."""
    return {k: str(v) for k, v in machine_environment().items()}


def cpu_kind(environment: Mapping[str, Any]) -> str | None:
    """The recorded kind of CPU (``cpu_kind``; older baselines: ``cpu_capability``)."""
    return environment.get("cpu_kind") or environment.get("cpu_capability")


def other_cpu(baseline: Mapping[str, Any], current: Measurement) -> str | None:
    """The baseline's kind of CPU when it differs from this one's, else None.

    Latency ratios move between kinds of CPU with the code unchanged: the masks are
    dispatch-bound while the reference product and the models run on the vector units,
    so on an AVX2 CPU the cheap masks measured 2 to 4 times their AVX-512 ratio to the
    matrix product (the heavy ones 1.1 to 3.2 times). Across kinds such a ratio measures
    the machine, not the code. A 2-core AVX-512 CPU with AMX tiles measured every mask at
    2.1 to 3.0 times the ratio recorded on the committed baseline's AVX-512 CPU (the same
    code, the machine otherwise idle), so a CPU with AMX is a kind of its own
    (:func:`~asma_bench.environment.cpu_kind_here`); baselines without ``cpu_kind`` are compared by
    ``cpu_capability``."""
    theirs = cpu_kind(baseline.get("environment", {}))
    ours = cpu_kind(current.environment)
    return theirs if theirs and ours and theirs != ours else None


# --------------------------------------------------------------------------- comparing
def accuracy_tolerance(std: float, n: int, settings: CheckSettings) -> float:
    """``max(k · std · sqrt(2/n), floor)``: k standard deviations of a difference of two
    n-seed means, never below the floor."""
    return max(settings.accuracy_k * std * math.sqrt(2.0 / n), settings.accuracy_floor)


def latency_band(
    base_spread: float, spread: float, settings: CheckSettings, floor: float | None = None
) -> float:
    """Relative band of a latency ratio: ``k`` times the larger spread of the two runs,
    between the floor (``latency_floor`` unless given) and the cap (so a noisy machine
    cannot hide a 3x slowdown)."""
    floor = settings.latency_floor if floor is None else floor
    band = max(settings.latency_k * max(base_spread, spread), floor)
    return min(band, max(settings.latency_cap, floor))


def compare(baseline: Mapping[str, Any], current: Measurement) -> list[CheckRow]:
    """One row per check; a row whose status is in :data:`FAILING` is a regression."""
    settings = CheckSettings.model_validate(baseline["settings"])
    rows: list[CheckRow] = []
    for name, base in baseline.get("accuracy", {}).items():
        values = current.accuracy.get(name)
        if not values:
            rows.append(CheckRow("accuracy", name, base["mean"], None, None, "MISSING"))
            continue
        tol = accuracy_tolerance(base["std"], len(base["values"]), settings)
        now = statistics.fmean(values)
        status = (
            "REGRESSED"
            if now < base["mean"] - tol
            else "improved"
            if now > base["mean"] + tol
            else "ok"
        )
        rows.append(
            CheckRow(
                "accuracy", name, base["mean"], now, base["mean"] - tol, status,
                f"-{tol:.3g} pt", {"values": list(values)},
            )
        )  # fmt: skip
    for name, values in current.accuracy.items():
        if name not in baseline.get("accuracy", {}):
            rows.append(CheckRow("accuracy", name, None, statistics.fmean(values), None, "new"))
    elsewhere = other_cpu(baseline, current)
    for name, base in baseline.get("latency", {}).items():
        stat = current.latency.get(name)
        if stat is None:
            rows.append(CheckRow("latency", name, base["ratio"], None, None, "MISSING"))
            continue
        if elsewhere:  # reported, not compared: the ratio would measure the machine
            status = f"not compared ({elsewhere} baseline)"
            detail = {"median": stat.ratio, "spread": stat.spread, "rounds": stat.rounds}
            rows.append(
                CheckRow("latency", name, base["ratio"], stat.ratio, None, status, "", detail)
            )
            continue
        floor = settings.masking_floor if name.startswith("masking/") else None
        band = latency_band(base["spread"], stat.spread, settings, floor)
        limit = base["ratio"] * (1 + band)
        low, high = judged_ratios(stat.rounds or [stat.ratio], settings)
        status = (
            "REGRESSED"
            if low > limit
            else "improved"
            if high < base["ratio"] / (1 + band)
            else "ok"
        )
        detail = {
            "statistic": settings.latency_statistic, "median": stat.ratio,
            "spread": stat.spread, "rounds": stat.rounds,
        }  # fmt: skip
        rows.append(
            CheckRow("latency", name, base["ratio"], low, limit, status, f"+{band:.0%}", detail)
        )
    for name, stat in current.latency.items():
        if name not in baseline.get("latency", {}):
            rows.append(CheckRow("latency", name, None, stat.ratio, None, "new"))
    for name, base in baseline.get("counts", {}).items():
        now = current.counts.get(name)
        if now is None:
            rows.append(CheckRow("count", name, base, None, None, "MISSING"))
            continue
        same = abs(now - base) <= settings.count_rtol * abs(base)
        tol = f"±{settings.count_rtol:.3g}x" if settings.count_rtol else "exact"
        rows.append(CheckRow("count", name, base, now, base, "ok" if same else "CHANGED", tol))
    for name, now in current.counts.items():
        if name not in baseline.get("counts", {}):
            rows.append(CheckRow("count", name, None, now, None, "new"))
    return rows


def latency_note(settings: CheckSettings) -> str:
    """What a latency row's ``current`` is, for the printed table."""
    n = settings.latency_rounds
    if settings.latency_statistic == "median":
        what = f"the median of the {n} paired rounds' ratios"
    elif settings.latency_statistic == "bound":
        k = median_bound_rank(n, settings.latency_confidence)
        rank = {1: "", 2: "2nd ", 3: "3rd "}.get(k, f"{k}th ")
        what = (
            f"a {settings.latency_confidence:.0%} lower bound of the median ratio (the "
            f"{rank}fastest of {n} paired rounds)"
        )
    else:
        what = f"the fastest of the {n} paired rounds' ratios"
    return f"latency: current = {what}; rounds = the range of the rounds' ratios"


def rows_table(rows: list[CheckRow]) -> pd.DataFrame:
    """Every row: the value judged (a latency ratio's: see :func:`judged_ratios`), the
    baseline, the limit and tolerance, the range of a latency ratio's rounds, the status."""

    def spread(r: CheckRow) -> str:
        rounds = r.detail.get("rounds")
        return f"{min(rounds):.4g}..{max(rounds):.4g}" if rounds else ""

    return pd.DataFrame(
        [
            {
                "kind": r.kind,
                "check": r.name,
                "baseline": r.baseline,
                "current": r.current,
                "limit": r.limit,
                "tolerance": r.tolerance,
                "rounds": spread(r),
                "status": r.status,
            }
            for r in rows
        ]
    ).set_index(["kind", "check"])


def report_json(
    rows: Sequence[CheckRow], baseline: Mapping[str, Any], current: Measurement, source: Path
) -> dict[str, Any]:
    """The check's outcome as a JSON document: every row, what was compared, the exit code."""
    failed = sum(r.failed for r in rows)
    return {
        "format": 1,
        "baseline": str(source),
        "passed": not failed,
        "exit_code": 1 if failed else 0,
        "checks": len(rows),
        "failed": failed,
        "settings": CheckSettings.model_validate(baseline["settings"]).model_dump(mode="json"),
        "environment": current.environment,
        "baseline_environment": baseline.get("environment", {}),
        "rows": [r.to_json() for r in rows],
    }


def junit_xml(rows: Sequence[CheckRow], source: Path, seconds: float = 0.0) -> str:
    """The check as JUnit XML: one ``testcase`` per row (classname ``check.<kind>``), a
    ``failure`` for a failing row, ``skipped`` for a ratio not compared on this kind of
    CPU; each case's ``properties`` and ``system-out`` hold value, baseline, limit,
    tolerance and status."""
    failures = sum(r.failed for r in rows)
    skipped = sum(r.status.startswith("not compared") for r in rows)
    counts = {"tests": str(len(rows)), "failures": str(failures), "errors": "0",
              "skipped": str(skipped), "time": f"{seconds:.3f}"}  # fmt: skip
    suites = ET.Element("testsuites", {"name": "asma-bench check", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": "asma-bench check", **counts})
    ET.SubElement(ET.SubElement(suite, "properties"), "property",
                  {"name": "baseline", "value": str(source)})  # fmt: skip
    for r in rows:
        case = ET.SubElement(
            suite, "testcase", {"classname": f"check.{r.kind}", "name": r.name, "time": "0"}
        )
        fields = {"value": r.current, "baseline": r.baseline, "limit": r.limit,
                  "tolerance": r.tolerance, "status": r.status}  # fmt: skip
        if "statistic" in r.detail:
            fields["statistic"] = r.detail["statistic"]
        props = ET.SubElement(case, "properties")
        for key, value in fields.items():
            shown = "" if value is None else str(value)
            ET.SubElement(props, "property", {"name": key, "value": shown})
        text = " ".join(f"{k}={'' if v is None else v}" for k, v in fields.items())
        if r.detail.get("rounds"):
            text += " rounds=" + ",".join(f"{v:.6g}" for v in r.detail["rounds"])
        if r.failed:
            message = f"{r.status}: {r.current} against baseline {r.baseline} (limit {r.limit})"
            ET.SubElement(case, "failure", {"message": message, "type": r.status}).text = text
        elif r.status.startswith("not compared"):
            ET.SubElement(case, "skipped", {"message": r.status})
        ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_report(path: Path, text: str) -> Path:
    """Write a report file atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, text)


# --------------------------------------------------------------------------- files
def load_baseline(path: Path) -> dict[str, Any]:
    """Read and validate a baseline file; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError(path, "baseline not found; create it with --update") from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise DataFormatError(path, f"not a check baseline (format {BASELINE_FORMAT} expected)")
    settings_of(data, path)
    for section, kind in (("accuracy", dict), ("latency", dict), ("counts", dict)):
        if not isinstance(data.get(section, {}), kind):
            raise DataFormatError(path, f"{section!r} must be a mapping")
    for name, acc in data.get("accuracy", {}).items():
        if not {"mean", "std", "values"} <= set(acc):
            raise DataFormatError(path, f"accuracy {name!r} needs mean, std and values")
    for name, lat in data.get("latency", {}).items():
        if not {"ratio", "spread"} <= set(lat):
            raise DataFormatError(path, f"latency {name!r} needs ratio and spread")
    return data


def settings_of(data: Mapping[str, Any], path: Path) -> CheckSettings:
    try:
        return CheckSettings.model_validate(data.get("settings", {}))
    except ValidationError as exc:
        raise DataFormatError(path, validation_line(exc, "settings")) from None


def settings_for_update(path: Path) -> CheckSettings:
    """The settings an update measures with: the existing file's, else the defaults."""
    path = Path(path)
    if not path.is_file():
        return CheckSettings()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    return (
        settings_of(data, path)
        if isinstance(data, dict) and "settings" in data
        else (CheckSettings())
    )


def write_baseline(path: Path, measurement: Measurement, settings: CheckSettings) -> Path:
    """Write the baseline atomically (a temporary file renamed over the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(measurement.to_json(settings), indent=1) + "\n"
    return atomic_write_text(path, text)
