"""Suites: several grids run as one evaluation (``asma-bench run --grid paper``).

A suite names grids; ``run`` plans the units of all of them before anything trains (so a
bad setting in the last grid fails before the first trains), runs them in order into one
runs folder, and every pretraining two grids need is trained once: checkpoints are named
by the digest of the settings that shape them, whichever grid asks.

Suite YAML::

    name: paper
    description: ...
    grids: [masking_pairs, encoders, ...]   # built-in names or grid YAML files
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from asma_bench.config import Catalog, load_yaml
from asma_bench.errors import ConfigError, validation_line
from asma_bench.harness.grids import GRIDS, GridSpec, load_grid
from asma_bench.harness.names import name_problem


class SuiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    grids: list[str] = Field(min_length=1, description="grid names or grid YAML files")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        problem = name_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("grids")
    @classmethod
    def _no_repeats(cls, v: list[str]) -> list[str]:
        dupes = sorted({g for g in v if v.count(g) > 1})
        if dupes:
            raise ValueError(f"grid {dupes[0]!r} is listed twice")
        return v

    def load_grids(self) -> list[GridSpec]:
        specs = [load_grid(g) for g in self.grids]
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"suite {self.name!r}: two of its grids are named {dupes[0]!r}")
        return specs


SUITES = Catalog("suite", ("grids", "suites"))


def list_suites() -> list[str]:
    return SUITES.names()


def find_suite(name_or_path: str | Path) -> SuiteSpec | None:
    """The suite ``name_or_path`` names (a built-in suite, or a YAML file with a ``grids``
    list); None when it names a grid."""
    text = str(name_or_path)
    if Catalog.is_file(text):
        path = Path(text)
        if not path.is_file():
            return None  # the grid loader says the file is missing
        data = load_yaml(path, "grid or suite")
        if "grids" not in data or "cells" in data:
            return None
        source: object = path
    elif text in list_suites() and text not in GRIDS.names():
        source, data = SUITES.load(text)
    else:
        return None
    try:
        return SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {validation_line(exc, 'suite')}") from None
