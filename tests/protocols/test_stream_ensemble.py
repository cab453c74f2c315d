"""The multi-stream teacher (3s-ASMa) fed the joint clip equals the fused stream models."""

import numpy as np
import pytest
import torch
from torch import nn

from asma_bench.data.streams import to_stream
from asma_bench.errors import ConfigError
from asma_bench.protocols.streams import StreamEnsemble, fuse
from asma_bench.training.metrics import Predictions


class Probe(nn.Module):
    """A fixed linear read-out of the whole clip, so each stream gives other logits."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(3 * 6 * 25 * 2, 4, generator=g))

    def forward(self, x):
        return x.flatten(1) @ self.w


def test_ensemble_derives_the_streams_and_fuses_their_scores():
    x = torch.randn(5, 3, 6, 25, 2, generator=torch.Generator().manual_seed(0)).cumsum(2)
    members = {name: Probe(i) for i, name in enumerate(("joint", "bone", "motion"))}
    weights = [1.0, 0.5, 0.5]
    ensemble = StreamEnsemble(members, "ntu25", weights).eval()
    preds = []
    for name, model in members.items():
        logits = model(to_stream(x, name, "ntu25")).detach().numpy()  # the feeder's streams
        preds.append(Predictions(logits, np.zeros(5, np.int64), np.arange(5)))
    fused = fuse(preds, weights).logits / sum(weights)
    out = torch.softmax(ensemble(x), dim=1).detach().numpy()
    np.testing.assert_allclose(out, fused, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="members must be among"):
        StreamEnsemble({"depth": Probe(0)}, "ntu25")
