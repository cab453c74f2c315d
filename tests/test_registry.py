import pytest

from asma_bench.errors import ConfigError
from asma_bench.registry import Registry


def test_register_create_list_and_errors():
    reg: Registry = Registry("widget")

    @reg.register()
    def small(size: int = 1) -> dict:
        return {"size": size}

    @reg.register("big-one")
    def _big() -> str:
        return "big"

    assert reg.list() == ["big-one", "small"]
    assert reg.list("s*") == ["small"]
    assert reg.create("small", size=3) == {"size": 3}
    assert "big-one" in reg and len(reg) == 2
    with pytest.raises(ConfigError, match=r"unknown widget 'tiny'; available: big-one, small"):
        reg.create("tiny")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("small")(lambda: None)
