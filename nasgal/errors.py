"""Errors that nasgal reports to users as `Error: message` plus an optional hint.

Anything raised as a :class:`NasgalError` is an expected failure (bad input, missing
files, impossible requests); the CLI prints it without a traceback.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence


class Problem(NamedTuple):
    """One problem of a spec or settings: where it is (a dotted path such as
    ``cells.normal.edges[7]``; empty for the whole object) and what is wrong there."""

    location: str
    message: str


def join_location(outer: str, inner: str) -> str:
    """``outer`` followed by ``inner``: ``join_location("cells.normal", "edges[7]")`` is
    ``"cells.normal.edges[7]"``; an index joins without a dot, an empty side is dropped."""
    if not outer or not inner:
        return outer or inner
    return outer + inner if inner.startswith("[") else f"{outer}.{inner}"


class NasgalError(Exception):
    """An expected failure with a message for the user and an optional hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class SpecError(NasgalError):
    """A spec file or object is invalid; ``problems`` holds one :class:`Problem`
    (a ``(location, message)`` pair) per problem."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | None = None, hint: str | None = None) -> None:
        self.problems = [Problem(*p) for p in problems]
        self.source = source
        self.head = head = self._head(source)
        lines = [f"{loc}: {msg}" if loc else msg for loc, msg in self.problems]
        super().__init__(head + ":\n" + "\n".join("  " + line for line in lines), hint=hint)

    @staticmethod
    def _head(source: str | None) -> str:
        return f"{source} is not a valid spec" if source else "invalid spec"


class ConfigError(SpecError):
    """Settings (of a training, pruning or search run) that fail validation. Each problem names
    the setting and, for a top-level one, the command-line option that sets it."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str = "settings", hint: str | None = None) -> None:
        named = [(f"{loc} (--{loc.replace('_', '-')})" if loc.isidentifier() else loc, msg) for loc, msg in problems]
        super().__init__(named, source=source, hint=hint)

    @staticmethod
    def _head(source: str | None) -> str:
        return f"invalid {source or 'settings'}"
