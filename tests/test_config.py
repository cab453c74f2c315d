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
