"""Named, declarative experiment grids (built-in YAML files or the user's own).

A grid is a list of cells; each cell is a protocol plus config overrides. Every grid also
gets reference rows: ``random_init`` (the same evaluation on a randomly initialised encoder:
short self-supervised runs can end up worse than random features, and the table must show
it) and, where cheap, ``supervised`` (the backbone trained from scratch with labels). Each
is set up like the grid's baseline cell, the cell the report compares it with (the first
cell where the grid names no baseline): the same protocol and overrides, pretraining
epochs 0.

Grid YAML::

    name: masking_pairs
    description: ...
    table: "Table 9 / Fig. 3"
    protocol: linear            # default protocol of the cells
    baseline: random_random     # cell that deltas and significance tests compare against
    base: {pretrain: {objective: barlow_twins}}   # overrides shared by every cell
    references: [random_init, supervised]
    cells:
      - {name: ldsm_hmtm, labels: {spatial: LDSM, temporal: HMTM},
         overrides: {masking: {pairing: ldsm_hmtm}}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from asma_bench.config import Catalog, deep_merge
from asma_bench.errors import ConfigError, validation_line
from asma_bench.harness.names import KNOWN_METRICS, known_metric, name_problem

REFERENCE_CELLS = ("random_init", "supervised")

Spec = TypeVar("Spec", bound=BaseModel)


class CellSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    protocol: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict, description="table axes of the cell")
    fixed: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides that define the cell and win over command-line overrides "
        "(e.g. random_init's pretrain.epochs = 0)",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        """Names go into run names, folders and tracking-store queries: ASCII letters,
        digits and ``_ - . +`` only (see :func:`~asma_bench.harness.limits.name_problem`)."""
        problem = name_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v


class NamedSpec(BaseModel):
    """A named catalog document (a grid, a search space): unknown fields are errors, and
    the name is one :meth:`CellSpec._safe_name` accepts."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _safe_spec_name(cls, v: str) -> str:
        return CellSpec._safe_name(v)


class GridSpec(NamedSpec):
    table: str = ""
    protocol: str = "linear"
    baseline: str | None = None
    metric: str = "test_top1"
    base: dict[str, Any] = Field(default_factory=dict)
    data_role: Literal["source", "target"] = Field(
        "source",
        description="what `run --data` names: the data a grid pretrains and evaluates on "
        "(source), or, for a transfer grid, the target its pretrained encoders are evaluated "
        "on (the source then stays the grid's own, e.g. synthetic, on the target's skeleton)",
    )
    references: list[str] = Field(default_factory=lambda: ["random_init"])
    cells: list[CellSpec] = Field(min_length=1, description="at least one cell")
    # the file a grid was read from (None: a built-in grid), for messages
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        return self._source

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if not known_metric(v):
            raise ValueError(f"{v!r} is not a metric the protocols log; use {KNOWN_METRICS}")
        return v

    @field_validator("references")
    @classmethod
    def _known_refs(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in REFERENCE_CELLS]
        if bad:
            raise ValueError(f"unknown reference {bad[0]!r}; use {', '.join(REFERENCE_CELLS)}")
        return v

    @property
    def reference_model(self) -> str:
        """The cell the reference rows are set up like: the one the report compares them
        with, the baseline (the first cell where the grid names none, or names a
        reference row as its baseline)."""
        names = [c.name for c in self.cells]
        return self.baseline if self.baseline in names else names[0]

    def all_cells(self) -> list[CellSpec]:
        """The grid's cells followed by its reference rows, overrides merged with ``base``."""
        cells = [
            CellSpec(name=c.name, protocol=c.protocol or self.protocol,
                     overrides=deep_merge(self.base, c.overrides), labels=c.labels,
                     fixed=c.fixed)
            for c in self.cells
        ]  # fmt: skip
        if not cells:
            raise ConfigError(f"grid {self.name!r}: field 'cells' needs at least one cell")
        like = next(c for c in cells if c.name == self.reference_model)
        if "random_init" in self.references:
            cells.append(CellSpec(
                name="random_init", protocol=like.protocol, overrides=like.overrides,
                fixed=deep_merge(like.fixed, {"pretrain": {"epochs": 0}}),
                labels={"reference": "random init"},
            ))  # fmt: skip
        if "supervised" in self.references:
            cells.append(CellSpec(
                name="supervised", protocol="supervised", overrides=like.overrides,
                fixed=deep_merge(like.fixed, {"pretrain": {"epochs": 0}}),
                labels={"reference": "supervised"},
            ))  # fmt: skip
        names = [c.name for c in cells]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"grid {self.name!r}: duplicate cell name {sorted(dupes)[0]!r}")
        if self.baseline and self.baseline not in names:
            raise ConfigError(f"grid {self.name!r}: baseline {self.baseline!r} is not a cell")
        return cells


GRIDS = Catalog("grid", ("grids",))


def list_grids() -> list[str]:
    return GRIDS.names()


def load_spec(catalog: Catalog, name_or_path: str | Path, model: type[Spec]) -> tuple[Any, Spec]:
    """A catalog's document (built-in by name, or a YAML file by path) validated as
    ``model``: (where it was read from, the spec); else one ConfigError line naming the
    file and the first bad field. Grids and search spaces both load through it."""
    source, data = catalog.load(name_or_path)
    try:
        return source, model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {validation_line(exc, catalog.what)}") from None


def load_grid(name_or_path: str | Path) -> GridSpec:
    """A built-in grid by name, or a grid YAML file by path."""
    source, spec = load_spec(GRIDS, name_or_path, GridSpec)
    if GRIDS.is_file(name_or_path):
        spec._source = str(source)
    return spec
