"""Label schemes: which clips a task keeps and which class index each gets.

A scheme has classes, and each dataset that takes part in it maps its emotion vocabulary to them
(`DatasetSpec.labels`, in the dataset's module; a scheme only one dataset uses is defined there
too, `DatasetSpec.schemes`); the shared schemes are defined here. A dataset the scheme has no
mapping for uses its `default` mapping (folder classes as written), or the scheme does not apply.
A scheme with a `source` takes its labels from a list file instead (`data.label_list`): the
official MEGC2019 list labels CASME II / SAMM / SMIC clips (`megc2019_official`, defined with
the composite), and the clips it leaves out are dropped.
An emotion the scheme maps to None is dropped on purpose (logged with counts), and one it does
not know at all is an error (a typo in a sheet must not silently vanish). For MEGC2019 rows
(`megc_label` column) `megc3` uses the official label: the composite is driven by the official
list, not re-derived mappings.

Errors about a row start with the table's `where` (the file, sheet and row of the annotation, or
the clip's path where the class is a folder) and name the sample id, as the readers' errors do.
"""

from __future__ import annotations

import difflib
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mer.datasets import registry
from mer.datasets.spec import NPS
from mer.errors import ConfigError, DataError

if TYPE_CHECKING:  # pandas loads on use: the config code imports this module (start-up)
    import pandas as pd  # lazy: the config checks import this module (sweep start-up)

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
    #: labels from a list file (`data.label_list`) instead of the emotion mappings:
    #: source(samples, path) → each row's class index, None for a clip the list leaves out
    source: Callable[[pd.DataFrame, Path], list[int | None]] | None = None
    datasets: tuple[str, ...] = ()  # where `source` applies (the datasets the list labels)

    def mapping(self, dataset: str) -> Mapping_ | None:
        return self.by_dataset.get(dataset, self.default)

    def reads_list(self, dataset: str) -> bool:
        """Whether the scheme labels `dataset` from `data.label_list`."""
        return self.source is not None and dataset in self.datasets


FOLDER3 = {c: c for c in NPS}  # class folders named by the three classes, as written
MEGC3 = LabelScheme(
    "megc3",
    NPS,
    default=FOLDER3,
    use_megc_label=True,
    doc="MEGC2019 3 classes; CASME II/SAMM/CAS(ME)^3 emotions mapped, folders as is",
)
FOLDER_3 = LabelScheme(
    "folder3",
    NPS,
    default=FOLDER3,
    doc="negative/positive/surprise as written (SMIC, videos, MEGC2019)",
)
NPS_OTHERS = (*NPS, "others")
FOLDER_4 = LabelScheme(
    "folder4",
    NPS_OTHERS,
    default={c: c for c in NPS_OTHERS},
    doc="negative/positive/surprise/others as written (the original code's class folders for "
    "CAS(ME)^2 and MEVIEW, `videos` layout)",
)


def schemes() -> dict[str, LabelScheme]:
    """Every scheme by name: megc3, each dataset's own schemes (registry order), folder3; each
    with the mappings the datasets give for it."""
    specs = registry.specs()
    found = [MEGC3, *(s for spec in specs for s in spec.schemes), FOLDER_3, FOLDER_4]
    return {
        s.name: replace(
            s,
            by_dataset={spec.name: spec.labels[s.name] for spec in specs if s.name in spec.labels},
        )
        for s in found
    }


def get_scheme(name: str) -> LabelScheme:
    known = schemes()
    if name not in known:
        close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"data.labels: unknown label scheme {name!r} ({hint}expected one of {', '.join(known)})"
        )
    return known[name]


def class_names(scheme: str) -> list[str]:
    """The scheme's classes in label order (index = the `label` value)."""
    return list(get_scheme(scheme).classes)


def _at(where: str | None, sid: str) -> str:
    """Message prefix for one row: its `where` when the table has one, else the sample id."""
    return f"{where}: " if where else f"sample {sid}: "


def _of(where: str | None, sid: str) -> str:
    """The sample id, when the prefix did not already give it."""
    return f" of sample {sid}" if where else ""


def _listed(
    samples: pd.DataFrame, sch: LabelScheme, label_list: str | Path | None
) -> list[int | None]:
    """The labels a list-sourced scheme gives (`LabelScheme.source`)."""
    assert sch.source is not None
    datasets = sorted(set(samples["dataset"].astype(str)))
    outside = [d for d in datasets if d not in sch.datasets]
    if outside:
        raise DataError(
            f"label scheme {sch.name} does not apply to dataset {', '.join(outside)}; it labels "
            f"{', '.join(sch.datasets)} from data.label_list"
        )
    if label_list in (None, ""):
        raise ConfigError(
            f"data.label_list: label scheme {sch.name} reads its labels from a list file; set "
            "data.label_list to it (the official combined_3class_gt.csv)"
        )
    path = Path(str(label_list)).expanduser().absolute()
    if not path.is_file():
        raise DataError(f"data.label_list: {path} not found")
    return sch.source(samples, path)


def apply_label_scheme(
    samples: pd.DataFrame, scheme: str, *, label_list: str | Path | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Add int column `label`, drop the clips the scheme leaves out; return (table, classes).

    `label_list`: the list file of a scheme with a `source` (`data.label_list`)."""
    import pandas as pd  # lazy: the config checks import this module (sweep start-up)

    sch = get_scheme(scheme)
    classes = list(sch.classes)
    index = {c: i for i, c in enumerate(classes)}
    official = sch.use_megc_label and "megc_label" in samples.columns
    if sch.source is not None and not official:
        return _from_list(samples, sch, _listed(samples, sch, label_list))
    if label_list not in (None, ""):
        raise ConfigError(
            f"data.label_list: label scheme {scheme} does not read a list file (only "
            f"{', '.join(n for n, s in schemes().items() if s.source) or 'none'}); leave it empty"
        )
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
        # where the class is the clip's folder, no sheet cell holds the word: say "class folder"
        spec = registry.find(dataset)
        what = "class folder" if spec is not None and spec.class_from_folder else "emotion"
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
    return _finished(out, sch, len(samples))


def _from_list(
    samples: pd.DataFrame, sch: LabelScheme, labels: list[int | None]
) -> tuple[pd.DataFrame, list[str]]:
    import pandas as pd  # lazy: the config checks import this module (sweep start-up)

    keep = [lab is not None for lab in labels]
    out = samples.loc[keep].copy()
    out["label"] = pd.Series([lab for lab in labels if lab is not None], dtype="int64").values
    out = out.reset_index(drop=True)
    left = samples.loc[[not k for k in keep], "dataset"].value_counts().sort_index()
    if len(left):
        log.info(
            "label scheme %s: dropped %d of %d clips not in the list (%s)",
            sch.name, int(left.sum()), len(samples),
            ", ".join(f"{d} {n}" for d, n in left.items()),
        )  # fmt: skip
    return _finished(out, sch, len(samples))


def _finished(out: pd.DataFrame, sch: LabelScheme, n_read: int) -> tuple[pd.DataFrame, list[str]]:
    scheme, classes = sch.name, list(sch.classes)
    if out.empty:
        raise DataError(f"label scheme {scheme}: no clip is left ({n_read} read)")
    counts = out["label"].value_counts()
    missing = [c for i, c in enumerate(classes) if i not in counts.index]
    if missing:
        log.warning("label scheme %s: no clip of class %s", scheme, ", ".join(missing))
    return out, classes
