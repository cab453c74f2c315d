"""The ``asma-bench`` application object and what every command module shares: the
plain-placeholder help, the global ``--debug``/``--verbose``/``--version`` flags, progress
and table printing, and the checks of common options.

:mod:`asma_bench.cli` defines the core commands and ``main``; the modules of
:mod:`asma_bench.commands` add theirs. Both import this module and nothing imports back.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperCommand, TyperGroup

from asma_bench import __version__
from asma_bench.errors import ConfigError

# --------------------------------------------------------------------------- help
#: Placeholders of options whose value is more than a name, a number or a path.
PLACEHOLDERS = {
    "--set": "KEY=VALUE",
    "--where": "KEY=VALUE",
    "--format": "FORMAT",
    "--data": "SOURCE",
    "--device": "DEVICE",
    "--storage": "URL",
    "--store": "URI",
    "--tracking-uri": "URI",
    "--seeds": "N|SEEDS",
    "--seed-list": "SEEDS",
    "--threads": "COUNTS",
    "--objectives": "NAMES",
    "--classes": "CLASSES",
    "--timeout": "SECONDS",
}


def placeholder(param: click.Parameter) -> str:
    """What an option's help shows for its value: ``PLACEHOLDERS``, else ``N`` (integers),
    ``NUMBER``, ``PATH`` or ``NAME``; nothing for a flag."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    for opt in param.opts:
        if opt in PLACEHOLDERS:
            return PLACEHOLDERS[opt]
    desc = getattr(param, "type_descriptor", None)  # typer >= 0.29 (its own click copy)
    if desc is not None:
        if desc.is_path:
            return "PATH"
        kind = desc.annotation
        if desc.is_list and typing.get_args(kind):
            kind = typing.get_args(kind)[0]
        kind = getattr(kind, "__name__", "")
    else:
        kind = {"integer": "int", "float": "float", "path": "Path"}.get(
            str(getattr(getattr(param, "type", None), "name", "")).split(" ")[0], ""
        )
    return {"int": "N", "float": "NUMBER", "Path": "PATH"}.get(kind, "NAME")


def _plain_params(params: list[click.Parameter]) -> None:
    """Plain placeholders (``--profile NAME``, ``--set KEY=VALUE``, nothing for flags)
    instead of typer's ``<str>`` / ``<list[str]>`` / ``<bool>``, and an argument's name in
    capitals (``RUN_ID``); an explicit ``metavar=`` stays. Only click's own ``metavar``
    attribute is set: no class of typer's is changed."""
    for param in params:
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = (param.name or "").upper()
        else:
            param.metavar = placeholder(param)


def _usage_piece(param: click.Parameter) -> str:
    """An argument in the usage line: ``RUN_ID``, ``[NAME]`` when optional, ``NAME...`` when
    it takes several values (without the braces typer puts around required ones)."""
    name = param.metavar or (param.name or "").upper()
    if not param.required:
        name = f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


def _unwrap(text: str | None) -> str | None:
    """Docstring paragraphs as one line each, so the help wraps them at the terminal's width
    instead of breaking where the source did (``\\b`` paragraphs stay as written)."""
    if not text:
        return text
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


class LateHelp(str):
    """An option's help written only when the help is shown, by ``make()`` (for a text that
    needs a slow import, e.g. the names of a registry): every other command starts fast."""

    make: Callable[[], str]

    def __new__(cls, make: Callable[[], str]) -> LateHelp:
        text = super().__new__(cls, "")
        text.make = make
        return text


class _PlainHelp:
    """Mixed into typer's command and group classes: plain placeholders, unwrapped help."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        for key in ("help", "short_help"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = _unwrap(kwargs[key])  # type: ignore[arg-type]
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        _plain_params(self.params)  # type: ignore[attr-defined]

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for param in self.params:  # type: ignore[attr-defined]
            if isinstance(param.help, LateHelp):
                param.help = param.help.make()
        super().format_help(ctx, formatter)  # type: ignore[misc]

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _plain_params([option])
        return option


class PlainCommand(_PlainHelp, TyperCommand):
    """The class of every ``asma-bench`` command."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        """The usage line (click's documented hook): ``[OPTIONS] SOURCE OUT``."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_usage_piece(param))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class PlainGroup(_PlainHelp, TyperGroup):
    """The class of ``asma-bench`` and its command groups."""


class _Typer(typer.Typer):
    """A Typer app whose commands and groups show plain help (one place for all commands)."""

    def __init__(self, **kwargs: object) -> None:
        kwargs["cls"] = kwargs.get("cls") or PlainGroup
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def command(self, name: str | None = None, **kwargs: object):  # noqa: ANN201
        kwargs["cls"] = kwargs.get("cls") or PlainCommand
        return super().command(name, **kwargs)  # type: ignore[arg-type]


app = _Typer(
    name="asma-bench",
    help="Benchmark self-supervised skeleton action recognition: masking strategies compared.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # every command's too
)
data_app = _Typer(help="Create, convert and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

state: dict[str, typing.Any] = {"debug": False, "notes": []}


def say_notes() -> None:
    """Print the notes the command left for its end (a deprecated flag's new name) on
    stderr, once; a command refused for bad input says only its one error line."""
    for note in dict.fromkeys(state["notes"]):
        typer.echo(note, err=True)
    state["notes"].clear()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asma-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    state["debug"] = debug
    for noisy in ("mlflow", "alembic", "optuna"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def interactive() -> bool:
    """Progress bars only on a terminal (logs and CI output stay clean)."""
    return sys.stderr.isatty()


def progress_mode(progress: bool | None) -> typing.Literal["bar", "lines", "off"]:
    """What a long command shows while it works: ``--progress`` a bar, ``--no-progress``
    nothing; by default a bar on a terminal, else one plain line per step on stderr (logs
    and CI output, like ``asma-bench run``'s one line per unit)."""
    if progress is None:
        return "bar" if interactive() else "lines"
    return "bar" if progress else "off"


def progress_line(text: str) -> None:
    """One progress line on stderr, flushed at once (stdout stays the command's result)."""
    typer.echo(text, err=True)


def check_device_flag(device: str | None, option: str = "--device") -> None:
    """Refuse a device name runs cannot use before any work starts."""
    from asma_bench.config import check_device

    if device is None:
        return
    try:
        check_device(device)
    except ValueError as exc:
        raise ConfigError(f"{option} {device!r}: {exc}") from None


def set_layers(overrides: list[str] | None, use: str) -> list[dict[str, typing.Any]]:
    """The ``--set key=value`` texts as config layers, each parsed once, in order; ``--set
    seed=N`` is refused (the command's own seeds would overwrite it): ``use`` says what to
    give instead."""
    from asma_bench.config import parse_override

    layers = []
    for text in overrides or []:
        layer = parse_override(text)
        if "seed" in layer:
            raise ConfigError(f"--set {text}: the seed is not a config override here; use {use}")
        layers.append(layer)
    return layers


def renamed(
    command: str,
    new: str,
    value: typing.Any,
    old: str,
    old_value: typing.Any,
    default: typing.Any,
) -> typing.Any:
    """The value of option ``new`` (``default`` unless given), which its deprecated name
    ``old`` gives too: ``old_value`` when given (said deprecated in one line on stderr that
    names ``new``, when the command ends), else ``value``. Both given,
    with different values, are refused. One name means one thing in every command:
    ``--runs`` the runs folder, ``--out`` the folder a command writes its report to."""
    if old_value is None:
        return value
    state["notes"].append(f"{old} is deprecated for `{command}`; use {new}")
    if value != default and value != old_value:
        raise ConfigError(f"{new} {value} and {old} {old_value}: {old} is {new}'s old name; "
                          f"give {new} only")  # fmt: skip
    return old_value


def check_writable(path: Path | None, option: str) -> None:
    """Fail now, not after the work, when ``path`` (a file to write) cannot be written."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder, not a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option} {path}: the file is not writable")
        return
    folder = path.parent
    while not folder.exists():  # the first existing folder above must let us create the rest
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {path}: cannot create a folder under {folder} (a file)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: the folder {folder} is not writable")


def print_table(title: str, df) -> None:  # noqa: ANN001 - pandas DataFrame
    typer.echo(f"\n{title}")
    typer.echo(df.to_string(float_format=lambda v: f"{v:.4g}"))


# --------------------------------------------------------------------------- data


def print_listing(
    head: tuple[str, ...], rows: list[tuple[str, ...]], descriptions: list[str]
) -> None:
    """A catalog listing: a header, one aligned row per entry and, under each row, its
    whole description wrapped to the terminal (at most 100 columns)."""
    import shutil
    import textwrap

    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    width = min(shutil.get_terminal_size((100, 20)).columns, 100)

    def line(cols: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()

    typer.echo(line(head))
    for row, description in zip(rows, descriptions, strict=True):
        typer.echo(line(row))
        text = " ".join(description.split())
        if text:
            typer.echo(textwrap.fill(text, width, initial_indent="    ", subsequent_indent="    "))
