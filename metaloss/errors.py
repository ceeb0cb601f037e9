"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class MetalossError(Exception):
    """Base class of every error caused by input (data, configuration, artifacts)."""


class DataError(MetalossError):
    """A data file is missing, truncated or inconsistent. The message names the file."""


class ConfigError(MetalossError, ValueError):
    """A configuration value is invalid. The message names the field."""


class ArtifactError(MetalossError):
    """A saved run or loss artifact cannot be read (missing, corrupt, newer schema)."""
