"""SMIC (HS): no annotation file; `HS/s1/micro/negative/s1_ne_01/reg_image046176.bmp`.

The class is the folder under `micro/` (negative/positive/surprise) and the subject the `sN`
folder. `root` may be the SMIC folder (holding `HS/`) or the HS folder itself (also VIS or NIR:
any folder of `sN` subject folders). `non_micro/` folders are not read. Sample ids keep the
folder spelling (`smic/s1/s1_ne_01`); subjects are zero-padded like the MEGC2019 list
(`smic/s01`), so the composite and the plain dataset name the same person the same way.

Synthetic layout: `out/SMIC/HS/s1/micro/negative/s1_ne_01/reg_image046176.bmp` (RGB BMP); no
annotation file.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from mer.datasets.catalog import casme2
from mer.datasets.media_check import subfolders
from mer.datasets.records import Record
from mer.datasets.spec import DatasetSpec, FrameDefaults, SyntheticLayout
from mer.datasets.synthetic.plan import CLASSES, SubjectPlan, one_clip_per_media
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


# -------------------------------------------------------------------------- synthetic layout
# Real subject numbering has gaps; the synthetic one follows it, then continues.
SUBJECT_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)
ABBREVIATION = {"negative": "ne", "positive": "po", "surprise": "sur"}


def _clip_names(plan: SubjectPlan) -> list[str]:
    """`s1_ne_01`: numbered per class within the subject."""
    per_class = dict.fromkeys(CLASSES, 0)
    names = []
    for label in plan.labels:
        per_class[str(label)] += 1
        names.append(f"{plan.name}_{ABBREVIATION[str(label)]}_{per_class[str(label)]:02d}")
    return names


def _media(plan: SubjectPlan, name: str, label: str | None) -> tuple[str, list[int]]:
    start = int(plan.rng.integers(1000, 500000))
    return f"HS/{plan.name}/micro/{label}/{name}", list(range(start, start + plan.frames))


SPEC = DatasetSpec(
    name="smic",
    title="SMIC-HS",
    order=30,
    read=read,
    columns={},  # no annotation file: subject, class and clip are folders
    label_scheme="megc3",
    frames=FrameDefaults(count=10, select="first"),
    needs_annotations=False,
    reads_annotations=False,
    needs_root=True,
    has_aus=False,
    class_from_folder=True,  # named by the three classes: megc3 and folder3 read them as is
    synthetic=SyntheticLayout(
        stream=2,
        root_dir="SMIC",
        annotation_file=None,
        subject_name=lambda number: f"s{number}",
        vocabulary=casme2.VOCABULARY,  # the AU strings; the emotion written is the class
        sequences=one_clip_per_media(_clip_names, _media),
        write_annotations=None,
        frame_name=lambda folder, n: f"reg_image{n:06d}.bmp",
        image_format="BMP",
        subject_ids=SUBJECT_IDS,
        emotion_is_class=True,
    ),
)
