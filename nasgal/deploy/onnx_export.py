"""Export a trained network to ONNX and check the file against torch with onnxruntime.

The file is written by ``torch.onnx.export`` (the exporter torch ships, which uses onnx and
onnxscript) from the compiled module in eval mode, with a dynamic batch axis: input
``images`` ``[batch, C, H, W]`` float32, output ``logits`` ``[batch, classes]``. The spec
travels inside as model metadata (``nasgal.*`` keys), so a deployed file can be traced back
to the spec and weights it came from. The compiled module only builds live edges, so pruned
nodes are absent from the graph, not multiplied by zero.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import NasgalError
from ..spec import Network, spec_hash
from ..spec.io import atomic_write_bytes, dumps
from .extra import require

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "logits"

# Parity tolerance, fp32: pass when max |onnx - torch| <= DEFAULT_ATOL + DEFAULT_RTOL * max |torch logits|.
# onnxruntime folds each BatchNorm into the conv before it and runs its own conv kernels, so every
# layer rounds differently; fp32 keeps ~7 significant digits, and through a handful of cells the
# observed logit differences stay around 1e-6 of the logits' scale (see docs/deploy.md). An
# error that changes the computation (a wrong weight, a missing edge, a BN in training mode)
# moves the logits by 1e-2 or more, four orders of magnitude above the tolerance.
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4
PARITY_BATCHES = (1, 7, 32)  # batch 1, an odd size (the axis really is dynamic), and a full batch


class ParityError(NasgalError):
    """onnxruntime's logits differ from torch's beyond the tolerance."""


@dataclass(frozen=True)
class Parity:
    """Logits of onnxruntime against torch on seeded random batches."""

    max_abs_diff: float  # max |onnx - torch| over every logit checked
    max_abs_logit: float  # max |torch logit|: the scale the relative part of the tolerance uses
    tolerance: float  # atol + rtol * max_abs_logit
    batches: tuple[int, ...]
    argmax_agreement: float  # fraction of samples whose predicted class agrees

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def describe(self) -> str:
        return (f"max |onnxruntime - torch| = {self.max_abs_diff:.3g} on batches {', '.join(map(str, self.batches))} "
                f"(tolerance {self.tolerance:.3g}; logits up to {self.max_abs_logit:.3g}; "
                f"predicted class agrees on {self.argmax_agreement:.0%})")

    def as_dict(self) -> dict[str, Any]:
        return {"max_abs_diff": self.max_abs_diff, "max_abs_logit": self.max_abs_logit, "tolerance": self.tolerance,
                "batches": list(self.batches), "argmax_agreement": self.argmax_agreement, "ok": self.ok}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    metadata: dict[str, str]
    op_counts: dict[str, int]
    parity: Parity
    size_bytes: int = 0
    opset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def spec_metadata(network: Network, state: dict[str, torch.Tensor] | None = None) -> dict[str, str]:
    """The ``nasgal.*`` metadata an exported file carries: spec name, hash, kept nodes, the spec itself."""
    from .. import __version__

    meta = {
        "nasgal.version": __version__,
        "nasgal.network": network.name,
        "nasgal.spec_hash": spec_hash(network),
        "nasgal.kept_nodes": json.dumps(network.kept_nodes()),
        "nasgal.masks": json.dumps([None if p.mask is None else {str(k): v for k, v in p.mask.items()}
                                    for p in network.positions]),
        "nasgal.input": json.dumps({"name": INPUT_NAME, "shape": ["batch", network.input.channels, *network.input.size],
                                    "dtype": "float32"}),
        "nasgal.spec": dumps(network),
    }
    if network.pruning is not None and network.pruning.parent:
        meta["nasgal.parent_hash"] = network.pruning.parent
    if state is not None:
        from ..engine.weights import weights_fingerprint

        meta["nasgal.weights_sha256"] = weights_fingerprint(state)
    return meta


def _to_onnx(model: torch.nn.Module, network: Network, opset: int | None) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (eval mode, dynamic batch)."""
    require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")
    x = torch.randn(2, network.input.channels, *network.input.size)  # batch 2: torch.export specialises 0 and 1
    kwargs: dict[str, Any] = {}
    if opset is not None:
        kwargs["opset_version"] = opset
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (x,), dynamo=True, verbose=False, optimize=True, external_data=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch")},), **kwargs,
            )
    except Exception as e:
        raise NasgalError(f"torch.onnx.export failed for {network.name}: {type(e).__name__}: {str(e).splitlines()[0]}",
                          hint="run with --debug for the traceback") from e
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return program.model_proto


def check_parity(
    onnx_model: bytes | str | Path,
    model: torch.nn.Module,
    input_shape: tuple[int, int, int],
    *,
    batches: tuple[int, ...] = PARITY_BATCHES,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    seed: int = 0,
    strict: bool = True,
) -> Parity:
    """Run the ONNX model with onnxruntime (CPU) and torch on the same seeded random batches.

    Raises :class:`ParityError` when the logits differ beyond ``atol + rtol * max |logit|``
    (unless ``strict`` is False); returns the measured :class:`Parity` otherwise.
    """
    ort = require("onnxruntime", "the ONNX parity check")
    src = str(onnx_model) if isinstance(onnx_model, Path) else onnx_model
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    max_diff = max_ref = 0.0
    agree = total = 0
    was_training = model.training
    model.eval()
    try:
        for b in batches:
            x = torch.randn(b, *input_shape, generator=gen)
            with torch.no_grad():
                ref = model(x).float()
            got = torch.from_numpy(sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
            if tuple(got.shape) != tuple(ref.shape):
                raise ParityError(f"onnxruntime returned logits of shape {list(got.shape)}, torch {list(ref.shape)}")
            max_diff = max(max_diff, float((got - ref).abs().max()))
            max_ref = max(max_ref, float(ref.abs().max()))
            agree += int((got.argmax(1) == ref.argmax(1)).sum())
            total += b
    finally:
        model.train(was_training)
    parity = Parity(max_diff, max_ref, atol + rtol * max_ref, tuple(batches), agree / total)
    if strict and not parity.ok:
        raise ParityError(f"the ONNX file does not match torch: {parity.describe()}",
                          hint="the export is wrong (nothing was written); run with --debug and report it")
    return parity


def export_onnx(
    network: Network,
    state: dict[str, torch.Tensor],
    path: str | Path,
    *,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> ExportResult:
    """Export ``network`` with trained ``state`` to ``path`` (atomically), after a parity check.

    The file is written only when onnxruntime reproduces torch's logits within the tolerance;
    otherwise :class:`ParityError` is raised and ``path`` is left untouched.
    """
    from .trained import trained_model

    onnx = require("onnx", "ONNX export")
    model = trained_model(network, state)
    proto = _to_onnx(model, network, opset)
    del proto.metadata_props[:]
    for k, v in spec_metadata(network, state).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.doc_string = f"nasgal network '{network.name}' (spec {spec_hash(network)}), exported for inference"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    parity = check_parity(data, model, (network.input.channels, *network.input.size), atol=atol, rtol=rtol)
    out = atomic_write_bytes(path, data)
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return ExportResult(out, onnx_metadata(proto), onnx_op_counts(proto), parity, len(data), opset_used)


def _load_proto(model: Any) -> Any:
    onnx = require("onnx", "reading ONNX files")
    if isinstance(model, (str, Path)):
        try:
            return onnx.load(str(model))
        except FileNotFoundError:
            raise NasgalError(f"{model} does not exist") from None
        except Exception as e:
            raise NasgalError(f"{model} is not an ONNX file ({type(e).__name__}: {e})") from None
    return model


def onnx_metadata(model: Any) -> dict[str, str]:
    """The metadata of an ONNX file or ``ModelProto`` as a dict."""
    return {p.key: p.value for p in _load_proto(model).metadata_props}


def onnx_op_counts(model: Any) -> dict[str, int]:
    """How many nodes of each op type the main graph of an ONNX file or ``ModelProto`` has."""
    return dict(Counter(n.op_type for n in _load_proto(model).graph.node))
