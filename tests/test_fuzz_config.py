"""Fuzzing ``--set`` overrides and grid YAML: any input plans or is refused in one line.

Overrides are real and made-up keys with hostile YAML values (deep nesting, alias chains,
huge numbers, NaN and infinities, wrong types, unicode, long strings); grids are random
documents of the grid's shape and mutations of the built-in grids' text. Each goes
through :func:`build_config` / :func:`load_grid` and :func:`plan_units` with the smoke
profile (what ``run --dry-run`` does: nothing is trained or written), which must succeed
or raise :class:`AsmaBenchError` whose message is one line of at most 400 characters.
"""

import os
from importlib import resources

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asma_bench.config import RunConfig, build_config, parse_override
from asma_bench.errors import MAX_MESSAGE, AsmaBenchError
from asma_bench.harness.grids import GridSpec, load_grid
from asma_bench.harness.runner import RunOptions, plan_units

#: examples per test; the long run sets ASMA_FUZZ_EXAMPLES (3,500 × 3 tests > 10,000 inputs)
EXAMPLES = int(os.environ.get("ASMA_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEYS = sorted(RunConfig().flat()) + [
    "data", "masking", "pretrain", "backbone", "transfer.target", "masking.spatial",
    "masking.temporal", "pretrain.params.theta_masks", "pretrain.pairing", "masking.encoders",
    "masking.encoders.theta", "masking.encoders.phi.spatial", "backbone.params.base_channels",
    "backbone.params.num_blocks", "backbone.params.max_hop", "backbone.params.channels",
    "distill.student_params.base_channels", "x", "pretrain.epochz", "a.b.c",
]  # fmt: skip

ODD = [
    ".nan", ".inf", "-.inf", "1e999", "-1e999", "1e-999", "-0", "0x1F", "0o17", "1_000",
    "99999999999999999999999", "-99999999999999999999999", "4294967296", "2147483648",
    "true", "false", "null", "~", "yes", "on", "''", '""', "!!binary aGk=",
    "!!python/object/apply:os.system [ls]", "!!python/name:os.system", "&a x", "*a",
    "2001-12-14", "{", "]", ":", "- x", "'unterminated", "é", "\u202e", "\x00", "\t", "\\",
    "ldsm_hmtm", "stgcn", "asma", "synthetic", "tiny", "cuda", "cuda:7", "mps", "cpu",
    "center_every_frame_rotate", "{name: ldsm, params: {n: 30}}", "{name: hmtm, params: {k: 99}}",
    "{base_channels: 100000}", "{num_blocks: 2000}", "{max_hop: 1000000}", "[1, 2, 3]",
    "{theta_masks: nope}", "{preset: noisy, frames: 100000}", "0", "1", "-1", "0.5", "25",
]  # fmt: skip


def _alias_chain(levels: int, width: int) -> str:
    parts = ["&a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def _nested(kind: str, depth: int) -> str:
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    if kind == "dict":
        return "{a: " * depth + "1" + "}" * depth
    if kind == "block":
        return "- " * depth + "x"
    return "[" * depth  # unbalanced


leaf = st.one_of(
    st.sampled_from(ODD),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=20),
    st.integers(0, 12_000).map(lambda n: "x" * n),  # long strings (and over-long overrides)
)
values = st.one_of(
    st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.dictionaries(
                st.sampled_from(["a", "n", "k", "name", "params", "frames"]), children, max_size=3
            ).map(lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"),
        ),  # fmt: skip
        max_leaves=8,
    ),
    st.builds(_nested, st.sampled_from(["list", "dict", "block", "open"]), st.integers(1, 3000)),
    st.builds(_alias_chain, st.integers(1, 9), st.integers(1, 12)),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))

DEFAULTS = RunConfig().flat()
NAME_POOL = [
    "ldsm_hmtm", "hdsm_lmtm", "random_random", "none_none", "barlow_twins", "asma", "moco",
    "mae", "stgcn", "gin", "dgcnn", "student", "synthetic", "tiny", "noisy", "default", "xsub",
    "xview", "joint", "bone", "motion", "linear", "finetune", "aligned", "auto", "cuda",
    "cuda:3", "mps", "cpu", "none", "center_every_frame_rotate", "zero", "drop", "bogus", "",
]  # fmt: skip
ints = st.one_of(
    st.integers(-3, 400), st.integers(),
    st.sampled_from([2**31, 2**32, 2**63, 10**8, 10**30, 25, 24, 12, 11]),
)  # fmt: skip
floats = st.one_of(
    st.floats(-1, 2), st.floats(), st.sampled_from([float("nan"), float("inf"), 0.99, 1e-300])
)
param_dicts = st.dictionaries(
    st.sampled_from(["base_channels", "num_blocks", "out_dim", "max_hop", "channels", "n", "k",
                     "law", "dropout", "temporal_kernel", "name", "params", "theta_masks"]),
    st.one_of(ints, floats, st.sampled_from(NAME_POOL), st.lists(ints, max_size=3)),
    max_size=3,
)  # fmt: skip


def typed(key):
    """Values of the type ``key`` holds (mostly valid, often extreme), so that inputs reach
    the checks past the field validation: devices, masks, sizes, memory."""
    default = DEFAULTS.get(key)
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return ints
    if isinstance(default, float):
        return floats
    if isinstance(default, str):
        return st.one_of(st.sampled_from(NAME_POOL), st.text(max_size=10))
    if isinstance(default, list):
        return st.lists(st.one_of(ints, floats), max_size=4)
    return st.one_of(param_dicts, st.sampled_from(NAME_POOL), st.none())


def as_yaml(value) -> str:
    """``value`` as the flow YAML one would type after ``key=``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    return text.strip().removesuffix("...").strip()


typed_overrides = st.sampled_from(KEYS).flatmap(
    lambda key: typed(key).map(lambda value: f"{key}={as_yaml(value)}")
)
overrides = st.one_of(
    typed_overrides,
    typed_overrides,
    typed_overrides,
    st.builds(lambda k, v: f"{k}={v}", keys, values),
    st.text(max_size=60),
)

TINY = GridSpec.model_validate(
    {"name": "fuzz", "references": [], "cells": [{"name": "a", "overrides": {}}]}
)


def _clean(exc: AsmaBenchError) -> None:
    text = str(exc)
    assert "\n" not in text and len(text) <= MAX_MESSAGE, text


def _plans_or_one_line(grid_or_path, overrides=(), out=None) -> None:
    try:
        grid = load_grid(grid_or_path) if not isinstance(grid_or_path, GridSpec) else grid_or_path
        grid.all_cells()
        plan_units(grid, RunOptions(profile="smoke", seeds=[0], overrides=list(overrides)))
    except AsmaBenchError as exc:
        _clean(exc)
    if out is not None:
        assert not out.exists()  # planning writes nothing


@FUZZ
@given(overrides)
def test_override_strings(text):
    try:
        parse_override(text)
        build_config("smoke", [text])
    except AsmaBenchError as exc:
        _clean(exc)
        return
    _plans_or_one_line(TINY, [text])


#: the grid's fields, some of its cells' overrides, and what hostile values may stand there
good_names = st.sampled_from(["g", "a", "b-1", "c.d", "e+f", "ldsm_hmtm"])
names = st.one_of(
    *[good_names] * 8,
    st.sampled_from(["é", "x'; y", ".h", "", "a" * 129]),
    st.text(max_size=10),
)
scalars = st.one_of(
    st.sampled_from([0, 1, -1, 2**64, 1e308, float("nan"), float("inf"), True, None, "", "x"]),
    st.integers(), st.floats(), st.text(max_size=15),
)  # fmt: skip
config_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["a", "n", "k", "name", "params", "epochs"]), children, max_size=3
        ),
    ),  # fmt: skip
    max_leaves=6,
)
cell_overrides = st.one_of(
    st.lists(st.sampled_from(KEYS).flatmap(lambda k: st.tuples(st.just(k), typed(k))),
             max_size=3).map(dict),
    st.dictionaries(st.sampled_from(KEYS), config_values, max_size=2),
)  # fmt: skip
cells = st.fixed_dictionaries(
    {"name": names},
    optional={
        "protocol": st.sampled_from(["linear", "finetune", "supervised", "linaer", "distill"]),
        "overrides": cell_overrides,
        "fixed": cell_overrides,
        "labels": st.dictionaries(st.text(max_size=5), scalars, max_size=2),
    },
)
grids = st.fixed_dictionaries(
    {"name": names, "cells": st.lists(cells, min_size=1, max_size=4)},
    optional={
        "protocol": st.sampled_from(["linear", "robustness", "nope"]),
        "metric": st.sampled_from(["test_top1", "test_nll", "theta_test_top1", "typo", ""]),
        "baseline": names,
        "base": cell_overrides,
        "references": st.lists(st.sampled_from(["random_init", "supervised", "x"]), max_size=2),
        "description": st.text(max_size=30),
    },
)


def _nest_dotted(doc):
    """``{'pretrain.epochs': 3}`` keys of overrides as the nested mappings a grid holds."""
    from asma_bench.harness.tuning import nested

    sections = [doc.get("base")]
    sections += [cell.get(key) for cell in doc["cells"] for key in ("overrides", "fixed")]
    for section in sections:
        if isinstance(section, dict):
            flat = dict(section)
            section.clear()
            try:
                section.update(nested(flat))
            except (AttributeError, TypeError):  # "a" and "a.b" both set: keep it flat
                section.update(flat)
    return doc


BUILT_IN = [
    p.read_text(encoding="utf-8")
    for p in resources.files("asma_bench").joinpath("grids").iterdir()
    if p.name.endswith(".yaml")
]
TOKENS = [
    "", " ", "\n", "\t", "&a ", "*a", "*b", "[", "]", "{", "}", "- ", ": ", "'", '"', "!!str ",
    "!!python/name:os.system ", "1e999", ".nan", "-1", "99999999999999999999", "é", "\x00",
    "metric: typo\n", "references: [supervised]\n", "[" * 40, "- " * 40, "{a: " * 40,
    "  - {name: z, overrides: {data: {frames: 100000000}}}\n",
    "  - {name: z, overrides: {masking: {n: 25}}}\n",
    "  - {name: z, overrides: {pretrain: {projector_dim: 100000000}}}\n",
]  # fmt: skip


@st.composite
def grid_texts(draw):
    """A built-in grid's text with slices deleted, replaced or spliced with tokens, or a
    random grid-shaped document, sometimes with an alias bomb or deep nesting added."""
    if draw(st.integers(0, 2)) == 0:
        text = draw(st.sampled_from(BUILT_IN))
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 60)))
            token = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=8)))
            op = draw(st.sampled_from(["delete", "replace", "insert"]))
            text = text[:i] + ("" if op == "delete" else token) + text[j if op != "insert" else i :]
    else:
        doc = _nest_dotted(draw(grids))
        text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))
    extra = draw(st.sampled_from(["", "", "", "", "bomb", "deep"]))
    if extra == "bomb":
        text += "\nx: " + _alias_chain(draw(st.integers(5, 9)), 10) + "\n"
    elif extra == "deep":
        text += "\nx: " + _nested(draw(st.sampled_from(["list", "dict"])), 5_000) + "\n"
    return text


@FUZZ
@given(grid_texts())
def test_grid_yaml_documents(tmp_path, text):
    path = tmp_path / "grid.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _plans_or_one_line(path, out=tmp_path / "out")


@FUZZ
@given(grid_texts(), st.lists(overrides, max_size=2))
def test_grid_yaml_with_overrides(tmp_path, text, sets):
    path = tmp_path / "grid.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _plans_or_one_line(path, sets, out=tmp_path / "out")
