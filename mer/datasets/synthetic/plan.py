"""What each layout holds: subjects, clip names, classes, emotions, AU strings and frame numbers.

Pure planning, no pixels and no files: `layouts.py` renders and writes what is planned here. The
names, vocabularies and numbering mimic the real datasets (see PROTOCOL.md section 1).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from mer.datasets.synthetic.sequence import Expression, SequencePlan, plan_blinks

LAYOUTS = ("casme2", "samm", "smic", "casme3", "deception", "videos")
CLASSES = ("negative", "positive", "surprise")
DECEPTION_CLASSES = ("deceptive", "truthful")

Choice = tuple[str, str]  # (emotion as written, AU string as written)

_CASME2: dict[str | None, list[Choice]] = {
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
_SAMM: dict[str | None, list[Choice]] = {
    "negative": [("Anger", "4+7"), ("Anger", "4"), ("Contempt", "R14"), ("Disgust", "4+9"),
                 ("Disgust", "L10"), ("Fear", "4+20"), ("Sadness", "15+17")],
    "positive": [("Happiness", "12"), ("Happiness", "6+12"), ("Happiness", "R12"),
                 ("Happiness", "L12")],
    "surprise": [("Surprise", "1+2"), ("Surprise", "1+2+5"), ("Surprise", "R1+R2"),
                 ("Surprise", "L1+L2")],
    None: [("Other", "25"), ("Other", "L7"), ("Other", "18"), ("Other", "7")],
}  # fmt: skip
_CASME3: dict[str | None, list[Choice]] = {
    "negative": [("disgust", "4+9"), ("disgust", "4+10"), ("anger", "4+7"), ("anger", "4"),
                 ("fear", "4+20"), ("sad", "15+17"), ("disgust", "L10")],
    "positive": [("happy", "12"), ("happy", "6+12"), ("happy", "R12")],
    "surprise": [("surprise", "1+2"), ("surprise", "1+2+5"), ("surprise", "L1+L2")],
    None: [("others", "25"), ("others", "18"), ("others", "7")],
}  # fmt: skip
_DECEPTION: dict[str | None, list[Choice]] = {
    "deceptive": [("deceptive", "24"), ("deceptive", "4+24"), ("deceptive", "14+24"),
                  ("deceptive", "17+24")],
    "truthful": [("truthful", ""), ("truthful", "1+2"), ("truthful", "12")],
}  # fmt: skip
VOCABULARY = {"casme2": _CASME2, "samm": _SAMM, "smic": _CASME2, "casme3": _CASME3,
              "deception": _DECEPTION, "videos": _CASME2}  # fmt: skip
HAS_OTHERS = ("casme2", "samm", "casme3")

# Real subject numbering has gaps; the synthetic one follows it, then continues.
SAMM_IDS = (6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 30,
            31, 32, 33, 34, 35, 36, 37)  # fmt: skip
SMIC_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)
SMIC_ABBR = {"negative": "ne", "positive": "po", "surprise": "sur"}


@dataclass
class PlannedClip:
    """One annotated clip (one workbook row); frame fields are 0-based sequence indices."""

    subject_index: int
    subject: str
    clip: str
    label: str | None
    emotion: str
    aus: str
    onset: int
    apex: int
    offset: int
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class PlannedSequence:
    """One frame folder or video: its path under the root, frame numbers and its clips."""

    subject_index: int
    media: str  # relative to the dataset root
    numbers: list[int]  # frame number of every frame (0-based index for videos)
    plan: SequencePlan
    clips: list[PlannedClip]


def natural_key(text: str) -> tuple:
    """Sort `s2` before `s11` and `006_1_2` before `006_1_10`."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def subject_ids(layout: str, n: int) -> list[int]:
    base = {"samm": SAMM_IDS, "smic": SMIC_IDS}.get(layout, ())
    ids = list(base[:n])
    nxt = (base[-1] + 1) if base else 1
    while len(ids) < n:
        ids.append(nxt)
        nxt += 1
    return ids


def subject_name(layout: str, sid: int) -> str:
    """The subject as the media tree (or mapping file) names it."""
    return {
        "casme2": f"sub{sid:02d}",
        "samm": f"{sid:03d}",
        "smic": f"s{sid}",
        "casme3": f"spNO.{sid}",
        "deception": f"p{sid:02d}",
        "videos": f"sub{sid:02d}",
    }[layout]


def slot_labels(
    rng: np.random.Generator, subject_index: int, clips: int, others: int, classes: tuple[str, ...]
) -> list[str | None]:
    """Labels of one subject's clips: `others` unlabelled, the rest round-robin over `classes`.

    The round-robin starts at a subject-dependent class, so the classes stay balanced over
    subjects too; the order within the subject is shuffled.
    """
    labelled = [classes[(subject_index + j) % len(classes)] for j in range(clips - others)]
    labels: list[str | None] = list(labelled)
    labels = [labels[i] for i in rng.permutation(len(labels))]
    for pos in sorted(rng.choice(clips, size=others, replace=False)) if others else []:
        labels.insert(int(pos), None)
    return labels


def expression_timing(rng: np.random.Generator, n: int) -> tuple[int, int, int]:
    """(onset, apex, offset) indices in a clip of n frames; onset < apex <= offset."""
    if n < 3:
        return 0, n - 1, n - 1
    edge = n // 6
    onset = int(rng.integers(0, edge + 1))
    offset = n - 1 - int(rng.integers(0, edge + 1))
    apex = onset + round((offset - onset) * rng.uniform(0.35, 0.6))
    return onset, min(max(apex, onset + 1), offset - 1), offset


def episode_pool(rng: np.random.Generator, size: int) -> list[str]:
    """CASME II style names (EP02_01f): a shared pool, so names repeat across subjects."""
    picks = rng.choice(99 * 99, size=size, replace=False)
    return [f"EP{p // 99 + 1:02d}_{p % 99 + 1:02d}{'f' if rng.random() < 0.5 else ''}"
            for p in picks]  # fmt: skip


def _letters(j: int) -> str:
    """a, b, ..., z, aa, ab, ... (CAS(ME)^3 task folders)."""
    out = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        out = chr(97 + r) + out
    return out


def samm_objective_class(label: str | None, aus: str) -> int:
    """SAMM objective classes I-VII (Davison et al. 2017), approximated from the AU string."""
    if label is None:
        return 7
    if label == "positive":
        return 1
    if label == "surprise":
        return 2
    nums = {int(n) for n in re.findall(r"\d+", aus)}
    if 4 in nums:
        return 3
    if nums & {9, 10}:
        return 4
    if 20 in nums:
        return 5
    if nums & {14, 15, 17}:
        return 6
    return 7


def plan_layout(
    layout: str, subjects: int, clips: int, frames: int, seed: int, others: int
) -> list[PlannedSequence]:
    """Every sequence (folder or video) of the dataset with its clips, in subject order."""
    lid = LAYOUTS.index(layout)
    classes = DECEPTION_CLASSES if layout == "deception" else CLASSES
    pool = episode_pool(np.random.default_rng([seed, lid, 99]), clips + 1)
    counters = dict.fromkeys(DECEPTION_CLASSES, 0)
    out: list[PlannedSequence] = []
    for si, sid in enumerate(subject_ids(layout, subjects)):
        rng = np.random.default_rng([seed, lid, si, 2])
        subject = subject_name(layout, sid)
        labels = slot_labels(rng, si, clips, others, classes)
        if layout == "casme3":  # two micro-expressions per task folder
            for f in range(math.ceil(clips / 2)):
                folder = _letters(f)
                cl = [_make_clip(rng, layout, si, subject, folder, lab, frames, k * frames)
                      for k, lab in enumerate(labels[2 * f : 2 * f + 2])]  # fmt: skip
                numbers = list(range(1, frames * len(cl) + 1))
                out.append(_sequence(rng, si, f"part_A/{subject}/{folder}", numbers, cl,
                                     (seed, lid, si, 7, f)))  # fmt: skip
            continue
        names = _clip_names(layout, rng, si, sid, subject, labels, pool, counters)
        for k, (name, lab) in enumerate(zip(names, labels, strict=True)):
            cl = _make_clip(rng, layout, si, subject, name, lab, frames)
            if layout == "samm":
                cl.extra["inducement"] = int(name.split("_")[1])
            media, numbers = _media(layout, rng, subject, name, lab, frames)
            out.append(_sequence(rng, si, media, numbers, [cl], (seed, lid, si, 7, k)))
    return out


def _clip_names(
    layout: str,
    rng: np.random.Generator,
    si: int,
    sid: int,
    subject: str,
    labels: list[str | None],
    pool: list[str],
    counters: dict[str, int],
) -> list[str]:
    """One subject's clip names in the dataset's own scheme (same order as `labels`)."""
    if layout in ("casme2", "videos"):
        mine = sorted((c for k, c in enumerate(pool) if k != si % len(pool)), key=natural_key)
        return [f"{subject}_{c}" if layout == "videos" else c for c in mine]
    names: list[str] = []
    if layout == "samm":
        nxt = {ind: int(rng.integers(1, 4)) for ind in range(1, 8)}
        for _ in labels:
            ind = int(rng.integers(1, 8))
            names.append(f"{sid:03d}_{ind}_{nxt[ind]}")
            nxt[ind] += 1
        return sorted(names, key=natural_key)
    if layout == "smic":
        per_class = dict.fromkeys(CLASSES, 0)
        for lab in labels:
            per_class[str(lab)] += 1
            names.append(f"{subject}_{SMIC_ABBR[str(lab)]}_{per_class[str(lab)]:02d}")
        return names
    if layout == "deception":  # numbered over the whole dataset, per class
        for lab in labels:
            counters[str(lab)] += 1
            kind = "lie" if lab == "deceptive" else "truth"
            names.append(f"trial_{kind}_{counters[str(lab)]:03d}")
        return names
    raise AssertionError(layout)


def _make_clip(
    rng: np.random.Generator,
    layout: str,
    si: int,
    subject: str,
    name: str,
    label: str | None,
    n: int,
    base: int = 0,
) -> PlannedClip:
    choices = VOCABULARY[layout][label]
    emotion, aus = choices[int(rng.integers(len(choices)))]
    if layout == "smic":  # SMIC-HS knows only the three classes
        emotion = str(label)
    on, ap, off = expression_timing(rng, n)
    return PlannedClip(
        si,
        subject,
        name,
        label,
        emotion,
        aus,
        base + on,
        base + ap,
        base + off,
        {"amplitude": float(rng.uniform(0.8, 1.2))},
    )


def _media(
    layout: str, rng: np.random.Generator, subject: str, name: str, label: str | None, frames: int
) -> tuple[str, list[int]]:
    if layout == "casme2":
        start = int(rng.integers(1, 300))
        return f"{subject}/{name}", list(range(start, start + frames))
    if layout == "samm":
        start = int(rng.integers(100, 9000))
        return f"{subject}/{name}", list(range(start, start + frames))
    if layout == "smic":
        start = int(rng.integers(1000, 500000))
        return f"HS/{subject}/micro/{label}/{name}", list(range(start, start + frames))
    if layout == "deception":
        folder = "Deceptive" if label == "deceptive" else "Truthful"
        return f"Clips/{folder}/{name}.mp4", list(range(frames))
    if layout == "videos":
        return f"{label}/{name}.mp4", list(range(frames))
    raise AssertionError(layout)


def _sequence(
    rng: np.random.Generator,
    si: int,
    media: str,
    numbers: list[int],
    clips: list[PlannedClip],
    render_seed: tuple[int, ...],
) -> PlannedSequence:
    n = len(numbers)
    expressions = [Expression(c.aus, c.onset, c.apex, c.offset, float(c.extra["amplitude"]))
                   for c in clips]  # fmt: skip
    plan = SequencePlan(
        n, expressions, plan_blinks(rng, n), float(rng.uniform(0.1, 0.4)), render_seed
    )
    return PlannedSequence(si, media, numbers, plan, clips)
