"""Backbones: graph construction, input normalisation, every registered backbone's contract
(forward/backward, determinism, drop-mode inputs), sizes, FLOPs and ONNX export."""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from asma_bench.backbones import (
    STGCN,
    count_flops,
    count_parameters,
    create_backbone,
    graph_adjacency,
    list_backbones,
    partition_masks,
)
from asma_bench.backbones.graph import (
    JointDataNorm,
    gather_subgraph,
    normalize_partitions,
    stage_channels,
    subgraph_adjacency,
)
from asma_bench.data.layouts import get_layout
from asma_bench.errors import ConfigError

# Small widths so every test runs in milliseconds; unknown (plug-in) backbones use defaults.
TINY = {
    "stgcn": dict(base_channels=4, num_blocks=3, out_dim=8),
    "student": dict(base_channels=4, num_blocks=2, out_dim=8),
    "gin": dict(channels=(6, 8), strides=(1, 2)),
    "dgcnn": dict(channels=(6, 8), strides=(1, 2), k=4),
}
LAYOUTS = ["ntu25", "kinect20"]


def tiny(name: str, layout: str = "ntu25", **extra) -> nn.Module:
    return create_backbone(name, layout=layout, **{**TINY.get(name, {}), **extra})


def batch(layout: str, n: int = 3, t: int = 12, m: int = 2, seed: int = 0, dtype=torch.float32):
    v = get_layout(layout).num_joints
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, t, v, m, generator=g, dtype=dtype)


# --- registry -----------------------------------------------------------------------------


def test_registry_lists_the_built_in_backbones():
    assert {"stgcn", "gin", "dgcnn", "student"} <= set(list_backbones())
    assert list_backbones("st*") == ["stgcn", "student"]


def test_unknown_backbone_and_parameter_raise_config_error():
    with pytest.raises(ConfigError, match=r"unknown backbone 'resnet'.*stgcn"):
        create_backbone("resnet")
    with pytest.raises(ConfigError, match="unknown parameter 'widht'"):
        create_backbone("stgcn", widht=3)
    with pytest.raises(ConfigError, match="layout"):
        create_backbone("gin", layout="coco18")
    with pytest.raises(ConfigError, match="dropout"):
        create_backbone("stgcn", dropout=1.5)
    with pytest.raises(ConfigError, match="temporal_kernel"):
        create_backbone("stgcn", temporal_kernel=4)
    with pytest.raises(ConfigError, match="out_dim"):
        create_backbone("stgcn", channels=(8, 16), out_dim=32)
    with pytest.raises(ConfigError, match="strides"):
        create_backbone("stgcn", channels=(8, 16), strides=(1,))


# --- graph --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_spatial_partition_follows_distance_to_centre(layout_name):
    layout = get_layout(layout_name)
    masks = partition_masks(layout, "spatial")
    v = layout.num_joints
    assert masks.shape == (3, v, v)
    np.testing.assert_array_equal(masks[0], np.eye(v))
    expected_in, expected_out = np.zeros((v, v)), np.zeros((v, v))
    depth = layout.depth
    for a, b in layout.edges:
        far, near = (a, b) if depth[a] > depth[b] else (b, a)
        expected_in[far, near] = 1  # message from the farther joint to the nearer one
        expected_out[near, far] = 1
    np.testing.assert_array_equal(masks[1], expected_in)
    np.testing.assert_array_equal(masks[2], expected_out)


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_normalised_adjacency_averages_over_each_neighbourhood(layout_name):
    layout = get_layout(layout_name)
    a = graph_adjacency(layout, "spatial")
    degrees = layout.degrees
    # each receiver's weights (all subsets, all senders) sum to one ...
    np.testing.assert_allclose(a.sum(axis=(0, 1)), np.ones(layout.num_joints), rtol=1e-6)
    # ... shared equally by itself and its d neighbours
    np.testing.assert_allclose(np.diag(a[0]), 1.0 / (degrees + 1), rtol=1e-6)
    for i, j in layout.edges:
        np.testing.assert_allclose(a[:, i, j].sum(), 1.0 / (degrees[j] + 1), rtol=1e-6)


def test_uniform_distance_and_symmetric_variants():
    layout = get_layout("ntu25")
    eye, adj = np.eye(25), layout.adjacency
    d = layout.degrees + 1
    uniform = graph_adjacency(layout, "uniform")
    np.testing.assert_allclose(uniform[0], (eye + adj) / d[None, :], rtol=1e-6)
    distance = graph_adjacency(layout, "distance")
    np.testing.assert_allclose(distance[0], eye / d[None, :], rtol=1e-6)
    np.testing.assert_allclose(distance[1], adj / d[None, :], rtol=1e-6)
    sym = graph_adjacency(layout, "uniform", normalization="symmetric")[0]
    np.testing.assert_allclose(sym, (eye + adj) / np.sqrt(d[:, None] * d[None, :]), rtol=1e-6)
    two_hop = partition_masks(layout, "spatial", max_hop=2)
    assert two_hop.shape[0] == 5
    np.testing.assert_array_equal(two_hop[3] + two_hop[4], layout.hop_distance == 2)
    with pytest.raises(ConfigError, match="partition strategy"):
        partition_masks(layout, "star")
    with pytest.raises(ConfigError, match="max_hop"):
        partition_masks(layout, "spatial", max_hop=0)


def test_subgraph_gathers_or_renormalises_per_sample():
    layout = get_layout("ntu25")
    masks = torch.from_numpy(partition_masks(layout))
    a = normalize_partitions(masks)
    kept = torch.tensor([[0, 1, 20, 2, 3], [4, 5, 6, 7, 21]])
    sub = subgraph_adjacency(a, masks, kept, renormalize=False)
    assert sub.shape == (2, 3, 5, 5)
    for b in range(2):
        for r, jr in enumerate(kept[b].tolist()):
            for c, jc in enumerate(kept[b].tolist()):
                torch.testing.assert_close(sub[b, :, r, c], a[:, jr, jc], rtol=0, atol=0)
    renorm = subgraph_adjacency(a, masks, kept, renormalize=True)
    torch.testing.assert_close(renorm.sum(dim=(1, 2)), torch.ones(2, 5))
    # spine_mid (1) kept with spine_base (0) and spine_shoulder (20): 2 neighbours + itself
    assert renorm[0, 0, 1, 1].item() == pytest.approx(1 / 3)
    # left_hand_tip (21) lost its only neighbour, left_thumb (22): it averages over itself
    assert renorm[1, 0, 4, 4].item() == pytest.approx(1.0)


def test_stage_channels_reproduce_the_lineage_plan():
    channels, strides = stage_channels(16, 256, 10)
    assert channels == (16, 16, 16, 16, 32, 32, 32, 64, 64, 256)
    assert strides == (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    assert stage_channels(32, 128, 5) == ((32, 32, 64, 128, 128), (1, 1, 2, 2, 1))
    assert stage_channels(8, 16, 1) == ((16,), (1,))
    with pytest.raises(ConfigError, match="num_blocks"):
        stage_channels(8, 16, 0)


# --- input normalisation ------------------------------------------------------------------


def test_data_norm_on_kept_joints_uses_each_joints_statistics():
    torch.manual_seed(0)
    v, c, m = 6, 2, 2
    norm = JointDataNorm(c, v, "joint").double()
    with torch.no_grad():
        norm.bn.weight.uniform_(0.5, 2)
        norm.bn.bias.uniform_(-1, 1)
    kept = torch.tensor([[0, 2, 3, 5], [1, 2, 4, 5], [5, 0, 3, 1]])
    x = torch.randn(3, c, 4, 4, m, dtype=torch.float64)
    out = norm(x, kept)  # (N*M, C, T, V')
    # independent: per original (joint, coordinate), pool every frame and body of the samples
    # that kept that joint, standardise with the biased variance
    expected = torch.empty_like(out)
    for joint in range(v):
        for ch in range(c):
            values, where = [], []
            for n in range(3):
                for pos, j in enumerate(kept[n].tolist()):
                    if j == joint:
                        values.append(x[n, ch, :, pos, :].reshape(-1))
                        where.append((n, pos))
            if not values:
                continue
            pooled = torch.cat(values)
            mean, var = pooled.mean(), pooled.var(unbiased=False)
            w, b = norm.bn.weight[joint * c + ch], norm.bn.bias[joint * c + ch]
            for n, pos in where:
                for body in range(m):
                    z = (x[n, ch, :, pos, body] - mean) / torch.sqrt(var + norm.bn.eps)
                    expected[n * m + body, ch, :, pos] = z * w + b
    torch.testing.assert_close(out, expected.detach(), rtol=1e-12, atol=1e-12)
    # running statistics move by momentum 0.1 towards the kept samples' statistics
    pooled = x[1, 0, :, 2, :].reshape(-1)  # joint 4, coordinate 0, only in sample 1
    expected_running = 0.9 * 0.0 + 0.1 * pooled.mean()
    torch.testing.assert_close(norm.bn.running_mean[4 * c], expected_running.detach())
    torch.testing.assert_close(norm.bn.running_var[4 * c], 0.9 + 0.1 * pooled.var().detach())


def test_data_norm_leaves_unseen_joints_running_stats_alone():
    norm = JointDataNorm(3, 5, "body_joint", num_bodies=2)
    x = torch.randn(2, 3, 4, 3, 2)
    norm(x, torch.tensor([[0, 1, 2], [0, 1, 2]]))
    unseen = norm.bn.running_mean.view(2, 5, 3)[:, 3:]
    assert torch.equal(unseen, torch.zeros_like(unseen))
    assert norm.bn.running_mean.view(2, 5, 3)[:, :3].abs().sum() > 0
    with pytest.raises(ConfigError, match="num_bodies"):
        norm(torch.randn(2, 3, 4, 5, 1))


@pytest.mark.parametrize("mode", ["joint", "body_joint"])
@pytest.mark.parametrize("training", [True, False])
def test_data_norm_with_all_joints_kept_matches_batchnorm(mode, training):
    norm = JointDataNorm(3, 5, mode, num_bodies=2).double()
    norm.train(training)
    twin = copy.deepcopy(norm)
    x = torch.randn(4, 3, 6, 5, 2, dtype=torch.float64)
    kept = torch.arange(5).expand(4, 5)
    torch.testing.assert_close(norm(x, kept), twin(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(norm.bn.running_var, twin.bn.running_var, rtol=1e-12, atol=1e-12)


# --- every registered backbone --------------------------------------------------------------


@pytest.mark.parametrize("name", list_backbones())
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bodies", [2, 1])
def test_forward_backward_reaches_every_parameter(name, layout, bodies):
    model = tiny(name, layout)
    x = batch(layout, m=bodies)
    out = model(x)
    assert out.shape == (3, model.out_dim) and torch.isfinite(out).all()
    frames = model.forward_features(x)
    assert frames.dim() == 3 and frames.shape[0] == 3 and frames.shape[2] == model.out_dim
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", list_backbones())
def test_pooled_views_agree(name):
    model = tiny(name).eval().double()
    x = batch("ntu25", dtype=torch.float64)
    joints = model.forward_joint_features(x)
    frames = model.forward_features(x)
    torch.testing.assert_close(frames, joints.mean(dim=(3, 4)).transpose(1, 2))
    torch.testing.assert_close(model(x), frames.mean(dim=1))


@pytest.mark.parametrize("name", list_backbones())
def test_eval_mode_is_deterministic(name):
    model = tiny(name)
    model(batch("ntu25"))  # one training step moves the BatchNorm statistics
    model.eval()
    x = batch("ntu25", seed=3)
    assert torch.equal(model(x), model(x))
    assert not torch.equal(model(x), model(batch("ntu25", seed=4)))


@pytest.mark.parametrize("name", list_backbones())
@pytest.mark.parametrize("training", [True, False])
def test_all_joints_kept_equals_no_kept_joints(name, training):
    model = tiny(name).double().train(training)
    x = batch("ntu25", dtype=torch.float64)
    kept = torch.arange(25).expand(3, 25)
    twin = copy.deepcopy(model)
    torch.manual_seed(5)
    a = model(x, kept_joints=kept)
    torch.manual_seed(5)
    b = twin(x)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list_backbones())
def test_kept_joints_follow_the_joints_they_name(name):
    """Permuting the joints and saying so through kept_joints changes nothing but the order."""
    model = tiny(name).double().eval()
    x = batch("ntu25", dtype=torch.float64)
    perm = torch.stack([torch.randperm(25, generator=torch.Generator().manual_seed(s))
                        for s in range(3)])  # fmt: skip
    x_perm = torch.stack([x[i][:, :, perm[i]] for i in range(3)])
    ref = model.forward_joint_features(x)
    out = model.forward_joint_features(x_perm, kept_joints=perm)
    expected = torch.stack([ref[i][:, :, perm[i]] for i in range(3)])
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", list_backbones())
def test_drop_mode_samples_are_independent(name):
    model = tiny(name).double().eval()
    x = batch("ntu25", dtype=torch.float64)
    kept = torch.stack([
        torch.sort(torch.randperm(25, generator=torch.Generator().manual_seed(s))[:18]).values
        for s in range(3)
    ])  # fmt: skip
    reduced = torch.stack([x[i][:, :, kept[i]] for i in range(3)])
    together = model(reduced, kept_joints=kept)
    for i in range(3):
        alone = model(reduced[i : i + 1], kept_joints=kept[i : i + 1])
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("renormalize", [False, True])
def test_stgcn_drop_mode_equals_a_model_built_on_the_subgraph(renormalize):
    """Independent construction: slice the graph, edge importance and input BatchNorm by
    hand and run the sliced model on the reduced input without kept_joints."""
    model = tiny("stgcn", renormalize_subgraph=renormalize).double()
    with torch.no_grad():
        for w in model.edge_importance:
            w.uniform_(0.5, 1.5)
    model(batch("ntu25", dtype=torch.float64))  # non-trivial running statistics
    model.eval()
    keep = torch.tensor([0, 1, 2, 3, 4, 5, 6, 8, 12, 13, 16, 20, 22, 24])
    x = batch("ntu25", seed=7, dtype=torch.float64)[:, :, :, keep]
    out = model(x, kept_joints=keep.expand(3, -1))

    sliced = copy.deepcopy(model)
    masks = model.partitions[:, keep][:, :, keep]
    sliced.adjacency = (
        normalize_partitions(masks) if renormalize else model.adjacency[:, keep][:, :, keep]
    )
    sliced.layout = _FakeLayout(len(keep))
    for w in sliced.edge_importance:
        w.data = w.data[:, keep][:, :, keep]
    channels = (keep[:, None] * 3 + torch.arange(3)).reshape(-1)
    bn = nn.BatchNorm1d(len(channels)).double().eval()
    for attr in ("weight", "bias", "running_mean", "running_var"):
        getattr(bn, attr).data = getattr(model.data_norm.bn, attr).data[channels]
    sliced.data_norm.bn = bn
    torch.testing.assert_close(out, sliced(x), rtol=1e-10, atol=1e-12)
    if not renormalize:
        # keeping the full graph's normalisation is not the same as renormalising
        model.renormalize_subgraph = True
        assert not torch.allclose(out, model(x, kept_joints=keep.expand(3, -1)))


class _FakeLayout:
    def __init__(self, v: int):
        self.num_joints = v
        self.name = f"sub{v}"


def test_input_validation():
    model = tiny("stgcn")
    with pytest.raises(ConfigError, match="channels"):
        model(torch.randn(2, 2, 8, 25, 1))
    with pytest.raises(ConfigError, match="kept_joints"):
        model(torch.randn(2, 3, 8, 20, 1))
    with pytest.raises(ConfigError, match=r"kept_joints must have shape \(2, 20\)"):
        model(torch.randn(2, 3, 8, 20, 1), kept_joints=torch.zeros(2, 19, dtype=torch.long))
    with pytest.raises(ConfigError, match="integer"):
        model(torch.randn(2, 3, 8, 20, 1), kept_joints=torch.zeros(2, 20))
    with pytest.raises(ConfigError, match=r"\(N, C, T, V, M\)"):
        model(torch.randn(2, 3, 8, 25))
    # DGCNN is a point-set model: any joint count works without kept_joints
    dgcnn = tiny("dgcnn")
    assert dgcnn(torch.randn(2, 3, 8, 11, 1)).shape == (2, 8)


def test_layout_decides_the_graph_size():
    assert tiny("stgcn", "kinect20").adjacency.shape == (3, 20, 20)
    assert tiny("gin", "kinect20").adjacency.shape == (20, 20)
    assert tiny("stgcn", "kinect20").data_norm.bn.num_features == 3 * 20


# --- sizes and costs ----------------------------------------------------------------------


def _stgcn_parameter_count(channels, strides, v, k=3, kt=9, c_in=3):
    """Count from the architecture: data BN, and per block graph conv (K·C' 1×1 conv),
    BN + temporal conv + BN, residual conv + BN where shapes change, edge importance."""
    total = 2 * c_in * v
    widths = (c_in, *channels)
    for i, (a, b, s) in enumerate(zip(widths[:-1], widths[1:], strides, strict=True)):
        total += a * k * b + k * b
        total += 2 * b + kt * b * b + b + 2 * b
        if i > 0 and (a != b or s != 1):
            total += a * b + b + 2 * b
        total += k * v * v
    return total


def test_default_stgcn_has_the_lineage_size():
    model = create_backbone("stgcn")
    assert model.channels == (16, 16, 16, 16, 32, 32, 32, 64, 64, 256)
    assert model.out_dim == 256
    expected = _stgcn_parameter_count(model.channels, model.strides, 25)
    assert count_parameters(model) == expected
    assert 0.8e6 < expected < 0.85e6


def test_default_student_is_a_five_block_stgcn():
    student = create_backbone("student")
    assert len(student.blocks) == 5 and student.adjacency.shape[0] == 3
    assert student.blocks[0].tcn[2].kernel_size == (9, 1)
    expected = _stgcn_parameter_count(student.channels, student.strides, 25)
    assert count_parameters(student) == expected
    assert count_parameters(student) < count_parameters(create_backbone("stgcn"))


def test_count_parameters_trainable_only():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 4 * 3 + 3 + 3 * 2 + 2
    assert count_parameters(model, trainable_only=True) == 3 + 3 * 2 + 2


def test_count_flops_matches_hand_counts_and_leaves_the_model_alone():
    assert count_flops(nn.Linear(7, 5), torch.randn(4, 7)) == 2 * 4 * 7 * 5
    model = tiny("stgcn")
    model.train()
    before = copy.deepcopy(model.state_dict())
    flops = count_flops(model, batch("ntu25", n=1))
    assert flops > 0
    assert count_flops(model, batch("ntu25", n=2)) == 2 * flops
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


# --- ONNX ---------------------------------------------------------------------------------


def _check_onnx(model: nn.Module, x: torch.Tensor, dynamo: bool) -> None:
    ort = pytest.importorskip("onnxruntime")
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(model, (x,), dynamo=True, external_data=False)
            data = program.model_proto.SerializeToString()
        else:
            buffer = io.BytesIO()
            torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["x"])
            data = buffer.getvalue()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list_backbones())
def test_exports_to_onnx(name):
    _check_onnx(tiny(name), batch("ntu25", n=2, m=1), dynamo=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gin", "dgcnn"])
def test_exports_to_onnx_with_the_dynamo_exporter(name):
    pytest.importorskip("onnxscript")
    _check_onnx(tiny(name), batch("ntu25", n=2, m=1), dynamo=True)


def test_stgcn_class_is_the_registered_one():
    assert isinstance(create_backbone("stgcn"), STGCN)
    assert gather_subgraph(torch.eye(3)[None], torch.tensor([[2, 0]])).tolist() == [
        [[[1.0, 0.0], [0.0, 1.0]]]
    ]
