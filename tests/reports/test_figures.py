"""Figures draw what their captions say: annotations, lines and bars hold the numbers."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from asma_bench.errors import ConfigError
from asma_bench.reports import figures
from asma_bench.training.metrics import Predictions


@pytest.fixture
def pair_cells():
    return pd.DataFrame({
        "spatial": ["LDSM", "HDSM", "HDSM", "LDSM", "random"],
        "temporal": ["HMTM", "LMTM", "HMTM", "LMTM", "random"],
        "mean": [75.8, 74.4, 74.1, 70.4, 74.2],
        "std": [0.12, 0.2, 0.08, 0.25, 0.1],
    })  # fmt: skip


def test_heatmap_annotates_each_pair_in_its_box(pair_cells, tmp_path):
    fig = figures.label_heatmap(pair_cells, "spatial", "temporal", title="pairs")
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    cols = [t.get_text() for t in ax.get_xticklabels()]
    assert rows == ["HDSM", "LDSM", "random"] and cols == ["HMTM", "LMTM", "random"]
    found = {}
    for text in ax.texts:
        x, y = text.get_position()
        found[(rows[int(y)], cols[int(x)])] = text.get_text()
    expected = {
        (r.spatial, r.temporal): f"{r.mean:.1f}\n± {r.std:.1f}" for r in pair_cells.itertuples()
    }
    assert found == expected  # every pair once, no text where no pair exists
    paths = figures.save_figure(fig, tmp_path, "heat")
    img = imread(paths["png"])
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert img[..., :3].std() > 0.05  # not a blank canvas
    svg = paths["svg"].read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_heatmap_needs_both_labels():
    df = pd.DataFrame({"spatial": [""], "temporal": ["x"], "mean": [1.0], "std": [0.0]})
    with pytest.raises(ConfigError, match="both labels"):
        figures.label_heatmap(df, "spatial", "temporal")


def test_sensitivity_curve_plots_mean_over_seeds():
    per_seed = pd.DataFrame(
        {"x": ["1", "8", "8", "4", "1", "4"], "value": [60.0, 70.0, 72.0, 66.0, 62.0, 65.0]}
    )
    fig = figures.sensitivity_curve(per_seed, "tau", highlight=8.0)
    ax = fig.axes[0]
    mean_line = next(line for line in ax.lines if line.get_label() == "mean over seeds")
    np.testing.assert_allclose(mean_line.get_xdata(), [1, 4, 8])
    np.testing.assert_allclose(mean_line.get_ydata(), [61.0, 65.5, 71.0])
    assert [t for t in ax.get_xticks()] == [1, 4, 8]


def test_per_class_difference_bars():
    labels = np.array([0, 0, 1, 1, 2, 2])

    def p(correct):
        pred = np.where(correct, labels, (labels + 1) % 3)
        return Predictions(np.eye(3, dtype=np.float32)[pred], labels, np.arange(6))

    theta = [p(np.array([1, 1, 0, 0, 1, 0], bool)), p(np.array([1, 0, 0, 0, 1, 1], bool))]
    phi = [p(np.array([0, 0, 1, 1, 1, 0], bool)), p(np.array([1, 0, 1, 0, 1, 1], bool))]
    diff = figures.class_accuracy_difference(list(zip(theta, phi, strict=True)), 3)
    # class 0: (1 - 0 + 0.5 - 0.5) / 2; class 1: (0 - 1 + 0 - 0.5) / 2; class 2: 0
    np.testing.assert_allclose(diff, [50.0, -75.0, 0.0])
    fig = figures.per_class_difference(diff, ["a", "b", "c"], seeds=2)
    ax = fig.axes[0]
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == [-75.0, 0.0, 50.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "c", "a"]
    assert "mean over 2 seed(s)" in ax.get_title()


@pytest.mark.parametrize("method, name", [("pca", "PCA"), ("tsne", "t-SNE")])
def test_embedding_separates_clear_clusters(method, name):
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (20, 10)), rng.normal(12, 1, (20, 10))]
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    xy, used = figures.embed_2d(x, method)
    assert used == name and xy.shape == (40, 2)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(40) * 1e9
    assert (y[d.argmin(axis=1)] == y).all()  # every nearest neighbour is of its class
    fig = figures.embedding_scatter({"f_theta": (x, y)}, ["sit", "stand"], method)
    ax = fig.axes[0]
    assert ax.get_title() == f"f_theta ({name})" and ax.get_xlabel() == f"{name} 1"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sit", "stand"]


def test_degree_motion_shows_per_degree_means():
    df = pd.DataFrame(
        {
            "joint": list("abcde"),
            "degree": [1, 1, 2, 2, 4],
            "motion": [0.05, 0.07, 0.02, 0.04, 0.01],
        }
    )
    fig = figures.degree_motion(df)
    ax = fig.axes[0]
    container = ax.containers[0]
    assert container.get_label() == "mean ± std per degree"
    line = container[0]  # the errorbar's data line
    np.testing.assert_allclose(line.get_xdata(), [1, 2, 4])
    np.testing.assert_allclose(line.get_ydata(), [0.06, 0.03, 0.01])
    assert sorted(t.get_text() for t in ax.texts) == list("abcde")


def test_training_curves_average_over_seeds():
    hist = pd.DataFrame(
        {
            "cell": ["a"] * 4 + ["b"] * 2,
            "seed": [0, 0, 1, 1, 0, 0],
            "key": ["linear_loss"] * 6,
            "step": [0, 1, 0, 1, 0, 1],
            "value": [2.0, 1.0, 3.0, 2.0, 5.0, 4.0],
        }
    )
    fig = figures.training_curves(hist)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["a"].get_xdata(), [1, 2])  # epochs count from 1
    np.testing.assert_allclose(lines["a"].get_ydata(), [2.5, 1.5])
    np.testing.assert_allclose(lines["b"].get_ydata(), [5.0, 4.0])
    assert ax.get_title() == "Linear probe: training loss"
    assert ax.get_ylabel() == "loss" and ax.get_xlabel() == "epoch"


def test_training_curves_name_metrics_for_readers():
    keys = ["pretrain_loss", "linear_val_top1", "finetune_encoder_val_top1", "mystery_metric"]
    hist = pd.DataFrame(
        [(c, 0, k, e, 1.0 + e) for c in ("a", "b") for k in keys for e in range(3)],
        columns=["cell", "seed", "key", "step", "value"],
    )
    fig = figures.training_curves(hist)
    titles = [ax.get_title().replace("\n", " ") for ax in fig.axes]
    assert titles == [
        "Pretraining: training loss",
        "Linear probe: validation top-1 accuracy",
        "Fine-tuning (encoder): validation top-1 accuracy",
        "mystery_metric",  # an unknown key keeps its own name
    ]
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "loss",
        "top-1 accuracy (%)",
        "top-1 accuracy (%)",
        "mystery_metric",
    ]


def _crowded_joints(layout_name: str) -> pd.DataFrame:
    """A layout's joints with motions so close that names at their dots would collide."""
    from asma_bench.data.layouts import LAYOUTS

    layout = LAYOUTS[layout_name]
    rng = np.random.default_rng(1)
    motion = 0.020 + 0.002 * rng.random(len(layout.joint_names))
    return pd.DataFrame({"joint": layout.joint_names, "degree": layout.degrees, "motion": motion})


def _pose_figure_inputs():
    pose = np.array([[0.0, 0.0], [0.0, 1.0], [-0.5, 1.5], [0.5, 1.5]])
    shares = pd.DataFrame({"ldsm": [0.1, 0.2, 0.6, 0.5], "hdsm": [0.7, 0.5, 0.1, 0.2]})
    return shares, pose, [(0, 1), (1, 2), (1, 3)], ["ldsm", "hdsm"]


FIGURES = {
    "heatmap": lambda: figures.label_heatmap(
        pd.DataFrame({"spatial": ["LDSM", "HDSM"], "temporal": ["HMTM", "LMTM"],
                      "mean": [75.8, 74.4], "std": [0.1, 0.2]}), "spatial", "temporal"),
    "sensitivity": lambda: figures.sensitivity_curve(
        pd.DataFrame({"x": ["1", "4", "4"], "value": [60.0, 66.0, 65.0]}), "tau"),
    "per_class": lambda: figures.per_class_difference(np.array([5.0, -3.0, 0.0]), list("abc")),
    "embedding": lambda: figures.embedding_scatter(
        {"f_theta": (np.random.default_rng(0).normal(size=(12, 4)), np.arange(12) % 3)},
        ["sit", "stand", "wave"], "pca"),
    "degree_motion": lambda: figures.degree_motion(_crowded_joints("ntu25")),
    "curves": lambda: figures.training_curves(pd.DataFrame({
        "cell": ["a"] * 4, "seed": [0] * 4, "key": ["linear_loss"] * 2 + ["linear_val_top1"] * 2,
        "step": [0, 1, 0, 1], "value": [2.0, 1.0, 40.0, 50.0]})),
    "masking_skeletons": lambda: figures.masking_skeletons(*_pose_figure_inputs()),
    "masking_motion": lambda: figures.masking_motion_curve(
        np.linspace(0, 1, 20), {"hmtm": np.arange(20) > 14, "lmtm": np.arange(20) < 5}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_labels_its_axes_legibly(name):
    from matplotlib.text import Text

    fig = FIGURES[name]()
    fig.canvas.draw()  # lay out ticks and labels as they will be saved
    shown = [ax for ax in fig.axes if ax.axison]
    assert shown, "a figure with no labelled axis"
    for ax in shown:
        if ax.get_label() == "<colorbar>":
            assert (ax.get_ylabel() or ax.get_xlabel()).strip(), f"{name}: unlabelled colorbar"
            continue
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), f"{name}: unlabelled axis"
        assert ax.get_title().strip() or fig._suptitle is not None, f"{name}: untitled panel"
    small = [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < 7
    ]
    assert not small, f"{name}: text under 7 pt: {small[:5]}"
    renderer = fig.canvas.get_renderer()
    for ax in shown:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_text()]
            clash = any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
            assert not clash, f"{name}: tick labels overlap"


@pytest.mark.parametrize("layout", ["ntu25", "coco17"])
def test_joint_names_are_legible_and_never_overlap(layout):
    from matplotlib.text import Text

    df = _crowded_joints(layout)
    fig = figures.degree_motion(df)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    names = {t.get_text(): t for t in ax.texts}
    assert sorted(names) == sorted(df["joint"])
    # the text's own box: an Annotation's window extent also covers its leader line
    boxes = {n: Text.get_window_extent(t, renderer) for n, t in names.items()}
    frame = ax.get_window_extent(renderer)
    for n, t in names.items():
        assert t.get_fontsize() >= 7, n
        box = boxes[n]
        assert frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1, f"{n} outside the axes"
    items = list(boxes.items())
    clashes = [
        (a, b) for i, (a, ba) in enumerate(items) for b, bb in items[i + 1 :] if ba.overlaps(bb)
    ]
    assert not clashes, clashes
    # each name points at its own joint's dot
    dots = ax.collections[0].get_offsets()
    for row in df.itertuples():
        x, y = names[row.joint].xy
        assert y == row.motion and abs(x - row.degree) <= 0.1
        assert np.isclose(dots[:, 0], x).any()
