"""Stores for report tests: fabricated MLflow runs with known numbers, and one real smoke run.

The fabricated store mimics what the runner logs (tags, flat params, step-0 metrics,
``predictions.npz``, ``config.json``) for a few masking-pair cells whose per-sample
correctness is constructed, so every statistic has an independently known answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric

from asma_bench.config import build_config
from asma_bench.harness.tracking import TAG_CELL, TAG_FAILURE, TAG_SEED, TAG_UNIT, Tracker

SEEDS = (0, 1, 2, 3, 4)
NUM_TEST = 200
NUM_CLASSES = 5


@dataclass
class FakeCell:
    name: str
    labels: dict
    correct: dict[int, np.ndarray] = field(default_factory=dict)  # seed -> (NUM_TEST,) bool
    failed: dict[int, str] = field(default_factory=dict)  # seed -> reason
    shuffle: bool = False  # store predictions in a shuffled sample order
    overrides: dict = field(default_factory=dict)
    extra: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)  # theta_test, ...
    metrics: dict[str, dict[int, float]] = field(default_factory=dict)  # more: name -> seed

    def accuracy(self, seed: int) -> float:
        return 100.0 * float(self.correct[seed].mean())


def logits_for(correct: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One-hot logits: the label where correct, the next class where wrong."""
    pred = np.where(correct, labels, (labels + 1) % NUM_CLASSES)
    out = np.zeros((len(labels), NUM_CLASSES), np.float32)
    out[np.arange(len(labels)), pred] = 1.0
    return out


def fabricate(
    uri: str,
    root: Path,
    grid: str,
    cells: list[FakeCell],
    profile: str = "smoke",
    table: str = "Table 9 / Fig. 3",
    parent_params: dict | None = None,
    parent_tags: dict | None = None,
) -> None:
    """Log ``cells`` as units of ``grid``; ``parent_params`` / ``parent_tags`` add to the
    grid's parent run (e.g. the requested seeds, as older and newer runners record them)."""
    tracker = Tracker(uri, experiment="asma-bench", artifact_root=root / "artifacts")
    parent = tracker.parent_run(grid, {"asma.profile": profile, **(parent_tags or {})})
    tracker.log_params(
        parent, {"grid": grid, "profile": profile, "table": table, **(parent_params or {})}
    )
    labels = np.arange(NUM_TEST) % NUM_CLASSES
    indices = 1000 + np.arange(NUM_TEST)
    for cell in cells:
        for seed in SEEDS:
            if seed not in cell.correct and seed not in cell.failed:
                continue
            cfg = build_config("smoke", [cell.overrides, {"seed": seed}])
            source = cfg.data.source if cfg.data.source != "synthetic" else ""
            unit = f"{cell.name}-{seed}" + (f"-{source}" if source else "")
            run = tracker.start_unit(parent, grid, f"{cell.name}/seed{seed}", {
                TAG_UNIT: unit, TAG_CELL: cell.name, TAG_SEED: seed,
                "asma.protocol": "linear"})  # fmt: skip
            params = {
                **cfg.flat(),
                "protocol": "linear",
                "cell": cell.name,
                **{f"label.{k}": v for k, v in cell.labels.items()},
            }
            tracker.log_params(run, params)
            if seed in cell.failed:
                tracker.set_tags(run, {TAG_FAILURE: cell.failed[seed]})
                tracker.finish(run, "FAILED")
                continue
            correct = cell.correct[seed]
            order = (
                np.random.default_rng(seed).permutation(NUM_TEST)
                if cell.shuffle
                else np.arange(NUM_TEST)
            )
            path = root / run / "predictions.npz"
            path.parent.mkdir()
            sets = {"test": correct, **{k: v[seed] for k, v in cell.extra.items()}}
            arrays = {}
            for name, ok in sets.items():
                arrays[f"{name}.logits"] = logits_for(ok, labels)[order]
                arrays[f"{name}.labels"] = labels[order]
                arrays[f"{name}.indices"] = indices[order]
            np.savez(path, **arrays)
            tracker.log_artifact(run, path)
            tracker.log_dict(run, cfg.model_dump(mode="json"), "config.json")
            metrics = [
                *(Metric(f"{k}_top1", 100.0 * float(v.mean()), 0, 0) for k, v in sets.items()),
                *(Metric("linear_loss", 2.0 - 0.5 * e + 0.01 * seed, 0, e) for e in range(3)),
                *(Metric(k, v[seed], 0, 0) for k, v in cell.metrics.items() if seed in v),
            ]
            tracker.client.log_batch(run, metrics=metrics)
            tracker.finish(run, "FINISHED")


def make_cells() -> dict[str, FakeCell]:
    """random_random (baseline), an identical copy, a large effect, a partly failed and an
    all-failed cell, and the random_init reference."""
    rng = np.random.default_rng(0)
    base = {s: rng.random(NUM_TEST) < 0.5 for s in SEEDS}
    better = {}
    for s in SEEDS:
        gain = (~base[s]) & (rng.random(NUM_TEST) < 0.4)  # only ever fixes baseline errors
        better[s] = base[s] | gain
    partly = {s: base[s] ^ (rng.random(NUM_TEST) < 0.05) for s in SEEDS[1:]}
    weak = {s: rng.random(NUM_TEST) < 0.3 for s in SEEDS}
    return {
        "random_random": FakeCell(
            "random_random", {"spatial": "random", "temporal": "random"}, base
        ),
        "ldsm_hmtm": FakeCell(
            "ldsm_hmtm", {"spatial": "LDSM", "temporal": "HMTM"}, dict(base.items())
        ),
        "hdsm_lmtm": FakeCell(
            "hdsm_lmtm", {"spatial": "HDSM", "temporal": "LMTM"}, better, shuffle=True
        ),
        "hdsm_hmtm": FakeCell(
            "hdsm_hmtm",
            {"spatial": "HDSM", "temporal": "HMTM"},
            partly,
            failed={0: "pretrain: loss is nan at epoch 0; stopping this unit"},
        ),
        "ldsm_lmtm": FakeCell(
            "ldsm_lmtm",
            {"spatial": "LDSM", "temporal": "LMTM"},
            failed={s: "pretrain: loss is inf at epoch 1" for s in SEEDS},
        ),
        "random_init": FakeCell(
            "random_init", {"reference": "random init"}, weak, overrides={"pretrain": {"epochs": 0}}
        ),
    }


def matrix_cells() -> list[FakeCell]:
    """An n x k grid (Table 7 style), two seeds."""
    rng = np.random.default_rng(5)
    return [
        FakeCell(
            f"n{n}_k{k}",
            {"n": n, "k": k},
            {s: rng.random(NUM_TEST) < 0.3 + 0.05 * n + 0.02 * k for s in (0, 1)},
        )
        for n in (7, 9)
        for k in (8, 10)
    ]


def mixed_cells() -> list[FakeCell]:
    """One cell whose two seeds ran with different configurations."""
    rng = np.random.default_rng(0)
    return [
        FakeCell("a", {}, {0: rng.random(NUM_TEST) < 0.5}),
        FakeCell("a", {}, {1: rng.random(NUM_TEST) < 0.5}, overrides={"linear": {"epochs": 7}}),
    ]


def tau_cells() -> list[FakeCell]:
    """A one-axis sweep (Fig. 4 style), three seeds."""
    rng = np.random.default_rng(7)
    return [
        FakeCell(
            f"tau{t}", {"tau": t}, {s: rng.random(NUM_TEST) < 0.4 + 0.03 * t for s in (0, 1, 2)}
        )
        for t in (1, 4, 8)
    ]


def encoder_cells() -> list[FakeCell]:
    """Two-encoder cells with per-encoder predictions (Fig. 6): f_theta is right on class 0
    only, f_phi on classes 1 and 2."""
    labels = np.arange(NUM_TEST) % NUM_CLASSES
    theta, phi = labels == 0, np.isin(labels, [1, 2])
    extra = {"theta_test": {s: theta for s in (0, 1)}, "phi_test": {s: phi for s in (0, 1)}}
    rng = np.random.default_rng(3)
    return [
        FakeCell(
            name,
            {"encoders": name},
            {s: rng.random(NUM_TEST) < 0.6 for s in (0, 1)},
            extra=extra,
            overrides={"pretrain": {"objective": "asma"}},
        )
        for name in ("aligned", "concat")
    ]


@dataclass
class FakeStore:
    uri: str
    root: Path
    cells: dict[str, FakeCell]
    matrix: list[FakeCell]


@pytest.fixture(scope="session")
def fake_store(tmp_path_factory) -> FakeStore:
    """In one store: ``masking_pairs`` (see make_cells), ``mine`` (n x k), ``mixed``,
    ``distill_tau`` (one numeric axis) and ``encoders`` (both encoders' predictions)."""
    root = tmp_path_factory.mktemp("fake_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cells = make_cells()
    fabricate(uri, root, "masking_pairs", list(cells.values()))
    matrix = matrix_cells()
    fabricate(uri, root, "mine", matrix, table="Table 7")
    fabricate(uri, root, "mixed", mixed_cells())
    fabricate(uri, root, "distill_tau", tau_cells(), table="Fig. 4 (left)")
    fabricate(uri, root, "encoders", encoder_cells(), table="Table 3")
    return FakeStore(uri, root, cells, matrix)


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory) -> Path:
    """A real, small masking_pairs run on the smoke profile (2 pairs, 2 seeds)."""
    from asma_bench.harness.grids import load_grid
    from asma_bench.harness.runner import RunOptions, run_grid

    out = tmp_path_factory.mktemp("smoke_runs")
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells = [c for c in grid.cells if c.name in ("ldsm_hmtm", "random_random")]
    grid.references = []
    outcome = run_grid(grid, RunOptions(profile="smoke", seeds=[0, 1], out=out, progress=False))
    assert not outcome.failed
    return out
