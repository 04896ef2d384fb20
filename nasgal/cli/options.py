"""Command-line options built from the settings models, so that each default, help text and
validation rule lives in one place: the model's field (:class:`nasgal.engine.config.Settings`).

A command declares ``lr: Annotated[Optional[float], setting(TrainConfig, "lr")] = None``; the
help shows the model's description and default, ``None`` means "the model's default", and the
model validates the value (a bad one is an ``invalid ... settings`` error naming the option).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from ..errors import NasgalError


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return str(value)


def setting(model: type[BaseModel], name: str, *flags: str, default: Any = ..., note: str = "") -> Any:
    """A ``typer.Option`` for the field ``name`` of ``model``: its description as help, its
    default (or ``default``, e.g. a recipe's value) shown, ``flags`` as the option names."""
    field = model.model_fields[name]
    value = field.get_default(call_default_factory=True) if default is ... else default
    text = field.description or name.replace("_", " ")
    if text.endswith(".") and not text.endswith("..."):
        text = text[:-1]
    return typer.Option(*flags, help=f"{text}; default: {_shown(value)}{note}.", show_default=False)


#: The same --resume and --restart on every command that writes a run directory.
RESUME_HELP = "Require a checkpoint in --out and continue it (without it, a run found there is continued too)."
RESTART_HELP = "Remove the run found in --out (checkpoint, records, results) and start it over."


def check_resume(out: Path, resume: bool, restart: bool) -> None:
    """The checks of --resume and --restart that need no data (before anything slow)."""
    from ..engine.rundir import check_out_dir
    from ..runfiles import CHECKPOINT

    check_out_dir(out)
    if resume and restart:
        raise NasgalError("give --resume or --restart, not both")
    if resume and not (out / CHECKPOINT).exists():
        raise NasgalError(f"--resume: {out} has no {CHECKPOINT} to continue", hint="drop --resume to start a new run")
