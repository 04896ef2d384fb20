"""Trained weights: reading them from a run, checking that they fit a network spec, and their
fingerprint. Every stage that takes weights (training with initial weights, pruning's teacher,
deployment) checks them here, so a mismatch reads the same everywhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..errors import NasgalError
from ..spec import Network
from ..runfiles import CHECKPOINT, WEIGHTS
from .rundir import load_checkpoint


def fitted_model(network: Network, state: dict[str, torch.Tensor], gates: bool = False,
                 what: str = "the weights", hint: str | None = None) -> torch.nn.Module:
    """Compile ``network`` and load ``state`` into it, with a clear error when they do not fit
    (names missing or unexpected, or tensors of another shape). With ``gates`` the node gates
    (which ``state`` need not hold) stay at 1."""
    from ..compiler import compile_network

    model = compile_network(network, gates=gates)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(".gate")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        if wrong:
            k = wrong[0]
            eg = f"{k} has shape {list(state[k].shape)}, the network needs {list(own[k].shape)}"
        else:
            eg = f"e.g. {(missing or unexpected)[0]} is {'missing' if missing else 'unexpected'}"
        raise NasgalError(
            f"{what} do not fit {network.name}: {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} of another shape ({eg})",
            hint=hint or "pass the training run (or checkpoint) of this very network spec",
        )
    model.load_state_dict(dict(state), strict=False)
    return model


def weights_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 (16 hex digits) of a state dict's names, shapes and values."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{list(v.shape)}:{v.dtype}".encode())
        h.update(v.view(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()[:16]


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights of a training run: a run directory (``weights.pt``, else the last
    checkpoint) or a checkpoint/state-dict file."""
    p = Path(path)
    if p.is_dir():
        if (p / WEIGHTS).exists():
            p = p / WEIGHTS
        elif (p / CHECKPOINT).exists():
            p = p / CHECKPOINT
        else:
            raise NasgalError(f"{path} holds no {WEIGHTS} or {CHECKPOINT}", hint="train first: nasgal train ...")
    state = load_checkpoint(p)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasgalError(f"{p} is not a state dict or nasgal checkpoint")
    return state
