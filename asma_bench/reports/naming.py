"""A dataset's name in titles, captions and table columns, read from its folder.

Apart from the report modules so that the tables and the cross-dataset analysis both
name datasets the same way without importing each other.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from asma_bench.data.store import INFO_FILE

__all__ = ["dataset_info", "dataset_name", "dataset_title", "dataset_titles"]


def dataset_name(key: str) -> str:
    """A dataset's short name for a column: the folder's name (``synthetic/small`` kept;
    a transfer's ``source → target`` both ways)."""
    if " → " in key:
        return " → ".join(dataset_name(part) for part in key.split(" → "))
    return key if key.startswith("synthetic/") else (Path(key).name or key)


#: What a converter's ``source`` field (info.json) says about the dataset it read
_SOURCE_NAMES = {"ucla": "NW-UCLA", "pku": "PKU-MMD", "ntu-raw": "NTU RGB+D"}
_MAX_INFO_BYTES = 1 << 24  # info.json holds the split lists: megabytes for NTU-120


def dataset_title(key: str | Path) -> str:
    """A dataset's own name, for titles and captions: the ``name`` field of its info.json,
    else what its ``source`` field says (``ucla`` → NW-UCLA, ``ntu-raw`` → NTU RGB+D 60 or
    120, ``pyskl:ntu60_hrnet.pkl`` → ntu60_hrnet, ``generic:my_clips`` → my_clips), else
    :func:`dataset_name` (the folder's name; ``synthetic/small`` as it is)."""
    key = str(key)
    if " → " in key:
        return " → ".join(dataset_title(part) for part in key.split(" → "))
    if key == "synthetic" or key.startswith("synthetic/"):
        return key
    info = dataset_info(Path(key))
    name = info.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    source = info.get("source")
    if isinstance(source, str) and source:
        fmt, _, detail = source.partition(":")
        if fmt in _SOURCE_NAMES:
            title = _SOURCE_NAMES[fmt]
            classes = info.get("num_classes")
            return f"{title} {classes}" if fmt == "ntu-raw" and classes in (60, 120) else title
        if fmt == "synthetic" and detail:
            return f"synthetic/{detail}"
        if fmt in ("pyskl", "ctrgcn-npz", "generic") and detail:
            return Path(detail).stem or detail
    return dataset_name(key)


def dataset_titles(keys: Sequence[str]) -> dict[str, str]:
    """:func:`dataset_title` of each key, the folder's name added where two are alike
    (two conversions of NW-UCLA: ``NW-UCLA (canon)``, ``NW-UCLA (canon2)``)."""
    titles = {k: dataset_title(k) for k in keys}
    counts = Counter(titles.values())
    return {k: t if counts[t] == 1 else f"{t} ({dataset_name(k)})" for k, t in titles.items()}


def dataset_info(folder: Path) -> dict:
    """The dataset folder's info.json as a dict; {} when there is none or it does not read
    (a report names the dataset either way)."""
    path = folder / INFO_FILE
    try:
        if not path.is_file() or path.stat().st_size > _MAX_INFO_BYTES:
            return {}
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
