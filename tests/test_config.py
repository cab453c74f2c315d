"""Run configuration: defaults ← profile ← overrides, validation, transfer targets."""

import hashlib
import json
import re

import pytest

from asma_bench.config import RunConfig, build_config, parse_override
from asma_bench.errors import ConfigError


def test_overrides_win_over_profile_and_profile_over_defaults():
    assert RunConfig().data.frames == 50
    assert build_config("smoke").data.frames == 12
    cfg = build_config("smoke", ["data.frames=20", {"pretrain": {"epochs": 4}}])
    assert (cfg.data.frames, cfg.pretrain.epochs) == (20, 4)
    assert cfg.data.preset == "tiny"  # the profile's other data fields survive the merge


def test_override_values_are_yaml_and_keys_are_checked():
    assert parse_override("masking.n=0.36") == {"masking": {"n": 0.36}}
    assert parse_override("robustness.noise_std=[0, 0.1]") == {
        "robustness": {"noise_std": [0, 0.1]}
    }
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        parse_override("pretrain.epochs")
    with pytest.raises(ConfigError, match="bad key"):
        parse_override("pre train.epochs=3")


def test_bad_fields_name_the_field():
    with pytest.raises(ConfigError, match=r"config field 'pretrain\.epochz': Extra inputs"):
        build_config("smoke", ["pretrain.epochz=3"])
    with pytest.raises(ConfigError, match=r"config field 'data\.frames'.*got 2"):
        build_config("smoke", ["data.frames=2"])
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        build_config("fast")


def test_digest_identifies_the_resolved_config():
    a = build_config("smoke", ["seed=1"])
    assert a.digest() == build_config("smoke", [{"seed": 1}]).digest()
    assert a.digest() != build_config("smoke", ["seed=2"]).digest()
    assert a.digest(exclude=["seed"]) == build_config("smoke", ["seed=2"]).digest(["seed"])


def test_a_later_setting_at_its_default_leaves_the_identity_unchanged():
    """``pretrain.fused_adam`` came after unit ids were published: at its default it is not
    part of the identity (a runs/ folder keeps its units), set it is."""
    cfg = build_config("smoke")
    dumped = cfg.model_dump(mode="json")
    del dumped["pretrain"]["fused_adam"]
    dumped["data"].pop("fingerprint", None)  # a synthetic unit's identity has none either
    dumped["data"].pop("layout", None)  # (nor a layout: its clips are NTU-25)
    # the mask choice in its published home (it moved to masking.pairing / .encoders)
    dumped["pretrain"]["pairing"] = dumped["masking"].pop("pairing") or "ldsm_hmtm"
    del dumped["masking"]["encoders"]
    before = hashlib.sha256(
        json.dumps(dumped, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]
    assert cfg.digest() == before
    assert "fused_adam" not in cfg.identity()["pretrain"]
    fused = build_config("smoke", ["pretrain.fused_adam=true"])
    assert fused.digest() != cfg.digest() and fused.identity()["pretrain"]["fused_adam"]
    assert build_config("paper").pretrain.fused_adam


def test_transfer_target_is_preprocessed_like_the_source():
    cfg = build_config("smoke", ["transfer.target={source: synthetic, preset: noisy}"])
    target = cfg.transfer.target
    assert (target.preset, target.source) == ("noisy", "synthetic")  # its own dataset
    assert target.frames == cfg.data.frames == 12  # the profile's pre-processing
    assert target.val_fraction == cfg.data.val_fraction == 0.2
    own = build_config("smoke", ["transfer.target={preset: noisy, frames: 30, synth_seed: 4}"])
    assert (own.transfer.target.frames, own.transfer.target.synth_seed) == (30, 4)
    # which dataset the target is never comes from data
    seeded = build_config("smoke", ["data.synth_seed=9", "transfer.target={preset: noisy}"])
    assert seeded.transfer.target.synth_seed == 0
    # a resolved config validates to itself (stored configs reload unchanged)
    assert RunConfig.model_validate(cfg.model_dump()) == cfg
    with pytest.raises(ConfigError, match=r"transfer\.target\.framez"):
        build_config("smoke", ["transfer.target={preset: noisy, framez: 3}"])


def test_profile_files_are_named_in_their_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("foo: 1\n")
    with pytest.raises(ConfigError, match=rf"profile {re.escape(str(bad))}: config field 'foo'"):
        build_config(str(bad))
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(missing))}: profile file not found$"):
        build_config(str(missing))
    good = tmp_path / "good.yml"
    good.write_text("data: {frames: 20}\n")
    assert build_config(str(good), ["data.frames=30"]).data.frames == 30


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_known_devices_are_accepted(device):
    assert build_config("smoke", [{"device": device}]).device == device


@pytest.mark.parametrize("device", ["tpu", "cuda:", "cuda:x", "CPU", ""])
def test_unknown_devices_are_refused(device):
    with pytest.raises(ConfigError, match=r"^config field 'device': use cpu, cuda, cuda:N or mps"):
        build_config("smoke", [{"device": device}])


def test_negative_seeds_are_refused():
    with pytest.raises(ConfigError, match=r"config field 'seed'.*got -1"):
        build_config("smoke", ["seed=-1"])
    with pytest.raises(ConfigError, match=r"config field 'data\.synth_seed'.*got -2"):
        build_config("smoke", ["data.synth_seed=-2"])


def test_a_yaml_bomb_is_refused_in_one_line_before_anything_expands_it(tmp_path):
    import time

    from asma_bench.harness.grids import load_grid

    lines = ["name: bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("cells: [{name: c, overrides: {pretrain: {params: {junk: *a8}}}}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"bomb.yaml: the grid expands to more than 100000"):
        load_grid(path)
    assert time.monotonic() - start < 5


def test_an_oversized_yaml_file_is_refused(tmp_path):
    from asma_bench.config import load_yaml

    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"big.yaml: \d+ bytes is too large for a profile"):
        load_yaml(path, "profile")


def _alias_chain(levels: int = 8, width: int = 10) -> str:
    """A YAML flow value whose aliases expand to width**levels values ("billion laughs")."""
    parts = ["&a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def test_an_alias_bomb_in_an_override_is_refused_before_it_expands():
    import time

    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"^--set x: the override expands to more than 100000"):
        parse_override("x=" + _alias_chain())
    with pytest.raises(ConfigError, match=r"^--set pretrain\.params: the override expands"):
        build_config("smoke", ["pretrain.params={junk: " + _alias_chain() + "}"])
    assert time.monotonic() - start < 5
    with pytest.raises(ConfigError, match=r"^override 'x=xxxx.*: 10003 characters; at most 10000$"):
        parse_override("x=" + "x" * 10_001)


@pytest.mark.parametrize(
    "text",
    [
        "a=" + "[" * 4_000 + "]" * 4_000,  # (longer texts are refused for their length)
        "a=" + "[" * 9_000,  # unbalanced: still refused before the parser recurses
        "a=" + "{a: " * 1_600 + "1" + "}" * 1_600,
        "a=" + "- " * 4_000 + "x",  # block nesting, which has no brackets to count
        "a=" + "[" * 40 + "]" * 40,
        ".".join(["a"] * 40) + "=1",
    ],
)
def test_deeply_nested_overrides_are_refused_in_one_line(text):
    with pytest.raises(ConfigError, match=r"^--set a(\.a)*: the (value|key|override) nests lists "
                       r"and mappings deeper than 32 levels$"):  # fmt: skip
        parse_override(text)


def test_nesting_within_the_limit_is_accepted():
    assert parse_override("a=" + "[" * 30 + "1" + "]" * 30)["a"] == eval("[" * 29 + "[1" + "]" * 30)
    assert parse_override("a='[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['") == {"a": "[" * 40}


@pytest.mark.parametrize(
    "body",
    [
        "x: " + "[" * 5_000 + "]" * 5_000,
        "x: " + "{a: " * 5_000 + "1" + "}" * 5_000,
        "x:\n" + "".join(" " * i + "- \n" for i in range(1, 400)),
        "x:\n" + "- " * 5_000 + "y",
        "x: " + "[" * 500_000,
    ],
)
def test_deeply_nested_grid_and_profile_files_are_refused_naming_the_file(tmp_path, body):
    from asma_bench.harness.grids import load_grid

    path = tmp_path / "deep.yaml"
    path.write_text(body + "\n")
    for load, what in [(load_grid, "grid"), (build_config, "profile")]:
        with pytest.raises(ConfigError) as err:
            load(str(path))
        assert str(err.value) == (
            f"{path}: the {what} nests lists and mappings deeper than 32 levels"
        )


def test_seeds_are_bounded_to_what_numpy_and_optuna_accept():
    from asma_bench.config import MAX_SEED

    assert MAX_SEED == 2**32 - 1
    assert build_config("smoke", [{"seed": MAX_SEED}]).seed == MAX_SEED
    for key in ("seed", "data.synth_seed"):
        with pytest.raises(ConfigError, match=rf"config field '{key}'.*4294967296"):
            build_config("smoke", [f"{key}=4294967296"])


def test_normalize_is_one_of_the_feeders_names():
    from asma_bench.config import NORMALIZATIONS
    from asma_bench.data.feeder import NORMALIZATIONS as FEEDER

    assert tuple(NORMALIZATIONS) == tuple(FEEDER)
    with pytest.raises(ConfigError) as err:
        build_config("smoke", ["data.normalize=bogus"])
    assert str(err.value) == (
        "config field 'data.normalize': use one of none, center_first_frame, "
        "center_every_frame, center_every_frame_rotate, center_first_frame_rotate, got 'bogus'"
    )
    target = ["transfer.target={preset: noisy, normalize: bogus}"]
    with pytest.raises(ConfigError, match=r"'transfer\.target\.normalize': use one of none"):
        build_config("smoke", target)


@pytest.mark.parametrize(
    "override, field",
    [
        ("pretrain.lr=.inf", "pretrain.lr"),
        ("pretrain.lr=.nan", "pretrain.lr"),
        ("distill.tau=.inf", "distill.tau"),
        ("linear.weight_decay=[0.1, .inf]", "linear.weight_decay"),
        ("data.frames=100000000", "data.frames"),
        ("distill.student_depth=1000000", "distill.student_depth"),
    ],
)
def test_values_no_run_can_use_are_refused_naming_the_field(override, field):
    with pytest.raises(ConfigError, match=rf"^config field '{re.escape(field)}"):
        build_config("smoke", [override])
