"""NTU RGB+D raw ``.skeleton`` reader: real fixtures, CRLF, bad input, multi-body denoising."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from asma_bench.data.readers import convert
from asma_bench.data.readers.ntu_raw import Denoising, read_sample, read_skeleton
from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import ConfigError, DataFormatError

FIXTURE_FRAMES = [103, 158, 104, 99, 54]


# --------------------------------------------------------------------------- helpers
def plain_parse(path: Path) -> list[dict[str, list[list[float]]]]:
    """Independent straightforward parse: per frame, {body ID string: 25 × [x, y, z]}."""
    lines = path.read_text().splitlines()
    i, frames = 1, []
    for _ in range(int(lines[0])):
        count = int(lines[i])
        i += 1
        bodies = {}
        for _ in range(count):
            body_id = lines[i].split()[0]
            assert int(lines[i + 1]) == 25
            bodies[body_id] = [[float(v) for v in lines[j].split()[:3]]
                               for j in range(i + 2, i + 27)]  # fmt: skip
            i += 27
        frames.append(bodies)
    return frames


def info_line(body_id: int) -> str:
    return f"{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2"


def joint_line(xyz) -> str:
    x, y, z = (float(v) for v in xyz)
    return f"{x!r} {y!r} {z!r} 277.4 191.8 1036.2 519.1 -0.2 0.05 0.96 -0.12 2"


def skeleton_text(num_frames: int, tracks: dict[int, tuple[range, np.ndarray]]) -> str:
    """A .skeleton file; ``tracks`` maps body ID → (frames present, joints (len, 25, 3))."""
    out = [str(num_frames)]
    for f in range(num_frames):
        present = [(bid, joints[list(frames).index(f)])
                   for bid, (frames, joints) in tracks.items() if f in frames]  # fmt: skip
        out.append(str(len(present)))
        for bid, joints in present:
            out += [info_line(bid), "25"] + [joint_line(j) for j in joints]
    return "\n".join(out) + "\n"


def body(rng: np.random.Generator, n: int, motion: float, x_width: float = 0.3) -> np.ndarray:
    """A plausible upright body (x-spread < 0.8 × y-spread) moving with amplitude ``motion``."""
    base = np.stack([np.linspace(-x_width / 2, x_width / 2, 25), np.linspace(-0.8, 0.8, 25),
                     np.full(25, 3.0)], axis=1)  # fmt: skip
    drift = motion * rng.standard_normal((n, 1, 3))
    return np.round(base + drift + 0.01 * rng.standard_normal((n, 25, 3)), 6)


def assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def bad_copy(tmp_path: Path, ntu_fixture_dir: Path, edit) -> tuple[Path, str]:
    """Good fixtures plus one edited copy of A005 sorted last (so it fails mid-stream)."""
    src = tmp_path / "src"
    shutil.copytree(ntu_fixture_dir, src)
    lines = (ntu_fixture_dir / "S001C001P001R001A005.skeleton").read_text().split("\n")
    name = "S001C001P001R001A009.skeleton"
    (src / name).write_text("\n".join(edit(lines)))
    return src, name


# --------------------------------------------------------------------------- real fixtures
def test_fixtures_convert_exactly(ntu_fixture_dir, tmp_path):
    out = convert(ntu_fixture_dir, tmp_path / "ntu")
    ds = SkeletonDataset(out)
    files = sorted(ntu_fixture_dir.glob("*.skeleton"))
    assert ds.info["source"] == "ntu-raw" and ds.layout.name == "ntu25"
    assert ds.meta["name"].tolist() == [f.name[: -len(".skeleton")] for f in files]
    assert ds.lengths.tolist() == FIXTURE_FRAMES
    assert ds.labels.tolist() == [0, 1, 2, 3, 4]
    for col in ("setup", "camera", "subject", "replication"):
        assert ds.meta[col].tolist() == [1] * 5
    assert ds.meta["bodies"].tolist() == [1] * 5
    for i, path in enumerate(files):
        frames = plain_parse(path)
        x = ds.sample(i)
        assert x.shape == (3, len(frames), 25, 2)
        for t in (0, len(frames) - 1):
            (joints,) = frames[t].values()
            assert np.array_equal(x[:, t, :, 0].T, np.float32(joints))
        every = np.float32([list(f.values())[0] for f in frames])  # (T, 25, 3)
        assert np.array_equal(x[..., 0].transpose(1, 2, 0), every)
        assert not x[..., 1].any()
    # performer 1 trains in cross-subject; camera 1 is cross-view test
    assert ds.split("xsub", "train").tolist() == [0, 1, 2, 3, 4]
    assert ds.split("xview", "test").tolist() == [0, 1, 2, 3, 4]
    assert ds.split_names == ["xsub", "xview"]
    assert not list(tmp_path.glob(".ntu.tmp-*"))


def test_crlf_parses_identically(ntu_fixture_dir, tmp_path):
    src = ntu_fixture_dir / "S001C001P001R001A003.skeleton"
    crlf = tmp_path / src.name
    crlf.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    assert b"\r\n" in crlf.read_bytes()
    x_lf, meta_lf = read_sample(src)
    x_crlf, meta_crlf = read_sample(crlf)
    assert np.array_equal(x_lf, x_crlf) and meta_lf == meta_crlf
    lf_ds = SkeletonDataset(convert(src, tmp_path / "lf", "ntu-raw"))
    crlf_ds = SkeletonDataset(convert(crlf, tmp_path / "crlf", "ntu-raw"))
    assert np.array_equal(lf_ds.data, crlf_ds.data)


def test_missing_list_is_honoured(ntu_fixture_dir, tmp_path):
    missing = tmp_path / "missing.txt"
    missing.write_text("\nS001C001P001R001A002\r\nS001C001P001R001A004.skeleton\n")
    ds = SkeletonDataset(convert(ntu_fixture_dir, tmp_path / "ntu", missing=missing))
    assert ds.meta["name"].tolist() == [
        "S001C001P001R001A001", "S001C001P001R001A003", "S001C001P001R001A005"]  # fmt: skip
    assert ds.lengths.tolist() == [103, 104, 54]


# --------------------------------------------------------------------------- bad input
def set_field(lines: list[str], index: int, field: int, value: str) -> list[str]:
    fields = lines[index].split()
    fields[field] = value
    return lines[:index] + [" ".join(fields)] + lines[index + 1 :]


# A005 (54 frames, one body): line 1 frame count; frame k takes lines 28k-26 .. 28k+1
# (body count, info line, joint count, 25 joint lines)
BAD_CASES = {
    "truncated": (lambda L: L[:100], r":101: unexpected end of file \(truncated\?\): frame 4, "
                  r"body 1 has 12 of 25 joint lines"),
    "joint_count": (lambda L: L[:3] + ["24"] + L[4:], r":4: joint count is 24, expected 25"),
    "field_count": (lambda L: L[:10] + [L[10] + " 7"] + L[11:],
                    r":11: expected 12 numbers, found 13 fields"),
    "non_numeric": (lambda L: set_field(L, 10, 1, "abc"), r":11: field 2 is not a number: 'abc'"),
    "nan": (lambda L: set_field(L, 5, 0, "nan"), r":6: field 1 is 'nan', not a finite number"),
    "inf": (lambda L: set_field(L, 40, 2, "-inf"), r":41: field 3 is '-inf', not a finite number"),
    "body_count": (lambda L: L[:1] + ["x"] + L[2:], r":2: the body count of frame 1 is 'x'"),
    "info_fields": (lambda L: L[:2] + ["72057594037931101 0 1"] + L[3:],
                    r":3: body info line of frame 1, body 1 has 3 fields, expected 10"),
    "frame_count": (lambda L: ["55"] + L[1:], r":1514: unexpected end of file \(truncated\?\) "
                    r"where the body count of frame 55 should be"),
    "extra": (lambda L: ["53"] + L[1:], r":1486: unexpected content after the last of 53"),
    "empty": (lambda L: ["", ""], r"A009.skeleton: empty file"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_skeleton_names_file_and_line(case, ntu_fixture_dir, tmp_path):
    edit, message = BAD_CASES[case]
    src, name = bad_copy(tmp_path, ntu_fixture_dir, edit)
    out = tmp_path / "out"
    with pytest.raises(DataFormatError) as err:
        convert(src, out)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(str(src / name))
    assert re.search(message, text), text
    assert_nothing_left(out)


def test_no_body_in_any_frame_points_to_missing_list(tmp_path):
    path = tmp_path / "S001C002P005R002A008.skeleton"
    path.write_text("3\n0\n0\n0\n")
    with pytest.raises(DataFormatError, match="no body in any frame .*missing-samples"):
        convert(path, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_bad_file_name(tmp_path):
    path = tmp_path / "sample.skeleton"
    path.write_text("1\n0\n")
    with pytest.raises(DataFormatError, match=r"sample\.skeleton: file name does not follow"):
        convert(path, tmp_path / "out")


# --------------------------------------------------------------------------- multi-body
def test_huge_body_ids_stay_distinct(tmp_path):
    rng = np.random.default_rng(0)
    a, b = 72057594037931101, 72057594037931102  # the same number as float64
    assert float(a) == float(b)
    path = tmp_path / "S001C001P001R001A050.skeleton"
    path.write_text(skeleton_text(20, {a: (range(20), body(rng, 20, 0.1)),
                                       b: (range(5, 20), body(rng, 15, 0.1))}))  # fmt: skip
    parsed = read_skeleton(path)
    assert [t.body_id for t in parsed.tracks] == [a, b]
    assert [len(t) for t in parsed.tracks] == [20, 15]
    assert parsed.tracks[1].frames.tolist() == list(range(5, 20))


def activity(joints: np.ndarray) -> float:
    return float(sum(np.var(joints[:, j, c]) for j in range(25) for c in range(3)))


def test_three_bodies_noise_body_dropped_and_ranked_by_activity(tmp_path):
    rng = np.random.default_rng(1)
    calm, lively = body(rng, 40, 0.02), body(rng, 40, 0.2)
    noise = body(rng, 11, 1.0)  # most active, but present in only 11 frames
    assert activity(noise) > activity(lively) > activity(calm)
    path = tmp_path / "S002C003P004R001A051.skeleton"
    tracks = {101: (range(40), calm), 102: (range(5, 16), noise), 103: (range(40), lively)}
    path.write_text(skeleton_text(42, tracks))  # frames 40 and 41 have no body
    x, meta = read_sample(path)
    assert (meta.setup, meta.camera, meta.subject, meta.replication, meta.label) == (2, 3, 4, 1, 50)
    assert x.shape == (3, 42, 25, 2)
    assert np.array_equal(x[..., 0][:, :40].transpose(1, 2, 0), np.float32(lively))
    assert np.array_equal(x[..., 1][:, :40].transpose(1, 2, 0), np.float32(calm))
    assert not x[:, 40:].any()
    # with a 10-frame noise threshold the 11-frame body is kept and, most active, leads
    x10, _ = read_sample(path, Denoising(noise_length=10))
    assert np.array_equal(x10[..., 0][:, 5:16].transpose(1, 2, 0), np.float32(noise))


def test_spread_noise_body_dropped(tmp_path):
    rng = np.random.default_rng(2)
    a, b = body(rng, 30, 0.02), body(rng, 30, 0.05)
    flat = body(rng, 30, 0.5, x_width=2.0)  # x-spread 2 > 0.8 × y-spread 1.6: every frame
    path = tmp_path / "S001C001P001R001A052.skeleton"
    path.write_text(skeleton_text(30, {1: (range(30), flat), 2: (range(30), a),
                                       3: (range(30), b)}))  # fmt: skip
    x, _ = read_sample(path)
    assert np.array_equal(x[..., 0].transpose(1, 2, 0), np.float32(b))
    assert np.array_equal(x[..., 1].transpose(1, 2, 0), np.float32(a))
    # below the noisy fraction threshold the wide body stays and leads
    x_keep, _ = read_sample(path, Denoising(spread_ratio=2.0))
    assert np.array_equal(x_keep[..., 0].transpose(1, 2, 0), np.float32(flat))


def test_disjoint_tracks_share_a_slot(tmp_path):
    rng = np.random.default_rng(3)
    lead, early, late = body(rng, 40, 0.3), body(rng, 20, 0.1), body(rng, 15, 0.01)
    path = tmp_path / "S001C001P001R001A053.skeleton"
    path.write_text(skeleton_text(40, {1: (range(40), lead), 2: (range(20), early),
                                       3: (range(25, 40), late)}))  # fmt: skip
    x, _ = read_sample(path)
    second = x[..., 1].transpose(1, 2, 0)
    assert np.array_equal(second[:20], np.float32(early))
    assert not second[20:25].any()
    assert np.array_equal(second[25:], np.float32(late))
    x_one, _ = read_sample(path, Denoising(merge_disjoint=False))
    assert not x_one[..., 1][:, 20:].any()
    x_single, _ = read_sample(path, Denoising(max_bodies=1))
    assert x_single.shape[-1] == 1
    ds = SkeletonDataset(convert(path, tmp_path / "one", denoising=Denoising(max_bodies=1)))
    assert ds.data.shape[-1] == 1


def test_denoising_validates_arguments():
    for bad in (dict(max_bodies=0), dict(noisy_fraction=1.5), dict(activity="energy"),
                dict(spread_ratio=0.0), dict(motion_range=(2.0, 1.0))):  # fmt: skip
        with pytest.raises(ConfigError):
            Denoising(**bad)


def test_hostile_files_are_one_line_within_seconds(tmp_path):
    """A FIFO named .skeleton would block a reader forever; a 2 GB sparse file read whole
    would take 10 GB; a 20 MB line of zero bytes must not become a 20 MB message."""
    import os

    from asma_bench.data.readers.ntu_raw import read_skeleton

    fifo = tmp_path / "S001C001P001R001A001.skeleton"
    os.mkfifo(fifo)
    with pytest.raises(DataFormatError, match="not a regular file"):
        read_skeleton(fifo)
    sparse = tmp_path / "S001C001P001R001A002.skeleton"
    with open(sparse, "wb") as fh:
        fh.truncate(2 * 2**30)
    with pytest.raises(DataFormatError, match=r"2048 MiB is too large"):
        read_skeleton(sparse)
    zeros = tmp_path / "S001C001P001R001A003.skeleton"
    zeros.write_bytes(b"\0" * (20 * 2**20))
    with pytest.raises(DataFormatError) as err:
        read_skeleton(zeros)
    assert len(str(err.value)) <= 400 and "\0" not in str(err.value)
