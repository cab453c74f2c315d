"""Command modules of the ``asma-bench`` CLI beyond the core ones in :mod:`asma_bench.cli`.

Each module here adds its commands to ``asma_bench.cli.app`` when imported; the CLI
imports every module of this package before it parses arguments.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
