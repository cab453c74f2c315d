"""From a trained unit to a prediction: its frozen model with the run's test-time pipeline.

A unit's model never sees a clip as stored: :class:`~asma_bench.data.feeder.SkeletonFeeder`
(``train=False``) first normalises it (centring, turning), crops and resizes its valid
frames to ``data.frames`` and computes the stream. :class:`EvalPipeline` is that
description (the data settings that shape test-time pre-processing, the layout, the class
names); a unit writes it beside its classifier checkpoint as ``<checkpoint>.pipeline.json``
(and as the run's ``pipeline.json`` artifact) when it finishes. :class:`Predictor` holds
the model and the pipeline, and runs raw clips through the feeder's own functions, so a
prediction is the run's evaluation, not a re-implementation of it:

>>> from asma_bench.api import load_model                                  # doctest: +SKIP
>>> predictor = load_model(run_id, runs="runs")
>>> pred = predictor.predict(clips, lengths)   # clips (N, C, T, V, M) as in data.npy
>>> pred.labels, pred.names, pred.logits
>>> predictor.predict_folder("ucla/canonical", part="test").accuracy()
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from asma_bench.config import DataConfig, RunConfig
from asma_bench.data.feeder import SkeletonFeeder, eval_clip
from asma_bench.data.layouts import SkeletonLayout, get_layout, layout_ref
from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.fileio import atomic_write_text

if TYPE_CHECKING:
    from asma_bench.training.data import PreparedData

__all__ = [
    "PREDICTABLE", "EvalPipeline", "Prediction", "Predictor", "pipeline_path", "save_pipeline",
]  # fmt: skip

PIPELINE_VERSION = 1
#: protocol → the checkpoint kind holding its classifier (what ``load_model`` reads)
PREDICTABLE = {"linear": "linear", "finetune": "finetune", "semi": "finetune",
               "supervised": "finetune"}  # fmt: skip


def pipeline_path(checkpoint: Path) -> Path:
    """Where the pipeline of the classifier in ``checkpoint`` is kept: beside it."""
    return Path(checkpoint).with_name(f"{Path(checkpoint).stem}.pipeline.json")


@dataclass(frozen=True)
class EvalPipeline:
    """The test-time pre-processing of a unit: ``SkeletonFeeder(train=False)`` settings,
    the skeleton they apply to, the clip shape the model takes and the class names."""

    frames: int
    normalize: str
    stream: str
    layout: str | dict[str, Any]
    channels: int
    bodies: int
    class_names: list[str] = field(default_factory=list)
    split: str | None = None
    eval_crop_ratio: float = 1.0
    min_frames: int = 2
    #: the unit's protocol and whole config: with them the checkpoint folder alone rebuilds
    #: the model (``load_model(path)``), without the MLflow store or the dataset
    protocol: str = ""
    config: dict[str, Any] | None = None

    @classmethod
    def from_data(
        cls, cfg: DataConfig, dataset: Path | str, run: RunConfig | None = None,
        protocol: str = "",
    ) -> EvalPipeline:  # fmt: skip
        """The pipeline of data config ``cfg`` on its (resolved) dataset folder; ``run``
        (the unit's config) and ``protocol`` are kept for rebuilding the model."""
        ds = SkeletonDataset(dataset)
        names = ds.info.get("class_names") or [str(i) for i in range(ds.num_classes)]
        return cls(
            frames=cfg.frames, normalize=cfg.normalize, stream=cfg.stream,
            layout=layout_ref(ds.layout), channels=int(ds.data.shape[1]),
            bodies=int(ds.data.shape[4]), class_names=[str(n) for n in names], split=cfg.split,
            protocol=protocol, config=None if run is None else run.model_dump(mode="json"),
        )  # fmt: skip

    def empty_data(self) -> PreparedData:
        """What building the unit's model reads of its data (the skeleton, the channels,
        the clip shape, the classes), with no clip: the dataset is not needed."""
        from asma_bench.training.data import PreparedData, TensorSet

        shape = (0, self.channels, self.frames, self.skeleton.num_joints, self.bodies)
        empty = TensorSet(torch.zeros(shape), torch.zeros(0, dtype=torch.long),
                          torch.zeros(0, dtype=torch.long))  # fmt: skip
        return PreparedData(
            name="", layout=self.skeleton, num_classes=len(self.class_names),
            class_names=list(self.class_names), train=empty, val=empty, test=empty,
        )  # fmt: skip

    @property
    def skeleton(self) -> SkeletonLayout:
        return get_layout(self.layout)

    def to_json(self) -> str:
        return json.dumps({"version": PIPELINE_VERSION, **asdict(self)}, indent=1)

    def save(self, path: Path) -> Path:
        """Write the pipeline to ``path`` atomically."""
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> EvalPipeline:
        """Read a pipeline file; a malformed one is one line naming it."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            if raw.pop("version", None) != PIPELINE_VERSION:
                raise ValueError(f"not a version {PIPELINE_VERSION} pipeline file")
            return cls(**raw)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise DataFormatError(path, f"not a readable pipeline file ({exc})") from None

    def transform(self, sample: np.ndarray, length: int) -> torch.Tensor:
        """One stored sample (C, T, V, M) with ``length`` valid frames, as the model takes it."""
        return eval_clip(
            sample, length, self.skeleton, frames=self.frames, normalize=self.normalize,
            stream=self.stream, eval_crop_ratio=self.eval_crop_ratio, min_frames=self.min_frames,
        )  # fmt: skip

    def feeder(
        self, folder: str | os.PathLike[str], split: str | None = None, part: str | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> SkeletonFeeder:  # fmt: skip
        """The unit's own test-time feeder over a dataset folder: every sample, a split's
        ``part`` (``split`` defaults to the run's), or the dataset rows ``indices``."""
        ds = SkeletonDataset(folder)
        if layout_ref(ds.layout) != self.layout or ds.data.shape[1] != self.channels:
            raise ConfigError(
                f"dataset {folder}: its clips (layout {ds.layout.name}, {ds.data.shape[1]} "
                f"channels) are not the kind the model was trained on ({self.skeleton.name}, "
                f"{self.channels} channels)"
            )
        if part is not None and indices is None:
            from asma_bench.training.data import choose_split

            split = choose_split(split or self.split or "", ds.split_names, folder, "split")
        elif split is not None and part is None:
            part = "test"
        return SkeletonFeeder(
            ds, split if indices is None else None, part or "train", indices=indices,
            frames=self.frames, normalize=self.normalize, stream=self.stream, train=False,
            eval_crop_ratio=self.eval_crop_ratio, min_frames=self.min_frames,
        )  # fmt: skip


def save_pipeline(
    cfg: RunConfig, protocol: str, checkpoints: dict[str, Path], data_root: Path
) -> EvalPipeline | None:
    """Write the test-time pipeline of a finished unit beside its classifier checkpoint
    (``checkpoints`` by kind, as :func:`~asma_bench.protocols.unit_files.unit_checkpoints`
    gives them); None for a protocol ``load_model`` does not read, or no checkpoint."""
    kind = PREDICTABLE.get(protocol)
    if kind not in checkpoints:
        return None
    from asma_bench.training.data import resolve_dataset

    pipeline = EvalPipeline.from_data(cfg.data, resolve_dataset(cfg.data, data_root), cfg, protocol)
    pipeline.save(pipeline_path(checkpoints[kind]))
    return pipeline


@dataclass
class Prediction:
    """Class logits (N, K) and predicted labels (N,) of N clips; for a dataset folder also
    the rows predicted (``indices``) and their stored labels (``targets``)."""

    logits: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    indices: np.ndarray | None = None
    targets: np.ndarray | None = None

    @property
    def names(self) -> list[str]:
        """The predicted class names."""
        return [self.class_names[i] if i < len(self.class_names) else str(i)
                for i in self.labels.tolist()]  # fmt: skip

    def accuracy(self, targets: Sequence[int] | np.ndarray | None = None) -> float:
        """Top-1 accuracy in percent against ``targets`` (default: the folder's labels)."""
        truth = self.targets if targets is None else np.asarray(targets).reshape(-1)
        if truth is None or len(truth) != len(self.labels):
            raise ConfigError(f"targets: {len(self.labels)} labels needed")
        return 100.0 * float(np.mean(self.labels == truth)) if len(truth) else float("nan")


def valid_lengths(clips: np.ndarray) -> np.ndarray:
    """Each clip's valid length read from its zero padding: one past its last frame with a
    non-zero value (at least 1). The stored ``length`` of meta.csv is the one to prefer: a
    clip whose body is absent in its last frames is longer than its padding says."""
    nonzero = np.asarray(clips).any(axis=(1, 3, 4))  # (N, T)
    last = nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 1).astype(np.int64)


class Predictor(torch.nn.Module):
    """A unit's frozen classifier and its test-time pipeline.

    Called on a pre-processed batch (N, C, frames, V, M) it is the classifier itself
    (logits), and its other attributes are the classifier's (``mode``, ``encoders``…);
    :meth:`predict` and :meth:`predict_folder` take clips as stored."""

    def __init__(self, model: torch.nn.Module, pipeline: EvalPipeline, batch_size: int = 256):
        super().__init__()
        self.model = model
        self.pipeline = pipeline
        self.batch_size = int(batch_size)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the classifier's attributes
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules") or {}
            if "model" not in modules or name.startswith("__"):
                raise
            return getattr(modules["model"], name)

    @property
    def class_names(self) -> list[str]:
        return list(self.pipeline.class_names)

    def preprocess(
        self, clips: np.ndarray | torch.Tensor, lengths: Sequence[int] | np.ndarray | None = None
    ) -> torch.Tensor:
        """Clips as stored (N, C, T, V, M), or one (C, T, V, M), zero-padded after
        ``lengths`` valid frames (default: read from the padding, :func:`valid_lengths`), as
        the model takes them: the run's ``SkeletonFeeder(train=False)`` items."""
        arr = clips.detach().cpu().numpy() if isinstance(clips, torch.Tensor) else np.asarray(clips)
        if arr.ndim == 4:
            arr = arr[None]
        p, layout = self.pipeline, self.pipeline.skeleton
        if arr.ndim != 5 or arr.shape[1] != p.channels or arr.shape[3] != layout.num_joints:
            raise ConfigError(
                f"clips: shape {tuple(arr.shape)}; expected (N, C={p.channels}, T, "
                f"V={layout.num_joints}, M) clips of layout {layout.name} as stored in data.npy"
            )
        if lengths is None:
            lens = valid_lengths(arr)
        else:
            lens = np.asarray(lengths).reshape(-1)
            if len(lens) != len(arr) or lens.dtype.kind not in "iu":
                raise ConfigError(f"lengths: {len(arr)} integers needed, one per clip")
        if not len(arr):
            return torch.empty((0, p.channels, p.frames, layout.num_joints, arr.shape[4]))
        return torch.stack([p.transform(arr[i], int(lens[i])) for i in range(len(arr))])

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> np.ndarray:
        """Class logits (N, K) of pre-processed clips, in batches."""
        parts = [self.model(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        if not parts:
            return np.zeros((0, len(self.pipeline.class_names)), dtype=np.float32)
        return torch.cat(parts).float().cpu().numpy()

    def predict(
        self,
        clips: np.ndarray | torch.Tensor | str | os.PathLike[str],
        lengths: Sequence[int] | np.ndarray | None = None,
    ) -> Prediction:
        """Logits and labels of clips as stored (see :meth:`preprocess`), or of every
        sample of a dataset folder (see :meth:`predict_folder`)."""
        if isinstance(clips, (str, os.PathLike)):
            if lengths is not None:
                raise ConfigError("lengths: a dataset folder has its own (meta.csv)")
            return self.predict_folder(clips)
        logits = self.logits(self.preprocess(clips, lengths))
        return Prediction(logits, logits.argmax(axis=1), self.class_names)

    def predict_folder(
        self, folder: str | os.PathLike[str], split: str | None = None, part: str | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> Prediction:  # fmt: skip
        """Logits and labels of a dataset folder's samples, through the unit's own feeder:
        all of them, a split's ``part`` (``part="test"``: the run's split's test clips), or
        the rows ``indices``; ``targets`` are the stored labels."""
        feeder = self.pipeline.feeder(folder, split, part, indices)
        x = torch.stack([feeder[k][0] for k in range(len(feeder))]) if len(feeder) else None
        logits = self.logits(torch.empty(0) if x is None else x)
        return Prediction(logits, logits.argmax(axis=1), self.class_names,
                          feeder.indices.copy(), feeder.labels.copy())  # fmt: skip
