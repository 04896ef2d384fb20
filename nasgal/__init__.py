"""nasgal: neural architectures as plain data (DARTS search, GAL pruning, retraining).

The spec layer (``nasgal.spec``) imports no torch; ``compile_network`` imports it lazily.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import NasgalError, SpecError
from .spec import (
    Cell,
    Edge,
    Genotype,
    Network,
    count_macs,
    count_params,
    network_cost,
    save,
    spec_hash,
    stack,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    import torch


def load(path: str | os.PathLike, kind: type | None = None) -> Any:
    """Read a spec file, or a genotype of the shipped library by name (``nasgal.load("darts_v2")``),
    as every command does; with ``kind`` (e.g. ``nasgal.Network``) the spec must be of that kind."""
    from .spec import load as _load
    from .spec.library import resolve_spec_path

    return _load(resolve_spec_path(path), kind)


def load_run(run_dir: str | os.PathLike, weights: str | os.PathLike | None = None) -> "torch.nn.Module":
    """The trained network of a ``nasgal train`` run directory: its spec compiled, its final
    weights (or, for an unfinished run, those of the last checkpoint) loaded, in eval mode on
    the CPU. ``weights`` takes them from another run or checkpoint instead. The spec is the
    module's ``spec`` attribute."""
    from .deploy.trained import load_trained, trained_model

    network, state = load_trained(run_dir, weights)
    return trained_model(network, state)


def compile_network(network: Network, **kwargs: Any) -> "torch.nn.Module":
    """Build the torch module of a network spec (imports torch)."""
    from .compiler import compile_network as _compile

    return _compile(network, **kwargs)


__all__ = [
    "Cell",
    "Edge",
    "Genotype",
    "Network",
    "NasgalError",
    "SpecError",
    "compile_network",
    "count_macs",
    "count_params",
    "load",
    "load_run",
    "network_cost",
    "save",
    "spec_hash",
    "stack",
    "__version__",
]
