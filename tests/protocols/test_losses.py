import torch
from torch import nn

from asma_bench.models.alignment import FeatureAlignment
from asma_bench.objectives.distillation import distillation_loss


def _kl(p: torch.Tensor, q: torch.Tensor) -> float:
    """KL(p ‖ q) averaged over rows, written out term by term."""
    rows, cols = p.shape
    total = sum(
        float(p[i, j] * (torch.log(p[i, j]) - torch.log(q[i, j])))
        for i in range(rows)
        for j in range(cols)
    )
    return total / rows


def test_distillation_loss_matches_explicit_kl():
    s, t, tau = torch.randn(4, 6), torch.randn(4, 6), 3.0
    p_t = torch.softmax(t / tau, 1)
    p_s = torch.softmax(s / tau, 1)
    manual = _kl(p_t, p_s) * tau**2
    assert abs(float(distillation_loss(s, t, tau)) - manual) < 1e-5
    assert float(distillation_loss(t, t, tau)) < 1e-6
    # without Hinton's τ² factor (eq. 14 has none)
    assert abs(float(distillation_loss(s, t, tau, scale_tau_squared=False)) - manual / 9) < 1e-6
    # eq. 14's direction, KL(student ‖ teacher): the reverse divergence, a different number
    reverse = _kl(p_s, p_t) * tau**2
    got = float(distillation_loss(s, t, tau, direction="student_teacher"))
    assert abs(got - reverse) < 1e-5 and abs(reverse - manual) > 1e-3


def _attend(mha: nn.MultiheadAttention, q, kv):
    """Multi-head attention written out (eq. 10): softmax(QK^T/sqrt(d)) V per head."""
    d, h = mha.embed_dim, mha.num_heads
    wq, wk, wv = mha.in_proj_weight.split(d)
    bq, bk, bv = mha.in_proj_bias.split(d)
    Q, K, V = q @ wq.T + bq, kv @ wk.T + bk, kv @ wv.T + bv
    out = []
    for i in range(h):
        sl = slice(i * d // h, (i + 1) * d // h)
        att = torch.softmax(Q[..., sl] @ K[..., sl].transpose(1, 2) / (d // h) ** 0.5, -1)
        out.append(att @ V[..., sl])
    return torch.cat(out, -1) @ mha.out_proj.weight.T + mha.out_proj.bias


def test_alignment_is_bidirectional_cross_attention():
    m = FeatureAlignment(dim=8, num_classes=3, heads=4).eval()
    ht, hp = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    expected = _attend(m.theta_to_phi, ht, hp) + _attend(m.phi_to_theta, hp, ht)
    assert torch.allclose(m.align(ht, hp), expected, atol=1e-5)
    logits = m(ht, hp)
    assert torch.allclose(logits, m.head(expected.mean(1)), atol=1e-5)
    # swapping the encoders' roles gives the same fusion only if the weights are swapped
    assert not torch.allclose(m.align(hp, ht), expected, atol=1e-3)
