"""FACS vocabulary shared by the readers, the config and the region crops: which action units
(AUs) point at which face region, and the AU codes the original code used.

A clip's AUs come from its annotation (`mer.datasets.records.parse_aus`: every run of digits of
the AU cell, sides and intensities dropped). The region table is the original code's
(MODEL.md §6); mer/data/regions.py crops the regions.
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
