"""The project's error types.

Every error a user can cause (a bad file, a bad parameter) is one of these. The CLI prints
``str(error)`` as a single line and exits non-zero; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

#: The longest message an error carries: a message that quotes a hostile file (a 20 MB
#: line of zero bytes) must not become a 20 MB line on the terminal.
MAX_MESSAGE = 400


def clip_message(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (newlines and control characters as spaces), cut at ``limit``."""
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def one_line(exc: BaseException, with_type: bool = False, first_line: bool = False) -> str:
    """An exception's message on one line (whitespace, newlines included, collapsed);
    ``with_type`` puts the exception's class name first (for errors from libraries),
    ``first_line`` keeps only the message's first line (a database driver's message goes
    on with the SQL statement and its parameters)."""
    text = str(exc).strip()
    if first_line:
        text = text.splitlines()[0] if text else ""
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text}" if with_type else text


def library_error(exc: BaseException) -> str:
    """A third-party library's exception (a database driver, MLflow, SQLAlchemy) in one
    line: its type and the first line of its message."""
    return one_line(exc, with_type=True, first_line=True)


def validation_line(exc: Any, what: str) -> str:  # noqa: ANN401 - a pydantic ValidationError
    """A pydantic ``ValidationError`` as one line: ``{what} field 'a.b': message, got X``
    for its first error, counting the others."""
    errors = exc.errors()
    err = errors[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    # a whole section as the input says nothing the message does not
    shown = "input" in err and err["type"] != "missing" and not isinstance(err["input"], dict)
    got = f", got {err['input']!r}" if shown else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return clip_message(f"{what} field {loc!r}: {msg}{got}{more}")


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
