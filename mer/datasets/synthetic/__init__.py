"""Synthetic micro-expression datasets written in the real datasets' on-disk layouts.

Nobody can download CASME II, SAMM, SMIC, CAS(ME)^3 or the trial-deception videos without a
licence, so the readers, the cache and the demo sweep are exercised on generated data that uses the
very same folders, file names, workbooks and quirks (PROTOCOL.md section 1). The faces are drawn
from 68 iBUG landmarks; each clip is the subject's neutral face in which the regions of its AUs
move by 1-3 px (at 128 px, times `intensity`) between onset and offset, with head drift, blinks,
flicker and sensor noise as class-independent distractors. `framing="scene"` (default) shows the
head in its surroundings, the face about 60 % of the frame height (CASME II RAW); `framing="face"`
fills square frames with the face from the brows to the chin (CASME II Cropped), AU motion and
drift zoomed with it (x1.5).

Layouts: every dataset whose spec has a `synthetic` layout (`registry.with_synthetic_layout()`);
its module under mer/datasets/catalog/ says what the layout writes (`out` is the folder passed to
`write_dataset`; frames are `size` high, 4:3 wide, square with face framing). The MEGC2019
composite's writer (`mer.datasets.catalog.megc2019.write_megc2019`) writes its parts' layouts.

Every frame folder or video has its ground-truth landmarks beside it (`landmark_path`): float32
(n_frames, 68, 2), (x, y) pixels, frames in sorted frame-number order.
"""

from __future__ import annotations

from mer.datasets.synthetic.dataset import (
    SyntheticClip,
    SyntheticDataset,
    landmark_path,
)
from mer.datasets.synthetic.layouts import (
    dataset_params,
    ensure_dataset,
    frame_width,
    write_dataset,
)
from mer.datasets.synthetic.plan import CLASSES

__all__ = [
    "CLASSES",
    "SyntheticClip",
    "SyntheticDataset",
    "dataset_params",
    "ensure_dataset",
    "frame_width",
    "landmark_path",
    "write_dataset",
]
