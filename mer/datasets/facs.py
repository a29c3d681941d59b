"""FACS vocabulary shared by the readers, the config and the region crops: which action units
(AUs) point at which face region, and the AU codes the original code used.

A clip's AUs come from its annotation (`mer.datasets.au_cells.read_au_cell`: every run of digits
of the AU cell, each a FACS code (`FACS_CODES`), sides and intensities kept only in `aus_raw`).
The region table is the original code's (MODEL.md §6); mer/data/regions.py crops the regions.
"""

from __future__ import annotations

#: au_oracle priority: the first region whose AU set meets the clip's AUs wins; a clip with none
#: of them gets the whole face.
AU_REGIONS: tuple[tuple[str, frozenset[int]], ...] = (
    ("eyes", frozenset({4, 5, 7, 43})),
    ("mouth", frozenset({10, 12, 14, 15, 17})),
    ("eyebrows", frozenset({1, 2})),
    ("cheeks", frozenset({6, 9})),
)
#: The AU codes the original code kept (`data.regions.au_codes` by default): all that pick a
#: region.
AU_CODE = [1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 43]


def region_codes() -> list[int]:
    """Every AU code that picks a region, sorted."""
    return sorted(set().union(*(codes for _, codes in AU_REGIONS)))


#: Every code of the Facial Action Coding System (Ekman, Friesen & Hager, 2002): 0 neutral face;
#: action units 1-46 (there is no AU 3); 50 speech; head positions 51-58; eye positions 61-66 and
#: 69; visibility codes 70-74; gross behaviour 40, 80-82, 84, 85, 91, 92, 97, 98. An AU cell's
#: number outside this set is not an action unit (a spreadsheet date such as 41306, a typo):
#: `mer.datasets.au_cells` reports it by row instead of reading it.
FACS_CODES: frozenset[int] = frozenset(
    {0, 1, 2, *range(4, 47), 50, *range(51, 59), *range(61, 67), 69, *range(70, 75),
     80, 81, 82, 84, 85, 91, 92, 97, 98}
)  # fmt: skip
FACS_RANGE = "0-2, 4-46, 50-58, 61-66, 69-74, 80-82, 84, 85, 91, 92, 97, 98"
