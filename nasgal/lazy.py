"""Names a package exports but imports only on first use, so that ``import nasgal.train`` (and
the command line, which reads the settings models) does not load torch."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``names[name]`` (a module relative to
    the package: ``"runner"``, or ``"..engine.weights"``) when ``name`` is first asked for."""

    def __getattr__(name: str) -> Any:
        if name in names:
            where = names[name]
            return getattr(importlib.import_module(where if where.startswith(".") else f".{where}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
