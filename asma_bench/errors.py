"""The project's error types.

Every error a user can cause (a bad file, a bad parameter) is one of these. The CLI prints
``str(error)`` as a single line and exits non-zero; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations

from os import PathLike

#: The longest message an error carries: a message that quotes a hostile file (a 20 MB
#: line of zero bytes) must not become a 20 MB line on the terminal.
MAX_MESSAGE = 400


def clip_message(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (newlines and control characters as spaces), cut at ``limit``."""
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class AsmaBenchError(Exception):
    """Base class of errors caused by user input; the message is one clear line."""

    exit_code = 2

    def __str__(self) -> str:
        return clip_message(super().__str__())


class ConfigError(AsmaBenchError, ValueError):
    """A parameter or configuration value is invalid; the message names it."""


class DataFormatError(AsmaBenchError, ValueError):
    """A data file cannot be read; the message names the file and, for text, the line."""

    def __init__(self, path: str | PathLike[str], message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class UnsafePickleError(DataFormatError):
    """A pickle asked for something other than plain containers, strings and numbers."""
