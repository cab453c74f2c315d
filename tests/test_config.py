"""Run configuration: defaults ← profile ← overrides, validation, transfer targets."""

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
