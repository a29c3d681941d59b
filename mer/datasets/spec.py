"""What the rest of `mer` knows about a dataset: one `DatasetSpec` per dataset, defined as `SPEC`
in its module under `mer/datasets/catalog/` beside its reader (and its synthetic layout).

Code outside a dataset's module never spells out dataset names: it asks the registry
(`mer.datasets.registry`) for a spec and reads its fields (which file it needs, whether it has
AU codes, how its frames were selected, ...). Plain data and functions, no config: the config
validates against the registry, so it sits above this layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mer.datasets.labels import LabelScheme
    from mer.datasets.records import Record
    from mer.datasets.synthetic.dataset import SyntheticClip
    from mer.datasets.synthetic.plan import PlannedClip, SubjectPlan

#: The three classes of MEGC2019, which most layouts' clips are labelled with.
NPS = ("negative", "positive", "surprise")
#: `data.expressions`: which expressions a sheet coding both kinds gives (`codes_macro`).
EXPRESSIONS = ("micro", "macro", "all")
#: Emotion word as the annotation writes it → class of a label scheme (None: dropped on purpose).
EmotionMap = Mapping[str, str | None]
#: (emotion as written, AU string as written), one choice of a synthetic clip's annotation.
Choice = tuple[str, str]
#: One frame folder or video of a synthetic subject: (path under the root, frame numbers, clips).
PlannedMedia = tuple[str, list[int], list["PlannedClip"]]


@dataclass(frozen=True)
class FrameDefaults:
    """The original code's frame selection for a dataset (MODEL.md §6; the shipped sweeps use
    it): `data.frames.count/select/window/skip`. Recorded facts, not config defaults: the config's
    defaults are the same for every dataset so that a config hash never depends on the dataset."""

    count: int
    select: str
    window: str = "auto"
    skip: int = 0


@dataclass(frozen=True, eq=False)
class SyntheticLayout:
    """How the synthetic generator (`mer.datasets.synthetic`) writes a dataset in this layout.

    The generator plans subjects, labels and expression timing and renders the faces; the layout
    says what is dataset-specific: folder and file names, subject and clip naming, the emotion
    and AU vocabulary, and the annotation file. Hooks get a `SubjectPlan` (the subject, its
    labels and the random generator, which they must draw from in a fixed order: same seed, same
    bytes).
    """

    #: Part of every random seed of this layout. Never change it, and give a new layout an unused
    #: number: it keeps each layout's bytes independent of which other layouts exist.
    stream: int
    root_dir: str  # media root under the output folder (what data.root points at)
    annotation_file: str | None  # written beside the root; None: classes come from folders
    subject_name: Callable[[int], str]  # subject number → as the media tree (or mapping) names it
    #: emotion/AU choices per class (None: clips outside the classes, see `has_others`)
    vocabulary: Mapping[str | None, Sequence[Choice]]
    #: the clips of one subject, one frame folder or video at a time (a generator, so that the
    #: generator's own draws for each media follow that media's draws)
    sequences: Callable[[SubjectPlan], Iterator[PlannedMedia]]
    write_annotations: Callable[[Path, list[tuple[SyntheticClip, dict[str, Any]]]], None] | None
    classes: tuple[str, ...] = NPS
    has_others: bool = False  # clips outside the classes exist (their annotation says "others")
    video: bool = False  # H.264 mp4 per clip (needs an even frame height); else frame folders
    frame_name: Callable[[Path, int], str] | None = None  # frame folder, number → file name
    image_format: str = "JPEG"  # PIL format of the frame files
    grey: bool = False  # 8-bit grey frames (SAMM)
    subject_ids: tuple[int, ...] = ()  # the real subject numbering (with its gaps), continued
    annotations_optional: bool = False  # `mapping=False` leaves the annotation file out
    emotion_is_class: bool = False  # the emotion written is the class itself (folder layouts)


@dataclass(frozen=True, eq=False)
class DatasetSpec:
    """One dataset as `mer` reads it.

    `read(annotations, root)` returns the dataset's `Record`s (paths absolute, checked by
    `load_samples` as the flags below say); a composite's (`parts` set) is
    `read(annotations, sources, check_media=...)`, `sources` mapping each part to its files.
    """

    name: str  # `data.dataset` value, sample-id and subject prefix; equals the module's name
    title: str  # how documents and messages name it ("CASME II")
    order: int  # position in the lists users see (choices in messages, `mer synth --layout`)
    read: Callable[..., list[Record]]
    #: annotation header: column role → the header names accepted for it (first match wins);
    #: a dataset with AU codes has an "aus" column (or a part with one)
    columns: Mapping[str, tuple[str, ...]]
    label_scheme: str  # the default `data.labels` of its sweeps
    frames: FrameDefaults
    needs_annotations: bool = True  # `data.annotations` must be given
    reads_annotations: bool = True  # False: it reads no annotation file, giving one is an error
    needs_root: bool = False  # `data.root` is needed even without media checks (classes on disk)
    reads_root: bool = True  # False: the media roots come from `data.sources` (composites)
    has_aus: bool = True  # its annotations give AU codes (au_oracle regions)
    class_from_folder: bool = False  # the class is the clip's folder name, not a sheet cell
    shared_media: bool = False  # a recording holds several annotated clips (select inside each)
    #: its sheet codes macro-expressions too: `read(..., expressions=...)` takes
    #: `data.expressions` (micro by default); other datasets code micro-expressions only
    codes_macro: bool = False
    parts: tuple[str, ...] = ()  # a composite's datasets (their specs give their files' layout)
    split: str = "loso"  # `protocol.split` of its own leave-one-subject-out protocol
    #: emotion → class for label schemes this dataset takes part in (shared ones such as megc3,
    #: and its own `schemes`)
    labels: Mapping[str, EmotionMap] = field(default_factory=dict)
    schemes: tuple[LabelScheme, ...] = ()  # label schemes this dataset defines
    synthetic: SyntheticLayout | None = None  # the generator writes this layout
    #: a composite's synthetic writer: write(out, **generator parameters) for all its parts
    write_synthetic: Callable[..., Any] | None = None
