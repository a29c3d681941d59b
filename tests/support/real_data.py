"""Where the tests find the datasets' real annotation sheets, and what a skip says without them.

The sheets are licensed with the datasets (CASME II, SAMM, SMIC's MEGC2019 list, CAS(ME)^2,
MEVIEW): a user's checkout has none, so tests that read them skip, saying which files they need
and how to point the tests at them (MER_ANNOTATIONS_DIR), never a path of the developers' machine.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "MER_ANNOTATIONS_DIR"
SHEETS = (
    "CASME2-coding-20140508.xlsx",
    "SAMM_Micro_FACS_Codes_v2.xlsx",
    "combined_3class_gt.csv",
    "CAS(ME)^2.xlsx",
    "MEVIEW.xls",
)


def annotations_dir() -> Path:
    """MER_ANNOTATIONS_DIR, else the developers' shared folder next to the checkout (which may
    not exist: tests check the files they need)."""
    env = os.environ.get(ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "annotations"


REAL = annotations_dir()
MISSING = (
    "needs the datasets' real annotation sheets (licensed with the datasets: "
    f"{', '.join(SHEETS)}); set {ENV} to a folder holding them"
)
