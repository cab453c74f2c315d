"""Typed, validated run configuration, YAML profiles and command-line overrides.

A run's configuration is one :class:`RunConfig`. It starts from the defaults below (the
paper's values where the paper states them), a named profile (``smoke``, ``quick``,
``paper``; YAML files in ``asma_bench/profiles``) is merged on top, then ``key.sub=value``
overrides from the command line. Unknown keys and bad values fail with one line naming the
field.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from asma_bench.errors import ConfigError, validation_line

DEVICES = "cpu, cuda, cuda:N or mps"

#: The largest seed (run seeds and synthetic-data seeds): NumPy's legacy seeding and
#: Optuna's samplers take seeds below 2**32 (torch takes more, so it is not the bound).
MAX_SEED = 2**32 - 1
#: The longest clip a run may crop or resample to (``data.frames``): NTU's longest
#: recordings are 300 frames and a whole PKU-MMD video a few thousand.
MAX_FRAMES = 10_000
#: The most blocks a backbone or a distilled student may have (``distill.student_depth``,
#: ``num_blocks`` and ``channels`` in ``backbone.params``; checked at planning).
MAX_BLOCKS = 1_000
#: ``data.normalize`` choices, which the feeder implements (asma_bench/data/feeder.py).
NORMALIZATIONS = (
    "none",
    "center_first_frame",
    "center_every_frame",
    "center_every_frame_rotate",
    "center_first_frame_rotate",
)


def check_device(value: str) -> str:
    """``value`` if it names a device runs can use (cpu, cuda, cuda:N, mps); else ValueError."""
    if value in ("cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", value):
        return value
    raise ValueError(f"use {DEVICES}")


class _Strict(BaseModel):
    # NaN or infinity in a float setting (a learning rate, a temperature) is refused: no
    # run can use it, and it would fail (or diverge) only after the run has started
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(_Strict):
    source: str = Field("synthetic", description="'synthetic' or a canonical dataset folder")
    preset: str = Field("default", description="synthetic preset when source is 'synthetic'")
    synth_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the synthetic data (fixed across run seeds)"
    )
    layout: str | None = Field(
        None,
        description="synthetic data only: the built-in skeleton its clips are written on "
        "(kinect20, coco17, ...; default ntu25), the same motions retargeted; set by itself "
        "when a synthetic source is transferred to a dataset on another skeleton",
    )
    fingerprint: str | None = Field(
        None,
        description="content hash of the dataset folder, set when a run is planned: a unit "
        "is known by its data's content, not by how its folder was named",
    )
    split: str = "xsub"
    frames: int = Field(50, ge=4, le=MAX_FRAMES)
    stream: Literal["joint", "bone", "motion"] = "joint"
    normalize: str = "center_first_frame"
    val_fraction: float = Field(
        0.1, ge=0.0, lt=0.5, description="validation split carved from training data"
    )
    train_limit: int | None = Field(None, ge=1, description="cap on training samples (smoke)")
    test_limit: int | None = Field(None, ge=1)
    workers: int = Field(0, ge=0)

    @field_validator("normalize")
    @classmethod
    def _known_normalization(cls, v: str) -> str:
        if v not in NORMALIZATIONS:
            raise ValueError(f"use one of {', '.join(NORMALIZATIONS)}")
        return v


class StrategySpec(_Strict):
    """A registered masking strategy and its own parameters, given to it unchanged (it
    checks them itself). A bare name is short for ``{name: NAME}``."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


class EncoderMasks(_Strict):
    """One encoder's mask choice: a pairing, and either side replaced by a strategy of its
    own. A bare name is short for ``{pairing: NAME}``; a field left out comes from the
    ``masking`` section's, then from the objective's default pairing for the encoder."""

    pairing: str | None = None
    spatial: StrategySpec | None = None
    temporal: StrategySpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, v: Any) -> Any:
        return {"pairing": v} if isinstance(v, str) else v


class MaskingConfig(_Strict):
    """The one home of the mask choice (which strategies mask, how much, how applied).

    Every masked encoder draws from ``pairing`` (a registered pairing name; unset: the
    objective's own default for the encoder, ``ldsm_hmtm`` for one-encoder objectives and
    ASMa's HDSM+LMTM / LDSM+HMTM for f_θ / f_ϕ), with ``spatial`` / ``temporal`` replacing
    that side; ``encoders.<role>`` (e.g. ``encoders.theta``) chooses for one encoder and
    wins over the section's fields."""

    n: float = Field(9, gt=0, description="joints masked (count, or fraction of V if < 1)")
    k: float = Field(10, gt=0, description="frames masked (count, or fraction of T if < 1)")
    mode: Literal["zero", "drop"] = "zero"
    pairing: str | None = Field(
        None,
        description="the pairing every masked encoder draws from (unset: the objective's "
        "default for each encoder)",
    )
    spatial: StrategySpec | None = Field(
        None,
        description="the spatial strategy instead of the pairing's, e.g. {name: ldsm, "
        "params: {law: inverse_degree}}; its params win over n",
    )
    temporal: StrategySpec | None = Field(
        None,
        description="the temporal strategy instead of the pairing's, e.g. {name: hmtm, "
        "params: {k: 5}}; its params win over k",
    )
    encoders: dict[str, EncoderMasks] = Field(
        default_factory=dict,
        description="one encoder's choice by its role, e.g. {theta: ldsm_lmtm, phi: "
        "{pairing: hdsm_hmtm, spatial: random_joint}}; wins over the fields above",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, v: Any) -> Any:
        if isinstance(v, Mapping) and "ldsm_law" in v:
            raise ValueError(
                "masking.ldsm_law is now a parameter of LDSM itself: "
                f"masking.spatial={{name: ldsm, params: {{law: {v['ldsm_law']}}}}}"
            )
        return v

    def choice(
        self, role: str, default: str
    ) -> tuple[str, StrategySpec | None, StrategySpec | None]:
        """``(pairing, spatial, temporal)`` of the encoder ``role``, whose own default
        pairing is ``default``: its ``encoders`` entry, then this section, then ``default``
        (a side left None is the pairing's own strategy)."""
        mine = self.encoders.get(role, EncoderMasks())
        return (
            mine.pairing or self.pairing or default,
            mine.spatial or self.spatial,
            mine.temporal or self.temporal,
        )


class ConfigDeprecation(FutureWarning):
    """A configuration key that moved: still read, said once with its new form."""


def _moved_mask_keys(layer: Mapping[str, Any]) -> Mapping[str, Any]:
    """A config layer with the mask choice's old homes moved to ``masking``, each said once
    (a :class:`ConfigDeprecation`): ``pretrain.pairing`` → ``masking.pairing``,
    ``pretrain.params.<role>_masks`` → ``masking.encoders.<role>``."""
    pretrain = layer.get("pretrain") if isinstance(layer, Mapping) else None
    if not isinstance(pretrain, Mapping):
        return layer
    params = pretrain.get("params")
    roles = [k for k in params if k.endswith("_masks")] if isinstance(params, Mapping) else []
    if "pairing" not in pretrain and not roles:
        return layer
    import warnings

    out = copy.deepcopy(dict(layer))
    masking = dict(out.get("masking") or {})
    if "pairing" in pretrain:
        value = out["pretrain"].pop("pairing")
        if masking.get("pairing") not in (None, value):
            raise ConfigError(
                f"pretrain.pairing={value!r} and masking.pairing={masking['pairing']!r}: "
                "pretrain.pairing is masking.pairing's old name; give masking.pairing only"
            )
        masking["pairing"] = value
        warnings.warn(
            f"pretrain.pairing is deprecated; use masking.pairing (--set masking.pairing={value})",
            ConfigDeprecation,
            stacklevel=3,
        )
    if roles:
        out["pretrain"]["params"] = dict(params)
        encoders = dict(masking.get("encoders") or {})
        for key in roles:
            role = key.removesuffix("_masks")
            encoders[role] = out["pretrain"]["params"].pop(key)
            warnings.warn(
                f"pretrain.params.{key} is deprecated; use masking.encoders.{role} "
                f"(--set masking.encoders.{role}=...)",
                ConfigDeprecation,
                stacklevel=3,
            )
        masking["encoders"] = encoders
    out["masking"] = masking
    return out


class BackboneConfig(_Strict):
    name: str = "stgcn"
    params: dict[str, Any] = Field(default_factory=dict)


class PretrainConfig(_Strict):
    objective: str = "barlow_twins"
    epochs: int = Field(150, ge=0)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(5e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    warmup_epochs: int = Field(10, ge=0)
    projector_dim: int = Field(6144, ge=8)
    lambd: float = Field(2e-4, ge=0)
    params: dict[str, Any] = Field(default_factory=dict, description="objective extras")
    fused_adam: bool = Field(
        False,
        description="Adam's fused kernel (one pass over each tensor: about 6x faster over "
        "the 6144-wide projectors; the paper profile's) instead of the multi-tensor kernel; "
        "the same update, rounded differently in about 1 element in 500 (1 ulp)",
    )
    bn_stats: Literal["data", "init"] = Field(
        "data",
        description="BatchNorm statistics of an encoder that is not pretrained (epochs=0): "
        "data = averaged over the un-augmented training clips (no weight changes), as a "
        "pretrained encoder's come from data; init = left at their initial (0, 1)",
    )


class ProbeConfig(_Strict):
    epochs: int = Field(150, ge=1, description="Adam epochs (the alignment module's solver)")
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float | list[float] = Field(
        default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1],
        description="L2 penalty; a list: each is fitted, the one with the lowest held-out "
        "loss kept (0 has no optimum on separable features: L-BFGS would stop at its cap)",
    )
    selection: Literal["auto", "cv", "val"] = Field(
        "auto",
        description="how the penalty is chosen: cv = stratified k-fold cross-validation on "
        "the training split, val = the validation split; auto = cv for L-BFGS heads, val "
        "for the Adam-trained alignment module",
    )
    cv_folds: int = Field(5, ge=2, description="folds of selection=cv")
    standardize: bool = Field(
        True, description="standardise features with training-split mean and std"
    )
    solver: Literal["auto", "lbfgs", "adam"] = Field(
        "auto", description="auto = full-batch L-BFGS for linear heads, Adam for 'aligned'"
    )
    max_iter: int = Field(1000, ge=1, description="L-BFGS iteration cap")
    knn_k: int = Field(20, ge=0, description="neighbours of the k-NN accuracy (0: off)")
    knn_temperature: float = Field(0.07, gt=0, description="k-NN vote weight exp(s / T)")
    bn_stats: Literal["running", "data"] = Field(
        "running",
        description="BatchNorm statistics of a pretrained encoder when probed: 'running' = "
        "the running averages pretraining left (over augmented, masked views); 'data' = "
        "re-estimated on the clean training clips, exactly as random_init's are",
    )

    @field_validator("weight_decay")
    @classmethod
    def _decays(cls, v: float | list[float]) -> float | list[float]:
        values = v if isinstance(v, list) else [v]
        if not values:
            raise ValueError("give at least one value")
        if any(d < 0 for d in values):
            raise ValueError("must be >= 0")
        return v

    heads: int = Field(4, ge=1, description="attention heads of the alignment module")
    features: Literal["auto", "single", "theta", "phi", "concat", "aligned"] = Field(
        "auto", description="auto = aligned for two-encoder objectives, else single"
    )


class FinetuneConfig(_Strict):
    epochs: int = Field(150, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(5e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    align_epochs: int = Field(50, ge=1)
    align_lr: float = Field(1e-4, gt=0)
    label_fraction: float = Field(1.0, gt=0, le=1.0)


class DistillConfig(_Strict):
    teacher: Literal["linear", "finetune"] = "linear"
    tau: float = Field(8.0, gt=0)
    tau_squared: bool = Field(
        True, description="multiply the KL by τ² (Hinton et al.); false: no τ² (eq. 14 has none)"
    )
    kl_direction: Literal["teacher_student", "student_teacher"] = Field(
        "teacher_student",
        description="teacher_student: KL(p_T ‖ p_S) (Hinton et al.); student_teacher: "
        "KL(ŷ^S ‖ ŷ^T) as eq. 14 prints it",
    )
    kind: Literal["logit", "feature"] = Field(
        "logit",
        description="logit: KL of eqs. 13-14; feature: cosine to the teacher's "
        "features, then a linear probe (Table 11)",
    )
    teacher_streams: list[Literal["joint", "bone", "motion"]] = Field(
        default_factory=lambda: ["joint"],
        min_length=1,
        description="one teacher per stream, fused (3s-ASMa, the teacher of Table 2)",
    )
    student_depth: int = Field(5, ge=1, le=MAX_BLOCKS)
    student_params: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(150, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-2, gt=0)


class RobustnessConfig(_Strict):
    missing_joints: list[int] = Field(default_factory=lambda: [0, 3, 6, 9])
    noise_std: list[float] = Field(default_factory=lambda: [0.0, 0.01, 0.05])


TARGET_OWN_FIELDS = ("source", "preset", "synth_seed", "layout", "fingerprint")


class TransferConfig(_Strict):
    target: DataConfig | None = Field(
        None,
        description="dataset B (pretrain on data, eval here); fields it does not set, other "
        f"than {', '.join(TARGET_OWN_FIELDS)}, come from data",
    )
    mode: Literal["finetune", "linear"] = "finetune"


class StreamsConfig(_Strict):
    names: list[Literal["joint", "bone", "motion"]] = Field(
        default_factory=lambda: ["joint", "bone", "motion"]
    )
    weights: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0])


class RunConfig(_Strict):
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = Field("cpu", description=DEVICES)
    amp: bool = Field(
        False,
        description="pretraining in bf16 autocast: on CUDA (fp16 where bf16 is missing) and "
        "on CPUs with native bf16 (AVX512-BF16, AMX); the default is fp32",
    )
    deterministic: bool = True
    rng: Literal["streams", "shared"] = Field(
        "streams",
        description="'streams': one random stream per purpose (batch order, augmentation, "
        "masks, dropout, initial weights), each derived from (seed, purpose), so the cells of "
        "a grid at one seed see the same batches and augmented views and differ only in "
        "their masks (common random numbers); 'shared': one generator for batches, "
        "augmentation and masks, as before (cells whose masks draw differently drift apart)",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    linear: ProbeConfig = Field(default_factory=ProbeConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    robustness: RobustnessConfig = Field(default_factory=RobustnessConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    streams: StreamsConfig = Field(default_factory=StreamsConfig)

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        return check_device(v)

    @model_validator(mode="before")
    @classmethod
    def _mask_choice_home(cls, values: Any) -> Any:
        return _moved_mask_keys(values) if isinstance(values, Mapping) else values

    @model_validator(mode="before")
    @classmethod
    def _target_inherits_data(cls, values: Any) -> Any:
        """``transfer.target`` names dataset B; what it leaves unset (frames, normalisation,
        validation fraction, sample limits, stream, split) is taken from ``data`` so both
        datasets are pre-processed alike. Which dataset it is (source, preset, synthetic
        seed) is never inherited."""
        if not isinstance(values, Mapping):
            return values
        transfer, data = values.get("transfer"), values.get("data", {})
        if not isinstance(transfer, Mapping) or not isinstance(transfer.get("target"), Mapping):
            return values
        if not isinstance(data, Mapping):
            return values
        inherited = {k: v for k, v in data.items() if k not in TARGET_OWN_FIELDS}
        target = {**inherited, **transfer["target"]}
        return {**values, "transfer": {**transfer, "target": target}}

    def identity(self) -> dict[str, Any]:
        """The resolved config as it identifies a unit (its id, its checkpoints' names):
        every field, except the :data:`IDENTITY_DEFAULTS` left at their defaults."""
        d = self.model_dump(mode="json")
        _mask_choice_as_published(d)
        for key, default in IDENTITY_DEFAULTS.items():
            if get_dotted(d, key) == default:
                _pop_dotted(d, key)
        for key in ("data", "transfer.target"):  # a dataset is known by its content
            data = get_dotted(d, key)
            if isinstance(data, dict) and data.get("fingerprint"):
                data.pop("source", None)
            elif isinstance(data, dict):
                data.pop("fingerprint", None)  # (ids of synthetic units stay as they were)
            if isinstance(data, dict) and data.get("layout") is None:
                data.pop("layout", None)
        return d

    def digest(self, exclude: Iterable[str] = ()) -> str:
        """Stable hash of the resolved config (identifies a unit of work)."""
        d = self.identity()
        for key in exclude:
            _pop_dotted(d, key)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """Dotted-key view, e.g. ``{'pretrain.epochs': 150, ...}`` (for MLflow params)."""
        return flatten(self.model_dump(mode="json"))


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# Settings added after unit ids were published: at these values they stay out of a
# config's identity, so a runs/ folder made before them keeps its units and checkpoints.
IDENTITY_DEFAULTS: dict[str, Any] = {"pretrain.fused_adam": False}


def _mask_choice_as_published(d: dict[str, Any]) -> None:
    """The mask choice in the form unit ids were published with (``pretrain.pairing``,
    default ``ldsm_hmtm``; ``pretrain.params.<role>_masks``), so that runs folders made
    before it moved to ``masking`` keep their units and checkpoints. Planning gives a
    two-encoder objective's choice per encoder (``masking.encoders``), never in the
    section's own ``pairing``, so the two forms cannot name one id."""
    masking, pretrain = d["masking"], d["pretrain"]
    pretrain["pairing"] = masking.pop("pairing") or "ldsm_hmtm"
    for role, choice in sorted(masking.pop("encoders").items()):
        given = {k: v for k, v in choice.items() if v is not None}
        published = given["pairing"] if set(given) == {"pairing"} else given
        pretrain["params"] = {**pretrain["params"], f"{role}_masks": published}


def get_dotted(d: Mapping[str, Any], key: str) -> Any:
    """``d["a"]["b"]`` for ``"a.b"``; None where a part is missing."""
    for part in key.split("."):
        if not isinstance(d, Mapping) or part not in d:
            return None
        d = d[part]
    return d


def _pop_dotted(d: dict, key: str) -> None:
    *parents, last = key.split(".")
    for p in parents:
        d = d.get(p, {})
    if isinstance(d, dict):
        d.pop(last, None)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``override`` wins, nested mappings merge."""
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


#: The longest ``--set key=value`` text: a value is a number, a name or a small mapping.
MAX_OVERRIDE_CHARS = 10_000


def parse_override(text: str) -> dict[str, Any]:
    """``'pretrain.epochs=3'`` → ``{'pretrain': {'epochs': 3}}`` (value parsed as YAML).

    The text is bounded before it is parsed (:data:`MAX_OVERRIDE_CHARS`, lists and mappings
    nested at most :data:`MAX_NESTING` deep) and its value after (at most
    :data:`MAX_YAML_VALUES` values once YAML aliases are expanded), as a file's are."""
    if len(text) > MAX_OVERRIDE_CHARS:
        raise ConfigError(
            f"override {text[:40]!r}…: {len(text)} characters; at most {MAX_OVERRIDE_CHARS}"
        )
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part.isidentifier() for part in key.split(".")):
        raise ConfigError(f"override {text!r}: bad key {key!r}")
    where = f"--set {key}"
    if key.count(".") >= MAX_NESTING:
        raise ConfigError(f"{where}: {_too_deep('the key')}")
    if _flow_depth(raw) > MAX_NESTING:
        raise ConfigError(f"{where}: {_too_deep('the value')}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"{where}: {_too_deep('the value')}") from None
    out: dict[str, Any] = {}
    node = out
    *parents, last = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    _check_expansion(out, where, "override")
    return out


@dataclass(frozen=True)
class Catalog:
    """Named YAML documents shipped in a package folder, or any file by path: the one
    loader behind profiles, grids and search spaces.

    ``resolve(name)`` is the built-in ``<folder>/<name>.yaml`` or, for a name ending in
    ``.yaml``/``.yml``/``.json``, that file; anything else is one error listing the
    built-ins. ``load(name)`` reads it with :func:`load_yaml` (size, alias and syntax
    checks, errors naming file and line).
    """

    what: str
    folder: tuple[str, ...]

    def _dir(self) -> Any:  # noqa: ANN401 - an importlib.resources Traversable
        return resources.files("asma_bench").joinpath(*self.folder)

    def names(self) -> list[str]:
        return sorted(
            p.name.removesuffix(".yaml") for p in self._dir().iterdir() if p.name.endswith(".yaml")
        )

    @staticmethod
    def is_file(name: str | Path) -> bool:
        return str(name).endswith(CATALOG_SUFFIXES)

    def resolve(self, name: str | Path) -> Any:  # noqa: ANN401 - a Path or Traversable
        text = str(name)
        if self.is_file(text):
            path = Path(text)
            if not path.is_file():
                raise ConfigError(f"{path}: {self.what} file not found")
            return path
        if text in self.names():
            return self._dir() / f"{text}.yaml"
        raise ConfigError(
            f"unknown {self.what} {text!r}; available: {', '.join(self.names())} "
            "(or a path to a .yaml file)"
        )

    def load(self, name: str | Path) -> tuple[Any, dict[str, Any]]:
        """(where it was read from, its mapping)."""
        source = self.resolve(name)
        return source, load_yaml(source, self.what)


PROFILES = Catalog("profile", ("profiles",))


def list_profiles() -> list[str]:
    return PROFILES.names()


#: A profile, grid or search space is a few KB. Larger text, or a document whose aliases
#: expand to more values than this (a "billion laughs" bomb that stays small on disk and
#: explodes when a config is hashed or printed), is refused before anything uses it.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000
#: Lists and mappings nest at most this deep in a profile, grid, search space or ``--set``
#: value (a grid is about 6 deep); deeper documents are refused before anything recurses
#: into them (the YAML parser, merging, hashing, validation).
MAX_NESTING = 32


def _too_deep(what: str) -> str:
    return f"{what} nests lists and mappings deeper than {MAX_NESTING} levels"


_QUOTED = re.compile(r"'(?:[^'\n]|'')*'|\"(?:[^\"\\\n]|\\.)*\"")
_BRACKETS = re.compile(r"[\[\]{}]")


def _flow_depth(text: str) -> int:
    """How deep ``[``/``{`` nest in YAML ``text`` (quoted strings left out): a cheap look
    at the raw text, so that ``[[[[…]]]]`` is refused before the parser recurses into it."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_QUOTED.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


def load_yaml(path: str | Path | Any, what: str = "file") -> dict[str, Any]:
    """Safe-load a YAML mapping; errors name the file and line."""
    try:
        size = path.stat().st_size if isinstance(path, Path) else None
    except OSError:
        size = None
    if size is not None and size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {size} bytes is too large for a {what} (at most 1 MiB)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {len(text)} characters is too large for a {what}")
    if _flow_depth(text) > MAX_NESTING:
        raise ConfigError(f"{path}: {_too_deep(f'the {what}')}")
    try:
        data = yaml.safe_load(text)
    except RecursionError:  # block nesting (indentation, "- - - x") the look above misses
        raise ConfigError(f"{path}: {_too_deep(f'the {what}')}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a YAML mapping, got {type(data).__name__}")
    _check_expansion(data, path, what)
    return data


def _check_expansion(data: Any, path: object, what: str) -> None:  # noqa: ANN401
    """Refuse a document that expands to more than MAX_YAML_VALUES values or nests deeper
    than MAX_NESTING. YAML aliases share objects, so the loaded value is small in memory;
    the count walks it as if it were copied (as hashing or printing it would), stopping at
    the budget."""
    count, stack = 0, [(data, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            raise ConfigError(
                f"{path}: the {what} expands to more than {MAX_YAML_VALUES} values "
                "(nested YAML aliases?)"
            )
        if isinstance(node, dict | list | tuple):
            if depth >= MAX_NESTING:
                raise ConfigError(f"{path}: {_too_deep(f'the {what}')}")
            children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


#: File names a profile, grid or search space may have (JSON is YAML: ``config.json`` of a
#: run is a profile as it stands).
CATALOG_SUFFIXES = (".yaml", ".yml", ".json")


def is_profile_file(name: str) -> bool:
    """Whether ``name`` is a profile file's path (not a built-in profile's name)."""
    return Catalog.is_file(name)


def profile_dict(name: str) -> dict[str, Any]:
    """The overrides of a named profile, or of a YAML file given by path."""
    return PROFILES.load(name)[1]


def build_config(
    profile: str | None = "quick",
    overrides: Iterable[Mapping[str, Any] | str] = (),
) -> RunConfig:
    """Defaults ← profile ← overrides (dicts or ``key=value`` strings), validated."""
    d: dict[str, Any] = RunConfig().model_dump()
    if profile:
        d = deep_merge(d, _moved_mask_keys(profile_dict(profile)))
        if is_profile_file(profile):  # a bad profile file is named, not blamed on overrides
            try:
                validate_config(d)
            except ConfigError as exc:
                raise ConfigError(f"profile {profile}: {exc}") from None
    for ov in overrides:  # each layer's old keys moved before it merges: later layers win
        d = deep_merge(d, _moved_mask_keys(parse_override(ov) if isinstance(ov, str) else ov))
    return validate_config(d)


def validate_config(d: Mapping[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(d)
    except ValidationError as exc:
        raise ConfigError(validation_line(exc, "config")) from None
