"""Cross-view validation inside the training views: how profile settings are chosen.

A setting (normalisation, width, epochs, ...) is judged by pretraining one masking cell
with it and probing the frozen features across the *training* cameras only: a linear
probe fitted on the clips of one training view is scored on the clips of the other, and
the other way round; the test view is never looked at. On NW-UCLA (views 1 and 2 train,
3 test) this is the validation behind the ``quick`` profile (docs/calibration.md):

    python benchmarks/cross_view_validation.py ucla/canonical --seeds 0,1,2 \\
        --set data.normalize=center_every_frame_rotate
    python benchmarks/cross_view_validation.py ucla/canonical --seeds 0,1,2 \\
        --set data.normalize=center_every_frame_rotate --set pretrain.epochs=0   # random init

The probe is the harness's own (features standardised with the fitting view's
statistics, multinomial logistic regression fitted to convergence by L-BFGS), once per
L2 penalty in ``--penalties``. One JSON line per seed, then the mean per penalty.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from torch import nn

from asma_bench.config import build_config
from asma_bench.data.store import SkeletonDataset
from asma_bench.models.heads import FeatureStandardizer
from asma_bench.protocols.linear import extract
from asma_bench.training.data import TensorSet, prepare_data, resolve_splits
from asma_bench.training.pretrain import pretrain
from asma_bench.training.probe import fit_lbfgs


def cross_view_accuracy(
    features: torch.Tensor,
    labels: torch.Tensor,
    views: torch.Tensor,
    fit_view: int,
    score_view: int,
    penalty: float,
    num_classes: int,
) -> float:
    """Top-1 (%) on ``score_view`` of a standardised linear probe fitted on ``fit_view``."""
    fit, score = views == fit_view, views == score_view
    norm = FeatureStandardizer(1, features.shape[1]).fit(features[fit])
    head = nn.Linear(features.shape[1], num_classes)

    def forward(z: torch.Tensor) -> torch.Tensor:
        return head(norm(z)[0])

    fit_lbfgs(head, forward, features[fit], labels[fit], penalty, max_iter=1000)
    with torch.no_grad():
        hits = forward(features[score]).argmax(dim=1) == labels[score]
    return 100.0 * float(hits.float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a converted dataset folder whose clips record a camera")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--views", default="1,2", help="the two training views")
    parser.add_argument("--penalties", default="1e-3,1e-2")
    parser.add_argument("--work", type=Path, default=None, help="data cache and checkpoints")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    a, b = (int(v) for v in args.views.split(","))
    penalties = [float(p) for p in args.penalties.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="xview-"))
    cameras = torch.tensor(SkeletonDataset(Path(args.data)).meta["camera"].to_numpy())
    scores: dict[float, list[float]] = {p: [] for p in penalties}
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = resolve_splits(
            build_config(args.profile, [f"data.source={args.data}", *args.sets, f"seed={seed}"])
        )
        data = prepare_data(cfg.data, cfg.seed, work / "data")
        encoders = pretrain(cfg, data, work / "checkpoints", "cpu").encoders
        # every clip of the training views: the run's training and validation parts
        clips = TensorSet(
            torch.cat([data.train.x, data.val.x]),
            torch.cat([data.train.y, data.val.y]),
            torch.cat([data.train.index, data.val.index]),
        )
        features = extract(encoders, clips, "single", "cpu")
        views = cameras[clips.index]
        row: dict[str, object] = {"seed": seed, "sets": args.sets}
        for p in penalties:
            both = [
                cross_view_accuracy(features, clips.y, views, u, w, p, data.num_classes)
                for u, w in ((a, b), (b, a))
            ]
            scores[p].append(statistics.fmean(both))
            row[f"xv_{p:g}"] = round(scores[p][-1], 1)
        print(json.dumps(row), flush=True)
    summary = {f"mean_xv_{p:g}": round(statistics.fmean(v), 1) for p, v in scores.items()}
    print(json.dumps({"sets": args.sets, **summary}), flush=True)


if __name__ == "__main__":
    main()
