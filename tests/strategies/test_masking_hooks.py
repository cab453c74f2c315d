"""A strategy plug-in's hooks: the public names (``draw``, ``set_law``), the old private
ones still working for one release with a DeprecationWarning, and ``name`` taken from the
registry key."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from asma_bench.registry import Registry
from asma_bench.strategies import MASKINGS, create_masking
from asma_bench.strategies.base import JointSamplingStrategy, MaskingStrategy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin"
X = torch.randn(6, 3, 8, 25, 1)


def _masks(strategy: MaskingStrategy, seed: int = 0) -> torch.Tensor:
    return strategy(X, generator=torch.Generator().manual_seed(seed))


def _foot_law() -> torch.Tensor:
    law = torch.full((25,), float("-inf"))
    law[[14, 15, 18, 19]] = 0.0  # left and right ankle and foot
    return law


def test_every_registered_strategy_is_named_by_its_key():
    for key in MASKINGS.list():
        assert MASKINGS.get(key).name == key
        assert create_masking(key).name == key


def test_the_registry_sets_the_name_once_and_keeps_a_declared_one():
    registry: Registry = Registry("masking", name_attribute="name")

    class Plain(MaskingStrategy):
        pass

    class Declared(MaskingStrategy):
        name = "declared"

    registry.register("plain")(Plain)
    registry.register("alias")(Plain)  # a second key keeps the first name
    registry.register("other")(Declared)
    assert (Plain.name, Declared.name) == ("plain", "declared")
    assert Registry("backbone").register("b")(type("B", (), {})).__dict__.get("name") is None


def test_new_hooks_define_no_warning_and_draw_the_law():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)

        class Feet(JointSamplingStrategy):
            def __init__(self, layout="ntu25", *, n=2):
                super().__init__(layout, n=n)
                self.set_law(_foot_law())

        mask = _masks(Feet())
    assert mask.sum(dim=2).eq(2).all() and not mask[:, :, [0, 1, 2, 20]].any()
    assert mask[:, :, [14, 15, 18, 19]].sum() == 6 * 8 * 2


def test_old_set_law_still_works_and_warns():
    class OldFeet(JointSamplingStrategy):
        def __init__(self, layout="ntu25", *, n=2):
            super().__init__(layout, n=n)
            self._set_law(_foot_law())

    class NewFeet(JointSamplingStrategy):
        def __init__(self, layout="ntu25", *, n=2):
            super().__init__(layout, n=n)
            self.set_law(_foot_law())

    with pytest.warns(DeprecationWarning, match=r"_set_law\(\) is deprecated, use set_law"):
        old = OldFeet()
    assert torch.equal(_masks(old), _masks(NewFeet()))


def test_old_draw_override_still_works_and_warns_when_defined():
    with pytest.warns(DeprecationWarning, match=r"OldFirstFrame defines _draw\(\)"):

        class OldFirstFrame(MaskingStrategy):
            kind = "temporal"

            def _draw(self, x, generator, lengths):
                mask = torch.zeros(x.shape[0], x.shape[2], x.shape[3], dtype=torch.bool)
                mask[:, 0] = True
                return mask

            def budget(self, num_frames):
                return 1

    mask = OldFirstFrame()(X)
    assert mask[:, 0].all() and not mask[:, 1:].any()


def test_old_draw_calling_super_reaches_the_base_draw():
    """An old-style override that calls ``super()._draw`` gets the base's mask (no
    recursion into itself), the same as the new-style override calling ``super().draw``."""
    with pytest.warns(DeprecationWarning):

        class OldHDSM(type(create_masking("hdsm"))):
            def _draw(self, x, generator, lengths):
                return super()._draw(x, generator, lengths) & (x[:, 0, :, :, 0] > -99)

    class NewHDSM(type(create_masking("hdsm"))):
        def draw(self, x, generator, lengths):
            return super().draw(x, generator, lengths) & (x[:, 0, :, :, 0] > -99)

    with pytest.warns(DeprecationWarning, match=r"_draw\(\) is deprecated, use draw"):
        old = _masks(OldHDSM(n=9))
    new = _masks(NewHDSM(n=9))
    assert torch.equal(old, new) and torch.equal(new, _masks(create_masking("hdsm", n=9)))
    assert int(new.sum()) == 6 * 8 * 9


def test_setting_the_old_name_on_an_instance_sets_the_new_hook():
    strategy = create_masking("random_joint", n=3)
    calls = []

    def counted(x, generator, lengths):
        calls.append(len(lengths))
        return torch.zeros(x.shape[0], x.shape[2], x.shape[3], dtype=torch.bool)

    with pytest.warns(DeprecationWarning, match="setting _draw is deprecated"):
        strategy._draw = counted
    assert not strategy(X).any() and calls == [6]


def test_the_example_plugin_uses_the_new_hooks():
    # in a child process: importing the plug-in here would register its names in this
    # test session's registries; its own module must raise no DeprecationWarning
    code = (
        "import warnings, torch; import asma_bench.strategies; "
        "warnings.simplefilter('error', DeprecationWarning); "
        "from asma_bench_example.masking import DepthWeighted; "
        "s = DepthWeighted('ntu25', n=5); print(s.name, round(float(s.joint_probs[15]), 4))"
    )
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    name, foot = done.stdout.split()
    assert name == "depth_weighted"
    # p_v ∝ 1 + depth_v; the left foot (joint 16) is 6 hops from the centre
    depth = torch.as_tensor(create_masking("hdsm").layout.depth, dtype=torch.float64) + 1
    assert float(foot) == round(float(depth[15] / depth.sum()), 4)
