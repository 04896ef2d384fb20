"""Experiment files (TOML): which stages run, on what data, with which settings.

Unknown keys are errors; every section but ``[network]`` is optional. ``[train]`` and
``[retrain]`` take the options of :class:`nasgal.train.TrainConfig` (plus ``recipe``),
``[prune]`` those of :class:`nasgal.prune.PruneConfig`, ``[search]`` those of
:class:`nasgal.search.config.SearchConfig` plus the supernet's size (:class:`SearchSection`).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from ..errors import NasgalError, SpecError, join_location
from ..engine.config import Settings
from ..search.config import SearchConfig
from ..spec.io import problems_of


#: The most seeds one experiment runs (each trains, prunes and retrains a network).
MAX_SEEDS = 1000
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class _Section(Settings):
    """A section of an experiment file: strict, frozen and finite, as every settings model."""


class SearchSection(SearchConfig):
    """A DARTS search before stacking; its genotype replaces ``network.genotype``.

    It takes every option of :class:`nasgal.search.config.SearchConfig` (same defaults, same
    checks) except those the experiment sets for all its stages (seed, device, dataset), and
    says which supernet to build.
    """

    SOURCE: ClassVar[str] = "[search] settings"
    #: Set by the experiment for every stage, not in [search].
    FROM_EXPERIMENT: ClassVar[tuple[str, ...]] = ("seed", "device", "dataset", "extra")

    # Set by the experiment: not part of this section's data (excluded when it is written out).
    seed: int = Field(0, exclude=True)
    device: str = Field("auto", exclude=True)
    dataset: str = Field("unknown", exclude=True)
    extra: dict[str, Any] = Field(default_factory=dict, exclude=True)

    subset: int | None = Field(None, ge=2, description="Training images used (split in half for weights and α).")
    cells: int = Field(8, ge=1, description="Cells of the supernet.")
    channels: int = Field(16, ge=1, description="Initial channels of the supernet.")
    space: str | None = Field(None, description="Search-space file (default: the DARTS space).")

    @model_validator(mode="before")
    @classmethod
    def _not_the_experiments(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in cls.FROM_EXPERIMENT:
                if key in data:
                    raise ValueError(f"{key!r} is set at the top of the experiment file, for every stage")
        return data

    def settings(self) -> dict[str, Any]:
        """The :class:`SearchConfig` values of this section."""
        return self.model_dump(exclude={"cells", "channels", "space", *self.FROM_EXPERIMENT})


class NetworkSection(_Section):
    """How the genotype is stacked; input shape and classes come from the dataset."""

    genotype: str = Field("darts_v2", description="Genotype file or library name (ignored after a search).")
    cells: int = Field(5, ge=1, description="Cell positions.")
    channels: int = Field(16, ge=1, description="Initial channels C.")
    reductions: list[int] | None = Field(None, description="Reduction positions, 0-indexed (default L//3, 2L//3).")
    stem: Literal["cifar", "stride2", "imagenet"] = Field("cifar", description="Stem kind.")
    auxiliary: bool = Field(False, description="Auxiliary head after the second reduction.")
    drop_path: float = Field(0.0, ge=0, lt=1, description="Max drop-path rate of the spec.")


class RetrainSection(_Section):
    """Retraining of the pruned network: from scratch (the paper) or inheriting weights."""

    inherit: bool = Field(False, description="Start from the teacher's surviving weights.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Training options that differ from [train].")


class Experiment(_Section):
    """A whole DARTS-GAL experiment."""

    name: str = Field(description="Experiment name (also the default output folder runs/<name>).")
    dataset: str = Field(description="Dataset name (fashion_mnist, mnist, cifar10, cifar100, image_folder:PATH, voice).")
    data_dir: str | None = Field(None, description="Folder with the dataset files.")
    out: str | None = Field(None, description="Experiment directory (default runs/<name>).")
    seeds: int = Field(1, ge=1, le=MAX_SEEDS, description="Seeds of the trained stages (baseline, prune, retrain).")
    seed: int = Field(0, ge=0, lt=2**32 - MAX_SEEDS, description="First seed; seed i runs with seed + i.")
    device: str = Field("auto", description="Device for every stage.")
    image_size: int | None = Field(None, ge=1, description="Resize images to this size (image folders: crop size).")
    paper: str | None = Field(None, description="Row of the paper's tables to compare with (e.g. fashion_mnist).")
    search: SearchSection | None = Field(None, description="Search stage; absent: start from network.genotype.")
    network: NetworkSection = Field(default_factory=NetworkSection, description="Stacking.")
    train: dict[str, Any] = Field(default_factory=dict, description="Baseline training options (recipe and overrides).")
    prune: dict[str, Any] = Field(
        default_factory=dict,
        description="Pruning options; 'method' may list several methods, compared at the same budget.",
    )
    retrain: RetrainSection = Field(default_factory=RetrainSection, description="Retraining of the pruned network.")

    @field_validator("name")
    @classmethod
    def _name_is_one_folder(cls, v: str) -> str:
        # The name becomes runs/<name>: one plain folder name, never a path that leaves runs/.
        if not SAFE_NAME.fullmatch(v) or v in (".", ".."):
            raise ValueError(
                f"{v!r} is not a plain folder name (letters, digits, '.', '_', '-'; no '/' or '..'); "
                "to write elsewhere, set 'out'"
            )
        return v

    @field_validator("train", "prune")
    @classmethod
    def _no_seed_or_device(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in ("seed", "device"):
            if key in v:
                raise ValueError(f"set '{key}' at the top level of the experiment, not per stage")
        return v

    def prune_methods(self) -> list[str]:
        """The pruning methods to run, in order (``[prune] method``: one name, or a list)."""
        m = self.prune.get("method", "gal")
        return list(m) if isinstance(m, list) else [m]

    def prune_options(self, method: str) -> dict[str, Any]:
        """The [prune] options for one of :meth:`prune_methods`."""
        return {**self.prune, "method": method}

    def out_dir(self, base: Path | None = None) -> Path:
        p = Path(self.out) if self.out else Path("runs") / self.name
        return p if p.is_absolute() or base is None else base / p


def method_dirs(method: str) -> tuple[str, str]:
    """The prune and retrain run folders of a pruning method inside a seed's folder (GAL's keep
    the plain names ``prune`` and ``retrain``)."""
    return ("prune", "retrain") if method == "gal" else (f"prune-{method}", f"retrain-{method}")


def parse_experiment(data: dict[str, Any], source: str = "experiment") -> Experiment:
    if isinstance(data.get("retrain"), dict):  # [retrain] mixes 'inherit' with training options
        r = dict(data["retrain"])
        inherit = r.pop("inherit", False)
        data = {**data, "retrain": {"inherit": inherit, "overrides": r}}
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as err:
        raise SpecError(problems_of(err), source=source) from None
    _check_stage_options(exp, source)
    return exp


def _check_stage_options(exp: Experiment, source: str) -> None:
    """Validate [train], [retrain] and [prune] against their config models now, not mid-run."""
    from ..prune.config import PruneConfig
    from ..train.config import TrainConfig

    problems: list[tuple[str, str]] = []
    for section, values in (("train", exp.train), ("retrain", exp.retrain.overrides)):
        extra = sorted(set(values) - set(TrainConfig.model_fields))
        if extra:
            problems.append((section, f"unknown option(s) {', '.join(extra)}; options: "
                                      f"{', '.join(sorted(TrainConfig.model_fields))}"))
    extra = sorted(set(exp.prune) - set(PruneConfig.model_fields))
    if extra:
        problems.append(("prune", f"unknown option(s) {', '.join(extra)}; options: "
                                  f"{', '.join(sorted(PruneConfig.model_fields))}"))
    methods = exp.prune_methods()
    if not methods or len(set(methods)) != len(methods):
        problems.append(("prune.method", f"list each method once, at least one (got {methods})"))
    elif not extra:
        for method in methods:  # every method's settings valid now, not mid-run
            try:
                PruneConfig(**exp.prune_options(method))
            except ValidationError as err:
                problems += [(join_location("prune", loc), msg) for loc, msg in problems_of(err)]
    if problems:
        raise SpecError(problems, source=source)


def with_overrides(exp: Experiment, update: dict[str, Any], source: str = "overrides") -> Experiment:
    """``exp`` with top-level ``update`` applied and validated like the file itself."""
    if not update:
        return exp
    try:
        return Experiment.model_validate({**exp.model_dump(), **update})
    except ValidationError as err:
        raise SpecError(problems_of(err), source=source) from None


def load_experiment(path: str | os.PathLike) -> Experiment:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NasgalError(f"no experiment file at {p}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError([("", f"malformed TOML: {e}")], source=str(p)) from None
    return parse_experiment(data, source=str(p))
