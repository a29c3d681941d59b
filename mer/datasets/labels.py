"""Label schemes: which clips a task keeps and which class index each gets.

A scheme maps each dataset's emotion vocabulary to its classes; an emotion the scheme maps to
None is dropped on purpose (logged with counts), and one it does not know at all is an error (a
typo in a sheet must not silently vanish). For MEGC2019 rows (`megc_label` column) `megc3` uses
the official label: the composite is driven by the official list, not re-derived mappings.

Errors about a row start with the table's `where` (the file, sheet and row of the annotation, or
the clip's path where the class is a folder) and name the sample id, as the readers' errors do.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from mer.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Mapping_ = Mapping[str, str | None]


@dataclass(frozen=True)
class LabelScheme:
    """Classes plus, per dataset, emotion → class (None: dropped by design)."""

    name: str
    classes: tuple[str, ...]
    by_dataset: Mapping[str, Mapping_] = field(default_factory=dict)
    default: Mapping_ | None = None  # for datasets not in by_dataset; None: scheme does not apply
    use_megc_label: bool = False
    doc: str = ""

    def mapping(self, dataset: str) -> Mapping_ | None:
        return self.by_dataset.get(dataset, self.default)


NPS = ("negative", "positive", "surprise")
_FOLDER3 = {c: c for c in NPS}
_CASME2_3 = {
    "disgust": "negative",
    "repression": "negative",
    "happiness": "positive",
    "surprise": "surprise",
    "others": None,
    "fear": None,
    "sadness": None,
}
_SAMM_3 = {
    "anger": "negative",
    "contempt": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
    "happiness": "positive",
    "surprise": "surprise",
    "other": None,
}
# CAS(ME)^3's sheet writes happy/sad/others; the longer spellings are accepted as the same words.
_CASME3_7 = {
    "anger": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprise",
    "others": "others",
}
_CASME3_ALIASES = {"happiness": "happy", "sadness": "sad", "other": "others", "angry": "anger"}


def _casme3(target: Mapping[str, str | None]) -> dict[str, str | None]:
    full = {e: target[c] for e, c in _CASME3_7.items()}
    full.update({a: full[e] for a, e in _CASME3_ALIASES.items()})
    return full


_CASME3_3 = _casme3(
    {
        "anger": "negative",
        "disgust": "negative",
        "fear": "negative",
        "sad": "negative",
        "happy": "positive",
        "surprise": "surprise",
        "others": None,
    }
)
_CASME3_4 = _casme3(
    {
        "anger": "negative",
        "disgust": "negative",
        "fear": "negative",
        "sad": "negative",
        "happy": "positive",
        "surprise": "surprise",
        "others": "others",
    }
)

SCHEMES: dict[str, LabelScheme] = {
    s.name: s
    for s in (
        LabelScheme(
            "megc3",
            NPS,
            by_dataset={"casme2": _CASME2_3, "samm": _SAMM_3, "casme3": _CASME3_3},
            default=_FOLDER3,
            use_megc_label=True,
            doc="MEGC2019 3 classes; CASME II/SAMM/CAS(ME)^3 emotions mapped, folders as is",
        ),
        LabelScheme(
            "casme2_5",
            ("happiness", "disgust", "repression", "surprise", "others"),
            by_dataset={
                "casme2": {
                    "happiness": "happiness",
                    "disgust": "disgust",
                    "repression": "repression",
                    "surprise": "surprise",
                    "others": "others",
                    "fear": None,
                    "sadness": None,
                }
            },
            doc="CASME II 5 classes (fear and sadness dropped: too few clips)",
        ),
        LabelScheme(
            "casme3_3",
            NPS,
            by_dataset={"casme3": _CASME3_3},
            doc="CAS(ME)^3 negative/positive/surprise (others dropped)",
        ),
        LabelScheme(
            "casme3_4",
            (*NPS, "others"),
            by_dataset={"casme3": _CASME3_4},
            doc="CAS(ME)^3 negative/positive/surprise/others",
        ),
        LabelScheme(
            "casme3_7",
            ("anger", "disgust", "fear", "happy", "sad", "surprise", "others"),
            by_dataset={"casme3": _casme3({c: c for c in _CASME3_7})},
            doc="CAS(ME)^3 all seven emotions",
        ),
        LabelScheme(
            "deception2",
            ("deceptive", "truthful"),
            by_dataset={"deception": {"deceptive": "deceptive", "truthful": "truthful"}},
            doc="real-life trial deception: class from the folder",
        ),
        LabelScheme(
            "folder3",
            NPS,
            default=_FOLDER3,
            doc="negative/positive/surprise as written (SMIC, videos, MEGC2019)",
        ),
    )
}


def get_scheme(name: str) -> LabelScheme:
    if name not in SCHEMES:
        import difflib

        close = difflib.get_close_matches(str(name), list(SCHEMES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"data.labels: unknown label scheme {name!r} ({hint}expected one of "
            f"{', '.join(SCHEMES)})"
        )
    return SCHEMES[name]


def class_names(scheme: str) -> list[str]:
    """The scheme's classes in label order (index = the `label` value)."""
    return list(get_scheme(scheme).classes)


# Datasets whose emotion is the name of the clip's class folder (smic, deception, videos): their
# errors say "class folder" rather than "emotion", since no sheet cell holds the word.
FOLDER_CLASSES = frozenset({"smic", "deception", "videos"})


def _at(where: str | None, sid: str) -> str:
    """Message prefix for one row: its `where` when the table has one, else the sample id."""
    return f"{where}: " if where else f"sample {sid}: "


def _of(where: str | None, sid: str) -> str:
    """The sample id, when the prefix did not already give it."""
    return f" of sample {sid}" if where else ""


def apply_label_scheme(samples: pd.DataFrame, scheme: str) -> tuple[pd.DataFrame, list[str]]:
    """Add int column `label`, drop the clips the scheme leaves out; return (table, classes)."""
    sch = get_scheme(scheme)
    classes = list(sch.classes)
    index = {c: i for i, c in enumerate(classes)}
    official = sch.use_megc_label and "megc_label" in samples.columns
    none = [None] * len(samples)
    labels: list[int | None] = []
    dropped: Counter[tuple[str, str]] = Counter()
    unknown: list[tuple[str | None, str, str, str]] = []
    for sid, dataset, emotion, megc, where in zip(
        samples["sample_id"],
        samples["dataset"],
        samples["emotion"],
        samples["megc_label"] if official else none,
        samples["where"] if "where" in samples.columns else none,  # absent: an older cache
    ):
        where = where if isinstance(where, str) and where else None
        if official and not pd.isna(megc):
            if int(megc) not in range(len(classes)):
                raise DataError(
                    f"{_at(where, sid)}megc_label {megc!r}{_of(where, sid)} is not 0, 1 or 2"
                )
            labels.append(int(megc))
            continue
        mapping = sch.mapping(dataset)
        if mapping is None:  # a config mismatch (data.labels), not a row to fix: no `where`
            applies = ", ".join(sch.by_dataset) or "any dataset"
            raise DataError(
                f"label scheme {scheme} does not apply to dataset {dataset} (sample {sid}); "
                f"it is for {applies}"
            )
        key = str(emotion).strip().lower() if not pd.isna(emotion) else ""
        if key not in mapping:
            unknown.append((where, sid, dataset, key))
            labels.append(None)
            continue
        target = mapping[key]
        if target is None:
            dropped[(dataset, key)] += 1
            labels.append(None)
        else:
            labels.append(index[target])
    if unknown:
        where, sid, dataset, emotion = unknown[0]
        known = ", ".join(sorted(sch.mapping(dataset) or {}))
        more = f" ({len(unknown) - 1} more samples too)" if len(unknown) > 1 else ""
        what = "class folder" if dataset in FOLDER_CLASSES else "emotion"
        raise DataError(
            f"{_at(where, sid)}{what} {emotion!r}{_of(where, sid)} is not known to label scheme "
            f"{scheme} for {dataset} (known: {known}){more}"
        )
    keep = [lab is not None for lab in labels]
    out = samples.loc[keep].copy()
    out["label"] = pd.Series([lab for lab in labels if lab is not None], dtype="int64").values
    out = out.reset_index(drop=True)
    if dropped:
        detail = ", ".join(f"{d} {e} {n}" for (d, e), n in sorted(dropped.items()))
        log.info(
            "label scheme %s: dropped %d of %d clips (%s): not among its classes %s",
            scheme,
            sum(dropped.values()),
            len(samples),
            detail,
            "/".join(classes),
        )
    if out.empty:
        raise DataError(f"label scheme {scheme}: no clip is left ({len(samples)} read)")
    counts = out["label"].value_counts()
    missing = [c for i, c in enumerate(classes) if i not in counts.index]
    if missing:
        log.warning("label scheme %s: no clip of class %s", scheme, ", ".join(missing))
    return out, classes
