"""Write a synthetic dataset in one of the real on-disk layouts (PROTOCOL.md section 1).

A dataset is written into a temporary sibling folder and renamed into place when complete, so
`out` either does not exist or holds a finished dataset with its marker (`.mer-synthetic.json`).
Writing over a folder that holds a synthetic dataset replaces it; writing into a non-empty folder
without the marker is refused (it may be a user's data).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mer.datasets import registry
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
from mer.datasets.synthetic.plan import CLASSES, natural_key, plan_layout
from mer.datasets.synthetic.sequence import Subject, render_sequence
from mer.datasets.synthetic.writers import write_frames, write_landmarks, write_mp4
from mer.errors import DataError

if TYPE_CHECKING:
    from mer.datasets.spec import SyntheticLayout

log = logging.getLogger(__name__)


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
    """Complete parameters of one dataset (what the marker records and hashes).

    `clips` is per subject, `frames` per clip (CAS(ME)^3 puts two clips in one frame folder),
    `size` the frame height (width 4:3). `intensity` scales the AU motion (1.0: 1-3 px at 128 px).
    `others` clips per subject fall outside the three classes (default 1 for the layouts that
    have such clips when clips >= 4, else 0). `mapping=False` leaves out an optional annotation
    file (the deception subject CSV). `framing` "scene" shows the head in its surroundings (the
    face about 60 % of the frame height, like CASME II RAW); "face" fills square frames with the
    face from the brows to the chin (like CASME II Cropped), AU motion and head drift zoomed with
    it. The values are checked by `mer.config.SyntheticConfig`, which `data.synthetic` and
    `mer synth` build: a script passing its own values builds one too.
    """
    spec = registry.synthetic_layout(layout)
    if others is None:
        others = 1 if spec.has_others and clips >= 4 else 0
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
        "mapping": bool(mapping) if spec.annotations_optional else None,
    }
    if framing != "scene":  # recorded only when set, so markers of older datasets still match
        params["framing"] = framing
    return params


def write_dataset(out: str | Path, layout: str, **kw: Any) -> SyntheticDataset:
    """Generate a dataset in `layout` under `out` (layouts: the registry's
    `with_synthetic_layout()`, each described in its dataset's module); `kw`: see
    `dataset_params`."""
    params = dataset_params(layout, **kw)
    return atomic_write(Path(out), lambda tmp: write_layout(tmp, params))


def ensure_dataset(out: str | Path, layout: str, **kw: Any) -> SyntheticDataset:
    """Return the dataset in `out`, generating it first if the folder holds none.

    Raises DataError when `out` holds a synthetic dataset made with other parameters (delete the
    folder or choose another one; nothing is overwritten silently).
    """
    params = dataset_params(layout, **kw)
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
    return write_dataset(out, layout, **kw)


# ------------------------------------------------------------------------------------ writing
def atomic_write(out: Path, build: Callable[[Path], object]) -> SyntheticDataset:
    """Build into a sibling temp folder, then rename it to `out`; the dataset `out` then holds."""
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


def write_layout(base: Path, params: dict) -> SyntheticDataset:
    """Write the dataset of `params` (`dataset_params`) into the folder `base`, marker last."""
    layout = params["layout"]
    spec = registry.synthetic_layout(layout)
    lid = spec.stream
    h, w, seed = params["size"], params["width"], params["seed"]
    seqs = plan_layout(
        layout, params["subjects"], params["clips"], params["frames"], seed, params["others"]
    )
    root = base / spec.root_dir
    faces: dict[int, Subject] = {}
    clips: list[tuple[tuple, SyntheticClip, dict]] = []
    for seq in seqs:
        si = seq.subject_index
        if si not in faces:
            faces[si] = Subject.sample(
                np.random.default_rng([seed, lid, si, 1]), h, w, params.get("framing", "scene")
            )
        frames, lm = render_sequence(faces[si], seq.plan, params["intensity"], grey=spec.grey)
        media = root / seq.media
        _write_media(spec, media, frames, seq.numbers)
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
                label=pc.label,
            )
            extra = dict(pc.extra, label=pc.label, blink=bool(seq.plan.blinks))
            clips.append(((si, natural_key(pc.clip), clip.onset), clip, extra))
    clips.sort(key=lambda t: t[0])
    annotations = None
    if spec.annotation_file and spec.write_annotations and params["mapping"] is not False:
        annotations = base / spec.annotation_file
        spec.write_annotations(annotations, [(c, e) for _, c, e in clips])
    ds = SyntheticDataset(root, annotations, layout, [c for _, c, _ in clips])
    write_marker(base, params, ds)
    return ds


def _write_media(
    spec: SyntheticLayout, media: Path, frames: np.ndarray, numbers: list[int]
) -> None:
    if spec.video:
        write_mp4(media, frames)
        return
    assert spec.frame_name is not None, "a frame-folder layout names its frame files"
    names = [spec.frame_name(media, n) for n in numbers]
    write_frames(media, frames, names, spec.image_format)
