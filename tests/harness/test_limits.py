"""Planning refuses, in one line and before anything is written, what no run could do:
too many seeds or units, seeds numpy cannot take, devices this machine lacks, masks that
hide everything, units that cannot fit in memory, unknown metrics and unsafe names."""

import time

import pytest

from asma_bench.cli import main
from asma_bench.errors import ConfigError
from asma_bench.harness import limits
from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import RunOptions, plan_units


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(capsys, tmp_path, *args):
    """Run ``asma-bench run --grid masking_pairs --profile smoke --dry-run ARGS``: it must
    exit 2 with one line, write nothing under --out; the line is returned."""
    out = tmp_path / "out"
    code, _, err = run(
        capsys, "run", "--grid", "masking_pairs", "--profile", "smoke", "--dry-run",
        "--out", str(out), *args,
    )  # fmt: skip
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err
    assert not out.exists()
    return err.removeprefix("error: ").rstrip("\n")


def test_many_seeds_are_refused_at_once(tmp_path, capsys):
    start = time.monotonic()
    assert refused(capsys, tmp_path, "--seeds", "100000") == (
        "--seeds 100000: at most 1000 seeds per run"
    )
    many = ",".join(str(i) for i in range(1001))
    assert refused(capsys, tmp_path, "--seed-list", many) == (
        "--seed-list: 1001 seeds; at most 1000 per run"
    )
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    "seeds, message",
    [
        (
            "99999999999999999999999",
            "--seed-list: seed 99999999999999999999999 is outside 0..4294967295",
        ),  # fmt: skip
        ("0,4294967296", "--seed-list: seed 4294967296 is outside 0..4294967295"),
        ("1,1,1", "--seed-list: seed 1 is given 3 times"),
        ("0,2,0", "--seed-list: seed 0 is given 2 times"),
    ],
)
def test_seed_lists_numpy_cannot_take_or_that_repeat_are_refused(tmp_path, capsys, seeds, message):
    assert refused(capsys, tmp_path, "--seed-list", seeds) == message


def test_the_largest_seed_is_planned():
    grid = load_grid("masking_pairs")
    units = plan_units(grid, RunOptions(profile="smoke", seeds=[4294967295]))
    assert {u.seed for u in units} == {4294967295}


def test_seeds_of_the_api_are_checked_too():
    grid = load_grid("masking_pairs")
    for seeds, message in [
        ([2**40], "seeds: seed 1099511627776 is outside 0..4294967295"),
        ([3, 3], "seeds: seed 3 is given 2 times"),
        ([1.5], "seeds: seed '1.5' is not an integer"),
    ]:
        with pytest.raises(ConfigError) as err:
            plan_units(grid, RunOptions(profile="smoke", seeds=seeds))
        assert str(err.value) == message


def test_a_plan_of_too_many_units_is_refused_before_it_is_expanded(monkeypatch):
    monkeypatch.setattr(limits, "MAX_UNITS", 20)
    grid = load_grid("masking_pairs")  # 5 cells + 2 reference rows
    assert len(plan_units(grid, RunOptions(profile="smoke", seeds=[0, 1]))) == 14
    with pytest.raises(ConfigError) as err:
        plan_units(grid, RunOptions(profile="smoke", seeds=[0, 1, 2]))
    assert str(err.value) == (
        "grid 'masking_pairs': 7 cells × 3 seeds = 21 units; at most 20 per run"
    )


@pytest.fixture
def no_accelerators(monkeypatch):
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize(
    "device, message",
    [
        ("mps", "device 'mps': MPS is not available on this machine; use cpu"),
        ("cuda", "device 'cuda': CUDA is not available on this machine; use cpu"),
        ("cuda:3", "device 'cuda:3': CUDA is not available on this machine; use cpu"),
    ],
)
def test_a_device_this_machine_lacks_is_refused_at_planning(
    tmp_path, capsys, no_accelerators, device, message
):
    err = refused(capsys, tmp_path, "--set", f"device={device}")
    assert err == f"grid 'masking_pairs', cell 'ldsm_hmtm': {message}"


def test_a_gpu_index_beyond_the_machines_gpus_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(limits, "machine_memory", lambda device: 80 << 30)
    grid = load_grid("masking_pairs")
    ok = plan_units(grid, RunOptions(profile="smoke", seeds=[0], overrides=["device=cuda:1"]))
    assert {u.config.device for u in ok} == {"cuda:1"}
    with pytest.raises(ConfigError, match=r"'cuda:2': this machine has 2 CUDA device\(s\), "
                       r"cuda:0 to cuda:1$"):  # fmt: skip
        plan_units(grid, RunOptions(profile="smoke", seeds=[0], overrides=["device=cuda:2"]))


@pytest.mark.parametrize(
    "override, message",
    [
        ("masking.n=25", "masking 'ldsm': n=25 masks 25 of 25 joints; it must be smaller than 25"),
        ("masking.n=0.99", "n=0.99 masks 25 of 25 joints"),  # a fraction, rounded at V = 25
        ("masking.k=12", "masking 'hmtm': k=12 masks 12 of 12 frames; it must be smaller than 12"),
        ("masking.k=0.97", "k=0.97 masks 12 of 12 frames"),  # the smoke profile's T = 12
    ],
)
def test_masks_that_hide_every_joint_or_frame_are_refused(tmp_path, capsys, override, message):
    err = refused(capsys, tmp_path, "--set", override)
    assert err.startswith("grid 'masking_pairs', cell 'ldsm_hmtm': masking '") and message in err


@pytest.mark.parametrize(
    "override, culprit",
    [
        ("pretrain.projector_dim=100000000", "pretrain.projector_dim=100000000: "),
        ("backbone.params={base_channels: 100000}", 'backbone.params={"base_channels": 100000'),
    ],
)
def test_a_unit_that_cannot_fit_in_memory_is_refused_naming_the_setting(
    tmp_path, capsys, override, culprit
):
    err = refused(capsys, tmp_path, "--set", override)
    assert err.startswith(f"grid 'masking_pairs', cell 'ldsm_hmtm': {culprit}"), err
    assert "a unit needs at least " in err and " of this machine" in err


def test_long_clips_are_refused_by_the_memory_they_need(monkeypatch):
    monkeypatch.setattr(limits, "machine_memory", lambda device: 1 << 30)  # 1 GiB
    grid = load_grid("masking_pairs")
    opts = RunOptions(profile="smoke", seeds=[0], overrides=["data.frames=10000"])
    with pytest.raises(ConfigError) as err:
        plan_units(grid, opts)
    assert str(err.value).startswith(
        "grid 'masking_pairs', cell 'ldsm_hmtm': data.frames=10000 with pretrain.batch_size=16: "
        "a unit needs at least "
    )
    assert str(err.value).endswith("more than the 1 GiB of this machine")
    assert "16 clips × 10000 frames × 25 joints" in str(err.value)
    monkeypatch.setattr(limits, "machine_memory", lambda device: 64 << 30)
    assert plan_units(grid, opts)  # the same clips fit in 64 GiB


def test_memory_estimates_are_lower_bounds_of_the_real_models():
    from asma_bench.backbones import count_parameters, create_backbone
    from asma_bench.config import build_config
    from asma_bench.data.layouts import get_layout

    cfg = build_config("smoke")
    layout = get_layout("ntu25")
    estimate = limits.estimate_memory(cfg, "linear", layout)
    model = create_backbone(cfg.backbone.name, layout=layout, **cfg.backbone.params)
    assert estimate.encoder_bytes == 16 * count_parameters(model)
    p, d = cfg.pretrain.projector_dim, model.out_dim
    assert estimate.projector_bytes == 16 * (d * p + 2 * p * p + 4 * p)


def test_backbone_sizes_that_would_take_long_to_build_are_refused(tmp_path, capsys):
    err = refused(capsys, tmp_path, "--set", "backbone.params={num_blocks: 100000}")
    assert err == (
        "grid 'masking_pairs', cell 'ldsm_hmtm': backbone.params.num_blocks=100000: at most 1000"
    )
    err = refused(capsys, tmp_path, "--set", "backbone.params={max_hop: 1000000}")
    assert err.endswith("backbone.params.max_hop=1000000: at most 100")


def _grid_file(tmp_path, text):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return path


def test_an_unknown_metric_is_refused_when_the_grid_is_read(tmp_path, capsys):
    path = _grid_file(tmp_path, "name: g\nmetric: typo\ncells: [{name: a}]\n")
    with pytest.raises(ConfigError) as err:
        load_grid(path)
    assert str(err.value).startswith(
        f"{path}: grid field 'metric': 'typo' is not a metric the protocols log; use test_top1, "
    )
    code, out, err = run(capsys, "run", "--grid", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and "metric" in err and not out and not (tmp_path / "o").exists()
    for metric in ("test_nll", "test_brier", "test_knn_top1", "theta_test_top1",
                   "teacher_test_top5", "missing6_top1", "noise0.05_top1", "val_top1"):  # fmt: skip
        assert limits.known_metric(metric), metric
    for metric in ("typo", "test_top2", "test_top1 ", "", "TEST_TOP1"):
        assert not limits.known_metric(metric), metric


@pytest.mark.parametrize("name", ["é", "a'b", "x'; y", ".hidden", "a b", "a/b", "ａ", "x" * 129])
def test_grid_and_cell_names_outside_the_documented_characters_are_refused(tmp_path, name):
    for text in (
        f"name: {name!r}\ncells: [{{name: a}}]\n",
        f"name: g\ncells: [{{name: {name!r}}}]\n",
    ):
        path = _grid_file(tmp_path, text)
        with pytest.raises(ConfigError, match="name': names ") as err:
            load_grid(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_a_study_name_outside_the_documented_characters_is_refused(tmp_path, capsys):
    out = tmp_path / "t"
    code, _, err = run(capsys, "tune", "--space", "lambda", "--profile", "smoke",
                       "--study", "x'; y", "--out", str(out))  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith('error: --study "x\'; y": names use only the characters')
    assert "internal error" not in err and not out.exists()


def test_a_bad_value_in_a_cell_names_the_grid_file_and_the_cell(tmp_path, capsys):
    path = _grid_file(tmp_path, (
        "name: g\ncells:\n  - {name: good}\n  - {name: bad, overrides: {pretrain: {epochs: -1}}}\n"
    ))  # fmt: skip
    with pytest.raises(ConfigError) as err:
        plan_units(load_grid(path), RunOptions(profile="smoke", seeds=[0]))
    assert str(err.value).startswith(
        f"grid 'g' ({path}), cell 'bad': config field 'pretrain.epochs': "
    )
    # a bad value of the command line is the command line's, not a cell's
    with pytest.raises(ConfigError) as err:
        plan_units(load_grid(path), RunOptions(profile="smoke", seeds=[0],
                                               overrides=["pretrain.epochs=-1"]))  # fmt: skip
    assert str(err.value).startswith("config field 'pretrain.epochs': ")


def test_a_command_line_value_that_needs_the_cells_settings_is_planned(tmp_path):
    """``--set masking.spatial.params.law=…`` alone lacks the strategy's name; with the
    cells (which name it) it is a valid plan, so it is not refused on its own."""
    path = _grid_file(tmp_path, "name: g\ncells:\n  - {name: a, overrides: "
                      "{masking: {spatial: {name: ldsm}}}}\n")  # fmt: skip
    opts = RunOptions(profile="smoke", seeds=[0], overrides=["masking.spatial.params.law=eq2"])
    units = plan_units(load_grid(path), opts)
    assert units[0].config.masking.spatial.params == {"law": "eq2"}


def test_a_home_folder_of_no_user_is_refused_in_one_line(tmp_path, capsys):
    err = refused(capsys, tmp_path, "--data", "~no-such-user-0/ntu")
    assert err == (
        "grid 'masking_pairs', cell 'ldsm_hmtm': data.source '~no-such-user-0/ntu': no user "
        "'no-such-user-0' on this machine to expand '~' for"
    )
