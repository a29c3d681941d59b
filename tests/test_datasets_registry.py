"""The dataset registry: every spec consistent with its reader, its synthetic layout, the label
schemes, the config and the shipped sweeps; and a dataset added as one module (in a temporary
folder on the catalog's path) works everywhere without touching another file."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from mer.config import DataConfig, FramesConfig, SyntheticConfig, from_dict, load_config
from mer.data.cache import load_samples_only
from mer.data.frames import selection_window
from mer.datasets import catalog, registry
from mer.datasets.annotations import load_samples
from mer.datasets.labels import NPS, apply_label_scheme, get_scheme, schemes
from mer.datasets.records import parse_aus
from mer.datasets.synthetic import write_dataset
from mer.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SPECS = registry.specs()


def _ids(specs):
    return [s.name for s in specs]


# ------------------------------------------------------------------------------ consistency
def test_names_and_order():
    names = registry.names()
    assert names == ("casme2", "samm", "smic", "casme3", "casme_sq", "meview", "megc2019",
                     "deception", "videos")  # fmt: skip
    assert registry.with_synthetic_layout() == ("casme2", "samm", "smic", "casme3", "casme_sq",
                                                "meview", "deception", "videos")  # fmt: skip
    assert registry.composites() == ("megc2019",)
    assert registry.dataset_choices() == (*names, registry.SYNTHETIC)
    assert len({s.order for s in SPECS}) == len(SPECS)
    assert len({s.title for s in SPECS}) == len(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
def test_spec_fields_agree(spec):
    parts = [registry.get(p) for p in spec.parts]
    # AU codes come from an AU column (a composite: from a part's)
    assert spec.has_aus == ("aus" in spec.columns or any(p.has_aus for p in parts))
    # a dataset that reads no annotation file takes its classes from folders, and has no columns
    assert not spec.needs_annotations or spec.reads_annotations
    if not spec.reads_annotations:
        assert spec.class_from_folder and not spec.columns and spec.needs_root
    # a composite reads its media roots from its parts' sources
    assert bool(spec.parts) == (not spec.reads_root) == (spec.write_synthetic is not None)
    assert spec.split in ("loso", "megc2019")
    # the default label scheme applies to it; each mapping names a scheme's classes
    assert get_scheme(spec.label_scheme).mapping(spec.name) is not None
    for scheme in spec.schemes:
        assert scheme.name in spec.labels, f"{spec.name} defines {scheme.name} without a mapping"
    for name, mapping in spec.labels.items():
        classes = get_scheme(name).classes
        assert {c for c in mapping.values() if c is not None} <= set(classes), name
    # the original's frame selection is a valid data.frames section
    FramesConfig(**asdict(spec.frames))


@pytest.mark.parametrize(
    "spec", [s for s in SPECS if s.synthetic], ids=_ids(s for s in SPECS if s.synthetic)
)
def test_synthetic_layout_fields_agree(spec):
    layout = spec.synthetic
    assert (layout.annotation_file is None) == (layout.write_annotations is None)
    assert spec.reads_annotations or layout.annotation_file is None
    assert not layout.annotations_optional or not spec.needs_annotations
    assert (layout.frame_name is None) == layout.video
    assert set(layout.classes) <= set(layout.vocabulary)
    assert None in layout.vocabulary or not layout.has_others
    streams = [s.synthetic.stream for s in SPECS if s.synthetic]
    assert streams.count(layout.stream) == 1


@pytest.mark.parametrize(
    "spec", [s for s in SPECS if s.synthetic], ids=_ids(s for s in SPECS if s.synthetic)
)
def test_every_synthetic_layout_round_trips_through_its_reader(tmp_path, spec):
    ds = write_dataset(tmp_path / spec.name, spec.name, subjects=2, clips=4, frames=6, size=32)
    assert (ds.annotations is None) == (spec.synthetic.annotation_file is None)
    table = load_samples(spec.name, ds.annotations, ds.root)
    assert len(table) == len(ds.clips) == 8 and table["subject"].nunique() == 2

    def key(path, onset):  # several clips of one recording: told apart by their onset
        return (str(path), int(onset)) if spec.shared_media else str(path)

    rows = {key(r["path"], r["onset"]): r for r in table.to_dict("records")}
    labelled, classes = apply_label_scheme(table, spec.label_scheme)
    label_of = dict(zip(labelled["sample_id"], labelled["label"], strict=True))
    three = set(spec.synthetic.classes) <= set(NPS)
    for clip in ds.clips:
        row = rows[key(clip.media, clip.onset)]
        if spec.has_aus:
            assert row["aus"] == parse_aus(clip.aus)
        if "onset" in spec.columns:
            assert (row["onset"], row["offset"]) == (clip.onset, clip.offset)
        if "apex" in spec.columns:  # MEVIEW codes no apex
            assert row["apex"] == clip.apex
        # 3 classes: the MEGC class; else the planned class (the emotion of a folder layout;
        # a 4-class layout's `others` included, whatever its emotion word)
        want = clip.label3 if three else clip.label
        assert three or not spec.synthetic.emotion_is_class or want == clip.emotion
        if want is None:
            assert row["sample_id"] not in label_of
        else:
            assert classes[label_of[row["sample_id"]]] == want


@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
def test_the_readme_lists_every_dataset(spec):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"| {spec.title} (`{spec.name}`) |" in readme


def test_shipped_sweeps_use_each_datasets_original_settings():
    seen = set()
    for path in sorted((REPO / "sweeps").glob("*.yaml")):
        data = load_config(path).data
        if data.is_synthetic:
            continue
        spec, frames = data.spec, data.frames
        seen.add(spec.name)
        assert data.labels == spec.label_scheme, path.name
        want = (spec.frames.count, spec.frames.select, spec.frames.skip)
        assert (frames.count, frames.select, frames.skip) == want, path.name
        window = spec.frames.window
        if window == "auto":
            window = "annotated" if spec.shared_media else "clip"
        assert selection_window(data) == window, path.name
    assert seen >= {"casme2", "samm", "smic", "casme3", "casme_sq", "meview", "megc2019",
                    "deception"}  # fmt: skip


# ----------------------------------------------------------------- lookups and the config
def test_unknown_names_get_the_closest_one():
    with pytest.raises(ConfigError, match=r"unknown dataset 'smc' \(did you mean 'smic'\? exp"):
        registry.get("smc")
    with pytest.raises(ConfigError, match=r"synthetic layout 'deceptio': .*'deception'\?\)"):
        registry.synthetic_layout("deceptio")
    with pytest.raises(ConfigError, match=r"synthetic layout 'megc2019': expected one of"):
        registry.synthetic_layout("megc2019")  # a dataset, but no synthetic layout
    with pytest.raises(ConfigError, match=r"data.dataset: .*got 'smc' \(did you mean 'smic'\?\)"):
        DataConfig(dataset="smc")


def test_the_config_accepts_exactly_the_registered_names():
    for name in registry.dataset_choices():
        assert DataConfig(dataset=name).dataset == name
    with pytest.raises(ConfigError) as exc:
        DataConfig(dataset="casme")
    listed = re.search(r"expected one of (.*), got", str(exc.value)).group(1)
    assert listed == ", ".join(repr(n) for n in registry.dataset_choices())
    for name in registry.with_synthetic_layout():
        assert SyntheticConfig(layout=name).layout == name
    with pytest.raises(ConfigError) as exc:
        SyntheticConfig(layout="megc2019")
    listed = re.search(r"expected one of (.*), got", str(exc.value)).group(1)
    assert listed == ", ".join(repr(n) for n in registry.with_synthetic_layout())


def test_composite_keys_are_one_rule_for_the_config_and_load_samples(tmp_path):
    """`registry.check_source_keys` gives the same message whoever asks."""
    with pytest.raises(ConfigError) as by_config:
        from_dict({"data": {"dataset": "casme2", "sources": {"samm": {"root": "/x"}}}})
    with pytest.raises(ConfigError) as by_reader:
        load_samples("casme2", tmp_path / "x.xlsx", sources={"samm": {"root": "/x"}})
    assert (
        str(by_config.value)
        == str(by_reader.value)
        == (
            "data.sources: only read for dataset megc2019 (this is casme2); remove it, or set "
            "data.dataset: megc2019"
        )
    )


# ------------------------------------------------------------------- a dataset in one module
TOY = '''
"""A throwaway dataset: `toy_labels.csv` (Subject, Clip, Onset, Apex, Offset, AU, Mood) and
frames `root/t1/t1_c0/<n>.png`; calm or tense."""

from pathlib import Path

from mer.datasets.labels import LabelScheme
from mer.datasets.records import Record, aus_text, frame_number, parse_aus, text_cell
from mer.datasets.spec import DatasetSpec, FrameDefaults, SyntheticLayout
from mer.datasets.synthetic.plan import one_clip_per_media
from mer.datasets.synthetic.writers import write_csv
from mer.datasets.table import read_table

COLUMNS = {"subject": ("Subject",), "clip": ("Clip",), "onset": ("Onset",), "apex": ("Apex",),
           "offset": ("Offset",), "aus": ("AU",), "emotion": ("Mood",)}


def read(annotations, root):
    table = read_table(annotations, (COLUMNS["subject"], COLUMNS["clip"]))
    col = {role: table.column(*names) for role, names in COLUMNS.items()}
    out = []
    for row_no, row in table.rows:
        where = table.where(row_no)
        cell = {role: table.cell(row, i) for role, i in col.items()}
        subject = text_cell(cell["subject"], where, "Subject")
        clip = text_cell(cell["clip"], where, "Clip")
        out.append(Record(
            dataset="toy", subject_raw=subject, subject=f"toy/{subject}", clip=clip,
            emotion=text_cell(cell["emotion"], where, "Mood").lower(), where=where,
            onset=frame_number(cell["onset"], where, "Onset"),
            apex=frame_number(cell["apex"], where, "Apex"),
            offset=frame_number(cell["offset"], where, "Offset"),
            aus=parse_aus(cell["aus"]), aus_raw=aus_text(cell["aus"]),
            media=root / subject / clip if root is not None else None,
        ))
    return out


def write_annotations(path, clips):
    rows = [[c.subject, c.clip, c.onset, c.apex, c.offset, c.aus, c.emotion] for c, _ in clips]
    write_csv(path, rows, header=("Subject", "Clip", "Onset", "Apex", "Offset", "AU", "Mood"))


def _names(plan):
    return [f"{plan.name}_c{k}" for k in range(len(plan.labels))]


def _media(plan, name, label):
    return f"{plan.name}/{name}", list(range(1, plan.frames + 1))


SPEC = DatasetSpec(
    name="toy",
    title="a throwaway dataset",
    order=1000,
    read=read,
    columns=COLUMNS,
    label_scheme="toy2",
    frames=FrameDefaults(count=4, select="uniform"),
    labels={"toy2": {"calm": "calm", "tense": "tense", "other": None}},
    schemes=(LabelScheme("toy2", ("calm", "tense"), doc="calm or tense"),),
    synthetic=SyntheticLayout(
        stream=1000,
        root_dir="TOY",
        annotation_file="toy_labels.csv",
        subject_name=lambda number: f"t{number}",
        vocabulary={"calm": [("calm", "12")], "tense": [("tense", "4+7")], None: [("other", "25")]},
        sequences=one_clip_per_media(_names, _media),
        write_annotations=write_annotations,
        classes=("calm", "tense"),
        has_others=True,
        frame_name=lambda folder, n: f"{n}.png",
        image_format="PNG",
    ),
)
'''


TOY_LABELS = {"calm": "calm", "tense": "tense", "other": None}


@pytest.fixture
def toy_catalog(tmp_path, monkeypatch):
    """The catalog with one more module, in a folder outside the source tree."""
    folder = tmp_path / "more_datasets"
    folder.mkdir()
    (folder / "toy.py").write_text(TOY)
    monkeypatch.setattr(catalog, "__path__", [*catalog.__path__, str(folder)])
    registry.refresh()
    yield
    sys.modules.pop(f"{registry.CATALOG}.toy", None)
    registry.refresh()


def test_adding_a_dataset_is_one_module(toy_catalog, tmp_path):
    assert registry.names()[-1] == "toy" and "toy" in registry.with_synthetic_layout()
    assert "toy2" in schemes() and get_scheme("toy2").by_dataset == {"toy": TOY_LABELS}
    with pytest.raises(ConfigError, match=r"did you mean 'toy'\?"):
        registry.get("tooy")
    # its synthetic layout, read back by its reader
    ds = write_dataset(tmp_path / "gen", "toy", subjects=2, clips=4, frames=6, size=32)
    table = load_samples("toy", ds.annotations, ds.root)
    assert len(table) == 8 and set(table["emotion"]) <= {"calm", "tense", "other"}
    labelled, classes = apply_label_scheme(table, "toy2")
    assert classes == ["calm", "tense"] and len(labelled) == 6  # one "other" per subject
    # the config knows it: as a dataset, and as a synthetic layout
    cfg = from_dict(
        {
            "data": {
                "dataset": "toy",
                "root": str(ds.root),
                "annotations": str(ds.annotations),
                "labels": "toy2",
                "frames": asdict(registry.get("toy").frames),
            },
            "model": {"num_classes": 2},
            "train": {"class_weights": "balanced"},
        }
    )
    assert cfg.data.spec.name == "toy" and selection_window(cfg.data) == "clip"
    syn = DataConfig(
        dataset="synthetic",
        synthetic={"layout": "toy", "subjects": 2, "clips": 4, "frames": 6, "size": 32},
        labels="toy2",
        cache_dir=str(tmp_path / "cache"),
    )
    samples, names = load_samples_only(syn)
    assert names == ["calm", "tense"] and len(samples) == 6
    with pytest.raises(ConfigError, match=r"data.synthetic.others: 4 of the 4 clips"):
        SyntheticConfig(layout="toy", clips=4, others=4)
