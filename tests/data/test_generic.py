"""Bring your own skeletons: YAML layouts, the generic format, and a grid run on them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from asma_bench.cli import main
from asma_bench.data.layouts import get_layout, layout_from_dict
from asma_bench.data.readers import convert, detect_format
from asma_bench.data.store import SkeletonDataset
from asma_bench.data.transforms import Augment, rotate, shear
from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.strategies import create_masking

# a 17-joint COCO-like body, written with names and rooted at the left hip on purpose
# (not the built-in coco17 tree): the degree masks must follow these edges
JOINTS = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_sho", "r_sho", "l_elb", "r_elb",
          "l_wri", "r_wri", "l_hip", "r_hip", "l_knee", "r_knee", "l_ank", "r_ank"]  # fmt: skip
EDGES = [
    ["l_eye", "nose"], ["r_eye", "nose"], ["l_ear", "l_eye"], ["r_ear", "r_eye"],
    ["nose", "l_sho"], ["r_sho", "l_sho"], ["l_elb", "l_sho"], ["l_wri", "l_elb"],
    ["r_elb", "r_sho"], ["r_wri", "r_elb"], ["l_sho", "l_hip"], ["r_hip", "l_hip"],
    ["l_knee", "l_hip"], ["l_ank", "l_knee"], ["r_knee", "r_hip"], ["r_ank", "r_knee"],
]  # fmt: skip
FLIPS = [
    ["l_eye", "r_eye"], ["l_ear", "r_ear"], ["l_sho", "r_sho"], ["l_elb", "r_elb"],
    ["l_wri", "r_wri"], ["l_hip", "r_hip"], ["l_knee", "r_knee"], ["l_ank", "r_ank"],
]  # fmt: skip
# NTU-25 joint (0-based) each of the 17 joints is read from when we build clips
FROM_NTU = [3, 3, 3, 2, 2, 4, 8, 5, 9, 6, 10, 12, 16, 13, 17, 14, 18]


def write_layout(path):
    path.write_text(
        "name: rig17\ndims: 2\n"
        f"joints: {json.dumps(JOINTS)}\nedges: {json.dumps(EDGES)}\n"
        f"center: l_hip\nflip_pairs: {json.dumps(FLIPS)}\n"
    )
    return path


def test_a_yaml_layout_derives_degrees_from_its_edges(tmp_path):
    layout = get_layout(str(write_layout(tmp_path / "rig17.yaml")))
    assert layout.name == "rig17" and layout.num_joints == 17 and layout.dims == 2
    deg = dict(zip(JOINTS, layout.degrees.tolist(), strict=True))
    # l_sho: nose, r_sho, l_elb, l_hip; l_hip: l_sho, r_hip, l_knee; ends have one
    assert deg["l_sho"] == 4 and deg["l_hip"] == 3 and deg["nose"] == 3
    assert deg["l_ear"] == 1 and deg["r_ank"] == 1 and deg["r_sho"] == 2
    assert layout.center == JOINTS.index("l_hip")
    assert layout.flip_permutation[JOINTS.index("l_wri")] == JOINTS.index("r_wri")
    # the stored definition rebuilds the same graph
    again = layout_from_dict(layout.to_dict(), "copy")
    assert again.edges == layout.edges and again.flip_pairs == layout.flip_pairs


@pytest.mark.parametrize(
    "edit, words",
    [
        ({"edges": [["l_eye", "chin"]]}, "'chin' is not one of the 17 joints"),
        ({"dims": 4}, "'dims' must be 2 or 3"),
        ({"colour": "red"}, "unknown layout field 'colour'"),
        ({"edges": EDGES[:-1]}, "'r_ank' is not connected"),
        ({"edges": [*EDGES, ["r_ank", "l_hip"]]}, "'r_ank' is the child of two edges"),
    ],
)
def test_bad_layout_files_get_one_line_naming_the_file(tmp_path, edit, words):
    data = {"name": "x", "dims": 2, "joints": JOINTS, "edges": EDGES, "center": "l_hip", **edit}
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=str(path)) as err:
        get_layout(str(path))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_builtin_coco17_and_kinect_v2():
    coco = get_layout("coco17")
    assert coco.dims == 2 and coco.num_joints == 17 and coco.joint_names[0] == "nose"
    assert not np.isinf(coco.hop_distance).any() and len(coco.edges) == 16
    assert get_layout("kinect_v2") is get_layout("ntu25")


def test_2d_augmentation_moves_coordinates_only(generator):
    layout = get_layout("coco17")
    x = torch.randn(4, 3, 8, 17, 1, dtype=torch.float64)
    x[:, 2] = torch.rand(4, 8, 17, 1, dtype=torch.float64)  # confidence
    y = rotate(x, 30, dims=2, generator=generator)
    assert torch.equal(y[:, 2], x[:, 2])  # the confidence is untouched
    # an in-plane rotation keeps every joint's distance to the origin
    torch.testing.assert_close(y[:, :2].norm(dim=1), x[:, :2].norm(dim=1))
    z = shear(x, 0.5, dims=2, generator=generator)
    assert torch.equal(z[:, 2], x[:, 2]) and not torch.equal(z[:, :2], x[:, :2])
    out = Augment(layout)(x.float(), generator=generator)
    assert out.shape == (4, 3, 8, 17, 1) and (out[:, 2] >= 0).all()


def _clips(tmp_path, capsys):
    """Tiny synthetic NTU clips re-read as a 17-joint 2-D skeleton with a confidence."""
    assert main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path / "syn")]) == 0
    capsys.readouterr()
    ds = SkeletonDataset(tmp_path / "syn")
    x = np.asarray(ds.data)[:, :, :, FROM_NTU][:, :2]  # (N, 2, T, 17, M): x, y
    conf = (np.abs(x).sum(axis=1, keepdims=True) > 0).astype(np.float32) * 0.9
    x = np.concatenate([x, conf], axis=1)
    train = set(ds.split("xsub", "train").tolist())
    return x, ds.labels, ds.meta, train


def test_generic_folder_converts_and_runs_the_smoke_grid(tmp_path, capsys):
    x, labels, meta, train = _clips(tmp_path, capsys)
    src = tmp_path / "mine"
    (src / "clips").mkdir(parents=True)
    rows = ["file,label,subject,split"]
    for i in range(len(x)):
        length = int(meta["length"].iloc[i])
        # pyskl's per-sample order (M, T, V, C)
        np.save(src / "clips" / f"c{i:03d}.npy", x[i, :, :length].transpose(3, 1, 2, 0))
        split = "train" if i in train else "test"
        rows.append(f"clips/c{i:03d}.npy,{labels[i]},{meta['subject'].iloc[i]},{split}")
    (src / "labels.csv").write_text("\n".join(rows) + "\n")
    layout_file = write_layout(tmp_path / "rig17.yaml")
    assert detect_format(src) == "generic"
    out = tmp_path / "canon"
    assert main(["data", "convert", str(src), str(out), "--layout", str(layout_file)]) == 0
    ds = SkeletonDataset(out)
    assert ds.layout.name == "rig17" and ds.layout.dims == 2 and ds.data.shape[1] == 3
    assert len(ds) == len(x) and ds.split_names == ["default"]
    assert json.loads((out / "info.json").read_text())["layout"]["center"] == "l_hip"
    layout_file.unlink()  # the dataset carries its layout
    assert SkeletonDataset(out).layout.degrees.tolist() == get_layout(ds.layout).degrees.tolist()

    # the degree masks follow the YAML's edges: HDSM hides high-degree joints most often,
    # LDSM the ends of the limbs
    clips = torch.tensor(np.asarray(ds.data[:1, :, :4])).expand(3000, -1, -1, -1, -1)
    share = {}
    for name in ("hdsm", "ldsm"):
        strategy = create_masking(name, layout=ds.layout, n=4)
        hidden = strategy(clips, generator=torch.Generator().manual_seed(0))  # (N, T, V)
        share[name] = hidden[:, 0].float().mean(dim=0)
    hub, end = JOINTS.index("l_sho"), JOINTS.index("l_ear")
    assert share["hdsm"][hub] > 2 * share["hdsm"][end]
    assert share["ldsm"][end] > share["ldsm"][hub]

    runs = tmp_path / "runs"
    code = main(["run", "--grid", "masking_pairs", "--profile", "smoke", "--seeds", "1",
                 "--data", str(out), "--set", "data.split=default", "--out", str(runs),
                 "--no-progress"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert "hdsm_lmtm" in text and "random_init" in text


def test_generic_stacked_array_and_bad_rows(tmp_path):
    src = tmp_path / "stacked"
    src.mkdir()
    data = np.random.default_rng(0).normal(size=(4, 6, 17, 2)).astype(np.float32)
    np.save(src / "data.npy", data)
    (src / "labels.csv").write_text("label,split_xsub\n0,train\n1,train\n0,test\n1,test\n")
    (src / "classes.txt").write_text("wave\nkick\n")
    out = convert(src, tmp_path / "o", "generic", layout="coco17")
    ds = SkeletonDataset(out)
    assert ds.split_names == ["xsub"] and ds.data.shape == (4, 2, 6, 17, 1)
    assert ds.info["class_names"] == ["wave", "kick"] and ds.layout.name == "coco17"
    np.testing.assert_allclose(ds.data[1, :, :, :, 0], data[1].transpose(2, 0, 1))

    (src / "labels.csv").write_text("label,split\n0,train\nx,train\n0,test\n1,test\n")
    with pytest.raises(DataFormatError, match=r"labels.csv:3: label 'x' is not an integer"):
        convert(src, tmp_path / "o2", "generic", layout="coco17")
    (src / "labels.csv").write_text("label\n0\n1\n0\n1\n")
    with pytest.raises(DataFormatError, match="17 joints, layout 'kinect20' has 20"):
        convert(src, tmp_path / "o3", "generic", layout="kinect20")
    with pytest.raises(ConfigError, match="needs --layout"):
        convert(src, tmp_path / "o4", "generic")
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


@pytest.mark.parametrize("name", ["stgcn", "gin", "dgcnn", "student"])
def test_every_backbone_takes_a_2d_layout_with_confidence(name, tmp_path):
    from asma_bench.backbones import create_backbone

    layout = get_layout(str(write_layout(tmp_path / "rig17.yaml")))
    model = create_backbone(name, layout=layout, in_channels=3).eval()
    x = torch.randn(2, 3, 8, 17, 1)
    with torch.no_grad():
        out = model(x)
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    # features depend on the clip: the graph is wired, not a constant
    assert not torch.allclose(out[0], out[1])


def test_synthetic_clips_on_another_layout_are_the_same_motions(tmp_path, capsys):
    from asma_bench.data.layouts import synthetic_sources

    assert main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path / "ntu")]) == 0
    args = ["data", "synth", "--preset", "tiny", "--layout", "coco17"]
    assert main([*args, "--out", str(tmp_path / "coco")]) == 0
    ntu, coco = SkeletonDataset(tmp_path / "ntu"), SkeletonDataset(tmp_path / "coco")
    assert coco.layout.name == "coco17" and coco.data.shape[1] == 2
    idx = synthetic_sources(coco.layout)
    assert idx[JOINTS.index("l_wri")] == get_layout("ntu25").joint_names.index("left_wrist")
    np.testing.assert_array_equal(coco.data, np.asarray(ntu.data)[:, :2][:, :, :, idx])
    assert coco.split_names == ntu.split_names

    # a custom layout names NTU-25 sources for joints not called like NTU-25 joints
    rig = write_layout(tmp_path / "rig17.yaml")
    capsys.readouterr()
    code = main(["data", "synth", "--preset", "tiny", "--layout", str(rig),
                 "--out", str(tmp_path / "rig")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "'nose' has no NTU-25 joint" in err and "synthetic_from" in err
    assert err.count("\n") == 1 and not (tmp_path / "rig").exists()
    ntu_names = get_layout("ntu25").joint_names
    sources = {j: ntu_names[i] for j, i in zip(JOINTS, idx, strict=True)}
    with rig.open("a") as fh:
        fh.write(f"synthetic_from: {json.dumps(sources)}\n")
    assert main([*args[:-1], str(rig), "--out", str(tmp_path / "rig")]) == 0
    np.testing.assert_array_equal(SkeletonDataset(tmp_path / "rig").data, coco.data)


def test_the_example_mediapipe_layout_loads_and_synthesises(tmp_path):
    from asma_bench.data.synthetic import generate

    path = Path(__file__).resolve().parents[2] / "examples" / "layouts" / "mediapipe33.yaml"
    layout = get_layout(str(path))
    assert layout.num_joints == 33 and layout.dims == 3 and len(layout.edges) == 32
    assert layout.degrees[layout.joint_names.index("left_wrist")] == 4  # elbow + 3 fingers
    out = generate(tmp_path / "mp", "tiny", layout=str(path))
    assert SkeletonDataset(out).data.shape[1:4:2] == (3, 33)


def test_bone_and_motion_streams_average_a_confidence_channel():
    from asma_bench.data.streams import bone_stream, motion_stream, to_stream

    layout = get_layout("coco17")
    x = torch.randn(2, 3, 5, 17, 1)
    bone = bone_stream(x, layout)
    child, parent = layout.edges[0]
    torch.testing.assert_close(bone[:, :2, :, child], x[:, :2, :, child] - x[:, :2, :, parent])
    torch.testing.assert_close(bone[:, 2, :, child], (x[:, 2, :, child] + x[:, 2, :, parent]) / 2)
    motion = to_stream(x, "motion", layout)
    torch.testing.assert_close(motion[:, :2, :-1], x[:, :2, 1:] - x[:, :2, :-1])
    torch.testing.assert_close(motion[:, 2, :-1], (x[:, 2, 1:] + x[:, 2, :-1]) / 2)
    # without a layout every channel is a coordinate, as before
    torch.testing.assert_close(motion_stream(x)[:, 2, :-1], x[:, 2, 1:] - x[:, 2, :-1])


# --------------------------------------------------------------------- hostile inputs
def write_generic(src: Path, names: list[str], splits: list[str], *, bom: bool = False) -> Path:
    """A generic folder: one (T, V, C) = (8, 25, 3) clip per name under clips/, labels
    alternating 0/1, the given split per clip."""
    rng = np.random.default_rng(7)
    (src / "clips").mkdir(parents=True)
    rows = ["file,label,split"]
    for i, (name, split) in enumerate(zip(names, splits, strict=True)):
        np.save(src / "clips" / name, rng.normal(size=(8, 25, 3)).astype(np.float32))
        rows.append(f"clips/{name},{i % 2},{split}")
    text = "\n".join(rows) + "\n"
    (src / "labels.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return src


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def test_unicode_names_a_bom_and_utf8_class_names_convert_as_written(tmp_path, capsys):
    import unicodedata

    names = ["händeschütteln_01.npy", "winken_01.npy", "händeschütteln_02.npy", "winken_02.npy"]
    src = write_generic(tmp_path / "clips ünïcode", names, ["train"] * 4, bom=True)
    # a file copied from macOS spells ä as a + combining mark; the CSV types it as one
    # code point, and the file is still found
    nfd = unicodedata.normalize("NFD", names[2])
    (src / "clips" / names[2]).rename(src / "clips" / nfd)
    (src / "classes.txt").write_bytes("\ufeffHändeschütteln\nWinken\n".encode())
    out = tmp_path / "out"
    code = main(["data", "convert", str(src), str(out), "--layout", "ntu25"])
    assert code == 0, capsys.readouterr().err
    ds = SkeletonDataset(out)
    assert ds.info["class_names"] == ["Händeschütteln", "Winken"]
    assert ds.meta["name"].tolist() == [n.removesuffix(".npy") for n in names]
    assert ds.split_names == ["default"] and ds.labels.tolist() == [0, 1, 0, 1]

    # the same class names saved as Windows-1252: one line naming the file, line and byte
    (src / "classes.txt").write_bytes("Winken\nHändeschütteln\n".encode("cp1252"))
    capsys.readouterr()
    code = main(["data", "convert", str(src), str(tmp_path / "o2"), "--layout", "ntu25"])
    assert code == 2 and not (tmp_path / "o2").exists()
    assert _one_line_error(capsys) == (
        f"error: {src / 'classes.txt'}:2: not UTF-8 text: byte 8 (0xe4) cannot be decoded; "
        "save the file as UTF-8"
    )


def test_a_sample_whose_header_claims_559_gib_is_refused_not_allocated(tmp_path, capsys):
    src = write_generic(tmp_path / "src", ["a.npy", "b.npy"], ["train", "test"])
    liar = src / "clips" / "b.npy"
    buf = np.lib.format
    with open(liar, "wb") as fh:  # 128 bytes: a header and no data
        buf.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (2, 10**9, 25, 3)}
        )
    assert liar.stat().st_size == 128
    code = main(["data", "convert", str(src), str(tmp_path / "out"), "--layout", "ntu25"])
    assert code == 2 and not (tmp_path / "out").exists()
    msg = _one_line_error(capsys)
    assert msg.startswith(f"error: {liar}: header claims shape (2, 1000000000, 25, 3)")
    # --skip-bad lists it and keeps the rest
    code = main(["data", "convert", str(src), str(tmp_path / "out"), "--layout", "ntu25",
                 "--skip-bad"])  # fmt: skip
    assert code == 0 and len(SkeletonDataset(tmp_path / "out")) == 1


def test_symbolic_link_loops_are_one_line_naming_the_path(tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    code = main(["data", "convert", str(loop), str(tmp_path / "out"), "--layout", "ntu25"])
    assert code == 2
    assert _one_line_error(capsys) == (
        f"error: {loop}: cannot read: symbolic link loop (too many levels of symbolic links)"
    )
    src = write_generic(tmp_path / "src", ["a.npy", "b.npy"], ["train", "test"])
    code = main(["data", "convert", str(src), str(tmp_path / "out"), "--layout", "ntu25",
                 "--labels", str(loop)])  # fmt: skip
    assert code == 2 and _one_line_error(capsys).startswith(f"error: {loop}: cannot read")
    for inside in ("clips/b.npy", "classes.txt", "labels.csv"):
        target = src / inside
        target.unlink(missing_ok=True)
        target.symlink_to(target.with_name("other"))
        target.with_name("other").symlink_to(target)
        code = main(["data", "convert", str(src), str(tmp_path / "out"), "--layout", "ntu25"])
        assert code == 2, inside
        assert _one_line_error(capsys) == (
            f"error: {target}: cannot read: symbolic link loop (too many levels of symbolic links)"
        )
        target.with_name("other").unlink()
        target.unlink()
        if inside == "clips/b.npy":
            np.save(target, np.ones((8, 25, 3), np.float32))
        elif inside == "classes.txt":
            target.write_text("a\nb\n")


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("file,label,label\nclips/a.npy,0,0\n", "labels.csv:1: column 'label' appears twice"),
        ("file,label\nclips/a.npy,1" + "0" * 30 + "\n", "labels.csv:2: label '1000"),
        ("file,label,subject\nclips/a.npy,0,-" + "9" * 19 + "\n", "has more than 18 digits"),
        ("file,label\n,0\n", "labels.csv:2: empty file name"),
        ('file,label\n"' + "x" * 200_000 + '",0\n', "labels.csv:2: not CSV: field larger"),
        ("file,label\nclips/a.npy,nan\n", "labels.csv:2: label 'nan' is not an integer"),
    ],
)
def test_bad_labels_csv_are_one_line_naming_file_and_line(tmp_path, csv, message):
    src = write_generic(tmp_path / "src", ["a.npy"], ["train"])
    (src / "labels.csv").write_text(csv)
    with pytest.raises(DataFormatError, match=re.escape(message)) as err:
        convert(src, tmp_path / "out", "generic", layout="ntu25")
    assert len(str(err.value)) <= 400 and "\n" not in str(err.value)


def test_a_class_listed_twice_in_classes_txt_is_refused(tmp_path):
    src = write_generic(tmp_path / "src", ["a.npy", "b.npy"], ["train", "test"])
    (src / "classes.txt").write_text("wave\nkick\n\nwave\n")
    with pytest.raises(DataFormatError) as err:
        convert(src, tmp_path / "out", "generic", layout="ntu25")
    assert str(err.value) == f"{src / 'classes.txt'}:4: class 'wave' is listed twice (line 1)"


def test_six_clips_with_no_validation_clip_are_refused_before_training(tmp_path, capsys):
    """2 classes x 3 clips, one training clip per class: no clip can be held out for the
    validation part every protocol selects on, so the run stops at preparation naming the
    dataset and the count, instead of an internal torch.cat() error."""
    names = [f"c{i}.npy" for i in range(6)]
    src = write_generic(tmp_path / "six", names, ["train", "train", "test", "test", "test", "test"])
    data = tmp_path / "six-ds"
    assert main(["data", "convert", str(src), str(data), "--layout", "ntu25"]) == 0
    capsys.readouterr()
    args = ["run", "--grid", "masking_pairs", "--profile", "smoke", "--seeds", "1", "--data",
            str(data), "--out", str(tmp_path / "runs"), "--no-progress"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"error: data.split 'default' of {data} has 2 training clips and no class with 2 or "
        "more, so no validation clip can be held out without leaving a class untrained; at "
        "least one class needs 2 training clips (better: several per class)"
    )
    assert main([*args, "--set", "data.val_fraction=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: data.val_fraction=0 leaves data.split 'default' of ")
