"""The fast pretraining step computes the same mathematics as a plain reference.

The reference below is written from the formulas, independently of the library's fast
paths: ST-GCN blocks as ``einsum`` over the partitioned adjacency on NCHW tensors (the
public ST-GCN code's order: mix channels, then sum neighbours), BatchNorm with batch
statistics, the Barlow Twins loss through the full D × D cross-correlation matrix, and a
plain Adam update. The library step (channels-last rows, neighbour sum before channel
mixing, N × N Gram matrices for the loss, Bernoulli dropout from raw random bits) must give
the same loss and the same updated weights from the same weights and inputs.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from asma_bench.backbones import create_backbone
from asma_bench.backbones.graph import gather_subgraph
from asma_bench.backbones.stgcn import STGCN, STGCNBlock, keep_mask, rows_dropout
from asma_bench.config import build_config
from asma_bench.data.layouts import get_layout
from asma_bench.data.transforms import Augment
from asma_bench.objectives import barlow_twins_loss, cross_correlation
from asma_bench.objectives.barlow_twins import TripletBarlowTwins
from asma_bench.strategies import apply_mask
from asma_bench.training.loop import make_optimizer
from asma_bench.training.pretrain import (
    build_encoder,
    build_objective,
    encoder_names,
    pretrain_step,
)

LAYOUT = get_layout("ntu25")
# four blocks: first (no residual), two strided with a 1×1 residual, one identity residual
TINY = ["backbone.params.base_channels=4", "backbone.params.num_blocks=4"]


# --- the plain reference ------------------------------------------------------------------


def _bn(x: torch.Tensor, bn: torch.nn.Module, training: bool) -> torch.Tensor:
    if training:
        return F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def reference_block(block: STGCNBlock, x: torch.Tensor, a: torch.Tensor, training: bool):
    """ST-GCN unit on (B, C, T, V): 1×1 conv to K·C' channels, sum over neighbours with
    A[k, v, w] (shared or per sample), BN, ReLU, temporal conv, BN, + residual, ReLU."""
    k = block.gcn.num_subsets
    y = F.conv2d(x, block.gcn.conv.weight, block.gcn.conv.bias)
    b, _, t, v = y.shape
    y = y.view(b, k, -1, t, v)
    if a.dim() == 3:
        y = torch.einsum("nkctv,kvw->nctw", y, a)
    else:
        y = torch.einsum("nkctv,nkvw->nctw", y, a)
    bn1, _, conv, bn2, _ = block.tcn
    y = F.relu(_bn(y, bn1, training))
    y = _bn(F.conv2d(y, conv.weight, conv.bias, conv.stride, conv.padding), bn2, training)
    if block.residual is None:
        return F.relu(y)
    if isinstance(block.residual, torch.nn.Identity):
        return F.relu(y + x)
    res_conv, res_bn = block.residual
    r = F.conv2d(x, res_conv.weight, res_conv.bias, res_conv.stride)
    return F.relu(y + _bn(r, res_bn, training))


def reference_encoder(model: STGCN, x: torch.Tensor, kept: torch.Tensor | None = None):
    """Clip features (N, D) of ``model``'s weights, computed plainly (dropout off)."""
    n, c, t, v, m = x.shape
    training = model.training
    if kept is None:
        # lineage input BatchNorm: channels (joint, coordinate), statistics shared by bodies
        flat = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        h = _bn(flat, model.data_norm.bn, training)
        h = h.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        adjacency = model.adjacency
        rows = None
    else:  # the input BatchNorm on kept joints is shared code, not a fast path
        h = model.data_norm(x, kept)
        rows = kept.repeat_interleave(m, dim=0)
        adjacency = gather_subgraph(model.adjacency, rows)
    for i, block in enumerate(model.blocks):
        weight = model.edge_importance[i]
        a = adjacency * (weight if rows is None else gather_subgraph(weight, rows))
        h = reference_block(block, h, a, training)
    return h.view(n, m, *h.shape[1:]).mean(dim=(1, 3, 4))


def reference_projector(projector: torch.nn.Sequential, z: torch.Tensor) -> torch.Tensor:
    for layer in projector:
        if isinstance(layer, torch.nn.Linear):
            z = F.linear(z, layer.weight)
        elif isinstance(layer, torch.nn.BatchNorm1d):
            z = _bn(z, layer, True)
        else:
            z = F.relu(z)
    return z


def reference_barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambd: float, eps: float = 1e-5):
    """ASMa eqs. 5–7 through the full D × D cross-correlation matrix."""
    n = len(z1)
    a = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    b = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = a.T @ b / n
    off = ~torch.eye(len(c), dtype=torch.bool)
    return ((1 - torch.diagonal(c)) ** 2).sum() + lambd * (c[off] ** 2).sum()


def reference_triplet(obj: TripletBarlowTwins, views, generator, mode: str) -> torch.Tensor:
    """ASMa eq. 8 for one encoder: BT(anchor, spatial view) + BT(anchor, temporal view)."""

    def project(x, kept=None):
        return reference_projector(obj.projector, reference_encoder(obj.encoder, x, kept))

    anchor, spatial_view, temporal_view = views
    z = project(anchor)
    losses = []
    for view, strategy in ((spatial_view, obj.spatial), (temporal_view, obj.temporal)):
        mask = strategy(view, generator=generator)
        if mode == "zero":
            masked, kept = view * (~mask)[:, None, :, :, None], None
        else:
            masked, kept = apply_mask(view, mask, "drop")
        losses.append(reference_barlow_twins(z, project(masked, kept), obj.criterion.lambd))
    return losses[0] + losses[1]


def reference_step(objective, x, generator, lr, weight_decay, mode):
    """Loss, gradients and the weights after one plain Adam update (a first step)."""
    views = [Augment(LAYOUT)(x, generator=generator) for _ in range(objective.num_views)]
    if isinstance(objective, TripletBarlowTwins):
        loss = reference_triplet(objective, views, generator, mode)
    else:  # ASMa: f_θ's three views, then f_ϕ's (the same three when shared)
        loss = reference_triplet(objective.theta, views[:3], generator, mode)
        loss = loss + reference_triplet(objective.phi, views[-3:], generator, mode)
    params = [p for p in objective.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    updated = []
    for p, g in zip(params, grads, strict=True):
        g = g + weight_decay * p.detach()  # Adam's L2 term
        # first step: the bias-corrected moments are g and g², so the update is lr·g/(|g|+ε)
        updated.append(p.detach() - lr * g / (g.abs() + 1e-8))
    return loss.detach(), grads, updated


def _tiny_objective(name: str, mode: str, dtype: torch.dtype):
    cfg = build_config("smoke", [*TINY, f"pretrain.objective={name}", f"masking.mode={mode}"])
    torch.manual_seed(0)
    encoders = {n: build_encoder(cfg, LAYOUT) for n in encoder_names(cfg)}
    objective = build_objective(cfg, encoders, LAYOUT).to(dtype).train()
    with torch.no_grad():  # non-trivial edge importance, as after some training
        for module in objective.modules():
            if isinstance(module, STGCN):
                for w in module.edge_importance:
                    w.uniform_(0.5, 1.5)
    return cfg, objective


def _clips(cfg, n: int, dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, cfg.data.frames, 25, 2, generator=g, dtype=dtype)
    return x.mul(0.05).cumsum(dim=2) + torch.randn(n, 3, 1, 25, 2, generator=g, dtype=dtype)


# --- the step -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mode", "dtype", "rtol"),
    [
        ("barlow_twins", "zero", torch.float64, 1e-10),
        ("barlow_twins", "drop", torch.float64, 1e-10),
        ("asma", "zero", torch.float64, 1e-10),
        ("barlow_twins", "zero", torch.float32, 1e-5),
        ("asma", "zero", torch.float32, 1e-5),
    ],
)
def test_fast_step_matches_the_plain_reference(name, mode, dtype, rtol):
    cfg, objective = _tiny_objective(name, mode, dtype)
    twin = copy.deepcopy(objective)
    x = _clips(cfg, cfg.pretrain.batch_size, dtype)
    p = cfg.pretrain
    opt = torch.optim.Adam(objective.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    stepped = _gradients_at_step(opt)
    fast = pretrain_step(objective, x, Augment(LAYOUT), opt, torch.Generator().manual_seed(7))
    ref_loss, ref_grads, ref_weights = reference_step(
        twin, x, torch.Generator().manual_seed(7), p.lr, p.weight_decay, mode
    )
    assert fast.item() == pytest.approx(ref_loss.item(), rel=rtol)
    params = [p for p in objective.parameters() if p.requires_grad]
    assert len(params) == len(ref_grads)
    scale = max(float(g.abs().max()) for g in ref_grads)
    if dtype == torch.float32:
        # In float32 the channels-last BatchNorm kernel's batch statistics carry about 20
        # times the rounding of the NCHW kernel's (~1e-6 relative, measured), and the three
        # streams' gradients partly cancel in the first blocks: compare gradients by
        # relative norm (float64 above pins the mathematics to 1e-10).
        for param, g_ref in zip(params, ref_grads, strict=True):
            if g_ref.norm() > 1e-3 * scale:
                assert (stepped[param] - g_ref).norm() < 3e-2 * g_ref.norm()
        return
    for param, g_ref, w_ref in zip(params, ref_grads, ref_weights, strict=True):
        torch.testing.assert_close(stepped[param], g_ref, rtol=0, atol=1e-8 * scale)
        # Adam's first update is lr·sign(g) where |g| ≫ ε; elements whose gradient is zero
        # in exact arithmetic (conv biases before a BatchNorm) only carry rounding noise
        clear = g_ref.abs() > 1e-4 * scale
        torch.testing.assert_close(param.detach()[clear], w_ref[clear], rtol=0, atol=1e-8 * p.lr)


def test_the_reference_itself_sees_a_wrong_step():
    """The comparison can fail: a different mask law changes the reference loss."""
    cfg, objective = _tiny_objective("barlow_twins", "zero", torch.float64)
    x = _clips(cfg, cfg.pretrain.batch_size, torch.float64)
    p = cfg.pretrain
    loss, _, _ = reference_step(copy.deepcopy(objective), x, torch.Generator().manual_seed(7),
                                p.lr, p.weight_decay, "zero")  # fmt: skip
    objective.spatial, objective.temporal = objective.temporal, objective.spatial
    opt = torch.optim.Adam(objective.parameters(), lr=p.lr)
    swapped = pretrain_step(objective, x, Augment(LAYOUT), opt, torch.Generator().manual_seed(7))
    assert abs(swapped.item() - loss.item()) > 1e-6 * abs(loss.item())


# --- the encoder --------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layout", ["ntu25", "kinect20"])
def test_stgcn_forward_and_gradients_match_the_einsum_reference(training, layout):
    torch.manual_seed(3)
    model = create_backbone("stgcn", layout=layout, base_channels=4, num_blocks=4, out_dim=16,
                            dropout=0.0).double()  # fmt: skip
    with torch.no_grad():
        for w in model.edge_importance:
            w.uniform_(0.5, 1.5)
    model(torch.randn(4, 3, 12, model.layout.num_joints, 2, dtype=torch.float64))  # stats
    model.train(training)
    x = torch.randn(5, 3, 12, model.layout.num_joints, 2, dtype=torch.float64)
    weights = torch.randn(model.out_dim, dtype=torch.float64)
    twin = copy.deepcopy(model)
    out, ref = model(x), reference_encoder(twin, x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    grads = torch.autograd.grad((out @ weights).sum(), list(model.parameters()))
    ref_grads = torch.autograd.grad((ref @ weights).sum(), list(twin.parameters()))
    for (name, _), got, want in zip(model.named_parameters(), grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10, msg=name)


def test_stgcn_drop_mode_matches_the_einsum_reference():
    torch.manual_seed(4)
    model = create_backbone("stgcn", base_channels=4, num_blocks=4, out_dim=16,
                            dropout=0.0).double()  # fmt: skip
    x = torch.randn(3, 3, 12, 25, 2, dtype=torch.float64)
    kept = torch.stack([torch.randperm(25, generator=torch.Generator().manual_seed(s))[:17]
                        for s in range(3)])  # fmt: skip
    reduced = torch.stack([x[i][:, :, kept[i]] for i in range(3)])
    twin = copy.deepcopy(model)
    torch.testing.assert_close(
        model(reduced, kept_joints=kept), reference_encoder(twin, reduced, kept),
        rtol=1e-10, atol=1e-12,
    )  # fmt: skip


def test_block_nchw_and_rows_forms_agree():
    torch.manual_seed(5)
    block = STGCNBlock(6, 8, 3, stride=2).double()
    a = torch.rand(3, 25, 25, dtype=torch.float64)
    x = torch.randn(4, 6, 10, 25, dtype=torch.float64)
    nchw = block(x, a)
    rows = block.forward_rows(x.permute(0, 2, 3, 1).contiguous(), a)
    torch.testing.assert_close(nchw, rows.permute(0, 3, 1, 2))
    torch.testing.assert_close(nchw, reference_block(block, x, a, True))


# --- dropout ------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.5, 0.25, 0.3])
def test_keep_mask_keeps_each_element_with_probability_one_minus_p(p):
    torch.manual_seed(0)
    x = torch.empty(400, 500)
    keep = keep_mask(x, p)
    n = keep.numel()
    rate = keep.double().mean().item()
    assert abs(rate - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)  # 5 standard errors
    # rows and columns are independent draws, not a repeated pattern
    assert not torch.equal(keep[0], keep[1]) and not torch.equal(keep[:, 0], keep[:, 1])
    assert not torch.equal(keep, keep_mask(x, p))


def test_rows_dropout_scales_what_it_keeps_and_is_off_in_eval():
    torch.manual_seed(1)
    x = torch.randn(64, 33, dtype=torch.float64, requires_grad=True)
    y = rows_dropout(x, 0.5, True)
    kept = y != 0
    torch.testing.assert_close(y[kept], 2 * x[kept])
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, 2.0 * kept.double())
    assert rows_dropout(x, 0.5, False) is x and rows_dropout(x, 0.0, True) is x
    # unbiased: the mean over many draws approaches the input
    draws = torch.stack([rows_dropout(x.detach(), 0.5, True) for _ in range(400)]).mean(0)
    assert (draws - x.detach()).abs().mean() < 0.1


# --- the Barlow Twins loss ----------------------------------------------------------------


@pytest.mark.parametrize("standardize", ["batch", "correlation"])
@pytest.mark.parametrize(("n", "d"), [(6, 40), (40, 6)])
def test_gram_route_equals_the_cross_correlation_matrix(standardize, n, d):
    g = torch.Generator().manual_seed(2)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    z2 = 0.3 * z1 + torch.randn(n, d, generator=g, dtype=torch.float64)
    c = cross_correlation(z1, z2, standardize)
    off = ~torch.eye(d, dtype=torch.bool)
    expected = ((1 - torch.diagonal(c)) ** 2).sum() + 0.01 * (c[off] ** 2).sum()
    got = barlow_twins_loss(z1, z2, 0.01, standardize)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    gz = torch.autograd.grad(barlow_twins_loss(z1.requires_grad_(), z2, 0.01, standardize), z1)
    z1r = z1.detach().requires_grad_()
    c = cross_correlation(z1r, z2, standardize)
    ref = ((1 - torch.diagonal(c)) ** 2).sum() + 0.01 * (c[off] ** 2).sum()
    torch.testing.assert_close(gz[0], torch.autograd.grad(ref, z1r)[0], rtol=1e-10, atol=1e-12)


# --- memory and reduced precision ---------------------------------------------------------


def _grads(objective) -> list[torch.Tensor]:
    return [p.grad.clone() for p in objective.parameters() if p.grad is not None]


def _gradients_at_step(opt: torch.optim.Optimizer) -> dict[torch.Tensor, torch.Tensor]:
    """Each parameter's gradient when the optimizer stepped it (the pretraining step frees
    the gradients right after each update)."""
    seen: dict[torch.Tensor, torch.Tensor] = {}

    def hook(optimizer, args, kwargs):  # noqa: ANN001, ANN202
        for group in optimizer.param_groups:
            seen.update({q: q.grad.clone() for q in group["params"] if q.grad is not None})

    opt.register_step_pre_hook(hook)
    return seen


def _theta_gradients_when_phi_starts(objective, which) -> list[bool]:  # noqa: ANN001
    """Filled as the step runs: ``which`` (any / all) of f_θ's parameters holds a gradient,
    each time f_ϕ's forward pass starts."""
    seen: list[bool] = []
    original = objective.phi.forward

    def spy(*args, **kwargs):
        seen.append(which(p.grad is not None for p in objective.theta.parameters()))
        return original(*args, **kwargs)

    objective.phi.forward = spy
    return seen


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["foreach", "fused", "sgd"])
def test_asma_updates_each_encoder_after_its_backward_pass_as_one_step_would(dtype, kind):
    """The pretraining step updates f_θ (and frees its gradients) before f_ϕ's forward
    pass: over three steps the weights, optimizer state and losses equal, bit for bit,
    those of one update after both encoders' backward passes."""
    cfg, objective = _tiny_objective("asma", "zero", dtype)
    twin = copy.deepcopy(objective)
    x = _clips(cfg, cfg.pretrain.batch_size, dtype)

    def optimizer(model):  # noqa: ANN001, ANN202
        if kind == "sgd":
            return make_optimizer(model.parameters(), 0.05, 1e-3, name="sgd")
        return torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-4,
                                **{kind: True})  # fmt: skip

    opt, ref_opt = optimizer(objective), optimizer(twin)
    seen = _theta_gradients_when_phi_starts(objective, any)
    gen, ref_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    augment = Augment(LAYOUT)
    for step in range(3):
        torch.manual_seed(step)  # dropout draws from the global generator
        loss = pretrain_step(objective, x, augment, opt, gen)
        torch.manual_seed(step)
        views = [augment(x, generator=ref_gen) for _ in range(twin.num_views)]
        ref_opt.zero_grad(set_to_none=True)
        ref = twin.forward_backward(*views, generator=ref_gen)["loss"]
        ref_opt.step()
        assert torch.equal(loss, ref)
    assert seen == [False] * 3  # f_θ's gradients were already released
    for got, want in zip(objective.parameters(), twin.parameters(), strict=True):
        assert torch.equal(got, want)
        assert got.grad is None
    for got, want in zip(opt.state.values(), ref_opt.state.values(), strict=True):
        for key in got:
            assert torch.equal(got[key], want[key])


def test_asma_finishes_one_encoders_backward_pass_before_the_others_forward_pass():
    """Same gradients as one backward pass of L^θ + L^ϕ, bit for bit, with f_θ's graph
    already freed (its gradients present) when f_ϕ's forward pass starts."""
    cfg, objective = _tiny_objective("asma", "zero", torch.float64)
    twin = copy.deepcopy(objective)
    x = _clips(cfg, cfg.pretrain.batch_size, torch.float64)
    views = [Augment(LAYOUT)(x, generator=torch.Generator().manual_seed(3)) for _ in range(6)]
    seen = _theta_gradients_when_phi_starts(objective, all)
    torch.manual_seed(5)  # dropout draws from the global generator
    losses = objective.forward_backward(*views, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(5)
    reference = twin(*views, generator=torch.Generator().manual_seed(9))
    reference["loss"].backward()
    assert seen == [True]
    assert torch.equal(losses["loss"], reference["loss"].detach())
    for got, want in zip(_grads(objective), _grads(twin), strict=True):
        assert torch.equal(got, want)


def test_a_block_keeps_neither_the_aggregated_rows_nor_float_dropout_masks():
    """What an ST-GCN block saves for its backward pass: no (frame, joint) rows of K·C
    channels (recomputed there) and a one-byte dropout mask."""
    torch.manual_seed(0)
    block = STGCNBlock(8, 8, 3, dropout=0.5).train()
    x = torch.randn(4, 6, 25, 8, requires_grad=True)
    a = torch.rand(3, 25, 25, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = block.forward_rows(x, a)
    assert max(t.numel() for t in saved) == x.numel()  # nothing K = 3 times wider
    masks = [t for t in saved if t.dtype == torch.bool]
    assert [m.shape for m in masks] == [out.shape]
    out.square().sum().backward()  # and the recomputing backward pass runs
    assert x.grad is not None and a.grad is not None


def test_bf16_autocast_step_on_cpu_tracks_the_fp32_step():
    """``amp`` on a CPU: the same step in bf16 autocast, the loss within bf16's rounding of
    fp32's and every sizeable gradient pointing the same way; parameters stay fp32."""
    cfg, objective = _tiny_objective("barlow_twins", "zero", torch.float32)
    twin = copy.deepcopy(objective)
    x = _clips(cfg, cfg.pretrain.batch_size, torch.float32)
    results, grads = [], []
    for model, amp in ((objective, None), (twin, torch.bfloat16)):
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        grads.append(_gradients_at_step(opt))
        torch.manual_seed(5)
        loss = pretrain_step(model, x, Augment(LAYOUT), opt, torch.Generator().manual_seed(7),
                             amp=amp)  # fmt: skip
        results.append(loss)
    assert results[1].item() == pytest.approx(results[0].item(), rel=0.05)
    grads32 = [grads[0][p] for p in objective.parameters() if p in grads[0]]
    grads16 = [grads[1][p] for p in twin.parameters() if p in grads[1]]
    scale = max(float(g.norm()) for g in grads32)
    cosines = []
    for g32, g16 in zip(grads32, grads16, strict=True):
        assert g16.dtype == torch.float32
        if g32.norm() > 1e-2 * scale:  # not the biases before a BatchNorm (zero in fp32)
            cosines.append(float(F.cosine_similarity(g32.flatten(), g16.flatten(), dim=0)))
    # measured: 0.94-0.998 per tensor with this tiny model and batch at 2 threads, down to
    # 0.89 for one tensor at 1 thread (the kernels sum in another order); bf16 keeps 8 bits
    # of mantissa, so a wrong cast or a dropped scale would give ~0, not 0.85
    assert min(cosines) > 0.85 and sum(cosines) / len(cosines) > 0.97
