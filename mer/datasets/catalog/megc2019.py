"""MEGC2019 composite: the official `combined_3class_gt.csv` joined to each dataset's own files.

The official list drives the composite: one sample per csv line (`dataset,subject,filename,label`,
no header, 0 negative / 1 positive / 2 surprise). When a dataset's files are given in `sources`
(casme2/samm: `annotations` for onset/apex/offset/AUs, `root` for media; smic: `root`), each line is
joined to that dataset's clip and a line that matches none is an error naming the line; without
them the frames and AUs are NA/[]. Subjects and sample ids use each dataset's own spelling: the
list writes SAMM subjects unpadded (`6`, files `006_1_2`) and SMIC ones padded (`s01`, clip
`s01_ne_01`) while SMIC's folders are `s1/.../s1_ne_01`.

Synthetic composite (`write_megc2019`): the casme2, samm and smic layouts under `out/<part>/` and
`out/combined_3class_gt.csv` with the real list's conventions.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer.datasets.catalog import casme2, samm, smic
from mer.datasets.labels import NPS
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
        raise DataError(f"{where}: subject {subject!r} is not a {dataset} subject number")
    number = int(m.group(1))
    if dataset == "casme2":
        folder = casme2.subject_folder(number)
        return folder, f"casme2/{folder}", clip
    if dataset == "samm":
        folder = samm.subject_folder(number)
        return folder, f"samm/{folder}", clip
    return f"s{number}", smic.subject_id(number), _smic_clip_key(clip)


def _source_records(name: str, src: Source) -> dict[tuple[str, str], Record] | None:
    """The dataset's own clips keyed by (subject folder, clip), or None without its files."""
    if name == "smic":
        if src.root is None:
            return None
        records = smic.read(None, src.root, key="data.sources.smic.root")
        return {(r.subject_raw, _smic_clip_key(r.clip)): r for r in records}
    if src.annotations is None:
        return None
    reader = casme2 if name == "casme2" else samm
    return {(r.subject_raw, r.clip): r for r in reader.read(src.annotations, src.root)}


def read(annotations: Path, sources: Any, *, check_media: bool) -> list[Record]:
    srcs = parse_sources(sources)
    lines = read_csv_lines(annotations)
    if not lines:
        raise DataError(f"{annotations}: the MEGC2019 list is empty")
    used = sorted({cells[0].lower() for _, cells in lines if cells})
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
    joined = {name: _source_records(name, srcs[name]) for name in used if name in srcs}
    out = []
    for line_no, cells in lines:
        where = f"{annotations}, line {line_no}"
        if len(cells) != 4:
            raise DataError(
                f"{where}: expected 4 fields dataset,subject,filename,label, got {len(cells)}"
            )
        dataset, subject, clip, label = cells
        dataset = dataset.lower()
        if dataset not in PARTS:
            raise DataError(f"{where}: dataset {dataset!r} is not one of {', '.join(PARTS)}")
        if label not in ("0", "1", "2"):
            raise DataError(f"{where}: label {label!r}, expected 0, 1 or 2")
        folder, subject_ns, clip_key = _canonical(dataset, subject, clip, where)
        rec = Record(
            dataset=dataset,
            subject_raw=folder,
            subject=subject_ns,
            clip=clip_key,
            emotion=NPS[int(label)],
            where=where,
            extra={"megc_label": int(label)},
        )
        index = joined.get(dataset)
        src = srcs.get(dataset, Source())
        if index is not None:
            own = index.get((folder, clip_key))
            if own is None:
                what = src.annotations if dataset != "smic" else src.root
                raise DataError(
                    f"{where}: {','.join(cells)} matches no {dataset} clip in {what} "
                    f"(looked for subject {folder}, clip {clip_key})"
                )
            rec.subject_raw, rec.clip = own.subject_raw, own.clip
            rec.onset, rec.apex, rec.offset = own.onset, own.apex, own.offset
            rec.aus, rec.aus_raw = list(own.aus), own.aus_raw
            rec.media, rec.kind = own.media, own.kind
            rec.where = f"{where} ({own.where})"
        elif src.root is not None and dataset != "smic":
            rec.media = src.root / folder / clip_key
        out.append(rec)
    return out


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
    write_synthetic=write_megc2019,
)
