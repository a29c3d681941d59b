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

Layouts (`out` is the folder passed to `write_dataset`; frames are `size` high, 4:3 wide, square
with face framing):

casme2     out/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...        (RGB JPEG)
           out/CASME2-coding-20140508.xlsx  Sheet1 (+ empty Sheet2, Sheet3): Subject ("01" text),
           Filename, <empty>, OnsetFrame, ApexFrame, OffsetFrame, <empty>, Action Units,
           Estimated Emotion. Filenames repeat across subjects; single AUs are numbers.
samm       out/SAMM/006/006_1_2/006_05562.jpg ...                       (8-bit grey JPEG)
           out/SAMM_Micro_FACS_Codes_v2.xlsx  MICRO_ONLY, 13 note rows, header on row 14:
           Subject ("006" text), Filename, Inducement Code, Onset Frame, Apex Frame, Offset
           Frame, Duration (a number, not the real file's formula), Micro, Action Units,
           Estimated Emotion, Objective Classes, Notes.
smic       out/SMIC/HS/s1/micro/negative/s1_ne_01/reg_image046176.bmp   (RGB BMP); no annotation.
casme3     out/CASME3/part_A/spNO.1/a/1.jpg ...                         (RGB JPEG, from 1)
           out/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx  sheet "label": Subject, Filename,
           Onset, Apex, Offset, AU, Objective class, emotion; two MEs per frame folder.
deception  out/Real-life_Deception_Detection_2016/Clips/Deceptive/trial_lie_001.mp4,
           .../Clips/Truthful/trial_truth_001.mp4                        (H.264 yuv420p, 30 fps)
           out/deception_subjects.csv  header `clip,subject`, clip = file stem, subject p01...
videos     out/data/{negative,positive,surprise}/sub01_EP02_01f.mp4      (H.264 yuv420p, 30 fps)
           out/videos-coding.xlsx  Sheet1: Subject (sub01), Filename (file stem), Action Units,
           Estimated Emotion.

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
    ANNOTATION_FILE,
    ROOT_DIR,
    SyntheticMegc,
    dataset_params,
    ensure_dataset,
    ensure_megc2019,
    frame_width,
    write_dataset,
    write_megc2019,
)
from mer.datasets.synthetic.plan import CLASSES, LAYOUTS

__all__ = [
    "ANNOTATION_FILE",
    "CLASSES",
    "LAYOUTS",
    "ROOT_DIR",
    "SyntheticClip",
    "SyntheticDataset",
    "SyntheticMegc",
    "dataset_params",
    "ensure_dataset",
    "ensure_megc2019",
    "frame_width",
    "landmark_path",
    "write_dataset",
    "write_megc2019",
]
