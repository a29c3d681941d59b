"""Real-life deception (trial videos): `Clips/Deceptive/trial_lie_001.mp4`, `Clips/Truthful/...`.

The class is the folder (emotion `deceptive` / `truthful`). `root` may be the folder holding
`Clips/` or `Clips/` itself. The dataset ships no subject identities; an optional csv
(`annotations`) maps each clip to its person, with columns `clip` (or filename/video/id; with or
without `.mp4`) and `subject` (or person/identity). Without it every clip is its own subject, so
leave-one-subject-out becomes leave-one-clip-out, which is not subject independent (a WARNING
says so). A clip the csv does not list is an error; csv rows for clips that are not on disk are
logged.

Synthetic layout: `out/Real-life_Deception_Detection_2016/Clips/Deceptive/trial_lie_001.mp4`,
`.../Clips/Truthful/trial_truth_001.mp4` (H.264 yuv420p, 30 fps) and `out/deception_subjects.csv`
(header `clip,subject`, clip = file stem, subject p01 ...; left out with `mapping=False`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mer.datasets.labels import LabelScheme
from mer.datasets.media_check import VIDEO_SUFFIXES, class_videos
from mer.datasets.problems import RowCollector, RowError
from mer.datasets.records import Record, text_cell
from mer.datasets.spec import Choice, DatasetSpec, FrameDefaults, SyntheticLayout
from mer.datasets.synthetic.dataset import SyntheticClip
from mer.datasets.synthetic.plan import SubjectPlan, natural_key, one_clip_per_media
from mer.datasets.synthetic.writers import write_csv
from mer.datasets.table import read_table
from mer.errors import DataError

log = logging.getLogger(__name__)

CLIP_COLUMNS = ("clip", "filename", "video", "id")
SUBJECT_COLUMNS = ("subject", "person", "identity")


def resolve_root(root: Path) -> Path:
    if not root.is_dir():
        raise DataError(f"data.root: deception folder {root} not found")
    return root / "Clips" if (root / "Clips").is_dir() else root


def read_subjects(path: Path) -> tuple[dict[str, str], dict[str, str], RowCollector, set[str]]:
    """csv/xlsx clip → subject, clip → the row that says so, the rows' problems and the clips
    of invalid rows (left out with them)."""
    table = read_table(path, (CLIP_COLUMNS, SUBJECT_COLUMNS))
    col_clip = table.column(*CLIP_COLUMNS)
    col_subject = table.column(*SUBJECT_COLUMNS)
    subjects: dict[str, str] = {}
    rows: dict[str, str] = {}
    problems = RowCollector()
    invalid: set[str] = set()
    for row_no, row in table.rows:
        where = table.where(row_no)
        with problems.row(where, **table.origin(row_no)) as ctx:
            clip = text_cell(table.cell(row, col_clip), where, table.columns[col_clip])
            clip = Path(clip).stem if Path(clip).suffix.lower() in VIDEO_SUFFIXES else clip
            if clip in rows:
                invalid.add(clip)
                raise RowError(
                    where, f"clip {clip} is already listed in {rows[clip]}", "one row per clip"
                )
            invalid.add(clip)  # until the whole row is read
            subjects[clip] = text_cell(
                table.cell(row, col_subject), where, table.columns[col_subject]
            )
            ctx.sample_id = f"deception/{subjects[clip]}/{clip}"
            rows[clip] = where
            invalid.discard(clip)
    return subjects, rows, problems, invalid


def read(annotations: Path | None, root: Path) -> list[Record]:
    base = resolve_root(root)
    problems = RowCollector()
    subjects: dict[str, str] = {}
    rows: dict[str, str] = {}
    invalid: set[str] = set()
    if annotations is not None:
        subjects, rows, problems, invalid = read_subjects(annotations)
    out: list[Record] = []
    for class_dir, video in class_videos(base, "deception"):
        clip = video.stem
        if clip in invalid:
            continue  # its row is listed among the invalid rows
        if annotations is None:
            person = clip
        elif clip in subjects:
            person = subjects[clip]
        else:
            raise DataError(
                f"{annotations}: no row for clip {clip} ({video}); every clip needs its subject"
            )
        out.append(
            Record(
                dataset="deception",
                subject_raw=person,
                subject=f"deception/{person}",
                clip=clip,
                emotion=class_dir.name.lower(),
                where=f"{video} ({rows[clip]})" if clip in rows else str(video),
                media=video,
                kind="video",
            )
        )
    if not out and not problems.problems:
        raise DataError(f"data.root: no videos under {base} (expected Deceptive/ and Truthful/)")
    on_disk = {r.clip for r in out}
    extra = sorted(set(subjects) - on_disk)
    if extra:
        log.warning(
            "deception: %d clip(s) in %s are not under %s (first: %s)",
            len(extra),
            annotations,
            base,
            extra[0],
        )
    if annotations is None:
        log.warning(
            "deception: no subject csv given; each of the %d clips is its own subject, so "
            "leave-one-subject-out is leave-one-clip-out (NOT subject independent)",
            len(out),
        )
    return problems.done(out)


CLASSES = ("deceptive", "truthful")
DECEPTION2 = LabelScheme(
    "deception2", CLASSES, doc="real-life trial deception: class from the folder"
)


# -------------------------------------------------------------------------- synthetic layout
VOCABULARY: dict[str | None, list[Choice]] = {
    "deceptive": [("deceptive", "24"), ("deceptive", "4+24"), ("deceptive", "14+24"),
                  ("deceptive", "17+24")],
    "truthful": [("truthful", ""), ("truthful", "1+2"), ("truthful", "12")],
}  # fmt: skip


def _clip_names(plan: SubjectPlan) -> list[str]:
    """`trial_lie_001` / `trial_truth_001`: numbered per class over the whole dataset."""
    names = []
    for label in plan.labels:
        plan.counters[str(label)] += 1
        kind = "lie" if label == "deceptive" else "truth"
        names.append(f"trial_{kind}_{plan.counters[str(label)]:03d}")
    return names


def _media(plan: SubjectPlan, name: str, label: str | None) -> tuple[str, list[int]]:
    folder = "Deceptive" if label == "deceptive" else "Truthful"
    return f"Clips/{folder}/{name}.mp4", list(range(plan.frames))


def write_annotations(path: Path, clips: list[tuple[SyntheticClip, dict[str, Any]]]) -> None:
    rows = sorted(([c.clip, c.subject] for c, _ in clips), key=lambda r: natural_key(r[0]))
    write_csv(path, rows, header=("clip", "subject"))


SPEC = DatasetSpec(
    name="deception",
    title="real-life deception",
    order=60,
    read=read,
    columns={"clip": CLIP_COLUMNS, "subject": SUBJECT_COLUMNS},  # the optional subject csv
    label_scheme="deception2",
    # the original's input is frames 5-20 (0-based) of each clip
    frames=FrameDefaults(count=16, select="first", skip=5),
    needs_annotations=False,
    needs_root=True,
    has_aus=False,
    class_from_folder=True,
    labels={"deception2": {c: c for c in CLASSES}},
    schemes=(DECEPTION2,),
    synthetic=SyntheticLayout(
        stream=4,
        root_dir="Real-life_Deception_Detection_2016",
        annotation_file="deception_subjects.csv",
        subject_name=lambda number: f"p{number:02d}",
        vocabulary=VOCABULARY,
        sequences=one_clip_per_media(_clip_names, _media),
        write_annotations=write_annotations,
        classes=CLASSES,
        video=True,
        annotations_optional=True,
    ),
)
