"""Planning a grid run: units (cell × seed) with their resolved configs, the options of
a run, and opening its store. The sequential runner and the shared queue both start here.

A unit is identified by a hash of its protocol and fully resolved config; every check
that can fail without training (a bad override, a split the dataset lacks, a folder that
is no dataset, settings an objective would ignore) fails here, before a store exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asma_bench.backbones import BACKBONES
from asma_bench.config import (
    EncoderMasks,
    PretrainConfig,
    RunConfig,
    build_config,
    flatten,
    is_profile_file,
    profile_dict,
)
from asma_bench.data.synthetic import resolve_config
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import CellSpec, GridSpec
from asma_bench.harness.tracking import (
    TAG_LEFT_OUT,
    TAG_PROFILE,
    TAG_SEEDS,
    Tracker,
    environment_tags,
)
from asma_bench.models.classifier import resolve_features
from asma_bench.objectives import OBJECTIVES, objective_class
from asma_bench.protocols.base import PROTOCOLS
from asma_bench.training.data import (
    dataset_layout,
    resolve_dataset,
    resolve_splits,
    synthetic_path,
)
from asma_bench.training.pretrain import encoder_names

log = logging.getLogger(__name__)


@dataclass
class Unit:
    grid: str
    cell: CellSpec
    seed: int
    protocol: str
    config: RunConfig
    # the data sources as the user typed them ("data" → "ucla/canonical"), where planning
    # recorded another (an absolute path): kept as tags, never part of the unit's id
    sources_given: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        blob = json.dumps(
            {"protocol": self.protocol, "config": self.config.identity()},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"{self.cell.name}/seed{self.seed}"

    @property
    def source_tags(self) -> dict[str, str]:
        """``asma.data.source_given`` (``asma.transfer.target.source_given``): the source
        as given, where the config records the absolute folder it named."""
        return {f"asma.{k}.source_given": v for k, v in self.sources_given.items()}


def sources_given(given: RunConfig, recorded: RunConfig) -> dict[str, str]:
    """The data sources of ``given`` that ``recorded`` (its resolved config) names otherwise
    (relative folders pinned to absolute ones): ``{"data": "ucla/canonical"}``."""
    pairs = {"data": (given.data, recorded.data)}
    if given.transfer.target is not None and recorded.transfer.target is not None:
        pairs["transfer.target"] = (given.transfer.target, recorded.transfer.target)
    return {k: a.source for k, (a, b) in pairs.items() if a.source != b.source}


@dataclass
class RunOptions:
    profile: str = "quick"
    seeds: Sequence[int] = (0, 1, 2)
    out: Path = Path("runs")
    data: str | None = None
    device: str | None = None
    tracking_uri: str | None = None
    overrides: Sequence[str | dict] = ()
    progress: bool = True
    # units in this many local processes that share the cores (each takes threads ÷ jobs)
    jobs: int = 1
    # shared Optuna storage URL: units become a queue that several workers share
    storage: str | None = None
    worker: bool = False  # with storage: stop when no unit is waiting (don't wait for others)
    heartbeat: int = 60  # seconds; a unit whose worker is silent for twice this is retried
    max_retry: int = 3
    experiment: str = "asma-bench"  # the MLflow experiment the grid's runs go to


@dataclass
class GridOutcome:
    grid: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # units another process holds and had not finished when this run ended ("name (who)")
    held: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    tracking_uri: str = ""


def command_line_overrides(
    data: str | None,
    device: str | None,
    overrides: Iterable[str | dict],
    data_role: str = "source",
) -> list[str | dict]:
    """``--data``, ``--device`` and the ``--set`` overrides as config layers, in the order
    they apply (``run`` and ``tune`` alike). With ``data_role="target"`` (a transfer grid)
    ``--data`` names the dataset the pretrained encoders are evaluated on."""
    cli: list[str | dict] = []
    if data and data_role == "target":
        cli.append({"transfer": {"target": {"source": data}}})
    elif data:
        cli.append({"data": {"source": data}})
    if device:
        cli.append({"device": device})
    cli.extend(overrides)
    return cli


def plan_units(grid: GridSpec, opts: RunOptions) -> list[Unit]:
    """Resolve every (cell, seed) config up front, so a bad override fails before training;
    each cell's config is checked against the machine and the dataset once (its first
    seed), and settled (:func:`settle`) into the form its unit is known by."""
    from asma_bench.harness.limits import cell_config, check_plan

    cli = command_line_overrides(opts.data, opts.device, opts.overrides, grid.data_role)
    seeds = check_plan(grid, opts.seeds)  # the seeds, the plan's size
    memo: dict[Any, Any] = {}
    units = []
    for seed in seeds:
        for cell in grid.all_cells():
            given = cell_config(grid, cell, opts.profile, cli, seed, memo)
            protocol = cell.protocol or grid.protocol
            try:  # the split each unit really uses is the one recorded and hashed
                cfg = settle(resolve_splits(given))
                _refuse_unfit_features(cfg, protocol)
            except ConfigError as exc:
                raise ConfigError(f"grid {grid.name!r}, cell {cell.name!r}: {exc}") from None
            units.append(Unit(grid.name, cell, int(seed), protocol, cfg, sources_given(given, cfg)))
    seen: dict[str, str] = {}
    for u in units:
        if u.id in seen:
            raise ConfigError(
                f"grid {grid.name!r}: cells {seen[u.id]!r} and {u.cell.name!r} "
                "resolve to the same configuration (an override erased their "
                "difference)"
            )
        seen[u.id] = u.cell.name
    _check_names(grid, units)
    units = _distinct_masks(grid, units)
    return units


def settle(cfg: RunConfig) -> RunConfig:
    """``cfg`` in the one form its unit is known by: the mask choice where its objective
    reads it, and the ``pretrain`` settings the objective ignores at their defaults.

    The ``masking`` section's choice (``pairing``, ``spatial``, ``temporal``) goes to every
    masked encoder; ``masking.encoders.<role>`` to one. An objective that masks one encoder
    keeps its choice in the section's own fields, one that masks several keeps one entry per
    encoder (the section's fields folded in, each encoder's own winning), so two ways of
    writing one choice plan one unit. A role the objective does not mask, or a choice for an
    objective that draws no masks, is refused in one line. MoCo and MAE have no Barlow
    Twins projector: their ``projector_dim`` and ``lambd`` go back to the defaults, so a
    profile's value for them neither shows in the run's config nor sets two runs apart."""
    objective = objective_class(cfg.pretrain.objective)
    roles = list(objective.mask_roles)
    m = cfg.masking
    for role in m.encoders:
        if role not in roles:
            masked = f"masks {', '.join(roles)}" if roles else "draws no masks"
            raise ConfigError(
                f"masking.encoders.{role}: objective {cfg.pretrain.objective!r} {masked}"
            )
    shared = {k: getattr(m, k) for k in ("pairing", "spatial", "temporal")}
    if not roles and any(v is not None for v in shared.values()):
        key = next(k for k, v in shared.items() if v is not None)
        raise ConfigError(f"masking.{key}: objective {cfg.pretrain.objective!r} draws no masks")
    if len(roles) == 1 and m.encoders:  # one encoder: its choice in the section's fields
        own = m.encoders[roles[0]]
        folded = {k: getattr(own, k) or v for k, v in shared.items()}
        m = m.model_copy(update={**folded, "encoders": {}})
    elif len(roles) > 1 and any(v is not None for v in shared.values()):
        encoders = {}
        for role in roles:
            own = m.encoders.get(role, EncoderMasks())
            encoders[role] = EncoderMasks(**{k: getattr(own, k) or v for k, v in shared.items()})
        m = m.model_copy(update={"pairing": None, "spatial": None, "temporal": None,
                                 "encoders": encoders})  # fmt: skip
    defaults = {k: PretrainConfig.model_fields[k].default for k in objective.unused_settings()}
    pretrain = cfg.pretrain
    if any(getattr(pretrain, k) != v for k, v in defaults.items()):
        pretrain = pretrain.model_copy(update=defaults)
    if m is cfg.masking and pretrain is cfg.pretrain:
        return cfg
    return cfg.model_copy(update={"masking": m, "pretrain": pretrain})


def _refuse_unfit_features(cfg: RunConfig, protocol: str) -> None:
    """A linear probe on features the objective's encoders cannot give (``aligned`` after a
    one-encoder objective, e.g. from a profile tuned on ASMa) fails at planning, not after
    the pretraining."""
    if protocol != "linear":
        return
    try:
        resolve_features(cfg.linear.features, encoder_names(cfg))
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}; remove linear.features from the profile or use --set linear.features=auto"
        ) from None


def profile_conflicts(grid: GridSpec, profile: str) -> list[str]:
    """Dotted keys that a profile file sets and some cell of ``grid`` sets to another value.

    A cell's own settings win over the profile's (defaults ← profile ← grid base and cell
    overrides ← command line ← a cell's fixed values), so those profile values are not
    used; the CLI says so. Built-in profiles only size the runs and are not checked.
    """
    if not is_profile_file(profile):
        return []
    build_config(profile)  # a bad profile file is named here, before any note about it
    mine = flatten(profile_dict(profile))
    keys: set[str] = set()
    for cell in grid.all_cells():  # (fixed values, e.g. random_init's 0 epochs, are by design)
        for key, value in flatten(cell.overrides).items():
            if key in mine and mine[key] != value:
                keys.add(key)
    return sorted(keys)


def _check_names(grid: GridSpec, units: Sequence[Unit]) -> None:
    """Every protocol, objective, pairing, backbone and synthetic preset a unit names is
    registered: a typo fails before anything runs, naming the grid and the cell."""
    checked: set[tuple[str, str]] = set()
    for u in units:
        cfg = u.config
        names = [
            (PROTOCOLS.get, u.protocol),
            (OBJECTIVES.get, cfg.pretrain.objective),
            (BACKBONES.get, cfg.backbone.name),
        ]
        data = [cfg.data] + ([cfg.transfer.target] if cfg.transfer.target else [])
        names += [(resolve_config, d.preset) for d in data if d.source == "synthetic"]
        for lookup, name in names:
            if (lookup.__qualname__, name) in checked:
                continue
            try:
                lookup(name)
            except ConfigError as exc:
                raise ConfigError(f"grid {grid.name!r}, cell {u.cell.name!r}: {exc}") from None
            checked.add((lookup.__qualname__, name))


def _joint_count(data: Any) -> int | None:  # noqa: ANN401 - a DataConfig
    """V of the dataset a config names (without loading it), or None when unknown."""
    layout = dataset_layout(data)
    return None if layout is None else layout.num_joints


_SAID: set[tuple] = set()  # cells left out, already said in this process
#: grid name → {cell: why the latest plan of the grid left it out}, for its grid run's tag
LEFT_OUT: dict[str, dict[str, str]] = {}


def _distinct_masks(grid: GridSpec, units: Sequence[Unit]) -> list[Unit]:
    """``units`` without the cells that would be another cell's experiment under its name.

    Counts given as fractions of V and T are rounded at the run's sizes. At a small T (16
    frames) several of the paper's k values round to the same count: that is refused, with
    the frames to run at. On a skeleton with fewer joints than the paper's 25 (NW-UCLA's
    20), n values that the paper tells apart round to one count (n = 7 and 8 of 25 are both
    6 of 20), and no setting can separate them on that dataset: the later cell is left out,
    said once per cell in a warning, and its row stays empty in the report.
    """
    seen: dict[tuple, Unit] = {}
    keep: list[Unit] = []
    dropped: dict[str, tuple[str, float, int | None]] = {}
    for u in units:
        m, v, t = u.config.masking, _joint_count(u.config.data), u.config.data.frames
        n = round(m.n * v) if (m.n < 1 and v) else m.n
        k = round(m.k * t) if m.k < 1 else m.k
        rest = u.config.model_dump(mode="json", exclude={"masking": {"n", "k"}})
        key = (u.protocol, json.dumps(rest, sort_keys=True), n, k)
        first = seen.get(key)
        if first is None or first.cell.name == u.cell.name:
            seen[key] = u
            keep.append(u)
            continue
        if first.config.masking.k != m.k:  # frames make them alike: the user can change that
            raise ConfigError(
                f"grid {grid.name!r}: cells {first.cell.name!r} and {u.cell.name!r} mask the "
                f"same {n:g} joints and {k:g} of {t} frames (fractions of T round alike at "
                "this size); run with more frames, e.g. --set data.frames=50"
            )
        dropped[u.cell.name] = (first.cell.name, n, v)
    LEFT_OUT[grid.name] = {
        cell: f"masks the same {n:g} of {v} joints as {other} (the fractions of V round alike)"
        for cell, (other, n, v) in dropped.items()
    }
    for cell, (other, n, v) in dropped.items():
        if (grid.name, cell, other, v) in _SAID:  # planned again by the runner: said once
            continue
        _SAID.add((grid.name, cell, other, v))
        log.warning(
            "grid %s: cell %s masks the same %g of %s joints as cell %s on this dataset (the "
            "fractions of V round alike), so it is not run: its results would be %s's",
            grid.name, cell, n, v, other, other,
        )  # fmt: skip
    return keep


def prepare_synthetic(units: list[Unit], data_root: Path, label: str) -> None:
    """Generate the synthetic datasets ``units`` read (training data and transfer targets)
    before the first unit starts: a step of its own, with a line saying so, so that the
    units' progress and ETA measure units and not a one-off generation."""
    prepare_synthetic_data([unit.config for unit in units], data_root, label)


def prepare_synthetic_data(configs: list[RunConfig], data_root: Path, label: str) -> None:
    """:func:`prepare_synthetic` for the configs themselves (``tune``'s, before its
    ``--jobs`` workers start: they must not both generate one dataset)."""
    needed: dict[Path, Any] = {}
    for config in configs:
        for data in (config.data, config.transfer.target):
            if data is not None and data.source == "synthetic":
                needed.setdefault(synthetic_path(data, data_root), data)
    for path, data in sorted(needed.items()):
        preset, seed = data.preset, data.synth_seed
        if (path / "info.json").is_file():
            continue
        print(f"{label}: generating the synthetic '{preset}' data (seed {seed}), once for "
              "every unit", file=sys.stderr, flush=True)  # fmt: skip
        t0 = time.monotonic()
        resolve_dataset(data, data_root)
        print(f"{label}: synthetic data ready ({time.monotonic() - t0:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip


def check_unit_inputs(unit: Unit, out: Path, given: str = "") -> None:
    """What a recorded unit needs before a run of it is created (``rerun``): its dataset
    folders there, holding the content it was planned on, its synthetic data generated, and
    writable checkpoint and data folders under ``out``; one line naming what is wrong.
    ``given`` is how the user named the unit (its run id) in the messages."""
    from asma_bench.training.data import check_fingerprint

    who = f"run {given}: " if given else ""
    for key, data in (("data", unit.config.data), ("transfer.target", unit.config.transfer.target)):
        if data is None or data.source == "synthetic":
            continue
        try:
            check_fingerprint(data, resolve_dataset(data, out / "data"))
        except ConfigError as exc:
            hint = ""
            if not Path(data.source).expanduser().is_absolute():  # a store of older versions
                hint = (f" ({key}.source was recorded relative to the folder the run was made "
                        "in: rerun it from there)")  # fmt: skip
            raise ConfigError(f"{who}{exc}{hint}") from None
    for folder in (out / "checkpoints", out / "data"):
        try:
            ensure_writable(folder)
        except ConfigError as exc:
            raise ConfigError(f"{who}{exc}") from None
    prepare_synthetic([unit], out / "data", unit.grid)


def ensure_writable(folder: str | Path) -> Path:
    """``folder``, created if needed, after proving a file can be written in it: a read-only
    or full output folder fails at once, not after MLflow's database retries."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise ConfigError(f"--runs {folder}: a symbolic link to nothing (or a link loop)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--runs {folder}: cannot write there ({exc.strerror or exc})") from None
    return folder


def open_grid_run(
    tracker: Tracker, grid: GridSpec, opts: RunOptions, tags: dict[str, str] | None = None
) -> str:
    """The grid's parent MLflow run (created once, reused on reruns).

    A rerun may add seeds or use another profile: what changes between runs is kept in tags
    (``asma.seeds``: every seed requested so far, which reports check for completeness;
    ``asma.profile``: the latest profile), since MLflow refuses to change a parameter. The
    grid's name and table are parameters, logged once.
    """
    parent = tracker.parent_run(
        grid.name, {TAG_PROFILE: opts.profile, **(tags or {}), **environment_tags()}
    )
    run = tracker.client.get_run(parent)
    try:
        earlier = json.loads(run.data.tags.get(TAG_SEEDS, "[]"))
    except ValueError:
        earlier = []
    seeds = sorted({int(s) for s in [*earlier, *opts.seeds]})
    tags = {TAG_SEEDS: json.dumps(seeds), TAG_PROFILE: opts.profile}
    if LEFT_OUT.get(grid.name):  # cells this dataset cannot tell apart: the report says why
        try:
            said = json.loads(run.data.tags.get(TAG_LEFT_OUT, "{}"))
        except ValueError:
            said = {}
        tags[TAG_LEFT_OUT] = json.dumps({**said, **LEFT_OUT[grid.name]}, sort_keys=True)
    tracker.set_tags(parent, tags)
    fresh = {k: v for k, v in {"grid": grid.name, "table": grid.table}.items()
             if k not in run.data.params}  # fmt: skip
    if fresh:
        tracker.log_params(parent, fresh)
    return parent
