"""A trained network from the command line's point of view: a run directory, or a spec plus weights."""

from __future__ import annotations

from pathlib import Path

import torch

from ..runfiles import NETWORK
from ..errors import NasgalError
from ..spec import Genotype, Network, load
from ..spec.library import resolve_spec_path


def load_trained(arg: str | Path, weights: str | Path | None = None) -> tuple[Network, dict[str, torch.Tensor]]:
    """The network spec and trained weights named by ``arg``.

    ``arg`` is a training run directory (its ``network.json`` and ``weights.pt``, or the last
    checkpoint) or a network spec file, whose weights then come from ``weights`` (a run
    directory or checkpoint). A genotype, or a network without weights, is refused: there is
    nothing trained to deploy.
    """
    from ..engine.weights import load_weights

    path = Path(arg)
    if path.is_dir():
        spec_path = path / NETWORK
        if not spec_path.exists():
            raise NasgalError(f"{arg} is not a training run directory: it has no network.json",
                              hint="pass a `nasgal train` --out directory, or a network spec with --weights")
        network = load(spec_path, Network)
        return network, load_weights(weights if weights is not None else path)
    spec = load(resolve_spec_path(str(arg)))
    if isinstance(spec, Genotype):
        raise NasgalError(
            f"{arg} is a genotype: it has no trained weights to deploy",
            hint="stack it into a network (nasgal stack), train it (nasgal train), then pass the run directory",
        )
    if not isinstance(spec, Network):
        raise NasgalError(f"{arg} is a {getattr(spec, 'kind', 'spec')}, not a network")
    if weights is None:
        raise NasgalError(
            f"{arg} is a network spec without weights",
            hint="pass its trained weights with --weights RUN_DIR|CHECKPOINT, or pass the training run directory instead",
        )
    return spec, load_weights(weights)


def trained_model(network: Network, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``network`` compiled with ``state`` loaded (refused clearly when they do not fit), in eval mode, on the CPU."""
    from ..engine.weights import fitted_model

    return fitted_model(network, state).eval()
