"""A backbone: per-joint channel mixing and a temporal convolution, no graph at all."""

from __future__ import annotations

from torch import Tensor, nn

from asma_bench.backbones import BACKBONES
from asma_bench.backbones.graph import SkeletonBackbone
from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError


@BACKBONES.register("joint_tcn")
class JointTCN(SkeletonBackbone):
    """Each joint on its own: a 1×1 convolution over channels, then ``num_blocks`` temporal
    convolutions (kernel 9) of ``base_channels`` channels and a 1×1 projection to
    ``out_dim``. A graph-free baseline: whatever a graph backbone gains over it comes from
    the skeleton's edges. Joints are independent, so drop-mode inputs (fewer joints,
    ``kept_joints``) need nothing special.

    It takes the size parameters every built-in backbone takes (``base_channels``,
    ``num_blocks``, ``out_dim``, ``dropout``), so the profiles size it too.
    """

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        in_channels: int = 3,
        base_channels: int = 16,
        num_blocks: int = 2,
        out_dim: int = 64,
        dropout: float = 0.0,
    ):
        super().__init__()
        if min(base_channels, num_blocks, out_dim) < 1 or not 0 <= dropout < 1:
            raise ConfigError(
                f"joint_tcn: base_channels={base_channels}, num_blocks={num_blocks}, "
                f"out_dim={out_dim} must be >= 1 and dropout={dropout} in [0, 1)"
            )
        self.layout, self.in_channels, self.out_dim = get_layout(layout), in_channels, out_dim
        width = base_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 1), nn.ReLU()]
        for _ in range(num_blocks):
            layers += [nn.Conv2d(width, width, (9, 1), padding=(4, 0)), nn.BatchNorm2d(width)]
            layers += [nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Conv2d(width, out_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward_joint_features(self, x: Tensor, kept_joints: Tensor | None = None) -> Tensor:
        self.check_input(x, kept_joints)
        n, c, t, v, m = x.shape
        h = self.net(x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v))
        return h.reshape(n, m, self.out_dim, t, v).permute(0, 2, 3, 4, 1)
