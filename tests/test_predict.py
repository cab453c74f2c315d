"""From a trained unit to a prediction: ``load_model(...).predict`` on clips as stored
gives the run's own test accuracy, because it runs the run's test-time pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from asma_bench.api import load_model, load_results, run_grid
from asma_bench.errors import AsmaBenchError
from asma_bench.predict import EvalPipeline, Predictor, pipeline_path
from asma_bench.protocols.unit_files import unit_checkpoints
from asma_bench.reports.results import load_predictions, resolve_tracking_uri


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    """One linear and one fine-tuned unit (smoke profile, tiny synthetic data, seed 0),
    sharing their pretraining."""
    folder = tmp_path_factory.mktemp("predict")
    runs = folder / "runs"
    rows = {}
    cells = "cells: [{name: a, overrides: {masking: {pairing: ldsm_hmtm}}}]\n"
    for protocol in ("linear", "finetune"):
        grid = folder / f"{protocol}.yaml"
        grid.write_text(f"name: p_{protocol}\nprotocol: {protocol}\nreferences: []\n{cells}")
        run_grid(grid, profile="smoke", seeds=[0], out=runs)
        rows[protocol] = load_results(str(grid), runs).iloc[0]
    return runs, rows


def stored_test_clips(runs, pipeline: EvalPipeline):
    """The run's test clips as stored: data.npy rows, meta.csv lengths and labels."""
    (folder,) = (runs / "data").glob("synthetic-tiny-*")
    info = json.loads((folder / "info.json").read_text())
    rows = np.asarray(info["splits"][pipeline.split]["test"])
    meta = pd.read_csv(folder / "meta.csv")
    clips = np.load(folder / "data.npy", mmap_mode="r")[rows]
    return folder, rows, clips, meta["length"].to_numpy()[rows], meta["label"].to_numpy()[rows]


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_predict_on_stored_clips_gives_the_logged_accuracy(units, protocol):
    runs, rows = units
    row = rows[protocol]
    predictor = load_model(row["run_id"], runs)
    folder, index, clips, lengths, labels = stored_test_clips(runs, predictor.pipeline)
    pred = predictor.predict(clips, lengths)
    assert pred.accuracy(labels) == pytest.approx(row["test_top1"], abs=1e-9)
    logged = load_predictions(resolve_tracking_uri(None, runs), row["run_id"])["test"]
    assert np.array_equal(logged.indices, index)  # the same clips, and the same logits
    np.testing.assert_allclose(pred.logits, logged.logits, atol=1e-4)
    assert pred.names[0] == predictor.class_names[int(pred.labels[0])]
    whole = predictor.predict_folder(folder, part="test")  # the folder: its own lengths
    assert np.array_equal(whole.indices, index) and np.array_equal(whole.labels, pred.labels)
    assert whole.accuracy() == pytest.approx(row["test_top1"], abs=1e-9)


def test_the_pipeline_is_what_makes_raw_clips_predictable(units):
    runs, rows = units
    predictor = load_model(rows["linear"]["run_id"], runs)
    assert predictor.pipeline.normalize == "center_first_frame"  # the smoke profile's
    _, _, clips, lengths, labels = stored_test_clips(runs, predictor.pipeline)
    clips = np.asarray(clips)
    moved = np.where(clips != 0, clips + np.float32(5.0), 0).astype(np.float32)  # elsewhere
    ours, there = predictor.predict(clips, lengths), predictor.predict(moved, lengths)
    np.testing.assert_allclose(there.logits, ours.logits, atol=1e-3)  # centring undoes it
    with torch.no_grad():  # the bare classifier on stored clips: another number
        bare = predictor(torch.from_numpy(clips)).numpy()
        bare_moved = predictor(torch.from_numpy(moved)).numpy()
    assert not np.allclose(bare, ours.logits, atol=1e-2)
    assert not np.allclose(bare_moved, bare, atol=1e-2)
    assert isinstance(predictor, torch.nn.Module) and predictor.mode == "single"


def test_the_pipeline_is_saved_beside_the_checkpoint_and_read_from_there(units):
    runs, rows = units
    row = rows["linear"]
    predictor = load_model(row["run_id"], runs)
    from asma_bench.api import unit_run
    from asma_bench.config import validate_config

    _, _, config = unit_run(row["run_id"], runs)
    saved = pipeline_path(unit_checkpoints(validate_config(config), runs / "checkpoints")["linear"])
    assert saved.is_file() and EvalPipeline.load(saved) == predictor.pipeline
    assert predictor.pipeline.frames == 12 and predictor.pipeline.layout == "ntu25"
    original = saved.read_text()
    try:
        saved.write_text(original.replace('"center_first_frame"', '"none"'))
        assert load_model(row["run_id"], runs).pipeline.normalize == "none"
        saved.unlink()  # a run made before pipelines were saved: its config.json
        assert load_model(row["run_id"], runs).pipeline == predictor.pipeline
    finally:
        saved.write_text(original)


def test_clips_of_another_shape_are_one_line(units):
    runs, rows = units
    predictor = load_model(rows["linear"]["run_id"], runs)
    assert isinstance(predictor, Predictor)
    with pytest.raises(AsmaBenchError, match=r"clips: shape \(2, 3, 30, 20, 2\).*V=25"):
        predictor.predict(np.zeros((2, 3, 30, 20, 2), dtype=np.float32))
    with pytest.raises(AsmaBenchError, match="lengths: 2 integers"):
        predictor.predict(np.zeros((2, 3, 30, 25, 2), dtype=np.float32), [5])


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_the_checkpoint_folder_alone_predicts_as_the_run_did(units, protocol, tmp_path):
    """Only the checkpoints, copied elsewhere: no MLflow store, no dataset folder."""
    import shutil

    runs, rows = units
    row = rows[protocol]
    by_run = load_model(row["run_id"], runs)
    _, _, clips, lengths, labels = stored_test_clips(runs, by_run.pipeline)
    clips = np.array(clips)  # read before the dataset goes away
    kept = tmp_path / "ckpts"
    shutil.copytree(runs / "checkpoints", kept)
    (pipeline_file,) = [p for p in kept.glob(f"{protocol}-*.pipeline.json")]
    alone = load_model(str(pipeline_file))
    assert alone.pipeline.protocol == protocol and alone.pipeline.config is not None
    pred = alone.predict(clips, lengths)
    assert pred.accuracy(labels) == pytest.approx(row["test_top1"], abs=1e-9)
    np.testing.assert_allclose(pred.logits, by_run.predict(clips, lengths).logits, atol=1e-6)
    checkpoint = pipeline_file.with_name(pipeline_file.name.replace(".pipeline.json", ".pt"))
    assert load_model(checkpoint).predict(clips, lengths).accuracy(labels) == pred.accuracy(labels)
    for pre in kept.glob("pretrain-*.pt"):  # without its pretraining the folder is not enough
        pre.unlink()
    with pytest.raises(AsmaBenchError, match="pretraining checkpoints are not both in"):
        load_model(checkpoint)
