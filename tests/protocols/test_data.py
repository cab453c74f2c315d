"""Protocol data: bad samples and empty splits stop a run with one clear line."""

import json

import numpy as np
import pandas as pd
import pytest

from asma_bench.config import DataConfig
from asma_bench.data.synthetic import generate
from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.protocols.data import prepare_data


@pytest.fixture
def tiny(tmp_path):
    return generate(tmp_path / "tiny", "tiny", seed=3)


def _cfg(path, **kw):
    return DataConfig(source=str(path), frames=12, val_fraction=0.2, **kw)


def test_nan_and_empty_samples_are_named_not_trained_on(tiny, tmp_path):
    info = json.loads((tiny / "info.json").read_text())
    train, test = info["splits"]["xsub"]["train"], info["splits"]["xsub"]["test"]
    data = np.load(tiny / "data.npy", mmap_mode="r+")
    data[train[0], 0, 1, 2, 0] = np.nan
    data[test[0]] = 0.0
    data.flush()
    del data
    names = pd.read_csv(tiny / "meta.csv")["name"]
    with pytest.raises(DataFormatError) as err:
        prepare_data(_cfg(tiny), 0, tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tiny}: 1 ") and "NaN/inf or all zero" in msg and "--check" in msg
    assert names[train[0]] in msg


def test_an_empty_split_part_is_named(tiny, tmp_path):
    info = json.loads((tiny / "info.json").read_text())
    info["splits"]["xsub"]["test"] = []
    (tiny / "info.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match=r"data.split 'xsub' of .*: its test part has no samples"):
        prepare_data(_cfg(tiny), 0, tmp_path)
