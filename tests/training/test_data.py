"""Protocol data: bad samples and empty splits stop a run with one clear line."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from asma_bench.config import DataConfig
from asma_bench.data.synthetic import generate
from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.training.data import prepare_data


@pytest.fixture
def tiny(tmp_path):
    return generate(tmp_path / "tiny", "tiny", seed=3)


def _cfg(path, **kw):
    return DataConfig(**{"source": str(path), "frames": 12, "val_fraction": 0.2, **kw})


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


def _only_split(path, keep):
    info = json.loads((path / "info.json").read_text())
    info["splits"] = {keep: info["splits"][keep]}
    (path / "info.json").write_text(json.dumps(info))
    return info["splits"][keep]


def test_a_dataset_with_one_split_is_used_whatever_split_is_asked(tiny, tmp_path, caplog):
    xview = _only_split(tiny, "xview")  # like NW-UCLA
    with caplog.at_level(logging.WARNING, logger="asma_bench.training.data"):
        data = prepare_data(_cfg(tiny, split="xsub"), 0, tmp_path)
        prepare_data(_cfg(tiny, split="xsub", val_fraction=0.3), 0, tmp_path)
    assert sorted(data.test.index.tolist()) == xview["test"]
    assert sorted([*data.train.index.tolist(), *data.val.index.tolist()]) == xview["train"]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"data.split 'xsub' not in {tiny}; using its only split 'xview'"]


def test_a_split_missing_among_several_is_refused_naming_them(tiny, tmp_path):
    with pytest.raises(ConfigError) as err:
        prepare_data(_cfg(tiny, split="xset"), 0, tmp_path)
    assert str(err.value) == (
        f"data.split 'xset' not in {tiny} (has xsub, xview); choose one with --set data.split=NAME"
    )


def test_resolve_splits_records_the_split_each_dataset_uses(tiny, tmp_path):
    from asma_bench.config import build_config
    from asma_bench.training.data import resolve_splits

    _only_split(tiny, "xview")
    cfg = build_config("smoke", [{"data": {"source": str(tiny)}}])
    assert cfg.data.split == "xsub" and resolve_splits(cfg).data.split == "xview"
    # the transfer target inherits data.split and falls back on its own
    cfg = build_config("smoke", [{"transfer": {"target": {"source": str(tiny)}}}])
    resolved = resolve_splits(cfg)
    assert resolved.data.split == "xsub" and resolved.transfer.target.split == "xview"
    assert resolved.transfer.target.frames == cfg.transfer.target.frames
    same = build_config("smoke", [])
    assert resolve_splits(same) is same  # synthetic data has xsub: nothing to change
    with pytest.raises(ConfigError, match=r"^data.split 'xset' not in synthetic data \(has xsub, "
                       r"xview\); choose one with --set data.split=NAME$"):  # fmt: skip
        resolve_splits(build_config("smoke", ["data.split=xset"]))


def test_a_one_frame_clip_has_zero_motion_and_is_not_refused(tiny, tmp_path):
    """NW-UCLA's a02_s09_e04_v02 has one frame: its motion stream is zero, which is its
    motion (as in the CTR-GCN line), not an empty sample. An all-zero stored clip still is."""
    info = json.loads((tiny / "info.json").read_text())
    one = info["splits"]["xsub"]["train"][0]
    data = np.load(tiny / "data.npy", mmap_mode="r+")
    data[one, :, 1:] = 0.0
    data.flush()
    del data
    meta = pd.read_csv(tiny / "meta.csv")
    meta.loc[one, "length"] = 1
    meta.to_csv(tiny / "meta.csv", index=False)
    prepared = prepare_data(_cfg(tiny, stream="motion"), 0, tmp_path)
    parts = [prepared.train, prepared.val]
    found = [p.x[p.index == one] for p in parts if bool((p.index == one).any())]
    assert len(found) == 1 and float(found[0].abs().sum()) == 0.0  # zero motion, kept
    joint = prepare_data(_cfg(tiny, stream="joint"), 0, tmp_path)
    assert len(joint.train) + len(joint.val) == len(prepared.train) + len(prepared.val)


def test_an_all_zero_sample_is_refused_when_written_and_skipped_with_skip_bad(tmp_path):
    from asma_bench.data.store import DatasetWriter, SampleMeta

    x = np.zeros((3, 5, 25, 2), dtype=np.float32)
    with pytest.raises(DataFormatError, match="empty: sample is all zeros"):
        with DatasetWriter(tmp_path / "a", layout="ntu25", source="t") as w:
            w.add(x, SampleMeta("empty", 0))
    with DatasetWriter(tmp_path / "b", layout="ntu25", source="t", skip_bad=True) as w:
        with w.guard("empty"):
            w.add(x, SampleMeta("empty", 0))
        with w.guard("ok"):
            w.add(x + 1.0, SampleMeta("ok", 0))
    assert w.skipped == [("empty", "empty: sample is all zeros (no joint was ever tracked)")]
