"""The restricted unpickler: plain data and numeric arrays load, code never runs."""

import os
import pickle
import subprocess
from collections import OrderedDict

import numpy as np
import pytest

from asma_bench.data.readers.safe_pickle import load_pickle
from asma_bench.errors import DataFormatError, UnsafePickleError


class SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').write('x')",))


class PopenPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


PLAIN = {
    "names": ["S001C001P001R001A001.skeleton", "x"],
    "labels": [0, 59],
    "keypoint": np.arange(24, dtype=np.float16).reshape(1, 2, 4, 3),
    "ints": np.array([[1, 2], [3, 4]], dtype=np.int64),
    "scalars": (np.int64(7), np.float32(1.5), np.bool_(True)),
    "set": {1, 2}, "frozen": frozenset({"a"}), "bytes": b"\x00\xff", "empty": b"",
    "buffer": bytearray(b"ab"), "complex": 1 + 2j, "nested": [(1, 2.5, None, True)],
    "ordered": OrderedDict(a=1),
}  # fmt: skip


def assert_same(a, b):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert type(a) is type(b) and a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert type(a) is type(b) and a == b


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_data_round_trips(protocol, tmp_path):
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(PLAIN, protocol=protocol))
    assert_same(PLAIN, load_pickle(path))


def test_numpy1_module_names_load(tmp_path):
    data = pickle.dumps(np.arange(6, dtype=np.float32).reshape(2, 3), protocol=2)
    assert b"numpy._core.multiarray" in data  # numpy >= 2 writes this; 1.x wrote numpy.core
    path = tmp_path / "old.pkl"
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert np.array_equal(load_pickle(path), np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize(
    ("payload", "forbidden"),
    [(SystemPayload, f"{os.system.__module__}.system"), (EvalPayload, "builtins.eval"),
     (PopenPayload, "subprocess.Popen")],
)  # fmt: skip
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_code_payloads_are_refused_and_never_run(payload, forbidden, protocol, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps((["a"], [payload(marker)]), protocol=protocol))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refusing to load") and forbidden in message
    assert "\n" not in message
    assert not marker.exists()
    # the payload is real: plain pickle does run it
    result = pickle.loads(path.read_bytes())
    if payload is PopenPayload:
        result[1][0].wait()
    assert marker.exists()


def test_codecs_encode_limited_to_latin1(tmp_path):
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(DataFormatError, match="rot13"):
        load_pickle(path)
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVlatin1\ntR.")
    assert load_pickle(path) == b"abc"


def test_corrupt_and_empty_pickles(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(PLAIN, protocol=4)[:50])
    with pytest.raises(DataFormatError, match=r"cut\.pkl: not a readable pickle") as err:
        load_pickle(path)
    assert not isinstance(err.value, UnsafePickleError)
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"cut\.pkl: empty file"):
        load_pickle(path)
