"""The error that dataset reading and loading raise."""

from __future__ import annotations

from nasgal.errors import NasgalError


class DataError(NasgalError):
    """A dataset could not be found, read or used as asked (missing or corrupt files, bad sizes)."""
