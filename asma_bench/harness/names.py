"""What a grid, cell or study may be called, and which metric names a grid may choose: the
checks that reading a grid needs, apart from the planning limits of
:mod:`asma_bench.harness.limits` (which import the planner, and so cannot be imported by
:mod:`asma_bench.harness.grids`)."""

from __future__ import annotations

import re

from asma_bench.errors import ConfigError

#: The characters of grid, cell and study names (README: "Reliability").
NAME_CHARS = "A-Za-z0-9_.+-"
MAX_NAME = 128
_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*")
_STUDY = re.compile(r"[A-Za-z0-9_+:-][A-Za-z0-9_.+:-]*")


def name_problem(value: object, study: bool = False) -> str | None:
    """Why ``value`` cannot be a grid, cell (or, with ``study``, study) name; None if it can."""
    chars = f"{NAME_CHARS[:-1]}:-" if study else NAME_CHARS
    if not isinstance(value, str) or not (_STUDY if study else _NAME).fullmatch(value):
        return f"names use only the characters [{chars}] and do not start with a dot"
    if len(value) > MAX_NAME:
        return f"names are at most {MAX_NAME} characters long"
    return None


def check_study_name(name: str) -> str:
    problem = name_problem(name, study=True)
    if problem is not None:
        raise ConfigError(f"--study {name!r}: {problem}")
    return name


# --------------------------------------------------------------------------- metrics
_SCORES = r"(?:knn_)?(?:top1|top5|mean_class_acc|brier|nll)"
_METRIC = re.compile(
    r"(?:[a-z][a-z0-9]*_)*(?:"
    rf"(?:test|val)_{_SCORES}"  # summarize(): test_top1, theta_test_nll, teacher_test_top5 ...
    r"|(?:missing\d+|noise[0-9.e+-]+)_top1"  # robustness
    r"|loss|val_loss|cv_loss|train_top1|weight_decay|iterations|objective|params|labelled"
    r"|agreement)"
)
KNOWN_METRICS = (
    "test_top1, test_top5, test_mean_class_acc, test_nll, test_brier, test_knn_top1 "
    "(also theta_/phi_/teacher_/joint_/bone_/motion_ prefixed), val_top1, missingN_top1, "
    "noiseS_top1"
)


def known_metric(name: object) -> bool:
    """Whether ``name`` has the form of a metric the protocols log (see ``KNOWN_METRICS``)."""
    return isinstance(name, str) and _METRIC.fullmatch(name) is not None
