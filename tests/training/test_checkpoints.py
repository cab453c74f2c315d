import pickle

import pytest
import torch

from asma_bench.errors import DataFormatError
from asma_bench.training.checkpoints import (
    checkpoint_part,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)


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
    with pytest.raises(DataFormatError, match="evil.pt: not a checkpoint to load safely") as err:
        load_checkpoint(path)
    assert not marker.exists()
    assert "weights_only" not in str(err.value)  # never torch's advice to turn the check off


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataFormatError, match="cut.pt"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (bytes(range(256)) * 8, "corrupt or truncated"),
    ],
)
def test_bad_checkpoint_bytes_give_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as err:
        load_checkpoint(path)
    text = str(err.value)
    assert "bad.pt" in text and "\n" not in text and "weights_only" not in text


def test_wrong_keys_and_shapes_name_the_file_and_the_entry(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"model": {"weight": torch.zeros(3, 3)}}, path)
    state = load_checkpoint(path)
    with pytest.raises(DataFormatError, match=r"c.pt: checkpoint has no 'encoders' \(has: model\)"):
        checkpoint_part(state, path, "encoders", "theta")
    with pytest.raises(DataFormatError, match=r"c.pt: checkpoint's probe does not fit") as err:
        load_weights(torch.nn.Linear(4, 2), state["model"], path, "probe")
    assert "\n" not in str(err.value)


def test_a_corrupt_partial_checkpoint_is_set_aside_and_the_unit_restarts(tmp_path, smoke):
    from asma_bench.training.data import prepare_data
    from asma_bench.training.pretrain import pretrain, pretrain_digest

    cfg = smoke("pretrain.epochs=1")
    data = prepare_data(cfg.data, cfg.seed, tmp_path / "data")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    partial = ckpt / f"pretrain-{pretrain_digest(cfg)}.partial.pt"
    partial.write_bytes(b"\x00" * 64)
    fresh = pretrain(cfg, data, tmp_path / "clean", "cpu")
    again = pretrain(cfg, data, ckpt, "cpu")
    assert again.trained_epochs == 1
    assert not partial.exists()
    assert (ckpt / f"{partial.name}.corrupt-1").read_bytes() == b"\x00" * 64
    for name, enc in again.encoders.items():  # the same result as a run that never had it
        mine, theirs = enc.state_dict(), fresh.encoders[name].state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
