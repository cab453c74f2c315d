"""Data for protocols: a dataset resolved, split (with a validation part carved from the
training data), pre-processed once to fixed-length clips and held as tensors.

Selection (early stopping, hyper-parameters) uses ``val``; ``test`` is only ever evaluated
at the end. Augmentation happens per batch on the device, in the protocols.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asma_bench.config import DataConfig, RunConfig
from asma_bench.data.feeder import SkeletonFeeder, rotation_blocker
from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.data.store import DATA_FILE, INFO_FILE, META_FILE, SkeletonDataset
from asma_bench.data.synthetic import SPLITS, generate
from asma_bench.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)


@dataclass
class TensorSet:
    x: torch.Tensor  # (N, C, T, V, M) float32
    y: torch.Tensor  # (N,) int64
    index: torch.Tensor  # (N,) indices into the dataset, to pair predictions across runs

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, rows: np.ndarray | torch.Tensor) -> TensorSet:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return TensorSet(self.x[rows], self.y[rows], self.index[rows])


@dataclass
class PreparedData:
    name: str
    layout: SkeletonLayout
    num_classes: int
    class_names: list[str]
    train: TensorSet
    val: TensorSet
    test: TensorSet

    @property
    def channels(self) -> int:
        """C of the clips: the layout's coordinates, plus a confidence channel if stored."""
        return int(self.train.x.shape[1])


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..N-1 into (rest, held-out) with ``fraction`` of every class held out.

    Every class with at least two samples keeps at least one sample on each side.
    """
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        rng.shuffle(pos)
        take = int(round(fraction * len(pos)))
        if fraction > 0 and len(pos) >= 2:
            take = min(max(take, 1), len(pos) - 1)
        held.extend(pos[:take].tolist())
    held_arr = np.sort(np.asarray(held, dtype=np.int64))
    rest = np.setdiff1d(np.arange(len(labels)), held_arr)
    return rest, held_arr


def class_balanced_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions of a seeded, class-balanced ``fraction`` of the samples (semi-supervised).

    Each class contributes round(fraction × its count) samples, at least one, so a 1%
    subset of a small class is never empty.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"label fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        take = max(1, int(round(fraction * len(pos))))
        keep.extend(rng.choice(pos, size=take, replace=False).tolist())
    return np.sort(np.asarray(keep, dtype=np.int64))


def source_path(cfg: DataConfig, key: str = "data.source") -> Path:
    """The folder ``cfg.source`` names, ``~`` expanded; one line for a ``~user`` that does
    not exist (``Path.expanduser`` raises a bare RuntimeError)."""
    try:
        return Path(cfg.source).expanduser()
    except RuntimeError as exc:
        raise ConfigError(f"{key} {cfg.source!r}: {exc}") from None


def synthetic_path(cfg: DataConfig, data_root: Path) -> Path:
    """Where the synthetic data ``cfg`` names is generated under ``data_root``."""
    on = f"-{cfg.layout}" if cfg.layout and cfg.layout != "ntu25" else ""
    return Path(data_root) / f"synthetic-{cfg.preset}-seed{cfg.synth_seed}{on}"


def resolve_dataset(cfg: DataConfig, data_root: Path) -> Path:
    """The dataset folder a config names; synthetic data is generated on first use."""
    if cfg.source != "synthetic":
        path = source_path(cfg)
        if not path.exists():
            raise ConfigError(f"data.source {cfg.source!r}: no such dataset folder")
        return path
    path = synthetic_path(cfg, data_root)
    if not (path / "info.json").is_file():
        try:
            generate(path, cfg.preset, seed=cfg.synth_seed, layout=cfg.layout)
        except DataFormatError:
            if not (path / "info.json").is_file():  # another worker may have won the race
                raise
    return path


_NOTED: set[tuple[str, str, str]] = set()  # split fallbacks already said in this process
#: (info.json path, mtime, size) → (split names, layout): a plan asks once per unit, and
#: NTU's info.json is megabytes.
_INFO_SUMMARY: dict[tuple[str, int, int], tuple[list[str], SkeletonLayout]] = {}


def choose_split(
    requested: str, available: Sequence[str], where: object, key: str = "data.split"
) -> str:
    """The split to use of a dataset (at ``where``) that has the splits ``available``.

    ``requested`` when the dataset has it; otherwise the dataset's only split (NW-UCLA has
    just ``xview``), said once per process in one warning line. A dataset with several
    splits, none of them ``requested``, is refused naming them and the override to use.
    """
    if requested in available:
        return requested
    if len(available) == 1:
        used = available[0]
        if (str(where), requested, key) not in _NOTED:
            _NOTED.add((str(where), requested, key))
            log.warning("%s %r not in %s; using its only split %r", key, requested, where, used)
        return used
    if not available:
        raise ConfigError(f"{key} {requested!r} not in {where} (has no splits)")
    raise ConfigError(
        f"{key} {requested!r} not in {where} (has {', '.join(available)}); choose one with "
        f"--set {key}=NAME"
    )


def dataset_splits(cfg: DataConfig) -> list[str] | None:
    """The split names of the dataset ``cfg`` names, read without loading it; None when
    they cannot be known yet (unreadable info: ``prepare_data`` says why). A folder that
    is not a dataset at all is refused here, at planning, before a store is created."""
    if cfg.source == "synthetic":
        return sorted(SPLITS)
    folder = source_path(cfg)
    if not folder.is_dir():
        raise ConfigError(f"data.source {cfg.source!r}: no such dataset folder")
    for name in (DATA_FILE, META_FILE, INFO_FILE):
        if not (folder / name).is_file():
            raise DataFormatError(
                folder / name,
                "missing: not an asma-bench dataset folder (create one with `asma-bench data "
                "synth` or `data convert`)",
            )
    summary = _info_summary(folder)
    return None if summary is None else list(summary[0])


def _info_summary(folder: Path) -> tuple[list[str], SkeletonLayout] | None:
    """(split names, layout) from a dataset folder's ``info.json``, read once per version of
    the file; None when it cannot be read (``prepare_data`` says why)."""
    path = folder / INFO_FILE
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in _INFO_SUMMARY:
            info = json.loads(path.read_text(encoding="utf-8-sig"))  # as SkeletonDataset
            _INFO_SUMMARY[key] = (sorted(info.get("splits") or {}), get_layout(info["layout"]))
        return _INFO_SUMMARY[key]
    except (OSError, ValueError, AttributeError, TypeError, KeyError, ConfigError):
        return None


def resolve_split(cfg: DataConfig, key: str = "data.split") -> DataConfig:
    """``cfg`` naming the split that will be used (see :func:`choose_split`)."""
    names = dataset_splits(cfg)
    if names is None:
        return cfg
    where = "synthetic data" if cfg.source == "synthetic" else source_path(cfg)
    used = choose_split(cfg.split, names, where, key)
    return cfg if used == cfg.split else cfg.model_copy(update={"split": used})


def dataset_layout(cfg: DataConfig) -> SkeletonLayout | None:
    """The layout of the dataset ``cfg`` names, read from its ``info.json`` without loading
    the arrays; None when it cannot be known yet (``prepare_data`` will say why)."""
    if cfg.source == "synthetic":  # NTU-25 clips, or the same motions retargeted
        check_synthetic_layout(cfg)
        return get_layout(cfg.layout or "ntu25")
    summary = _info_summary(source_path(cfg))
    return None if summary is None else summary[1]


def resolve_normalize(cfg: DataConfig, key: str = "data.normalize") -> DataConfig:
    """``cfg`` with a ``*_rotate`` normalisation its dataset's skeletons cannot take (2-D
    layouts, or no shoulder joints to face forward) replaced by the same centring without
    the turn, said once per process in one warning line: a profile chosen for 3-D bodies
    still runs on 2-D keypoints, and the config recorded is the one that ran."""
    if not cfg.normalize.endswith("_rotate"):
        return cfg
    layout = dataset_layout(cfg)
    why = rotation_blocker(layout) if layout is not None else None
    if why is None:
        return cfg
    used = cfg.normalize.removesuffix("_rotate")
    if (cfg.source, cfg.normalize, key) not in _NOTED:
        _NOTED.add((cfg.source, cfg.normalize, key))
        log.warning("%s %r cannot turn these skeletons (%s); using %r", key, cfg.normalize,
                    why, used)  # fmt: skip
    return cfg.model_copy(update={"normalize": used})


def pin_dataset(cfg: DataConfig, key: str = "data.source") -> DataConfig:
    """``cfg`` naming its dataset folder by absolute path and by content
    (:func:`~asma_bench.data.fingerprint.dataset_fingerprint`): ``--data ds`` typed in two
    folders names two datasets, and a dataset rebuilt in place is another dataset, so
    neither reuses the other's results. Synthetic data is known by preset and seed."""
    if cfg.source == "synthetic":
        return cfg if cfg.fingerprint is None else cfg.model_copy(update={"fingerprint": None})
    from asma_bench.data.fingerprint import dataset_fingerprint

    folder = source_path(cfg, key)
    if not (folder / INFO_FILE).is_file():
        raise ConfigError(f"{key} {cfg.source!r}: no dataset folder there (no {INFO_FILE})")
    folder = folder.resolve()
    update = {"source": str(folder), "fingerprint": dataset_fingerprint(folder)}
    if all(getattr(cfg, k) == v for k, v in update.items()):
        return cfg
    return cfg.model_copy(update=update)


def check_synthetic_layout(cfg: DataConfig, key: str = "data.layout") -> None:
    """``data.layout`` names a built-in skeleton, and only for synthetic data."""
    if cfg.layout is None:
        return
    if cfg.source != "synthetic":
        raise ConfigError(f"{key}={cfg.layout!r} applies to synthetic data only; a dataset "
                          "folder's skeleton is the one it was converted with")  # fmt: skip
    from asma_bench.data.layouts import ALIASES, LAYOUTS

    if cfg.layout not in LAYOUTS and cfg.layout not in ALIASES:
        raise ConfigError(f"{key}={cfg.layout!r}: synthetic data is written on a built-in "
                          f"layout: {', '.join(sorted([*LAYOUTS, *ALIASES]))}")  # fmt: skip


def _source_on_targets_skeleton(data: DataConfig, target: DataConfig) -> DataConfig:
    """The transfer source as it must be to pretrain encoders the target can use: a
    synthetic source is written on the target's skeleton (pretrain on synthetic motions,
    evaluate on NW-UCLA's Kinect v1 joints); two dataset folders on different skeletons are
    refused here, before anything trains."""
    check_synthetic_layout(data)
    check_synthetic_layout(target, "transfer.target.layout")
    theirs = dataset_layout(target)
    if theirs is None:
        return data
    if data.source == "synthetic" and data.layout is None and theirs.name != "ntu25":
        if not theirs.builtin:
            raise ConfigError(
                f"transfer.target {target.source}: its skeleton {theirs.name!r} is not a "
                "built-in layout, so synthetic data cannot be written on it"
            )
        return data.model_copy(update={"layout": theirs.name})
    mine = dataset_layout(data)
    if mine is not None and mine.name != theirs.name:
        raise ConfigError(
            f"transfer: the source's skeleton {mine.name} differs from the target's "
            f"{theirs.name}; encoders pretrained on one cannot be evaluated on the other"
        )
    return data


def check_fingerprint(cfg: DataConfig, path: Path) -> None:
    """Refuse to run on a dataset whose content is not the one the unit was planned on (it
    was rebuilt, or a relative path now names another folder)."""
    if not cfg.fingerprint:
        return
    from asma_bench.data.fingerprint import dataset_fingerprint

    found = dataset_fingerprint(path)
    if found != cfg.fingerprint:
        raise ConfigError(
            f"data.source {cfg.source}: the dataset there is not the one this run was "
            f"planned on (content {found}, expected {cfg.fingerprint}); it was rebuilt or "
            "replaced since: plan the run again"
        )


def resolve_splits(cfg: RunConfig) -> RunConfig:
    """``cfg`` with ``data.split`` (and ``transfer.target.split``) resolved to the split
    each dataset will use, and a ``*_rotate`` normalisation to what its skeletons can take
    (:func:`resolve_normalize`), so that the config recorded and hashed for a run is the
    one it runs; a split no dataset can stand for fails here, before anything runs."""
    data = pin_dataset(resolve_normalize(resolve_split(cfg.data)))
    target = cfg.transfer.target
    new_target = None
    if target is not None:
        data = _source_on_targets_skeleton(data, target)
        new_target = resolve_split(target, "transfer.target.split")
        new_target = resolve_normalize(new_target, "transfer.target.normalize")
        new_target = pin_dataset(new_target, "transfer.target.source")
    if data is cfg.data and new_target is target:
        return cfg
    update: dict = {"data": data}
    if new_target is not target:
        update["transfer"] = cfg.transfer.model_copy(update={"target": new_target})
    return cfg.model_copy(update=update)


_CACHE: dict[tuple, PreparedData] = {}


def prepare_data(cfg: DataConfig, seed: int, data_root: Path) -> PreparedData:
    """Resolve, split and pre-process a dataset (cached within the process)."""
    path = resolve_dataset(cfg, data_root)
    check_fingerprint(cfg, path)
    key = (str(path.resolve()), cfg.model_dump_json(), seed)
    if key in _CACHE:
        return _CACHE[key]
    ds = SkeletonDataset(path)
    split = choose_split(cfg.split, ds.split_names, path)
    train_idx = ds.split(split, "train")
    test_idx = ds.split(split, "test")
    labels = ds.labels
    if cfg.train_limit and len(train_idx) > cfg.train_limit:
        keep = class_balanced_subset(labels[train_idx], cfg.train_limit / len(train_idx), seed)
        train_idx = train_idx[keep]
    if cfg.test_limit and len(test_idx) > cfg.test_limit:
        # the test subset is a property of the data config, not of the run seed
        keep = class_balanced_subset(labels[test_idx], cfg.test_limit / len(test_idx), 0)
        test_idx = test_idx[keep]
    for part, idx in (("train", train_idx), ("test", test_idx)):
        if len(idx) == 0:
            raise ConfigError(f"data.split {split!r} of {path}: its {part} part has no samples")
    rest, held = stratified_split(labels[train_idx], cfg.val_fraction, seed)
    _require_validation(cfg, path, split, labels[train_idx], held)
    val_idx, train_idx = train_idx[held], train_idx[rest]
    sets = [_load(ds, idx, cfg) for idx in (train_idx, val_idx, test_idx)]
    for part, tensors in zip(("train", "validation", "test"), sets, strict=True):
        _refuse_garbage(ds, path, part, tensors)
    names = ds.info.get("class_names") or [str(i) for i in range(ds.num_classes)]
    data = PreparedData(path.name, ds.layout, ds.num_classes, list(names), *sets)
    _CACHE.clear()  # keep one dataset in memory at a time
    _CACHE[key] = data
    return data


def _require_validation(
    cfg: DataConfig, path: Path, split: str, train_labels: np.ndarray, held: np.ndarray
) -> None:
    """Refuse a training part from which no validation clip can be carved.

    Every protocol selects on the validation part: the alignment module's epoch and the
    probe's penalty by its loss, fine-tuning and distillation by its accuracy, tuning and
    pruning by ``val_top1``. With no validation clip there is nothing to select on (the
    run used to end in ``torch.cat()`` of nothing), and each way of running anyway would
    change what the number means: borrowing test clips leaks the test set into selection,
    taking a class's only training clip leaves that class untrained. A researcher with a
    6-clip folder would rather hear which part is too small, so the run stops here, before
    any training, in one line naming the dataset and the count.

    :func:`stratified_split` holds clips out only of classes with at least two training
    clips (one stays for training), so the part is empty when ``data.val_fraction`` is 0 or
    when no class has two training clips."""
    if len(held):
        return
    if cfg.val_fraction == 0:
        raise ConfigError(
            f"data.val_fraction=0 leaves data.split {split!r} of {path} no validation part, "
            "and the protocols select checkpoints and penalties on it; set a fraction above 0"
        )
    raise ConfigError(
        f"data.split {split!r} of {path} has {len(train_labels)} training clips and no class "
        f"with 2 or more, so no validation clip can be held out without leaving a class "
        "untrained; at least one class needs 2 training clips (better: several per class)"
    )


def _refuse_garbage(ds: SkeletonDataset, path: Path, part: str, tensors: TensorSet) -> None:
    """Nothing trains or is evaluated on NaN/inf or on an empty (all-zero) clip: such samples
    stop the run, named, instead of silently becoming numbers.

    "Empty" is judged on the stored clip, not on the stream made from it: a one-frame clip
    (NW-UCLA's ``a02_s09_e04_v02``) has a motion stream of zeros, which is its true motion,
    as in the CTR-GCN line's feeders, not a corrupt sample."""
    flat = tensors.x.flatten(1)
    bad = ~torch.isfinite(flat).all(dim=1)
    zero = (flat.abs().sum(dim=1) == 0) & ~bad
    for pos in torch.nonzero(zero).flatten().tolist():  # few: read only their stored clips
        if not np.any(ds.data[int(tensors.index[pos])]):
            bad[pos] = True
    if bool(bad.any()):
        rows = tensors.index[bad].tolist()
        names = ", ".join(str(ds.meta["name"].iloc[i]) for i in rows[:5])
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        raise DataFormatError(
            path,
            f"{len(rows)} {part} samples are NaN/inf or all zero ({names}{more}); list them "
            f"with `asma-bench data info {path} --check`, convert with --skip-bad to leave "
            "them out",
        )


def _load(ds: SkeletonDataset, idx: np.ndarray, cfg: DataConfig) -> TensorSet:
    feeder = SkeletonFeeder(
        ds, indices=idx, frames=cfg.frames, stream=cfg.stream, normalize=cfg.normalize, train=False
    )
    _, c, _, v, m = ds.data.shape
    x = torch.empty((len(idx), c, cfg.frames, v, m), dtype=torch.float32)
    if cfg.workers > 0 and len(idx) > 256:
        loader = torch.utils.data.DataLoader(feeder, batch_size=256, num_workers=cfg.workers)
        pos = 0
        for xb, _ in loader:
            x[pos : pos + len(xb)] = xb
            pos += len(xb)
    else:
        for i in range(len(idx)):
            x[i] = torch.as_tensor(feeder[i][0])
    y = torch.as_tensor(ds.labels[idx], dtype=torch.long)
    return TensorSet(x, y, torch.as_tensor(idx, dtype=torch.long))
