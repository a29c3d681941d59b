"""CAS(ME)^2 (`casme_sq`, "CAS(ME) squared"): the coding sheet + the long recordings' frames
`root/rawpic/s15/15_0101disgustingteeth/img1.jpg ...`.

The coding workbook (any file name: the distributed one is named after its sheet, e.g.
`CAS(ME)^2code_final.xlsx`, which could not be checked here; the original code's copy is
`CAS(ME)^2.xlsx`), sheet `CASFEcode_final`, has no header: columns A-I are subject (1-22), name
(`anger1_1`: the recording's name prefix and the expression's number in it), onset, apex,
offset (the `img<N>.jpg` numbers of the recording), AUs, the class (negative / positive /
surprise / others, the 4-class label the original trains on), micro-expression or
macro-expression, and the emotion the coders named. The original code's copy adds, one row
lower, columns K-M `Subject`, `Filename` (`1-anger1_1`), `Action Units`: a copy of A, B and F
that this reader does not read (tests check they agree). Only micro-expressions are read by
default (`data.expressions`: micro, macro or all; 57 micro and 300 macro rows in the real
sheet). A first row whose onset, apex and offset are all text is taken as a header and skipped.

Media layout, and the evidence for it: CAS(ME)^2 is distributed as `rawpic/` (one frame folder
per recording, `rawpic/s15/15_0101disgustingteeth/img1.jpg`) and `rawvideo/` (the same
recordings as `rawvideo/s15/15_0101disgustingteeth.avi`). The workbook's own sheets `naming
rule1` (subject 1-22 ↔ folder s15-s40) and `naming rule2` (name prefix ↔ recording code,
`disgust1` ↔ `0101`) map a row to its folder (`SUBJECT_FOLDERS`, `RECORDING_CODES`; the tests
check them against the real sheets); public code reading CAS(ME)^2 walks the same
`rawpic/sNN/NN_<code><title>/img*.jpg` tree (e.g. `CASME_sq/rawpic_aligned/s15/15_0101
disgustingteeth`) and documents one misnamed folder, `s19/23_0502funnyerrors`: a recording
folder is therefore found by its code (`*_0502*`) inside the subject's folder, whatever number
precedes it. The sheet's frame numbers are the `img<N>` numbers (numbered from 1), so the
reader takes `rawpic/`; `data.root` is the folder holding `rawpic/` (or `rawpic/` itself, or
any tree of `sNN/` folders in the same naming, e.g. a cropped copy). `rawvideo/` is not read:
its frames are numbered from 0 and would be one frame off. The original code itself read
neither: it trained on per-clip videos in class folders (`negative/ positive/ surprise/
others/`, named like column L), which is mer's `videos` dataset with label scheme `folder4`.

A recording holds several expressions: sample id `casme_sq/s15/anger1_1`, frames selected
inside each clip's onset..offset (`shared_media`). Row errata of the real sheet (offset 0 on 44
macro rows; apex after offset or 0 on 4 macro rows, read as unknown) follow
`data.invalid_rows` (mer/datasets/problems.py); the 57 micro rows have none.

Synthetic layout: `out/CASME_sq/rawpic/s15/15_0101disgustingteeth/img1.jpg ...` (RGB JPEG,
numbered from 1, several micro-expressions per recording) and `out/CAS(ME)^2.xlsx` as the
original code's copy (A-I without header, K-M one row lower, the two naming-rule sheets), with
one macro-expression row per recording (over its whole length) that the default reading skips.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mer.datasets.au_cells import DecimalAus, read_au_cell
from mer.datasets.labels import NPS_OTHERS, LabelScheme
from mer.datasets.media_check import subfolders
from mer.datasets.problems import RowCollector, RowError
from mer.datasets.records import BlankFrames, Record, subject_number, text_cell
from mer.datasets.spec import (
    NPS,
    Choice,
    DatasetSpec,
    FrameDefaults,
    PlannedMedia,
    SyntheticLayout,
)
from mer.datasets.synthetic.dataset import SyntheticClip
from mer.datasets.synthetic.plan import SubjectPlan
from mer.datasets.synthetic.writers import Sheet, au_cell, write_xlsx
from mer.datasets.table import Table, read_sheet
from mer.errors import DataError

SHEET = "CASFEcode_final"
#: `naming rule1`: subject number of the sheet → its folder number (`s15`).
SUBJECT_FOLDERS = {1: 15, 2: 16, 3: 19, 4: 20, 5: 21, 6: 22, 7: 23, 8: 24, 9: 25, 10: 26, 11: 27,
                   12: 29, 13: 30, 14: 31, 15: 32, 16: 33, 17: 34, 18: 35, 19: 36, 20: 37,
                   21: 38, 22: 40}  # fmt: skip
#: `naming rule2`: the name prefix of a row → the recording's code (its folder `15_0101...`).
RECORDING_CODES = {"disgust1": "0101", "disgust2": "0102", "anger1": "0401", "anger2": "0402",
                   "happy1": "0502", "happy2": "0503", "happy3": "0505", "happy4": "0507",
                   "happy5": "0508"}  # fmt: skip
#: The recordings' titles in the distributed folder names (synthetic layout only; the reader
#: finds a folder by its code).
TITLES = {"0101": "disgustingteeth", "0102": "eatingworms", "0401": "girlcrashing",
          "0402": "beatingpregnantwoman", "0502": "funnyerrors", "0503": "unnyfarting",
          "0505": "funnyinnovations", "0507": "climbingthewall", "0508": "funnydunkey"}  # fmt: skip
KINDS = {"micro-expression": "micro", "macro-expression": "macro"}
_NAME = re.compile(r"([a-z]+\d+)_(\d+)")
# columns A-I
SUBJECT, NAME, ONSET, APEX, OFFSET, AUS, CLASS, KIND, EMOTION = range(9)
COLUMN_NAMES = ("subject", "name", "onset", "apex", "offset", "AUs", "class", "expression type",
                "emotion")  # fmt: skip


def folder_number(subject: int) -> int:
    """Sheet subject → folder number; past the real 22 subjects (synthetic data), 40 + n - 22."""
    return SUBJECT_FOLDERS.get(subject, 40 + subject - 22)


def resolve_root(root: Path) -> Path:
    """The folder of `sNN` subject folders: `root/rawpic` or `root` itself."""
    if (root / "rawpic").is_dir():
        return root / "rawpic"
    if any(re.fullmatch(r"s\d+", p.name) for p in subfolders(root)):
        return root
    hint = (
        " (rawvideo/ is not read: see the casme_sq module doc)"
        if (root / "rawvideo").is_dir()
        else ""
    )
    raise DataError(
        f"data.root: {root} is neither the CAS(ME)^2 folder (with rawpic/) nor a folder of "
        f"subject folders s15, s16, ...{hint}"
    )


class Recordings:
    """The recording folders of each subject folder, found by their code (listed once)."""

    def __init__(self, base: Path | None) -> None:
        self.base = base
        self.listed: dict[str, list[Path]] = {}

    def folder(self, folder: int, code: str) -> Path | None:
        if self.base is None:
            return None
        subject = self.base / f"s{folder}"
        if subject.name not in self.listed:
            self.listed[subject.name] = subfolders(subject) if subject.is_dir() else []
        found = [p for p in self.listed[subject.name] if re.match(rf"\d+_{code}", p.name)]
        if len(found) > 1:
            raise DataError(
                f"{subject}: {len(found)} recording folders for code {code} "
                f"({', '.join(p.name for p in found)}); expected one"
            )
        return found[0] if found else subject / f"{folder}_{code}"  # missing: checked later


def _cells(row: tuple[Any, ...]) -> list[Any]:
    return [Table.cell(row, i) for i in range(9)]


def _is_header(row: tuple[Any, ...]) -> bool:
    frames = [Table.cell(row, i) for i in (ONSET, APEX, OFFSET)]
    return all(isinstance(v, str) and not v.strip().isdigit() for v in frames)


def read(annotations: Path, root: Path | None, *, expressions: str = "micro") -> list[Record]:
    table = read_sheet(annotations, SHEET)
    rows_ = [(n, r) for n, r in table.rows if any(c is not None for c in _cells(r))]
    if rows_ and _is_header(rows_[0][1]):
        rows_ = rows_[1:]
    # a dry run may name a root that is not on this machine: the plan needs no media
    recordings = Recordings(resolve_root(root) if root is not None and root.is_dir() else None)
    blanks = BlankFrames(table.label)
    decimals = DecimalAus(table.label)
    rows = RowCollector()
    out = []
    for row_no, row in rows_:
        where = table.where(row_no)
        cell = _cells(row)
        with rows.row(where, **table.origin(row_no)) as ctx:
            kind_text = text_cell(cell[KIND], where, "expression type (column H)")
            kind = KINDS.get(kind_text.lower().replace(" ", ""), kind_text.lower())
            if kind not in ("micro", "macro"):
                raise RowError(
                    where, f"expression type (column H) is {kind_text!r}",
                    "micro-expression or macro-expression",
                )  # fmt: skip
            if expressions != "all" and kind != expressions:
                continue
            number = subject_number(cell[SUBJECT], where, "subject (column A)")
            if number not in SUBJECT_FOLDERS:
                raise RowError(
                    where, f"subject (column A) is {number}",
                    f"one of CAS(ME)^2's subjects 1-{len(SUBJECT_FOLDERS)} (sheet naming rule1)",
                )  # fmt: skip
            folder = folder_number(number)
            name = text_cell(cell[NAME], where, "name (column B)")
            ctx.sample_id = f"casme_sq/s{folder}/{name}"
            m = _NAME.fullmatch(name)
            if m is None or m.group(1) not in RECORDING_CODES:
                raise RowError(
                    where, f"name (column B) is {name!r}",
                    f"<recording>_<n> with a recording of sheet naming rule2 "
                    f"({', '.join(RECORDING_CODES)}), e.g. anger1_1",
                )  # fmt: skip
            frames = {
                role: blanks.read(cell[col], row_no, where, f"{role} (column {'CDE'[k]})")
                for k, (role, col) in enumerate((("onset", ONSET), ("apex", APEX),
                                                 ("offset", OFFSET)))
            }  # fmt: skip
            aus, aus_raw, decimal = read_au_cell(cell[AUS], where, "AUs (column F)")
            label = text_cell(cell[CLASS], where, "class (column G)").lower()
            if decimal:
                decimals.note(row_no, aus_raw)
            out.append(
                Record(
                    dataset="casme_sq",
                    subject_raw=f"s{folder}",
                    subject=f"casme_sq/s{folder}",
                    clip=name,
                    emotion=label,
                    where=where,
                    aus=aus,
                    aus_raw=aus_raw,
                    media=recordings.folder(folder, RECORDING_CODES[m.group(1)]),
                    extra={"expression": kind},
                    origin=table.origin(row_no),
                    **frames,
                )
            )
    blanks.report()
    decimals.report()
    return rows.done(out)


# ----------------------------------------------------------------------------------- labels
#: column G as written: the 4-class scheme keeps it, megc3 drops `others`
FOUR = {c: c for c in NPS_OTHERS}
THREE = {**{c: c for c in NPS}, "others": None}
CASME_SQ_4 = LabelScheme(
    "casme_sq_4", NPS_OTHERS, doc="CAS(ME)^2 negative/positive/surprise/others (column G)"
)


# -------------------------------------------------------------------------- synthetic layout
VOCABULARY: dict[str | None, list[Choice]] = {
    "negative": [("negative", "4+7"), ("negative", "4+10+14+15"), ("negative", "4+L7"),
                 ("negative", "14")],
    "positive": [("positive", "12"), ("positive", "6+12"), ("positive", "L12"),
                 ("positive", "12+15")],
    "surprise": [("surprise", "1+2"), ("surprise", "L1+L2"), ("surprise", "R1+R2"),
                 ("surprise", "1+2+5")],
    "others": [("others", "NULL"), ("others", "7"), ("others", "38"), ("others", "24")],
}  # fmt: skip
EMOTION = {"negative": "disgust", "positive": "happiness", "surprise": "surprise",
           "others": "pain"}  # column I of a synthetic row  # fmt: skip


def _sequences(plan: SubjectPlan) -> Iterator[PlannedMedia]:
    """The subject's clips spread over at most 9 recordings (the real codes), two per recording
    when there are few; frames numbered from 1, one expression after the other."""
    codes = list(RECORDING_CODES.items())
    n_rec = min(len(codes), max(1, math.ceil(len(plan.labels) / 2)))
    per = math.ceil(len(plan.labels) / n_rec)
    for f in range(n_rec):
        prefix, code = codes[f]
        labels = plan.labels[per * f : per * (f + 1)]
        if not labels:
            break
        clips = [plan.clip(f"{prefix}_{k + 1}", label, k * plan.frames)
                 for k, label in enumerate(labels)]  # fmt: skip
        media = f"rawpic/{plan.name}/{plan.name[1:]}_{code}{TITLES[code]}"
        yield media, list(range(1, plan.frames * len(clips) + 1)), clips


def write_annotations(path: Path, clips: list[tuple[SyntheticClip, dict[str, Any]]]) -> None:
    """The original code's copy: A-I without header (micro rows, plus one macro row per
    recording over its whole length), K-M one row lower, and the naming-rule sheets."""
    numbers = {f"s{folder_number(n)}": n for n in range(1, 1000)}
    rows: list[list[Any]] = []
    by_media: dict[Path, list[SyntheticClip]] = {}
    for c, _ in clips:
        by_media.setdefault(c.media, []).append(c)
    for same in by_media.values():
        for c in same:
            rows.append([numbers[c.subject], c.clip, c.onset, c.apex, c.offset, au_cell(c.aus),
                         c.emotion, "micro-expression", EMOTION[c.emotion]])  # fmt: skip
        first, last = same[0], same[-1]
        prefix = first.clip.rsplit("_", 1)[0]
        end = last.offset  # the macro row spans the recording: a window no micro row has
        if any((c.onset, c.offset) == (1, end) for c in same):
            end -= 1
        rows.append([numbers[first.subject], f"{prefix}_{len(same) + 1}", 1, (1 + end) // 2,
                     end, "NULL", "others", "macro-expression", EMOTION["others"]])  # fmt: skip
    k_to_m: list[list[Any]] = [["Subject", "Filename", "Action Units"]]
    k_to_m += [[r[0], f"{r[0]}-{r[1]}", r[5]] for r in rows]
    sheet = [r + [None] + [None] * 3 for r in rows] + [[None] * 13]
    for i, km in enumerate(k_to_m):
        sheet[i][10:13] = km
    rule1 = [[folder_number(r[0]), f"s{folder_number(r[0])}", r[0]] for r in rows]
    rule2 = [[code, prefix] for prefix, code in RECORDING_CODES.items()]
    write_xlsx(
        path,
        [Sheet(SHEET, sheet), Sheet("naming rule1", rule1),
         Sheet("naming rule2", rule2, text_columns=(0,))],
    )  # fmt: skip


SPEC = DatasetSpec(
    name="casme_sq",
    title="CAS(ME)^2",
    order=45,
    read=read,
    # no header: the columns A-I by position (the names say what each holds)
    columns={
        role: (f"column {'ABCDEFGHI'[k]}",)
        for k, role in enumerate(
            (
                "subject",
                "filename",
                "onset",
                "apex",
                "offset",
                "aus",
                "emotion",
                "expression",
                "emotion_named",
            )
        )
    },  # fmt: skip
    label_scheme="casme_sq_4",
    # the original: top-8 motion frames; inside each clip's onset..offset (window auto)
    frames=FrameDefaults(count=8, select="motion_topk"),
    shared_media=True,
    codes_macro=True,
    labels={"casme_sq_4": FOUR, "megc3": THREE},
    schemes=(CASME_SQ_4,),
    synthetic=SyntheticLayout(
        stream=6,
        root_dir="CASME_sq",
        annotation_file="CAS(ME)^2.xlsx",
        subject_name=lambda number: f"s{folder_number(number)}",
        vocabulary=VOCABULARY,
        sequences=_sequences,
        write_annotations=write_annotations,
        classes=NPS_OTHERS,
        frame_name=lambda folder, n: f"img{n}.jpg",
        subject_ids=tuple(SUBJECT_FOLDERS),
    ),
)
