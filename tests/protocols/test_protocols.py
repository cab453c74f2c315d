"""Every protocol runs on the smoke profile and keeps the evaluation honest."""

import numpy as np
import pytest
import torch

from asma_bench.protocols import list_protocols, run_protocol
from asma_bench.protocols.linear import linear_probe
from asma_bench.training.data import class_balanced_subset, prepare_data, stratified_split
from asma_bench.training.loop import FrozenEncoderError, assert_frozen, freeze
from asma_bench.training.pretrain import pretrain

PROTOCOL_OVERRIDES = {
    "linear": [],
    "finetune": [],
    "semi": ["finetune.label_fraction=0.1"],
    "supervised": [],
    "distill": ["pretrain.objective=asma"],
    "robustness": [],
    "streams": ["streams.names=[joint, bone]", "streams.weights=[1.0, 0.5]"],
    "transfer": ["transfer.target={source: synthetic, preset: tiny, synth_seed: 5}"],
}


def test_every_protocol_is_covered():
    assert set(list_protocols()) == set(PROTOCOL_OVERRIDES)


@pytest.mark.parametrize("name", sorted(PROTOCOL_OVERRIDES))
def test_protocol_runs_on_smoke(name, smoke, ctx):
    cfg = smoke(*PROTOCOL_OVERRIDES[name])
    result = run_protocol(name, cfg, ctx)
    assert 0.0 <= result.metrics["test_top1"] <= result.metrics["test_top5"] <= 100.0
    pred = result.predictions["test"]
    assert pred.logits.shape[0] == len(pred.labels) == len(pred.indices)
    expected = 100.0 * float((pred.logits.argmax(1) == pred.labels).mean())
    assert result.metrics["test_top1"] == pytest.approx(expected)


def test_asma_linear_reports_each_encoder_and_the_alignment(smoke, ctx):
    result = run_protocol("linear", smoke("pretrain.objective=asma"), ctx)
    assert {"test_top1", "theta_test_top1", "phi_test_top1"} <= set(result.metrics)
    assert {"test", "theta_test", "phi_test"} <= set(result.predictions)


def test_test_labels_never_influence_training(smoke, ctx, data_root):
    """Corrupting the test labels changes nothing but the test accuracy."""
    cfg = smoke()
    data = prepare_data(cfg.data, cfg.seed, data_root)
    pre = pretrain(cfg, data, ctx.ckpt_dir)
    _, clean = linear_probe(cfg, pre.encoders, data, ctx, "single")
    shuffled = torch.roll(data.test.y, 1)
    corrupted = type(data)(
        **{**data.__dict__, "test": type(data.test)(data.test.x, shuffled, data.test.index)}
    )
    _, dirty = linear_probe(cfg, pre.encoders, corrupted, ctx, "single")
    assert np.array_equal(clean.predictions["test"].logits, dirty.predictions["test"].logits)
    assert clean.metrics["val_top1"] == dirty.metrics["val_top1"]


def test_frozen_encoder_assertion():
    enc = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    with pytest.raises(FrozenEncoderError, match="trainable parameters"):
        assert_frozen(enc)
    freeze(enc)
    assert_frozen(enc)
    enc[1].train()  # BatchNorm updating running statistics is not frozen
    with pytest.raises(FrozenEncoderError, match="training mode"):
        assert_frozen(enc)


def test_class_balanced_subset_is_balanced_seeded_and_never_empty():
    labels = np.repeat(np.arange(5), [100, 100, 100, 100, 7])
    a = class_balanced_subset(labels, 0.1, seed=3)
    assert np.bincount(labels[a]).tolist() == [10, 10, 10, 10, 1]
    assert np.array_equal(a, class_balanced_subset(labels, 0.1, seed=3))
    assert not np.array_equal(a, class_balanced_subset(labels, 0.1, seed=4))
    assert len(set(a.tolist())) == len(a)


def test_validation_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(3), 20)
    rest, held = stratified_split(labels, 0.25, seed=0)
    assert not set(rest) & set(held) and len(rest) + len(held) == 60
    assert np.bincount(labels[held]).tolist() == [5, 5, 5]


@pytest.mark.parametrize(("dropout", "fused"), [(0.0, False), (0.5, False), (0.5, True)])
def test_pretraining_resumes_from_its_last_epoch(smoke, ctx, data_root, tmp_path, dropout, fused):
    # with dropout the resumed run must also restore torch's global generator; fused Adam
    # (pretrain.fused_adam, the paper profile's) resumes from its own state
    cfg = smoke("pretrain.epochs=2", f"backbone.params.dropout={dropout}",
                f"pretrain.fused_adam={str(fused).lower()}")  # fmt: skip
    data = prepare_data(cfg.data, cfg.seed, data_root)
    full = pretrain(cfg, data, tmp_path / "full")

    class Stop(Exception):
        pass

    def stop_after_first(epoch, metrics):
        if epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        pretrain(cfg, data, tmp_path / "cut", on_epoch=stop_after_first)
    (partial,) = (tmp_path / "cut").glob("*.partial.pt")
    groups = torch.load(partial, weights_only=False)["optimizer"]["param_groups"]
    assert bool(groups[0]["fused"]) is fused
    resumed = pretrain(cfg, data, tmp_path / "cut")
    assert resumed.trained_epochs == 1
    assert not list((tmp_path / "cut").glob("*.partial.pt"))
    for a, b in zip(
        full.encoders["encoder"].state_dict().values(),
        resumed.encoders["encoder"].state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    again = pretrain(cfg, data, tmp_path / "cut")  # finished: reused, not retrained
    assert again.trained_epochs == 0


def test_cached_finetune_keeps_the_metrics_of_the_run_that_trained_it(smoke, ctx):
    cfg = smoke("pretrain.objective=asma")
    first = run_protocol("finetune", cfg, ctx)
    again = run_protocol("finetune", cfg, ctx)  # the classifier is loaded, not retrained
    assert again.info.get("cached") and not first.info.get("cached")
    assert {"val_top1", "theta_test_top1", "phi_test_top1"} <= set(again.metrics)
    assert again.metrics == pytest.approx(first.metrics)
    assert np.array_equal(again.predictions["test"].logits, first.predictions["test"].logits)


def test_semi_needs_a_labelled_share(smoke, ctx):
    from asma_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="finetune.label_fraction is 1.0"):
        run_protocol("semi", smoke(), ctx)


def test_corruptions_hit_present_joints_only():
    from asma_bench.protocols.robustness import add_noise, drop_joints

    x = torch.randn(2, 3, 6, 25, 2)
    x[:, :, 4:] = 0  # padding frames
    x[:, :, :, :, 1] = 0  # no second body
    x[:, :, 0, 1] = 0  # the centre joint of frame 0 after centring
    noisy = add_noise(x, 0.1, torch.Generator().manual_seed(0))
    changed = (noisy != x).any(dim=1)  # (N, T, V, M)
    assert changed[:, :4, :, 0].all()  # every joint of the present body, centre included
    assert not changed[:, 4:].any() and not changed[..., 1].any()
    dropped = drop_joints(x, 5, torch.Generator().manual_seed(0))
    gone = (dropped[:, :, :4, :, 0] == 0).all(dim=(1, 2))  # (N, V): zero in every frame
    assert gone.sum(dim=1).tolist() == [5, 5]


def test_moco_queue_never_outgrows_the_training_set(smoke):
    from asma_bench.data.layouts import get_layout
    from asma_bench.training.pretrain import build_encoder, build_objective

    layout = get_layout("ntu25")
    cfg = smoke("pretrain.objective=moco")
    small = build_objective(cfg, {"encoder": build_encoder(cfg, layout)}, layout, train_size=96)
    assert small.queue.shape[1] == 96
    mine = smoke("pretrain.objective=moco", "pretrain.params={queue_size: 512}")
    kept = build_objective(mine, {"encoder": build_encoder(mine, layout)}, layout, train_size=96)
    assert kept.queue.shape[1] == 512  # an explicit size is the user's choice
