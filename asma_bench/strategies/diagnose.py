"""What each masking strategy really masks, measured on clips as training sees them.

References: docs/references.md#asma.

A strategy's name says what it should do (HDSM: hubs; LMTM: still frames); this module
measures what it does, over many draws on real, augmented clips:

* **per-joint share**: the fraction of a joint's cells (frames) that are masked, next to
  the strategy's single-draw law p_v where it has one (``joint_probs``; n draws without
  replacement flatten it); for whole-joint masks it is the joint's inclusion probability;
* **mean degree** of the masked cells (graph degree of their joint);
* **distance from uniform**: total variation between the per-joint shares, normalised to
  sum to one, and the uniform distribution (0: the strategy ignores which joint it is);
* **motion percentile** of the masked frames within their clip's ranking by a_t (ASMa
  eq. 4): 0 = the stillest frame, 100 = the most moving one;
* **wasted cells**: the share of masked cells that remove no information: padding, or a
  cell whose exact copy (the same joint in another frame, as mirror padding of the crop
  makes) stays visible;
* **overlap**: the mean Jaccard index of two strategies' masks on the same clips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from asma_bench.data.layouts import SkeletonLayout
from asma_bench.strategies.base import (
    MaskingStrategy,
    create_masking,
    list_maskings,
    size_params,
)
from asma_bench.strategies.motion import frame_motion, repeated_poses


@dataclass
class Diagnosis:
    summary: pd.DataFrame  # one row per strategy
    joints: pd.DataFrame  # per-joint share (rows: joints) per strategy, and each law
    overlap: pd.DataFrame  # mean Jaccard index, strategy × strategy
    draws: int
    duplicate_frames: float  # share of frames that repeat their predecessor (or pad)


def cell_copies(x: Tensor) -> tuple[Tensor, Tensor]:
    """For clips x (N, C, T, V, M): ``same`` (N, T, T, V), True where joint v holds exactly
    the same values (every channel and body) in frames t and s ≠ t, and ``zero`` (N, T, V),
    True where a cell is padding (all zero)."""
    cells = x.permute(0, 2, 3, 1, 4).flatten(3)  # (N, T, V, C·M)
    same = (cells[:, :, None] == cells[:, None, :]).all(dim=-1)
    same &= ~torch.eye(x.shape[2], dtype=torch.bool, device=x.device)[None, :, :, None]
    return same, (cells == 0).all(dim=-1)


def wasted_cells(mask: Tensor, same: Tensor, zero: Tensor) -> Tensor:
    """(N, T, V) True where a masked cell removes no information: it is padding, or an exact
    copy of it stays visible in another frame (mirror padding repeats frames; masking one of
    two equal frames hides nothing). ``same`` and ``zero`` come from :func:`cell_copies`."""
    copy_visible = (same & ~mask[:, None, :, :]).any(dim=2)
    return mask & (copy_visible | zero)


def repeated_frames(x: Tensor) -> Tensor:
    """(N, T) True where frame t is padding or equals another frame of the clip exactly."""
    frames = x.permute(0, 2, 1, 3, 4).flatten(2)  # (N, T, C·V·M)
    return repeated_poses(x) | (frames == 0).all(dim=-1)


def motion_percentile(x: Tensor) -> Tensor:
    """(N, T) each frame's percentile in its clip's ranking by a_t (eq. 4; ties share the
    mean rank): 0 for the stillest frame, 100 for the most moving one."""
    a = frame_motion(x).double()
    t = a.shape[1]
    if t < 2:
        return torch.full_like(a, 50.0)
    less = (a[:, None, :] < a[:, :, None]).sum(dim=2).double()
    equal = (a[:, None, :] == a[:, :, None]).sum(dim=2).double()
    rank = less + (equal - 1) / 2  # mean 0-based rank among ties
    return 100.0 * rank / (t - 1)


def diagnose(
    clips: Tensor,
    layout: SkeletonLayout,
    strategies: dict[str, MaskingStrategy],
    draws: int = 10_000,
    batch_size: int = 256,
    augment: Callable[..., Tensor] | None = None,
    seed: int = 0,
) -> Diagnosis:
    """Draw ``draws`` masks of every strategy on clips sampled from ``clips`` (N, C, T, V, M),
    each batch augmented by ``augment`` first (as pretraining does), and measure them."""
    gen = torch.Generator().manual_seed(seed)
    names = list(strategies)
    v = layout.num_joints
    degrees = torch.as_tensor(layout.degrees, dtype=torch.float64)
    share = {s: torch.zeros(v, dtype=torch.float64) for s in names}
    cells = dict.fromkeys(names, 0.0)
    degree_sum = dict.fromkeys(names, 0.0)
    wasted = dict.fromkeys(names, 0.0)
    pct_sum = dict.fromkeys(names, 0.0)
    pct_count = dict.fromkeys(names, 0.0)
    jaccard = np.zeros((len(names), len(names)))
    dup_frames, all_frames, done = 0.0, 0.0, 0
    while done < draws:
        b = min(batch_size, draws - done)
        idx = torch.randint(len(clips), (b,), generator=gen)
        x = clips[idx]
        if augment is not None:
            x = augment(x, generator=gen)
        repeats = repeated_frames(x)  # (B, T)
        copies = cell_copies(x)  # once per batch, shared by every strategy
        pct = motion_percentile(x)  # (B, T)
        dup_frames += float(repeats.sum())
        all_frames += repeats.numel()
        masks = {s: strategies[s](x, generator=gen).cpu() for s in names}  # (B, T, V)
        for s, m in masks.items():
            mf = m.double()
            share[s] += mf.mean(dim=1).sum(dim=0)
            cells[s] += float(mf.sum())
            degree_sum[s] += float((mf * degrees).sum())
            wasted[s] += float(wasted_cells(m.to(x.device), *copies).sum())
            frames = m.any(dim=2)
            pct_sum[s] += float(pct[frames].sum())
            pct_count[s] += float(frames.sum())
        flat = {s: masks[s].flatten(1) for s in names}
        for i, a in enumerate(names):
            for j in range(i, len(names)):
                bm = flat[names[j]]
                inter = (flat[a] & bm).sum(dim=1).double()
                union = (flat[a] | bm).sum(dim=1).double()
                jac = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
                jaccard[i, j] += float(jac.sum())
        done += b
    jaccard = np.triu(jaccard) + np.triu(jaccard, 1).T
    rows, joint_cols = [], {}
    for s in names:
        p = (share[s] / done).numpy()
        joint_cols[s] = p
        law = getattr(strategies[s], "joint_probs", None)  # single-draw p_v (eqs. 1-2)
        if isinstance(law, Tensor):
            joint_cols[f"{s} law"] = law.double().cpu().numpy()
        norm = p / p.sum() if p.sum() > 0 else np.full(v, np.nan)
        rows.append(
            {
                "strategy": s,
                "kind": strategies[s].kind,
                "masked share": float(cells[s] / (done * clips.shape[2] * v)),
                "mean degree": degree_sum[s] / cells[s] if cells[s] else np.nan,
                "TV from uniform": float(0.5 * np.abs(norm - 1.0 / v).sum()),
                "motion percentile": pct_sum[s] / pct_count[s] if pct_count[s] else np.nan,
                "wasted cells": wasted[s] / cells[s] if cells[s] else np.nan,
            }
        )
    summary = pd.DataFrame(rows).set_index("strategy")
    joints = pd.DataFrame(joint_cols, index=pd.Index(layout.joint_names, name="joint"))
    joints.insert(0, "degree", layout.degrees)
    overlap = pd.DataFrame(jaccard / done, index=names, columns=names)
    return Diagnosis(summary, joints, overlap, done, dup_frames / max(all_frames, 1.0))


def strategies_for(
    layout: SkeletonLayout, n: float, k: float, extra_ldsm_law: bool = True
) -> dict[str, MaskingStrategy]:
    """Every registered masking for ``layout``, with the run's n and k where a strategy takes
    them, plus LDSM under the inverse-degree law (``ldsm:inverse_degree``)."""
    out: dict[str, MaskingStrategy] = {
        name: create_masking(name, layout, **size_params(name, n=n, k=k))
        for name in list_maskings()
    }
    if extra_ldsm_law and "ldsm" in out:
        out["ldsm:inverse_degree"] = create_masking(
            "ldsm", layout, **size_params("ldsm", n=n), law="inverse_degree"
        )
    return out


def to_markdown(d: Diagnosis) -> str:
    """The summary table as Markdown, with what each column means."""
    t = d.summary.copy()
    lines = [
        f"**Masking diagnostics: {d.draws} draws per strategy on augmented clips.**",
        "",
        "| strategy | kind | masked share | mean degree | TV from uniform | motion percentile "
        "| wasted cells |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in t.iterrows():
        lines.append(
            f"| {name} | {r['kind']} | {r['masked share']:.3f} | {r['mean degree']:.3f} | "
            f"{r['TV from uniform']:.3f} | {r['motion percentile']:.1f} | "
            f"{r['wasted cells']:.3f} |"
        )
    lines += [
        "",
        "- masked share: masked (frame, joint) cells over all cells.",
        "- mean degree: mean graph degree of the joints of the masked cells.",
        "- TV from uniform: total variation distance between the per-joint masked shares "
        "(normalised) and the uniform distribution; 0 = blind to the joint.",
        "- motion percentile: mean percentile of the masked frames in their clip's ranking by "
        "frame motion a_t (eq. 4); 0 = stillest, 100 = most moving, 50 = unrelated.",
        f"- wasted cells: share of masked cells that hide nothing: padding, or a cell whose "
        f"exact copy stays visible in another frame ({100 * d.duplicate_frames:.1f}% of all "
        f"frames are padding or repeat another frame).",
    ]
    return "\n".join(lines) + "\n"


def mean_pose(clips: Tensor) -> np.ndarray:
    """(V, 2) mean x, y of every joint over the clips' first body and frames (for drawing)."""
    body = clips[:, :2, :, :, 0].double()  # (N, 2, T, V)
    seen = (body != 0).any(dim=1, keepdim=True).double()
    mean = (body * seen).sum(dim=(0, 2)) / seen.sum(dim=(0, 2)).clamp(min=1)
    return mean.T.numpy()


def example_clip(
    clips: Tensor, strategies: dict[str, MaskingStrategy], index: int = 0, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One clip's frame motion a_t (T,) and, per temporal strategy, its masked frames (T,)."""
    gen = torch.Generator().manual_seed(seed)
    x = clips[index : index + 1]
    a = frame_motion(x)[0].double().numpy()
    frames = {
        name: s(x, generator=gen)[0].any(dim=1).numpy()
        for name, s in strategies.items()
        if s.kind == "temporal"
    }
    return a, frames
