"""``python -m asma_bench`` runs the command line."""

from asma_bench.cli import _console

_console()
