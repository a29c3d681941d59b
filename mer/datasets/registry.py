"""The datasets `mer` knows: every module of the `mer.datasets.catalog` package that defines a
`SPEC` (a DatasetSpec named like the module).

Adding a dataset is adding one module there (its reader, its SPEC, its synthetic layout if any)
plus its tests: the config, `load_samples`, the label schemes, `mer synth` and the data layer ask
this registry. Modules are found with pkgutil on the package's `__path__` the first time anything
asks (not at import, so importing the config stays cheap); `refresh()` forgets what was found, for
code that extends that path at run time (the registry's tests do, with a module in a temporary
folder).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import pkgutil
from collections.abc import Iterable

from mer.datasets.spec import DatasetSpec, SyntheticLayout
from mer.errors import ConfigError

CATALOG = "mer.datasets.catalog"
#: The pseudo-dataset `data.dataset: synthetic`: generated data, read by its layout's reader.
SYNTHETIC = "synthetic"


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """`did you mean 'x'? ` for the closest option, or "" (for messages listing the options)."""
    close = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


@functools.cache
def _catalog() -> dict[str, DatasetSpec]:
    package = importlib.import_module(CATALOG)
    found: list[DatasetSpec] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{CATALOG}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, DatasetSpec):
            raise TypeError(f"{module.__file__}: a dataset module defines SPEC = DatasetSpec(...)")
        if spec.name != info.name:
            raise ValueError(
                f"{module.__file__}: SPEC.name is {spec.name!r}; name it as the module"
            )
        found.append(spec)
    found.sort(key=lambda s: (s.order, s.name))
    _check_catalog(found)
    return {s.name: s for s in found}


def _check_catalog(found: list[DatasetSpec]) -> None:
    """What one module cannot check about itself."""
    names = {s.name for s in found}
    if SYNTHETIC in names:
        raise ValueError(
            f"{SYNTHETIC!r} is the generated pseudo-dataset; name the dataset otherwise"
        )
    streams: dict[int, str] = {}
    for spec in found:
        missing = [p for p in spec.parts if p not in names]
        if missing:
            raise ValueError(
                f"dataset {spec.name}: part(s) {', '.join(missing)} not in the catalog"
            )
        if spec.synthetic is not None:
            other = streams.setdefault(spec.synthetic.stream, spec.name)
            if other != spec.name:
                raise ValueError(
                    f"synthetic layouts {other} and {spec.name} share stream "
                    f"{spec.synthetic.stream}; give {spec.name} an unused number"
                )


def refresh() -> None:
    """Find the dataset modules again on the next question (after extending the catalog)."""
    _catalog.cache_clear()


def specs() -> tuple[DatasetSpec, ...]:
    """Every dataset, in the order users see them listed."""
    return tuple(_catalog().values())


def names() -> tuple[str, ...]:
    return tuple(_catalog())


def dataset_choices() -> tuple[str, ...]:
    """What `data.dataset` accepts: every dataset, then the synthetic pseudo-dataset."""
    return (*names(), SYNTHETIC)


def find(name: str) -> DatasetSpec | None:
    """The dataset called `name`, or None (the synthetic pseudo-dataset is none)."""
    return _catalog().get(name)


def get(name: str) -> DatasetSpec:
    """The dataset called `name`; ConfigError naming the closest name when there is none."""
    spec = find(name)
    if spec is None:
        raise ConfigError(
            f"data.dataset: unknown dataset {name!r} ({did_you_mean(name, names())}expected one of "
            f"{', '.join(names())})"
        )
    return spec


def with_synthetic_layout() -> tuple[str, ...]:
    """The datasets the synthetic generator writes (`data.synthetic.layout` values)."""
    return tuple(s.name for s in specs() if s.synthetic is not None)


def synthetic_layout(name: str) -> SyntheticLayout:
    """The synthetic layout called `name`; ConfigError naming the closest one otherwise."""
    spec = find(name)
    if spec is None or spec.synthetic is None:
        layouts = with_synthetic_layout()
        hint = did_you_mean(name, layouts)
        raise ConfigError(
            f"synthetic layout {name!r}: expected one of {', '.join(layouts)}"
            + (f" ({hint.strip()})" if hint else "")
        )
    return spec.synthetic


def composites() -> tuple[str, ...]:
    """The datasets made of other datasets' files (`data.sources`)."""
    return tuple(s.name for s in specs() if s.parts)


def check_expressions(dataset: str, expressions: str) -> None:
    """`data.expressions` other than micro only for a dataset whose sheet codes macro-expressions
    too (set elsewhere it would be silently ignored)."""
    spec = find(dataset)
    if expressions == "micro" or (spec is not None and spec.codes_macro):
        return
    which = " or ".join(s.name for s in specs() if s.codes_macro) or "none"
    raise ConfigError(
        f"data.expressions: {expressions} is read only for datasets coding macro-expressions "
        f"too ({which}); {dataset} codes micro-expressions only, leave it at micro"
    )


def check_source_keys(dataset: str, *, root: object, sources: Iterable[str]) -> None:
    """`data.root` and `data.sources` as `dataset` reads them. Set where the dataset ignores
    them, they would be silently ignored and a sweep would run on files other than the ones its
    YAML names: ConfigError instead. The config runs this when it loads; `load_samples` runs it
    for callers with plain arguments."""
    spec = find(dataset)  # None for synthetic data: it reads neither
    parts = spec.parts if spec is not None else ()
    given = list(sources)
    if given and not parts:
        which = " or ".join(composites())
        raise ConfigError(
            f"data.sources: only read for dataset {which} (this is {dataset}); remove it, "
            f"or set data.dataset: {which}"
        )
    if spec is None or not parts:
        return
    unknown = sorted(set(given) - set(parts))
    if unknown:
        raise ConfigError(
            f"data.sources: unknown part(s) {', '.join(unknown)}; the {spec.title} is made of "
            f"{', '.join(parts)}"
        )
    if root not in (None, "") and not spec.reads_root:
        raise ConfigError(
            f"data.root: not read for {dataset}; each part's media root is "
            f"data.sources.<{'|'.join(parts)}>.root"
        )
