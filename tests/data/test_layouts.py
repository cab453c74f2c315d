import numpy as np
import pytest

from asma_bench.data.layouts import KINECT20, LAYOUTS, NTU25, SkeletonLayout, get_layout
from asma_bench.errors import ConfigError

# Degrees of NTU-25 joints 1..25 as documented for the dataset (joint 21 has 4).
NTU_DEGREES = [3, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 1, 4, 1, 2, 1, 2]


def test_ntu_degrees_come_from_edges():
    assert NTU25.degrees.tolist() == NTU_DEGREES
    assert NTU25.degrees.sum() == 2 * len(NTU25.edges) == 48


def test_kinect20_degrees_and_tree():
    # Kinect v1: hip centre has spine + two hips, shoulder centre has spine, head, 2 shoulders.
    assert KINECT20.degrees[0] == 3 and KINECT20.degrees[2] == 4
    assert KINECT20.degrees.sum() == 2 * 19
    assert len(KINECT20.edges) == KINECT20.num_joints - 1  # a tree


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_layout_is_connected_tree_with_valid_flips(layout: SkeletonLayout):
    assert np.isfinite(layout.hop_distance).all()
    assert len(layout.edges) == layout.num_joints - 1
    perm = layout.flip_permutation
    assert sorted(perm.tolist()) == list(range(layout.num_joints))
    assert (perm[perm] == np.arange(layout.num_joints)).all()
    for a, b in layout.flip_pairs:
        assert layout.joint_names[a].replace("left", "right") == layout.joint_names[b]
        assert layout.degrees[a] == layout.degrees[b]


def test_bone_pairs_zero_bone_at_root():
    roots = [v for v, p in NTU25.bone_pairs if v == p]
    assert roots == [20]  # joint 21, 1-based
    assert dict(NTU25.bone_pairs)[0] == 1  # spine base -> spine mid
    assert [v for v, p in KINECT20.bone_pairs if v == p] == [2]


def test_depth_from_centre():
    assert NTU25.depth[20] == 0
    assert NTU25.depth[3] == 2  # head: 21 -> 3 -> 4
    assert NTU25.depth[15] == 6  # left foot: 21-2-1-13-14-15-16


def test_unknown_layout_and_bad_pairs():
    with pytest.raises(
        ConfigError, match="unknown layout 'coco'.*kinect20, kinect_v1, kinect_v2, ntu25"
    ):
        get_layout("coco")
    with pytest.raises(ConfigError, match="bad joint pair"):
        SkeletonLayout("bad", ("a", "b"), ((0, 5),), 0)


def test_layouts_pickle_by_name_without_caches():
    import pickle

    _ = NTU25.hop_distance  # fill a cache
    assert pickle.loads(pickle.dumps(NTU25)) is NTU25
    custom = SkeletonLayout("pair", ("a", "b"), ((1, 0),), 0)
    _ = custom.adjacency
    clone = pickle.loads(pickle.dumps(custom))
    assert clone == custom and "adjacency" not in clone.__dict__


def _chain_file(path, joints):
    """A layout file: a chain of ``joints`` joints, j0 - j1 - ..., centred on j0."""
    import json

    names = [f"j{i}" for i in range(joints)]
    edges = [[names[i], names[i - 1]] for i in range(1, joints)]
    path.write_text(json.dumps({"name": "chain", "joints": names, "edges": edges, "center": 0}))
    return path


def test_a_layout_with_more_joints_than_any_skeleton_is_refused_before_graph_work(
    tmp_path, monkeypatch
):
    from asma_bench.data import layouts

    def no_search(*_args, **_kw):
        raise AssertionError("a refused layout must not be searched")

    monkeypatch.setattr(SkeletonLayout, "hops_from", no_search)
    path = _chain_file(tmp_path / "huge.yaml", 5000)
    with pytest.raises(ConfigError) as err:
        get_layout(str(path))
    assert str(err.value) == (
        f"{path}: 5000 joints; a layout has at most {layouts.MAX_JOINTS} (whole-body keypoint "
        "sets have 133)"
    )


def test_loading_a_1000_joint_chain_searches_the_graph_once(tmp_path, monkeypatch):
    """The load is linear: one breadth-first search from the centre (connectivity), no
    all-pairs hop matrix, degrees counted from the edge list."""
    calls = []
    search = SkeletonLayout.hops_from
    monkeypatch.setattr(
        SkeletonLayout, "hops_from", lambda self, *a, **k: calls.append(a) or search(self, *a, **k)
    )
    layout = get_layout(str(_chain_file(tmp_path / "chain.yaml", 1000)))
    assert layout.num_joints == 1000 and len(calls) == 1
    assert "hop_distance" not in layout.__dict__ and "adjacency" not in layout.__dict__
    assert layout.degrees.tolist() == [1] + [2] * 998 + [1]
    assert layout.depth.tolist() == list(range(1000))
    # the ST-GCN partition searches each joint's neighbourhood only up to max_hop
    from asma_bench.backbones.graph import partition_masks

    masks = partition_masks(layout, "spatial", max_hop=1)
    assert masks.shape == (3, 1000, 1000) and masks.sum() == 1000 + 2 * 999
    assert masks[2, 0, 1] == 1 and masks[1, 1, 0] == 1  # outwards from j0, inwards to it


def test_degrees_count_each_neighbour_once():
    # an edge given in both directions is one link; each joint still has one parent
    layout = SkeletonLayout("two-way", ("a", "b", "c"), ((1, 0), (0, 1), (2, 1)), 0)
    assert layout.degrees.tolist() == [1, 2, 1]
    assert layout.links.tolist() == [[0, 1], [1, 2]]
    assert layout.adjacency.sum() == 4 and layout.neighbours == ((1,), (0, 2), (1,))
    assert np.array_equal(layout.hops_within(1), [[0, 1, np.inf], [1, 0, 1], [np.inf, 1, 0]])
