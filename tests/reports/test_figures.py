"""Figures draw what their captions say: annotations, lines and bars hold the numbers."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from asma_bench.errors import ConfigError
from asma_bench.protocols.metrics import Predictions
from asma_bench.reports import figures


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
    assert ax.get_title() == "linear_loss"
