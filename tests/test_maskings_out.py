"""``maskings --diagnose`` keeps its data under --out (or a temporary folder), never in
the folder it was started from."""

from asma_bench.cli import main


def test_diagnose_writes_nothing_where_it_is_started(tmp_path, capsys, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    args = ["maskings", "--diagnose", "--profile", "smoke", "--draws", "50"]
    assert main(args) == 0, capsys.readouterr().err
    assert "Jaccard" in capsys.readouterr().out
    assert list(here.iterdir()) == []  # no ./runs/data: the data went to a temporary folder
    out = tmp_path / "diag"
    assert main([*args, "--out", str(out)]) == 0
    assert (out / "data").is_dir() and (out / "maskings.md").is_file()  # cached under --out
    assert list(here.iterdir()) == []


def test_diagnose_refuses_a_home_folder_of_no_user_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["maskings", "--diagnose", "--data", "~no-such-user-0", "--draws", "5"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "internal error" not in err, err
    assert "data.source '~no-such-user-0': no user 'no-such-user-0'" in err
    assert list(tmp_path.iterdir()) == []
