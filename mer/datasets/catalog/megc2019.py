"""MEGC2019 composite: the official `combined_3class_gt.csv` joined to each dataset's own files.

The official list drives the composite: one sample per csv line (`dataset,subject,filename,label`,
0 negative / 1 positive / 2 surprise), shipped without a header; the other published form, with a
header row naming the fields (`data,subject,clip,label`, any order), reads the same (`read_list`;
blank lines skipped, line numbers the file's own). The list is also a label source for one
dataset: label scheme `megc2019_official` with `data.label_list` labels CASME II / SAMM / SMIC
clips as the list does and drops the others (`official_labels`: exactly the composite's parts).

When a dataset's files are given in `sources` (casme2/samm: `annotations` for
onset/apex/offset/AUs, `root` for media; smic: `root`), each line is joined to that dataset's clip
and a line that matches none is an invalid row naming the line; without them the frames and AUs
are NA/[]. Subjects and sample ids use each dataset's own spelling: the
list writes SAMM subjects unpadded (`6`, files `006_1_2`) and SMIC ones padded (`s01`, clip
`s01_ne_01`) while SMIC's folders are `s1/.../s1_ne_01`.

Synthetic composite (`write_megc2019`): the casme2, samm and smic layouts under `out/<part>/` and
`out/combined_3class_gt.csv` with the real list's conventions.
"""

from __future__ import annotations

import logging
import re
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mer.datasets.catalog import casme2, samm, smic
from mer.datasets.labels import NPS, LabelScheme
from mer.datasets.problems import InvalidRows, RowCollector, RowError, RowProblem, collected
from mer.datasets.records import Record
from mer.datasets.spec import DatasetSpec, FrameDefaults
from mer.datasets.synthetic.dataset import (
    GENERATOR_VERSION,
    MARKER,
    SyntheticDataset,
    read_marker,
    write_marker,
)
from mer.datasets.synthetic.layouts import atomic_write, dataset_params, write_layout
from mer.datasets.synthetic.writers import write_csv
from mer.datasets.table import read_csv_lines
from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

PARTS = ("casme2", "samm", "smic")
GT = "combined_3class_gt.csv"
_SMIC_CLIP = re.compile(r"s0*(\d+)_(.+)", re.IGNORECASE)


@dataclass
class Source:
    root: Path | None = None
    annotations: Path | None = None


def _path(value: Any) -> Path | None:
    return Path(str(value)).expanduser().absolute() if value not in (None, "") else None


def parse_sources(sources: Any) -> dict[str, Source]:
    """`{casme2: SourceConfig | {"root":..., "annotations":...}}` → Source per part."""
    out: dict[str, Source] = {}
    for name, src in (sources or {}).items():  # names checked by registry.check_source_keys
        if src is None:
            continue
        if isinstance(src, dict):
            unknown = set(src) - {"root", "annotations"}
            if unknown:
                raise ConfigError(
                    f"data.sources.{name}.{sorted(unknown)[0]}: unknown key "
                    "(expected root, annotations)"
                )
            root, ann = src.get("root"), src.get("annotations")
        else:
            root, ann = getattr(src, "root", None), getattr(src, "annotations", None)
        if name == "smic" and _path(ann) is not None:
            raise ConfigError(
                f"data.sources.smic.annotations: SMIC takes its classes from folders and has no "
                f"annotation file (got {ann}); leave it empty and set data.sources.smic.root"
            )
        out[name] = Source(root=_path(root), annotations=_path(ann))
    return out


def _check_paths(name: str, src: Source, *, check_media: bool) -> None:
    """A part's files exist, with errors naming `data.sources.<part>.*` (not `data.root` or a
    bare file name: the part readers do not know they run inside the composite)."""
    key = f"data.sources.{name}"
    if src.annotations is not None and not src.annotations.is_file():
        raise DataError(f"{key}.annotations: {name} annotation file {src.annotations} not found")
    if check_media and name != "smic" and src.root is not None and not src.root.is_dir():
        raise DataError(f"{key}.root: {name} media root {src.root} is not a folder")


def _plannable(name: str, src: Source) -> bool:
    """Whether a dry run can join a part's own files; if not, it plans from the MEGC list alone
    (which gives subject, clip and class) and says so: fold plans need no onsets or media."""
    need = src.root if name == "smic" else src.annotations
    if need is None:
        return True
    here = need.is_dir() if name == "smic" else need.is_file()
    if not here:
        key = "root" if name == "smic" else "annotations"
        log.warning(
            "data.sources.%s.%s: %s is not on this machine; planning %s from the MEGC2019 list "
            "alone (`mer prepare` needs it)",
            name, key, need, name,
        )  # fmt: skip
    return here


def _smic_clip_key(clip: str) -> str:
    """`s01_ne_01` and `s1_ne_01` → `s1_ne_01` (the folder spelling)."""
    m = _SMIC_CLIP.fullmatch(clip)
    return f"s{int(m.group(1))}_{m.group(2)}" if m else clip


def _canonical(dataset: str, subject: str, clip: str, where: str) -> tuple[str, str, str]:
    """A list line's (subject folder, namespaced subject, clip) in each dataset's own spelling."""
    m = re.fullmatch(r"(?:sub|s)?0*(\d+)", subject, flags=re.IGNORECASE)
    if m is None:
        raise RowError(where, f"subject {subject!r} is not a {dataset} subject number")
    number = int(m.group(1))
    if dataset == "casme2":
        folder = casme2.subject_folder(number)
        return folder, f"casme2/{folder}", clip
    if dataset == "samm":
        folder = samm.subject_folder(number)
        return folder, f"samm/{folder}", clip
    return f"s{number}", smic.subject_id(number), _smic_clip_key(clip)


def _source_records(
    name: str, src: Source
) -> tuple[dict[tuple[str, str], Record] | None, list[RowProblem]]:
    """The dataset's own clips keyed by (subject folder, clip), or None without its files; and
    its sheet's invalid rows."""
    if name == "smic":
        if src.root is None:
            return None, []
        records = smic.read(None, src.root, key="data.sources.smic.root")
        return {(r.subject_raw, _smic_clip_key(r.clip)): r for r in records}, []
    if src.annotations is None:
        return None, []
    reader = casme2 if name == "casme2" else samm
    records, problems = collected(reader.read, src.annotations, src.root)
    return {(r.subject_raw, r.clip): r for r in records}, problems


#: Header names the list's published forms use, per field (`data,subject,clip,label`, ...).
LIST_HEADER: dict[str, tuple[str, ...]] = {
    "dataset": ("dataset", "data", "database"),
    "subject": ("subject", "sub", "subjectid", "subject_id"),
    "filename": ("filename", "clip", "file", "video", "sample", "name"),
    "label": ("label", "class", "emotion", "gt"),
}
FIELDS = tuple(LIST_HEADER)


@dataclass(frozen=True)
class ListLine:
    """One clip line of the MEGC2019 list: its fields by name, and where it is (the file's own
    line number, blank lines and a header counted)."""

    line: int
    where: str
    fields: dict[str, str]
    cells: tuple[str, ...]


def _header_order(cells: list[str]) -> list[str] | None:
    """The field of each column when `cells` is a header row (every field named once), else
    None."""
    keys = [re.sub(r"[\s_\-]+", "", c).lower() for c in cells]
    names = {re.sub(r"[\s_\-]+", "", a).lower(): f for f, aliases in LIST_HEADER.items()
             for a in aliases}  # fmt: skip
    order = [names.get(k) for k in keys]
    if None in order or sorted(order) != sorted(FIELDS):  # type: ignore[type-var]
        return None
    return order  # type: ignore[return-value]


def read_list(path: Path, problems: RowCollector | None = None) -> list[ListLine]:
    """The MEGC2019 list in either published form: without a header (as shipped: `dataset,
    subject,filename,label`) or with a header row naming the fields (`data,subject,clip,label`,
    in any order). Blank lines are skipped; line numbers stay the file's own. A line with the
    wrong number of fields is a row problem (collected in `problems`, or raised)."""
    lines = read_csv_lines(path)
    if not lines:
        raise DataError(f"{path}: the MEGC2019 list is empty")
    order = list(FIELDS)
    header = _header_order(lines[0][1])
    if header is not None:
        order, lines = header, lines[1:]
    out = []
    for line_no, cells in lines:
        where = f"{path}, line {line_no}"
        ctx = problems.row(where, file=path, row=line_no) if problems else nullcontext()
        with ctx:
            if len(cells) != len(order):
                raise RowError(where, f"expected 4 fields {','.join(order)}, got {len(cells)}")
            out.append(ListLine(line_no, where, dict(zip(order, cells, strict=True)), tuple(cells)))
    return out


def _line_record(ln: ListLine) -> Record:
    """A list line → its Record (subject, clip and class from the list alone); RowError for a
    field that is not what MEGC2019 writes."""
    dataset, subject = ln.fields["dataset"].lower(), ln.fields["subject"]
    clip, label = ln.fields["filename"], ln.fields["label"]
    if dataset not in PARTS:
        raise RowError(ln.where, f"dataset {dataset!r} is not one of {', '.join(PARTS)}")
    if label not in ("0", "1", "2"):
        raise RowError(ln.where, f"label {label!r}", "0, 1 or 2")
    folder, subject_ns, clip_key = _canonical(dataset, subject, clip, ln.where)
    return Record(
        dataset=dataset,
        subject_raw=folder,
        subject=subject_ns,
        clip=clip_key,
        emotion=NPS[int(label)],
        where=ln.where,
        extra={"megc_label": int(label)},
        origin={"file": ln.where.rsplit(", line ", 1)[0], "sheet": None, "row": ln.line},
    )


def read(annotations: Path, sources: Any, *, check_media: bool) -> list[Record]:
    srcs = parse_sources(sources)
    problems = RowCollector()
    lines = read_list(annotations, problems)
    used = sorted({ln.fields["dataset"].lower() for ln in lines})
    if check_media:
        for name in used:
            if name in PARTS and (name not in srcs or srcs[name].root is None):
                raise ConfigError(
                    f"data.sources.{name}.root: megc2019 needs each part's media root to read "
                    "frames (and casme2/samm their annotations for onset/offset); got none"
                )
    unused = sorted(set(srcs) - set(used))
    if unused:
        log.warning(
            "data.sources: %s lists no clip of %s; those sources are not read",
            annotations, ", ".join(unused),
        )  # fmt: skip
    if not check_media:  # a plan (dry run): parts whose files are not on this machine are skipped
        srcs = {n: src for n, src in srcs.items() if n not in used or _plannable(n, src)}
    for name in used:
        if name in srcs:
            _check_paths(name, srcs[name], check_media=check_media)
    joined: dict[str, dict[tuple[str, str], Record] | None] = {}
    invalid: dict[str, dict[tuple[str, str], str]] = {}  # part → its invalid rows' clips
    for name in used:
        if name in srcs:
            joined[name], part_problems = _source_records(name, srcs[name])
            problems.extend(part_problems)
            invalid[name] = {_problem_key(p): p.where for p in part_problems if p.sample_id}
    out = []
    for ln in lines:
        with problems.row(ln.where, file=annotations, row=ln.line) as ctx:
            rec = _line_record(ln)
            ctx.sample_id = rec.sample_id
            _join(rec, ln, joined.get(rec.dataset), srcs.get(rec.dataset, Source()),
                  invalid.get(rec.dataset, {}))  # fmt: skip
            out.append(rec)
    return problems.done(out)


def _problem_key(p: Any) -> tuple[str, str]:
    """(subject folder, clip) of a part's invalid row, from its sample id."""
    _, folder, clip = str(p.sample_id).split("/", 2)
    return folder, clip


def _join(
    rec: Record,
    ln: ListLine,
    index: dict[tuple[str, str], Record] | None,
    src: Source,
    invalid: dict[tuple[str, str], str],
) -> None:
    """Fill a list line's record from its dataset's own clip (frames, AUs, media)."""
    folder, clip_key = rec.subject_raw, rec.clip
    if index is not None:
        own = index.get((folder, clip_key))
        if own is None:
            if (folder, clip_key) in invalid:
                raise RowError(
                    ln.where,
                    f"{','.join(ln.cells)} is the clip of an invalid {rec.dataset} row",
                    f"a valid row ({invalid[(folder, clip_key)]}, listed above)",
                    sep="; ",
                )
            what = src.annotations if rec.dataset != "smic" else src.root
            raise RowError(
                ln.where,
                f"{','.join(ln.cells)} matches no {rec.dataset} clip in {what} "
                f"(looked for subject {folder}, clip {clip_key})",
            )
        rec.subject_raw, rec.clip = own.subject_raw, own.clip
        rec.onset, rec.apex, rec.offset = own.onset, own.apex, own.offset
        rec.aus, rec.aus_raw = list(own.aus), own.aus_raw
        rec.media, rec.kind = own.media, own.kind
        rec.where = f"{ln.where} ({own.where})"
    elif src.root is not None and rec.dataset != "smic":
        rec.media = src.root / folder / clip_key


# --------------------------------------------------------------- the list as a label source
def list_key(dataset: str, subject_raw: str, clip: str) -> tuple[str, str, str]:
    """How a clip of casme2/samm/smic is found in the list: (dataset, subject folder, clip) in
    the dataset's own spelling (SMIC clips as `s1_ne_01`)."""
    return dataset, subject_raw, _smic_clip_key(clip) if dataset == "smic" else clip


def official_labels(samples: pd.DataFrame, path: Path) -> list[int | None]:
    """`data.labels: megc2019_official`: each clip's label as the official MEGC2019 list gives
    it (0 negative, 1 positive, 2 surprise), None for a clip the list leaves out. The list lines
    of the table's datasets must each match a clip (else DataError naming the line): the clips
    are then exactly the composite's part (CASME II 145, SAMM 133, SMIC 164)."""
    problems = RowCollector()
    lines = read_list(path, problems)
    datasets = set(samples["dataset"].astype(str))
    wanted: dict[tuple[str, str, str], tuple[int, str]] = {}
    for ln in lines:
        with problems.row(ln.where, file=path, row=ln.line):
            if ln.fields["dataset"].lower() not in datasets:
                continue
            rec = _line_record(ln)
            wanted[list_key(rec.dataset, rec.subject_raw, rec.clip)] = (
                int(rec.extra["megc_label"]), ln.where
            )  # fmt: skip
    if problems.problems:
        raise InvalidRows(problems.problems)
    keys = [
        list_key(d, sid.split("/")[1], c)
        for d, sid, c in zip(samples["dataset"], samples["sample_id"], samples["clip"], strict=True)
    ]
    missing = sorted(set(wanted) - set(keys), key=lambda k: wanted[k][1])
    if missing:
        shown = "; ".join(f"{wanted[k][1]}: {'/'.join(k)}" for k in missing[:5])
        raise DataError(
            f"data.label_list: {len(missing)} clip(s) of the MEGC2019 list are not in the "
            f"samples ({shown}{' ...' if len(missing) > 5 else ''}); the list and the dataset's "
            "annotations must describe the same clips"
        )
    return [wanted[k][0] if k in wanted else None for k in keys]


# ----------------------------------------------------------------------- synthetic composite
@dataclass
class SyntheticMegc:
    """The three MEGC2019 parts under one folder, and the composite ground-truth CSV."""

    root: Path
    gt: Path  # combined_3class_gt.csv
    parts: dict[str, SyntheticDataset]  # casme2, samm, smic


def megc_params(**kw: Any) -> dict:
    parts = {name: dataset_params(name, **kw) for name in PARTS}
    return {"generator": GENERATOR_VERSION, "layout": "megc2019", "parts": parts}


def write_megc2019(out: str | Path, **kw: Any) -> SyntheticMegc:
    """casme2, samm and smic layouts under out/<name>/ plus out/combined_3class_gt.csv; `kw`:
    the generator's parameters (mer.datasets.synthetic.dataset_params) but `mapping`.

    The CSV copies the real file's conventions: no header, CRLF line ends, rows
    `dataset,subject,filename,label` (0 negative, 1 positive, 2 surprise) in the order casme2,
    smic, samm, clips outside the three classes left out; CASME II subjects as `sub01`, SAMM
    subjects without zero padding (`6` for folder `006`), SMIC subjects and clip names zero
    padded (`s01`, `s01_ne_01` for folders `s1/.../s1_ne_01`), exactly the mismatch real users
    meet.
    """
    params = megc_params(**kw)
    out = Path(out)
    atomic_write(out, lambda tmp: _write_megc(tmp, params))
    return _read_megc(out)


def ensure_megc2019(out: str | Path, **kw: Any) -> SyntheticMegc:
    """Like `mer.datasets.synthetic.ensure_dataset` for the MEGC2019 composite."""
    params = megc_params(**kw)
    out = Path(out)
    if (out / MARKER).is_file():
        stored, _ = read_marker(out)
        if stored != params:
            raise DataError(
                f"{out} holds a synthetic MEGC2019 composite generated with other "
                "parameters; delete the folder or choose another one"
            )
        return _read_megc(out)
    return write_megc2019(out, **kw)


def _write_megc(base: Path, params: dict) -> SyntheticDataset:
    rows_by_part: dict[str, list[list[str | int]]] = {}
    for name in PARTS:
        (base / name).mkdir(parents=True)
        part = write_layout(base / name, params["parts"][name])
        rows = []
        for c in part.clips:
            if c.label3 is None:
                continue
            subject, clip = c.subject, c.clip
            if name == "samm":
                subject = str(int(subject))
            elif name == "smic":
                subject = f"s{int(subject[1:]):02d}"
                clip = re.sub(r"^s\d+_", subject + "_", clip)
            rows.append([name, subject, clip, NPS.index(c.label3)])
        rows_by_part[name] = rows
    ordered = rows_by_part["casme2"] + rows_by_part["smic"] + rows_by_part["samm"]
    write_csv(base / GT, ordered, newline="\r\n")
    ds = SyntheticDataset(base, base / GT, "megc2019", [])
    write_marker(base, params, ds)
    return ds


def _read_megc(out: Path) -> SyntheticMegc:
    parts = {name: read_marker(out / name)[1] for name in PARTS}
    return SyntheticMegc(out, out / GT, parts)


MEGC2019_OFFICIAL = LabelScheme(
    "megc2019_official",
    NPS,
    use_megc_label=True,
    source=official_labels,
    datasets=PARTS,
    doc="MEGC2019 3 classes as the official list (data.label_list) labels CASME II / SAMM / "
    "SMIC clips: exactly the composite's parts (145 / 133 / 164)",
)

SPEC = DatasetSpec(
    name="megc2019",
    title="MEGC2019 composite",
    order=50,
    read=read,
    # the official list: no header, these fields in this order
    columns={
        "dataset": ("dataset",),
        "subject": ("subject",),
        "filename": ("filename",),
        "label": ("label",),
    },  # fmt: skip
    label_scheme="megc3",
    frames=FrameDefaults(count=30, select="motion_topk"),
    reads_root=False,
    parts=PARTS,
    split="megc2019",
    labels={"megc2019_official": {c: c for c in NPS}},  # the composite: its own megc_label
    schemes=(MEGC2019_OFFICIAL,),
    write_synthetic=write_megc2019,
)
