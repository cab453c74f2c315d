"""What a plan may ask for, checked at planning: before any store, run or folder exists.

``plan_units`` (and so ``run --dry-run``) and ``tune`` call these checks; each refusal is one
line naming the parameter (and the grid and cell it comes from). The bounds:

* names of grids, cells and studies: ``[A-Za-z0-9_.+-]`` (:data:`NAME_CHARS`), not starting
  with a dot, at most :data:`MAX_NAME` characters (a study may also hold ``:``, as its
  default name ``tune:SPACE:HASH`` does); they are quoted into tracking-store queries;
* seeds: at most :data:`MAX_SEEDS` per run, each in ``0..MAX_SEED`` (2**32 - 1: NumPy's
  legacy seeding and Optuna's samplers take no more), none given twice;
* a plan: at most :data:`MAX_UNITS` units (cells × seeds);
* the grid's ``metric``: one the protocols log (:func:`known_metric`);
* the device: ``cuda``, ``cuda:N`` and ``mps`` must exist on this machine;
* masks: the ``n`` joints and ``k`` frames each masking strategy masks, once fractions of V
  and T are rounded, must leave a joint and a frame visible;
* sizes: ``num_blocks`` and ``channels`` lists at most :data:`~asma_bench.config.MAX_BLOCKS`,
  ``max_hop`` at most :data:`MAX_HOPS`; ``data.frames`` at most
  :data:`~asma_bench.config.MAX_FRAMES` (a field bound of the config);
* memory: a lower bound of what a unit needs must fit in the device's memory (this
  machine's for ``cpu`` and ``mps``, the GPU's for ``cuda``): 16 bytes per trained parameter
  (the weights, their gradients and Adam's two moments; encoders, Barlow Twins projectors,
  a distilled student), 4 per frozen one, plus one float32 activation of the widest layer
  over a batch (clips × frames × joints × channels). The real need is larger; what fails
  this bound could never run.
"""

from __future__ import annotations

import json
import logging
import operator
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asma_bench.config import MAX_BLOCKS, MAX_SEED, RunConfig, build_config
from asma_bench.errors import ConfigError, library_error
from asma_bench.harness.names import (  # noqa: F401 - the checks' names, re-exported
    KNOWN_METRICS,
    MAX_NAME,
    NAME_CHARS,
    check_study_name,
    known_metric,
    name_problem,
)

if TYPE_CHECKING:
    from asma_bench.data.layouts import SkeletonLayout
    from asma_bench.harness.grids import GridSpec

log = logging.getLogger(__name__)

#: Seeds one run may ask for, and units one plan may hold.
MAX_SEEDS = 1_000
MAX_UNITS = 10_000
#: ``max_hop`` of a graph backbone: hops beyond a skeleton's diameter (under 30 for every
#: layout) add nothing but time.
MAX_HOPS = 100


# --------------------------------------------------------------------------- seeds and plans
def check_seeds(seeds: Iterable[Any], option: str = "seeds") -> list[int]:
    """``seeds`` as ints: at most MAX_SEEDS, each in 0..MAX_SEED, none twice."""
    values = list(seeds)
    if len(values) > MAX_SEEDS:
        raise ConfigError(f"{option}: {len(values)} seeds; at most {MAX_SEEDS} per run")
    out = []
    for seed in values:
        try:
            if isinstance(seed, bool):
                raise TypeError
            value = operator.index(seed)
        except TypeError:
            raise ConfigError(f"{option}: seed {str(seed)[:40]!r} is not an integer") from None
        if not 0 <= value <= MAX_SEED:
            raise ConfigError(f"{option}: seed {value} is outside 0..{MAX_SEED}")
        out.append(value)
    for seed, times in Counter(out).items():
        if times > 1:
            raise ConfigError(f"{option}: seed {seed} is given {times} times")
    return out


def grid_label(grid: GridSpec) -> str:
    """``grid 'NAME'``, with the file it was read from when it is not a built-in grid."""
    source = getattr(grid, "source", None)
    return f"grid {grid.name!r}" + (f" ({source})" if source else "")


def check_plan(grid: GridSpec, seeds: Iterable[int]) -> list[int]:
    """The seeds of a plan, checked, and its size: at most :data:`MAX_UNITS` units. Each
    cell's config is checked where the plan builds it (:func:`cell_config`)."""
    seeds = check_seeds(seeds)
    cells = grid.all_cells()
    if len(seeds) * len(cells) > MAX_UNITS:
        raise ConfigError(
            f"{grid_label(grid)}: {len(cells)} cells × {len(seeds)} seeds = "
            f"{len(cells) * len(seeds)} units; at most {MAX_UNITS} per run"
        )
    return seeds


def cell_config(
    grid: GridSpec, cell: Any, profile: str, cli: list, seed: int, memo: dict | None = None
) -> RunConfig:
    """One cell's config at ``seed`` (defaults ← profile ← the cell's overrides ← the
    command line ← the cell's fixed values), its values checked; with ``memo`` (shared by
    the plan) also the machine and the dataset — device, masks, sizes, memory — once per
    cell. Errors name the grid and the cell, or the command line when it alone is wrong."""
    layers = [cell.overrides, *cli, cell.fixed, {"seed": int(seed)}]
    try:
        cfg = build_config(profile, layers)
    except ConfigError as exc:
        _command_line_error(profile, cli, {"seed": int(seed)}, str(exc))
        raise ConfigError(f"{grid_label(grid)}, cell {cell.name!r}: {exc}") from None
    if memo is not None and ("cell", cell.name) not in memo:
        try:
            check_config(cfg, cell.protocol or grid.protocol, memo)
        except ConfigError as exc:
            raise ConfigError(f"{grid_label(grid)}, cell {cell.name!r}: {exc}") from None
        memo["cell", cell.name] = True
    return cfg


def _command_line_error(profile: str, cli: list, seed: dict, message: str) -> None:
    """Raise the error of the profile and command line alone when it is ``message``: a bad
    ``--set`` value is the command line's (said as it is), not the cell's it met first."""
    try:
        build_config(profile, [*cli, seed])
    except ConfigError as exc:
        if str(exc) == message:
            raise


def check_config(cfg: RunConfig, protocol: str, memo: dict | None = None) -> None:
    """The checks of one resolved config that need the machine or the dataset's layout:
    the device exists, the masks leave something visible, the sizes are bounded and a
    unit fits in memory. ``memo`` caches results between the cells of a plan."""
    from asma_bench.training.data import dataset_layout

    memo = {} if memo is None else memo
    check_device_exists(cfg.device, memo)
    check_sizes(cfg)
    check_sources(cfg)
    layout = dataset_layout(cfg.data)
    if layout is None:  # a folder that is no dataset (yet): planning says so later
        return
    check_masks(cfg, layout, memo)
    check_memory(cfg, protocol, layout, memo)


# --------------------------------------------------------------------------- device
def check_device_exists(device: str, memo: dict | None = None) -> None:
    """Refuse ``cuda``, ``cuda:N`` or ``mps`` on a machine that has no such device."""
    if device == "cpu":
        return
    memo = {} if memo is None else memo
    key = ("device", device)
    if key not in memo:
        memo[key] = _device_problem(device)
    if memo[key]:
        raise ConfigError(f"device {device!r}: {memo[key]}")


def _device_problem(device: str) -> str | None:
    import torch

    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "MPS is not available on this machine; use cpu"
        return None
    if not device.startswith("cuda"):
        return None  # the config's own check names the devices there are
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return "CUDA is not available on this machine; use cpu"
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        return f"this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    return None


def machine_memory(device: str) -> int | None:
    """Bytes of memory a unit on ``device`` can use: the GPU's for cuda, this machine's
    physical memory otherwise (MPS shares it); None when it cannot be told."""
    if device.startswith("cuda"):
        import torch

        try:
            index = int(device.partition(":")[2] or 0)
            return int(torch.cuda.get_device_properties(index).total_memory)
        except Exception:  # noqa: BLE001 - no device: check_device_exists said so
            return None
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------- sizes
_COUNTS = {"num_blocks": MAX_BLOCKS, "max_hop": MAX_HOPS}


def check_sizes(cfg: RunConfig) -> None:
    """Backbone parameters that multiply modules or work (``num_blocks``, ``max_hop``,
    the length of ``channels``) are bounded before anything is built."""
    for where, params in (
        ("backbone.params", cfg.backbone.params),
        ("distill.student_params", cfg.distill.student_params),
    ):
        for key, bound in _COUNTS.items():
            value = params.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > bound:
                raise ConfigError(f"{where}.{key}={value}: at most {bound}")
        channels = params.get("channels")
        if isinstance(channels, list | tuple) and len(channels) > MAX_BLOCKS:
            raise ConfigError(f"{where}.channels: {len(channels)} blocks; at most {MAX_BLOCKS}")


def check_sources(cfg: RunConfig) -> None:
    """A dataset folder named ``~user/...`` for a user this machine does not have cannot be
    found (``Path.expanduser`` raises RuntimeError): refused by name, not mid-run."""
    from pathlib import Path

    for key, data in (("data.source", cfg.data), ("transfer.target.source", cfg.transfer.target)):
        if data is None or not data.source.startswith("~"):
            continue
        try:
            Path(data.source).expanduser()
        except RuntimeError:
            user = data.source[1:].split("/", 1)[0]
            raise ConfigError(
                f"{key} {data.source[:80]!r}: no user {user[:40]!r} on this machine to expand "
                "'~' for"
            ) from None


# --------------------------------------------------------------------------- masks
def check_masks(cfg: RunConfig, layout: SkeletonLayout, memo: dict | None = None) -> None:
    """Every masking strategy the pretraining draws from, built for the dataset's V and
    asked what it masks at T = ``data.frames``: n of V joints and k of T frames must leave
    one visible (the strategies' own checks, which would otherwise fail mid-run)."""
    if cfg.pretrain.epochs == 0:  # no pretraining, no masks
        return
    from asma_bench.objectives import objective_class

    memo = {} if memo is None else memo
    key = (
        "masks",
        layout.name,
        cfg.data.frames,
        cfg.pretrain.objective,
        json.dumps(cfg.masking.model_dump(mode="json"), sort_keys=True),
        json.dumps(cfg.pretrain.params, sort_keys=True, default=repr),
    )
    if key in memo:
        return
    objective = objective_class(cfg.pretrain.objective)
    try:
        for pair in objective.masks(cfg, layout):
            for strategy in pair:
                budget = getattr(strategy, "budget", None)
                if budget is None:
                    continue
                try:
                    budget(cfg.data.frames)
                except NotImplementedError:  # a plug-in strategy that does not say
                    continue
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a strategy's parameters of the wrong kind
        raise ConfigError(
            f"the masks of objective {cfg.pretrain.objective!r} cannot be built from "
            f"masking and pretrain.params: {library_error(exc)}"
        ) from None
    memo[key] = True


# --------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class MemoryEstimate:
    """A lower bound of a unit's memory, by part (bytes)."""

    encoder_bytes: int
    projector_bytes: int
    student_bytes: int
    activation_bytes: int
    parameters: int
    batch: int
    width: int
    batch_key: str

    @property
    def total(self) -> int:
        return (
            self.encoder_bytes + self.projector_bytes + self.student_bytes + self.activation_bytes
        )


def _backbone_size(
    name: str, params: dict[str, Any], layout: SkeletonLayout, memo: dict
) -> tuple[int, int, int] | None:
    """(parameters, widest layer, out_dim) of a backbone, built on the meta device (no
    memory); None when it cannot be built there (a plug-in doing real work in __init__)."""
    key = ("backbone", name, json.dumps(params, sort_keys=True, default=repr), layout.name)
    if key not in memo:
        import torch

        from asma_bench.backbones import create_backbone

        try:
            with torch.device("meta"):
                model = create_backbone(name, layout=layout, in_channels=3, **params)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the estimate is skipped, not the run
            log.debug("no memory estimate for backbone %r: %s", name, exc)
            memo[key] = None
        else:
            widths = [
                getattr(m, attr, 0)
                for m in model.modules()
                for attr in ("out_channels", "num_features", "out_features")
            ]
            numel = sum(p.numel() for p in model.parameters())
            memo[key] = (int(numel), max([int(w) for w in widths if w] or [1]),
                         int(getattr(model, "out_dim", 0) or 0))  # fmt: skip
    return memo[key]


_BATCH_KEYS = {
    "linear": "linear",
    "distill": "distill",
    "finetune": "finetune",
    "semi": "finetune",
    "supervised": "finetune",
    "transfer": "finetune",
}


def _clips(cfg: RunConfig) -> int | None:
    """How many training clips there are at most, when known without loading them."""
    known = []
    if cfg.data.train_limit is not None:
        known.append(cfg.data.train_limit)
    if cfg.data.source == "synthetic":
        from asma_bench.data.synthetic import resolve_config

        known.append(resolve_config(cfg.data.preset).num_samples)
    return min(known) if known else None


def estimate_memory(
    cfg: RunConfig, protocol: str, layout: SkeletonLayout, memo: dict | None = None
) -> MemoryEstimate | None:
    """The lower bound of the module docstring; None when the backbone cannot be sized."""
    from asma_bench.objectives import objective_class

    memo = {} if memo is None else memo
    size = _backbone_size(cfg.backbone.name, cfg.backbone.params, layout, memo)
    if size is None:
        return None
    numel, width, out_dim = size
    objective = objective_class(cfg.pretrain.objective)
    pretrains = cfg.pretrain.epochs > 0
    encoders = len(objective.encoder_roles) if pretrains else 1
    per_param = 16 if pretrains or protocol != "linear" else 4
    projector = 0
    if pretrains and objective.uses_projector:
        p, d = cfg.pretrain.projector_dim, out_dim or width
        projector = encoders * (d * p + 2 * p * p + 4 * p)  # 3 Linear layers, 2 BatchNorms
    student = 0
    if protocol == "distill":
        params = {"num_blocks": cfg.distill.student_depth, **cfg.distill.student_params}
        sized = _backbone_size("student", params, layout, memo)
        student = 16 * sized[0] if sized else 0
        width = max(width, sized[1]) if sized else width
    section = "pretrain" if pretrains else _BATCH_KEYS.get(protocol, "linear")
    batch = getattr(cfg, section).batch_size
    clips = _clips(cfg)
    batch = min(batch, clips) if clips else batch
    activation = 4 * batch * cfg.data.frames * layout.num_joints * width
    return MemoryEstimate(
        encoder_bytes=per_param * encoders * numel,
        projector_bytes=16 * projector,
        student_bytes=student,
        activation_bytes=activation,
        parameters=encoders * numel + projector + student // 16,
        batch=batch,
        width=width,
        batch_key=f"{section}.batch_size",
    )


def check_memory(
    cfg: RunConfig, protocol: str, layout: SkeletonLayout, memo: dict | None = None
) -> None:
    """Refuse a unit whose lower bound of memory exceeds its device's memory, naming the
    setting that makes it large and the estimate."""
    memo = {} if memo is None else memo
    estimate = estimate_memory(cfg, protocol, layout, memo)
    if estimate is None:
        return
    key = ("memory", cfg.device)
    if key not in memo:
        memo[key] = machine_memory(cfg.device)
    available = memo[key]
    if available is None or estimate.total <= available:
        return
    parts = {
        "encoder": estimate.encoder_bytes,
        "projector": estimate.projector_bytes,
        "student": estimate.student_bytes,
        "activation": estimate.activation_bytes,
    }
    largest = max(parts, key=parts.__getitem__)
    culprit = {
        "encoder": f"backbone.params={_short(cfg.backbone.params)} ({cfg.backbone.name})",
        "projector": f"pretrain.projector_dim={cfg.pretrain.projector_dim}",
        "student": f"distill.student_params={_short(cfg.distill.student_params)}",
        "activation": f"data.frames={cfg.data.frames} with {estimate.batch_key}={estimate.batch}",
    }[largest]
    where = cfg.device if cfg.device.startswith("cuda") else "this machine"
    weights = estimate.total - estimate.activation_bytes
    raise ConfigError(
        f"{culprit}: a unit needs at least {_bytes(estimate.total)} of memory "
        f"({estimate.parameters:.3g} parameters with gradients and Adam state: "
        f"{_bytes(weights)}; one activation of {estimate.batch} clips × {cfg.data.frames} "
        f"frames × {layout.num_joints} joints × {estimate.width} channels: "
        f"{_bytes(estimate.activation_bytes)}), more than the {_bytes(available)} of {where}"
    )


def _short(value: Any) -> str:  # noqa: ANN401
    text = json.dumps(value, sort_keys=True, default=repr)
    return text if len(text) <= 80 else text[:79] + "…"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


__all__: Sequence[str] = (
    "KNOWN_METRICS",
    "MAX_HOPS",
    "MAX_NAME",
    "MAX_SEEDS",
    "MAX_UNITS",
    "NAME_CHARS",
    "MemoryEstimate",
    "check_config",
    "check_device_exists",
    "check_masks",
    "check_memory",
    "cell_config",
    "check_plan",
    "check_seeds",
    "check_sizes",
    "check_study_name",
    "estimate_memory",
    "grid_label",
    "known_metric",
    "machine_memory",
    "name_problem",
)
