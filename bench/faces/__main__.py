"""`python -m bench.faces [--size N] [--upsample U]`: print the face pipeline's table."""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time

from bench.faces.measure import run_all
from bench.faces.media import MISSING, media_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.faces", description=__doc__)
    p.add_argument("--size", type=int, default=128, help="crop output size (the paper's 128)")
    p.add_argument("--upsample", type=int, default=1, help="dlib upsampling (mer's default 1)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    folder = media_dir()
    if folder is None:
        print(MISSING, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    res = run_all(folder, size=args.size, upsample=args.upsample)
    print(res.markdown())
    print(
        f"\n{platform.processor() or platform.machine()}, {platform.python_version()}, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
