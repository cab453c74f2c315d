"""SIGKILL the runner at random moments; rerunning completes the grid with nothing lost,
nothing trained twice after it finished, and no half-written checkpoint."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from asma_bench.harness.tracking import TAG_UNIT, Tracker, default_tracking_uri

GRID = textwrap.dedent("""
    name: killable
    protocol: linear
    base: {pretrain: {objective: barlow_twins, epochs: 4}}
    cells:
      - {name: a, overrides: {masking: {pairing: ldsm_hmtm}}}
      - {name: b, overrides: {masking: {pairing: hdsm_lmtm}}}
""")


def _command(grid, out, *extra):
    return [
        sys.executable,
        "-c",
        "import sys; from asma_bench.cli import main; sys.exit(main(sys.argv[1:]))",
        "run",
        "--grid",
        str(grid),
        "--profile",
        "smoke",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_completes(tmp_path):
    grid = tmp_path / "killable.yaml"
    grid.write_text(GRID)
    out = tmp_path / "runs"
    rng = random.Random(int(os.environ.get("ASMA_KILL_SEED", "7")))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(
            _command(grid, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(2.0, 6.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the grid finished before it could be killed; lengthen the units"
    final = subprocess.run(
        _command(grid, out), env=env, capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stderr[-2000:]

    tracker = Tracker(default_tracking_uri(out), experiment="asma-bench")
    runs = tracker.unit_runs("killable")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    units = [r.data.tags[TAG_UNIT] for r in finished]
    assert len(units) == 6 and len(set(units)) == 6  # 3 cells x 2 seeds, each exactly once
    assert not [r for r in runs if r.info.status == "RUNNING"]
    for r in finished:
        assert "test_top1" in r.data.metrics
    for ckpt in (out / "checkpoints").glob("*.pt"):
        torch.load(ckpt, weights_only=True)  # never half-written
    assert not list((out / "checkpoints").glob(".*.tmp"))
    # a further rerun trains nothing
    again = subprocess.run(
        _command(grid, out), env=env, capture_output=True, text=True, timeout=600
    )
    assert "0 units run, 6 already finished" in again.stdout


@pytest.mark.slow
def test_two_out_folders_sharing_one_store_train_every_unit_once(tmp_path):
    """Two runs with their own --out and one --tracking-uri, one of them SIGKILLed at a
    random moment, then both run again side by side: the locks follow the store, so every
    unit is trained and FINISHED exactly once, and nothing is left RUNNING."""
    grid = tmp_path / "killable.yaml"
    grid.write_text(GRID)
    store = f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"
    (tmp_path / "shared").mkdir()
    outs = [tmp_path / "one", tmp_path / "two"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(int(os.environ.get("ASMA_KILL_SEED", "11")))

    def start(out):
        cmd = _command(grid, out, "--tracking-uri", store, "--seed-list", "0")  # 3 units
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    procs = [start(o) for o in outs]
    time.sleep(rng.uniform(3.0, 6.0))
    if procs[0].poll() is None:
        procs[0].send_signal(signal.SIGKILL)
    for p in procs:
        p.communicate(timeout=600)
    procs = [start(o) for o in outs]  # side by side again: they finish what is left
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):  # non-zero only for a unit the other held
        assert p.returncode == 0 or ("NOT FINISHED" in log and "FAILED" not in log), log[-2000:]
    final = subprocess.run(_command(grid, outs[1], "--tracking-uri", store, "--seed-list", "0"),
                           env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert final.returncode == 0 and "0 units run, 3 already finished" in final.stdout

    tracker = Tracker(store, experiment="asma-bench")
    runs = tracker.unit_runs("killable")
    finished = [r.data.tags[TAG_UNIT] for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 3 and len(set(finished)) == 3  # 3 cells x 1 seed, each once
    assert not [r for r in runs if r.info.status == "RUNNING"]
