"""Entry point of the `nasgal` command and its single error boundary.

Each command group lives in its own module with a ``register(app)`` function, listed in
:data:`COMMAND_MODULES`. Known errors (:class:`~nasgal.errors.NasgalError`) print as
``Error: ...`` plus a hint on stderr with exit code 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from typing import Any, Annotated, Optional

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
    "nasgal.cli.dataset_cmds",
]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="nasgal",
    help="Neural architectures as plain data: stack, compile, search, train, prune, render, diff.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,
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
    release_memory: Annotated[bool, typer.Option(
        "--release-memory",
        help="CPU runs: return freed memory to the system every step (the C library's default) instead of "
             "keeping it for the next step; slower, holds less memory. Also NASGAL_KEEP_MEMORY=0.")] = False,
    torch_kernels: Annotated[bool, typer.Option(
        "--torch-kernels",
        help="CPU runs: the code paths a GPU takes (torch's own depthwise-convolution backward, gradient and "
             "supernet layouts) instead of nasgal's faster CPU paths; same numbers, slower. Also NASGAL_CPU_PATHS=0.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    _state["debug"] = debug
    if torch_kernels:
        from ..compiler.cpu_paths import use_cpu_paths

        use_cpu_paths(False)
    if release_memory:
        from ..engine.cpu import release_memory as leave_allocator_alone

        leave_allocator_alone()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def report_error(exc: BaseException) -> int:
    """Print a known error for a person; return the exit code."""
    if isinstance(exc, SpecError):
        lines = [f"{exc.head}:", *(f"  {loc}: {msg}" if loc else f"  {msg}" for loc, msg in exc.problems)]
        _error_line("\n".join(lines), getattr(exc, "hint", None))
    else:
        _error_line(str(exc), getattr(exc, "hint", None))
    return 1


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def _usage_line(exc: BaseException) -> str:
    """One line for a usage error: what is wrong, and where to look for help."""
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    msg = exc.format_message().strip().rstrip(".")  # type: ignore[attr-defined]
    help_cmd = f"{ctx.command_path} --help" if ctx is not None else "nasgal --help"
    return f"{where}{msg} (see '{help_cmd}')"


def _is_usage_error(exc: BaseException) -> bool:
    # Typer vendors click (typer._click) in recent versions and re-exports click's exceptions in
    # older ones; both expose the same duck type, so no click import is needed here.
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "format_message", None))


class _Stdout:
    """``sys.stdout`` for the length of a command: an error while writing names standard output
    (a full disk, a closed descriptor), and a process started with descriptor 1 closed fails on
    its first write instead of dropping the output silently."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if self._stream is None:
            raise OSError(errno.EBADF, "closed (nothing can be written)", "standard output")
        return self._named(self._stream.write, text)

    def flush(self) -> None:
        if self._stream is not None:
            self._named(self._stream.flush)

    @staticmethod
    def _named(call: Any, *args: Any) -> Any:
        """``call(*args)``, with an OS error renamed to standard output (a broken pipe passes)."""
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OSError(e.errno, e.strerror, "standard output") from None

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def __getattr__(self, name: str) -> Any:
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # A reader that stopped early (`nasgal compile --json | head`) is not an error; point the
        # descriptor at /dev/null so that Python's own flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; no input ever produces a traceback.

    Known errors exit 1 (``Error: ...`` plus a hint), usage errors 2 with one line, an
    interrupted command 130; anything unexpected exits 2 with a one-line message and the hint
    to run with ``--debug``, which shows the traceback instead.
    """
    real_stdout = sys.stdout
    sys.stdout = _Stdout(real_stdout)  # type: ignore[assignment]
    try:
        return _run(argv)
    finally:
        sys.stdout = real_stdout


def _command(argv: list[str] | None) -> Any:
    """The command, in the torchrun process group when started by torchrun: every process
    runs it, and only rank 0 writes to standard output and standard error (progress, notes);
    an error still prints on every process that meets it (after the command, at the boundary)."""
    if "WORLD_SIZE" not in os.environ:  # no torch import for commands that need none
        return app(args=argv, standalone_mode=False)
    from ..engine import distributed

    with distributed.session():
        if distributed.is_main():
            return app(args=argv, standalone_mode=False)
        real = sys.stdout, sys.stderr
        with open(os.devnull, "w") as sink:
            sys.stdout = sys.stderr = sink
            try:
                return app(args=argv, standalone_mode=False)
            finally:
                sys.stdout, sys.stderr = real


def _run(argv: list[str] | None) -> int:
    try:
        rv = _command(argv)
        _flush_stdout()
    except BrokenPipeError:
        _flush_stdout()
        return 0
    except NasgalError as exc:
        if _state["debug"]:
            raise
        return report_error(exc)
    except KeyboardInterrupt:
        err_console.print("Interrupted. Run the same command again to continue where it stopped.")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:  # pragma: no cover - standalone parts of click/typer
        return exc.code if isinstance(exc.code, int) else 1
    except typer.Abort:
        err_console.print("Aborted.")
        return 1
    except Exception as exc:
        if _is_usage_error(exc):
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: typer has shown its help
                return 2
            _error_line(_usage_line(exc) if exc.exit_code == 2 else exc.format_message())  # type: ignore[attr-defined]
            return exc.exit_code  # type: ignore[attr-defined]
        if _state["debug"]:
            raise
        if isinstance(exc, OSError):
            return report_error(NasgalError(_os_message(exc)))
        _error_line(f"unexpected {type(exc).__name__}: {exc}", hint="run again with `nasgal --debug ...` for the traceback, and please report it")
        return 2
    return rv if isinstance(rv, int) else 0


def _os_message(exc: OSError) -> str:
    """An OS error as a sentence: what failed and on which file."""
    what = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {what}"
    return what


def _error_line(message: str, hint: str | None = None) -> None:
    try:
        err_console.print("[bold red]Error:[/] ", end="", markup=True)
        err_console.print(message, markup=False)
        if hint:
            err_console.print("[dim]Hint:[/] ", end="", markup=True)
            err_console.print(hint, markup=False)
    except OSError:  # stderr itself is gone: nothing left to tell
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
