"""One exception type for every error a user can cause (config, data, annotations).

The CLI prints these without a traceback and exits non-zero; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class MerError(Exception):
    """A problem the user can fix: names the file, row or key and what was expected."""


class ConfigError(MerError):
    """A sweep YAML or override that does not fit the schema."""


class DataError(MerError):
    """A dataset file, folder, annotation row or media file that cannot be used as it is."""
