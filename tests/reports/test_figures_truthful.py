"""Figures that are right: curves against their real x, 2-D skeletons the right way up and
whole, titles that do not overlap, and datasets called by their own name."""

import json

import numpy as np
import pandas as pd
import pytest

from asma_bench.errors import ConfigError
from asma_bench.reports import figures
from asma_bench.reports.naming import dataset_title, dataset_titles


@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _history() -> pd.DataFrame:
    """Two cells × two seeds: pretrain_loss per epoch (3 epochs), and a linear probe's
    val_top1 logged once per run at the step of its last L-BFGS iteration (203, 190, …)."""
    rows = []
    for cell, base in (("a", 10.0), ("b", 20.0)):
        for seed, it in ((0, 203), (1, 190)):
            rows += [(cell, seed, "pretrain_loss", e, base - e + seed) for e in range(3)]
            rows.append((cell, seed, "linear_val_top1", it, 50.0 + seed + base))
    df = pd.DataFrame(rows, columns=["cell", "seed", "key", "step", "value"])
    return df.sample(frac=1.0, random_state=0)  # the order MLflow gives is no order


def test_curves_use_epochs_and_a_metric_logged_once_is_no_line():
    hist = _history()
    assert figures.curve_keys(hist) == ["pretrain_loss"]
    summary = figures.curve_summary(hist, "pretrain_loss")
    assert summary["a"].index.tolist() == [1, 2, 3] and summary["a"].index.name == "epoch"
    # the mean of the two seeds at each epoch: 10 - e and 11 - e
    assert summary["a"]["mean"].tolist() == [10.5, 9.5, 8.5]
    assert summary["b"]["seeds"].tolist() == [2, 2, 2]
    fig = figures.training_curves(hist)
    (ax,) = [a for a in fig.axes if a.get_title()]
    assert ax.get_xlabel() == "epoch" and "Pretraining" in ax.get_title()
    lines = {line.get_label(): line for line in ax.lines}
    assert sorted(lines) == ["a", "b"]
    np.testing.assert_array_equal(lines["b"].get_xdata(), [1, 2, 3])  # monotone: no zig-zag
    np.testing.assert_array_equal(lines["b"].get_ydata(), [20.5, 19.5, 18.5])
    assert max(max(line.get_xdata()) for line in ax.lines) == 3  # no iteration count as x
    with pytest.raises(ConfigError, match="logged once per run"):
        figures.training_curves(hist[hist["key"] == "linear_val_top1"])


def test_seeds_logged_at_different_steps_are_averaged_without_zig_zag():
    """Two L-BFGS fits of different lengths, thinned differently (every 2nd and every 3rd
    step): each is interpolated onto the steps of both, over the range both cover."""
    a = pd.DataFrame({"step": [0, 2, 4, 6], "value": [6.0, 4.0, 2.0, 0.0]}).assign(seed=0)
    b = pd.DataFrame({"step": [0, 3, 6, 9], "value": [9.0, 6.0, 3.0, 0.0]}).assign(seed=1)
    hist = pd.concat([a, b]).assign(cell="c", key="linear_objective")
    (curve,) = figures.curve_summary(hist, "linear_objective").values()
    assert curve.index.tolist() == [1, 3, 4, 5, 7]  # steps 0, 2, 3, 4, 6, counted from 1
    # seed 0 falls by 1 a step from 6, seed 1 from 9: both lines straight, the mean too
    np.testing.assert_allclose(curve["mean"], [7.5, 5.5, 4.5, 3.5, 1.5])
    assert (curve["seeds"] == 2).all()
    assert figures.training_curves(hist).axes[0].get_xlabel().startswith("probe fit step")


def _coco_pose() -> tuple[pd.DataFrame, np.ndarray, list, list[str]]:
    """A COCO-17 mean pose in image coordinates (y down: the nose above the ankles has the
    smaller y), wrists stretched far out to the sides."""
    from asma_bench.data.layouts import get_layout

    layout = get_layout("coco17")
    pose = np.array([
        [0, -290], [-12, -300], [12, -300], [-25, -295], [25, -295], [-60, -200], [60, -200],
        [-130, -190], [130, -190], [-210, -185], [210, -185], [-40, 10], [40, 10],
        [-42, 160], [42, 160], [-44, 300], [44, 300],
    ], dtype=float)  # fmt: skip
    # names as a report gives them: two settings of one strategy carry their (n, k)
    names = ["hdsm", "ldsm (6, 2)", "random_joint", "ldsm:inverse_degree (9, 3)", "tube",
             "mamp", "hierarchy", "ldsm:inverse_degree (0.36, 0.2)"]  # fmt: skip
    rng = np.random.default_rng(0)
    shares = pd.DataFrame({n: rng.random(17) for n in names})
    return shares, pose, list(layout.edges), names


def test_a_2d_skeleton_is_drawn_y_down_with_every_joint_inside():
    shares, pose, edges, names = _coco_pose()
    fig = figures.masking_skeletons(shares, pose, edges, names, title="t", y_down=True)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == len(names)
    for ax in panels:
        assert ax.yaxis_inverted()  # image orientation: y grows downwards
        (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
        xy = ax.collections[0].get_offsets()
        margin = 0.05 * 510  # some room beyond the outermost joints (pose spans 420 × 600)
        assert (xy[:, 0] > x0 + margin).all() and (xy[:, 0] < x1 - margin).all()
        assert (xy[:, 1] > y0 + margin).all() and (xy[:, 1] < y1 - margin).all()
    # the nose (y = -290) is drawn above the ankles (y = 300) on the canvas
    fig.canvas.draw()
    ax = panels[0]
    nose, ankle = ax.transData.transform([pose[0], pose[15]])
    assert nose[1] > ankle[1]
    upright = figures.masking_skeletons(shares, pose, edges, names)  # 3-D data: y up
    assert not [ax for ax in upright.axes if ax.get_title()][0].yaxis_inverted()


def _titles_overlap(fig) -> list[tuple[str, str]]:
    """Pairs of title texts (the suptitle and each panel's) whose rendered boxes overlap,
    and a panel title that runs into another axes (a colour bar)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [(ax.title.get_text(), ax.title) for ax in fig.axes if ax.title.get_text()]
    if fig._suptitle is not None:
        texts.append((fig._suptitle.get_text(), fig._suptitle))
    boxes = [(name, t.get_window_extent(renderer)) for name, t in texts]
    clashes = [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :]
               if ba.overlaps(bb)]  # fmt: skip
    for name, box in boxes:
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>" and box.overlaps(ax.get_window_extent(renderer)):
                clashes.append((name, "colour bar"))
    return clashes


@pytest.mark.parametrize("make", ["masking-1-row", "masking-2-rows", "curves", "embedding"])
def test_titles_overlap_neither_each_other_nor_the_colour_bar(make):
    if make.startswith("masking"):
        shares, pose, edges, names = _coco_pose()
        shown = names[:4] if make == "masking-1-row" else names
        fig = figures.masking_skeletons(shares, pose, edges, shown,
                                        title="per-joint masked share (10000 draws)",
                                        y_down=True)  # fmt: skip
    elif make == "curves":
        hist = _history()
        hist = pd.concat([hist, hist.assign(key="linear_loss")])
        fig = figures.training_curves(hist, title="encoders: per-epoch metrics")
    else:
        rng = np.random.default_rng(0)
        fig = figures.embedding_scatter(
            {"aligned = concat: f_theta": (rng.normal(size=(12, 4)), np.arange(12) % 3),
             "aligned = concat: f_phi": (rng.normal(size=(12, 4)), np.arange(12) % 3)},
            ["sit", "stand", "wave"], "pca")  # fmt: skip
    assert fig._suptitle is not None
    assert _titles_overlap(fig) == []


def test_the_overlap_check_can_fail():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("a panel title")
    fig.suptitle("a title", y=0.96)  # pushed down onto the panel's title
    assert _titles_overlap(fig)
    plt.close(fig)


def _dataset(folder, info):
    folder.mkdir(parents=True)
    if info is not None:
        (folder / "info.json").write_text(json.dumps(info))
    return str(folder)


def test_a_dataset_is_called_by_its_own_name(tmp_path):
    named = _dataset(tmp_path / "canonical", {"name": "My clips", "source": "ucla"})
    ucla = _dataset(tmp_path / "a" / "canonical", {"source": "ucla", "num_classes": 10})
    ntu = _dataset(tmp_path / "ntu", {"source": "ntu-raw", "num_classes": 120})
    hrnet = _dataset(tmp_path / "b" / "canonical", {"source": "pyskl:ntu60_hrnet.pkl"})
    bare = _dataset(tmp_path / "my-folder", None)
    assert dataset_title(named) == "My clips"
    assert dataset_title(ucla) == "NW-UCLA"
    assert dataset_title(ntu) == "NTU RGB+D 120"
    assert dataset_title(hrnet) == "ntu60_hrnet"
    assert dataset_title(bare) == "my-folder"  # no info.json: the folder's name
    assert dataset_title("synthetic/small") == "synthetic/small"
    assert dataset_title(f"{ucla} → {hrnet}") == "NW-UCLA → ntu60_hrnet"
    # two conversions of one dataset stay apart
    other = _dataset(tmp_path / "canon2", {"source": "ucla"})
    assert dataset_titles([ucla, other, hrnet]) == {
        ucla: "NW-UCLA (canonical)",
        other: "NW-UCLA (canon2)",
        hrnet: "ntu60_hrnet",
    }


class _Params:
    """A GridRuns' ``param`` over a fixed mapping (what describe_data reads)."""

    def __init__(self, params: dict[str, list[str]]) -> None:
        self.params = params

    def param(self, name: str) -> list[str]:
        return self.params.get(name, [])


def test_a_transfer_grid_is_described_by_its_target_not_its_pretraining_data(tmp_path):
    from asma_bench.reports.tables import describe_data

    target = tmp_path / "canonical"
    target.mkdir()
    (target / "info.json").write_text('{"source": "ucla"}')
    plain = {"data.source": ["synthetic"], "data.preset": ["small"], "data.split": ["xsub"]}
    assert describe_data(_Params(plain)) == "synthetic (small preset), split xsub"
    transfer = plain | {"transfer.target.source": [str(target)],
                        "transfer.target.split": ["xview"]}  # fmt: skip
    assert describe_data(_Params(transfer)) == (
        "NW-UCLA, split xview (pretrained on synthetic (small preset), split xsub)"
    )
