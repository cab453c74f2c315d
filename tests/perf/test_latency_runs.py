"""`latency --runs DIR --grid G`: Table 2 from the teacher and student a grid trained,
loaded from its checkpoints (nothing retrained), scored on the unit's own test split."""

import json

import pytest

from asma_bench.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("lat") / "runs"
    args = ["run", "--grid", "teacher_kind", "--profile", "smoke", "--seeds", "1",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return out


def unit_metrics(out, cell):
    from asma_bench.harness.tracking import Tracker, default_tracking_uri

    tracker = Tracker(default_tracking_uri(out), experiment="asma-bench")
    (run,) = [r for r in tracker.unit_runs("teacher_kind") if r.data.tags["asma.cell"] == cell]
    return run.info.run_id, run.data.metrics


def latency(capsys, out, report, *extra):
    code = main(["latency", "--runs", str(out), "--out", str(report), "--threads", "1",
                 "--repeats", "3", "--warmup", "1", "--exporter", "torchscript",
                 "--no-progress", *extra])  # fmt: skip
    return code, capsys.readouterr()


def test_the_table_times_and_scores_the_grids_own_models(trained, tmp_path, capsys):
    before = sorted(p.name for p in (trained / "checkpoints").iterdir())
    code, io = latency(capsys, trained, tmp_path / "rep", "--grid", "teacher_kind")
    assert code == 0, io.err
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == before  # none trained
    payload = json.loads((tmp_path / "rep" / "latency" / "latency.json").read_text())
    run_id, metrics = unit_metrics(trained, "linear_teacher")  # the grid's first cell
    teacher, student, int8 = payload["models"]
    # the unit scored these very models on the same test split
    assert student["accuracy"] == pytest.approx(metrics["test_top1"], abs=0.5)
    assert teacher["accuracy"] == pytest.approx(metrics["teacher_test_top1"], abs=0.5)
    assert student["params"] == metrics["student_params"]
    assert teacher["params"] == metrics["teacher_params"]
    assert run_id in payload["caption"] and "linear_teacher" in payload["caption"]
    assert "this command trained nothing" in io.out and "int8 student: test top-1" in io.out
    # another cell, by name or by run id, is another pair of models
    fine_id, fine = unit_metrics(trained, "finetune_teacher")
    code, io = latency(capsys, trained, tmp_path / "rep2", "--run-id", fine_id)
    assert code == 0, io.err
    payload = json.loads((tmp_path / "rep2" / "latency" / "latency.json").read_text())
    assert payload["models"][1]["accuracy"] == pytest.approx(fine["test_top1"], abs=0.5)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--cell", "linear_teacher"], "--cell and --store need --grid or --run-id"),
        (["--grid", "masking_pairs"], "no distill units"),
        (["--grid", "teacher_kind", "--cell", "nope"], "cell 'nope'"),
        (["--grid", "teacher_kind", "--seed", "7"], "no finished unit linear_teacher/seed7"),
        (["--grid", "teacher_kind", "--no-train"], "--no-train"),
    ],
)
def test_what_cannot_be_timed_is_one_line(trained, tmp_path, capsys, extra, words):
    code, io = latency(capsys, trained, tmp_path / "rep", *extra)
    assert code == 2 and words in io.err and len(io.err.strip().splitlines()) == 1, io.err
    assert not (tmp_path / "rep").exists()


def test_grid_options_read_the_runs_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --runs: ./runs by default, as in every command
    code = main(["latency", "--grid", "teacher_kind", "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert code == 2 and "runs" in err and len(err.strip().splitlines()) == 1, err
    code = main(["latency", "--store", "sqlite:///x.db", "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert code == 2 and "--store need --grid or --run-id" in err


def test_a_missing_checkpoint_is_refused_not_retrained(trained, tmp_path, capsys):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(trained, copy)
    run_id, _ = unit_metrics(copy, "linear_teacher")
    for student in (copy / "checkpoints").glob("student-*.pt"):
        student.unlink()
    code, io = latency(capsys, copy, tmp_path / "rep", "--grid", "teacher_kind")
    assert code == 2 and "student checkpoint is not under" in io.err
    assert f"asma-bench rerun {run_id}" in io.err
    assert not list((copy / "checkpoints").glob("student-*.pt"))


def test_models_changed_by_set_are_trained_into_the_runs_folder_and_listed(
    trained, tmp_path, capsys
):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(trained, copy)
    three = "distill.teacher_streams=[joint,bone,motion]"
    code, io = latency(capsys, copy, tmp_path / "rep", "--grid", "teacher_kind", "--set", three)
    assert code == 0, io.err
    line = next(ln for ln in io.out.splitlines() if "trained now, by this command" in ln)
    listed = sorted(line.split(": ", 1)[1].split(", "))

    def finals(folder):
        return {p.name for p in (folder / "checkpoints").glob("*.pt") if ".partial" not in p.name}

    assert listed == sorted(finals(copy) - finals(trained))
    # the bone and motion teachers (a pretraining and a probe head each) and a new student
    assert [n.split("-")[0] for n in listed].count("pretrain") == 2
    assert [n.split("-")[0] for n in listed].count("student") == 1
    payload = json.loads((tmp_path / "rep" / "latency" / "latency.json").read_text())
    assert "changed by --set" in payload["caption"]
    assert (
        payload["models"][0]["params"]
        > 2.5 * unit_metrics(trained, "linear_teacher")[1]["teacher_params"]
    )  # three streams, each the grid's teacher's size
