"""Input files as the readers open them: UTF-8 text (a BOM accepted, anything else named by
its byte) and .npy/.npz headers checked against the real size before numpy allocates."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

from asma_bench.data.files import check_npy, check_npz, load_npy, read_text, stat_input
from asma_bench.data.readers import pku, ucla
from asma_bench.data.readers._common import read_name_list, read_text_lines
from asma_bench.data.readers.generic import read_class_names, read_rows
from asma_bench.errors import DataFormatError

BOM = b"\xef\xbb\xbf"
#: the 128-byte file of the report: its header claims (2, 10^9, 25, 3) float32, 559 GiB
HUGE = (2, 10**9, 25, 3)


def npy_bytes(shape: tuple[int, ...], payload: bytes, dtype: str = "<f4") -> bytes:
    """A .npy file whose header says ``shape`` and whose data is ``payload``, whatever its
    length: numpy itself never writes such a file, a hostile or truncated one is one."""
    buf = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


def test_a_lying_npy_header_is_refused_before_anything_is_allocated(tmp_path):
    path = tmp_path / "clip.npy"
    path.write_bytes(npy_bytes(HUGE, b""))
    assert path.stat().st_size == 128
    with pytest.raises(DataFormatError) as err:
        load_npy(path, mmap=False)
    msg = str(err.value)
    assert msg.startswith(f"{path}: header claims shape (2, 1000000000, 25, 3) of float32")
    assert "(558.8 GiB)" in msg and "holds 0 bytes of data" in msg and "\n" not in msg
    # a file longer than its header says is no .npy numpy wrote either
    np.save(path, np.zeros((2, 3), np.float32))
    with open(path, "ab") as fh:
        fh.write(b"\0" * 4)
    with pytest.raises(DataFormatError, match=r"claims shape \(2, 3\) of float32 \(24 bytes\)"):
        check_npy(path)


def test_a_true_npy_header_loads_and_says_what_it_holds(tmp_path):
    path = tmp_path / "ok.npy"
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.save(path, x)
    header = check_npy(path)
    assert header.shape == (2, 3, 4) and header.dtype == np.float32 and header.nbytes == 96
    assert np.array_equal(load_npy(path, mmap=True), x)
    with pytest.raises(DataFormatError, match="at most 0 MiB"):
        load_npy(path, mmap=False, limit=10)


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (b"", "not a readable .npy array"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'", "not a readable .npy array"),
        (npy_bytes((2,), b"", dtype="|O"), "holds Python objects"),
        (b"\x93NUMPY\x03\x00" + b"\0" * 20, "format version 3.0 is not supported"),
        # no data is the right size for 0 x 2**64, and numpy's element count overflows
        (npy_bytes((0, 2**64), b""), r"claims shape \(0, 18446744073709551616\), too large"),
        (npy_bytes((-1, 3), b""), r"claims a negative dimension \(-1, 3\)"),
        # numpy tokenizes the header: an unclosed bracket is a TokenError, not a ValueError
        (b"\x93NUMPY\x01\x00\x10\x00{'shape': (5, 3,\n", "not a readable .npy array"),
    ],
)
def test_broken_npy_files_are_one_line(tmp_path, blob, words):
    path = tmp_path / "bad.npy"
    path.write_bytes(blob)
    with pytest.raises(DataFormatError, match=words) as err:
        load_npy(path, mmap=False)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_an_npz_member_is_checked_against_its_uncompressed_size(tmp_path):
    path = tmp_path / "NTU60_CS.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        good = io.BytesIO()
        np.save(good, np.eye(2, dtype=np.float32))
        zf.writestr("y_train.npy", good.getvalue())
        zf.writestr("x_train.npy", npy_bytes(HUGE, b"\0" * 48))
    with pytest.raises(DataFormatError) as err:
        check_npz(path)
    assert str(err.value).startswith(f"{path}: x_train: header claims shape (2, 1000000000")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("y_train.npy", good.getvalue())
    assert check_npz(path)["y_train"].shape == (2, 2)


def test_a_symlink_loop_is_named_as_one_not_as_missing(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert stat_input(tmp_path / "absent") is None
    with pytest.raises(DataFormatError, match="symbolic link loop") as err:
        stat_input(tmp_path / "a")
    assert str(err.value).startswith(f"{tmp_path / 'a'}: cannot read")
    with pytest.raises(DataFormatError, match="symbolic link loop"):
        read_text(tmp_path / "a" / "labels.csv")


UCLA_JSON = (
    '{"file_name": "a01_s01_e01_v01", "label": 1, "skeletons": '
    + str([[[0.1, 0.2, 0.3]] * 20] * 2)
    + "}\n"
)
# every text file a reader takes: its name, a valid text, how it is read, what that gives
TEXT_READERS = [
    ("labels.csv", "label,name\n0,Händeschütteln\n", lambda p: read_rows(p)[0][0]["name"],
     "Händeschütteln"),
    ("classes.txt", "Händeschütteln\nWinken\n", lambda p: read_class_names(p),
     ["Händeschütteln", "Winken"]),
    ("missing.txt", "S001C001P001R001A001\n", lambda p: sorted(read_name_list(p)),
     ["S001C001P001R001A001"]),
    ("A01N01-L_label.txt", "1,10,20,1\n", lambda p: pku.read_labels(p)[0].end, 20),
    ("cross-subject.txt", "Training videos: 0002-L, 0003-M\n",
     lambda p: pku.read_split_file(p)[0], ["0002-L", "0003-M"]),
    ("a01_s01_e01_v01.json", UCLA_JSON, lambda p: ucla.read_sample(p)[0].shape, (3, 2, 20, 1)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "read", "expected"), TEXT_READERS,
                         ids=[r[0] for r in TEXT_READERS])  # fmt: skip
def test_every_text_input_is_utf8_with_or_without_a_bom(tmp_path, name, text, read, expected):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    assert read(path) == expected
    path.write_bytes(BOM + text.replace("\n", "\r\n").encode("utf-8"))
    assert read(path) == expected
    # the same file saved by a program in Windows-1252: refused at its first such byte
    latin = ("\n" + text.replace("\n", " ") + " Ü\n").encode("cp1252")
    path.write_bytes(latin)
    offset = next(i for i, b in enumerate(latin) if b >= 0x80)  # ä, or else Ü
    with pytest.raises(DataFormatError) as err:
        read(path)
    assert str(err.value) == (
        f"{path}:2: not UTF-8 text: byte {offset} (0x{latin[offset]:02x}) cannot be decoded; "
        "save the file as UTF-8"
    )


def test_lines_split_at_line_ends_only(tmp_path):
    path = tmp_path / "names.txt"
    path.write_bytes(BOM + b"a\x0cb\r\nc\rd\n\n")
    assert read_text_lines(path) == ["a\x0cb", "c", "d"]
    os.truncate(path, 3)  # the BOM alone is an empty file
    with pytest.raises(DataFormatError, match="empty file"):
        read_text_lines(path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-be"])
def test_utf16_and_utf32_files_are_named_as_such(tmp_path, encoding):
    path = tmp_path / "classes.txt"
    bom = "\ufeff" if encoding.endswith("-be") else ""  # utf-16 and utf-32 write their own
    path.write_bytes((bom + "wave\n").encode(encoding))
    with pytest.raises(DataFormatError) as err:
        read_class_names(path)
    name = encoding[:6].upper()
    assert str(err.value) == f"{path}: {name} text (byte-order mark); save the file as UTF-8"


def test_a_layout_yaml_is_utf8_with_or_without_a_bom(tmp_path):
    from asma_bench.data.layouts import get_layout
    from asma_bench.errors import ConfigError

    path = tmp_path / "rig.yaml"
    text = "name: Händ\njoints: [wrist, daumen]\nedges: [[daumen, wrist]]\ncenter: wrist\n"
    path.write_bytes(BOM + text.encode())
    assert get_layout(str(path)).name == "Händ"
    path.write_bytes(text.encode("cp1252"))
    with pytest.raises(ConfigError) as err:
        get_layout(str(path))
    assert str(err.value) == f"{path}: not UTF-8 text (byte 7)"
