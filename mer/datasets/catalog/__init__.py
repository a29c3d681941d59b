"""Per-dataset annotation readers; `mer.datasets.annotations.load_samples` is the public entry point.

Each reader turns one dataset's files, as users receive them, into `Record`s; the shared steps
(duplicate ids, media checks, the sample table) live in `records.py` so every dataset gets the same
checks and error messages.
"""
