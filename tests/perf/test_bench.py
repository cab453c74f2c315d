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
from asma_bench.perf.bench import PHASES, isolated_peak_mib, measure, parse_shapes, run_bench
from asma_bench.perf.workloads import InferenceWorkload, StepWorkload, bench_config


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
    # ASMa: both encoders' parameters and moments, but one encoder's gradients at a time
    # (f_θ is updated and its gradients freed before f_ϕ's passes): 3.5 copies, not 4
    assert asma.state_mib == pytest.approx(2 * bt.state_mib * 7 / 8, rel=1e-3)
    # ASMa finishes f_θ's backward pass before f_ϕ's forward pass: one encoder's
    # activations alive at a time, the same as the single-encoder step's
    assert bt.activations_mib > 0
    assert asma.activations_mib == pytest.approx(bt.activations_mib, rel=0.01)
    assert inference.activations_mib == 0


def test_peak_memory_of_each_workload_in_its_own_process(report):
    """The default CPU memory is each workload's own process: ASMa (two encoders and
    projectors, one encoder's activations at a time) needs more than the single-encoder
    step and inference less; a number that the shared process cannot give."""
    assert report.environment["memory"] == "isolated"
    assert all(m.memory == "rss" and m.peak_memory_mib > 0 for m in report.measurements)
    # a 4096-wide projector: parameters, gradients and Adam's moments of its two
    # 4096 × 4096 layers are 512 MiB; ASMa holds a second encoder's parameters and
    # moments (384 MiB) but one encoder's gradients at a time
    wide = ["pretrain.projector_dim=4096"]
    peaks = {
        name: isolated_peak_mib(kind, bench_config("smoke", objective, 8, wide), "foreach", 1)
        for name, kind, objective in (("inference", "inference", "barlow_twins"),
                                      ("bt", "step", "barlow_twins"), ("asma", "step", "asma"))
    }  # fmt: skip
    assert peaks["bt"] - peaks["inference"] > 400
    assert peaks["asma"] - peaks["bt"] > 300
    quiet = dict(steps=1, warmup=0, batch_size=8, inference=False, count_flops=False)
    (shared,) = run_bench(["smoke"], ["barlow_twins"], memory="shared", **quiet).measurements
    assert shared.memory == "shared rss"
    with pytest.raises(ConfigError, match="memory='none' is not one of isolated, shared"):
        run_bench(["smoke"], memory="none")


def test_operator_table_accounts_for_the_step():
    quiet = dict(steps=1, warmup=0, batch_size=8, inference=False, count_flops=False)
    report = run_bench(["smoke"], ["barlow_twins"], memory="shared", operators=5, **quiet)
    (rows,) = report.operators.values()
    assert list(report.operators) == ["smoke step:barlow_twins"]
    assert len(rows) == 5 and all(row["calls"] >= 1 for row in rows)
    shares = [row["share"] for row in rows]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
    # a step multiplies matrices: some product is among its most expensive operators
    assert any(row["operator"] in ("aten::mm", "aten::bmm", "aten::addmm",
                                   "aten::convolution_backward") for row in rows)  # fmt: skip
    assert json.loads(json.dumps(report.as_dict()))["operators"] == report.operators


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
    assert fused.opt.defaults["fused"] is True and fused.optimizer == "fused"
    # by default each profile's own: the paper profile's Adam is fused, smoke's is not
    assert StepWorkload(cfg).opt.defaults["foreach"] is True
    paper = bench_config("paper", "barlow_twins", 8)
    assert paper.pretrain.fused_adam and not cfg.pretrain.fused_adam
    fused_adam = cfg.pretrain.model_copy(update={"fused_adam": True})
    assert StepWorkload(cfg.model_copy(update={"pretrain": fused_adam})).optimizer == "fused"
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
