"""A genotype: named cells plus where they came from."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, field_validator

from .base import SpecModel
from .cell import Cell
from .limits import MAX_CELLS

FORMAT_VERSION: Final = 1


class Provenance(SpecModel):
    """Where an architecture came from: a paper, a code base, or a search run."""

    source: str | None = Field(None, description="Code or data it was taken from, e.g. 'quark0/darts cnn/genotypes.py'.")
    paper: str | None = Field(None, description="The publication that describes it.")
    search: dict[str, Any] | None = Field(
        None, description="For searched cells: dataset, seed, epochs, order, final alphas and other run facts."
    )
    notes: str | None = Field(None, description="Free text.")


class Genotype(SpecModel):
    """Named cells (DARTS: 'normal' and 'reduction') with provenance."""

    schema_: str | None = Field(
        "../schemas/genotype.schema.json", alias="$schema", description="JSON Schema of this file, for editors."
    )
    kind: Literal["genotype"] = Field("genotype", description="File kind tag.")
    format_version: Literal[1] = Field(FORMAT_VERSION, description="Version of the spec format.")
    name: str = Field(description="Short name, e.g. 'DARTS_V2'.")
    cells: dict[str, Cell] = Field(
        description="The cells by name; stacking uses 'normal' and 'reduction'."
    )
    provenance: Provenance = Field(default_factory=Provenance, description="Where the cells came from.")

    @field_validator("cells")
    @classmethod
    def _has_cells(cls, v: dict[str, Cell]) -> dict[str, Cell]:
        if not v:
            raise ValueError("a genotype needs at least one cell")
        if len(v) > MAX_CELLS:
            raise ValueError(f"{len(v)} cells; a genotype has at most {MAX_CELLS}")
        return v
