"""Edge latency: ONNX export checked against PyTorch, table structure, ratios from the
measured numbers. Latency itself is measured, never asserted."""

import json

import numpy as np
import pytest
import torch

from asma_bench.errors import ConfigError
from asma_bench.perf.latency import (
    LatencyOptions,
    ModelResult,
    OnnxMismatchError,
    Timing,
    check_onnx,
    export_onnx,
    latency_table,
    onnx_accuracy,
    quantize_int8,
    ratios,
    run_latency,
)
from asma_bench.perf.timing import latency_summary


def timing(threads, p50, p95, mean):
    return Timing(threads, p50, p95, mean, 1000.0 / mean, 100.0, 20.0, 10)


def test_latency_summary_by_hand():
    s = latency_summary([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["p50_ms"] == 3.0
    assert s["p95_ms"] == pytest.approx(4.0 + 0.8 * 96.0)  # linear interpolation at 3.8
    assert s["mean_ms"] == 22.0 and s["fps"] == pytest.approx(1000.0 / 22.0)
    with pytest.raises(ConfigError):
        latency_summary([])


def test_ratios_and_table_from_measured_numbers():
    teacher = ModelResult(
        "teacher (fp32)",
        "t.onnx",
        6_300_000,
        4_500_000_000,
        25.0,
        87.0,
        timings={1: timing(1, 60.0, 66.0, 61.0), 2: timing(2, 35.0, 40.0, 36.0)},
    )
    student = ModelResult(
        "student (fp32)",
        "s.onnx",
        540_000,
        1_260_000_000,
        2.2,
        86.0,
        timings={1: timing(1, 20.0, 22.0, 21.0), 2: timing(2, 14.0, 16.0, 15.0)},
    )
    r = ratios(teacher, student)
    assert r["params"] == pytest.approx(6.3e6 / 0.54e6)
    assert r["flops"] == pytest.approx(4.5 / 1.26)
    assert r["size_mb"] == pytest.approx(25.0 / 2.2)
    assert r["p50_ms@1"] == pytest.approx(3.0) and r["p95_ms@2"] == pytest.approx(2.5)
    assert r["fps@1"] == pytest.approx(61.0 / 21.0)
    table = latency_table([teacher, student])
    assert list(table.index) == ["teacher (fp32)", "student (fp32)", "teacher / student (fp32)"]
    assert table.loc["teacher (fp32)", "params (M)"] == pytest.approx(6.3)
    assert table.loc["student (fp32)", "GFLOPs / clip"] == pytest.approx(1.26)
    assert table.loc["teacher / student (fp32)", "p50 ms (2T)"] == pytest.approx(35.0 / 14.0)
    assert table.loc["student (fp32)", "FPS (1T)"] == pytest.approx(1000.0 / 21.0)


def test_onnx_export_check_accuracy_and_int8(tmp_path):
    from asma_bench.backbones import create_backbone

    torch.manual_seed(0)
    model = create_backbone(
        "student", layout="ntu25", base_channels=4, num_blocks=2, out_dim=6
    ).eval()
    x = torch.randn(12, 3, 8, 25, 2)
    y = torch.arange(12) % 6
    path = tmp_path / "m.onnx"
    assert export_onnx(model, x[:1], path, exporter="dynamo") == "dynamo"
    assert check_onnx(path, model, x[:3]) < 1e-4
    with torch.no_grad():
        expected = 100.0 * float((model(x).argmax(1) == y).float().mean())
    assert onnx_accuracy(path, x, y) == pytest.approx(expected)
    int8 = quantize_int8(path, tmp_path / "m8.onnx", x[:6].numpy())
    assert int8.stat().st_size < path.stat().st_size
    assert 0.0 <= onnx_accuracy(int8, x, y) <= 100.0
    with torch.no_grad():  # a model that no longer matches its export is caught
        dict(model.named_parameters())["blocks.1.residual.0.weight"].add_(0.5)
    with pytest.raises(OnnxMismatchError, match="differs from PyTorch"):
        check_onnx(path, model, x[:3])
    with pytest.raises(ConfigError, match="exporter"):
        export_onnx(model, x[:1], path, exporter="tflite")


@pytest.mark.slow
def test_latency_smoke_end_to_end(tmp_path):
    # the TorchScript exporter here for speed; the dynamo exporter is tested above
    opts = LatencyOptions(
        profile="smoke", threads=(1,), runs=3, warmup=1, calibration=8, exporter="torchscript"
    )
    result = run_latency(opts, tmp_path / "reports", tmp_path / "work")
    names = [m.name for m in result.models]
    assert names == ["teacher (fp32)", "student (fp32)", "student (int8)"]
    teacher, student, int8 = result.models
    assert teacher.exporter == "torchscript" and teacher.max_abs_diff < 1e-4
    assert student.max_abs_diff < 1e-4
    # the teacher is 3s-ASMa (three aligned two-encoder models), the student one ST-GCN
    assert teacher.params > 0 and student.params > 0 and teacher.params != student.params
    assert int8.size_mb < student.size_mb and int8.params == student.params
    for m in result.models:
        assert 0.0 <= m.accuracy <= 100.0
        t = m.timings[1]
        assert t.p50_ms == pytest.approx(float(np.percentile(t.times_ms, 50)))
        assert t.fps == pytest.approx(1000.0 / np.mean(t.times_ms)) and t.peak_rss_mb > 0
    # PyTorch and ONNX Runtime give the same accuracy on the same test split
    assert teacher.accuracy == pytest.approx(teacher.torch_accuracy)
    assert student.accuracy == pytest.approx(student.torch_accuracy)
    # the ratio rows are computed from the measured numbers written to JSON
    payload = json.loads(result.files["json"].read_text())
    tj, sj = payload["models"][0], payload["models"][1]
    row = result.table.loc["teacher / student (fp32)"]
    assert row["p50 ms (1T)"] == pytest.approx(
        tj["timings"]["1"]["p50_ms"] / sj["timings"]["1"]["p50_ms"]
    )
    assert row["params (M)"] == pytest.approx(tj["params"] / sj["params"])
    assert payload["ratios"]["student (int8)"]["size_mb"] == pytest.approx(
        tj["size_mb"] / payload["models"][2]["size_mb"]
    )
    folder = tmp_path / "reports" / "latency"
    assert "teacher / student (int8)" in (folder / "latency.md").read_text()
    assert "latency/latency.csv" in (tmp_path / "reports" / "index.html").read_text()
    with pytest.raises(ConfigError, match="--threads"):
        LatencyOptions(threads=(0,))


def test_int8_calibration_draws_every_class_alike():
    from asma_bench.perf.latency import calibration_clips

    # a training split stored class by class: its first 40 clips are all class 0
    y = torch.arange(4).repeat_interleave(40)
    x = torch.arange(160.0).view(-1, 1, 1, 1, 1).expand(-1, 3, 2, 5, 1).clone()  # clip = row
    clips = calibration_clips(x, y, 40, seed=0)
    rows = clips[:, 0, 0, 0, 0].astype(int)
    assert len(set(rows)) == 40 and np.bincount(rows // 40).tolist() == [10, 10, 10, 10]
    np.testing.assert_array_equal(clips, calibration_clips(x, y, 40, seed=0))  # seeded
    assert not np.array_equal(clips, calibration_clips(x, y, 40, seed=1))
    assert len(calibration_clips(x, y, 1000, seed=0)) == 160  # at most the split
