"""The base model of every spec: strict about unknown fields, immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
