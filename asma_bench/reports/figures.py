"""The paper's figures from a grid's results, drawn with matplotlib (Agg) and seaborn.

* :func:`label_heatmap` — mean accuracy over two label axes, annotated with mean ± std
  (ASMa Fig. 3: spatial × temporal masking pair; also Table 7's n × k);
* :func:`sensitivity_curve` — accuracy against one numeric axis with a ±std band over seeds
  (Fig. 4: distillation temperature τ, student depth);
* :func:`per_class_difference` — per-class accuracy of f_θ minus f_ϕ (Fig. 6);
* :func:`embedding_scatter` — 2-D embeddings of encoder features for chosen classes
  (Figs. 5 / 7), by t-SNE (scikit-learn) or, when it is unavailable, PCA — the axes and
  title name the method actually used;
* :func:`degree_motion` — joint degree against motion intensity of a dataset (Fig. 1);
* :func:`training_curves` — per-epoch metrics, mean ± std over seeds per cell (a metric
  logged once per run, such as a probe's final accuracy, is no curve and is left out);
* :func:`masking_skeletons` — joints coloured by how often each masking hides them, a
  2-D (image-coordinate) skeleton drawn y down, every joint inside its panel.

Every function returns a matplotlib Figure; :func:`save_figure` writes PNG and SVG. Every
visible axis is labelled, with its unit where it has one ("top-1 accuracy (%)", "epoch"),
metric keys and grid label axes get readable names (:func:`metric_title`,
:func:`axis_label`), and no text is smaller than :data:`MIN_FONT_SIZE` points at the saved
size.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports run on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from asma_bench.errors import ConfigError  # noqa: E402
from asma_bench.training.metrics import Predictions, per_class_accuracy  # noqa: E402

log = logging.getLogger(__name__)

MIN_FONT_SIZE = 7  # points; the smallest text any figure draws (legible in print)
ACCURACY_LABEL = "top-1 accuracy (%)"

# what the grids' label axes mean, for axis titles; other axes keep their own name
AXIS_LABELS = {
    "spatial": "spatial masking",
    "temporal": "temporal masking",
    "n": "n: joints masked",
    "k": "k: frames masked",
    "tau": "distillation temperature τ",
    "layers": "student depth (layers)",
}

# metric keys are <stage>_<quantity> (training/loop.py, training/pretrain.py, protocols/linear.py)
_STAGES = {
    "pretrain": "Pretraining",
    "linear": "Linear probe",
    "finetune": "Fine-tuning",
    "distill": "Distillation",
    "align": "Alignment probe",
    "theta": "Linear probe of f_θ",
    "phi": "Linear probe of f_ϕ",
    "train": "Training",
    "test": "Test set",
}
_QUANTITIES = {  # suffix -> (what it is, y-axis label)
    "val_top1": ("validation top-1 accuracy", ACCURACY_LABEL),
    "train_top1": ("training top-1 accuracy", ACCURACY_LABEL),
    "test_top1": ("test top-1 accuracy", ACCURACY_LABEL),
    "knn_top1": ("k-NN top-1 accuracy", ACCURACY_LABEL),
    "val_top5": ("validation top-5 accuracy", "top-5 accuracy (%)"),
    "test_top5": ("test top-5 accuracy", "top-5 accuracy (%)"),
    "val_loss": ("validation loss", "loss"),
    "cv_loss": ("cross-validation loss", "loss"),
    "loss": ("training loss", "loss"),
    "lr": ("learning rate", "learning rate"),
}


def axis_label(name: str) -> str:
    """A readable title for a grid's label axis (``tau`` → "distillation temperature τ")."""
    return AXIS_LABELS.get(name, name)


def metric_title(key: str) -> str:
    """A panel title for a logged metric (``linear_loss`` → "Linear probe: training loss");
    an unknown key is returned as it is."""
    stage, quantity = _split_metric(key)
    if quantity is None:
        return key
    what = _QUANTITIES[quantity][0]
    return f"{stage}: {what}" if stage else what[:1].upper() + what[1:]


def metric_axis_label(key: str) -> str:
    """The y-axis label of a logged metric, with its unit ("top-1 accuracy (%)", "loss");
    an unknown key is returned as it is."""
    _, quantity = _split_metric(key)
    return key if quantity is None else _QUANTITIES[quantity][1]


def _split_metric(key: str) -> tuple[str, str | None]:
    """(readable stage or "", known quantity suffix or None)."""
    for quantity in sorted(_QUANTITIES, key=len, reverse=True):
        if key == quantity:
            return "", quantity
        if key.endswith("_" + quantity):
            prefix = key.removesuffix("_" + quantity)
            if prefix in _STAGES:
                return _STAGES[prefix], quantity
            head, _, rest = prefix.partition("_")
            if head in _STAGES and rest:
                return f"{_STAGES[head]} ({rest})", quantity
            return prefix, quantity
    return "", None


def save_figure(fig: Figure, out_dir: Path, name: str, dpi: int = 150) -> dict[str, Path]:
    """Write ``name.png`` and ``name.svg`` to ``out_dir`` and close the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"png": out_dir / f"{name}.png", "svg": out_dir / f"{name}.svg"}
    fig.savefig(paths["png"], dpi=dpi, bbox_inches="tight")
    fig.savefig(paths["svg"], bbox_inches="tight")
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------- Fig. 3
def label_heatmap(
    cells: pd.DataFrame,
    row_axis: str,
    col_axis: str,
    value_label: str = ACCURACY_LABEL,
    title: str = "",
    order: Mapping[str, Sequence[str]] | None = None,
) -> Figure:
    """Heatmap of ``mean`` over two label columns of ``cells`` (one row per cell with
    columns ``row_axis``, ``col_axis``, ``mean``, ``std``, ``seeds``), each box annotated
    with mean ± std; combinations without a cell stay blank."""
    import seaborn as sns

    need = {row_axis, col_axis, "mean", "std"}
    if not need <= set(cells.columns):
        raise ConfigError(f"heatmap needs columns {sorted(need)}, got {sorted(cells.columns)}")
    df = cells[(cells[row_axis] != "") & (cells[col_axis] != "")].copy()
    if df.empty:
        raise ConfigError(f"no cell has both labels {row_axis!r} and {col_axis!r}")
    if not np.isfinite(df["mean"].to_numpy(float)).any():
        raise ConfigError("no cell has a result to show")
    rows = _axis_order(df[row_axis], (order or {}).get(row_axis))
    cols = _axis_order(df[col_axis], (order or {}).get(col_axis))
    mean = df.pivot_table(index=row_axis, columns=col_axis, values="mean").reindex(
        index=rows, columns=cols
    )
    std = df.pivot_table(index=row_axis, columns=col_axis, values="std").reindex(
        index=rows, columns=cols
    )
    annot = np.full(mean.shape, "", dtype=object)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            m, s = mean.iat[i, j], std.iat[i, j]
            if np.isfinite(m):
                annot[i, j] = f"{m:.1f}\n± {s:.1f}" if np.isfinite(s) else f"{m:.1f}"
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(cols), 1.2 + 1.0 * len(rows)))
    sns.heatmap(
        mean,
        annot=annot,
        fmt="",
        cmap="viridis",
        ax=ax,
        linewidths=0.5,
        cbar_kws={"label": value_label},
        mask=~np.isfinite(mean.to_numpy(float)),
    )
    ax.set_xlabel(axis_label(col_axis))
    ax.set_ylabel(axis_label(row_axis))
    ax.set_title(title or f"{value_label} by {row_axis} × {col_axis}")
    fig.tight_layout()
    return fig


def _axis_order(values: pd.Series, preferred: Sequence[str] | None) -> list[str]:
    seen = list(dict.fromkeys(values.astype(str)))
    if preferred:
        return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]
    try:
        return sorted(seen, key=float)
    except ValueError:
        return sorted(seen, key=lambda v: (v.lower() == "random", v))


# --------------------------------------------------------------------------- Fig. 4
def sensitivity_curve(
    per_seed: pd.DataFrame,
    x_label: str,
    y_label: str = ACCURACY_LABEL,
    title: str = "",
    highlight: float | None = None,
) -> Figure:
    """Mean over seeds against a numeric axis with a ±1 std band; seeds as dots.

    ``per_seed`` has columns ``x`` (numeric) and ``value``, one row per (cell, seed).
    """
    df = per_seed.dropna(subset=["value"]).astype({"x": float})
    if df.empty:
        raise ConfigError("sensitivity curve: no values")
    g = df.groupby("x")["value"]
    summary = pd.DataFrame(
        {"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "n": g.count()}
    ).sort_index()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.fill_between(
        summary.index,
        summary["mean"] - summary["std"],
        summary["mean"] + summary["std"],
        alpha=0.25,
        color="C0",
        label="± 1 std",
    )
    ax.plot(summary.index, summary["mean"], "o-", color="C0", label="mean over seeds")
    ax.scatter(df["x"], df["value"], s=10, color="0.3", alpha=0.6, zorder=3, label="seeds")
    if highlight is not None:
        ax.axvline(highlight, color="C3", ls="--", lw=1, label=f"baseline ({highlight:g})")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_xticks(summary.index)
    n = int(summary["n"].max())
    ax.set_title(title or f"{y_label} against {x_label} ({n} seeds)")
    ax.legend(fontsize=MIN_FONT_SIZE)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Fig. 6
def class_accuracy_difference(
    pairs: Sequence[tuple[Predictions, Predictions]], num_classes: int
) -> np.ndarray:
    """Per-class accuracy of the first minus the second prediction set, in percentage
    points, averaged over the (seed) pairs; NaN for classes absent from the test set."""
    if not pairs:
        raise ConfigError("per-class difference: no prediction pairs")
    diffs = [
        per_class_accuracy(a, num_classes) - per_class_accuracy(b, num_classes) for a, b in pairs
    ]
    with np.errstate(invalid="ignore"):
        return 100.0 * np.nanmean(np.stack(diffs), axis=0) if len(diffs) > 1 else 100.0 * diffs[0]


def per_class_difference(
    difference: np.ndarray,
    class_names: Sequence[str],
    first: str = "f_θ (HDSM+LMTM)",
    second: str = "f_ϕ (LDSM+HMTM)",
    seeds: int = 1,
) -> Figure:
    """Bars of per-class accuracy difference, sorted; positive = ``first`` better."""
    diff = np.asarray(difference, dtype=float)
    if len(class_names) != len(diff):
        raise ConfigError(f"{len(class_names)} class names for {len(diff)} classes")
    keep = np.isfinite(diff)
    order = np.argsort(diff[keep])
    names = np.asarray(class_names, dtype=object)[keep][order]
    values = diff[keep][order]
    # a row per class; at least room for the two-line title and the axis labels
    fig, ax = plt.subplots(figsize=(5.5, max(2.4, 1.3 + 0.22 * len(values))))
    colors = ["C0" if v > 0 else "C3" if v < 0 else "0.6" for v in values]
    ax.barh(np.arange(len(values)), values, color=colors)
    ax.set_yticks(np.arange(len(values)))
    ax.set_yticklabels(names, fontsize=MIN_FONT_SIZE)
    ax.axvline(0, color="k", lw=0.8)
    if len(values) <= 40:  # print each value: a zero difference has no visible bar
        span = max(float(np.abs(values).max()), 1.0)
        for i, v in enumerate(values):
            ax.text(
                v + (0.01 * span if v >= 0 else -0.01 * span),
                i,
                f"{v:+.1f}",
                va="center",
                ha="left" if v >= 0 else "right",
                fontsize=MIN_FONT_SIZE,
            )
        ax.set_xlim(min(0.0, values.min()) - 0.15 * span, max(0.0, values.max()) + 0.15 * span)
    ax.set_xlabel(f"accuracy of {first} − {second} (percentage points)")
    ax.set_ylabel("action class")
    ax.set_title(
        f"Per-class accuracy difference, mean over {seeds} seed(s)\n"
        f"blue: {first} better, red: {second} better",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Figs. 5 / 7
def embed_2d(features: np.ndarray, method: str = "tsne", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D embedding of (N, D) features; returns (N, 2) and the method actually used.

    ``tsne`` uses scikit-learn's Barnes–Hut t-SNE (PCA init, seeded, perplexity
    min(30, (N − 1) / 3)), single-threaded: on a few hundred points OpenMP threads mostly
    spin, and on a busy machine they made it ten times slower. Without scikit-learn it
    falls back to ``pca`` (numpy SVD of the centred features), and says so.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ConfigError(f"embedding needs (N >= 3, D) features, got shape {x.shape}")
    if method not in ("tsne", "pca"):
        raise ConfigError(f"embedding method must be 'tsne' or 'pca', got {method!r}")
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            log.warning("scikit-learn is not installed: PCA instead of t-SNE")
        else:
            from threadpoolctl import threadpool_limits

            perplexity = float(min(30.0, max(1.0, (len(x) - 1) / 3)))
            tsne = TSNE(
                2,
                perplexity=perplexity,
                init="pca",
                random_state=seed,
                learning_rate="auto",
                n_jobs=1,
            )
            with threadpool_limits(1):
                return tsne.fit_transform(x), "t-SNE"
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, "PCA"


def embedding_scatter(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    method: str = "tsne",
    seed: int = 0,
) -> Figure:
    """One scatter per panel title → (features (N, D), labels (N,)), coloured by class."""
    if not panels:
        raise ConfigError("embedding scatter: no panels")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    classes = sorted({int(c) for _, y in panels.values() for c in np.asarray(y)})
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    used = set()
    for ax, (title, (feats, labels)) in zip(axes[0], panels.items(), strict=True):
        xy, used_method = embed_2d(feats, method, seed)
        used.add(used_method)
        labels = np.asarray(labels)
        for k, c in enumerate(classes):
            sel = labels == c
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                s=12,
                color=cmap(k % cmap.N),
                label=class_names[c] if c < len(class_names) else str(c),
            )
        ax.set_title(f"{title} ({used_method})", fontsize=9)
        ax.set_xlabel(f"{used_method} 1")
        ax.set_ylabel(f"{used_method} 2")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=MIN_FONT_SIZE, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(
        f"{' / '.join(sorted(used))} of test-set features, {len(classes)} classes", fontsize=10
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Fig. 1
_JITTER = 0.1  # degree units: dots of one degree spread sideways so they do not hide each other
_LABEL_X = 0.2  # degree units right of a degree where its column of joint names starts
_LABEL_ROOM = 0.65  # degree units a column of names may take before the next degree's dots


def degree_motion(motion_joints: pd.DataFrame, title: str = "") -> Figure:
    """Mean per-frame displacement of each joint against its degree in the skeleton graph.

    ``motion_joints`` is ``asma_bench.data.info.summarize(ds)["motion_joints"]`` (columns
    joint, degree, motion). Joints are dots, the per-degree mean ± std a line. Each joint's
    name sits in a column to the right of its degree, as close to its dot's height as the
    names above and below allow, with a thin line to the dot: names never overlap, at
    :data:`MIN_FONT_SIZE` points, and the figure grows with the longest name and the most
    joints of one degree.
    """
    need = {"joint", "degree", "motion"}
    if not need <= set(motion_joints.columns):
        raise ConfigError(f"degree/motion figure needs columns {sorted(need)}")
    df = motion_joints.reset_index(drop=True)
    if df.empty:
        raise ConfigError("degree/motion figure: no joints")
    names = [str(n) for n in df["joint"]]
    degree = df["degree"].to_numpy(float)
    motion = df["motion"].to_numpy(float)
    x = degree + np.random.default_rng(0).uniform(-_JITTER, _JITTER, len(df))

    fig, ax = plt.subplots()
    name_w, name_h = _text_size(fig, names, MIN_FONT_SIZE)
    step = max(1.0, (name_w + 0.1) / _LABEL_ROOM)  # inches per degree
    crowd = int(df.groupby("degree").size().max())
    lo, hi = float(degree.min()), float(degree.max())
    axes_w, axes_h = (hi - lo + 1.3) * step, max(2.6, 1.3 * name_h * crowd + 0.4)
    fig.set_size_inches(axes_w + 3.2, axes_h + 1.2)  # room for the labels and the legend

    ax.scatter(x, motion, s=18, color="C0", zorder=3, label="joints")
    g = df.groupby("degree")["motion"].agg(["mean", "std"]).fillna(0.0)
    ax.errorbar(
        g.index.to_numpy(float),
        g["mean"].to_numpy(),
        yerr=g["std"].to_numpy(),
        color="C3",
        marker="s",
        capsize=3,
        label="mean ± std per degree",
    )
    ax.set_xticks(g.index)
    ax.set_xlim(lo - 0.4, hi + _LABEL_X + _LABEL_ROOM + 0.05)
    ax.set_ylim(ax.get_ylim())  # fixed: name positions are computed in these coordinates
    ax.set_xlabel("joint degree (neighbours in the skeleton graph)")
    ax.set_ylabel("mean displacement per frame\n(dataset coordinate units)")
    ax.set_title(title or "Joint degree vs motion intensity")
    ax.legend(fontsize=MIN_FONT_SIZE, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()

    to_px = ax.transData
    box = ax.get_window_extent()
    gap = 1.2 * name_h * fig.dpi
    label_y = np.empty(len(df))
    for d in np.unique(degree):
        idx = np.flatnonzero(degree == d)
        idx = idx[np.argsort(motion[idx], kind="stable")]
        wanted = to_px.transform(np.c_[x[idx], motion[idx]])[:, 1]
        placed = _spread(wanted, gap, box.y0 + gap / 2, box.y1 - gap / 2)
        label_y[idx] = to_px.inverted().transform(np.c_[x[idx], placed])[:, 1]
    for i, name in enumerate(names):
        ax.annotate(
            name,
            (x[i], motion[i]),
            xytext=(degree[i] + _LABEL_X, label_y[i]),
            textcoords="data",
            fontsize=MIN_FONT_SIZE,
            ha="left",
            va="center",
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkA": 1, "shrinkB": 2},
        )
    return fig


# --------------------------------------------------------------------------- curves
def metric_x_label(key: str) -> str:
    """What a logged metric's step counts: a linear probe's objective (``linear_objective``)
    is logged per step of its fit (an L-BFGS iteration, or an epoch with Adam), the rest
    per epoch."""
    return "probe fit step (L-BFGS iteration or epoch)" if key.endswith("_objective") else "epoch"


def _run_columns(history: pd.DataFrame) -> list[str]:
    """The columns naming one run of ``history``: its cell and seed (or run id)."""
    cols = [c for c in ("cell", "seed", "run_id") if c in history.columns]
    return cols or ["cell"]


def curve_keys(history: pd.DataFrame) -> list[str]:
    """The keys of ``history`` that are curves: logged at two or more steps in some run.

    A metric logged once per run (a probe's validation accuracy, logged at the step of its
    last L-BFGS iteration) is one number, not a curve: drawn against "epoch" it would put
    iteration counts on the x axis and join different seeds' points with a line."""
    if history.empty:
        return []
    steps = history.groupby(["key", *_run_columns(history)])["step"].nunique()
    longest = steps.groupby(level="key").max()
    return [k for k in dict.fromkeys(history["key"]) if longest.get(k, 0) >= 2]


def curve_summary(history: pd.DataFrame, key: str) -> dict[str, pd.DataFrame]:
    """Per cell, the curve :func:`training_curves` draws for ``key``: indexed by x (the
    epoch or, for an ``*_objective``, the fit step, counted from 1), columns ``mean``,
    ``std`` (N − 1, 0 for one seed) and ``seeds`` (the runs averaged).

    Each run's values are reduced to one per step (the last logged) and the cell's seeds
    averaged at every step, so a line never jumps from one seed to another. Runs logged
    at different steps (L-BFGS fits of different lengths, thinned differently) are first
    interpolated linearly onto the steps of all of them, over the range every run covers;
    runs of one length (epochs) are averaged as they are."""
    h = history[history["key"] == key]
    runs = _run_columns(h)
    per_run = h.groupby([*runs, "step"], sort=True)["value"].last().reset_index()
    out: dict[str, pd.DataFrame] = {}
    for cell in dict.fromkeys(h["cell"]):
        mine = per_run[per_run["cell"] == cell]
        curves = [
            (g["step"].to_numpy(float), g["value"].to_numpy(float))
            for _, g in mine.groupby(runs, sort=True)
        ]
        if not curves:
            continue
        lo = max(float(x[0]) for x, _ in curves)
        hi = min(float(x[-1]) for x, _ in curves)
        steps = np.unique(np.concatenate([x for x, _ in curves]))
        steps = steps[(steps >= lo) & (steps <= hi)]
        if not len(steps):
            continue
        values = np.stack([np.interp(steps, x, v) for x, v in curves])  # (runs, steps)
        std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(len(steps))
        x = steps + 1
        table = pd.DataFrame(
            {"mean": values.mean(axis=0), "std": std, "seeds": len(values)},
            index=pd.Index(x.astype(int), name=metric_x_label(key)),
        )
        out[str(cell)] = table
    return out


def training_curves(
    history: pd.DataFrame, keys: Sequence[str] | None = None, title: str = ""
) -> Figure:
    """Per-epoch metrics: one panel per key, one line per cell (mean over seeds, ±std band).

    ``history`` has columns cell, seed (or run_id), key, step, value. Panels are titled by
    :func:`metric_title`, their y axes by :func:`metric_axis_label` and x axes by
    :func:`metric_x_label`. Keys without a curve (:func:`curve_keys`: one value per run)
    get no panel; a ConfigError when no key has one.
    """
    if history.empty:
        raise ConfigError("training curves: no metric history")
    curves = set(curve_keys(history))
    wanted = list(keys or dict.fromkeys(history["key"]))
    dropped = [k for k in wanted if k not in curves]
    if dropped:
        log.info("training curves: %s logged once per run, not a curve", ", ".join(dropped))
    keys = [k for k in wanted if k in curves]
    if not keys:
        raise ConfigError(
            "training curves: every metric was logged once per run (no per-epoch history)"
        )
    fig, axes = plt.subplots(
        1, len(keys), figsize=(4.2 * len(keys) + 1.2, 3.6), squeeze=False, layout="constrained"
    )
    cells = [str(c) for c in dict.fromkeys(history["cell"])]
    for ax, key in zip(axes[0], keys, strict=True):
        summary = curve_summary(history, key)
        for k, cell in enumerate(cells):
            if cell not in summary:
                continue
            curve = summary[cell]
            x = curve.index.to_numpy(float)
            mean, std = curve["mean"].to_numpy(float), curve["std"].to_numpy(float)
            ax.plot(x, mean, color=f"C{k % 10}", label=cell, lw=1.2)
            ax.fill_between(x, mean - std, mean + std, color=f"C{k % 10}", alpha=0.15)
        ax.set_title(textwrap.fill(metric_title(key), 48), fontsize=9)
        ax.set_xlabel(metric_x_label(key))
        ax.set_ylabel(metric_axis_label(key))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=MIN_FONT_SIZE, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title or "training curves (mean ± std over seeds)", fontsize=10)
    return fig


# --------------------------------------------------------------------------- maskings
def skeleton_limits(points: np.ndarray, margin: float = 0.12) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) x and y limits that hold every point of ``points`` (..., 2), all joints
    of all frames, with ``margin`` of the larger extent on every side (room for the
    markers); absent joints (exactly 0, 0) are left out unless nothing else is there."""
    xy = np.asarray(points, dtype=float).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    seen = xy[(xy != 0).any(axis=1)]
    xy = seen if len(seen) else xy
    if not len(xy):
        return np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    low, high = xy.min(axis=0), xy.max(axis=0)
    pad = margin * max(float((high - low).max()), 1e-6)
    return low - pad, high + pad


def masking_skeletons(
    shares: pd.DataFrame,
    pose: np.ndarray,
    edges: Sequence[tuple[int, int]],
    names: Sequence[str],
    title: str = "",
    y_down: bool = False,
) -> Figure:
    """One skeleton per strategy (``names``, columns of ``shares``: per-joint masked share),
    joints at ``pose`` (V, 2) coloured by their share on one shared scale.

    ``y_down`` draws image coordinates (2-D keypoints: y grows downwards) the right way up.
    Every panel has the same limits, from all joints with a margin (:func:`skeleton_limits`),
    so no joint is cut off; the title, panel titles and colour bar never overlap."""
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.1 * cols + 1.2, 3.2 * rows + 0.4), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    # constrained layout keeps titles apart; the extra pad covers multi-line panel titles
    fig.get_layout_engine().set(h_pad=0.1)
    values = shares[list(names)].to_numpy(float)
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    if vmin == vmax:
        vmin, vmax = vmin - 0.01, vmax + 0.01
    low, high = skeleton_limits(pose)
    mappable = None
    for ax, name in zip(axes.flat, names, strict=False):
        for a, b in edges:
            ax.plot(pose[[a, b], 0], pose[[a, b], 1], color="0.7", lw=1.5, zorder=1)
        mappable = ax.scatter(
            pose[:, 0], pose[:, 1], c=shares[name].to_numpy(float), cmap="viridis",
            vmin=vmin, vmax=vmax, s=60, edgecolors="k", linewidths=0.5, zorder=2,
        )  # fmt: skip
        # a long name (``ldsm:inverse_degree``) breaks after its colon, not into a neighbour
        ax.set_title(textwrap.fill(name.replace(":", ": "), 16, break_long_words=False),
                     fontsize=10)  # fmt: skip
        ax.set_xlim(low[0], high[0])
        ax.set_ylim((high[1], low[1]) if y_down else (low[1], high[1]))
        ax.set_aspect("equal", adjustable="box")
        ax.axis("off")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if mappable is not None:
        fig.colorbar(mappable, ax=axes, shrink=0.6, label="share of the joint masked")
    if title:
        fig.suptitle(title)
    return fig


def masking_motion_curve(motion: np.ndarray, frames: Mapping[str, np.ndarray]) -> Figure:
    """A clip's frame motion a_t (eq. 4) with each temporal strategy's masked frames marked
    on its own row below the curve."""
    t = np.arange(len(motion))
    fig, ax = plt.subplots(figsize=(7, 2.5 + 0.3 * len(frames)))
    ax.plot(t, motion, color="k", lw=1.5, label="a_t")
    top = float(np.max(motion)) if len(motion) else 1.0
    step = 0.12 * (top if top > 0 else 1.0)
    for i, (name, masked) in enumerate(frames.items()):
        y = -(i + 1) * step
        ax.scatter(t[masked], np.full(int(masked.sum()), y), marker="s", s=25, label=name)
        ax.text(len(motion) + 0.2, y, name, va="center", fontsize=8)
    ax.set_xlim(-0.5, len(motion) + 0.2 + 0.25 * len(motion))
    ax.set_xlabel("frame")
    ax.set_ylabel("frame motion a_t")
    ax.set_title("one clip's motion and the frames each temporal strategy masks")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


# --------------------------------------------------------------------------- helpers
def _text_size(fig: Figure, texts: Sequence[str], fontsize: float) -> tuple[float, float]:
    """The widest and the tallest of ``texts`` at ``fontsize``, in inches."""
    renderer = fig.canvas.get_renderer()
    width = height = 0.0
    for text in texts:
        probe = fig.text(0, 0, text, fontsize=fontsize)
        box = probe.get_window_extent(renderer)
        probe.remove()
        width, height = max(width, box.width), max(height, box.height)
    return width / fig.dpi, height / fig.dpi


def _spread(wanted: np.ndarray, gap: float, lo: float, hi: float) -> np.ndarray:
    """Ascending positions at least ``gap`` apart, as close to ``wanted`` (ascending) as
    possible in least squares, kept within [lo, hi] where they fit.

    Shifting the i-th position down by i·gap turns the spacing constraint into a monotone
    one, solved exactly by pooling adjacent violators (isotonic regression); clipping that
    solution to the bounds keeps it optimal.
    """
    n = len(wanted)
    shift = gap * np.arange(n)
    blocks: list[list[float]] = []  # [sum, count] of pooled values, ascending means
    for v in np.asarray(wanted, float) - shift:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    fit = np.concatenate([np.full(int(c), t / c) for t, c in blocks]) if blocks else np.array([])
    return np.clip(fit, lo, max(lo, hi - gap * (n - 1))) + shift
