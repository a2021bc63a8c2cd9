"""Errors a user can act on: each names the file, row or field at fault."""


class UdasaError(Exception):
    """Base class for errors shown to the user without a traceback."""


class DataError(UdasaError):
    """A dataset file or source is malformed, empty, or lacks a needed column."""


class ConfigError(UdasaError, ValueError):
    """A configuration field or file is invalid (also a ValueError, for library callers)."""
