"""A network: everything needed to build a model, with per-position kept-node masks."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, NonNegativeFloat, PositiveInt, StrictInt, model_validator
from ..errors import Problem
from .base import SpecModel, raise_problems
from .cell import Cell, fmt_ids, repeated
from .genotype import FORMAT_VERSION, Provenance
from .limits import MAX_CELLS, MAX_CHANNELS, MAX_CLASSES, MAX_IMAGE_SIDE, MAX_POSITIONS
from .stem import StemLayers, stem_layers


class CifarStem(SpecModel):
    """3x3 conv (in -> multiplier*C) and BN at full resolution (DARTS CIFAR stem)."""

    kind: Literal["cifar"] = Field("cifar", description="Stem kind tag: the DARTS CIFAR stem.")
    multiplier: PositiveInt = Field(3, description="Stem output channels as a multiple of C.")

    def layers(self, in_channels: int, channels: int) -> StemLayers:
        return stem_layers(self.kind, in_channels, channels, self.multiplier)


class Stride2Stem(SpecModel):
    """Halves the resolution first: 3x3 stride-2 conv, BN, ReLU, then the CIFAR stem.

    The DARTS-GAL paper's stem for 224 px (Cats vs Dogs) and 360 px (spectrogram) inputs.
    """

    kind: Literal["stride2"] = Field("stride2", description="Stem kind tag: stride-2 conv first (large images).")
    multiplier: PositiveInt = Field(3, description="Stem output channels as a multiple of C.")

    def layers(self, in_channels: int, channels: int) -> StemLayers:
        return stem_layers(self.kind, in_channels, channels, self.multiplier)


class ImageNetStem(SpecModel):
    """DARTS ImageNet stem: two stride-2 convs (to C/2 then C), then one more stride-2 conv.

    Gives the first cell two inputs at 1/4 and 1/8 resolution, like a reduction did.
    """

    kind: Literal["imagenet"] = Field("imagenet", description="Stem kind tag: the DARTS ImageNet stem.")

    def layers(self, in_channels: int, channels: int) -> StemLayers:
        return stem_layers(self.kind, in_channels, channels)


def default_reductions(cells: int) -> list[int]:
    """DARTS's rule: reduction cells at positions L//3 and 2L//3 (0-indexed)."""
    return sorted({cells // 3, 2 * cells // 3}) if cells >= 3 else []


Stem = Annotated[Union[CifarStem, Stride2Stem, ImageNetStem], Field(discriminator="kind")]


class InputSpec(SpecModel):
    """Shape of one input image."""

    channels: PositiveInt = Field(description="Image channels (1 for MNIST, 3 for CIFAR).")
    size: tuple[PositiveInt, PositiveInt] = Field(description="Height and width in pixels.")


class Position(SpecModel):
    """One cell position of the stack."""

    cell: str = Field(description="Name of the cell (a key of the network's 'cells').")
    reduction: bool = Field(False, description="Whether this position halves resolution and doubles channels.")
    kept: list[StrictInt] | None = Field(
        None, description="Intermediate nodes kept at this position; null keeps all (unpruned)."
    )
    mask: dict[int, NonNegativeFloat] | None = Field(
        None, description="Learned mask value per intermediate node (from pruning), for the record."
    )


class Auxiliary(SpecModel):
    """Auxiliary classifier head (training only; excluded from parameter counts)."""

    position: StrictInt = Field(description="Cell position whose output feeds the head (0-indexed).")
    weight: NonNegativeFloat = Field(0.4, description="Loss weight used by training recipes.")


class Pruning(SpecModel):
    """How a network's kept-node masks were obtained."""

    method: str = Field("gal", description="Pruning method.")
    parent: str | None = Field(None, description="Spec hash of the network that was pruned (the teacher).")
    threshold: float | None = Field(None, description="Mask value at or below which a node is removed.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Hyperparameters and run facts: lam, mu, epochs, seed, budget, ..."
    )


class Network(SpecModel):
    """A stacked network: input, stem, cell positions, head."""

    schema_: str | None = Field(
        "../schemas/network.schema.json", alias="$schema", description="JSON Schema of this file, for editors."
    )
    kind: Literal["network"] = Field("network", description="File kind tag.")
    format_version: Literal[1] = Field(FORMAT_VERSION, description="Version of the spec format.")
    name: str = Field(description="Short name, e.g. 'DARTS_V2-5c-C16'.")
    input: InputSpec = Field(description="Input image shape.")
    classes: PositiveInt = Field(description="Number of classes of the classifier.")
    channels: PositiveInt = Field(description="Initial cell channels C (doubled at each reduction position).")
    stem: Stem = Field(default_factory=CifarStem, description="How images become the first cell inputs.")
    cells: dict[str, Cell] = Field(description="The cells used by the positions, by name.")
    positions: list[Position] = Field(description="One entry per cell position, input to output.")
    auxiliary: Auxiliary | None = Field(None, description="Auxiliary head, or null for none.")
    drop_path: NonNegativeFloat = Field(0.0, description="Maximum drop-path probability during training.")
    genotype: str | None = Field(None, description="Name of the genotype the cells came from.")
    provenance: Provenance = Field(default_factory=Provenance, description="Where the cells came from.")
    pruning: Pruning | None = Field(None, description="Set by the pruner: how the kept-node masks were found.")

    @model_validator(mode="after")
    def _positions_are_consistent(self) -> "Network":
        raise_problems(self.problems())
        return self

    def problems(self) -> list[Problem]:
        """Every problem of the stack (positions, masks, connectivity), each at its place."""
        out = self._size_problems()
        if out:
            return out  # too large to look further: every later check is bounded by these limits
        if not self.positions:
            out.append(Problem("positions", "a network needs at least one cell position"))
        if self.drop_path >= 1:
            out.append(Problem("drop_path", f"{self.drop_path} must be below 1"))
        for p, pos in enumerate(self.positions):
            cell = self.cells.get(pos.cell)
            if cell is None:
                out.append(Problem(
                    f"positions[{p}].cell",
                    f"'{pos.cell}' is not a cell of this network; cells are {', '.join(sorted(self.cells)) or '(none)'}",
                ))
                continue
            nodes = set(cell.nodes)
            if pos.kept is not None:
                bad = [n for n in pos.kept if n not in nodes]
                if bad:
                    out.append(Problem(
                        f"positions[{p}].kept",
                        f"{fmt_ids(bad)} not node(s) of cell '{pos.cell}'; nodes are {fmt_ids(cell.nodes)}",
                    ))
                dup = repeated(pos.kept)
                if dup:
                    out.append(Problem(f"positions[{p}].kept", f"node(s) {fmt_ids(dup)} listed more than once"))
            if pos.mask is not None:
                bad = [n for n in pos.mask if n not in nodes]
                if bad:
                    out.append(Problem(
                        f"positions[{p}].mask",
                        f"{fmt_ids(bad)} not node(s) of cell '{pos.cell}'; nodes are {fmt_ids(cell.nodes)}",
                    ))
        n = len(self.positions)
        if self.auxiliary is not None and not 0 <= self.auxiliary.position < n:
            out.append(Problem("auxiliary.position", f"{self.auxiliary.position} is out of range; positions are 0..{n - 1}"))
        if out:
            return out
        from .plan import build_problems

        return build_problems(self)

    def _size_problems(self) -> list[Problem]:
        """The limits of :mod:`nasgal.spec.limits` that bound the work of every later check."""
        out: list[Problem] = []
        if len(self.positions) > MAX_POSITIONS:
            out.append(Problem("positions", f"{len(self.positions)} positions; a network has at most {MAX_POSITIONS}"))
        if len(self.cells) > MAX_CELLS:
            out.append(Problem("cells", f"{len(self.cells)} cells; a network has at most {MAX_CELLS}"))
        if self.channels > MAX_CHANNELS:
            out.append(Problem("channels", f"{self.channels} channels; at most {MAX_CHANNELS}"))
        if self.input.channels > MAX_CHANNELS:
            out.append(Problem("input.channels", f"{self.input.channels} image channels; at most {MAX_CHANNELS}"))
        for i, side in enumerate(self.input.size):
            if side > MAX_IMAGE_SIDE:
                out.append(Problem(f"input.size[{i}]", f"{side} pixels; an image side is at most {MAX_IMAGE_SIDE}"))
        if self.classes > MAX_CLASSES:
            out.append(Problem("classes", f"{self.classes} classes; at most {MAX_CLASSES}"))
        multiplier = getattr(self.stem, "multiplier", 1)
        if multiplier * self.channels > MAX_CHANNELS:
            out.append(Problem(
                "stem.multiplier",
                f"the stem gives {multiplier} x {self.channels} = {multiplier * self.channels} channels; at most {MAX_CHANNELS}",
            ))
        return out

    # Derived views ----------------------------------------------------------------
    @property
    def num_positions(self) -> int:
        return len(self.positions)

    @property
    def reductions(self) -> list[int]:
        return [i for i, p in enumerate(self.positions) if p.reduction]

    def cell_at(self, position: int) -> Cell:
        return self.cells[self.positions[position].cell]

    def kept_nodes(self) -> list[list[int]]:
        """Kept intermediate nodes per position (all nodes where no mask is set)."""
        return [
            list(self.cells[p.cell].nodes) if p.kept is None else list(p.kept) for p in self.positions
        ]

    def with_kept_nodes(
        self,
        kept: list[list[int] | None],
        mask: list[dict[int, float] | None] | None = None,
        pruning: Pruning | None = None,
    ) -> "Network":
        """A new network with these kept nodes per position (``None`` keeps all)."""
        from ..errors import SpecError

        if len(kept) != len(self.positions):
            raise SpecError(
                [("kept", f"{len(kept)} entries given for {len(self.positions)} positions")]
            )
        if mask is not None and len(mask) != len(self.positions):
            raise SpecError([("mask", f"{len(mask)} entries given for {len(self.positions)} positions")])
        positions = []
        for i, (pos, k) in enumerate(zip(self.positions, kept)):
            upd: dict[str, Any] = {"kept": None if k is None else sorted(int(n) for n in k)}
            if mask is not None:
                upd["mask"] = mask[i]
            positions.append(pos.model_copy(update=upd).model_dump())
        data = self.model_dump(by_alias=True)
        data["positions"] = positions
        if pruning is not None:
            data["pruning"] = pruning.model_dump()
        from .io import validate_spec

        return validate_spec(Network, data, source="with_kept_nodes")
