"""The base model of every spec: strict about unknown fields, immutable."""

from __future__ import annotations

from typing import Sequence

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from ..errors import Problem

#: pydantic error type of a model's own problems; ``ctx["problems"]`` holds them as
#: :class:`~nasgal.errors.Problem` entries (``nasgal.spec.io.problems_of`` unpacks them).
SPEC_PROBLEMS = "spec_problems"


class SpecModel(BaseModel):
    """Frozen pydantic model that rejects unknown fields.

    A typo in a hand-edited file is an error, never silently ignored; edits return
    copies (``model_copy(update=...)``) so a stage never mutates its input.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        validate_default=True,
    )


def raise_problems(problems: Sequence[Problem]) -> None:
    """Raise the validation error of a model with these problems, if there are any.

    Each problem stays its own entry, with its location relative to the model, all the way
    to :class:`~nasgal.errors.SpecError` and the command line.
    """
    if problems:
        summary = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in problems)
        raise PydanticCustomError(SPEC_PROBLEMS, "{summary}", {"summary": summary, "problems": tuple(problems)})
