"""CASME II: `CASME2-coding-*.xlsx` (Sheet1) + frames `root/sub01/EP02_01f/img46.jpg`.

The Subject cell is text `'01'` in the distributed file (a re-saved copy may hold the number 1);
both become `sub01`, the media folder's name. Filenames repeat across subjects, so a clip is
keyed by (subject, filename). A frame cell holding text (the real file has `/` as the apex of
sub04/EP12_01f, row 31) is read as unknown (NA) and logged. The "Cropped" variant has the same
tree: point the root at it.

Synthetic layout: `out/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...` (RGB JPEG) and
`out/CASME2-coding-20140508.xlsx`, Sheet1 (+ empty Sheet2, Sheet3): Subject ("01" text),
Filename, <empty>, OnsetFrame, ApexFrame, OffsetFrame, <empty>, Action Units, Estimated Emotion.
Filenames repeat across subjects; single AUs are numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.datasets.coded_sheet import COLUMNS, reader
from mer.datasets.labels import LabelScheme
from mer.datasets.spec import Choice, DatasetSpec, FrameDefaults, SyntheticLayout
from mer.datasets.synthetic.dataset import SyntheticClip
from mer.datasets.synthetic.plan import SubjectPlan, natural_key, one_clip_per_media
from mer.datasets.synthetic.writers import Sheet, au_cell, write_xlsx

SHEET = "Sheet1"


def subject_folder(number: int) -> str:
    """Subject 1 → `sub01` (media folder and sample-id spelling)."""
    return f"sub{number:02d}"


read = reader("casme2", SHEET, subject_folder)


# ----------------------------------------------------------------------------------- labels
MEGC3 = {
    "disgust": "negative",
    "repression": "negative",
    "happiness": "positive",
    "surprise": "surprise",
    "others": None,
    "fear": None,
    "sadness": None,
}
FIVE = {
    "happiness": "happiness",
    "disgust": "disgust",
    "repression": "repression",
    "surprise": "surprise",
    "others": "others",
    "fear": None,
    "sadness": None,
}
CASME2_5 = LabelScheme(
    "casme2_5",
    ("happiness", "disgust", "repression", "surprise", "others"),
    doc="CASME II 5 classes (fear and sadness dropped: too few clips)",
)


# -------------------------------------------------------------------------- synthetic layout
#: Emotions and AU strings a synthetic clip of each class gets (also SMIC's and the videos').
VOCABULARY: dict[str | None, list[Choice]] = {
    "negative": [("disgust", "4+L10"), ("disgust", "4+9"), ("disgust", "4+7"), ("disgust", "4+10"),
                 ("repression", "15"), ("repression", "14"), ("repression", "15+17"),
                 ("repression", "4+15")],
    "positive": [("happiness", "12"), ("happiness", "6+12"), ("happiness", "R12"),
                 ("happiness", "L12")],
    "surprise": [("surprise", "1+2"), ("surprise", "R1+R2"), ("surprise", "1+2+5"),
                 ("surprise", "L1+L2")],
    None: [("others", "?"), ("others", "4"), ("others", "18"), ("others", "L7"), ("others", "25"),
           ("sadness", "15+17"), ("fear", "4+20")],
}  # fmt: skip


def episode_clips(plan: SubjectPlan) -> list[str]:
    """The subject's clips: the shared episode names but one (so names repeat across subjects)."""
    mine = (c for k, c in enumerate(plan.pool) if k != plan.index % len(plan.pool))
    return sorted(mine, key=natural_key)


def _media(plan: SubjectPlan, name: str, label: str | None) -> tuple[str, list[int]]:
    start = int(plan.rng.integers(1, 300))
    return f"{plan.name}/{name}", list(range(start, start + plan.frames))


def write_annotations(path: Path, clips: list[tuple[SyntheticClip, dict[str, Any]]]) -> None:
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
              "Action Units", "Estimated Emotion"]  # fmt: skip
    rows: list[list[Any]] = [header]
    rows += [
        [c.subject.removeprefix("sub"), c.clip, None, c.onset, c.apex, c.offset, None,
         au_cell(c.aus), c.emotion]
        for c, _ in clips
    ]  # fmt: skip
    write_xlsx(path, [Sheet("Sheet1", rows, text_columns=(0,)), Sheet("Sheet2"), Sheet("Sheet3")])


SPEC = DatasetSpec(
    name="casme2",
    title="CASME II",
    order=10,
    read=read,
    columns=COLUMNS,
    label_scheme="megc3",
    frames=FrameDefaults(count=30, select="motion_topk"),
    labels={"megc3": MEGC3, "casme2_5": FIVE},
    schemes=(CASME2_5,),
    synthetic=SyntheticLayout(
        stream=0,
        root_dir="CASME2_RAW_selected",
        annotation_file="CASME2-coding-20140508.xlsx",
        subject_name=subject_folder,
        vocabulary=VOCABULARY,
        sequences=one_clip_per_media(episode_clips, _media),
        write_annotations=write_annotations,
        has_others=True,
        frame_name=lambda folder, n: f"img{n}.jpg",
    ),
)
