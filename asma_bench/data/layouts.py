"""Skeleton layouts as data: joints, edges, degrees, bones, centre joint and flip pairs.

Everything graph-shaped (degrees for HDSM/LDSM, the ST-GCN partition, bone streams, flips,
kinematic depth for HA-CM) is derived from a layout's edge list, never hard-coded per
dataset. Indices are 0-based in code; the tables below are written 1-based as in the
dataset documentation and converted once.

Built in: ``ntu25`` (Kinect v2, also reachable as ``kinect_v2``), ``kinect20`` (Kinect v1,
NW-UCLA) and ``coco17`` (COCO keypoints, 2D). Any other skeleton is a YAML (or JSON) file,
usable wherever a layout name is (:func:`get_layout` takes a path)::

    name: my-rig                      # a label for reports
    dims: 2                           # coordinate channels: 2 (x, y) or 3 (x, y, z)
    joints: [pelvis, chest, head, l_hand, r_hand]
    edges: [[chest, pelvis], [head, chest], [l_hand, chest], [r_hand, chest]]  # child, parent
    center: chest                     # the joint clips are centred on
    flip_pairs: [[l_hand, r_hand]]    # swapped by a left-right flip (optional)

Joints in ``edges``, ``center`` and ``flip_pairs`` are names or 0-based indices; a layout
has at most :data:`MAX_JOINTS` (1,000) joints. Degrees
(HDSM/LDSM, ASMa eq. 1), bones and the ST-GCN partition follow from ``edges``. Channels
beyond ``dims`` (a keypoint detector's confidence, say) are carried as features: only the
first ``dims`` channels are rotated, sheared, flipped, centred or differenced as motion.
A dataset stores its layout's whole definition, so it stays readable without the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from asma_bench.errors import ConfigError


@dataclass(frozen=True)
class SkeletonLayout:
    """A skeleton graph. ``edges`` are (child, parent) pairs, 0-based; ``dims`` is the
    number of coordinate channels (2 or 3), the first channels of a clip."""

    name: str
    joint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    center: int
    flip_pairs: tuple[tuple[int, int], ...] = field(default=())
    dims: int = 3
    #: (joint, NTU-25 joint) pairs: where synthetic clips read a joint that is not named
    #: like an NTU-25 joint (see :func:`synthetic_sources`)
    synthetic_from: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        v = len(self.joint_names)
        if v < 2 or len(set(self.joint_names)) != v:
            raise ConfigError(f"layout {self.name!r}: needs at least 2 joints with distinct names")
        if self.dims not in (2, 3):
            raise ConfigError(f"layout {self.name!r}: dims must be 2 or 3, got {self.dims!r}")
        for a, b in self.edges + self.flip_pairs:
            if not (0 <= a < v and 0 <= b < v) or a == b:
                raise ConfigError(f"layout {self.name!r}: bad joint pair ({a}, {b})")
        if not 0 <= self.center < v:
            raise ConfigError(f"layout {self.name!r}: centre joint {self.center} out of range")

    def __reduce__(self) -> tuple:
        # pickle registered layouts by name (cheap, keeps identity); others without caches
        if LAYOUTS.get(self.name) is self:
            return (get_layout, (self.name,))
        return (
            SkeletonLayout,
            (
                self.name,
                self.joint_names,
                self.edges,
                self.center,
                self.flip_pairs,
                self.dims,
                self.synthetic_from,
            ),
        )

    @property
    def builtin(self) -> bool:
        """True for a layout registered under its name (stored by name in datasets)."""
        return LAYOUTS.get(self.name) is self

    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data (names, not indices), as a layout file holds it."""
        names = self.joint_names
        return {
            "name": self.name,
            "dims": self.dims,
            "joints": list(names),
            "edges": [[names[a], names[b]] for a, b in self.edges],
            "center": names[self.center],
            "flip_pairs": [[names[a], names[b]] for a, b in self.flip_pairs],
            **({"synthetic_from": dict(self.synthetic_from)} if self.synthetic_from else {}),
        }

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @cached_property
    def links(self) -> np.ndarray:
        """The undirected edges, each once: (E, 2) int64 rows (a, b) with a < b, sorted.

        Everything graph-shaped below works from this edge list (or the neighbour lists
        built from it), so loading a layout costs time linear in its joints and edges; only
        what is a V × V matrix by nature (:attr:`adjacency`, the ST-GCN partition) is one."""
        if not self.edges:
            return np.zeros((0, 2), dtype=np.int64)
        pairs = np.sort(np.asarray(self.edges, dtype=np.int64).reshape(-1, 2), axis=1)
        return np.unique(pairs, axis=0)

    @cached_property
    def neighbours(self) -> tuple[tuple[int, ...], ...]:
        """For each joint, its neighbours (ascending), self excluded."""
        nbrs: list[list[int]] = [[] for _ in range(self.num_joints)]
        for a, b in self.links.tolist():
            nbrs[a].append(b)
            nbrs[b].append(a)
        return tuple(tuple(sorted(n)) for n in nbrs)

    @cached_property
    def adjacency(self) -> np.ndarray:
        """Symmetric 0/1 adjacency (V, V) without self-loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        a[self.links[:, 0], self.links[:, 1]] = 1.0
        a[self.links[:, 1], self.links[:, 0]] = 1.0
        return a

    @cached_property
    def degrees(self) -> np.ndarray:
        """Degree d_v = number of neighbours of joint v, self-loops excluded (ASMa eq. 1)."""
        return np.bincount(self.links.ravel(), minlength=self.num_joints).astype(np.int64)

    @cached_property
    def bone_pairs(self) -> tuple[tuple[int, int], ...]:
        """(child, parent) pairs for the bone stream, one per joint.

        Joints that are nobody's child (the root, e.g. NTU joint 21) get a zero bone to
        themselves, as the SSL lineage does, so the bone stream keeps V channels.
        """
        parent = dict(self.edges)
        return tuple((v, parent.get(v, v)) for v in range(self.num_joints))

    def hops_from(self, joint: int, max_hop: int | None = None) -> np.ndarray:
        """Hop counts (V,) from ``joint`` by breadth-first search over the neighbour lists;
        joints farther than ``max_hop`` (or unreachable) are ``np.inf``. Linear in V + E."""
        dist = np.full(self.num_joints, np.inf)
        dist[joint] = 0
        nbrs, frontier, hop = self.neighbours, [joint], 0
        while frontier and (max_hop is None or hop < max_hop):
            hop += 1
            reached = []
            for u in frontier:
                for w in nbrs[u]:
                    if dist[w] == np.inf:
                        dist[w] = hop
                        reached.append(w)
            frontier = reached
        return dist

    def hops_within(self, max_hop: int | None = None) -> np.ndarray:
        """Hop counts (V, V), ``np.inf`` beyond ``max_hop`` hops or where unreachable.

        The ST-GCN partition needs hops up to ``max_hop`` only (1 in every backbone here):
        each search stops there, so the work is V times a neighbourhood, not V × V."""
        v = self.num_joints
        dist = np.full((v, v), np.inf)
        for s in range(v):
            dist[s] = self.hops_from(s, max_hop)
        return dist

    @cached_property
    def hop_distance(self) -> np.ndarray:
        """Shortest-path hop counts (V, V); unreachable pairs are ``np.inf``."""
        return self.hops_within(None)

    @cached_property
    def depth(self) -> np.ndarray:
        """Depth of each joint in the kinematic tree rooted at the centre joint (HA-CM)."""
        return self.hops_from(self.center).astype(np.int64)

    @cached_property
    def flip_permutation(self) -> np.ndarray:
        """Joint permutation that swaps left and right."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


def _zero_based(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((a - 1, b - 1) for a, b in pairs)


NTU25 = SkeletonLayout(
    name="ntu25",
    joint_names=(
        "spine_base", "spine_mid", "neck", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
        "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
    ),
    edges=_zero_based([
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
        (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17),
        (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
    ]),
    center=21 - 1,
    flip_pairs=_zero_based([
        (5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20),
        (22, 24), (23, 25),
    ]),
)  # fmt: skip

KINECT20 = SkeletonLayout(
    name="kinect20",
    joint_names=(
        "hip_center", "spine", "shoulder_center", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
    ),
    edges=_zero_based([
        (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
        (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
    ]),
    center=2 - 1,
    flip_pairs=_zero_based([
        (5, 9), (6, 10), (7, 11), (8, 12), (13, 17), (14, 18), (15, 19), (16, 20),
    ]),
    synthetic_from=(
        ("hip_center", "spine_base"), ("spine", "spine_mid"),
        ("shoulder_center", "spine_shoulder"),
    ),
)  # fmt: skip

COCO17 = SkeletonLayout(
    name="coco17",
    joint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    # a tree rooted at the nose, the graph pyskl and ST-GCN++ use for COCO keypoints:
    # shoulders hang from the nose, hips from the shoulders (no hip-hip or shoulder-shoulder
    # link, so each joint has one parent and degrees count real neighbours)
    edges=_zero_based([
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 6), (13, 7), (10, 8), (8, 6), (11, 9),
        (9, 7), (6, 1), (7, 1), (2, 1), (4, 2), (3, 1), (5, 3),
    ]),
    center=1 - 1,
    flip_pairs=_zero_based([
        (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17),
    ]),
    dims=2,
    # the synthetic body has one head joint: the face keypoints all sit on it
    synthetic_from=(
        ("nose", "head"), ("left_eye", "head"), ("right_eye", "head"), ("left_ear", "head"),
        ("right_ear", "head"),
    ),
)  # fmt: skip

LAYOUTS: dict[str, SkeletonLayout] = {"ntu25": NTU25, "kinect20": KINECT20, "coco17": COCO17}
#: Other names of built-in layouts: NTU RGB+D was recorded with Kinect v2, whose 25 joints
#: (Microsoft's JointType order) are exactly ntu25.
ALIASES: dict[str, str] = {"kinect_v2": "ntu25", "kinect_v1": "kinect20"}

LAYOUT_SUFFIXES = (".yaml", ".yml", ".json")
#: The most joints a layout file (or a dataset's stored layout) may have. Real skeletons
#: have at most 133 keypoints (COCO-WholeBody); the backbones hold V × V adjacencies and
#: the ST-GCN partition, so a hostile file with 10^4 joints would cost minutes and
#: gigabytes before anything is read. 1,000 leaves room for dense marker sets.
MAX_JOINTS = 1000
_FIELDS = ("name", "dims", "joints", "edges", "center", "flip_pairs", "synthetic_from")


def get_layout(name: str | Path | Mapping[str, Any] | SkeletonLayout) -> SkeletonLayout:
    """A layout by name (``ntu25``, ``kinect_v2``, ``kinect20``, ``coco17``), by path to a
    YAML/JSON layout file, or from its definition as a mapping; layouts pass through."""
    if isinstance(name, SkeletonLayout):
        return name
    if isinstance(name, Mapping):
        return layout_from_dict(name, "layout definition")
    key = str(name)
    key = ALIASES.get(key, key)
    if key in LAYOUTS:
        return LAYOUTS[key]
    if isinstance(name, Path) or key.endswith(LAYOUT_SUFFIXES) or "/" in key:
        return load_layout(Path(key))
    names = sorted([*LAYOUTS, *ALIASES])
    raise ConfigError(
        f"unknown layout {key!r}; available: {', '.join(names)}, or a path to a layout .yaml file"
    )


def load_layout(path: Path) -> SkeletonLayout:
    """Read a layout file (see the module docstring); errors name the file and field."""
    from asma_bench.config import load_yaml  # config imports nothing from data

    if not path.is_file():
        raise ConfigError(f"layout file {path} does not exist")
    data = load_yaml(path, "layout")
    data.setdefault("name", path.stem)
    return layout_from_dict(data, str(path))


def layout_from_dict(data: Mapping[str, Any], where: str) -> SkeletonLayout:
    """Build a layout from ``{name, dims, joints, edges, center, flip_pairs}``; joints
    may be referred to by name or 0-based index."""
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown layout field {unknown[0]!r} (fields: "
                          f"{', '.join(_FIELDS)})")  # fmt: skip
    for key in ("joints", "edges", "center"):
        if key not in data:
            raise ConfigError(f"{where}: the layout needs {key!r}")
    joints = data["joints"]
    if not isinstance(joints, list) or not all(isinstance(j, str) and j for j in joints):
        raise ConfigError(f"{where}: 'joints' must be a list of joint names")
    if len(joints) > MAX_JOINTS:
        raise ConfigError(f"{where}: {len(joints)} joints; a layout has at most {MAX_JOINTS} "
                          "(whole-body keypoint sets have 133)")  # fmt: skip
    index = {j: i for i, j in enumerate(joints)}

    def joint(ref: object, what: str) -> int:
        if isinstance(ref, bool):
            ref = None
        if isinstance(ref, int) and 0 <= ref < len(joints):
            return ref
        if isinstance(ref, str) and ref in index:
            return index[ref]
        raise ConfigError(f"{where}: {what}: {ref!r} is not one of the {len(joints)} joints "
                          "(a name from 'joints' or a 0-based index)")  # fmt: skip

    def pairs(key: str) -> tuple[tuple[int, int], ...]:
        value = data.get(key) or []
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key!r} must be a list of [joint, joint] pairs")
        out = []
        for i, pair in enumerate(value):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ConfigError(f"{where}: {key}[{i}] must be a pair [joint, joint]")
            out.append((joint(pair[0], f"{key}[{i}]"), joint(pair[1], f"{key}[{i}]")))
        return tuple(out)

    dims = data.get("dims", 3)
    if isinstance(dims, bool) or dims not in (2, 3):
        raise ConfigError(f"{where}: 'dims' must be 2 or 3, got {dims!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    edges = pairs("edges")
    synthetic = data.get("synthetic_from") or {}
    if not isinstance(synthetic, Mapping):
        raise ConfigError(f"{where}: 'synthetic_from' must map joints to NTU-25 joint names")
    for key, value in synthetic.items():
        joint(key, "synthetic_from")
        if value not in NTU25.joint_names:
            raise ConfigError(f"{where}: synthetic_from: {value!r} is not an NTU-25 joint "
                              f"({', '.join(NTU25.joint_names)})")  # fmt: skip
    layout = SkeletonLayout(
        name=name,
        joint_names=tuple(joints),
        edges=edges,
        center=joint(data["center"], "center"),
        flip_pairs=pairs("flip_pairs"),
        dims=int(dims),
        synthetic_from=tuple((joints[joint(k, "synthetic_from")], v) for k, v in synthetic.items()),
    )
    _check_tree(layout, where)
    return layout


def _check_tree(layout: SkeletonLayout, where: str) -> None:
    """Every joint reachable from the centre, and no joint with two parents (edges are
    (child, parent): the bone stream gives each joint one parent). Linear in the edges:
    one count per child, one search from the centre."""
    counts = Counter(a for a, _ in layout.edges)
    twice = [c for c, k in counts.items() if k > 1]
    if twice:
        j = layout.joint_names[min(twice)]
        raise ConfigError(f"{where}: joint {j!r} is the child of two edges (edges are "
                          "[child, parent]; each joint has at most one parent)")  # fmt: skip
    unreachable = np.flatnonzero(np.isinf(layout.hops_from(layout.center)))
    if len(unreachable):
        j = layout.joint_names[int(unreachable[0])]
        raise ConfigError(f"{where}: joint {j!r} is not connected to the centre joint by edges")


def layout_ref(layout: SkeletonLayout) -> str | dict[str, Any]:
    """How a dataset's info.json names its layout: a built-in by name, any other by its
    whole definition (the dataset must not depend on a file elsewhere)."""
    return layout.name if layout.builtin else layout.to_dict()


def synthetic_sources(layout: SkeletonLayout) -> np.ndarray:
    """For each joint of ``layout``, the NTU-25 joint the synthetic generator's body gives
    it: the ``synthetic_from`` entry, else the NTU-25 joint of the same name. A joint with
    neither is an error naming the field to add."""
    given = dict(layout.synthetic_from)
    out = []
    for name in layout.joint_names:
        source = given.get(name, name)
        if source not in NTU25.joint_names:
            raise ConfigError(
                f"layout {layout.name!r}: joint {name!r} has no NTU-25 joint for synthetic "
                f"clips; map it under synthetic_from (e.g. {name}: left_hand)"
            )
        out.append(NTU25.joint_names.index(source))
    return np.asarray(out, dtype=np.int64)
