from pathlib import Path

import pytest

from asma_bench.config import build_config
from asma_bench.protocols import UnitContext


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def ctx(data_root, tmp_path) -> UnitContext:
    return UnitContext(data_root=data_root, ckpt_dir=tmp_path / "ckpt")


@pytest.fixture
def smoke():
    def make(*overrides):
        return build_config("smoke", list(overrides))

    return make
