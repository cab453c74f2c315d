"""Procedural NTU-25 skeleton actions: the default dataset, built in seconds on a laptop CPU.

Every performance is animated with forward kinematics on the NTU-25 kinematic tree (the
layout's edges, re-rooted at the spine base so the legs carry the body):

* a rest pose from per-subject bone lengths (scale and limb-length ratios);
* per-class joint-angle tracks composed of motion primitives (raise, flex, oscillate,
  pulse, bend, lift, turn, step, translate) on a normalised action phase, with idle frames
  before and after; the lower foot is kept on the floor, so squats lower the body;
* left-handed subjects perform side-free actions mirrored with the layout's flip
  permutation (actions whose side is part of the label, such as ``wave_left_hand``, are
  never mirrored);
* like NTU, each performance is filmed by three cameras at once (azimuths 0°, −45°, +45°;
  the performer faces −45° or +45° depending on the replication, so camera 1 sees 45°
  views and cameras 2–3 frontal and side views), in Kinect camera space: metres, y up,
  x to the performer's right when facing the camera, depth z around 3 m;
* sensor effects per camera: Gaussian noise (millimetres on the trunk, centimetres at the
  hand tips), joints dropped to zero, stretches of jittery joints and (in the ``noisy``
  preset) occluded limbs.

Splits: ``xsub`` trains on a fixed subject list (NTU-120's training performers among the
generated subject ids unless configured), ``xview`` trains on cameras 2 and 3.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from asma_bench.data.layouts import NTU25, SkeletonLayout, get_layout, synthetic_sources
from asma_bench.data.splits import NTU120_XSUB_TRAIN, by_mask
from asma_bench.data.store import DatasetWriter, SampleMeta
from asma_bench.errors import ConfigError, validation_line

log = logging.getLogger(__name__)

_J = {name: i for i, name in enumerate(NTU25.joint_names)}
_V = NTU25.num_joints
_ROOT = _J["spine_base"]
_X, _Y, _Z = 0, 1, 2  # angle channels: rotation about the body's x (left), y (up), z (forward)
_CHUNK = 192  # performances animated together (bounds memory at ~30 MB per chunk)
SPLITS = ("xsub", "xview")  # the splits every generated dataset has


# ----------------------------------------------------------------------------- skeleton
def _kinematic_tree(root: int) -> tuple[np.ndarray, list[int]]:
    """Parents and a top-down order of the layout's edges re-rooted at ``root``."""
    nbrs: list[list[int]] = [[] for _ in range(_V)]
    for a, b in NTU25.edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    parent = np.full(_V, -1)
    order, seen = [root], {root}
    for u in order:
        for w in nbrs[u]:
            if w not in seen:
                seen.add(w)
                parent[w] = u
                order.append(w)
    return parent, order


_PARENT, _ORDER = _kinematic_tree(_ROOT)

# Offset of each joint from its parent in the rest pose, metres, for a ~1.65 m performer;
# body frame x = the body's left, y = up, z = forward. Proportions follow Kinect v2
# skeletons (joint centres, so shorter than anatomical segments).
_LEFT_OFFSETS = {
    "spine_mid": (0.0, 0.26, 0.0),
    "spine_shoulder": (0.0, 0.20, 0.0),
    "neck": (0.0, 0.065, 0.0),
    "head": (0.0, 0.12, 0.005),
    "left_shoulder": (0.16, -0.02, 0.0),
    "left_elbow": (0.02, -0.25, 0.0),
    "left_wrist": (0.0, -0.23, 0.02),
    "left_hand": (0.0, -0.05, 0.01),
    "left_thumb": (-0.02, -0.02, 0.035),
    "left_hand_tip": (0.02, -0.045, -0.025),
    "left_hip": (0.075, -0.01, 0.0),
    "left_knee": (0.005, -0.38, 0.01),
    "left_ankle": (0.0, -0.37, -0.03),
    "left_foot": (0.0, -0.05, 0.09),
}
_GROUPS = {  # proportion groups scaled together per subject
    "torso": ("spine_mid", "spine_shoulder", "neck", "head"),
    "shoulder": ("left_shoulder", "right_shoulder"),
    "arm": ("elbow", "wrist", "hand", "thumb", "hand_tip"),
    "hip": ("left_hip", "right_hip"),
    "leg": ("knee", "ankle", "foot"),
}


def _rest_offsets() -> np.ndarray:
    off = np.zeros((_V, 3))
    for name, vec in _LEFT_OFFSETS.items():
        off[_J[name]] = vec
        if name.startswith("left_"):
            off[_J["right_" + name[5:]]] = (-vec[0], vec[1], vec[2])
    return off


_REST = _rest_offsets()


def _group_index() -> np.ndarray:
    """Proportion group (0..4) of each joint's incoming bone."""
    group = np.zeros(_V, dtype=np.int64)
    for g, members in enumerate(_GROUPS.values()):
        for v, name in enumerate(NTU25.joint_names):
            if name in members or name.split("_", 1)[-1] in members:
                group[v] = g
    return group


_BONE_GROUP = _group_index()
_FEET = np.array([_J[n] for n in ("left_ankle", "left_foot", "right_ankle", "right_foot")])


def _noise_profile() -> np.ndarray:
    """Relative sensor noise per joint: Kinect tracks the trunk to a millimetre or two but
    hands, feet and especially hand tips and thumbs jitter by centimetres (as in NTU)."""
    levels = {
        "spine": 0.1,
        "neck": 0.1,
        "head": 0.1,
        "shoulder": 0.17,
        "hip": 0.17,
        "elbow": 0.33,
        "knee": 0.33,
        "wrist": 0.55,
        "ankle": 0.55,
        "hand": 1.0,
        "foot": 1.0,
        "hand_tip": 1.6,
        "thumb": 1.6,
    }
    names = [
        n.split("_", 1)[1] if n.startswith(("left_", "right_")) else n.split("_")[0]
        for n in NTU25.joint_names
    ]
    return np.array([levels[n] for n in names], dtype=np.float32)


_NOISE = _noise_profile()
_LIMBS = tuple(
    np.array([_J[f"{side}_{part}"] for part in parts])
    for side in ("left", "right")
    for parts in (("elbow", "wrist", "hand", "hand_tip", "thumb"), ("knee", "ankle", "foot"))
)


def _rotations(deg: np.ndarray) -> np.ndarray:
    """Rotation matrices R = R_y · R_z · R_x from angles (..., 3) in degrees (x, y, z)."""
    a = np.deg2rad(deg)
    cx, sx = np.cos(a[..., _X]), np.sin(a[..., _X])
    cy, sy = np.cos(a[..., _Y]), np.sin(a[..., _Y])
    cz, sz = np.cos(a[..., _Z]), np.sin(a[..., _Z])
    # closed form of R_y @ R_z @ R_x
    r = np.empty(deg.shape[:-1] + (3, 3))
    r[..., 0, 0] = cy * cz
    r[..., 0, 1] = -cy * sz * cx + sy * sx
    r[..., 0, 2] = cy * sz * sx + sy * cx
    r[..., 1, 0] = sz
    r[..., 1, 1] = cz * cx
    r[..., 1, 2] = -cz * sx
    r[..., 2, 0] = -sy * cz
    r[..., 2, 1] = sy * sz * cx + cy * sx
    r[..., 2, 2] = -sy * sz * sx + cy * cx
    return r


def _yaw_matrix(deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    r = np.zeros(np.shape(deg) + (3, 3))
    r[..., 0, 0], r[..., 0, 2], r[..., 1, 1], r[..., 2, 0], r[..., 2, 2] = c, s, 1.0, -s, c
    return r


def _forward_kinematics(offsets: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Joint positions (B, T, V, 3) relative to the root from bone offsets (B, V, 3) and
    per-bone local rotations (B, T, V, 3) in degrees.

    The rotation stored at joint v turns the bone that ends at v (and everything below it)
    in its parent's frame: G_v = G_parent · R_v, p_v = p_parent + G_v · o_v.
    """
    rot = _rotations(angles)
    glob = np.empty_like(rot)
    pos = np.zeros(angles.shape)
    glob[:, :, _ROOT] = rot[:, :, _ROOT]
    for v in _ORDER[1:]:
        p = _PARENT[v]
        glob[:, :, v] = glob[:, :, p] @ rot[:, :, v]
        pos[:, :, v] = pos[:, :, p] + (glob[:, :, v] @ offsets[:, None, v, :, None])[..., 0]
    return pos


# ----------------------------------------------------------------------------- envelopes
def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _ramp(s: np.ndarray, rise: float = 0.2) -> np.ndarray:
    """0 → 1 over the first ``rise`` of the phase, hold, 1 → 0 over the last ``rise``."""
    return _smoothstep(s / rise) * _smoothstep((1.0 - s) / rise)


def _bumps(s: np.ndarray, n: np.ndarray | float, power: float = 2.0) -> np.ndarray:
    """``n`` smooth bumps over the phase [0, 1] (zero at both ends for integer n)."""
    return np.abs(np.sin(np.pi * n * s)) ** power


# ----------------------------------------------------------------------------- motion
Track = np.ndarray | float  # an angle (degrees) per performance and frame, broadcastable


class _Motion:
    """Joint-angle and root tracks of a batch of performances of one class.

    Body 0 is the (main) performer, body 1 the partner in two-person classes. Tracks are in
    each body's own frame: x = its left, y = up, z = forward. The dominant side is the
    right; left-handed performers are mirrored afterwards.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        s: np.ndarray,
        amp: np.ndarray,
        bodies: int,
        distance: np.ndarray,
    ):
        self.rng, self.s = rng, s  # s: action phase (B, T) in [0, 1]
        self.n, self.t = s.shape
        self.amp = amp[:, None]  # style: amplitude factor per performance
        self.distance = distance[:, None]  # two-person classes: initial gap, metres
        self.angles = np.zeros((bodies, self.n, self.t, _V, 3))
        self.shift = np.zeros((bodies, self.n, self.t, 3))  # root translation, own frame
        self.yaw = np.zeros((bodies, self.n, self.t))  # whole-body turn, degrees
        self.lift = np.zeros((bodies, self.n, self.t))  # height above the floor (jumps)

    def u(self, lo: float, hi: float) -> np.ndarray:
        """One uniform draw per performance, broadcastable over frames."""
        return self.rng.uniform(lo, hi, (self.n, 1))

    def count(self, lo: int, hi: int) -> np.ndarray:
        return self.rng.integers(lo, hi + 1, (self.n, 1)).astype(float)

    def add(self, joint: str, axis: int, value: Track, body: int = 0) -> None:
        self.angles[body, :, :, _J[joint], axis] += value

    def arm(
        self,
        side: str,
        body: int = 0,
        *,
        raise_fwd: Track = 0.0,
        raise_side: Track = 0.0,
        swing: Track = 0.0,
        elbow: Track = 0.0,
        elbow_side: Track = 0.0,
    ) -> None:
        """Arm angles in degrees: forward flexion, abduction (outwards), horizontal swing
        (outwards), elbow flexion and sideways elbow bend (outwards), mirrored per side."""
        out = 1.0 if side == "left" else -1.0
        self.add(f"{side}_elbow", _X, -raise_fwd, body)
        self.add(f"{side}_elbow", _Z, out * raise_side, body)
        self.add(f"{side}_elbow", _Y, out * swing, body)
        self.add(f"{side}_wrist", _X, -elbow, body)
        self.add(f"{side}_wrist", _Z, out * elbow_side, body)

    def leg(
        self, side: str, body: int = 0, *, hip: Track = 0.0, knee: Track = 0.0, ankle: Track = 0.0
    ) -> None:
        """Hip flexion (thigh forward), knee flexion (shank back), ankle (toes down)."""
        self.add(f"{side}_knee", _X, -hip, body)
        self.add(f"{side}_ankle", _X, knee, body)
        self.add(f"{side}_foot", _X, ankle, body)

    def spine(self, bend: Track, body: int = 0, *, twist: Track = 0.0) -> None:
        """Forward bend (lower spine 70 %, upper 30 %) and a twist that brings the right
        shoulder forward."""
        self.add("spine_mid", _X, 0.7 * bend, body)
        self.add("spine_shoulder", _X, 0.3 * bend, body)
        self.add("spine_shoulder", _Y, twist, body)


def _wave(side: str) -> Callable[[_Motion], None]:
    def animate(m: _Motion) -> None:
        e, cycles = _ramp(m.s), m.u(2.0, 6.0)
        osc = np.sin(2 * np.pi * cycles * m.s + m.u(0, np.pi))
        m.arm(
            side,
            raise_side=m.u(50, 110) * e,
            raise_fwd=m.u(0, 45) * e,
            elbow_side=(m.u(60, 110) + m.u(15, 40) * m.amp * osc) * e,
        )
        m.add(f"{side}_hand", _Z, (1.0 if side == "left" else -1.0) * 12 * osc * e)

    return animate


def _hand_raise(m: _Motion) -> None:
    e = _ramp(m.s, m.u(0.15, 0.35))
    m.arm(
        "right",
        raise_side=m.u(40, 110) * m.amp * e,
        raise_fwd=m.u(10, 60) * e,
        elbow_side=m.u(20, 90) * e,
    )
    m.add("head", _X, -m.u(0, 10) * e)


def _clap(m: _Motion) -> None:
    e, cycles = _ramp(m.s), m.u(3.0, 6.0)
    opening = 0.5 * (1 - np.cos(2 * np.pi * cycles * m.s))  # 0 = palms together
    inward, gap = m.u(14, 20), m.u(18, 30) * m.amp
    for side in ("left", "right"):
        m.arm(
            side,
            raise_fwd=m.u(30, 90) * e,
            swing=(gap * opening - inward) * e,
            elbow=m.u(25, 45) * e,
        )


def _punch(m: _Motion) -> None:
    e, n = _ramp(m.s, 0.15), m.count(1, 4)
    hit = _bumps(m.s, n, 6.0)
    for side in ("left", "right"):
        m.arm(side, raise_fwd=m.u(30, 45) * e, elbow=m.u(100, 125) * e, swing=-10 * e)
    m.arm("right", raise_fwd=m.u(30, 65) * m.amp * hit, elbow=-m.u(80, 120) * hit, swing=5 * hit)
    m.spine(5 * e, twist=m.u(10, 20) * hit)


def _reach(m: _Motion) -> None:
    e = _ramp(m.s, 0.35)
    m.arm(
        "right",
        raise_fwd=m.u(70, 160) * m.amp * e,
        raise_side=m.u(-10, 40) * e,
        elbow=m.u(0, 20) * e,
    )
    m.spine(m.u(0, 12) * e, twist=m.u(0, 12) * e)
    m.add("head", _X, -m.u(5, 15) * e)  # look up at the target


def _kick(m: _Motion) -> None:
    n = m.count(1, 2)
    kick = _bumps(m.s, n, 4.0)
    chamber = _bumps(np.clip(m.s * 1.15 - 0.05, 0, 1), n, 2.0)  # knee cocks before the kick
    m.leg(
        "right",
        hip=m.u(30, 85) * m.amp * kick + 25 * chamber,
        knee=m.u(60, 90) * chamber * (1 - kick),
        ankle=15 * kick,
    )
    for side in ("left", "right"):
        m.arm(side, raise_side=m.u(10, 25) * _ramp(m.s))
    m.spine(-m.u(5, 12) * kick)


def _squat(m: _Motion) -> None:
    n = m.count(1, 2)
    e = _bumps(m.s, n, 1.5)
    depth = m.u(40, 100) * m.amp
    arms = m.u(0, 80) * (m.rng.random((m.n, 1)) < 0.6)
    for side in ("left", "right"):
        m.leg(side, hip=depth * e, knee=1.4 * depth * e, ankle=-0.4 * depth * e)
        m.arm(side, raise_fwd=arms * e)
    m.spine(0.35 * depth * e)


def _bow(m: _Motion) -> None:
    e = _ramp(m.s, 0.3)
    depth = m.u(20, 70) * m.amp
    m.spine(depth * e)
    m.add("head", _X, 10 * e)
    hang = m.u(0.5, 1.0)  # arms fall towards the floor
    for side in ("left", "right"):
        m.arm(side, raise_fwd=hang * depth * e)
    m.shift[0, :, :, 2] -= (0.08 * depth / 50) * e  # hips move back for balance


def _pick_up(m: _Motion) -> None:
    e = _ramp(m.s, 0.3)
    m.spine(m.u(30, 60) * m.amp * e)
    for side in ("left", "right"):
        m.leg(side, hip=m.u(15, 50) * e, knee=m.u(25, 75) * e, ankle=-15 * e)
    m.arm("right", raise_fwd=m.u(15, 40) * e, swing=-m.u(0, 15) * e, elbow=m.u(0, 20) * e)
    m.arm("left", raise_side=m.u(0, 15) * e)


def _jump(m: _Motion) -> None:
    n = m.count(1, 2)
    u = (m.s * n) % 1.0
    u = np.where(m.s >= 1.0, 1.0, u)
    crouch = np.exp(-(((u - 0.15) / 0.08) ** 2)) + np.exp(-(((u - 0.85) / 0.08) ** 2))
    crouch *= (m.s > 0) & (m.s < 1)
    f = np.clip((u - 0.3) / 0.4, 0.0, 1.0)
    flight = 4 * f * (1 - f)
    for side in ("left", "right"):
        m.leg(side, hip=50 * crouch, knee=85 * crouch, ankle=-30 * crouch + 25 * flight)
        m.arm(side, raise_fwd=m.u(60, 150) * flight - 30 * crouch)
    m.spine(20 * crouch)
    m.lift[0] += m.u(0.06, 0.3) * m.amp * flight


def _turn(m: _Motion) -> None:
    angle = m.u(60, 180) * np.where(m.rng.random((m.n, 1)) < 0.5, -1.0, 1.0)
    m.yaw[0] += angle * _smoothstep(m.s)
    steps = m.count(2, 4)
    step = np.sin(np.pi * steps * m.s)
    left, right = np.clip(step, 0, None) ** 2, np.clip(-step, 0, None) ** 2
    m.leg("left", hip=20 * left, knee=40 * left)
    m.leg("right", hip=20 * right, knee=40 * right)
    for side, phase in (("left", right), ("right", left)):
        m.arm(side, raise_fwd=10 * phase, raise_side=5 * _ramp(m.s))


def _handshake(m: _Motion) -> None:
    e = _ramp(m.s, 0.25)
    pump = np.sin(2 * np.pi * m.u(2, 4) * m.s) * e
    for body in (0, 1):
        m.arm(
            "right",
            body,
            raise_fwd=m.u(38, 52) * e,
            swing=-m.u(12, 20) * e,
            elbow=m.u(25, 40) * e + 10 * pump,
        )
        m.spine(m.u(0, 8) * e, body)
        m.shift[body, :, :, 2] += m.u(0.0, 0.08) * e


def _push(m: _Motion) -> None:
    at = m.u(0.4, 0.55)  # phase of the push
    reach = _smoothstep((m.s - at + 0.3) / 0.3) * (1 - _smoothstep((m.s - at - 0.15) / 0.25))
    thrust = _smoothstep((m.s - at + 0.08) / 0.08)
    for side in ("left", "right"):
        m.arm(
            side,
            0,
            raise_fwd=m.u(65, 85) * reach,
            swing=-10 * reach,
            elbow=m.u(60, 90) * reach * (1 - thrust),
        )
    m.spine(10 * reach * thrust)
    m.shift[0, :, :, 2] += 0.12 * thrust
    back = _smoothstep((m.s - at) / m.u(0.15, 0.3))
    recoil = _bumps(np.clip((m.s - at) / 0.4, 0, 1), 1.0)
    m.shift[1, :, :, 2] -= m.u(0.2, 0.45) * m.amp * back
    m.spine(-15 * recoil, 1)
    for side in ("left", "right"):
        m.arm(side, 1, raise_fwd=35 * recoil, raise_side=15 * recoil)
        m.leg(side, 1, hip=10 * recoil, knee=15 * recoil)


def _hug(m: _Motion) -> None:
    walk = _smoothstep(m.s / 0.6)
    steps = m.count(3, 4)
    gait = np.sin(np.pi * steps * np.clip(m.s / 0.6, 0, 1))
    wrap = _smoothstep((m.s - 0.45) / 0.3)
    for body in (0, 1):
        m.shift[body, :, :, 2] += (m.distance - 0.35) / 2 * walk  # meet chest to chest
        m.leg("left", body, hip=25 * np.clip(gait, 0, None), knee=35 * np.clip(gait, 0, None))
        m.leg("right", body, hip=25 * np.clip(-gait, 0, None), knee=35 * np.clip(-gait, 0, None))
        for side in ("left", "right"):
            m.arm(
                side,
                body,
                raise_fwd=m.u(65, 85) * wrap + 12 * gait * (1 - wrap),
                raise_side=m.u(15, 30) * wrap,
                elbow_side=-m.u(50, 80) * wrap,
            )


def _idle(m: _Motion, b: int, sec: np.ndarray, whole: np.ndarray, fidget: float) -> None:
    """Motion unrelated to the class: sway, arm drift, and (scaled by ``fidget``) a random
    arm gesture, a nod, a weight shift and a torso twist at random moments of the whole
    recording (they may overlap the action)."""
    freq, phase = m.u(0.15, 0.4), m.u(0, 2 * np.pi)
    m.shift[b, :, :, 0] += 0.012 * np.sin(2 * np.pi * freq * sec + phase)
    m.shift[b, :, :, 2] += 0.008 * np.sin(2 * np.pi * freq * 0.7 * sec + 2 * phase)
    m.add("spine_mid", _Z, 1.5 * np.sin(2 * np.pi * freq * sec + phase), b)
    for side in ("left", "right"):
        drift = 3 * np.sin(2 * np.pi * m.u(0.2, 0.5) * sec + m.u(0, 6))
        m.arm(side, b, raise_fwd=drift, raise_side=4.0)

    def window() -> np.ndarray:
        centre, width = m.u(-0.1, 1.1), m.u(0.1, 0.4)
        happens = m.rng.random((m.n, 1)) < 0.7
        return fidget * happens * np.exp(-(((whole - centre) / width) ** 2))

    gesture, use_left = window(), m.rng.random((m.n, 1)) < 0.5
    for side, sel in (("left", use_left), ("right", ~use_left)):
        g = gesture * sel
        m.arm(side, b, raise_fwd=m.u(-15, 70) * g, raise_side=m.u(0, 45) * g, elbow=m.u(0, 110) * g)
    nod = window()
    m.add("neck", _X, m.u(-20, 20) * nod, b)
    m.add("head", _X, m.u(-20, 20) * nod, b)
    shift = window()
    m.shift[b, :, :, 0] += m.u(-0.08, 0.08) * shift
    m.add("spine_mid", _Z, m.u(-6, 6) * shift, b)
    m.add("spine_shoulder", _Y, m.u(-15, 15) * window(), b)


@dataclass(frozen=True)
class _Action:
    animate: Callable[[_Motion], None]
    seconds: tuple[float, float]  # duration of the action itself at speed 1
    persons: int = 1
    sided: bool = False  # the side is part of the label: never mirrored
    distance: tuple[float, float] = (0.0, 0.0)  # two-person classes: initial gap, metres


ACTIONS: dict[str, _Action] = {
    "wave_right_hand": _Action(_wave("right"), (1.6, 2.6), sided=True),
    "wave_left_hand": _Action(_wave("left"), (1.6, 2.6), sided=True),
    "hand_raise": _Action(_hand_raise, (1.4, 2.6)),
    "clap": _Action(_clap, (1.5, 2.5)),
    "punch": _Action(_punch, (1.0, 2.0)),
    "reach_forward": _Action(_reach, (1.4, 2.4)),
    "kick": _Action(_kick, (1.0, 1.8)),
    "squat": _Action(_squat, (1.5, 2.6)),
    "bow": _Action(_bow, (1.4, 2.4)),
    "pick_up": _Action(_pick_up, (1.6, 2.6)),
    "jump": _Action(_jump, (1.0, 1.8)),
    "turn_around": _Action(_turn, (1.4, 2.4)),
    "handshake": _Action(_handshake, (1.6, 2.6), persons=2, sided=True, distance=(0.85, 1.05)),
    "push": _Action(_push, (1.2, 2.0), persons=2, distance=(0.7, 0.9)),
    "hug": _Action(_hug, (2.0, 3.0), persons=2, distance=(1.8, 2.3)),
}
"""The action library, by class name. Similar pairs on purpose: punch / reach_forward,
squat / pick_up / bow / jump, wave / hand_raise, clap / hug (arms closing in front),
handshake / push."""

DEFAULT_CLASSES: tuple[str, ...] = tuple(ACTIONS)


# ----------------------------------------------------------------------------- config
class SynthConfig(BaseModel):
    """Parameters of the synthetic generator; invalid values raise :class:`ConfigError`.

    Ranges are ``(low, high)`` and drawn uniformly. Angles in degrees, lengths in metres,
    durations in frames unless named ``_s``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("custom", min_length=1, description="preset name, recorded as source")
    classes: tuple[str, ...] = Field(DEFAULT_CLASSES, min_length=2)
    subjects: int = Field(32, ge=2, le=999)
    subject_offset: int = Field(0, ge=0, le=9000, description="subject ids start after it")
    replications: int = Field(2, ge=1)
    camera_azimuths_deg: tuple[float, float, float] = (0.0, -45.0, 45.0)
    camera_pitch_deg: tuple[float, float, float] = (4.0, 4.0, 4.0)
    facing_yaws_deg: tuple[float, ...] = Field((-45.0, 45.0), min_length=1)
    view_jitter_deg: float = Field(15.0, ge=0, le=90)
    camera_distance_m: tuple[float, float] = (2.6, 3.6)
    camera_height_m: tuple[float, float] = (0.8, 1.2)
    stage_jitter_m: float = Field(0.25, ge=0, le=2)
    frames: tuple[int, int] = (40, 100)
    idle_frames: tuple[int, int] = (2, 16)
    fps: float = Field(30.0, gt=0, le=1000)
    height_scale: tuple[float, float] = (0.88, 1.12)
    proportion_spread: float = Field(0.04, ge=0, le=0.2)
    speed: tuple[float, float] = (0.75, 1.35)
    amplitude: tuple[float, float] = (0.75, 1.25)
    left_handed_prob: float = Field(0.15, ge=0, le=1)
    posture_deg: float = Field(8.0, ge=0, le=45, description="spread of subjects' postures")
    fidget: float = Field(1.3, ge=0, le=5, description="scale of motion unrelated to the class")
    noise_std_m: float = Field(0.012, ge=0, le=1, description="noise std of a hand joint")
    jitter_prob: float = Field(0.2, ge=0, le=1)
    jitter_std_m: float = Field(0.03, ge=0, le=1)
    drop_prob: float = Field(0.001, ge=0, le=0.5)
    occlusion_prob: float = Field(0.0, ge=0, le=1)
    occlusion_frames: tuple[int, int] = (8, 25)
    xsub_train_subjects: tuple[int, ...] | None = None
    seed: int = Field(0, ge=0)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(validation_line(exc, "SynthConfig")) from None

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        unknown = [c for c in self.classes if c not in ACTIONS]
        if unknown:
            raise ValueError(f"classes: unknown {unknown}; available: {', '.join(ACTIONS)}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes: duplicate names")
        for field in (
            "camera_distance_m",
            "camera_height_m",
            "frames",
            "idle_frames",
            "height_scale",
            "speed",
            "amplitude",
            "occlusion_frames",
        ):
            lo, hi = getattr(self, field)
            if not 0 <= lo <= hi:
                raise ValueError(f"{field}: need 0 <= low <= high, got ({lo}, {hi})")
        for field in ("camera_distance_m", "height_scale", "speed", "amplitude"):
            if getattr(self, field)[0] <= 0:
                raise ValueError(f"{field}: must be positive")
        if self.frames[0] < 2 * self.idle_frames[1] + 8:
            raise ValueError("frames: the shortest sequence must exceed 2 × idle_frames[1] + 8")
        if self.replications > len(self.facing_yaws_deg):
            raise ValueError(
                f"replications: at most {len(self.facing_yaws_deg)} "
                "(one facing_yaws_deg entry per replication)"
            )
        train = set(self.train_subjects())
        if not train or train >= set(self.subject_ids()):
            raise ValueError("xsub_train_subjects: the xsub split needs subjects on both sides")
        return self

    def subject_ids(self) -> list[int]:
        return list(range(self.subject_offset + 1, self.subject_offset + self.subjects + 1))

    def train_subjects(self) -> list[int]:
        """xsub training subjects: the configured list, else NTU-120's training performers."""
        pool = NTU120_XSUB_TRAIN if self.xsub_train_subjects is None else self.xsub_train_subjects
        return sorted(set(pool) & set(self.subject_ids()))

    def replace(self, **changes: Any) -> SynthConfig:
        """A validated copy with some fields changed."""
        return SynthConfig(**{**self.model_dump(), **changes})

    @property
    def num_samples(self) -> int:
        return len(self.classes) * self.subjects * self.replications * 3


SYNTH_PRESETS: dict[str, SynthConfig] = {
    # 2,880 samples (15 classes × 32 subjects × 2 replications × 3 cameras), 40–100 frames;
    # builds in a few seconds on two CPU cores
    "default": SynthConfig(name="default"),
    # transfer target: other subjects, unseen camera yaw/pitch, more noise and occlusion
    "noisy": SynthConfig(
        name="noisy",
        subjects=20,
        subject_offset=40,
        camera_azimuths_deg=(10.0, -60.0, 75.0),
        camera_pitch_deg=(20.0, 14.0, 28.0),
        facing_yaws_deg=(-20.0, 20.0),
        view_jitter_deg=20.0,
        camera_height_m=(0.6, 1.6),
        height_scale=(0.82, 1.18),
        proportion_spread=0.07,
        speed=(0.7, 1.4),
        amplitude=(0.7, 1.3),
        left_handed_prob=0.3,
        posture_deg=11.0,
        fidget=1.6,
        noise_std_m=0.03,
        jitter_prob=0.6,
        jitter_std_m=0.06,
        drop_prob=0.01,
        occlusion_prob=0.6,
        seed=1,
    ),
    # the quick profile's set: 810 samples (360 xsub-train from 4 subjects, 450 test from
    # 5 others); with two bodies of 25 joints an epoch costs about what one of NW-UCLA's
    # cross-view training split (1,020 clips, one body of 20 joints) does
    "small": SynthConfig(name="small", subjects=9, xsub_train_subjects=(1, 2, 4, 5)),
    # for tests: 135 short samples (15 fps keeps them short), built in a fraction of a second
    "tiny": SynthConfig(
        name="tiny", subjects=3, replications=1, frames=(20, 48), idle_frames=(2, 5), fps=15.0
    ),
}


def resolve_config(config: SynthConfig | str) -> SynthConfig:
    """A config, or the preset of that name."""
    if isinstance(config, SynthConfig):
        return config
    if config not in SYNTH_PRESETS:
        raise ConfigError(
            f"unknown synthetic preset {config!r}; available: {', '.join(SYNTH_PRESETS)}"
        )
    return SYNTH_PRESETS[config]


# ----------------------------------------------------------------------------- generation
@dataclass
class _Subjects:
    ids: np.ndarray
    scale: np.ndarray  # (S,)
    ratios: np.ndarray  # (S, groups)
    speed: np.ndarray
    amp: np.ndarray
    left_handed: np.ndarray
    posture: np.ndarray  # (S, V, 3) habitual joint angles, degrees


def _draw_subjects(rng: np.random.Generator, cfg: SynthConfig) -> _Subjects:
    s = cfg.subjects
    ratios = np.clip(rng.normal(1.0, cfg.proportion_spread, (s, len(_GROUPS))), 0.7, 1.3)
    return _Subjects(
        ids=np.asarray(cfg.subject_ids()),
        scale=rng.uniform(*cfg.height_scale, s),
        ratios=ratios,
        speed=rng.uniform(*cfg.speed, s),
        amp=rng.uniform(*cfg.amplitude, s),
        left_handed=rng.random(s) < cfg.left_handed_prob,
        posture=_draw_postures(rng, s, cfg.posture_deg),
    )


def _draw_postures(rng: np.random.Generator, s: int, spread: float) -> np.ndarray:
    """Per-subject resting angles: lean, head carriage, arm hang and elbow bend, stance."""
    post = np.zeros((s, _V, 3))
    for joint in ("spine_mid", "spine_shoulder", "neck", "head"):
        post[:, _J[joint], _X] = rng.normal(0.0, 0.5 * spread, s)
    for side, out in (("left", 1.0), ("right", -1.0)):
        post[:, _J[f"{side}_elbow"], _X] = rng.normal(0.0, spread, s)
        post[:, _J[f"{side}_elbow"], _Z] = out * np.abs(rng.normal(0.0, spread, s))
        post[:, _J[f"{side}_wrist"], _X] = -rng.uniform(0.0, 4 * spread, s)
        post[:, _J[f"{side}_knee"], _Z] = out * rng.uniform(0.0, spread, s)
    return post


def _performances(cfg: SynthConfig) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(label, subject positions, replications) chunks, class by class."""
    subj, rep = np.meshgrid(
        np.arange(cfg.subjects), np.arange(1, cfg.replications + 1), indexing="ij"
    )
    subj, rep = subj.ravel(), rep.ravel()
    for label in range(len(cfg.classes)):
        for start in range(0, len(subj), _CHUNK):
            yield label, subj[start : start + _CHUNK], rep[start : start + _CHUNK]


def _timing(rng: np.random.Generator, cfg: SynthConfig, action: _Action, speed: np.ndarray):
    """Per performance: idle frames before, action frames, total length."""
    n = len(speed)
    lo, hi = cfg.frames
    pre = rng.integers(cfg.idle_frames[0], cfg.idle_frames[1] + 1, n)
    post = rng.integers(cfg.idle_frames[0], cfg.idle_frames[1] + 1, n)
    act = np.rint(rng.uniform(*action.seconds, n) * cfg.fps / speed).astype(np.int64)
    act = np.clip(act, 8, hi - pre - post)
    post = post + np.clip(lo - (pre + act + post), 0, None)
    return pre, act, pre + act + post


def _animate(
    rng: np.random.Generator,
    cfg: SynthConfig,
    action: _Action,
    subjects: _Subjects,
    subj: np.ndarray,
    rep: np.ndarray,
):
    """World-space joints (B, T, M=2, V, 3) and lengths (B,) of a chunk of performances."""
    n = len(subj)
    speed = subjects.speed[subj] * rng.uniform(0.9, 1.1, n)
    amp = subjects.amp[subj] * rng.uniform(0.9, 1.1, n)
    pre, act, length = _timing(rng, cfg, action, speed)
    t = np.arange(length.max())[None, :].astype(float)
    s = np.clip((t - pre[:, None]) / act[:, None], 0.0, 1.0)
    # uneven pace within the action (monotonic warp of the phase, ends fixed)
    s = s + rng.uniform(-0.7, 0.7, (n, 1)) * np.sin(2 * np.pi * s) / (2 * np.pi)
    distance = rng.uniform(*action.distance, n)
    m = _Motion(rng, s, amp, action.persons, distance)
    action.animate(m)
    count = len(subjects.ids)
    # the partner in two-person classes is another subject
    who = [subj, (subj + rng.integers(1, count, n)) % count][: action.persons]
    sec, whole = t / cfg.fps, t / length[:, None]
    for b in range(action.persons):
        m.angles[b] += subjects.posture[who[b]][:, None]
        _idle(m, b, sec, whole, cfg.fidget)

    bodies = np.zeros((n, m.t, 2, _V, 3))
    for b in range(action.persons):
        offsets = _REST[None] * subjects.scale[who[b], None, None]
        offsets = offsets * subjects.ratios[who[b]][:, _BONE_GROUP][..., None]
        pos = _forward_kinematics(offsets, m.angles[b])
        mirror = subjects.left_handed[who[b]] & (not action.sided)
        pos[mirror] = pos[mirror][:, :, NTU25.flip_permutation] * np.array([-1.0, 1.0, 1.0])
        pos = pos @ _yaw_matrix(m.yaw[b]).transpose(0, 1, 3, 2)
        ground = -pos[:, :, _FEET, 1].min(axis=2) + 0.04
        pos += (m.shift[b] + np.stack([0 * ground, ground + m.lift[b], 0 * ground], -1))[:, :, None]
        if action.persons == 2:  # face each other, the pair's midpoint at the origin
            half = (distance / 2)[:, None, None]
            if b == 0:
                pos[..., 2] -= half
            else:
                pos = (
                    pos * np.array([-1.0, 1.0, -1.0]) + np.array([0.0, 0.0, 1.0]) * half[..., None]
                )
        bodies[:, :, b] = pos
    # the scene faces the replication's direction; pairs stand side-on to it, as in NTU
    facing = np.asarray(cfg.facing_yaws_deg)[rep - 1] + rng.uniform(-1, 1, n) * cfg.view_jitter_deg
    facing = facing + (90.0 if action.persons == 2 else 0.0)
    stage = rng.uniform(-1, 1, (n, 3)) * cfg.stage_jitter_m * np.array([1.0, 0.0, 1.0])
    world = _apply(_yaw_matrix(facing), bodies) + stage[:, None, None, None]
    return world, length


def _apply(rot: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Rotate points (B, ..., 3) by one matrix (B, 3, 3) per batch element."""
    flat = points.reshape(len(points), -1, 3) @ rot.transpose(0, 2, 1)
    return flat.reshape(points.shape)


def _film(rng: np.random.Generator, cfg: SynthConfig, world: np.ndarray, camera: int):
    """World → Kinect camera space for camera ``camera`` (1-based); (B, T, M, V, 3)."""
    n = len(world)
    azim = np.deg2rad(cfg.camera_azimuths_deg[camera - 1] + rng.uniform(-2, 2, n))
    pitch = np.deg2rad(cfg.camera_pitch_deg[camera - 1] + rng.uniform(-2, 2, n))
    dist, height = rng.uniform(*cfg.camera_distance_m, n), rng.uniform(*cfg.camera_height_m, n)
    toward = -np.stack([np.sin(azim), 0 * azim, np.cos(azim)], -1)  # horizontal view direction
    cam_pos = -toward * dist[:, None] + np.stack([0 * azim, height, 0 * azim], -1)
    up = np.array([0.0, 1.0, 0.0])
    z_axis = np.cos(pitch)[:, None] * toward - np.sin(pitch)[:, None] * up
    y_axis = np.sin(pitch)[:, None] * toward + np.cos(pitch)[:, None] * up
    x_axis = np.cross(y_axis, z_axis)
    rot = np.stack([x_axis, y_axis, z_axis], axis=1)  # rows are the camera axes
    return _apply(rot, world - cam_pos[:, None, None, None])


def _sensor(
    rng: np.random.Generator, cfg: SynthConfig, x: np.ndarray, length: np.ndarray, persons: int
) -> np.ndarray:
    """Noise, jittery stretches, dropped joints and occlusions, as float32 (B, T, 2, V, 3);
    bodies not in the scene are zero."""
    n, t = x.shape[:2]
    seen = x[:, :, :persons].astype(np.float32)
    seen += rng.standard_normal(seen.shape, dtype=np.float32) * (cfg.noise_std_m * _NOISE[:, None])
    frames = np.arange(t)[None, :]
    keep = rng.random(seen.shape[:-1], dtype=np.float32) >= cfg.drop_prob  # (B, T, M, V)
    for flag, sizes, amount in (
        (cfg.jitter_prob, (5, 20), cfg.jitter_std_m),
        (cfg.occlusion_prob, cfg.occlusion_frames, None),
    ):
        hit = rng.random(n) < flag
        width = rng.integers(sizes[0], sizes[1] + 1, n)
        start = (rng.random(n) * np.maximum(length - width, 1)).astype(np.int64)
        stretch = hit[:, None] & (frames >= start[:, None]) & (frames < (start + width)[:, None])
        body = rng.integers(0, persons, n)
        if amount is not None:  # one joint of one body shakes for a while
            joint = rng.choice(_V, n, p=_NOISE / _NOISE.sum())  # mostly extremities
            bump = rng.normal(0.0, amount, (n, t, 3)) * stretch[..., None]
            seen[np.arange(n), :, body, joint] += bump.astype(np.float32)
        else:  # a limb disappears for a while
            limb = rng.integers(0, len(_LIMBS), n)
            for i in np.flatnonzero(hit):
                rows = np.flatnonzero(stretch[i])
                keep[i, rows[None, :], body[i], _LIMBS[limb[i]][:, None]] = False
    out = np.zeros(x.shape, dtype=np.float32)
    out[:, :, :persons] = np.where(keep[..., None], seen, 0.0)
    return out


def generate(
    out: str | Path,
    config: SynthConfig | str = "default",
    *,
    seed: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    layout: str | Path | SkeletonLayout | None = None,
) -> Path:
    """Write a synthetic NTU-25 action dataset to ``out`` (canonical format) and return it.

    ``config`` is a :class:`SynthConfig` or a preset name (``default``, ``noisy``,
    ``tiny``); ``seed`` overrides the config's. The output is byte-identical for the same
    config and seed.

    ``layout`` (a name or layout file) writes the same performances on another skeleton:
    each joint is read from its NTU-25 counterpart (:func:`~asma_bench.data.layouts.
    synthetic_sources`) and a 2-D layout keeps the camera's x and y (an orthographic
    projection). Same seed, same motions, whatever the layout.
    """
    cfg = resolve_config(config)
    seed = cfg.seed if seed is None else int(seed)
    if seed < 0:
        raise ConfigError(f"synthetic data seed must be >= 0, got {seed}")
    target = NTU25 if layout is None else get_layout(layout)
    sources = synthetic_sources(target)
    rng = np.random.default_rng(seed)
    subjects = _draw_subjects(rng, cfg)
    train_subjects = cfg.train_subjects()

    def splits(meta: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
        masks = {
            "xsub": meta["subject"].isin(train_subjects).to_numpy(),
            "xview": meta["camera"].isin([2, 3]).to_numpy(),
        }
        return {name: by_mask(masks[name]) for name in SPLITS}

    extra = {"synthetic": {"config": cfg.model_dump(mode="json"), "seed": seed}}
    if target is not NTU25:
        extra["synthetic"]["retargeted_from"] = "ntu25"
    chunks = _performances(cfg)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(
            chunks,
            desc=f"synthetic:{cfg.name}",
            unit="chunk",
            total=len(cfg.classes) * -(-cfg.subjects * cfg.replications // _CHUNK),
        )
    with DatasetWriter(
        out,
        layout=target,
        source=f"synthetic:{cfg.name}",
        class_names=cfg.classes,
        channels=target.dims,
        bodies=2,
        overwrite=overwrite,
        extra_info=extra,
    ) as writer:
        for label, subj, rep in chunks:
            action = ACTIONS[cfg.classes[label]]
            world, length = _animate(rng, cfg, action, subjects, subj, rep)
            for camera in (1, 2, 3):
                x = _sensor(rng, cfg, _film(rng, cfg, world, camera), length, action.persons)
                for i in range(len(subj)):
                    sid, r = int(subjects.ids[subj[i]]), int(rep[i])
                    meta = SampleMeta(
                        name=f"S001C{camera:03d}P{sid:03d}R{r:03d}A{label + 1:03d}",
                        label=label,
                        subject=sid,
                        camera=camera,
                        setup=1,
                        replication=r,
                        length=int(length[i]),
                        bodies=action.persons,
                    )
                    clip = x[i, : length[i]].transpose(3, 0, 2, 1)  # (C, T, V, M)
                    if target is not NTU25:
                        clip = clip[: target.dims][:, :, sources]
                    writer.add(clip, meta)
        writer.set_splits(splits)
    log.info(
        "synthetic:%s seed %d: %d samples, %d classes",
        cfg.name,
        seed,
        len(writer),
        len(cfg.classes),
    )
    return Path(out)
