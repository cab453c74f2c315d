import pickle

import pytest
import torch

from asma_bench.errors import DataFormatError
from asma_bench.protocols.checkpoints import load_checkpoint, save_checkpoint


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoint_roundtrip_and_atomic_replace(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"w": torch.arange(3)}, path)
    save_checkpoint({"w": torch.arange(4)}, path)
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_checkpoint_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": _Exploit(marker)}, path, pickle_module=pickle)
    with pytest.raises(DataFormatError, match="evil.pt: cannot load checkpoint safely"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataFormatError, match="cut.pt"):
        load_checkpoint(path)
