"""Generic helpers with no knowledge of experiments: JSON conversion, atomic file writes.

The bottom layer beside mer.errors: these modules import nothing else from `mer`, so any layer
may use them.
"""
