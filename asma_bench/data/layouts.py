"""Skeleton layouts as data: joints, edges, degrees, bones, centre joint and flip pairs.

Everything graph-shaped (degrees for HDSM/LDSM, the ST-GCN partition, bone streams, flips,
kinematic depth for HA-CM) is derived from a layout's edge list, never hard-coded per
dataset. Indices are 0-based in code; the tables below are written 1-based as in the
dataset documentation and converted once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from asma_bench.errors import ConfigError


@dataclass(frozen=True)
class SkeletonLayout:
    """A skeleton graph. ``edges`` are (child, parent) pairs, 0-based."""

    name: str
    joint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    center: int
    flip_pairs: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        v = len(self.joint_names)
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
            (self.name, self.joint_names, self.edges, self.center, self.flip_pairs),
        )

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @cached_property
    def adjacency(self) -> np.ndarray:
        """Symmetric 0/1 adjacency (V, V) without self-loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for i, j in self.edges:
            a[i, j] = a[j, i] = 1.0
        return a

    @cached_property
    def degrees(self) -> np.ndarray:
        """Degree d_v = number of neighbours of joint v, self-loops excluded (ASMa eq. 1)."""
        return self.adjacency.sum(axis=1).astype(np.int64)

    @cached_property
    def bone_pairs(self) -> tuple[tuple[int, int], ...]:
        """(child, parent) pairs for the bone stream, one per joint.

        Joints that are nobody's child (the root, e.g. NTU joint 21) get a zero bone to
        themselves, as the SSL lineage does, so the bone stream keeps V channels.
        """
        parent = dict(self.edges)
        return tuple((v, parent.get(v, v)) for v in range(self.num_joints))

    @cached_property
    def hop_distance(self) -> np.ndarray:
        """Shortest-path hop counts (V, V); unreachable pairs are ``np.inf``."""
        v = self.num_joints
        dist = np.full((v, v), np.inf)
        nbrs = [np.flatnonzero(self.adjacency[i]) for i in range(v)]
        for s in range(v):
            dist[s, s] = 0
            queue = deque([s])
            while queue:
                u = queue.popleft()
                for w in nbrs[u]:
                    if dist[s, w] == np.inf:
                        dist[s, w] = dist[s, u] + 1
                        queue.append(w)
        return dist

    @cached_property
    def depth(self) -> np.ndarray:
        """Depth of each joint in the kinematic tree rooted at the centre joint (HA-CM)."""
        return self.hop_distance[self.center].astype(np.int64)

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
)  # fmt: skip

LAYOUTS: dict[str, SkeletonLayout] = {"ntu25": NTU25, "kinect20": KINECT20}


def get_layout(name: str | SkeletonLayout) -> SkeletonLayout:
    """Look a layout up by name (``ntu25``, ``kinect20``); layouts pass through."""
    if isinstance(name, SkeletonLayout):
        return name
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown layout {name!r}; available: {', '.join(sorted(LAYOUTS))}"
        ) from None
