"""Fuzzing the text-format readers: any input parses or raises the project's own error.

Inputs are mutations of valid files (the parsers' interesting paths) plus free text, so a
crash deep inside a parser (IndexError, ValueError from numpy, UnicodeDecodeError, ...) is
found rather than only the early "bad header" exits.
"""

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asma_bench.config import load_yaml
from asma_bench.data.readers import ntu_raw, pku, ucla
from asma_bench.errors import AsmaBenchError
from asma_bench.harness.grids import load_grid

#: examples per reader; the README's long run sets ASMA_FUZZ_EXAMPLES=1500 (7 × 1500)
EXAMPLES = int(os.environ.get("ASMA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


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


def mutated(base: str) -> st.SearchStrategy[str]:
    """Delete, duplicate or replace a slice of a valid file, or splice in random text."""
    tokens = st.sampled_from(
        [
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
    "name: g\nprotocol: linear\ncells:\n"
    "  - {name: a, overrides: {pretrain: {pairing: hdsm_lmtm}}}\n"
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
