"""`python -m bench.scale`: run the scale benchmark (see the package docstring)."""

import sys

from bench.scale.cli import main

if __name__ == "__main__":
    sys.exit(main())
