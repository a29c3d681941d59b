"""What a synthetic dataset holds: subjects, clip labels, emotions, AU strings and frame numbers.

Pure planning, no pixels and no files: `layouts.py` renders and writes what is planned here. The
generic steps are here (balanced labels per subject, expression timing, CASME II style episode
names); what differs between datasets (names, vocabulary, numbering, which clips share a media)
is each layout's `SyntheticLayout` (mer.datasets.spec), in its dataset's module.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mer.datasets import registry
from mer.datasets.spec import NPS
from mer.datasets.synthetic.sequence import Expression, SequencePlan, plan_blinks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mer.datasets.spec import PlannedMedia, SyntheticLayout

CLASSES = NPS  # the classes of the synthetic clips' `label3`


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


def samm_objective_class(label: str | None, aus: str) -> int:
    """SAMM objective classes I-VII (Davison et al. 2017), approximated from the AU string (the
    SAMM and CAS(ME)^3 sheets both have the column)."""
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


@dataclass
class SubjectPlan:
    """What a layout's `sequences` hook plans one subject from (see SyntheticLayout)."""

    layout: SyntheticLayout
    rng: np.random.Generator  # the subject's generator: draw from it in a fixed order
    index: int  # 0-based position of the subject in the dataset
    number: int  # subject number (the real numbering, gaps included)
    name: str  # as the media tree names it (`layout.subject_name(number)`)
    labels: list[str | None]  # one per clip, shuffled; None: outside the classes
    frames: int  # frames per clip
    pool: list[str]  # CASME II style episode names shared by all subjects (`episode_pool`)
    counters: Counter[str]  # dataset-wide counts, for names numbered over the whole dataset

    def clip(self, name: str, label: str | None, base: int = 0) -> PlannedClip:
        """One clip: an emotion and AU string of its class, its timing (frame indices from
        `base`, for media holding several clips) and its motion amplitude."""
        choices = self.layout.vocabulary[label]
        emotion, aus = choices[int(self.rng.integers(len(choices)))]
        if self.layout.emotion_is_class:
            emotion = str(label)
        on, ap, off = expression_timing(self.rng, self.frames)
        return PlannedClip(
            self.index,
            self.name,
            name,
            label,
            emotion,
            aus,
            base + on,
            base + ap,
            base + off,
            {"amplitude": float(self.rng.uniform(0.8, 1.2))},
        )


def one_clip_per_media(
    clip_names: Callable[[SubjectPlan], list[str]],
    media: Callable[[SubjectPlan, str, str | None], tuple[str, list[int]]],
) -> Callable[[SubjectPlan], Iterator[PlannedMedia]]:
    """A `sequences` hook for layouts with one clip per frame folder or video: `clip_names` names
    the subject's clips (in the order of `plan.labels`), `media` gives each one's path under the
    root and frame numbers."""

    def sequences(plan: SubjectPlan) -> Iterator[PlannedMedia]:
        names = clip_names(plan)
        for name, label in zip(names, plan.labels, strict=True):
            clip = plan.clip(name, label)
            path, numbers = media(plan, name, label)
            yield path, numbers, [clip]

    return sequences


def subject_ids(layout: SyntheticLayout, n: int) -> list[int]:
    """The first `n` subject numbers: the real numbering, then continued."""
    base = layout.subject_ids
    ids = list(base[:n])
    nxt = (base[-1] + 1) if base else 1
    while len(ids) < n:
        ids.append(nxt)
        nxt += 1
    return ids


def plan_layout(
    layout: str, subjects: int, clips: int, frames: int, seed: int, others: int
) -> list[PlannedSequence]:
    """Every sequence (folder or video) of the dataset with its clips, in subject order."""
    spec = registry.synthetic_layout(layout)
    lid = spec.stream
    pool = episode_pool(np.random.default_rng([seed, lid, 99]), clips + 1)
    counters: Counter[str] = Counter()
    out: list[PlannedSequence] = []
    for si, sid in enumerate(subject_ids(spec, subjects)):
        rng = np.random.default_rng([seed, lid, si, 2])
        name = spec.subject_name(sid)
        labels = slot_labels(rng, si, clips, others, spec.classes)
        plan = SubjectPlan(spec, rng, si, sid, name, labels, frames, pool, counters)
        # one media at a time: its render plan draws from `rng` before the next media's clips
        for k, (media, numbers, planned) in enumerate(spec.sequences(plan)):
            out.append(_sequence(rng, si, media, numbers, planned, (seed, lid, si, 7, k)))
    return out


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
