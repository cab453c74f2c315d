"""Shared test fixtures: seeded RNGs, temporary folders and the real dataset samples.

The real NTU / PKU-MMD samples live in ``../shared/fixtures`` beside the repository (they
are research-use data and are never copied in); tests that need them skip when absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from asma_bench.config import build_config
from asma_bench.training.context import UnitContext

REPO = Path(__file__).resolve().parents[1]
# `run`'s and `tune`'s default, --jobs auto, starts one process per core: the suite's runs
# stay in one process (its tests of --jobs say so), and so do the commands its subprocesses
# run
os.environ["ASMA_BENCH_JOBS"] = "1"
# Under pytest-xdist (`-n N`) each worker takes its share of the cores, as `--jobs` gives
# units, so that N workers do not fight over every core.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    torch.set_num_threads(max(1, torch.get_num_threads() // _WORKERS))
SHARED_FIXTURES = Path(os.environ.get("ASMA_BENCH_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"real dataset samples not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


@pytest.fixture
def ntu_fixture_dir(shared_fixtures: Path) -> Path:
    path = shared_fixtures / "ntu"
    if not any(path.glob("*.skeleton")):
        pytest.skip("no NTU .skeleton fixtures")
    return path


@pytest.fixture
def pku_fixture_file(shared_fixtures: Path) -> Path:
    path = shared_fixtures / "pku" / "A10N08-L.txt"
    if not path.is_file():
        pytest.skip("no PKU-MMD fixture")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


UCLA_ARCHIVE = SHARED_FIXTURES.parent / "datasets" / "nw-ucla.tar.xz"


@pytest.fixture(scope="session")
def ucla_dir(tmp_path_factory) -> Path:
    """Real NW-UCLA, unpacked and converted into a temporary folder (never kept); skipped
    cleanly where the shared archive is absent."""
    import tarfile

    if not UCLA_ARCHIVE.is_file():
        pytest.skip(f"NW-UCLA archive not found at {UCLA_ARCHIVE}")
    from asma_bench.data.readers import convert

    root = tmp_path_factory.mktemp("ucla")
    with tarfile.open(UCLA_ARCHIVE) as tar:
        tar.extractall(root, filter="data")
    out = root / "canonical"
    convert(root / "nwucla", out, fmt="ucla")
    return out


# ------------------------------------------------ pretraining and protocols
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
