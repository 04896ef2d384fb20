"""Entry point of the `nasgal` command and its single error boundary.

Each command group lives in its own module with a ``register(app)`` function, listed in
:data:`COMMAND_MODULES`. Known errors (:class:`~nasgal.errors.NasgalError`) print as
``Error: ...`` plus a hint on stderr with exit code 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from .. import __version__
from ..errors import NasgalError, SpecError

#: Modules that add commands to the app (each defines ``register(app: typer.Typer)``).
COMMAND_MODULES: list[str] = [
    "nasgal.cli.spec_cmds",
    "nasgal.cli.render_cmds",
    "nasgal.cli.train_cmds",
    "nasgal.cli.run_cmds",
    "nasgal.cli.search_cmds",
    "nasgal.cli.prune_cmds",
    "nasgal.cli.deploy_cmds",
]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="nasgal",
    help="Neural architectures as plain data: stack, compile, search, train, prune, render, diff.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nasgal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def report_error(exc: BaseException) -> int:
    """Print a known error for a person; return the exit code."""
    if isinstance(exc, SpecError):
        head = f"{exc.source} is not a valid spec:" if exc.source else "invalid spec:"
        err_console.print(f"[bold red]Error:[/] {head}", markup=True)
        for loc, msg in exc.problems:
            err_console.print(f"  {loc}: {msg}" if loc else f"  {msg}", markup=False)
    else:
        err_console.print("[bold red]Error:[/] ", end="", markup=True)
        err_console.print(str(exc), markup=False)
    hint = getattr(exc, "hint", None)
    if hint:
        err_console.print("[dim]Hint:[/] ", end="", markup=True)
        err_console.print(hint, markup=False)
    return 1


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; known errors become messages and exit code 1, never tracebacks."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except NasgalError as exc:
        if _state["debug"]:
            raise
        return report_error(exc)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:  # pragma: no cover - raised by click on usage errors
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            err_console.print("Aborted.")
            return 1
        raise
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
