"""What a synthetic dataset writer returns, and the marker that records a finished dataset."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mer.errors import DataError

MARKER = ".mer-synthetic.json"  # written last: its presence means the folder is complete
PARTIAL = ".mer-synthetic.partial"  # written first, removed at the end
GENERATOR_VERSION = 1  # bump when the bytes a given parameter set produces change


def landmark_path(media: Path) -> Path:
    """Ground-truth landmarks beside a frame folder or video: `<name>.landmarks.npy`.

    `sub01/EP02_01f` -> `sub01/EP02_01f.landmarks.npy`; `trial_lie_001.mp4` ->
    `trial_lie_001.mp4.landmarks.npy`. The file holds float32 (n_frames, 68, 2), (x, y) pixels in
    iBUG 68-point order, one row per frame in sorted frame-number order.
    """
    media = Path(media)
    return media.with_name(media.name + ".landmarks.npy")


@dataclass
class SyntheticClip:
    """One annotated clip as written (a workbook row, or a class-folder clip)."""

    subject: str  # as the media tree / mapping names it: sub01, 006, s1, spNO.1, p01, sub01
    clip: str  # EP02_01f, 006_1_2, s1_ne_01, a (CAS(ME)^3 folder), trial_lie_001, sub01_EP02_01f
    media: Path  # frame folder or video file
    emotion: str  # as written (or the class folder name for smic / deception)
    aus: str  # AU string as rendered, e.g. "4+L10"; written where the layout has an AU column
    label3: str | None  # negative / positive / surprise; None outside the three classes
    onset: int  # frame numbers as written (0-based frame indices for the video layouts)
    apex: int
    offset: int
    #: the planned class among the layout's classes (None outside them): label3 for the
    #: 3-class layouts; a 4-class layout's (`others` included), whose emotion word may not be it
    label: str | None = None

    @property
    def landmarks(self) -> Path:
        return landmark_path(self.media)


@dataclass
class SyntheticDataset:
    """Where a generated dataset lives, and every clip in it (sorted)."""

    root: Path  # media root, as a user passes data.root
    annotations: Path | None  # workbook / csv, as a user passes data.annotations
    layout: str
    clips: list[SyntheticClip]

    @property
    def subjects(self) -> list[str]:
        """Subjects in dataset order."""
        return list(dict.fromkeys(c.subject for c in self.clips))


def params_hash(params: dict) -> str:
    text = json.dumps(params, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_marker(out: Path, params: dict, ds: SyntheticDataset) -> None:
    def rel(p: Path | None) -> str | None:
        return None if p is None else Path(p).relative_to(out).as_posix()

    clips = []
    for c in ds.clips:
        row = asdict(c)
        row["media"] = rel(c.media)
        clips.append(row)
    body = {
        "params": params,
        "hash": params_hash(params),
        "layout": ds.layout,
        "root": rel(ds.root),
        "annotations": rel(ds.annotations),
        "clips": clips,
    }
    (out / MARKER).write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")


def read_marker(out: Path) -> tuple[dict, SyntheticDataset]:
    """The parameters and dataset recorded in `out`'s marker (paths made absolute again)."""
    path = out / MARKER
    try:
        body = json.loads(path.read_text())
        clips = [SyntheticClip(**{**c, "media": out / c["media"]}) for c in body["clips"]]
        ds = SyntheticDataset(
            root=out / body["root"],
            annotations=None if body["annotations"] is None else out / body["annotations"],
            layout=body["layout"],
            clips=clips,
        )
        return body["params"], ds
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{path}: unreadable synthetic-dataset marker ({exc}); delete the folder "
            "and generate again"
        ) from exc
