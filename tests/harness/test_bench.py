"""The throughput bench: what it times, counts and reports, on the smoke profile's shapes."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from asma_bench.backbones import count_flops
from asma_bench.commands import bench as bench_command
from asma_bench.errors import ConfigError
from asma_bench.harness.bench import (
    PHASES,
    InferenceWorkload,
    StepWorkload,
    bench_config,
    measure,
    parse_shapes,
    run_bench,
)


@pytest.fixture(scope="module")
def report():
    torch.manual_seed(0)
    return run_bench(["smoke"], steps=2, warmup=1, rounds=2, batch_size=8)


def test_every_workload_is_measured_with_consistent_numbers(report):
    names = [m.workload for m in report.measurements]
    assert names == ["step:barlow_twins", "step:asma", "inference"]
    for m in report.measurements:
        assert m.shapes == "smoke" and m.batch == 8 and m.steps == 4  # 2 rounds x 2 steps
        assert m.step_s_min <= m.step_s <= m.step_s_max
        assert m.samples_per_s == pytest.approx(m.batch / m.step_s)
        assert m.gflops == pytest.approx(m.gflop / m.step_s)
        assert m.peak_memory_mib > 0 and m.memory == "rss"


def test_phase_shares_partition_the_step(report):
    for m in report.measurements[:2]:
        assert set(m.shares) == set(PHASES)
        assert sum(m.shares.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(share > 0 for share in m.shares.values())


def test_flops_follow_the_architecture(report):
    bt, asma, inference = report.measurements
    # two encoders and projectors of the same shapes, each on its own three augmented
    # views: exactly twice the work of one
    cfg = bench_config("smoke", "barlow_twins", 8)
    assert asma.gflop == pytest.approx(2 * bt.gflop, rel=1e-12)
    # inference is one encoder forward, counted independently by the backbone helper
    workload = InferenceWorkload(cfg)
    assert inference.gflop == pytest.approx(count_flops(workload.encoder, workload.x) / 1e9)
    # a step runs three streams forward and backward
    assert bt.gflop > 6 * inference.gflop


def test_memory_accounts_for_adam_state_and_saved_activations(report):
    bt, asma, inference = report.measurements
    # parameters, gradients and Adam's two moments: four float32 copies (+ step counters)
    assert bt.state_mib == pytest.approx(4 * 4 * bt.params_m * 1e6 / 2**20, rel=1e-3)
    assert asma.state_mib == pytest.approx(2 * bt.state_mib, rel=1e-9)
    assert bt.activations_mib > 0 and asma.activations_mib > bt.activations_mib
    assert inference.activations_mib == 0


def test_report_serialises_and_tabulates(report):
    data = json.loads(json.dumps(report.as_dict()))
    assert data["environment"]["device"] == "cpu"
    assert data["environment"]["threads"] == torch.get_num_threads()
    assert [row["workload"] for row in data["measurements"]] == [
        m.workload for m in report.measurements
    ]
    table = report.table()
    assert table.loc[("smoke", "step:asma"), "samples/s"] == pytest.approx(
        report.measurements[1].samples_per_s
    )


def test_masked_timing_wraps_the_real_strategies():
    workload = StepWorkload(bench_config("smoke", "asma", 8))
    strategies = [workload.objective.theta.spatial, workload.objective.phi.temporal]
    assert [s.name for s in strategies] == ["hdsm", "hmtm"]  # the ASMa pairings, timed
    (m,) = measure([workload], steps=1, warmup=0, count_flops=False)
    assert m.shares["mask"] > 0 and m.gflop == 0


def test_fused_optimizer_and_bad_arguments():
    cfg = bench_config("smoke", "barlow_twins", 8)
    fused = StepWorkload(cfg, optimizer="fused")
    assert fused.opt.defaults["fused"] is True
    with pytest.raises(ConfigError, match="optimizer"):
        StepWorkload(cfg, optimizer="sgd")
    with pytest.raises(ConfigError, match="steps"):
        measure([fused], steps=0)
    with pytest.raises(ConfigError, match="objective"):
        run_bench(["smoke"], ["moco"])
    assert parse_shapes("both") == ("paper", "quick")
    with pytest.raises(ConfigError, match="--shapes"):
        parse_shapes("huge")


def test_cli_prints_json(tmp_path):
    app = typer.Typer()
    app.command()(bench_command.bench)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        ["--shapes", "smoke", "--steps", "1", "--warmup", "0", "--batch-size", "8",
         "--objectives", "barlow_twins", "--no-inference", "--no-flops", "--json",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [row["workload"] for row in data["measurements"]] == ["step:barlow_twins"]
    assert json.loads(out.read_text()) == data


def test_cli_passes_overrides_and_prints_a_table():
    app = typer.Typer()
    app.command()(bench_command.bench)
    result = CliRunner().invoke(
        app,
        ["--shapes", "smoke", "--steps", "1", "--warmup", "0", "--batch-size", "8",
         "--objectives", "barlow_twins", "--no-flops", "--set", "masking.mode=drop"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "step:barlow_twins" in result.output and "inference" in result.output
    assert "samples/s" in result.output
