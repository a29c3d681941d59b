"""SMIC (HS): no annotation file; `HS/s1/micro/negative/s1_ne_01/reg_image046176.bmp`.

The class is the folder under `micro/` (negative/positive/surprise) and the subject the `sN`
folder. `root` may be the SMIC folder (holding `HS/`) or the HS folder itself (also VIS or NIR:
any folder of `sN` subject folders). `non_micro/` folders are not read. Sample ids keep the
folder spelling (`smic/s1/s1_ne_01`); subjects are zero-padded like the MEGC2019 list
(`smic/s01`), so the composite and the plain dataset name the same person the same way.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from mer.datasets.media_check import subfolders
from mer.datasets.records import Record
from mer.errors import DataError

log = logging.getLogger(__name__)

_SUBJECT = re.compile(r"s0*(\d+)", re.IGNORECASE)


def subject_id(number: int) -> str:
    """Subject 1 → `smic/s01` (the MEGC2019 spelling)."""
    return f"smic/s{number:02d}"


def resolve_root(root: Path, key: str = "data.root") -> Path:
    """The folder holding the `sN` subject folders: `root/HS` or `root` itself.

    `key` is the config key the root came from (`data.sources.smic.root` in the composite), so
    errors name what the user has to fix.
    """
    if not root.is_dir():
        raise DataError(f"{key}: SMIC folder {root} not found")
    if (root / "HS").is_dir():
        return root / "HS"
    if any(_SUBJECT.fullmatch(p.name) for p in subfolders(root)):
        return root
    raise DataError(
        f"{key}: {root} is neither the SMIC folder (with HS/) nor its HS folder "
        "(with subject folders s1, s2, ...)"
    )


def read(annotations: Path | None, root: Path, key: str = "data.root") -> list[Record]:
    base = resolve_root(root, key)
    out: list[Record] = []
    for subject_dir in subfolders(base):
        m = _SUBJECT.fullmatch(subject_dir.name)
        if m is None:
            log.warning("SMIC: %s is not a subject folder (sN); not read", subject_dir)
            continue
        micro = subject_dir / "micro"
        if not micro.is_dir():
            log.warning("SMIC: %s has no micro/ folder; subject not read", subject_dir)
            continue
        for emotion_dir in subfolders(micro):
            for clip_dir in subfolders(emotion_dir):
                out.append(
                    Record(
                        dataset="smic",
                        subject_raw=subject_dir.name,
                        subject=subject_id(int(m.group(1))),
                        clip=clip_dir.name,
                        emotion=emotion_dir.name.lower(),
                        where=str(clip_dir),
                        media=clip_dir,
                    )
                )
    if not out:
        raise DataError(f"{key}: no SMIC clips under {base} (expected sN/micro/<class>/<clip>/)")
    return out
