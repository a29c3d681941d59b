"""`python -m bench.throughput`: run the harness (see the package docstring and bench/README.md)."""

import sys

from bench.throughput.cli import main

if __name__ == "__main__":  # not when a spawned worker re-imports this module as __mp_main__
    sys.exit(main())
