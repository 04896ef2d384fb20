"""nasgal: neural architectures as plain data (DARTS search, GAL pruning, retraining).

The spec layer (``nasgal.spec``) imports no torch; ``compile_network`` imports it lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import NasgalError, SpecError
from .spec import (
    Cell,
    Edge,
    Genotype,
    Network,
    count_macs,
    count_params,
    load,
    network_cost,
    save,
    spec_hash,
    stack,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    import torch


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
    "network_cost",
    "save",
    "spec_hash",
    "stack",
    "__version__",
]
