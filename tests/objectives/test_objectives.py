"""Objectives: each loss against an independent straightforward computation, invariances,
MoCo's queue and momentum semantics, MAE's masked-only loss, and the registry."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from asma_bench.backbones import create_backbone
from asma_bench.errors import ConfigError
from asma_bench.objectives import (
    ASMaObjective,
    BarlowTwinsLoss,
    MaskedReconstruction,
    MoCo,
    Projector,
    TripletBarlowTwins,
    barlow_twins_loss,
    create_objective,
    info_nce,
    list_objectives,
    masked_mse,
    masked_view,
    motion_target,
)

N, T, V, M = 6, 12, 25, 2


class FixedMask:
    """Stand-in masking strategy: returns a fixed mask and records how it was called."""

    def __init__(self, mask: torch.Tensor, kind: str = "spatial"):
        self.mask = mask
        self.kind = kind
        self.calls: list[tuple] = []

    def __call__(self, x, generator=None, lengths=None):
        self.calls.append((x, generator, lengths))
        return self.mask.clone()


def joints_mask(joints, n=N, t=T, v=V):
    mask = torch.zeros(n, t, v, dtype=torch.bool)
    mask[:, :, joints] = True
    return mask


def frames_mask(frames, n=N, t=T, v=V):
    mask = torch.zeros(n, t, v, dtype=torch.bool)
    mask[:, frames, :] = True
    return mask


def encoder(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_backbone("stgcn", base_channels=4, num_blocks=2, out_dim=8, dropout=0.0)


def views(seed: int = 0, n: int = N):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, 3, T, V, M, generator=g) for _ in range(3))


# --- Barlow Twins ---------------------------------------------------------------------------


def _loop_loss(z1, z2, lambd, standardize, eps):
    """ASMa eqs. 5–7 with explicit loops over samples and dimensions."""
    n, d = len(z1), len(z1[0])

    def columns(z):
        cols = []
        for i in range(d):
            col = [z[b][i] for b in range(n)]
            if standardize == "batch":
                mean = sum(col) / n
                var = sum((c - mean) ** 2 for c in col) / n
                cols.append([(c - mean) / math.sqrt(var + eps) for c in col])
            else:
                norm = math.sqrt(sum(c * c for c in col))
                cols.append([c / norm for c in col])
        return cols

    a, b = columns(z1), columns(z2)
    scale = n if standardize == "batch" else 1
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[i][s] * b[j][s] for s in range(n)) / scale
            loss += (1 - c_ij) ** 2 if i == j else lambd * c_ij**2
    return loss


@pytest.mark.parametrize("standardize", ["batch", "correlation"])
@pytest.mark.parametrize("lambd", [0.0, 2e-4, 0.5])
def test_barlow_twins_matches_an_explicit_double_loop(standardize, lambd):
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(7, 4, generator=g, dtype=torch.float64) + 0.3
    z2 = 0.5 * z1 + torch.randn(7, 4, generator=g, dtype=torch.float64)
    got = barlow_twins_loss(z1, z2, lambd, standardize)
    expected = _loop_loss(z1.tolist(), z2.tolist(), lambd, standardize, 1e-5)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    module = BarlowTwinsLoss(lambd, standardize)
    assert module(z1, z2).item() == pytest.approx(expected, rel=1e-12)


def _hadamard_columns() -> torch.Tensor:
    h = torch.tensor([[1.0]], dtype=torch.float64)
    for _ in range(3):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h[:, 1:5]  # 8 samples, 4 dimensions: zero mean, unit variance, orthogonal


def test_barlow_twins_vanishes_for_identical_whitened_decorrelated_inputs():
    z = _hadamard_columns()
    assert barlow_twins_loss(z, z, 2e-4, eps=1e-12).item() == pytest.approx(0.0, abs=1e-20)
    assert barlow_twins_loss(z, z.clone()).item() < 1e-8  # default eps: (1e-5)^2 per dim
    # two identical dimensions: C_12 = C_21 = 1, everything else as before
    dup = torch.cat([z[:, :1], z[:, :1], z[:, 2:]], dim=1)
    assert barlow_twins_loss(dup, dup, 0.25, eps=1e-12).item() == pytest.approx(0.5)


def test_barlow_twins_invariances():
    g = torch.Generator().manual_seed(5)
    z1 = torch.randn(9, 5, generator=g, dtype=torch.float64)
    z2 = z1 + 0.7 * torch.randn(9, 5, generator=g, dtype=torch.float64)
    base = barlow_twins_loss(z1, z2, 0.1, eps=0.0)
    perm = torch.randperm(9, generator=g)
    torch.testing.assert_close(barlow_twins_loss(z1[perm], z2[perm], 0.1, eps=0.0), base)
    scale = torch.rand(5, generator=g, dtype=torch.float64) * 10 + 0.1
    shift = torch.randn(5, generator=g, dtype=torch.float64) * 3
    torch.testing.assert_close(barlow_twins_loss(z1 * scale + shift, z2, 0.1, eps=0.0), base)
    torch.testing.assert_close(barlow_twins_loss(z2, z1, 0.1, eps=0.0), base)
    # shuffling one batch against the other breaks the pairing
    assert barlow_twins_loss(z1, z2[perm], 0.1, eps=0.0) > base


def test_barlow_twins_errors():
    with pytest.raises(ConfigError, match="at least 2"):
        barlow_twins_loss(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ConfigError, match="equal shape"):
        barlow_twins_loss(torch.randn(4, 4), torch.randn(4, 3))
    with pytest.raises(ConfigError, match="standardize"):
        BarlowTwinsLoss(standardize="whiten")
    with pytest.raises(ConfigError, match="lambd"):
        BarlowTwinsLoss(lambd=-1.0)


def test_projector_layers_and_size():
    projector = Projector((8, 16, 16, 4))
    kinds = [type(m) for m in projector]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear]
    assert all(m.bias is None for m in projector if isinstance(m, nn.Linear))
    assert sum(p.numel() for p in projector.parameters()) == (
        8 * 16 + 2 * 16 + 16 * 16 + 2 * 16 + 16 * 4
    )
    assert projector(torch.randn(5, 8)).shape == (5, 4)
    with pytest.raises(ConfigError, match="projector_dims"):
        Projector((8,))


def _project(obj: TripletBarlowTwins, x, kept=None):
    return obj.projector(obj.encoder(x, kept_joints=kept))


def test_triplet_barlow_twins_zero_mode_matches_a_direct_computation():
    spatial = FixedMask(joints_mask([3, 7, 20]))
    temporal = FixedMask(frames_mask([0, 5, 6]), kind="temporal")
    obj = TripletBarlowTwins(encoder(), spatial, temporal, projector_dims=(8, 16, 16), lambd=0.01)
    anchor, s_view, t_view = views()
    gen, lengths = torch.Generator(), torch.full((N,), T)
    out = obj(anchor, s_view, t_view, generator=gen, lengths=lengths)
    # each strategy saw its own view, the generator and the lengths
    (sx, sg, sl), = spatial.calls  # fmt: skip
    (tx, tg, tl), = temporal.calls  # fmt: skip
    assert sx is s_view and tx is t_view and sg is gen and tg is gen and sl is lengths
    keep_s = (~spatial.mask)[:, None, :, :, None]
    keep_t = (~temporal.mask)[:, None, :, :, None]
    z_a = _project(obj, anchor)
    l1 = barlow_twins_loss(z_a, _project(obj, s_view * keep_s), 0.01)
    l2 = barlow_twins_loss(z_a, _project(obj, t_view * keep_t), 0.01)
    torch.testing.assert_close(out["l1"], l1)
    torch.testing.assert_close(out["l2"], l2)
    torch.testing.assert_close(out["loss"], l1 + l2)
    out["loss"].backward()
    assert all(p.grad is not None for p in obj.parameters())


def test_triplet_barlow_twins_drop_mode_removes_joints_and_frames():
    spatial = FixedMask(joints_mask([3, 7, 20]))
    temporal = FixedMask(frames_mask([0, 5, 6]), kind="temporal")
    obj = TripletBarlowTwins(
        encoder(), spatial, temporal, projector_dims=(8, 16), lambd=0.01, mask_mode="drop"
    )
    anchor, s_view, t_view = views()
    out = obj(anchor, s_view, t_view)
    keep_joints = torch.tensor([j for j in range(V) if j not in (3, 7, 20)])
    keep_frames = torch.tensor([t for t in range(T) if t not in (0, 5, 6)])
    z_a = _project(obj, anchor)
    z_s = _project(obj, s_view[:, :, :, keep_joints], keep_joints.expand(N, -1))
    z_t = _project(obj, t_view[:, :, keep_frames])
    torch.testing.assert_close(out["l1"], barlow_twins_loss(z_a, z_s, 0.01))
    torch.testing.assert_close(out["l2"], barlow_twins_loss(z_a, z_t, 0.01))


def test_triplet_barlow_twins_with_the_registered_strategies():
    pytest.importorskip("asma_bench.strategies")
    for mode in ("zero", "drop"):
        obj = TripletBarlowTwins(encoder(), "hdsm", "lmtm", projector_dims=(8, 16), mask_mode=mode)
        anchor, s_view, t_view = views()
        a = obj(anchor, s_view, t_view, generator=torch.Generator().manual_seed(1))["loss"]
        b = obj(anchor, s_view, t_view, generator=torch.Generator().manual_seed(1))["loss"]
        c = obj(anchor, s_view, t_view, generator=torch.Generator().manual_seed(2))["loss"]
        assert torch.isfinite(a) and a.item() == b.item() and a.item() != c.item()


def test_triplet_barlow_twins_validates_its_arguments():
    s, t = FixedMask(joints_mask([1])), FixedMask(frames_mask([1]))
    with pytest.raises(ConfigError, match="must start with the encoder's out_dim 8"):
        TripletBarlowTwins(encoder(), s, t, projector_dims=(16, 16))
    with pytest.raises(ConfigError, match="mask_mode"):
        TripletBarlowTwins(encoder(), s, t, projector_dims=(8, 16), mask_mode="blur")
    with pytest.raises(ConfigError, match="out_dim"):
        TripletBarlowTwins(nn.Linear(3, 3), s, t)
    with pytest.raises(ConfigError, match="spatial must be a masking strategy"):
        TripletBarlowTwins(encoder(), 3, t, projector_dims=(8, 16))
    obj = TripletBarlowTwins(encoder(), s, t)
    assert [m.out_features for m in obj.projector if isinstance(m, nn.Linear)] == [6144] * 3


def test_masked_view_combines_masks():
    x = views()[0]
    s = FixedMask(joints_mask([2, 4]))
    t = FixedMask(frames_mask([1, 3, 8]), kind="temporal")
    zero, kept = masked_view(x, [s, t], "zero")
    union = s.mask | t.mask
    assert kept is None and torch.equal(zero, x * (~union)[:, None, :, :, None])
    dropped, kept = masked_view(x, [s, None, t], "drop")
    keep_j = torch.tensor([j for j in range(V) if j not in (2, 4)])
    keep_t = torch.tensor([f for f in range(T) if f not in (1, 3, 8)])
    assert torch.equal(dropped, x[:, :, keep_t][:, :, :, keep_j])
    assert torch.equal(kept, keep_j.expand(N, -1))
    mixed = torch.zeros(N, T, V, dtype=torch.bool)
    mixed[:, 0, 0] = True
    with pytest.raises(ConfigError, match="purely spatial or purely temporal"):
        masked_view(x, [s, FixedMask(mixed)], "drop")
    assert masked_view(x, [None], "drop") == (x, None)


# --- ASMa -------------------------------------------------------------------------------------


def test_asma_loss_is_the_sum_of_both_encoders_losses():
    masks = {name: (FixedMask(joints_mask(j)), FixedMask(frames_mask(f), kind="temporal"))
             for name, j, f in (("theta", [20, 1], [2, 3]), ("phi", [3, 15], [9, 10]))}  # fmt: skip
    obj = ASMaObjective(
        encoder(0), encoder(1), masks["theta"], masks["phi"], projector_dims=(8, 16), lambd=0.1
    )
    anchor, s_view, t_view = views()
    phi_views = views(seed=9)
    out = obj(anchor, s_view, t_view, phi_views=phi_views)
    theta = obj.theta(anchor, s_view, t_view)
    phi = obj.phi(*phi_views)
    torch.testing.assert_close(out["loss_theta"], theta["loss"])
    torch.testing.assert_close(out["loss_phi"], phi["loss"])
    torch.testing.assert_close(out["loss"], theta["loss"] + phi["loss"])
    torch.testing.assert_close(out["l1_phi"] + out["l2_phi"], phi["loss"])
    assert obj.theta.projector is not obj.phi.projector
    # six views: the first three are f_θ's, the last three f_ϕ's
    six = obj(anchor, s_view, t_view, *phi_views)
    torch.testing.assert_close(six["loss"], out["loss"])
    assert obj.num_views == 6  # the training step draws separately augmented views per encoder
    # three views: both encoders see the same clips
    shared = obj(anchor, s_view, t_view)
    torch.testing.assert_close(shared["loss_phi"], obj.phi(anchor, s_view, t_view)["loss"])
    assert ASMaObjective(encoder(2), encoder(3), view_sharing="shared").num_views == 3
    with pytest.raises(ConfigError, match="view_sharing='both' is not one of separate, shared"):
        ASMaObjective(encoder(2), encoder(3), view_sharing="both")
    with pytest.raises(ConfigError, match="asma takes 3 or 6 views, got 2"):
        obj(anchor, s_view)


def test_algorithm1_views_are_the_clip_itself_and_two_augmented_clips_both_encoders_share():
    from asma_bench.training.pretrain import pretrain_step

    obj = ASMaObjective(encoder(0), encoder(1), projector_dims=(8, 16), view_sharing="algorithm1")
    assert obj.num_views == 2 and obj.raw_anchor
    seen = []
    original = obj.forward_backward  # what the training step calls

    def spy(*v, **kw):
        seen.append(v)
        return original(*v, **kw)

    obj.forward_backward = spy
    x = views()[0]
    augmented = iter([x + 1.0, x - 1.0])
    opt = torch.optim.SGD(obj.parameters(), lr=0.0)
    pretrain_step(obj, x, lambda clip, generator=None: next(augmented), opt, None)
    (got,) = seen
    assert len(got) == 3  # three views: one set for both encoders
    torch.testing.assert_close(got[0], x)  # the anchor is not augmented
    torch.testing.assert_close(got[1], x + 1.0)
    torch.testing.assert_close(got[2], x - 1.0)


def test_asma_builds_the_complementary_pairings_by_name():
    pytest.importorskip("asma_bench.strategies")
    obj = ASMaObjective(
        encoder(0),
        encoder(1),
        projector_dims=(8, 16),
        masking_params={"spatial": {"n": 5}, "temporal": {"k": 4}},
    )
    names = [type(s).name for s in (obj.theta.spatial, obj.theta.temporal,
                                    obj.phi.spatial, obj.phi.temporal)]  # fmt: skip
    assert names == ["hdsm", "lmtm", "ldsm", "hmtm"]
    x = views()[0]
    assert int(obj.theta.spatial(x)[0, 0].sum()) == 5
    assert int(obj.phi.temporal(x)[0, :, 0].sum()) == 4
    loss = obj(*views(), generator=torch.Generator().manual_seed(0))["loss"]
    assert torch.isfinite(loss)


def test_asma_needs_two_encoders():
    enc = encoder()
    with pytest.raises(ConfigError, match="two separate encoders"):
        ASMaObjective(enc, enc, projector_dims=(8, 16))
    with pytest.raises(ConfigError, match="theta_masks"):
        ASMaObjective(encoder(0), encoder(1), theta_masks=(FixedMask(joints_mask([1])),))


# --- MoCo -------------------------------------------------------------------------------------


def test_info_nce_matches_a_hand_computation():
    g = torch.Generator().manual_seed(2)
    q = F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1)
    queue = F.normalize(torch.randn(4, 5, generator=g, dtype=torch.float64), dim=0)
    tau = 0.2
    loss, logits = info_nce(q, k, queue, tau)
    total = 0.0
    for i in range(3):
        row = [sum(q[i, d].item() * k[i, d].item() for d in range(4)) / tau]
        row += [sum(q[i, d].item() * queue[d, j].item() for d in range(4)) / tau
                for j in range(5)]  # fmt: skip
        for j, value in enumerate(row):
            assert logits[i, j].item() == pytest.approx(value, rel=1e-12)
        total += -row[0] + math.log(sum(math.exp(r) for r in row))
    assert loss.item() == pytest.approx(total / 3, rel=1e-12)


def _moco(**kw) -> MoCo:
    params = dict(feature_dim=4, queue_size=6, mlp=True)
    params.update(kw)
    return MoCo(encoder(), **params)


def test_moco_queue_is_a_ring_buffer():
    moco = _moco()
    before = moco.queue.clone()
    k1 = F.normalize(torch.randn(4, 4), dim=1)
    moco.enqueue(k1)
    assert int(moco.queue_ptr) == 4
    torch.testing.assert_close(moco.queue[:, :4], k1.T, rtol=0, atol=0)
    torch.testing.assert_close(moco.queue[:, 4:], before[:, 4:], rtol=0, atol=0)
    k2 = F.normalize(torch.randn(4, 4), dim=1)
    moco.enqueue(k2)
    assert int(moco.queue_ptr) == 2
    torch.testing.assert_close(moco.queue[:, 4:6], k2[:2].T, rtol=0, atol=0)
    torch.testing.assert_close(moco.queue[:, 0:2], k2[2:].T, rtol=0, atol=0)
    torch.testing.assert_close(moco.queue[:, 2:4], k1[2:].T, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="queue_size"):
        moco.enqueue(torch.randn(7, 4))


def test_moco_training_step_updates_key_encoder_and_queue_exactly():
    spatial = FixedMask(joints_mask([0, 20]))
    moco = _moco(spatial=spatial, momentum=0.9, temperature=0.5)
    with torch.no_grad():
        for p in (*moco.encoder_k.parameters(), *moco.head_k.parameters()):
            p.add_(torch.randn_like(p))
    old_k = [p.clone() for p in (*moco.encoder_k.parameters(), *moco.head_k.parameters())]
    q_params = [p.clone() for p in (*moco.encoder_q.parameters(), *moco.head_q.parameters())]
    old_queue = moco.queue.clone()
    query_view, key_view, _ = views(n=4)
    spatial.mask = joints_mask([0, 20], n=4)
    out = moco(query_view, key_view)

    new_k = [p for p in (*moco.encoder_k.parameters(), *moco.head_k.parameters())]
    for new, old, q in zip(new_k, old_k, q_params, strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * q)
    # keys come from the updated key encoder; the query from the masked query view only
    ((seen, _, _),) = spatial.calls
    assert seen is query_view
    with torch.no_grad():
        keys = F.normalize(moco.head_k(moco.encoder_k(key_view)), dim=1)
    masked = query_view * (~spatial.mask)[:, None, :, :, None]
    q = F.normalize(moco.head_q(moco.encoder_q(masked)), dim=1)
    loss, _ = info_nce(q, keys, old_queue, 0.5)
    torch.testing.assert_close(out["loss"], loss)
    torch.testing.assert_close(moco.queue[:, :4], keys.T)
    assert int(moco.queue_ptr) == 4
    out["loss"].backward()
    assert all(p.grad is None for p in moco.encoder_k.parameters())
    assert all(p.grad is not None for p in moco.encoder_q.parameters())


def test_moco_eval_mode_changes_nothing():
    moco = _moco().eval()
    state = copy.deepcopy(moco.state_dict())
    moco(*views(n=4)[:2])
    for key, value in moco.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_moco_validates_its_arguments():
    with pytest.raises(ConfigError, match="momentum"):
        _moco(momentum=1.5)
    with pytest.raises(ConfigError, match="queue_size"):
        _moco(queue_size=0)
    with pytest.raises(ConfigError, match="temperature"):
        _moco(temperature=0.0)
    linear = _moco(mlp=False)
    assert isinstance(linear.head_q, nn.Linear) and linear.head_q.out_features == 4


# --- MAE --------------------------------------------------------------------------------------


def test_masked_mse_ignores_unmasked_positions():
    g = torch.Generator().manual_seed(4)
    pred = torch.randn(2, 3, 5, 4, 2, generator=g, requires_grad=True)
    target = torch.randn(2, 3, 5, 4, 2, generator=g)
    mask = torch.rand(2, 5, 4, generator=g) < 0.4
    loss = masked_mse(pred, target, mask)
    chosen = [((pred[n, :, t, v] - target[n, :, t, v]) ** 2).reshape(-1)
              for n in range(2) for t in range(5) for v in range(4) if mask[n, t, v]]  # fmt: skip
    assert loss.item() == pytest.approx(torch.cat(chosen).mean().item(), rel=1e-6)
    changed = pred.detach().clone()
    changed[(~mask)[:, None, :, :, None].expand_as(changed)] = 100.0
    assert masked_mse(changed, target, mask).item() == loss.item()
    loss.backward()
    assert pred.grad[(~mask)[:, None, :, :, None].expand_as(pred)].abs().sum() == 0
    empty = masked_mse(pred, target, torch.zeros_like(mask))
    assert empty.item() == 0.0 and empty.requires_grad


def test_motion_target_is_the_forward_difference():
    x = torch.randn(2, 3, 5, 4, 1)
    motion = motion_target(x, lengths=torch.tensor([5, 3]))
    for n, length in enumerate((5, 3)):
        for t in range(5):
            expected = x[n, :, t + 1] - x[n, :, t] if t < length - 1 else torch.zeros(3, 4, 1)
            torch.testing.assert_close(motion[n, :, t], expected)


@pytest.mark.parametrize("target", ["coords", "motion"])
def test_mae_loss_is_the_masked_reconstruction_error(target):
    spatial = FixedMask(joints_mask([1, 2, 3]))
    temporal = FixedMask(frames_mask([4, 10]), kind="temporal")
    mae = MaskedReconstruction(encoder(), spatial, temporal, target=target, decoder_dim=8)
    x = views()[0]
    lengths = torch.tensor([T, T, 11, 9, T, 10])
    out = mae(x, lengths=lengths)
    union = spatial.mask | temporal.mask
    assert torch.equal(out["mask"], union)
    pred = mae.decoder(mae.encoder.forward_joint_features(x * (~union)[:, None, :, :, None]), T)
    torch.testing.assert_close(out["pred"], pred)
    goal = x if target == "coords" else motion_target(x, lengths)
    valid = torch.arange(T)[None, :] < lengths[:, None]
    torch.testing.assert_close(out["loss"], masked_mse(pred, goal, union & valid[:, :, None]))
    # frame 10 of sample 2 (length 11) counts, frame 10 of sample 3 (length 9) does not
    assert not torch.equal(
        masked_mse(pred, goal, union & valid[:, :, None]), masked_mse(pred, goal, union)
    )


def test_mae_validates_its_arguments():
    s = FixedMask(joints_mask([1]))
    with pytest.raises(ConfigError, match="masking strategy"):
        MaskedReconstruction(encoder())
    with pytest.raises(ConfigError, match="mask_mode"):
        MaskedReconstruction(encoder(), s, mask_mode="drop")
    with pytest.raises(ConfigError, match="target"):
        MaskedReconstruction(encoder(), s, target="velocity")
    with pytest.raises(ConfigError, match="forward_joint_features"):
        MaskedReconstruction(nn.Linear(3, 3), s)


# --- registry ---------------------------------------------------------------------------------


def test_objective_registry():
    assert {"barlow_twins", "asma", "moco", "mae"} <= set(list_objectives())
    obj = create_objective(
        "barlow_twins",
        encoder=encoder(),
        spatial=FixedMask(joints_mask([1])),
        temporal=FixedMask(frames_mask([1])),
        projector_dims=(8, 16),
    )
    assert isinstance(obj, TripletBarlowTwins) and obj.num_views == 3
    assert create_objective("moco", encoder=encoder(), queue_size=8).num_views == 2
    with pytest.raises(ConfigError, match=r"unknown objective 'simclr'.*barlow_twins"):
        create_objective("simclr")
    with pytest.raises(ConfigError, match="unknown parameter 'lambda'"):
        create_objective("barlow_twins", encoder=encoder(), spatial=None, temporal=None,
                         **{"lambda": 1.0})  # fmt: skip
    with pytest.raises(ConfigError, match="missing parameter.*encoder"):
        create_objective("mae", spatial=FixedMask(joints_mask([1])))
