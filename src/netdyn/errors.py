"""The exceptions netdyn raises. Each carries one line that names the problem."""

from __future__ import annotations


class NetdynError(Exception):
    """Base class of every error netdyn raises on bad input; the CLI turns it into one line and exit 1."""


class DatasetError(NetdynError):
    """A data file is missing, corrupt, or does not match its companion file."""


class ConfigError(NetdynError, ValueError):
    """A configuration that cannot be built (impossible sizes, unknown names, contradictory options)."""


class ModelError(NetdynError):
    """A model that netdyn cannot represent or rebuild (an unsupported module, mismatched shapes)."""


class RunError(NetdynError):
    """A run folder that cannot be read or continued (no checkpoints, missing config)."""


class DivergedError(NetdynError):
    """Training produced a non-finite loss."""


class StorageError(NetdynError, OSError):
    """A place netdyn must write cannot take it: a read-only folder, a file where a folder belongs, a full disk.

    Also an ``OSError``, so code that handles the operating system's errors handles it too.
    """
