"""mer: micro-expression recognition research at cluster scale."""

from mer.errors import ConfigError, DataError, MerError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "MerError", "__version__"]
