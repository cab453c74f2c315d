"""Edge latency of the ASMa teacher and its distilled student (paper Table 2).

The teacher — for each of the joint, bone and motion streams both encoders, the alignment
module and its head (an ``EncoderClassifier`` in ``aligned`` mode, linear-probed), fused
into one model that takes the joint clip (3s-ASMa, as in the paper's Table 2; one stream
with ``distill.teacher_streams=[joint]``) — and the student trained by logit distillation (eqs.
13–14) are exported to ONNX, checked against PyTorch, and timed with ONNX Runtime on the
CPU at batch 1 for each intra-op thread count. Each timing runs in a fresh process so its
peak resident memory is that of ONNX Runtime and one model. The student is also quantised
to int8 (static QDQ, per-channel weights, calibrated on training clips) and the fp32 and
int8 students are scored on the same test split.

The paper measured on a Raspberry Pi 4B; numbers here are for the machine this runs on,
and the teacher/student ratios are what carries over.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import platform
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from asma_bench.backbones import count_flops, count_parameters
from asma_bench.config import RunConfig, build_config
from asma_bench.errors import AsmaBenchError, ConfigError
from asma_bench.perf.models import teacher_and_student
from asma_bench.perf.timing import latency_summary
from asma_bench.protocols.base import UnitContext
from asma_bench.reports import html
from asma_bench.reports.render import markdown_table
from asma_bench.training.data import PreparedData, prepare_data, resolve_splits
from asma_bench.training.loop import predict, seed_everything

log = logging.getLogger(__name__)

EXPORTERS = ("dynamo", "torchscript")


class OnnxMismatchError(AsmaBenchError):
    """ONNX Runtime's outputs differ from PyTorch's beyond the tolerance."""


@dataclass
class Timing:
    """Batch-1 latency of one model at one thread count (milliseconds, megabytes)."""

    threads: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    fps: float
    peak_rss_mb: float
    rss_increase_mb: float
    runs: int
    times_ms: list[float] = field(default_factory=list)  # every timed run, for re-analysis


@dataclass
class ModelResult:
    name: str
    path: str
    params: int
    flops: int
    size_mb: float
    accuracy: float  # test top-1 (%) through ONNX Runtime
    torch_accuracy: float | None = None  # the same through PyTorch (None for int8)
    max_abs_diff: float | None = None  # ONNX Runtime vs PyTorch logits
    exporter: str = ""
    timings: dict[int, Timing] = field(default_factory=dict)


# --------------------------------------------------------------------------- models
def latency_config(
    profile: str = "quick", overrides: Sequence[str | dict] = (), seed: int = 0
) -> RunConfig:
    """The profile with ASMa's two encoders, aligned linear probe, a linear teacher for each
    of the joint, bone and motion streams (3s-ASMa, the teacher of the paper's Table 2:
    6.3 M parameters against the student's 0.54 M). ``--set
    distill.teacher_streams=[joint]`` times a single-stream teacher instead."""
    base = {
        "pretrain": {"objective": "asma"},
        "linear": {"features": "aligned"},
        "distill": {"teacher": "linear", "teacher_streams": ["joint", "bone", "motion"]},
    }
    return resolve_splits(build_config(profile, [base, *overrides, {"seed": seed}]))


def latency_models(
    cfg: RunConfig, work_dir: Path, device: str = "cpu", train: bool = True
) -> tuple[nn.Module, nn.Module, PreparedData]:
    """(teacher, student, data): the linear-probed aligned teacher and its student
    (:func:`~asma_bench.perf.models.teacher_and_student`), reusing pretraining / probe /
    student checkpoints under ``work_dir``.

    ``train=False`` builds both architectures with their initial weights (seeded with the
    config's seed): latency, size and FLOPs do not depend on the weights, so the
    paper-sized models can be timed without training them (accuracy is then not reported).
    """
    ctx = UnitContext(
        data_root=Path(work_dir) / "data", ckpt_dir=Path(work_dir) / "checkpoints", device=device
    )
    data = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    if not train:
        seed_everything(cfg.seed, cfg.deterministic)
    teacher, student = teacher_and_student(cfg, data, ctx if train else None)
    return teacher, student, data


# --------------------------------------------------------------------------- ONNX
def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, exporter: str = "dynamo"
) -> str:
    """Export ``model`` (eval mode, batch of ``example``) to one self-contained ONNX file.

    ``dynamo`` (``torch.onnx.export(dynamo=True)``, weights inside the file) falls back to
    the TorchScript exporter if it fails; returns the exporter that produced the file.
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    names = {"input_names": ["clip"], "output_names": ["logits"]}
    if exporter == "dynamo":
        try:
            with _quiet():
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                    **names,
                )
            return "dynamo"
        except Exception as exc:  # the exporter raises many types; fall back, keep a trace
            log.warning(
                "dynamo ONNX export failed (%s: %s); using the TorchScript exporter",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
    with _quiet():
        torch.onnx.export(model, (example,), str(path), dynamo=False, **names)
    return "torchscript"


def onnx_session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort  # lazy: heavy, only needed once a model is exported

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_onnx(
    path: Path, model: nn.Module, x: torch.Tensor, rtol: float = 1e-3, atol: float = 1e-4
) -> float:
    """Max |ONNX Runtime − PyTorch| over the clips ``x`` (one at a time, batch 1);
    raises :class:`OnnxMismatchError` unless ``np.allclose(ort, torch, rtol, atol)``."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    worst = 0.0
    with torch.no_grad():
        for i in range(len(x)):
            clip = x[i : i + 1]
            ref = model(clip).numpy()
            got = session.run(None, {name: clip.numpy()})[0]
            if not np.allclose(got, ref, rtol=rtol, atol=atol):
                raise OnnxMismatchError(
                    f"{path.name}: ONNX Runtime differs from PyTorch on clip {i} (max |Δ| = "
                    f"{np.abs(got - ref).max():.3g} > atol {atol:g} + rtol {rtol:g})"
                )
            worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def onnx_accuracy(path: Path, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy (%) of an ONNX model over clips ``x`` at batch 1."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    xs = x.numpy()
    pred = np.array(
        [session.run(None, {name: xs[i : i + 1]})[0].argmax(1)[0] for i in range(len(xs))]
    )
    return 100.0 * float((pred == y.numpy()).mean()) if len(xs) else float("nan")


def quantize_int8(fp32: Path, int8: Path, calibration: np.ndarray) -> Path:
    """Static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations),
    activation ranges calibrated on ``calibration`` clips (N, C, T, V, M) at batch 1."""
    # lazy: ONNX Runtime's quantisation tools are heavy and only needed here
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str, clips: np.ndarray):
            self._it = iter([{name: clips[i : i + 1]} for i in range(len(clips))])

        def get_next(self) -> dict | None:
            return next(self._it, None)

    name = onnx_session(fp32).get_inputs()[0].name
    pre = int8.with_suffix(".pre.onnx")
    source = fp32
    with _quiet():
        try:
            quant_pre_process(str(fp32), str(pre))
            source = pre
        except Exception as exc:  # pre-processing is an optimisation; quantise without it
            log.info("quantisation pre-processing skipped: %s", exc)
        quantize_static(
            str(source),
            str(int8),
            Reader(name, calibration.astype(np.float32)),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
    pre.unlink(missing_ok=True)
    return int8


def calibration_clips(x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0) -> np.ndarray:
    """``n`` training clips for int8 calibration, as many of each class as ``n`` allows
    (a seeded draw): a dataset stored class by class would otherwise calibrate the
    activation ranges on its first class. On NW-UCLA, where the first 64 training clips
    are all of class 0, they cost the `quick` student 1.08 points of test accuracy; 64
    stratified clips cost none, 256 cost 0.65 (3 of 464 clips)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=gen)
    by_class: dict[int, list[int]] = {}
    for i in order.tolist():
        by_class.setdefault(int(y[i]), []).append(i)
    picked: list[int] = []
    while len(picked) < min(n, len(y)):  # round robin over the classes
        for rows in by_class.values():
            if rows and len(picked) < n:
                picked.append(rows.pop())
    return x[sorted(picked)].numpy()


# --------------------------------------------------------------------------- timing
def measure(
    path: Path, threads: int, runs: int = 100, warmup: int = 10, timeout: float = 600.0
) -> Timing:
    """Time ``runs`` batch-1 inferences of ``path`` in a fresh process (see
    ``_ort_worker``); also its peak resident memory and the increase over the bare process."""
    if threads < 1 or runs < 1 or warmup < 0:
        raise ConfigError(
            f"threads and runs must be >= 1, warmup >= 0 (got {threads}, {runs}, {warmup})"
        )
    cmd = [
        sys.executable,
        "-m",
        "asma_bench.perf._ort_worker",
        str(path),
        str(threads),
        str(runs),
        str(warmup),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise AsmaBenchError(f"{path.name}: ONNX Runtime timing failed: {last}")
    raw = json.loads(proc.stdout)
    s = latency_summary(raw["times_ms"])
    return Timing(
        threads,
        s["p50_ms"],
        s["p95_ms"],
        s["mean_ms"],
        s["fps"],
        raw["peak_rss_mb"],
        raw["peak_rss_mb"] - raw["base_rss_mb"],
        runs,
        [float(t) for t in raw["times_ms"]],
    )


def count_cost(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(parameters, FLOPs of one forward pass at batch 1; a multiply-add counts 2)."""
    return count_parameters(model), count_flops(model, example[:1])


# --------------------------------------------------------------------------- tables
def ratios(teacher: ModelResult, student: ModelResult) -> dict[str, float]:
    """Teacher / student ratios: size and cost (× smaller), latency (× faster), FPS (×)."""
    out = {
        "params": teacher.params / student.params,
        "flops": teacher.flops / student.flops,
        "size_mb": teacher.size_mb / student.size_mb,
    }
    for threads, t in teacher.timings.items():
        s = student.timings.get(threads)
        if s is None:
            continue
        out[f"p50_ms@{threads}"] = t.p50_ms / s.p50_ms
        out[f"p95_ms@{threads}"] = t.p95_ms / s.p95_ms
        out[f"fps@{threads}"] = s.fps / t.fps  # student frames per teacher frame
    return out


def latency_table(models: Sequence[ModelResult]) -> pd.DataFrame:
    """Paper Table 2: one row per model, then teacher / student ratio rows."""
    rows = []
    for m in models:
        row: dict[str, Any] = {
            "model": m.name,
            "params (M)": m.params / 1e6,
            "GFLOPs / clip": m.flops / 1e9,
            "ONNX size (MB)": m.size_mb,
        }
        for threads, t in sorted(m.timings.items()):
            row[f"p50 ms ({threads}T)"] = t.p50_ms
            row[f"p95 ms ({threads}T)"] = t.p95_ms
            row[f"FPS ({threads}T)"] = t.fps
        row["peak RSS (MB)"] = max((t.peak_rss_mb for t in m.timings.values()), default=np.nan)
        row["test top-1 (%)"] = m.accuracy
        rows.append(row)
    teacher = next((m for m in models if m.name.startswith("teacher")), None)
    for student in (m for m in models if m.name.startswith("student")):
        if teacher is None:
            break
        r = ratios(teacher, student)
        row = {
            "model": f"teacher / {student.name}",
            "params (M)": r["params"],
            "GFLOPs / clip": r["flops"],
            "ONNX size (MB)": r["size_mb"],
        }
        for threads in sorted(teacher.timings):
            if f"p50_ms@{threads}" in r:
                row[f"p50 ms ({threads}T)"] = r[f"p50_ms@{threads}"]
                row[f"p95 ms ({threads}T)"] = r[f"p95_ms@{threads}"]
                row[f"FPS ({threads}T)"] = r[f"fps@{threads}"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def latency_notes(results: Sequence[ModelResult], opts: Any) -> list[str]:
    """What the table cannot say by itself: ONNX checks, training state, odd sizes."""
    notes = []
    for m in results:
        if m.max_abs_diff is not None:
            torch_acc = (
                f"; PyTorch test top-1 {m.torch_accuracy:.2f} %"
                if m.torch_accuracy is not None and np.isfinite(m.torch_accuracy)
                else ""
            )
            notes.append(
                f"{m.name}: ONNX ({m.exporter}) matches PyTorch, max |Δ logits| = "
                f"{m.max_abs_diff:.2e}{torch_acc}"
            )
    if not getattr(opts, "train", True):
        notes.append(
            "untrained models (architecture only): latency, size and FLOPs hold, "
            "accuracy is not measured"
        )
    teacher = next((m for m in results if m.name.startswith("teacher")), None)
    student = next((m for m in results if m.name.startswith("student")), None)
    int8 = next((m for m in results if m.name == "student (int8)"), None)
    if student and int8 and np.isfinite(student.accuracy) and np.isfinite(int8.accuracy):
        loss = student.accuracy - int8.accuracy
        notes.append(
            f"int8 student: test top-1 {int8.accuracy:.2f} % against the fp32 student's "
            f"{student.accuracy:.2f} %: "
            + (f"{loss:.2f} points lost to quantisation" if loss > 0 else "no accuracy lost")
        )
    if teacher and student and np.isfinite(teacher.accuracy) and np.isfinite(student.accuracy):
        gap = student.accuracy - teacher.accuracy
        notes.append(
            f"student vs teacher: {gap:+.2f} points of test top-1 with "
            f"{100 * (1 - student.params / teacher.params):.0f} % fewer parameters"
        )
    trained_now = list(getattr(opts, "trained_now", []) or [])
    if getattr(opts, "origin", None):
        notes.append(
            "trained now, by this command: " + ", ".join(trained_now)
            if trained_now
            else "every model was loaded from the runs folder's checkpoints; this command "
            "trained nothing"
        )
    if teacher and student and student.params >= teacher.params:
        notes.append(
            f"the student ({student.params / 1e6:.3g} M parameters) is not smaller "
            f"than the teacher ({teacher.params / 1e6:.3g} M): profile "
            f"{getattr(opts, 'profile', '?')} shrinks the teacher's backbone but not "
            "the student; `--profile paper --no-train` times the paper's sizes"
        )
    return notes


# --------------------------------------------------------------------------- driver
@dataclass
class LatencyOptions:
    profile: str = "quick"
    overrides: Sequence[str | dict] = ()
    seed: int = 0
    threads: Sequence[int] = (1, 2)
    runs: int = 100
    warmup: int = 10
    exporter: str = "dynamo"
    calibration: int = 256  # training clips the int8 activation ranges are calibrated on
    check_clips: int = 4
    device: str = "cpu"
    train: bool = True  # False: time the architectures with initial weights, no accuracy
    config: RunConfig | None = None  # the models' config (a grid's unit); None: the profile's
    origin: str | None = None  # where ``config`` comes from, for the caption
    trained_now: list[str] = field(default_factory=list)  # checkpoints this command trained

    def __post_init__(self) -> None:
        if not self.threads or any(t < 1 for t in self.threads):
            raise ConfigError(f"--threads must be positive integers, got {list(self.threads)}")
        if self.runs < 1:
            raise ConfigError(f"--runs must be >= 1, got {self.runs}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}")
        if self.exporter not in EXPORTERS:
            raise ConfigError(
                f"--exporter must be one of {', '.join(EXPORTERS)}, got {self.exporter!r}"
            )
        if self.calibration < 1:
            raise ConfigError(f"calibration clips must be >= 1, got {self.calibration}")


@dataclass
class LatencyResult:
    models: list[ModelResult]
    table: pd.DataFrame
    files: dict[str, Path]
    caption: str


def run_latency(
    opts: LatencyOptions,
    out_dir: Path,
    work_dir: Path = Path("runs"),
    progress: Callable[[str], None] | None = None,
) -> LatencyResult:
    """Build, export, check, quantise and time the teacher and student; write
    ``out_dir/latency/`` (Markdown, CSV, JSON, ONNX models, manifest) and the HTML page."""
    say = progress or (lambda _msg: None)
    cfg = opts.config or latency_config(opts.profile, opts.overrides, opts.seed)
    folder = Path(out_dir) / "latency"
    html.check_report_folder(folder.parent, [folder.name])  # refused before hours of training
    expected = model_checkpoints(cfg, Path(work_dir) / "checkpoints")
    before = {p.name for p in expected if p.is_file()}
    say(
        "training / loading the teacher and the student"
        if opts.train
        else "building the teacher and the student (untrained)"
    )
    teacher, student, data = latency_models(cfg, work_dir, opts.device, opts.train)
    trained = sorted(p.name for p in expected if p.is_file() and p.name not in before)
    models_dir = folder / "models"
    example = data.test.x[:1].clone()
    check = data.test.x[: opts.check_clips]
    results: list[ModelResult] = []
    for name, model, file in (
        ("teacher (fp32)", teacher, "teacher.onnx"),
        ("student (fp32)", student, "student.onnx"),
    ):
        say(f"exporting {name}")
        path = models_dir / file
        used = export_onnx(model, example, path, opts.exporter)
        diff = check_onnx(path, model, check)
        params, flops = count_cost(model, example)
        acc = torch_acc = float("nan")
        if opts.train:
            torch_pred = predict(model, data.test.x, data.test.y, data.test.index, 64)
            torch_acc = 100.0 * float(torch_pred.correct.mean())
            acc = onnx_accuracy(path, data.test.x, data.test.y)
        results.append(
            ModelResult(
                name,
                str(path),
                params,
                flops,
                path.stat().st_size / 1e6,
                acc,
                torch_acc,
                diff,
                used,
            )
        )
    say("quantising the student to int8")
    int8 = quantize_int8(
        models_dir / "student.onnx",
        models_dir / "student_int8.onnx",
        calibration_clips(data.train.x, data.train.y, opts.calibration, cfg.seed),
    )
    fp32_student = results[1]
    results.append(ModelResult(
        "student (int8)", str(int8), fp32_student.params, fp32_student.flops,
        int8.stat().st_size / 1e6,
        onnx_accuracy(int8, data.test.x, data.test.y) if opts.train else float("nan"),
        exporter=f"{fp32_student.exporter} + onnxruntime static QDQ",
    ))  # fmt: skip
    for m in results:
        for threads in opts.threads:
            say(f"timing {m.name} on {threads} thread(s)")
            m.timings[threads] = measure(Path(m.path), threads, opts.runs, opts.warmup)
    table = latency_table(results)
    caption = _caption(cfg, opts, data)
    if opts.config is not None:  # a grid's models: say which were trained now, not by it
        opts.trained_now = list(trained)
    files = _write(folder, results, table, caption, cfg, opts, data)
    return LatencyResult(results, table, files, caption)


def model_checkpoints(cfg: RunConfig, ckpt_dir: Path) -> list[Path]:
    """The checkpoints the teacher and student of ``cfg`` are loaded from (or trained
    into): each teacher stream's pretraining and linear head or fine-tuned model, and the
    student. What ``latency --runs`` lists as trained now is the part that did not exist
    before it ran (other processes writing to the same folder do not count)."""
    from asma_bench.protocols.unit_files import unit_checkpoint_paths

    paths: list[Path] = []
    teacher = "linear" if cfg.distill.teacher == "linear" else "finetune"
    for stream in cfg.distill.teacher_streams:
        cfg_s = cfg.model_copy(update={"data": cfg.data.model_copy(update={"stream": stream})})
        names = unit_checkpoint_paths(cfg_s, ckpt_dir)
        paths += [names["pretrain"], names[teacher]]
    paths.append(unit_checkpoint_paths(cfg, ckpt_dir)["student"])
    return list(dict.fromkeys(paths))


def _caption(cfg: RunConfig, opts: LatencyOptions, data: Any) -> str:
    _, _, frames, joints, bodies = data.test.x.shape
    return (
        f"Edge latency (paper Table 2) on {platform.machine()} CPU "
        f"({os.cpu_count()} cores), ONNX Runtime, batch 1, one clip of {frames} frames × "
        f"{joints} joints × {bodies} bodies; latency p50 / p95 in "
        f"ms over {opts.runs} runs after {opts.warmup} warm-up runs, FPS = 1000 / mean "
        f"latency, at {', '.join(str(t) for t in opts.threads)} intra-op thread(s) (T). "
        f"FLOPs from torch.utils.flop_counter (a multiply-add = 2 FLOPs). Peak RSS: the "
        f"timing process (Python + ONNX Runtime + model). Accuracy: test split of "
        f"{data.name} ({cfg.data.split}, {len(data.test)} clips) through ONNX Runtime. "
        + (f"Models: {opts.origin}" if opts.origin else f"Profile {opts.profile}, seed {opts.seed}")
        + "; ratio rows are teacher / student (FPS: student / teacher)."
    )


def _write(
    folder: Path,
    results: list[ModelResult],
    table: pd.DataFrame,
    caption: str,
    cfg: RunConfig,
    opts: LatencyOptions,
    data: Any,
) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "markdown": folder / "latency.md",
        "csv": folder / "latency.csv",
        "json": folder / "latency.json",
    }
    shown = table.map(_number)
    md = [f"**Table: {caption}**", "", markdown_table(shown.reset_index()), ""]
    md += [f"- {n}" for n in latency_notes(results, opts)]
    files["markdown"].write_text("\n".join(md) + "\n", encoding="utf-8")
    table.to_csv(files["csv"])
    payload = {
        "caption": caption,
        "profile": opts.profile,
        "options": {k: v for k, v in asdict(opts).items() if k not in ("overrides", "config")},
        "overrides": [str(o) for o in opts.overrides],
        "config": cfg.model_dump(mode="json"),
        "dataset": {"name": data.name, "split": cfg.data.split, "test_clips": len(data.test)},
        "models": [
            {**asdict(m), "timings": {str(k): asdict(t) for k, t in m.timings.items()}}
            for m in results
        ],
        "ratios": {s.name: ratios(results[0], s) for s in results[1:]},
        "units": {
            "params": "count",
            "flops": "FLOPs per clip (multiply-add = 2)",
            "size_mb": "MB (1e6 bytes)",
            "latency": "ms",
            "rss": "MiB",
        },
    }
    files["json"].write_text(json.dumps(payload, indent=1), encoding="utf-8")
    html.write_manifest(folder, {
        "title": "Edge latency — teacher vs student (Table 2)",
        "kind": "latency",
        "tables": [{"caption": caption, "html": shown.reset_index().to_html(index=False, border=0),
                    "files": {"Markdown": files["markdown"].name, "CSV": files["csv"].name,
                              "JSON": files["json"].name}}],
        "notes": latency_notes(results, opts),
        "figures": [],
    })  # fmt: skip
    html.build_index(folder.parent)
    return files


def _number(v: Any) -> Any:
    """Table text: whole numbers from 100 up, two decimals from 1, else 3 significant."""
    if not isinstance(v, float):
        return v
    if not np.isfinite(v):
        return "–"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' and quantiser's progress prints and warnings."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)
