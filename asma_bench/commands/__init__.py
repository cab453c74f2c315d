"""The commands of the ``asma-bench`` CLI, one module per command or family of commands:
``data`` (synth, convert, info), ``run``, ``catalog`` (grids, profiles, maskings, models),
``report`` (report, results), ``runs`` (show, rerun), ``tune``, ``bench``, ``check``,
``latency``. Each adds its commands to the application of :mod:`asma_bench.commands.app`
(which also holds the helpers they share) when imported; :mod:`asma_bench.cli` imports
every module of this package before it parses arguments.
"""

from __future__ import annotations

import importlib
import pkgutil

#: The modules whose commands ``--help`` lists first (the ones a new user starts with).
FIRST = ("data", "run", "catalog", "report", "runs", "tune")


def load_all() -> None:
    names = [info.name for info in pkgutil.iter_modules(__path__) if info.name != "app"]
    for name in sorted(names, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n)):
        importlib.import_module(f"{__name__}.{name}")
