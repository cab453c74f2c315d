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


def test_entry_point_plugins_register_on_first_use(monkeypatch):
    import asma_bench.registry as registry

    reg: Registry = Registry("masking")
    calls = []

    class FakeEntryPoint:
        name = "thirdparty"

        def load(self):
            def register():
                calls.append(1)
                reg.register("third_party_mask")(lambda: "masked")

            return register

    class Broken:
        name = "broken"

        def load(self):
            raise ImportError("missing dependency")

    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(
        registry,
        "entry_points",
        lambda group: [FakeEntryPoint(), Broken()] if group == registry.PLUGIN_GROUP else [],
    )
    assert reg.create("third_party_mask") == "masked"  # a broken plug-in does not break others
    assert reg.list() == ["third_party_mask"] and calls == [1]
