"""Common random numbers: cells at one seed share batches, views and mask slots.

``rng="streams"`` gives batch order, augmentation and masks a stream each, derived from
(seed, purpose). A random-frame cell and an HMTM cell at one seed must then see the same
batches and the same augmented views for the whole run (a resumed run included), draw the
same spatial masks (both random joints), and differ only in their temporal masks; another
seed differs. ``rng="shared"`` (one generator for all, as before) is shown to drift apart.
"""

from __future__ import annotations

import pytest
import torch

from asma_bench.data.transforms import Augment
from asma_bench.objectives import barlow_twins
from asma_bench.strategies.base import MaskStream
from asma_bench.training.data import prepare_data
from asma_bench.training.loop import RandomStreams, stream_seed
from asma_bench.training.pretrain import pretrain

MASKED_VIEW = barlow_twins.masked_view  # unpatched: each recorder wraps this one


class Recorder:
    """Records every batch, augmented view and mask of a pretraining."""

    def __init__(self, layout, monkeypatch):
        self.augment = Augment(layout)
        self.batches, self.views, self.spatial, self.temporal = [], [], [], []

        def masked_view(x, strategies, mode="zero", generator=None, lengths=None):
            out, kept = MASKED_VIEW(x, strategies, mode, generator, lengths)
            (strategy,) = strategies
            masked = (out == 0).all(dim=1).all(dim=-1)  # (N, T, V): zeroed cells
            target = self.spatial if strategy.kind == "spatial" else self.temporal
            target.append(masked.clone())
            return out, kept

        monkeypatch.setattr(barlow_twins, "masked_view", masked_view)

    def __call__(self, x, generator=None, lengths=None):
        if not self.views or len(self.views) % 3 == 0:
            self.batches.append(x.clone())
        view = self.augment(x, lengths=lengths, generator=generator)
        self.views.append(view.clone())
        return view


def _run(smoke, data_root, path, monkeypatch, *overrides, stop_after=None):
    cfg = smoke("pretrain.epochs=2", "pretrain.objective=barlow_twins", *overrides)
    data = prepare_data(cfg.data, cfg.seed, data_root)
    rec = Recorder(data.layout, monkeypatch)

    class Stop(Exception):
        pass

    def stop(epoch, _metrics):
        if stop_after is not None and epoch + 1 == stop_after:
            raise Stop

    try:
        pretrain(cfg, data, path, on_epoch=stop, augment=rec)
    except Stop:
        pass
    return rec


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_cells_at_one_seed_share_batches_views_and_spatial_masks(
    smoke, data_root, tmp_path, monkeypatch
):
    random = _run(smoke, data_root, tmp_path / "a", monkeypatch, "masking.pairing=random_random")
    hmtm = _run(smoke, data_root, tmp_path / "b", monkeypatch, "masking.pairing=random_hmtm")
    assert len(random.batches) >= 4  # two epochs of several batches
    assert _same(random.batches, hmtm.batches)
    assert _same(random.views, hmtm.views)
    # both cells mask random joints: the same slot, hence the same joints
    assert _same(random.spatial, hmtm.spatial)
    # and they differ where they should: random frames against the highest-motion frames
    assert not _same(random.temporal, hmtm.temporal)
    other_seed = _run(
        smoke, data_root, tmp_path / "c", monkeypatch, "masking.pairing=random_random", "seed=1"
    )
    assert not any(torch.equal(x, y) for x, y in zip(random.views, other_seed.views, strict=True))


def test_a_resumed_cell_keeps_sharing_its_streams(smoke, data_root, tmp_path, monkeypatch):
    whole = _run(smoke, data_root, tmp_path / "a", monkeypatch, "masking.pairing=random_random")
    first = _run(
        smoke, data_root, tmp_path / "b", monkeypatch, "masking.pairing=random_hmtm", stop_after=1
    )
    rest = _run(smoke, data_root, tmp_path / "b", monkeypatch, "masking.pairing=random_hmtm")
    assert _same(whole.batches, first.batches + rest.batches)
    assert _same(whole.views, first.views + rest.views)
    assert _same(whole.spatial, first.spatial + rest.spatial)


def test_one_shared_generator_lets_cells_drift_apart(smoke, data_root, tmp_path, monkeypatch):
    # the behaviour before streams: random frames draw from the batch generator, HMTM does
    # not, so from the second step on the two cells see other views
    shared = "rng=shared"
    random = _run(smoke, data_root, tmp_path / "a", monkeypatch, "masking.pairing=random_random",
                  shared)  # fmt: skip
    hmtm = _run(smoke, data_root, tmp_path / "b", monkeypatch, "masking.pairing=random_hmtm",
                shared)  # fmt: skip
    assert torch.equal(random.views[0], hmtm.views[0])
    assert not _same(random.views, hmtm.views)


def test_stream_seeds_are_distinct_per_purpose_and_seed():
    seeds = {stream_seed(s, p) for s in range(3) for p in ("batches", "augment", "masks")}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)
    assert stream_seed(4, "masks", "rank", 1) != stream_seed(4, "masks", "rank", 0)


def test_each_mask_slot_takes_one_draw_whatever_its_strategy_draws():
    a = MaskStream(torch.Generator().manual_seed(0))
    b = MaskStream(torch.Generator().manual_seed(0))
    torch.rand(1000, generator=a.slot())  # a strategy drawing a lot from its slot ...
    b.slot()  # ... and one drawing nothing
    assert torch.equal(torch.rand(3, generator=a.slot()), torch.rand(3, generator=b.slot()))


@pytest.mark.parametrize("scheme", ["streams", "shared"])
def test_stream_states_round_trip(scheme):
    streams = RandomStreams.for_run(scheme, 3, torch.Generator().manual_seed(3))
    state = streams.state_dict()
    first = torch.rand(4, generator=streams.augment)
    streams.load_state_dict(state)
    assert torch.equal(first, torch.rand(4, generator=streams.augment))
