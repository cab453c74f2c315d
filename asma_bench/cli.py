"""The ``asma-bench`` command line: the entry point. The commands live in
:mod:`asma_bench.commands` (one module per command or family, on the application of
:mod:`asma_bench.commands.app`); this module runs them, turning user errors and signals into
one line and an exit code.

User errors (bad files, bad parameters) print one line and exit non-zero; ``--debug`` shows
the traceback. Library code logs; only this module prints.
"""

from __future__ import annotations

import contextlib
import sys

import click
import typer

from asma_bench.commands.app import app, say_notes, state
from asma_bench.errors import AsmaBenchError


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """The exception class ``name`` of click and of the click copy typer bundles.

    typer 0.29+ raises the exceptions of its own ``typer._click`` (not subclasses of
    click's), older typer raises click's: catch both."""
    import importlib

    found: list[type[BaseException]] = []
    for module in ("click.exceptions", "typer._click.exceptions", "typer.exceptions"):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:  # pragma: no cover - depends on the typer version
            continue
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in found:
            found.append(cls)
    return tuple(found)


_EXIT = (*_click_classes("Exit"), typer.Exit)
_ABORT = (*_click_classes("Abort"), typer.Abort)
_NO_ARGS_HELP = _click_classes("NoArgsIsHelpError")
_USAGE_ERROR = _click_classes("UsageError")
_CLICK_ERROR = (*_click_classes("ClickException"), click.ClickException)

# --------------------------------------------------------------------------- entry


GLOBAL_FLAGS = ("--debug", "--verbose", "-v")


def _global_flags_first(args: list[str]) -> list[str]:
    """``--debug`` and ``-v`` where users put them (``asma-bench run … --debug``): moved
    before the command, where click expects them. Values of options are never taken for
    flags: only whole arguments before a ``--`` separator count."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for i, a in enumerate(args) if i >= end or a not in GLOBAL_FLAGS]
    return flags + rest


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``kill``): raised in the main thread so that
    the unit and grid runs are closed as KILLED and temporary files removed, exactly as
    for Ctrl-C."""


_STOPPED_BY: list[int] = []  # the signals that stopped this command (typer hides them)


def _on_signal(signum: int, frame: object) -> None:
    import signal

    _STOPPED_BY.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _interrupted() -> int:
    """One line for a stopped command; the shell's code for the signal (130, 143)."""
    import signal

    if _STOPPED_BY and _STOPPED_BY[-1] == signal.SIGTERM:
        typer.echo("terminated (SIGTERM); a rerun of the command resumes", err=True)
        return 143
    typer.echo("interrupted; a rerun of the command resumes", err=True)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code.

    SIGINT and SIGTERM stop a command in one line (``interrupted`` / ``terminated``) with
    exit code 130 / 143, after the runs it had open are closed as KILLED."""
    import signal
    import threading

    args = _global_flags_first(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    previous = {}
    _STOPPED_BY.clear()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:  # (nohup, a shell's `&`)
                previous[signum] = signal.signal(signum, _on_signal)
    try:
        with _deprecations_as_notes():
            code = _main(args, debug)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return _interrupted() if _STOPPED_BY else code


@contextlib.contextmanager
def _deprecations_as_notes():
    """A moved configuration key (``pretrain.pairing`` …) is said once, as one line at the
    command's end with its new form, like a renamed flag; other warnings are left alone."""
    import warnings

    from asma_bench.config import ConfigDeprecation

    with warnings.catch_warnings():
        warnings.simplefilter("always", ConfigDeprecation)
        shown = warnings.showwarning

        def show(message, category, *rest, **kwargs):  # noqa: ANN001, ANN202 - warnings' hook
            if issubclass(category, ConfigDeprecation):
                state["notes"].append(f"note: {message}")
            else:
                shown(message, category, *rest, **kwargs)

        warnings.showwarning = show
        yield


def _main(args: list[str], debug: bool) -> int:
    state["notes"].clear()
    try:
        from asma_bench import commands

        commands.load_all()
        # without standalone mode click returns a command's `typer.Exit(code)` instead of raising
        code = app(args=args, prog_name="asma-bench", standalone_mode=False)
    except _EXIT as exc:
        say_notes()
        return exc.exit_code
    except _ABORT:
        if _STOPPED_BY:  # said once, by main
            return 130
        typer.echo("aborted", err=True)
        return 130
    except _NO_ARGS_HELP as exc:  # a group without a command: its help (typer's, or click's)
        if exc.format_message().strip():
            exc.show()
        return exc.exit_code
    except _CLICK_ERROR as exc:  # usage errors: one line, with where to find the help
        if debug:
            raise
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, _USAGE_ERROR) and ctx is not None and ctx.help_option_names:
            names = ctx.help_option_names
            hint = f" (see '{ctx.command_path} {'--help' if '--help' in names else names[0]}')"
        message = " ".join(exc.format_message().split())
        typer.echo(f"error: {message}{hint}", err=True)
        return exc.exit_code
    except AsmaBenchError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        if not _STOPPED_BY:  # a KeyboardInterrupt no handler of ours raised
            _STOPPED_BY.append(2)
        return 130
    except OSError as exc:  # a full disk, a folder that cannot be written: the user's to fix
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        return 2
    except Exception as exc:  # a bug: one line, the traceback behind --debug
        if debug:
            raise
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            err=True,
        )
        return 1
    say_notes()
    return code if isinstance(code, int) else 0


def _console() -> None:  # pragma: no cover - thin wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    # run the imported module, not this __main__ copy: command modules register on its app
    from asma_bench.cli import _console as _run

    _run()
