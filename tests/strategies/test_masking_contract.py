"""The contract every registered masking honours (parametrised over ``list_maskings()``)."""

from __future__ import annotations

import json

import pytest
import torch

from asma_bench.errors import ConfigError
from asma_bench.strategies import KINDS, create_masking, list_maskings

ALL = list_maskings()


def random_walk(n: int = 6, t: int = 24, v: int = 25, m: int = 2, seed: int = 0) -> torch.Tensor:
    """Skeleton-like batch whose motion varies over frames and joints."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(n, 3, t, v, m, generator=g) * torch.rand(n, 1, t, v, 1, generator=g)
    return steps.cumsum(dim=2)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def per_sample_count(strategy, mask: torch.Tensor) -> torch.Tensor:
    if strategy.kind == "spatial":
        return mask[:, 0, :].sum(dim=1)
    if strategy.kind == "temporal":
        return mask[:, :, 0].sum(dim=1)
    return mask.sum(dim=(1, 2))


def test_registry_lists_every_family() -> None:
    expected = {"hdsm", "ldsm", "hmtm", "lmtm", "random_joint", "random_frame", "none"}
    expected |= {"csm", "matm", "tube", "hierarchy", "attention", "mamp"}
    assert expected <= set(ALL)
    assert list_maskings("*dsm") == ["hdsm", "ldsm"]


@pytest.mark.parametrize("name", ALL)
def test_mask_structure_matches_kind_and_budget(name: str) -> None:
    strategy = create_masking(name)
    x = random_walk()
    mask = strategy(x, generator=seeded(1))
    n, _, t, v, _ = x.shape
    assert mask.dtype == torch.bool and mask.shape == (n, t, v)
    assert strategy.kind in KINDS
    if strategy.kind == "spatial":
        assert torch.equal(mask, mask[:, :1].expand_as(mask))  # same joints in every frame
        assert (per_sample_count(strategy, mask) == 9).all()  # default n = 9, distinct joints
    elif strategy.kind == "temporal":
        assert torch.equal(mask, mask[:, :, :1].expand_as(mask))  # same frames for every joint
        assert (per_sample_count(strategy, mask) == 10).all()  # default k = 10
    elif strategy.kind == "spatiotemporal":
        assert not torch.equal(mask, mask[:, :1].expand_as(mask))
        assert not torch.equal(mask, mask[:, :, :1].expand_as(mask))
    else:
        assert not mask.any()
    counts = per_sample_count(strategy, mask)
    assert (counts <= strategy.budget(t)).all()
    if strategy.kind != "none":
        assert (counts > 0).all()


@pytest.mark.parametrize("name", ALL)
def test_reproducible_under_a_generator(name: str) -> None:
    strategy = create_masking(name)
    x = random_walk()
    first = strategy(x, generator=seeded(7))
    again = strategy(x, generator=seeded(7))
    assert torch.equal(first, again)
    torch.manual_seed(3)
    global_a = strategy(x)
    torch.manual_seed(3)
    global_b = strategy(x)
    assert torch.equal(global_a, global_b)
    if strategy.stochastic:
        assert not torch.equal(first, strategy(x, generator=seeded(8)))


@pytest.mark.parametrize("name", ALL)
def test_masks_are_drawn_per_sample(name: str) -> None:
    strategy = create_masking(name)
    x = random_walk(n=1).expand(16, -1, -1, -1, -1).contiguous()  # 16 identical samples
    mask = strategy(x, generator=seeded(0))
    distinct = {tuple(row.flatten().tolist()) for row in mask}
    if strategy.stochastic:
        assert len(distinct) > 8
    else:  # a deterministic rule gives identical samples identical masks
        assert len(distinct) == 1


@pytest.mark.parametrize("name", ALL)
def test_works_on_kinect20(name: str) -> None:
    strategy = create_masking(name, layout="kinect20")
    x = random_walk(v=20, m=1)
    mask = strategy(x, generator=seeded(2))
    assert mask.shape == (6, 24, 20)
    counts = per_sample_count(strategy, mask)
    assert (counts <= strategy.budget(24)).all()
    if strategy.kind == "spatial":
        assert (counts == 9).all()
    assert strategy.params["layout"] == "kinect20"


@pytest.mark.parametrize("name", ALL)
def test_input_untouched_and_params_recordable(name: str) -> None:
    strategy = create_masking(name)
    x = random_walk()
    before = x.clone()
    strategy(x, generator=seeded(0))
    assert torch.equal(x, before)
    assert json.loads(json.dumps(strategy.params)) == strategy.params
    assert strategy.params["layout"] == "ntu25"


@pytest.mark.parametrize("name", ALL)
def test_rejects_a_batch_of_another_layout(name: str) -> None:
    strategy = create_masking(name)
    with pytest.raises(ConfigError, match="20 joints"):
        strategy(random_walk(v=20))


@pytest.mark.parametrize("name", ALL)
def test_unknown_layout_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="layout 'ntu18'"):
        create_masking(name, layout="ntu18")


def test_unknown_masking_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown masking 'hdms'; available: .*hdsm"):
        create_masking("hdms")


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(ConfigError, match=r"hdsm.*unknown parameter 'k'"):
        create_masking("hdsm", k=3)


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("hdsm", {"n": 25}, "n=25"),
        ("ldsm", {"n": -1}, "n=-1"),
        ("random_joint", {"n": 0.99}, "n=0.99"),
        ("hdsm", {"n": 2.5}, "n=2.5"),
        ("hdsm", {"n": "9"}, "n must be a number"),
        ("ldsm", {"law": "cubic"}, "law='cubic'"),
        ("hmtm", {"k": -3}, "k=-3"),
        ("hmtm", {"last": "forward"}, "last='forward'"),
        ("matm", {"temperature": 0}, "temperature=0"),
        ("matm", {"random_extra": -1}, "random_extra=-1"),
        ("tube", {"ratio": 1.0}, "ratio=1.0"),
        ("tube", {"alpha": -2}, "alpha=-2"),
        ("tube", {"alpha": 2.5}, "alpha=2.5"),
        ("tube", {"law": "max"}, "law='max'"),
        ("mamp", {"patch_frames": 0}, "patch_frames=0"),
        ("hierarchy", {"temperature": -1.0}, "temperature=-1.0"),
        ("attention", {"select": "middle"}, "select='middle'"),
        ("csm", {"replacement": "yes"}, "replacement must be"),
    ],
)
def test_bad_parameters_raise_config_error_naming_them(name: str, params: dict, param: str) -> None:
    with pytest.raises(ConfigError, match=param.replace("(", r"\(").replace(".", r"\.")):
        create_masking(name, **params)


@pytest.mark.parametrize("name", ["hmtm", "lmtm", "random_frame", "matm", "attention"])
def test_k_is_checked_against_t_at_call_time(name: str) -> None:
    strategy = create_masking(name, k=30)  # fine until T is known
    with pytest.raises(ConfigError, match="k=30"):
        strategy(random_walk(t=24))


def test_fractions_keep_the_paper_ratios() -> None:
    hdsm = create_masking("hdsm", n=0.36)
    assert hdsm.n == 9 and hdsm.params["n"] == 9 and hdsm.params["n_fraction"] == 0.36
    assert create_masking("hdsm", layout="kinect20", n=0.36).n == 7  # round(7.2)
    mask = hdsm(random_walk(), generator=seeded(0))
    assert (mask[:, 0].sum(dim=1) == 9).all()
    hmtm = create_masking("hmtm", k=0.2)
    frames = hmtm(random_walk(t=50), generator=seeded(0))[:, :, 0].sum(dim=1)
    assert (frames == 10).all()
    assert hmtm.budget(50) == 10 and hmtm.budget(120) == 24


def test_lengths_are_validated() -> None:
    strategy = create_masking("lmtm")
    x = random_walk(n=2)
    with pytest.raises(ConfigError, match="lengths"):
        strategy(x, lengths=[24])
    with pytest.raises(ConfigError, match="lengths"):
        strategy(x, lengths=[0, 24])
    with pytest.raises(ConfigError, match="lengths"):
        strategy(x, lengths=[12.0, 24.0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "name", ["hdsm", "ldsm", "csm", "hierarchy", "random_joint", "random_frame"]
)
def test_cpu_generator_gives_the_same_mask_on_cuda(name: str) -> None:
    strategy = create_masking(name)
    x = random_walk()
    on_cpu = strategy(x, generator=seeded(5))
    on_gpu = strategy(x.cuda(), generator=seeded(5))
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_cpu, on_gpu.cpu())
