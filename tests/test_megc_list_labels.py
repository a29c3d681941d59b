"""The MEGC2019 list in both published forms (with and without a header row, blank lines kept
out of the way), and as the label source of one dataset (`megc2019_official` +
`data.label_list`): exactly the composite's clips."""

from __future__ import annotations

import pytest

from mer.config import SourceConfig, from_dict
from mer.data.cache import load_samples_only
from mer.datasets.annotations import load_samples
from mer.datasets.catalog.megc2019 import read_list, write_megc2019
from mer.datasets.labels import apply_label_scheme
from mer.errors import ConfigError, DataError
from tests.support.real_data import MISSING, REAL
from tests.test_annotations import GOOD, megc_tree

MEGC_CSV = REAL / "combined_3class_gt.csv"
CASME2_XLSX = REAL / "CASME2-coding-20140508.xlsx"
SAMM_XLSX = REAL / "SAMM_Micro_FACS_Codes_v2.xlsx"
needs_real = pytest.mark.skipif(
    not (MEGC_CSV.is_file() and CASME2_XLSX.is_file() and SAMM_XLSX.is_file()),
    reason=MISSING,
)


# ------------------------------------------------------------------------- the two forms
@needs_real
def test_real_list_with_and_without_a_header_gives_442_clips_of_68_subjects(tmp_path):
    shipped = load_samples("megc2019", MEGC_CSV, check_media=False)
    header = tmp_path / "with_header.csv"
    header.write_bytes(b"data,subject,clip,label\r\n" + MEGC_CSV.read_bytes())
    with_header = load_samples("megc2019", header, check_media=False)
    for table in (shipped, with_header):
        assert len(table) == 442 and table["subject"].nunique() == 68
        assert table["megc_label"].value_counts().sort_index().tolist() == [250, 109, 83]
    assert with_header["sample_id"].tolist() == shipped["sample_id"].tolist()
    # the file's own line numbers: the header is line 1, so every clip moves down one line
    first = shipped.set_index("sample_id")["where"]
    second = with_header.set_index("sample_id")["where"]
    sid = shipped["sample_id"].iloc[0]
    n = int(first[sid].rsplit("line ", 1)[1])
    assert second[sid] == f"{header}, line {n + 1}"


@pytest.mark.parametrize(
    "header",
    ["dataset,subject,filename,label", "data,subject,clip,label", "Data, Subject, Clip, Label"],
)  # fmt: skip
def test_header_forms_and_blank_lines(tmp_path, header):
    csv, sources = megc_tree(tmp_path, GOOD)
    plain = load_samples("megc2019", csv, sources=sources, check_media=False)
    text = f"{header}\n\n" + GOOD.replace("samm,", "\n  \nsamm,")
    csv.write_text(text.replace("\n", "\r\n"))
    read = load_samples("megc2019", csv, sources=sources, check_media=False)
    assert read["sample_id"].tolist() == plain["sample_id"].tolist()
    assert read["megc_label"].tolist() == plain["megc_label"].tolist()
    lines = [ln.line for ln in read_list(csv)]
    assert lines == [3, 6, 7, 8]  # header line 1, blank lines 2, 4, 5


def test_a_header_in_another_order_names_the_columns(tmp_path):
    csv = tmp_path / "gt.csv"
    csv.write_text("label,clip,subject,data\n1,EP02_01f,sub01,casme2\n0,006_1_2,6,samm\n")
    table = load_samples("megc2019", csv, check_media=False)
    assert table["sample_id"].tolist() == ["casme2/sub01/EP02_01f", "samm/006/006_1_2"]
    assert table["megc_label"].tolist() == [1, 0]


def test_list_errors_keep_the_files_line_numbers_and_come_together(tmp_path):
    csv = tmp_path / "gt.csv"
    csv.write_text(
        "dataset,subject,filename,label\n\ncasme2,sub01,EP02_01f,1\n\n"
        "casme2,sub01,EP03_02,7\ncasme3,spNO.1,a,0\ncasme2,sub02\n"
    )
    with pytest.raises(DataError) as exc:
        load_samples("megc2019", csv, check_media=False)
    lines = str(exc.value).splitlines()
    assert lines[0].startswith("3 invalid annotation rows")
    assert lines[1:] == [
        f"  - {csv}, line 7: expected 4 fields dataset,subject,filename,label, got 2",
        f"  - {csv}, line 5: label '7', expected 0, 1 or 2",
        f"  - {csv}, line 6: dataset 'casme3' is not one of casme2, samm, smic",
    ]
    # a first line that is neither a header nor a clip line is a clip line with a bad dataset
    csv.write_text("dataset,subject,clip\ncasme2,sub01,EP02_01f,1\n")
    with pytest.raises(DataError, match=r"line 1: expected 4 fields dataset,subject,filename,"):
        load_samples("megc2019", csv, check_media=False)


# -------------------------------------------------------------- the list as a label source
@needs_real
def test_real_official_labels_give_the_composites_casme2_and_samm_parts():
    composite = load_samples("megc2019", MEGC_CSV, check_media=False)
    for dataset, sheet, n in (("casme2", CASME2_XLSX, 145), ("samm", SAMM_XLSX, 133)):
        table = load_samples(dataset, sheet, check_media=False)
        labelled, classes = apply_label_scheme(table, "megc2019_official", label_list=MEGC_CSV)
        assert classes == ["negative", "positive", "surprise"] and len(labelled) == n
        part = composite[composite["dataset"] == dataset]
        assert dict(zip(labelled["sample_id"], labelled["label"], strict=True)) == dict(
            zip(part["sample_id"], part["megc_label"], strict=True)
        )
    casme2 = load_samples("casme2", CASME2_XLSX, check_media=False)
    assert len(apply_label_scheme(casme2, "megc3")[0]) == 147  # two negatives not in the list


def test_official_labels_on_a_synthetic_composite_all_three_parts(tmp_path):
    megc = write_megc2019(tmp_path / "megc", subjects=2, clips=4, frames=6, size=32)
    composite = load_samples(
        "megc2019",
        megc.gt,
        sources={
            n: SourceConfig(root=str(p.root), annotations=str(p.annotations or "") or None)
            for n, p in megc.parts.items()
        },  # fmt: skip
    )
    for name, part in megc.parts.items():
        table = load_samples(name, part.annotations, part.root)
        labelled, _ = apply_label_scheme(table, "megc2019_official", label_list=megc.gt)
        want = composite[composite["dataset"] == name]
        assert dict(zip(labelled["sample_id"], labelled["label"], strict=True)) == dict(
            zip(want["sample_id"], want["megc_label"], strict=True)
        )
        assert len(labelled) == sum(c.label3 is not None for c in part.clips)
    # through the config: a synthetic SMIC layout labelled by the composite's list
    smic = megc.parts["smic"]
    cfg = from_dict(
        {
            "data": {
                "dataset": "smic",
                "root": str(smic.root),
                "labels": "megc2019_official",
                "label_list": str(megc.gt),
                "cache_dir": str(tmp_path / "cache"),
                "regions": {"policy": "fixed"},
            }
        }
    )
    samples, names = load_samples_only(cfg.data)
    assert names == ["negative", "positive", "surprise"] and len(samples) == 8


def test_official_labels_refuse_a_list_that_does_not_match(tmp_path):
    csv, sources = megc_tree(tmp_path, GOOD)
    casme2 = load_samples("casme2", sources["casme2"].annotations, check_media=False)
    labelled, _ = apply_label_scheme(casme2, "megc2019_official", label_list=csv)
    assert labelled["sample_id"].tolist() == ["casme2/sub01/EP02_01f"]  # one list line
    csv.write_text(GOOD + "casme2,sub09,EP01_01,0\n")
    with pytest.raises(DataError, match=r"data.label_list: 1 clip\(s\) of the MEGC2019 list are "):
        apply_label_scheme(casme2, "megc2019_official", label_list=csv)
    with pytest.raises(ConfigError, match=r"data.label_list: label scheme megc2019_official reads"):
        apply_label_scheme(casme2, "megc2019_official")
    with pytest.raises(ConfigError, match=r"data.label_list: label scheme megc3 does not read"):
        apply_label_scheme(casme2, "megc3", label_list=csv)
    with pytest.raises(DataError, match=r"megc2019_official does not apply to dataset casme3"):
        apply_label_scheme(casme2.assign(dataset="casme3"), "megc2019_official", label_list=csv)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataset": "casme2", "labels": "megc2019_official"},
         "data.label_list: label scheme megc2019_official reads its labels from a list file"),
        ({"dataset": "casme2", "label_list": "gt.csv"},
         "data.label_list: only read by a label scheme that labels from a list"),
        ({"dataset": "casme3", "labels": "megc2019_official", "label_list": "gt.csv"},
         "data.labels: megc2019_official labels casme2, samm, smic from a list; casme3 is not"),
        ({"dataset": "megc2019", "labels": "megc2019_official", "label_list": "gt.csv"},
         "data.label_list: megc2019 takes its labels from its own list (data.annotations)"),
    ],
)  # fmt: skip
def test_label_list_config_rules(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_dict({"data": data})


def test_label_list_keys_keep_existing_hashes_and_split_new_ones():
    from mer.config import config_hash
    from mer.experiment.plan import data_key_of

    base = from_dict({"data": {"dataset": "casme2"}})
    official = from_dict(
        {"data": {"dataset": "casme2", "labels": "megc2019_official", "label_list": "gt.csv"}}
    )
    excluded = from_dict({"data": {"dataset": "casme2", "invalid_rows": "exclude"}})
    explicit = from_dict({"data": {"dataset": "casme2", "invalid_rows": "error"}})
    assert config_hash(explicit) == config_hash(base)
    assert data_key_of(explicit.data) == data_key_of(base.data)
    assert len({config_hash(c) for c in (base, official, excluded)}) == 3
    assert len({data_key_of(c.data) for c in (base, official, excluded)}) == 3
