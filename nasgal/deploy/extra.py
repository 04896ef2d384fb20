"""The optional ``deploy`` extra: import its packages on demand, with a clear error when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import NasgalError

DEPLOY_HINT = "install the deploy extra: pip install 'nasgal[deploy]' (onnx, onnxscript, onnxruntime)"


class MissingExtra(NasgalError):
    """A package of an optional extra is not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (a package of the deploy extra) or raise :class:`MissingExtra`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(f"{purpose} needs the Python package {module.split('.')[0]!r}, which is not installed ({e})",
                           hint=DEPLOY_HINT) from None
