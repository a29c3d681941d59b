"""Numbers you can trust: every non-standard run labelled wherever it is shown (partial,
subject-dependent, oracle: summary.csv/.md, report, W&B tags, MEGC file name), paper numbers only
beside the paper's own configuration on a real dataset, a demo-like difference called "no
detectable difference", and the `report` config section.

Results folders are written with the sweep's own results code (ResultsStore, write_summary,
write_report) from fabricated predictions: no Ray, no training."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer.config import ExperimentConfig, config_hash, from_dict, load_config, variant_config
from mer.errors import ConfigError
from mer.experiment.paper import PAPER_CONFIGS, paper_config
from mer.experiment.plan import build_plan
from mer.experiment.store import ResultsStore, write_run_files
from mer.experiment.summary import write_summary
from mer.predlog import megc_file_name, save_fold_result
from mer.report import write_report
from mer.sweep.tracking import WandbTracker
from tests.support.wandb_offline import offline_runs

REPO = Path(__file__).resolve().parents[1]
ME = ["negative", "positive", "surprise"]
LIE = ["deceptive", "truthful"]
# the paper's CASME II configuration: the original's face handling (FacesConfig.LEGACY) and its
# epoch selection on the test subject
ORIGINAL_FACES = {"min_score": 0.0, "track": False, "boxes": "per_frame", "global": "frame"}
PAPER_FULL = {
    "data": {"dataset": "casme2", "faces": ORIGINAL_FACES},
    "protocol": {"selection": "oracle_test"},
}


def _samples(dataset: str, subjects: int, clips: int, k: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "sample_id": f"{dataset}/sub{s:02d}/c{c}",
                "dataset": dataset,
                "subject": f"{dataset}/sub{s:02d}" if dataset != "deception" else f"clip{s}{c}",
                "clip": f"c{c}",
                "label": (s + c) % k,
            }
            for s in range(1, subjects + 1)
            for c in range(clips)
        ]
    )


def _run(out: Path, raw: dict, table: pd.DataFrame, names: list[str], predict=None):
    """Plan `raw` on `table`, file every trial (predictions: `predict(variant, true, i)`, else
    the truth with every third clip wrong), write summary and report."""
    cfg = from_dict({"name": out.name, **raw})
    plan = build_plan(cfg, lambda d: (table, names))
    write_run_files(out, plan)
    store = ResultsStore(out)
    k = len(names)
    predict = predict or (lambda v, t, i: t if i % 3 else (t + 1) % k)
    for spec in plan.trials:
        rows = table.iloc[plan.fold(spec).test]
        true = rows["label"].to_numpy()
        pred = {
            "sample_id": rows["sample_id"].tolist(),
            "dataset": rows["dataset"].tolist(),
            "subject": rows["subject"].tolist(),
            "fold": [spec.fold] * len(rows),
            "split": ["test"] * len(rows),
            "true": true.tolist(),
            "pred": [int(predict(spec.variant, int(t), int(i))) for t, i in zip(true, rows.index)],
            "oracle": [plan.variants[spec.variant].oracle] * len(rows),
        }
        store.write_trial(spec, {"mer_final": True, "predictions": pred, "history": []})
    summary = write_summary(out, plan)
    written = write_report(out)
    return plan, summary, written


def _md_rows(text: str) -> dict[str, dict[str, str]]:
    """The first Markdown table, by its first cell."""
    lines = text[text.index("\n|") + 1 :].split("\n\n")[0].splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {r[0]: dict(zip(head, r, strict=True)) for r in rows}


def _md_names(text: str) -> list[str]:
    return list(_md_rows(text))


# ----------------------------------------------------------------------------------- labels
@pytest.fixture(scope="module")
def partial_run(tmp_path_factory):
    """Real-CASME II paper configuration (oracle_test selection, AU crops) on 2 of 5 subjects."""
    raw = {
        **PAPER_FULL,
        "protocol": {"selection": "oracle_test", "folds": ["casme2/sub01", "casme2/sub02"]},
        "ablations": {"full": {}, "free": {"data.regions.policy": "all"}},
    }
    out = tmp_path_factory.mktemp("partial")
    return out, *_run(out, raw, _samples("casme2", 5, 6, 3), ME)


def test_partial_run_is_labelled_in_summary_report_and_gets_no_paper_column(partial_run):
    out, plan, summary, written = partial_run
    assert plan.variants["full"].paper is None  # the paper's configuration, but partial
    csv = pd.read_csv(out / "summary.csv").set_index("variant")
    tag = "[partial: 2 of 5 subjects]"
    # oracle_test selection makes both oracle (the tag comes first)
    assert csv.loc["free", "name"] == f"free [oracle] {tag}"
    assert csv.loc["full", "name"] == f"full [oracle] {tag}"
    assert csv["partial"].all() and (csv["subjects_tested"] == 2).all()
    assert (csv["subjects_total"] == 5).all() and (csv["n_subjects"] == 2).all()
    assert csv.filter(regex=r"^paper_(uf1|uar|acc)$").isna().all().all()
    md = (out / "summary.md").read_text()
    assert _md_names(md) == [f"full [oracle] {tag}", f"free [oracle] {tag}"]
    assert "paper†" not in md and "[partial: k of N subjects]: full (2 of 5), free (2 of 5)" in md
    report_md = written["md"].read_text()
    assert _md_names(report_md) == _md_names(md) and "paper†" not in report_md
    assert f"### free [oracle] {tag}" in report_md
    page = html.unescape(written["html"].read_text())
    assert f"<h3>free [oracle] {tag}</h3>" in page and "paper†" not in page
    assert f"free [oracle] {tag}" in written["latex"].read_text()


def test_partial_and_subject_dependent_runs_carry_wandb_tags(tmp_path, monkeypatch):
    """Deception without a subject CSV, on a fold subset: both labels on the trial and summary
    runs (tags and names), and the sweep run says which variants carry them."""
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-0987654321abcdef")
    raw = {
        "data": {"dataset": "deception", "labels": "deception2", "regions": {"policy": "none"}},
        "model": {"preset": "deception"},
        "train": {"class_weights": "balanced"},
        "protocol": {"split": "group_kfold:3", "folds": ["kfold0"]},
        "ablations": {"full": {}},
    }
    out = tmp_path / "lie"
    plan, summary, _ = _run(out, raw, _samples("deception", 6, 2, 2), LIE)
    vp = plan.variants["full"]
    assert vp.subject_dependent and vp.partial and vp.wandb_tags == ["partial", "subject-dependent"]
    name = summary.table["name"].iloc[0]
    assert name == f"full [partial: {vp.subjects_tested} of 12 subjects] [subject-dependent]"
    tracker = WandbTracker(tmp_path, sweep="lie", project="t", entity=None, mode="offline")
    spec = plan.trials[0]
    info = ResultsStore(out).records()[spec.id].info
    payload = {**info, "labels": vp.wandb_tags, "test_scores": {}, "history": []}
    tracker.trial(spec, vp.cfg, payload, False)
    row = summary.table.iloc[0].to_dict()
    tracker.variant(plan, "full", row, summary.seeds, summary.predictions)
    tracker.sweep(plan, summary.table)
    tracker.close()
    assert tracker.errors == []
    runs = {r["name"]: r for r in offline_runs(tmp_path)}
    assert set(runs) == {spec.id, name, "lie summary"}
    for run_name in (spec.id, name):
        assert {"partial", "subject-dependent"} <= set(runs[run_name]["tags"]), run_name
        assert "oracle" not in runs[run_name]["tags"]
    assert {"has-partial", "has-subject-dependent"} <= set(runs["lie summary"]["tags"])
    assert runs["lie summary"]["config"]["subject_dependent_variants"] == ["full"]
    assert runs[name]["summary"]["subject_dependent"] is True


def test_subject_dependent_run_is_labelled_and_gets_no_paper_numbers(tmp_path):
    lie = {
        "data": {
            "dataset": "deception", "labels": "deception2", "regions": {"policy": "none"},
            "frames": {"count": 16, "select": "first", "skip": 5},
        },
        "model": {"preset": "deception"},
        "train": {"class_weights": "balanced"},
        "protocol": {"split": "group_kfold:3", "selection": "oracle_test"},
        "ablations": {"full": {}},
    }  # fmt: skip
    table = _samples("deception", 6, 2, 2)
    _, summary, written = _run(tmp_path / "no_csv", lie, table, LIE)
    row = summary.table.iloc[0]
    assert row["name"] == "full [oracle] [subject-dependent]" and row["subject_dependent"]
    assert np.isnan(row["paper_acc"])
    md = (tmp_path / "no_csv" / "summary.md").read_text()
    assert "| full [oracle] [subject-dependent] |" in md and "leave-one-clip-out" in md
    assert "[subject-dependent]: the deception without a subject CSV" not in md  # one reason
    assert "deception without a subject CSV (data.annotations)" in written["md"].read_text()
    # with the subject CSV it is the paper's deception configuration
    lie["data"]["annotations"] = "subjects.csv"
    _, summary, written = _run(tmp_path / "csv", lie, table, LIE)
    row = summary.table.iloc[0]
    assert row["name"] == "full [oracle]" and row["paper_acc"] == 0.836
    assert "Paper† (real-life deception, full model): ACC 0.836" in written["md"].read_text()


def test_megc_file_name_carries_every_label():
    pred = pd.DataFrame(
        {"subject": ["a", "a", "b", "c"], "split": ["test", "test", "test", "val"],
         "oracle": [False, True, False, False]}
    )  # fmt: skip
    assert megc_file_name(pred) == "predictions_megc.oracle.txt"
    assert megc_file_name(pred, subjects_total=2) == "predictions_megc.oracle.txt"  # a, b tested
    assert (
        megc_file_name(pred, subjects_total=5, subject_dependent=True)
        == "predictions_megc.oracle.partial-2-of-5.subject-dependent.txt"
    )
    plain = pred.assign(oracle=False)
    assert megc_file_name(plain, subject_dependent=True) == "predictions_megc.subject-dependent.txt"
    assert megc_file_name(plain, subjects_total=3) == "predictions_megc.partial-2-of-3.txt"


def test_save_fold_result_names_the_megc_file_with_its_labels(tmp_path):
    from types import SimpleNamespace

    pred = pd.DataFrame(
        {"sample_id": ["casme2/s1/c0"], "dataset": ["casme2"], "subject": ["casme2/s1"],
         "clip": ["c0"], "fold": ["casme2/s1"], "split": ["test"], "true": [0], "pred": [0],
         "oracle": [False]}
    )  # fmt: skip
    result = SimpleNamespace(
        predictions=pred, history=[], fold="casme2/s1", seed=0, oracle=False,
        oracle_selection=False, oracle_input=False, selected_epoch=1, test_scores={},
        val_scores=None, timings={}, params=1, class_names=ME, epochs_trained=1,
    )  # fmt: skip
    paths = save_fold_result(result, tmp_path, subjects_total=4, subject_dependent=True)
    assert paths["megc"].name == "predictions_megc.partial-1-of-4.subject-dependent.txt"


# ------------------------------------------------------------------------------ paper numbers
def test_paper_numbers_follow_the_resolved_configuration_not_the_name(tmp_path):
    raw = {
        **PAPER_FULL,
        "ablations": {
            "full": {"data.regions.policy": "all"},  # named full, other regions: not the paper's
            "mine": {},  # the paper's CASME II configuration under another name
            "au_off": {"data.regions.policy": "none"},
            "au_upper": {"data.regions.au_codes": [1, 2, 4, 5, 7, 43]},  # not every AU
        },
    }
    plan, summary, written = _run(tmp_path / "real", raw, _samples("casme2", 4, 6, 3), ME)
    table = summary.table.set_index("variant")
    assert table.loc["mine", "paper_uf1"] == 0.944 and table.loc["mine", "paper_uar"] == 0.956
    assert table.loc["au_off", "paper_uf1"] == 0.818 and np.isnan(table.loc["au_off", "paper_uar"])
    assert table.loc[["full", "au_upper"], ["paper_uf1", "paper_uar"]].isna().all().all()
    md = (tmp_path / "real" / "summary.md").read_text()
    rows = _md_rows(md)
    assert rows["mine [oracle]"]["paper†"] == "UF1 0.944, UAR 0.956"
    assert rows["au_off [oracle]"]["paper†"] == "UF1 0.818"
    assert rows["full [oracle]"]["paper†"] == "" and rows["au_upper [oracle]"]["paper†"] == ""
    assert "shown only beside a run of the same configuration" in written["md"].read_text()
    # the same sweep on synthetic data in CASME II's layout: no paper column at all
    syn = {**raw, "data": {"dataset": "synthetic", "synthetic": {"layout": "casme2"}}}
    _, summary, _ = _run(tmp_path / "syn", syn, _samples("casme2", 4, 6, 3), ME)
    assert summary.table.filter(regex=r"^paper_").isna().all().all()
    assert "paper†" not in (tmp_path / "syn" / "summary.md").read_text()


PAPER_SWEEPS = ["smic_ablation.yaml", "casme2_ablation.yaml", "samm_ablation.yaml", "casme3.yaml",
                "deception.yaml"]  # fmt: skip


@pytest.mark.parametrize("name", PAPER_SWEEPS)
def test_shipped_sweeps_reproduce_the_papers_configurations_only_with_its_selection(name):
    """With the shipped selection (fixed_epochs) no variant is the paper's configuration; with
    the paper's test-subject epoch selection the variants the old name table listed are, and
    only those."""
    named = {
        "smic_ablation.yaml": {"full", "single_ce", "single_wce", "single_wce_lstm",
                               "single_wce_gru", "single_wce_gru_cbam", "dual_cbam",
                               "dual_ec_cbam", "dual_ec_cbam_mha"},
        "casme2_ablation.yaml": {"full", "au_off"}, "samm_ablation.yaml": {"full", "au_off"},
        "casme3.yaml": {"full"}, "deception.yaml": {"full"},
    }[name]  # fmt: skip
    cfg = load_config(REPO / "sweeps" / name)
    assert all(paper_config(variant_config(cfg, v)) is None for v in cfg.variants)
    cfg = load_config(REPO / "sweeps" / name, ["protocol.selection=oracle_test"])
    found = {v: paper_config(variant_config(cfg, v)) for v in cfg.variants}
    assert {v for v, p in found.items() if p is not None} == named
    assert len({p.name for p in found.values() if p is not None}) == len(named)
    assert {p.dataset for p in found.values() if p} == {cfg.data.dataset}
    assert len({p.name for p in PAPER_CONFIGS}) == len(PAPER_CONFIGS)


# ----------------------------------------------------------------------------- comparisons
def test_a_demo_sized_difference_is_called_no_detectable_difference(tmp_path):
    """6 subjects x 8 clips, one seed, like the demo: `better` fixes 2 of `base`'s errors and
    makes 1 new one (+0.02-0.05 UF1). The table calls it no detectable difference, states the
    Holm rule, and keeps the oracle row out of the comparison."""
    errors = {"base": {3, 11, 19, 27, 35, 43, 5}, "better": {3, 11, 19, 27, 35, 44}}
    errors["au"] = set()  # oracle and perfect: never compared

    def predict(variant, true, i):
        return (true + 1) % 3 if i in errors[variant] else true

    raw = {
        "data": {"dataset": "synthetic", "regions": {"policy": "fixed"}},
        "ablations": {"base": {}, "better": {"data.regions.policy": "all"},
                      "au": {"data.regions.policy": "au_oracle"}},
    }  # fmt: skip
    _, summary, written = _run(tmp_path / "demo", raw, _samples("casme2", 6, 8, 3), ME, predict)
    t = summary.table.set_index("variant")
    assert t.attrs["reference"] == "base" and t.attrs["comparison_family"] == ["better"]
    assert 0 < t.loc["better", "uf1_diff"] < 0.1 and t.loc["better", "uf1_diff_low"] < 0
    assert not t.loc["better", "uf1_detectable"] and t.loc["better", "uf1_p_holm"] > 0.5
    assert (t.loc["better", "mcnemar_ref_only"], t.loc["better", "mcnemar_other_only"]) == (1, 2)
    assert np.isnan(t.loc["au", "uf1_diff"]) and not np.isnan(t.loc["au", "uf1_low"])
    md = (tmp_path / "demo" / "summary.md").read_text()
    assert _md_rows(md)["better"]["paired test"].startswith("no detectable difference (Holm p = ")
    assert "Holm's step-down adjustment over the 1 comparison(s) with `base`" in md
    assert "How to read a difference" in md
    for where in ("md", "html"):
        page = html.unescape(written[where].read_text())
        assert "better − base (95 % intervals): UF1 +0.0" in page, where
        assert "no detectable difference" in page, where
        assert "How to read a difference" in page and "config hash" in page, where


def test_configured_reference_and_its_rules(tmp_path):
    raw = {
        "data": {"dataset": "synthetic", "regions": {"policy": "fixed"}},
        "ablations": {"a": {}, "b": {"data.regions.policy": "all"},
                      "c": {"data.regions.policy": "none"}},
        "report": {"reference": "b", "n_boot": 500, "n_perm": 200, "seed": 3, "level": 0.9},
    }  # fmt: skip
    _, summary, _ = _run(tmp_path / "ref", raw, _samples("casme2", 6, 4, 3), ME)
    t = summary.table.set_index("variant")
    assert t.attrs["reference"] == "b" and sorted(t.attrs["comparison_family"]) == ["a", "c"]
    assert (t.loc[["a", "c"], "reference"] == "b").all() and t.loc["b", "n_boot"] == 500
    assert t.loc["a", "ci_level"] == 0.9 and t.loc["a", "boot_seed"] == 3
    wrong = from_dict({**raw, "report": {"reference": "x"}})
    with pytest.raises(ConfigError, match=r"report.reference: 'x' is not a variant .*"):
        build_plan(wrong, lambda d: (_samples("casme2", 6, 4, 3), ME))
    with pytest.raises(ConfigError, match="a variant cannot change report settings"):
        from_dict({**raw, "ablations": {"a": {"report.seed": 1}}})
    with pytest.raises(ConfigError, match=r"report.level: expected a value in \[0.5, 0.999\]"):
        from_dict({**raw, "report": {"level": 1.5}})
    oracle = {**raw, "report": {"reference": "o"}, "ablations": {**raw["ablations"], "o": {
        "data.regions.policy": "au_oracle"}}}  # fmt: skip
    with pytest.raises(ConfigError, match="report.reference: 'o' is an oracle variant"):
        build_plan(from_dict(oracle), lambda d: (_samples("casme2", 6, 4, 3), ME))


def test_report_section_is_left_out_of_the_config_hash():
    base = load_config(REPO / "sweeps" / "demo.yaml")
    other = load_config(REPO / "sweeps" / "demo.yaml", ["report.n_boot=500", "report.seed=9"])
    assert other.report.n_boot == 500 and other != base
    assert config_hash(other) == config_hash(base)
    assert "report" in ExperimentConfig.UNHASHED


def test_wandb_variant_runs_carry_the_final_comparison(tmp_path, monkeypatch):
    """A variant's summary run is queued when the variant finishes but written with the final
    table: Holm's adjustment (and the reference) can change as later variants finish."""
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-0987654321abcdef")
    raw = {
        "name": "fam",
        "data": {"dataset": "synthetic", "regions": {"policy": "fixed"}},
        "ablations": {"base": {}, "good": {"data.regions.policy": "all"},
                      "same": {"data.regions.policy": "none"}},
    }  # fmt: skip
    table = _samples("casme2", 6, 3, 3)
    plan = build_plan(from_dict(raw), lambda d: (table, ME))
    out = tmp_path / "fam"
    write_run_files(out, plan)
    store = ResultsStore(out)

    def file(variant):  # base and same: one error per subject (clip 0); good: none
        for spec in plan.trials_of(variant):
            rows = table.iloc[plan.fold(spec).test]
            true = rows["label"].to_numpy()
            pred = [(t + 1) % 3 if c == "c0" and variant != "good" else t
                    for t, c in zip(true, rows["clip"])]  # fmt: skip
            store.write_trial(spec, {"mer_final": True, "history": [], "predictions": {
                "sample_id": rows["sample_id"].tolist(), "dataset": rows["dataset"].tolist(),
                "subject": rows["subject"].tolist(), "fold": [spec.fold] * len(rows),
                "split": ["test"] * len(rows), "true": true.tolist(), "pred": pred,
                "oracle": [False] * len(rows)}})  # fmt: skip

    tracker = WandbTracker(tmp_path, sweep="fam", project="t", entity=None, mode="offline")
    file("base")
    file("good")
    early = write_summary(out, plan).table.set_index("variant", drop=False)
    assert early.loc["good", "uf1_p_holm"] == early.loc["good", "uf1_p"] == 2 / 64  # family of 1
    done = []
    tracker.variant(plan, "good", early.loc["good"].to_dict(), [], pd.DataFrame(),
                    on_done=lambda: done.append("good"))  # fmt: skip
    assert done == []  # not written yet
    file("same")
    final = write_summary(out, plan).table
    row = final.set_index("variant").loc["good"]
    assert row["uf1_p_holm"] == 2 * 2 / 64  # Holm over good and same
    tracker.sweep(plan, final)
    tracker.close()
    assert done == ["good"] and tracker.errors == []
    runs = {r["name"]: r for r in offline_runs(tmp_path)}
    good = runs["good"]["summary"]
    assert good["compare/uf1_p_holm"] == row["uf1_p_holm"]
    md_row = _md_rows((out / "summary.md").read_text())["good"]
    assert (
        good["table/paired test"]
        == md_row["paired test"]
        == ("no detectable difference (Holm p = 0.0625)")
    )
    assert runs["fam summary"]["summary"]["good/uf1_p_holm"] == row["uf1_p_holm"]
