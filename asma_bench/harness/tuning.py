"""Hyper-parameter search with Optuna: TPE sampling, median pruning on validation accuracy.

A search space is a YAML file beside the grids (``asma_bench/grids/spaces/NAME.yaml``) or
the user's own::

    name: masking_ratio
    description: ...
    protocol: linear                 # what one trial runs
    base: {pretrain: {objective: asma}, linear: {features: aligned}}
    params:
      masking.n: {type: count, of: joints, low: 0.2, high: 0.52}   # whole joints of V
      masking.k: {type: count, of: frames, low: 0.1, high: 0.3}    # whole frames of T
      pretrain.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      distill.student_depth: {type: int, low: 2, high: 7}
      masking.pairing: {type: categorical, choices: [ldsm_hmtm, hdsm_lmtm]}

The objective is the protocol's final validation top-1 (``val_top1``; the test split is
never looked at). Every epoch's validation accuracy of the protocol's main stage is
reported to the trial, and a trial whose curve falls below the median of earlier trials at
the same step is pruned. The first trial of a new study runs the profile's own values (when
they lie in the space), so "improved" means better than the configuration you started from.
A ``count`` parameter (the masking sizes n and k) is drawn as an integer over the counts
the dataset's V joints or the profile's T frames allow and stored in the config as
count/total, which the masks turn back into that count: no two trials differ only by a
fraction that rounds to the same mask (:class:`ParamSpec`).

Every trial is an MLflow run (tag ``asma.kind = trial``) in the experiment ``tune:<space>``
of the runs folder's store (``--runs``, the store the grids log to; ``--tracking-uri``
another), which grid reports never read; a study of an earlier version goes on logging to
``asma-bench-tuning`` in its own folder. The study names its objective after the metric
(``study.metric_names``), so Optuna's plots and dashboard label the axis ``val_top1``, and
records what it tunes on as user attributes (``asma.space``, ``asma.params``,
``asma.profile``, ``asma.data``, ``asma.seeds``, ``asma.tracking_uri``, ``asma.experiment``;
see :func:`resume_attrs`).

A study is resumed by running ``tune`` again with its name and storage; one made with
another space, profile or data is refused in one line, a new seed is said in one. The
resumed run goes on where the study stands: a trial a process on this host left RUNNING
and that process is gone (a SIGKILL; each trial records its host and pid, ``asma.worker``)
is marked FAIL, its MLflow run KILLED and its point queued once more (trials of other
hosts are failed by Optuna's heartbeat); the sampler is seeded from the seed and the
number of trials already there, so it proposes new points instead of the first ones again;
and a point already evaluated is not run again: its trial takes the earlier value
(``asma.same_as``).

``TuneOptions.jobs`` (``tune --jobs``) runs the trials in that many local processes that
share the cores and the study (:func:`_tune_parallel`); the study's points then depend on
which trial finished first, each trial's value does not.

The best trial can be saved as a profile (:func:`save_profile`): the profile the tuning
started from plus the tuned parameters at their best values, and nothing else. What the
space's ``base`` or the command line fixed (e.g. ``pretrain.objective: asma``) stays out,
so the profile can run any grid: a grid decides those settings for its cells.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from asma_bench.config import (
    Catalog,
    RunConfig,
    build_config,
    deep_merge,
    flatten,
    get_dotted,
    parse_override,
    profile_dict,
)
from asma_bench.errors import ConfigError
from asma_bench.fileio import atomic_write_text
from asma_bench.harness.grids import NamedSpec, load_spec
from asma_bench.harness.limits import check_config, check_study_name
from asma_bench.harness.plan import command_line_overrides, prepare_synthetic_data
from asma_bench.harness.queue import QueueSettings, open_storage, quiet_optuna, redact
from asma_bench.harness.tracking import (
    TAG_PROFILE,
    Tracker,
    default_tracking_uri,
    environment_tags,
    filter_value,
)
from asma_bench.protocols import PROTOCOLS, UnitContext, run_protocol
from asma_bench.training.data import resolve_splits
from asma_bench.training.loop import DivergenceError, stream_seed

log = logging.getLogger(__name__)

TUNING_EXPERIMENT = "asma-bench-tuning"
TAG_KIND, TAG_STUDY, TAG_TRIAL, TAG_SPACE = "asma.kind", "asma.study", "asma.trial", "asma.space"
TAG_STATE = "asma.trial_state"
ATTR_RUN = "asma.mlflow_run"
ATTR_REASON = "asma.reason"  # why a trial was pruned or failed
ATTR_WORKER = "asma.worker"  # {host, pid, started}: the process that runs the trial
ATTR_SAME_AS = "asma.same_as"  # a trial that met an evaluated point: that trial's number
ATTR_RETRY_OF = "asma.retry_of"  # a trial re-running the point of one whose process died
ATTR_COMMAND = "asma.command"  # tune --jobs: a token of the command whose worker ran it

# per-epoch validation keys of each protocol's main stage (fnmatch patterns)
PRUNE_KEYS: dict[str, tuple[str, ...]] = {
    "linear": ("linear_val_top1",),
    "distill": ("distill_val_top1",),
    "finetune": ("finetune_*_val_top1",),
    "semi": ("finetune_*_val_top1",),
    "supervised": ("finetune_*_val_top1",),
    "transfer": ("finetune_*_val_top1", "linear_val_top1"),
}


class ParamSpec(BaseModel):
    """One dimension of a search space.

    ``type: count`` is a whole number of the dataset's joints (``of: joints``, V) or of the
    profile's frames (``of: frames``, T = ``data.frames``), e.g. the masking sizes n and k:
    Optuna draws an integer between ``low``·total and ``high``·total (fractions of the
    total, default: every count from 1 to total − 1), and the config stores count/total,
    which the masks turn back into exactly that count (:func:`fraction_count`). Two trials
    never differ only in a fraction that rounds to the same mask."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical", "count"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    of: Literal["joints", "frames"] | None = None  # what a count counts

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if (self.of is None) == (self.type == "count"):
            raise ValueError("'type: count' needs 'of: joints' or 'of: frames', and only it")
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            return self
        if self.type == "count":
            if self.log or self.step is not None or self.choices is not None:
                raise ValueError("a count parameter takes 'of', 'low' and 'high' only")
            bounds = [b for b in (self.low, self.high) if b is not None]
            if not all(0 < b <= 1 for b in bounds) or (len(bounds) == 2 and bounds[0] >= bounds[1]):
                raise ValueError("a count's 'low' < 'high' are fractions of the total in (0, 1]")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("needs 'low' < 'high'")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale parameter needs 'low' > 0")
        if self.log and self.step is not None:
            raise ValueError("'log' and 'step' cannot be combined")
        integral = float(self.low).is_integer() and float(self.high).is_integer()
        if self.type == "int" and not integral:
            raise ValueError("an int parameter needs integer bounds")
        return self

    def count_range(self, total: int) -> tuple[int, int]:
        """The whole counts of ``total`` joints or frames a count parameter spans: from
        ``low``·total up to ``high``·total, at least 1, and one left visible."""
        eps = 1e-9  # 0.2 * 25 is 5, not 5.000000000000001
        lo = 1 if self.low is None else max(1, math.ceil(self.low * total - eps))
        hi = total - 1 if self.high is None else min(total - 1, math.floor(self.high * total + eps))
        return lo, hi

    def contains(self, value: Any, totals: Mapping[str, int] | None = None) -> bool:
        """Whether ``value`` is a point of this dimension (used to start from the profile;
        a count's ``value`` is a count, of ``totals[of]``)."""
        if self.type == "categorical":
            return value in (self.choices or [])
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type in ("int", "count") and not float(value).is_integer():
            return False
        if self.type == "count":
            lo, hi = self.count_range(_total(self, totals))
            return lo <= value <= hi
        return bool(self.low <= value <= self.high)

    def suggest(self, trial: Any, name: str, totals: Mapping[str, int] | None = None) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "count":
            return trial.suggest_int(name, *self.count_range(_total(self, totals)))
        if self.type == "int":
            step = int(self.step) if self.step else 1
            return trial.suggest_int(name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


def _total(spec: ParamSpec, totals: Mapping[str, int] | None) -> int:
    if not totals or spec.of not in totals:
        raise ValueError(f"a count of {spec.of} needs their total (see count_totals)")
    return totals[spec.of]


def fraction_count(value: float, total: int) -> int:
    """The count a config's mask size stands for: a fraction below 1 of ``total`` is
    ``round(value · total)`` (as :func:`asma_bench.strategies.base.resolve_count` takes
    it), a larger value a count."""
    return int(round(value * total)) if value < 1 else int(value)


def count_fraction(count: int, total: int) -> float:
    """What the config stores for ``count`` of ``total`` joints or frames: count/total,
    which :func:`fraction_count` (and the masks) turn back into ``count`` for every
    count from 1 to total − 1."""
    return count / total


class SearchSpace(NamedSpec):
    """A named search space: the protocol a trial runs and the parameters to tune."""

    protocol: str = "linear"
    objective: str = "val_top1"
    prune_on: list[str] = Field(default_factory=list, description="per-epoch keys (fnmatch)")
    base: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, ParamSpec]

    @field_validator("objective")
    @classmethod
    def _validation_metric(cls, v: str) -> str:
        if "test" in v or "val" not in v:
            raise ValueError(f"{v!r} must be a validation metric (never tune on the test split)")
        return v

    @field_validator("params")
    @classmethod
    def _config_fields(cls, v: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        if not v:
            raise ValueError("a search space needs at least one parameter")
        fields = RunConfig().flat()
        for key in v:
            parts = key.split(".")
            # keys inside free-form mappings (backbone.params.*, distill.student_params.*)
            in_mapping = any(
                isinstance(fields.get(".".join(parts[:i])), dict) for i in range(1, len(parts))
            )
            if key not in fields and not in_mapping:
                raise ValueError(f"{key!r} is not a config field")
        return v

    @model_validator(mode="after")
    def _tunable(self) -> SearchSpace:
        if self.protocol not in PRUNE_KEYS and not self.prune_on:
            raise ValueError(
                f"protocol {self.protocol!r} is not tunable (no per-epoch validation "
                f"accuracy); use one of {', '.join(PRUNE_KEYS)} or set prune_on"
            )
        return self

    @property
    def prune_keys(self) -> tuple[str, ...]:
        return tuple(self.prune_on) or PRUNE_KEYS[self.protocol]


SPACES = Catalog("search space", ("grids", "spaces"))


def list_spaces() -> list[str]:
    return SPACES.names()


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A built-in search space by name, or a space YAML file by path."""
    return load_spec(SPACES, name_or_path, SearchSpace)[1]


def nested(params: dict[str, Any]) -> dict[str, Any]:
    """``{'masking.n': 0.3}`` → ``{'masking': {'n': 0.3}}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def count_totals(space: SearchSpace, cfg: RunConfig) -> dict[str, int]:
    """What the space's count parameters count: ``joints`` = the dataset's V, ``frames`` =
    T = ``data.frames`` of ``cfg``; one line naming a count that spans no whole count."""
    counts = {k: spec for k, spec in space.params.items() if spec.type == "count"}
    if not counts:
        return {}
    from asma_bench.training.data import dataset_layout

    layout = dataset_layout(cfg.data)
    if layout is None:
        raise ConfigError(
            f"search space {space.name!r}: {', '.join(counts)} count the dataset's joints "
            f"or frames, and {cfg.data.source} holds no converted dataset (no info.json)"
        )
    totals = {"joints": layout.num_joints, "frames": cfg.data.frames}
    for key, spec in counts.items():
        lo, hi = spec.count_range(totals[spec.of])
        if lo > hi:
            raise ConfigError(
                f"search space {space.name!r}: {key} spans no whole number of the "
                f"{totals[spec.of]} {spec.of} (low {spec.low}, high {spec.high} of them)"
            )
    return totals


def config_values(
    space: SearchSpace, params: Mapping[str, Any], totals: Mapping[str, int]
) -> dict[str, Any]:
    """A trial's parameters as the config stores them: a count of V joints or T frames
    as count/total (:func:`count_fraction`), others as they are."""
    out = {}
    for key, value in params.items():
        spec = space.params.get(key)
        counted = spec is not None and spec.type == "count"
        out[key] = count_fraction(value, _total(spec, totals)) if counted else value
    return out


# --------------------------------------------------------------------------- tuning
@dataclass
class TuneOptions:
    profile: str = "smoke"
    trials: int = 20
    out: Path = Path("runs")  # the runs folder: its MLflow store takes the trials
    storage: str | None = None  # default: SQLite in ``out``
    study: str | None = None  # default: space name + hash of the space and base config
    seed: int = 0
    data: str | None = None
    device: str | None = None
    tracking_uri: str | None = None
    overrides: Sequence[str | dict] = ()
    start_from_profile: bool = True
    startup_trials: int = 5  # TPE's random start
    prune_startup_trials: int = 3  # trials that complete before pruning starts
    prune_warmup_steps: int = 1  # epochs of a trial never pruned
    timeout_s: float | None = None
    jobs: int = 1  # trials in this many local processes that share the cores (_tune_parallel)
    progress: bool = False  # a progress bar (a terminal)
    progress_lines: Callable[[str], None] | None = None  # one line per trial (logs, CI)

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")


@dataclass
class TrialRow:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    seconds: float | None


@dataclass
class TuneOutcome:
    space: str
    study: str
    storage: str  # password hidden
    objective: str
    trials: list[TrialRow] = field(default_factory=list)
    best: TrialRow | None = None
    first: TrialRow | None = None
    # the base profile's own values with the best parameters merged in (see best_profile)
    profile: dict[str, Any] = field(default_factory=dict)
    base_profile: str = ""
    # what the space's base and the command line set during tuning, which the profile omits
    not_saved: dict[str, Any] = field(default_factory=dict)
    tracking_uri: str = ""
    experiment: str = ""  # the MLflow experiment of the trials
    counts: dict[str, str] = field(default_factory=dict)  # the best counts: "8 of 20 joints"

    @property
    def improved(self) -> bool:
        return (
            self.best is not None
            and self.first is not None
            and self.best.value is not None
            and self.first.value is not None
            and self.best.value > self.first.value
        )

    def verdict(self) -> str:
        """One line saying whether tuning beat the first trial."""
        if self.best is None or self.first is None:
            return f"no trial completed, so there is no best {self.objective}"
        if self.improved:
            return (
                f"improved: best {self.objective} {self.best.value:.2f} (trial "
                f"{self.best.number}) vs the first trial's {self.first.value:.2f} "
                f"({self.best.value - self.first.value:+.2f})"
            )
        return (
            f"did NOT improve: no trial beat the first trial's {self.objective} "
            f"{self.first.value:.2f}"
        )


def study_digest(space: SearchSpace, base: RunConfig) -> str:
    blob = json.dumps(
        {"space": space.model_dump(mode="json"), "base": base.identity()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _cli_overrides(opts: TuneOptions) -> list[str | dict]:
    return command_line_overrides(opts.data, opts.device, opts.overrides)


def tune(space: SearchSpace, opts: TuneOptions) -> TuneOutcome:
    """Run ``opts.trials`` more trials of the study of ``space`` and summarise it."""
    import optuna

    out = Path(opts.out)
    cli = _cli_overrides(opts)
    if opts.study is not None:
        check_study_name(opts.study)
    base = resolve_splits(build_config(opts.profile, [space.base, *cli, {"seed": opts.seed}]))
    PROTOCOLS.get(space.protocol)  # an unknown protocol fails before any storage is touched
    check_config(base, space.protocol)  # the device, the masks, the memory: before storage
    totals = count_totals(space, base)  # V and T of the count parameters (masking n, k)
    name = opts.study or f"tune:{space.name}:{study_digest(space, base)}"
    out.mkdir(parents=True, exist_ok=True)
    url = opts.storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    storage = open_storage(url, QueueSettings())
    uri = opts.tracking_uri or default_tracking_uri(out)
    with quiet_optuna():
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction="maximize",
            load_if_exists=True,
            pruner=make_pruner(opts),
        )
        check_distributions(study, space, totals)  # before the study records this space
        experiment = resume_attrs(study, study_attrs(space, opts, base, uri))
        study.set_metric_names([space.objective])  # plots say val_top1, not "Objective Value"
        resumed = len(study.trials)  # trials the study holds before this call adds any
        if opts.start_from_profile and not study.trials:
            start = profile_point(space, base, totals)
            if start is not None:
                study.enqueue_trial(start, user_attrs={"asma.start": "profile"})
    tracker = Tracker(uri, experiment=experiment, artifact_root=out / "artifacts")
    with quiet_optuna():
        reclaim_dead_trials(study, tracker)
        # a resumed study draws on from where it stands, not from the seed's first points
        # again (a new sampler with the same seed would propose the same points anew)
        study.sampler = make_sampler(opts, resumed)
    parent = _study_run(tracker, name, space, opts)
    objective = _Objective(space, opts, cli, tracker, parent, name, out)
    objective.totals = totals
    bar = None
    if opts.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=opts.trials, desc=f"tune {space.name}", unit="trial", dynamic_ncols=True)
        objective.progress = bar

    finished = 0

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal finished
        finished += 1
        best = _best(study)
        if bar is not None:
            bar.update(1)
            if best is not None:
                bar.set_postfix_str(f"best {best.value:.2f}")
        if opts.progress_lines is not None:
            head = f"[{finished}/{opts.trials}] tune {space.name}"
            opts.progress_lines(f"{head} {trial_line(trial, space.objective, best)}")

    try:
        if opts.jobs > 1:
            # generated once, here: two workers must not both write one dataset
            prepare_synthetic_data([base], out / "data", f"tune {space.name}")
            shared = _Shared(space, opts, cli, name, url, uri, experiment, parent, totals, resumed)
            _tune_parallel(study, tracker, shared, after)
        else:
            with quiet_optuna():
                study.optimize(
                    objective,
                    n_trials=opts.trials,
                    timeout=opts.timeout_s,
                    catch=CAUGHT,
                    callbacks=[after],
                )
    finally:
        if bar is not None:
            bar.close()
    outcome = summarize(study, space, opts, redact(url), totals)
    outcome.tracking_uri, outcome.experiment = uri, experiment
    if outcome.best is not None:
        tracker.log_metrics(parent, {f"best_{space.objective}": outcome.best.value})
        tracker.set_tags(parent, {"asma.best_trial": outcome.best.number})
    return outcome


def profile_point(
    space: SearchSpace, base: RunConfig, totals: Mapping[str, int]
) -> dict[str, Any] | None:
    """The profile's own values as a point of the space (a mask size as its count), or
    None when one lies outside it."""
    values = base.model_dump(mode="json")
    point = {}
    for key, spec in space.params.items():
        value = get_dotted(values, key)
        if spec.type == "count" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = fraction_count(value, totals[spec.of])
        if not spec.contains(value, totals):
            return None
        point[key] = value
    return point


#: study user attributes: what the study tunes on (a resumption that differs is refused)
ATTR_SPACE, ATTR_PARAMS, ATTR_PROFILE, ATTR_DATA = (
    "asma.space", "asma.params", "asma.profile", "asma.data"
)  # fmt: skip
#: the trials' seeds (a new one is added, with a warning), and where the trials are logged
ATTR_SEEDS, ATTR_TRACKING, ATTR_EXPERIMENT = "asma.seeds", "asma.tracking_uri", "asma.experiment"


def study_attrs(
    space: SearchSpace, opts: TuneOptions, base: RunConfig, tracking_uri: str
) -> dict[str, Any]:
    """The study's user attributes: the space (its name and parameter grid), the profile,
    the data source (its content fingerprint where it is a folder), the seeds and the
    MLflow store and experiment of its trials (``tune:<space>``)."""
    data = {"source": base.data.source}
    if base.data.source == "synthetic":
        data.update(preset=base.data.preset, synth_seed=base.data.synth_seed)
    elif base.data.fingerprint:
        data["fingerprint"] = base.data.fingerprint
    params = {k: p.model_dump(mode="json", exclude_defaults=True) for k, p in space.params.items()}
    return {
        ATTR_SPACE: space.name,
        ATTR_PARAMS: params,
        ATTR_PROFILE: opts.profile,
        ATTR_DATA: data,
        ATTR_SEEDS: [opts.seed],
        ATTR_TRACKING: redact(tracking_uri),
        ATTR_EXPERIMENT: f"tune:{space.name}",
    }


def resume_attrs(study: Any, attrs: dict[str, Any]) -> str:  # noqa: ANN401 - an Optuna Study
    """Record ``attrs`` on ``study``; a study that holds them already must have been made
    with the same space, parameters, profile and data (else one line refuses it: its
    trials would not compare), and a new seed or MLflow store is said in one warning line.
    Returns the MLflow experiment of its trials: the recorded one, or for a study of an
    earlier version (no attributes, trials logged to ``asma-bench-tuning``) that one."""
    had = study.user_attrs
    if ATTR_SPACE not in had:  # a new study, or one from before the attributes
        experiment = TUNING_EXPERIMENT if study.trials else attrs[ATTR_EXPERIMENT]
        for key, value in {**attrs, ATTR_EXPERIMENT: experiment}.items():
            study.set_user_attr(key, value)
        return experiment
    differ = [k for k in (ATTR_SPACE, ATTR_PARAMS, ATTR_PROFILE, ATTR_DATA)
              if not _same(k, had.get(k), attrs[k])]  # fmt: skip
    if differ:
        was = ", ".join(f"{k.removeprefix('asma.')}={_compact(had.get(k))}" for k in differ)
        now = ", ".join(f"{k.removeprefix('asma.')}={_compact(attrs[k])}" for k in differ)
        raise ConfigError(
            f"study {study.study_name!r} was made with {was}; this run has {now}: resume it "
            "with the same settings, or name a new --study"
        )
    seeds = sorted({*had.get(ATTR_SEEDS, []), *attrs[ATTR_SEEDS]})
    if seeds != sorted(had.get(ATTR_SEEDS, [])):
        log.warning("tune: study %r ran its trials with seed %s; its new trials run with seed %s",
                    study.study_name, had.get(ATTR_SEEDS), attrs[ATTR_SEEDS][0])  # fmt: skip
        study.set_user_attr(ATTR_SEEDS, seeds)
    if had.get(ATTR_TRACKING) != attrs[ATTR_TRACKING]:
        log.warning("tune: study %r logged its trials to %s; its new trials go to %s",
                    study.study_name, had.get(ATTR_TRACKING), attrs[ATTR_TRACKING])  # fmt: skip
    return str(had.get(ATTR_EXPERIMENT) or attrs[ATTR_EXPERIMENT])


def check_distributions(
    study: Any,  # noqa: ANN401 - an Optuna Study
    space: SearchSpace,
    totals: Mapping[str, int],
) -> None:
    """Refuse, in one line, a space that draws a parameter of the study otherwise than its
    trials did (a float ``masking.n`` of an earlier version's study, now a count; other
    categorical choices, or log scale): Optuna would fail the first trial on it."""
    import optuna

    dists: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        dists.update(t.distributions)
    for key, spec in space.params.items():
        if key not in dists:
            continue
        new = _distribution(spec, totals)
        try:
            optuna.distributions.check_distribution_compatibility(dists[key], new)
        except ValueError:
            raise ConfigError(
                f"study {study.study_name!r} drew {key} as {_kind(dists[key])}; space "
                f"{space.name!r} draws it as {_kind(new)}: name a new --study"
            ) from None


def _distribution(spec: ParamSpec, totals: Mapping[str, int]) -> Any:  # noqa: ANN401
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec.type == "categorical":
        return CategoricalDistribution(spec.choices or [])
    if spec.type == "count":
        return IntDistribution(*spec.count_range(_total(spec, totals)))
    if spec.type == "int":
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log)  # type: ignore[arg-type]
    return FloatDistribution(spec.low, spec.high, log=spec.log)  # type: ignore[arg-type]


def _kind(dist: Any) -> str:  # noqa: ANN401 - an Optuna distribution
    name = type(dist).__name__.removesuffix("Distribution").lower()
    if getattr(dist, "choices", None) is not None:
        return f"{name} {list(dist.choices)}"
    return f"{name}{' (log)' if getattr(dist, 'log', False) else ''}"


def _same(key: str, had: Any, now: Any) -> bool:  # noqa: ANN401 - JSON values
    if key == ATTR_DATA and isinstance(had, dict) and had.get("fingerprint"):
        return had.get("fingerprint") == now.get("fingerprint")  # the content, wherever it is
    return bool(had == now)


def _compact(value: Any) -> str:  # noqa: ANN401 - JSON values
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def sampler_seed(seed: int, trials: int) -> int:
    """The sampler's seed for a study that holds ``trials`` trials: ``seed`` for a new
    study (its trials reproduce), else one derived from both, so that each resumption
    draws points of its own."""
    return seed if trials == 0 else stream_seed(seed, "tune-sampler", trials) % 2**32


def make_sampler(opts: TuneOptions, resumed: int, worker: int = 0) -> Any:  # noqa: ANN401
    """The study's TPE sampler, seeded by :func:`sampler_seed`. A ``--jobs`` worker other
    than the first draws from a seed of its own (the same seed in two workers would
    propose the same random start points), and with several workers a running trial
    counts as a poor result (``constant_liar``) so that workers spread their proposals
    instead of all exploring the best region at once."""
    import optuna

    seed = sampler_seed(opts.seed, resumed)
    if worker:
        seed = stream_seed(seed, "tune-worker", worker) % 2**32
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=opts.startup_trials, constant_liar=opts.jobs > 1
    )


def make_pruner(opts: TuneOptions) -> Any:  # noqa: ANN401 - an Optuna pruner
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=opts.prune_startup_trials, n_warmup_steps=opts.prune_warmup_steps
    )


def _this_worker() -> dict[str, Any]:
    return {"host": platform.node(), "pid": os.getpid(), "started": _process_start(os.getpid())}


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), to tell it from a
    later process given the same pid; None where /proc is missing or it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def worker_gone(worker: Any) -> bool:  # noqa: ANN401 - a trial's user attribute
    """Whether the process a trial's ``asma.worker`` names is certainly gone: on this host,
    with no such pid, a zombie, or the pid now another process. A trial run on another
    host (a shared storage) is never judged here: Optuna's heartbeat fails it when stale."""
    if os.name != "posix":  # (elsewhere signal 0 is no probe: Windows sends CTRL_C_EVENT)
        return False
    if not isinstance(worker, dict) or worker.get("host") != platform.node():
        return False
    pid = worker.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return False
    if _process_state(pid) in ("Z", "X"):  # killed, not yet reaped by its parent
        return True
    started, now = worker.get("started"), _process_start(pid)
    return started is not None and now is not None and started != now


def reclaim_dead_trials(study: Any, tracker: Any) -> list[int]:  # noqa: ANN401
    """Trials left RUNNING by a process that is gone (a SIGKILL, a crash of the machine)
    are marked FAIL, their MLflow runs KILLED, and their point queued once more (it was
    never evaluated; a retry that dies too is not retried again). Trials failed by
    Optuna's heartbeat check have their MLflow runs closed too. Returns the trial numbers
    marked FAIL here."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(ATTR_WORKER)
        if not worker_gone(worker):
            continue
        reason = f"its process ({worker['host']}, pid {worker['pid']}) ended before the trial did"
        try:
            storage.set_trial_user_attr(t._trial_id, ATTR_REASON, reason)
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process reclaimed it first
        failed.append(t.number)
        log.warning("tune: trial %d was left RUNNING: %s; marked FAIL", t.number, reason)
        if t.params and ATTR_RETRY_OF not in t.user_attrs:
            attrs = {ATTR_RETRY_OF: t.number}
            if "asma.start" in t.user_attrs:
                attrs["asma.start"] = t.user_attrs["asma.start"]
            study.enqueue_trial(dict(t.params), user_attrs=attrs)
        _close_run(tracker, t.user_attrs.get(ATTR_RUN), reason)
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if ATTR_REASON not in t.user_attrs and t.user_attrs.get(ATTR_RUN):
            _close_run(tracker, t.user_attrs[ATTR_RUN], "its heartbeat stopped")
    return failed


def _close_run(tracker: Any, run_id: str | None, reason: str) -> None:  # noqa: ANN401
    if not run_id:
        return
    with contextlib.suppress(Exception):  # tracking must not stop the study
        if tracker.client.get_run(run_id).info.status != "RUNNING":
            return
        tracker.set_tags(run_id, {TAG_STATE: "FAIL", "asma.failure": reason})
        tracker.finish(run_id, "KILLED")


def evaluated(study: Any, params: dict[str, Any]) -> Any:  # noqa: ANN401
    """The first COMPLETE trial of ``study`` at exactly ``params``, or None."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.params == params and t.value is not None:
            return t
    return None


def trial_line(trial: Any, objective: str, best: Any = None) -> str:
    """A finished trial in one line: ``trial 3: COMPLETE val_top1=41.25 (best 44.10,
    trial 1) (12 s)``; a pruned or failed trial gives its reason."""
    seconds = (
        f" ({(trial.datetime_complete - trial.datetime_start).total_seconds():.0f} s)"
        if trial.datetime_complete and trial.datetime_start
        else ""
    )
    state = trial.state.name
    if state == "COMPLETE" and trial.value is not None:
        text = f"COMPLETE {objective}={trial.value:.2f}"
    else:
        reason = str(trial.user_attrs.get(ATTR_REASON, "")).splitlines()
        text = f"{state}: {reason[0]}" if reason else state
    if best is not None:
        text += f" (best {best.value:.2f}, trial {best.number})"
    return f"trial {trial.number}: {text}{seconds}"


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def summarize(
    study: Any,  # noqa: ANN401 - an Optuna Study
    space: SearchSpace,
    opts: TuneOptions,
    storage: str,
    totals: Mapping[str, int] | None = None,
) -> TuneOutcome:
    """Trials, the best and the first complete trial, and the best configuration as a
    profile (``totals``: V and T of the count parameters, see :func:`count_totals`)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        rows.append(TrialRow(t.number, t.state.name, t.value, dict(t.params), seconds))
    outcome = TuneOutcome(space.name, study.study_name, storage, space.objective, rows)
    complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
    if complete:
        outcome.first = complete[0]
        outcome.best = max(complete, key=lambda r: (r.value, -r.number))
        outcome.profile = best_profile(space, opts, outcome.best.params, totals)
        outcome.counts = {
            k: f"{v} of {totals[space.params[k].of]} {space.params[k].of}"  # type: ignore[index]
            for k, v in outcome.best.params.items()
            if k in space.params and space.params[k].type == "count" and totals
        }
        outcome.base_profile = opts.profile
        outcome.not_saved = {
            k: v for k, v in fixed_settings(space, opts).items() if k not in outcome.best.params
        }
    return outcome


def best_profile(
    space: SearchSpace,
    opts: TuneOptions,
    params: dict[str, Any],
    totals: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A profile for ``--profile FILE``: the base profile's own values (``opts.profile``,
    as its file has them) with the tuned parameters at ``params`` merged in, validated; a
    count of joints or frames as the fraction count/total (of ``totals``, by default the
    tuning's dataset and profile), so the profile keeps its meaning on another skeleton.

    What the space's ``base`` and the command line (``--set``, ``--data``, ``--device``)
    fixed is left out: carried along, a space's setup (``pretrain.objective: asma``,
    ``linear.features: aligned``) would be imposed on every grid run with the profile.
    """
    if totals is None and any(p.type == "count" for p in space.params.values()):
        cli = [space.base, *_cli_overrides(opts), {"seed": opts.seed}]
        totals = count_totals(space, resolve_splits(build_config(opts.profile, cli)))
    d = deep_merge(profile_dict(opts.profile), nested(config_values(space, params, totals or {})))
    build_config(None, [d])  # fails here, not when the file is used
    return d


def fixed_settings(space: SearchSpace, opts: TuneOptions) -> dict[str, Any]:
    """Dotted keys the trials ran with beyond the base profile and the tuned parameters:
    the space's ``base`` and the command-line overrides (the seed aside)."""
    d: dict[str, Any] = {}
    for ov in [space.base, *_cli_overrides(opts)]:
        d = deep_merge(d, parse_override(ov) if isinstance(ov, str) else ov)
    return {k: v for k, v in flatten(d).items() if k not in space.params}


def save_profile(outcome: TuneOutcome, path: Path) -> Path:
    """Write the best trial as a profile YAML file, atomically: the base profile's values
    and the tuned parameters (see :func:`best_profile`), under a comment header naming the
    space, the metric, the trial and its value."""
    if outcome.best is None:
        raise ConfigError(f"study {outcome.study!r} has no complete trial to save")
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--save-profile {path}: the file name must end in .yaml")
    lines = [
        f"Profile {outcome.base_profile or '(defaults)'} + the parameters tuned by "
        f"`asma-bench tune --space {outcome.space}`.",
        f"space: {outcome.space}; study: {outcome.study}; metric: {outcome.objective}; "
        f"trial: {outcome.best.number}; value: {outcome.best.value:.4g}",
        f"tuned: {_tuned(outcome)}",
    ]
    if outcome.not_saved:
        lines.append(
            "also set while tuning, not saved (the space's base and the command line): "
            f"{_settings(outcome.not_saved)}"
        )
    header = "".join(f"# {' '.join(line.split())}\n" for line in lines)  # one line each
    text = header + yaml.safe_dump(outcome.profile, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, text)


def _tuned(outcome: TuneOutcome) -> str:
    """The best parameters as the profile has them, and the counts a fraction stands for."""
    best = outcome.best.params if outcome.best else {}
    text = _settings({k: get_dotted(outcome.profile, k) for k in best})
    if outcome.counts:
        text += f" (counts: {', '.join(f'{k} {v}' for k, v in outcome.counts.items())})"
    return text


def _settings(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())


class _BadValue(Exception):
    """The objective came out NaN (a trial failure, not a reason to stop the study)."""


def _study_run(tracker: Any, study: str, space: SearchSpace, opts: TuneOptions) -> str:
    """The study's parent MLflow run (reused when the study is resumed)."""

    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.`{TAG_STUDY}` = {filter_value(study)} and tags.`{TAG_KIND}` = 'study'",
        max_results=1,
    )
    if runs:
        return runs[0].info.run_id
    run = tracker.client.create_run(
        tracker.experiment_id, run_name=study,
        tags={TAG_KIND: "study", TAG_STUDY: study, TAG_SPACE: space.name,
              TAG_PROFILE: opts.profile, **environment_tags()},
    )  # fmt: skip
    tracker.log_params(
        run.info.run_id,
        {
            "space": space.name,
            "protocol": space.protocol,
            "profile": opts.profile,
            "objective": space.objective,
        },
    )
    return run.info.run_id


class _Objective:
    """One trial: suggest, build the config, run the protocol, report epochs, return val."""

    def __init__(
        self,
        space: SearchSpace,
        opts: TuneOptions,
        cli: list,
        tracker: Any,
        parent: str,
        study: str,
        out: Path,
    ):
        self.space, self.opts, self.cli = space, opts, cli
        self.tracker, self.parent, self.study, self.out = tracker, parent, study, out
        self.progress: Any = None
        self.totals: dict[str, int] = {}  # V and T of the count parameters
        self.command = ""  # tune --jobs: the command whose workers run the trials

    def __call__(self, trial: Any) -> float:
        import optuna

        trial.set_user_attr(ATTR_WORKER, _this_worker())  # who runs it, for reclaim_dead_trials
        if self.command:  # the lines of the command that started this worker report it
            trial.set_user_attr(ATTR_COMMAND, self.command)
        params = {k: spec.suggest(trial, k, self.totals) for k, spec in self.space.params.items()}
        same = evaluated(trial.study, params)
        if same is not None:  # a point already evaluated is not run again: its value stands
            trial.set_user_attr(ATTR_SAME_AS, same.number)
            trial.set_user_attr(ATTR_REASON, f"the point of trial {same.number}, not run again")
            return float(same.value)
        values = nested(config_values(self.space, params, self.totals))  # counts: fractions
        cfg = build_config(
            self.opts.profile, [self.space.base, *self.cli, values, {"seed": self.opts.seed}]
        )
        cfg = resolve_splits(cfg)  # the split the trial really uses is the one logged
        run_id = self.tracker.client.create_run(
            self.tracker.experiment_id, run_name=f"{self.space.name}/trial{trial.number}",
            tags={TAG_KIND: "trial", TAG_STUDY: self.study, TAG_SPACE: self.space.name,
                  TAG_TRIAL: str(trial.number), "mlflow.parentRunId": self.parent,
                  **environment_tags()},
        ).info.run_id  # fmt: skip
        trial.set_user_attr(ATTR_RUN, run_id)
        self.tracker.log_params(
            run_id,
            {
                **cfg.flat(),
                "protocol": self.space.protocol,
                **{f"trial.{k}": v for k, v in params.items()},
            },
        )
        step = 0

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            nonlocal step
            self.tracker.log_metrics(run_id, metrics, step=epoch)
            for key, value in metrics.items():
                if any(fnmatch.fnmatchcase(key, p) for p in self.space.prune_keys):
                    trial.report(float(value), step)
                    step += 1
                    if trial.should_prune():
                        raise optuna.TrialPruned(
                            f"{key} {value:.2f} below the median at step {step - 1}"
                        )

        def stage(name: str, i: int, n: int) -> None:
            if self.progress is not None:
                self.progress.set_postfix_str(f"trial {trial.number} {name} {i}/{n}")

        ctx = UnitContext(
            data_root=self.out / "data",
            ckpt_dir=self.out / "checkpoints",
            device=cfg.device,
            on_epoch=on_epoch,
            progress=stage if self.progress is not None else None,
        )
        t0 = time.monotonic()
        try:
            result = run_protocol(self.space.protocol, cfg, ctx)
        except optuna.TrialPruned as exc:
            self._finish(trial, run_id, "KILLED", "PRUNED", str(exc))
            raise
        except DivergenceError as exc:
            self._finish(trial, run_id, "FAILED", "FAIL", str(exc))
            raise
        except BaseException as exc:
            self._finish(trial, run_id, "FAILED", "FAIL", f"{type(exc).__name__}: {exc}")
            raise
        value = result.metrics.get(self.space.objective)
        if value is None or not math.isfinite(float(value)):
            reason = f"objective {self.space.objective} missing"
            self._finish(trial, run_id, "FAILED", "FAIL", reason)
            raise _BadValue(
                f"protocol {self.space.protocol!r} gave no finite {self.space.objective!r}"
            )
        self.tracker.log_metrics(
            run_id, {**result.metrics, "trial_seconds": time.monotonic() - t0}, step=0
        )
        self._finish(trial, run_id, "FINISHED", "COMPLETE")
        return float(value)

    def _finish(self, trial: Any, run_id: str, status: str, state: str, reason: str = "") -> None:
        if reason:  # for the progress line and the dashboard
            with contextlib.suppress(Exception):
                trial.set_user_attr(ATTR_REASON, reason)
        with contextlib.suppress(Exception):  # tracking must not hide the trial's outcome
            tags = {TAG_STATE: state, **({"asma.failure": reason} if reason else {})}
            self.tracker.set_tags(run_id, tags)
            self.tracker.finish(run_id, status)


# ------------------------------------------------------------------ tune --jobs N
#: What a trial may raise without stopping the study (it is recorded FAIL).
CAUGHT = (DivergenceError, _BadValue)
#: How often the command checks the study for trials its workers finished (seconds).
POLL_SECONDS = 1.0
_TICKETS: Any = None  # in a tune --jobs worker: the trials still to start, shared by all


@dataclass(frozen=True)
class _Shared:
    """What a ``tune --jobs`` worker needs to open the study and run trials of it."""

    space: SearchSpace
    opts: TuneOptions
    cli: list
    study: str
    url: str
    uri: str
    experiment: str
    parent: str  # the study's MLflow run
    totals: dict[str, int]
    resumed: int  # trials the study held before this command
    command: str = ""  # a token of this command: its trials carry it (ATTR_COMMAND)
    deadline: float | None = None  # --timeout: no trial starts after this time.time()


def _tune_parallel(study: Any, tracker: Any, shared: _Shared, after: Callable) -> None:  # noqa: ANN401
    """``tune --jobs N``: the trials in N worker processes that share the cores (each on
    threads ÷ N, as ``run --jobs`` gives its units) and the study's storage, as Optuna runs
    a study from several processes. The workers take the ``--trials`` one at a time from a
    shared count, so a worker whose trials are pruned early takes more of them; each
    finished trial gets its progress line here, in the order they finish. Any error or
    signal stops every worker (each trial's run is closed as a stopped sequential trial's
    is); a trial whose worker had to be killed is failed and its point queued again
    (:func:`reclaim_dead_trials`).

    With several workers the sampler proposes each point from the trials finished when it
    is asked, which depends on which trial finished first: the study's points no longer
    follow from the seed alone (``--jobs 1`` keeps them reproducible). Each trial's value
    still follows from its point, the seed and the thread count."""
    import concurrent.futures as cf
    import dataclasses
    import multiprocessing
    import uuid

    import torch

    from asma_bench.harness.execute import signals_deferred
    from asma_bench.harness.runner import _stop_workers

    opts = shared.opts
    jobs = min(opts.jobs, opts.trials)
    # a trial's share of the cores is set by --jobs, as a unit's is by run --jobs
    threads = max(1, torch.get_num_threads() // opts.jobs)
    context = multiprocessing.get_context("spawn")
    tickets = context.Value("i", opts.trials)
    quiet = dataclasses.replace(opts, progress=False, progress_lines=None)
    deadline = None if opts.timeout_s is None else time.time() + opts.timeout_s
    shared = dataclasses.replace(shared, opts=quiet, command=uuid.uuid4().hex, deadline=deadline)
    seen: set[int] = set()
    pool = None
    try:
        with signals_deferred():  # a stop while the workers start lands once they are known
            pool = cf.ProcessPoolExecutor(
                jobs, mp_context=context, initializer=_start_tune_worker,
                initargs=(threads, os.getpid(), tickets),
            )  # fmt: skip
            futures = [pool.submit(_tune_worker, shared, i) for i in range(jobs)]
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, POLL_SECONDS, cf.FIRST_EXCEPTION)
            for future in done:
                future.result()  # a worker's error stops the others
            for trial in _finished_here(study, shared.command, seen):
                after(study, trial)
    except BaseException:
        _stop_workers(pool)
        with contextlib.suppress(Exception), quiet_optuna():
            reclaim_dead_trials(study, tracker)  # what a worker killed outright left RUNNING
        raise
    pool.shutdown(wait=True)


def _finished_here(study: Any, command: str, seen: set[int]) -> list[Any]:  # noqa: ANN401
    """The trials ``command``'s workers finished that are not in ``seen`` (added to it), in
    the order they finished."""
    new = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number not in seen
        and t.state.is_finished()
        and t.user_attrs.get(ATTR_COMMAND) == command
    ]
    seen.update(t.number for t in new)
    return sorted(new, key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))


def _start_tune_worker(threads: int, parent: int, tickets: Any) -> None:  # noqa: ANN401
    """A ``tune --jobs`` worker: a ``run --jobs`` worker's start (its threads, SIGTERM as
    Ctrl-C, gone with the command) and the shared count of trials to start."""
    from asma_bench.harness.runner import _start_worker

    global _TICKETS  # noqa: PLW0603 - one per worker process, set once at its start
    _TICKETS = tickets
    _start_worker(threads, parent)


def _take_ticket(deadline: float | None) -> bool:
    """Whether this worker may start one more trial (and the count says one fewer)."""
    from asma_bench.harness.runner import _STOPPED

    if _STOPPED or (deadline is not None and time.time() >= deadline):
        return False
    with _TICKETS.get_lock():
        if _TICKETS.value <= 0:
            return False
        _TICKETS.value -= 1
        return True


def _tune_worker(shared: _Shared, worker: int) -> int:
    """A ``tune --jobs`` worker's task: trials of the study, one at a time, while the
    shared count lasts; returns how many it ran."""
    import optuna

    from asma_bench.harness.runner import _STOPPED

    opts, out = shared.opts, Path(shared.opts.out)
    # the command's line for each trial says how it ended, a failure's reason included; a
    # stop would otherwise print Optuna's traceback once per worker
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with quiet_optuna():
        study = optuna.load_study(
            study_name=shared.study, storage=open_storage(shared.url, QueueSettings()),
            sampler=make_sampler(opts, shared.resumed, worker), pruner=make_pruner(opts),
        )  # fmt: skip
    tracker = Tracker(shared.uri, experiment=shared.experiment, artifact_root=out / "artifacts")
    objective = _Objective(shared.space, opts, shared.cli, tracker, shared.parent, shared.study,
                           out)  # fmt: skip
    objective.totals, objective.command = shared.totals, shared.command
    ran = 0
    try:
        while _take_ticket(shared.deadline):
            with quiet_optuna():
                study.optimize(objective, n_trials=1, catch=CAUGHT)
            ran += 1
    except KeyboardInterrupt:
        _STOPPED.append(True)
        raise
    return ran


def trials_table(outcome: TuneOutcome) -> Any:
    """The study's trials as a DataFrame (number, state, value, seconds, parameters)."""
    import pandas as pd

    rows = [
        {
            "trial": r.number,
            "state": r.state,
            outcome.objective: r.value,
            "seconds": r.seconds,
            **r.params,
        }
        for r in outcome.trials
    ]
    return pd.DataFrame(rows).set_index("trial") if rows else pd.DataFrame()
