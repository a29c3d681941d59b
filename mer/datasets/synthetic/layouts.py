"""Write a synthetic dataset in one of the real on-disk layouts (PROTOCOL.md section 1).

A dataset is written into a temporary sibling folder and renamed into place when complete, so
`out` either does not exist or holds a finished dataset with its marker (`.mer-synthetic.json`).
Writing over a folder that holds a synthetic dataset replaces it; writing into a non-empty folder
without the marker is refused (it may be a user's data).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer.datasets.synthetic.dataset import (
    GENERATOR_VERSION,
    MARKER,
    PARTIAL,
    SyntheticClip,
    SyntheticDataset,
    landmark_path,
    read_marker,
    write_marker,
)
from mer.datasets.synthetic.plan import (
    CLASSES,
    HAS_OTHERS,
    LAYOUTS,
    PlannedSequence,
    natural_key,
    plan_layout,
    samm_objective_class,
)
from mer.datasets.synthetic.sequence import FRAMINGS, Subject, render_sequence
from mer.datasets.synthetic.writers import (
    Sheet,
    write_csv,
    write_frames,
    write_landmarks,
    write_mp4,
    write_xlsx,
)
from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ROOT_DIR = {
    "casme2": "CASME2_RAW_selected",
    "samm": "SAMM",
    "smic": "SMIC",
    "casme3": "CASME3",
    "deception": "Real-life_Deception_Detection_2016",
    "videos": "data",
}
ANNOTATION_FILE = {
    "casme2": "CASME2-coding-20140508.xlsx",
    "samm": "SAMM_Micro_FACS_Codes_v2.xlsx",
    "smic": None,
    "casme3": "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
    "deception": "deception_subjects.csv",
    "videos": "videos-coding.xlsx",
}
VIDEO_LAYOUTS = ("deception", "videos")
MEGC_PARTS = ("casme2", "samm", "smic")
MEGC_GT = "combined_3class_gt.csv"


def frame_width(size: int, framing: str = "scene") -> int:
    """Frames are `size` high and 4:3 wide (like CASME II / SMIC), rounded to an even width;
    `face` framing (like CASME II "Cropped") gives square frames filled by the face."""
    return int(size) if framing == "face" else 2 * round(size * 2 / 3)


def dataset_params(
    layout: str,
    *,
    subjects: int = 3,
    clips: int = 4,
    frames: int = 24,
    size: int = 128,
    seed: int = 0,
    intensity: float = 1.0,
    others: int | None = None,
    mapping: bool = True,
    framing: str = "scene",
) -> dict:
    """Validated, complete parameters of one dataset (what the marker records and hashes).

    The argument checks of the writers, which `mer synth` and scripts call with plain values;
    `data.synthetic` of a sweep is range-checked by the config when it loads.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"synthetic layout {layout!r}: expected one of {', '.join(LAYOUTS)}")

    def need(ok: bool, key: str, value: object, what: str) -> None:
        if not ok:
            raise ConfigError(f"synthetic {key}={value!r}: expected {what}")

    for key, value, lo in (
        ("subjects", subjects, 1),
        ("clips", clips, 1),
        ("frames", frames, 2),
        ("size", size, 32),
        ("seed", seed, 0),
    ):
        need(
            isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= lo,
            key,
            value,
            f"an integer >= {lo}",
        )
    need(clips <= 999, "clips", clips, "at most 999 clips per subject")
    need(
        isinstance(intensity, (int, float)) and float(intensity) >= 0,
        "intensity",
        intensity,
        "a number >= 0",
    )
    need(framing in FRAMINGS, "framing", framing, f"one of {', '.join(FRAMINGS)}")
    if layout in VIDEO_LAYOUTS:
        need(size % 2 == 0, "size", size, "an even frame height for the H.264 video layouts")
    if others is None:
        others = 1 if layout in HAS_OTHERS and clips >= 4 else 0
    need(
        isinstance(others, int) and 0 <= others < clips,
        "others",
        others,
        f"an integer in 0..{clips - 1} (clips outside the three classes per subject)",
    )
    need(
        others == 0 or layout in HAS_OTHERS,
        "others",
        others,
        f"0 for layout {layout} (its classes come from folders)",
    )
    params = {
        "generator": GENERATOR_VERSION,
        "layout": layout,
        "subjects": int(subjects),
        "clips": int(clips),
        "frames": int(frames),
        "size": int(size),
        "width": frame_width(int(size), framing),
        "seed": int(seed),
        "intensity": float(intensity),
        "others": int(others),
        "mapping": bool(mapping) if layout == "deception" else None,
    }
    if framing != "scene":  # recorded only when set, so markers of older datasets still match
        params["framing"] = framing
    return params


def write_dataset(
    out: str | Path,
    layout: str,
    *,
    subjects: int = 3,
    clips: int = 4,
    frames: int = 24,
    size: int = 128,
    seed: int = 0,
    intensity: float = 1.0,
    others: int | None = None,
    mapping: bool = True,
    framing: str = "scene",
) -> SyntheticDataset:
    """Generate a dataset in `layout` under `out` (see the package docstring for the layouts).

    `clips` is per subject, `frames` per clip (CAS(ME)^3 puts two clips in one frame folder),
    `size` the frame height (width 4:3). `intensity` scales the AU motion (1.0: 1-3 px at 128 px).
    `others` clips per subject fall outside the three classes (default 1 for casme2 / samm /
    casme3 when clips >= 4, else 0). `mapping=False` leaves out the deception subject CSV.
    `framing` "scene" shows the head in its surroundings (the face about 60 % of the frame
    height, like CASME II RAW); "face" fills square frames with the face from the brows to the
    chin (like CASME II Cropped), AU motion and head drift zoomed with it.
    """
    params = dataset_params(
        layout,
        subjects=subjects,
        clips=clips,
        frames=frames,
        size=size,
        seed=seed,
        intensity=intensity,
        others=others,
        mapping=mapping,
        framing=framing,
    )
    return _atomic_write(Path(out), lambda tmp: _write_layout(tmp, params))


def ensure_dataset(out: str | Path, layout: str, **kw: object) -> SyntheticDataset:
    """Return the dataset in `out`, generating it first if the folder holds none.

    Raises DataError when `out` holds a synthetic dataset made with other parameters (delete the
    folder or choose another one; nothing is overwritten silently).
    """
    params = dataset_params(layout, **kw)  # type: ignore[arg-type]
    out = Path(out)
    if (out / MARKER).is_file():
        stored, ds = read_marker(out)
        if stored == params:
            return ds
        diff = ", ".join(
            f"{k}: {stored.get(k)!r} there, {params[k]!r} asked"
            for k in sorted(params)
            if stored.get(k) != params[k]
        )
        raise DataError(
            f"{out} holds a synthetic dataset generated with other parameters "
            f"({diff}); delete the folder or choose another one"
        )
    return write_dataset(out, layout, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ writing
def _atomic_write(out: Path, build) -> SyntheticDataset:
    """Build into a sibling temp folder, then rename it to `out`."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not ((out / MARKER).exists() or (out / PARTIAL).exists()):
            raise DataError(
                f"{out}: folder is not empty and holds no synthetic dataset "
                f"(no {MARKER}); choose an empty or new folder"
            )
        log.info("replacing the synthetic dataset in %s", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.writing-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        (tmp / PARTIAL).write_text("incomplete synthetic dataset\n")
        build(tmp)
        (tmp / PARTIAL).unlink()
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return read_marker(out)[1]


def _write_layout(base: Path, params: dict) -> SyntheticDataset:
    layout = params["layout"]
    lid = LAYOUTS.index(layout)
    h, w, seed = params["size"], params["width"], params["seed"]
    seqs = plan_layout(
        layout, params["subjects"], params["clips"], params["frames"], seed, params["others"]
    )
    root = base / ROOT_DIR[layout]
    faces: dict[int, Subject] = {}
    clips: list[tuple[tuple, SyntheticClip, dict]] = []
    for seq in seqs:
        si = seq.subject_index
        if si not in faces:
            faces[si] = Subject.sample(
                np.random.default_rng([seed, lid, si, 1]), h, w, params.get("framing", "scene")
            )
        frames, lm = render_sequence(
            faces[si], seq.plan, params["intensity"], grey=layout == "samm"
        )
        media = root / seq.media
        _write_media(layout, media, frames, seq)
        write_landmarks(landmark_path(media), lm)
        for pc in seq.clips:
            clip = SyntheticClip(
                subject=pc.subject,
                clip=pc.clip,
                media=media,
                emotion=pc.emotion,
                aus=pc.aus,
                label3=pc.label if pc.label in CLASSES else None,
                onset=seq.numbers[pc.onset],
                apex=seq.numbers[pc.apex],
                offset=seq.numbers[pc.offset],
            )
            extra = dict(pc.extra, label=pc.label, blink=bool(seq.plan.blinks))
            clips.append(((si, natural_key(pc.clip), clip.onset), clip, extra))
    clips.sort(key=lambda t: t[0])
    ann_name = ANNOTATION_FILE[layout]
    annotations = None
    if ann_name and not (layout == "deception" and not params["mapping"]):
        annotations = base / ann_name
        _write_annotations(layout, annotations, [(c, e) for _, c, e in clips])
    ds = SyntheticDataset(root, annotations, layout, [c for _, c, _ in clips])
    write_marker(base, params, ds)
    return ds


def _write_media(layout: str, media: Path, frames: np.ndarray, seq: PlannedSequence) -> None:
    if layout in VIDEO_LAYOUTS:
        write_mp4(media, frames)
        return
    pattern, fmt = {
        "casme2": ("img{n}.jpg", "JPEG"),
        "samm": (media.parent.name + "_{n:05d}.jpg", "JPEG"),
        "smic": ("reg_image{n:06d}.bmp", "BMP"),
        "casme3": ("{n}.jpg", "JPEG"),
    }[layout]
    write_frames(media, frames, [pattern.format(n=n) for n in seq.numbers], fmt)


def _au_cell(aus: str) -> str | int:
    """Single numeric AUs are numbers in the real workbooks, everything else text."""
    return int(aus) if aus.isdigit() else aus


_SAMM_NOTES: list[list[str | None]] = [
    ["SAMM Dataset - Master FACS Codes (synthetic)", None, None, None,
     "(Note to the users: generated by mer for testing; no real person is shown.)"],
    [],
    ["Synthetic copy of the v2 sheet layout with Emotional and Objective Classes.", None, None,
     None, None, None, None, None, "mer synthetic"],
    [None, None, None, None, "(Objective classes follow Davison, Merghani & Yap, 2017.)"],
    [],
    ["Symbol Key:"],
    ['"/" = or'],
    ["\"?\" = some AU's continue for a while and have unclear offset"],
    [],
    ["AU Help:"],
    ['"L2 or R2" = Unilateral AU 2 on left side of face / right side of face'],
    ['"A2" = Asymmetric AU 2. Occurs on both sides of face but stronger on one side'],
    [],
]  # fmt: skip


def _write_annotations(layout: str, path: Path, clips: list[tuple[SyntheticClip, dict]]) -> None:
    if layout == "casme2":
        rows = [
            [
                "Subject",
                "Filename",
                None,
                "OnsetFrame",
                "ApexFrame",
                "OffsetFrame",
                None,
                "Action Units",
                "Estimated Emotion",
            ]
        ]
        rows += [
            [
                c.subject.removeprefix("sub"),
                c.clip,
                None,
                c.onset,
                c.apex,
                c.offset,
                None,
                _au_cell(c.aus),
                c.emotion,
            ]
            for c, _ in clips
        ]
        write_xlsx(
            path, [Sheet("Sheet1", rows, text_columns=(0,)), Sheet("Sheet2"), Sheet("Sheet3")]
        )
    elif layout == "samm":
        rows = [list(r) for r in _SAMM_NOTES]
        rows.append(
            [
                "Subject",
                "Filename",
                "Inducement Code",
                "Onset Frame",
                "Apex Frame",
                "Offset Frame",
                "Duration",
                "Micro",
                "Action Units",
                "Estimated Emotion",
                "Objective Classes",
                "Notes",
            ]
        )
        for c, e in clips:
            rows.append(
                [
                    c.subject,
                    c.clip,
                    e["inducement"],
                    c.onset,
                    c.apex,
                    c.offset,
                    c.offset - c.onset + 1,
                    "Micro - 1/2",
                    _au_cell(c.aus),
                    c.emotion,
                    samm_objective_class(e["label"], c.aus),
                    "While blinking" if e["blink"] else None,
                ]
            )
        write_xlsx(path, [Sheet("MICRO_ONLY", rows, text_columns=(0,))])
    elif layout == "casme3":
        rows = [
            ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
        ]
        rows += [
            [
                c.subject,
                c.clip,
                c.onset,
                c.apex,
                c.offset,
                _au_cell(c.aus),
                samm_objective_class(e["label"], c.aus),
                c.emotion,
            ]
            for c, e in clips
        ]
        write_xlsx(path, [Sheet("label", rows)])
    elif layout == "deception":
        rows = sorted(([c.clip, c.subject] for c, _ in clips), key=lambda r: natural_key(r[0]))
        write_csv(path, rows, header=("clip", "subject"))
    elif layout == "videos":
        rows = [["Subject", "Filename", "Action Units", "Estimated Emotion"]]
        rows += [[c.subject, c.clip, _au_cell(c.aus), c.emotion] for c, _ in clips]
        write_xlsx(path, [Sheet("Sheet1", rows)])
    else:  # pragma: no cover - smic has no annotation file
        raise AssertionError(layout)


# --------------------------------------------------------------------------------- MEGC 2019
@dataclass
class SyntheticMegc:
    """The three MEGC2019 parts under one folder, and the composite ground-truth CSV."""

    root: Path
    gt: Path  # combined_3class_gt.csv
    parts: dict[str, SyntheticDataset]  # casme2, samm, smic


def write_megc2019(
    out: str | Path,
    *,
    subjects: int = 3,
    clips: int = 4,
    frames: int = 24,
    size: int = 128,
    seed: int = 0,
    intensity: float = 1.0,
    others: int | None = None,
    framing: str = "scene",
) -> SyntheticMegc:
    """casme2, samm and smic layouts under out/<name>/ plus out/combined_3class_gt.csv.

    The CSV copies the real file's conventions: no header, CRLF line ends, rows
    `dataset,subject,filename,label` (0 negative, 1 positive, 2 surprise) in the order casme2,
    smic, samm, clips outside the three classes left out; CASME II subjects as `sub01`, SAMM
    subjects without zero padding (`6` for folder `006`), SMIC subjects and clip names zero
    padded (`s01`, `s01_ne_01` for folders `s1/.../s1_ne_01`), exactly the mismatch real users
    meet.
    """
    params = megc_params(
        subjects=subjects,
        clips=clips,
        frames=frames,
        size=size,
        seed=seed,
        intensity=intensity,
        others=others,
        framing=framing,
    )
    out = Path(out)
    _atomic_write(out, lambda tmp: _write_megc(tmp, params))
    return _read_megc(out)


def ensure_megc2019(out: str | Path, **kw: object) -> SyntheticMegc:
    """Like `ensure_dataset` for the MEGC2019 composite."""
    params = megc_params(**kw)  # type: ignore[arg-type]
    out = Path(out)
    if (out / MARKER).is_file():
        stored, _ = read_marker(out)
        if stored != params:
            raise DataError(
                f"{out} holds a synthetic MEGC2019 composite generated with other "
                "parameters; delete the folder or choose another one"
            )
        return _read_megc(out)
    return write_megc2019(out, **kw)  # type: ignore[arg-type]


def megc_params(**kw: object) -> dict:
    parts = {name: dataset_params(name, **kw) for name in MEGC_PARTS}  # type: ignore[arg-type]
    return {"generator": GENERATOR_VERSION, "layout": "megc2019", "parts": parts}


def _write_megc(base: Path, params: dict) -> SyntheticDataset:
    rows_by_part: dict[str, list[list[str | int]]] = {}
    for name in MEGC_PARTS:
        part = _write_layout_into(base / name, params["parts"][name])
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
            rows.append([name, subject, clip, CLASSES.index(c.label3)])
        rows_by_part[name] = rows
    ordered = rows_by_part["casme2"] + rows_by_part["smic"] + rows_by_part["samm"]
    write_csv(base / MEGC_GT, ordered, newline="\r\n")
    ds = SyntheticDataset(base, base / MEGC_GT, "megc2019", [])
    write_marker(base, params, ds)
    return ds


def _write_layout_into(folder: Path, params: dict) -> SyntheticDataset:
    folder.mkdir(parents=True)
    ds = _write_layout(folder, params)
    return ds


def _read_megc(out: Path) -> SyntheticMegc:
    parts = {name: read_marker(out / name)[1] for name in MEGC_PARTS}
    return SyntheticMegc(out, out / MEGC_GT, parts)
