"""Fuzzing the text-format readers: any input parses or raises the project's own error.

Inputs are mutations of valid files (the parsers' interesting paths) plus free text, so a
crash deep inside a parser (IndexError, ValueError from numpy, UnicodeDecodeError, ...) is
found rather than only the early "bad header" exits.

Generic-format folders are fuzzed whole, through ``convert``: a mutated labels.csv (BOMs,
other encodings, huge, negative and NaN values, missing and duplicated columns), classes.txt
and layout YAML, .npy files whose headers lie about their shape or dtype, and odd file
names. Whatever converts must open again as a dataset. Those examples write folders, so
the suite runs fewer of them (``GENERIC_EXAMPLES``); the long run gives both counts
``ASMA_FUZZ_EXAMPLES``: ``ASMA_FUZZ_EXAMPLES=2500`` is 4 × 2500 = 10,000 generic folders.
"""

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asma_bench.config import load_yaml
from asma_bench.data.readers import convert, ntu_raw, pku, ucla
from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import MAX_MESSAGE, AsmaBenchError
from asma_bench.harness.grids import load_grid

#: examples per reader; the README's long run sets ASMA_FUZZ_EXAMPLES=1500 (7 × 1500)
EXAMPLES = int(os.environ.get("ASMA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
#: examples per generic-folder test: each writes a folder and may write a dataset, so the
#: suite runs 4 × 25 (about two seconds); ASMA_FUZZ_EXAMPLES sets it for the long run
GENERIC_EXAMPLES = int(os.environ.get("ASMA_FUZZ_EXAMPLES", "25"))
GENERIC_FUZZ = settings(
    max_examples=GENERIC_EXAMPLES,
    deadline=None,
    derandomize=True,  # seeded: the same folders on every run, a failure reproduces
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
    ],
)  # fmt: skip


def _ntu_text(frames: int = 2, bodies: int = 1) -> str:
    lines = [str(frames)]
    for _ in range(frames):
        lines.append(str(bodies))
        for b in range(bodies):
            lines.append(f"7205759403793110{b} 0 1 1 1 1 0 0.02 0.05 2")
            lines.append("25")
            lines.extend(
                "0.1 0.2 3.0 277.4 191.8 1036.2 519.1 -0.2 0.05 0.96 -0.12 2" for _ in range(25)
            )
    return "\n".join(lines) + "\n"


def _pku_text(frames: int = 3) -> str:
    row = " ".join(["0.5"] * 75 + ["0"] * 75)
    return "\n".join(row for _ in range(frames)) + "\n"


def _ucla_text(frames: int = 2) -> str:
    return json.dumps(
        {"file_name": "a01_s01_e01_v01", "label": 1, "skeletons": [[[0.1, 0.2, 0.3]] * 20] * frames}
    )


def mutated(base: str, extra: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Delete, duplicate or replace a slice of a valid file, or splice in random text
    (``extra``: more tokens to splice in, for one format's interesting values)."""
    tokens = st.sampled_from(
        [
            *extra,
            "",
            " ",
            "\n",
            "nan",
            "inf",
            "-1",
            "1e999",
            "x",
            "\r\n",
            "25",
            "0",
            "3",
            "{",
            "]",
            "\x00",
            "é",
        ]
    )

    @st.composite
    def build(draw):
        text = base
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 40)))
            op = draw(st.sampled_from(["delete", "replace", "insert", "truncate"]))
            if op == "delete":
                text = text[:i] + text[j:]
            elif op == "replace":
                text = text[:i] + draw(tokens) + text[j:]
            elif op == "insert":
                text = text[:i] + draw(st.one_of(tokens, st.text(max_size=10))) + text[i:]
            else:
                text = text[:i]
        return text

    return st.one_of(build(), st.text(max_size=200))


def _parses_or_clean_error(tmp_path, name, text, read):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        read(path)
    except AsmaBenchError as exc:
        assert "\n" not in str(exc) and name in str(exc)


@FUZZ
@given(mutated(_ntu_text()))
def test_ntu_skeleton_reader(tmp_path, text):
    _parses_or_clean_error(tmp_path, "S001C001P001R001A001.skeleton", text, ntu_raw.read_sample)


@FUZZ
@given(mutated(_pku_text()))
def test_pku_skeleton_reader(tmp_path, text):
    _parses_or_clean_error(tmp_path, "A01N01-L.txt", text, pku.read_skeleton)


@FUZZ
@given(mutated("1,10,20,1\n2,30,45,0.5\n"))
def test_pku_label_reader(tmp_path, text):
    _parses_or_clean_error(tmp_path, "A01N01-L_label.txt", text, pku.read_labels)


@FUZZ
@given(mutated(_ucla_text()))
def test_ucla_json_reader(tmp_path, text):
    _parses_or_clean_error(tmp_path, "a01_s01_e01_v01.json", text, ucla.read_sample)


GRID = (
    "name: g\nprotocol: linear\ncells:\n  - {name: a, overrides: {masking: {pairing: hdsm_lmtm}}}\n"
)


@FUZZ
@given(mutated(GRID))
def test_yaml_grid_loader(tmp_path, text):
    def read(path):
        load_grid(path).all_cells()

    _parses_or_clean_error(tmp_path, "grid.yaml", text, read)


@FUZZ
@given(mutated("data: {frames: 20}\npretrain: {epochs: 3}\n"))
def test_yaml_profile_loader(tmp_path, text):
    from asma_bench.config import build_config

    path = tmp_path / "profile.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_yaml(path)
        build_config(str(path))
    except AsmaBenchError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["ntu", "pku", "ucla", "grid", "profile"]))
def test_arbitrary_bytes(tmp_path, blob, kind):
    from asma_bench.config import build_config

    readers = {
        "ntu": ("S001C001P001R001A001.skeleton", ntu_raw.read_sample),
        "pku": ("A01N01-L.txt", pku.read_skeleton),
        "ucla": ("a01_s01_e01_v01.json", ucla.read_sample),
        "grid": ("grid.yaml", load_grid),
        "profile": ("profile.yaml", lambda p: build_config(str(p))),
    }
    name, read = readers[kind]
    path = tmp_path / name
    path.write_bytes(blob)
    try:
        read(path)
    except AsmaBenchError as exc:
        assert "\n" not in str(exc)


# --------------------------------------------------------------- generic-format folders
#: a 3-joint layout, so that clips are tiny: (T, 3, 3)
LAYOUT_YAML = (
    "name: tri\ndims: 3\njoints: [a, b, c]\nedges: [[b, a], [c, a]]\ncenter: a\n"
    "flip_pairs: [[b, c]]\n"
)
LABELS_CSV = (
    "file,label,name,subject,view,length,split,split_xview\n"
    "clips/a.npy,0,a,1,1,4,train,test\n"
    "clips/b.npy,1,b,2,2,,test,train\n"
    "clips/ä.npy,1,,3,1,,train,\n"
)
CSV_TOKENS = (
    "\ufeff", ",", '"', "nan", "NaN", "-9999999999999999999999", "1" + "0" * 30, "99999",
    "1.5", "train", "test", "TRAIN", "label", "file", "split_x", "clips/../labels.csv",
    "clips/a.npy", "ä", "a\u0308", "\u2028", "\x85", "\t",
)  # fmt: skip
YAML_TOKENS = ("[", "]", "a", "b", "c", "5", "-1", "&x", "*x", "dims: 2", "joints: []",
               "center: z", "[[a, a]]", "!!python/object:os.system", "\ufeff")  # fmt: skip
ENCODINGS = ("utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16", "utf-32")


def _clip(seed: int, frames: int = 5, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(frames, 3, channels)).astype(np.float32)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _encode(text: str, encoding: str) -> bytes:
    errors = "surrogatepass" if encoding.startswith("utf-8") else "replace"
    return text.encode(encoding, errors)


def _generic_converts_or_clean_error(
    tmp_path: Path,
    files: dict[str, bytes],
    *,
    layout: str = "layout.yaml",
    skip_bad: bool = False,
) -> None:
    """Write ``files`` (relative paths) into a fresh folder and convert it as ``generic``:
    a dataset that opens again, or one AsmaBenchError of one line; anything else fails."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        src = root / "src"
        (src / "clips").mkdir(parents=True)
        for rel, blob in files.items():
            (src / rel).write_bytes(blob)
        out = root / "out"
        where = str(src / layout) if layout.endswith(".yaml") else layout
        try:
            convert(src, out, "generic", layout=where, skip_bad=skip_bad)
        except AsmaBenchError as exc:
            msg = str(exc)
            assert "\n" not in msg and len(msg) <= MAX_MESSAGE, msg
        else:
            ds = SkeletonDataset(out)
            assert len(ds) >= 1 and ds.data.shape[3] == 3
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _valid_files() -> dict[str, bytes]:
    return {
        "layout.yaml": LAYOUT_YAML.encode(),
        "labels.csv": LABELS_CSV.encode(),
        "classes.txt": b"wave\nkick\n",
        "clips/a.npy": _npy(_clip(0)),
        "clips/b.npy": _npy(_clip(1, frames=7)),
        "clips/ä.npy": _npy(_clip(2, frames=3)),
    }


def test_generic_valid_folder_converts(tmp_path):
    """The base every mutation below starts from is itself a valid folder."""
    _generic_converts_or_clean_error(tmp_path, _valid_files())
    files = _valid_files()
    files["labels.csv"] = b"\xef\xbb\xbf" + files["labels.csv"]
    _generic_converts_or_clean_error(tmp_path, files)


@GENERIC_FUZZ
@given(mutated(LABELS_CSV, CSV_TOKENS), st.sampled_from(ENCODINGS), st.booleans())
def test_generic_labels_csv(tmp_path, text, encoding, skip_bad):
    files = _valid_files()
    files["labels.csv"] = _encode(text, encoding)
    _generic_converts_or_clean_error(tmp_path, files, skip_bad=skip_bad)


@GENERIC_FUZZ
@given(
    st.one_of(st.none(), mutated("wave\nkick\n", ("\ufeff", "wave", "\r", "é"))),
    mutated(LAYOUT_YAML, YAML_TOKENS),
    st.sampled_from(ENCODINGS),
    st.sampled_from(["layout.yaml", "ntu25", "coco17"]),
)
def test_generic_classes_and_layout(tmp_path, classes, layout_text, encoding, layout):
    files = _valid_files()
    if classes is None:
        del files["classes.txt"]
    else:
        files["classes.txt"] = _encode(classes, encoding)
    files["layout.yaml"] = _encode(layout_text, encoding)
    _generic_converts_or_clean_error(tmp_path, files, layout=layout)


DESCRS = ("<f4", ">f4", "<f8", "<f2", "<i2", "|u1", "|b1", "<c8", "|O", "|S3", "<U2", "|V8",
          "<M8[s]", [("x", "<f4")], "<f16")  # fmt: skip
DIMS = st.one_of(st.integers(0, 9), st.sampled_from([10**9, 2**31, 2**62, 2**64, -1, -(10**9)]))


def _mutate_bytes(draw, blob: bytearray) -> bytes:
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(blob)))
        op = draw(st.sampled_from(["set", "delete", "insert", "truncate"]))
        if op == "set" and i < len(blob):
            blob[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del blob[i : i + draw(st.integers(1, 16))]
        elif op == "insert":
            blob[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del blob[i:]
    return bytes(blob)


@st.composite
def npy_blobs(draw) -> bytes:
    """A .npy file that may lie: a header claiming any shape and dtype with any amount of
    data (sometimes exactly the claimed amount), a valid clip with bytes mutated, or noise."""
    kind = draw(st.sampled_from(["header", "header", "mutated", "noise"]))
    if kind == "noise":
        return draw(st.binary(max_size=300))
    if kind == "mutated":
        clip = _clip(draw(st.integers(0, 3)), channels=draw(st.sampled_from([3, 4])))
        return _mutate_bytes(draw, bytearray(_npy(clip)))
    shape = tuple(draw(st.lists(DIMS, max_size=6)))
    descr = draw(st.sampled_from(DESCRS))
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": draw(st.booleans()), "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    claimed = np.dtype(descr).itemsize
    for d in shape:
        claimed *= max(d, 0)
    if claimed <= 4096 and draw(st.booleans()):  # the size the header claims, lying or not
        value = draw(st.sampled_from([0.0, 1.0, float("nan"), float("inf"), -1e38]))
        payload = np.full(-(-claimed // 4), value, np.float32).tobytes()[:claimed]
    else:
        payload = draw(st.binary(max_size=512))
    return buf.getvalue() + payload


@GENERIC_FUZZ
@given(npy_blobs(), st.sampled_from(["per-file", "stacked"]), st.booleans())
def test_generic_npy_files_with_lying_headers(tmp_path, blob, layout_of_arrays, skip_bad):
    files = _valid_files()
    if layout_of_arrays == "per-file":
        files["clips/b.npy"] = blob
    else:
        for name in ("clips/a.npy", "clips/b.npy", "clips/ä.npy"):
            del files[name]
        files["labels.csv"] = b"label,split\n0,train\n1,test\n"
        files["data.npy"] = blob
    _generic_converts_or_clean_error(tmp_path, files, skip_bad=skip_bad)


ODD_NAMES = ("", ".", "..", "../labels.csv", "/dev/zero", "/etc/hostname", "a\x00b.npy",
             "ä.npy", "a\u0308.npy", "x" * 300 + ".npy", " spaced .npy", "new\nline.npy",
             'quo"te.npy', "comma,name.npy", "clips", "-rf.npy", "\U0001f600.npy",
             "\ufeffbom.npy", "back\\slash.npy", "\udcff.npy", "a.npy/", "a.npy")  # fmt: skip


@GENERIC_FUZZ
@given(
    st.lists(
        st.tuples(st.one_of(st.sampled_from(ODD_NAMES), st.text(max_size=30)), st.booleans()),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
    st.booleans(),
)
def test_generic_odd_file_names(tmp_path, entries, quoted, skip_bad):
    """Names the CSV gives (created in clips/ when they are one plain path component, only
    referred to otherwise: nothing is ever written outside the example's folder)."""
    files = _valid_files()
    for name in ("clips/a.npy", "clips/b.npy", "clips/ä.npy"):
        del files[name]
    buf = io.StringIO()
    quoting = csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL
    writer = csv.writer(buf, lineterminator="\n", quoting=quoting)
    writer.writerow(["file", "label", "split"])
    for i, (name, in_clips) in enumerate(entries):
        try:
            size = len(name.encode("utf-8"))  # a lone surrogate is no file name here
        except UnicodeEncodeError:
            size = None
        plain = name not in ("", ".", "..") and "/" not in name and "\x00" not in name
        if plain and size is not None and size < 200:
            files[f"clips/{name}"] = _npy(_clip(i))
        writer.writerow([f"clips/{name}" if in_clips else name, i % 2, ("train", "test")[i % 2]])
    files["labels.csv"] = buf.getvalue().encode("utf-8", "surrogatepass")
    _generic_converts_or_clean_error(tmp_path, files, skip_bad=skip_bad)
