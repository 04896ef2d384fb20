"""Deploying trained networks: ONNX export with a parity check, and latency measurements.

Needs the ``deploy`` extra (``pip install 'nasgal[deploy]'``: onnx, onnxscript, onnxruntime)
for ONNX; the modules import without it and say which extra to install when it is missing.
"""

from .extra import DEPLOY_HINT, MissingExtra, require
from .latency import RUNTIMES, Candidate, LatencyResult, machine_label, measure_latency
from .onnx_export import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    ExportResult,
    Parity,
    ParityError,
    check_parity,
    export_onnx,
    onnx_metadata,
    onnx_op_counts,
)
from .trained import load_trained, trained_model

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "DEPLOY_HINT",
    "RUNTIMES",
    "Candidate",
    "ExportResult",
    "LatencyResult",
    "MissingExtra",
    "Parity",
    "ParityError",
    "check_parity",
    "export_onnx",
    "load_trained",
    "machine_label",
    "measure_latency",
    "onnx_metadata",
    "onnx_op_counts",
    "require",
    "trained_model",
]
