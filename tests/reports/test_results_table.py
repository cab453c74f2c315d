"""The one-row-per-unit results table: a fixed column order and real types (from each run's
``config.json``), in the DataFrame, the CSV and the JSON of ``asma-bench results``."""

from __future__ import annotations

import csv
import io
import json

from asma_bench.cli import main
from asma_bench.reports.results import (
    UNIT_COLUMNS,
    load_grid_runs,
    results_csv,
    results_json,
    unit_table,
)


def test_columns_come_in_a_fixed_order_with_real_types(fake_store):
    runs = load_grid_runs(fake_store.uri, "masking_pairs")
    df = unit_table(runs, finished_only=False)
    cols = list(df.columns)
    assert cols[: len(UNIT_COLUMNS)] == list(UNIT_COLUMNS)
    labels = [c for c in cols if c.startswith("label.")]
    metrics = ["linear_loss", "test_top1"]
    settings = cols[len(UNIT_COLUMNS) + len(labels) : -len(metrics)]
    assert labels == sorted(labels) and labels == cols[5 : 5 + len(labels)]
    assert settings == sorted(settings) and cols[-len(metrics) :] == metrics
    finished = df[df["status"] == "FINISHED"]
    assert df["amp"].dtype.name == "bool" and not df["amp"].any()
    assert df["pretrain.epochs"].dtype.kind == "i" and df["masking.k"].dtype.kind == "f"
    assert df["seed"].dtype.kind == "i" and df["test_top1"].dtype.kind == "f"
    assert df["data.layout"].isna().all() and df["data.layout"].dtype == object
    assert finished["linear.weight_decay"].map(type).eq(list).all()
    assert finished["linear.weight_decay"].iloc[0] == [0.0001, 0.01]
    # the failed unit has no config.json: its parameters are parsed back from their text
    failed = df[df["status"] == "FAILED"].iloc[0]
    assert failed["pretrain.epochs"] == finished["pretrain.epochs"].iloc[0]
    assert failed["linear.weight_decay"] == [0.0001, 0.01] and failed["data.layout"] is None
    assert df.map(lambda v: v in ("True", "False", "None")).sum().sum() == 0


def test_csv_and_json_of_two_calls_agree_and_carry_types(fake_store, capsys):
    args = ["results", "--grid", "masking_pairs", "--store", fake_store.uri, "--all"]
    outputs = []
    for _ in range(2):
        assert main([*args, "--format", "csv"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    rows = list(csv.DictReader(io.StringIO(outputs[0])))
    header = outputs[0].splitlines()[0].split(",")
    assert header[:4] == ["cell", "seed", "status", "run_id"]
    assert {r["amp"] for r in rows} == {"false"} and {r["data.layout"] for r in rows} == {""}
    assert rows[0]["linear.weight_decay"] == "[0.0001, 0.01]"
    assert main([*args, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    first = records[0]
    assert first["amp"] is False and first["data.layout"] is None
    assert first["linear.weight_decay"] == [0.0001, 0.01]
    assert isinstance(first["pretrain.epochs"], int) and isinstance(first["test_top1"], float)
    assert list(first) == header


def test_writers_keep_floats_exact_and_write_missing_values_empty(fake_store):
    df = unit_table(load_grid_runs(fake_store.uri, "masking_pairs"))
    df.loc[0, "test_top1"] = 10.58032332899893
    text = results_csv(df)
    assert "10.58032332899893" in text and "True" not in text and "None" not in text
    assert json.loads(results_json(df))[0]["test_top1"] == 10.58032332899893
