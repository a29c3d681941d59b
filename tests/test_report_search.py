"""`mer report` on small fabricated run folders laid out as the sweep writes them (no Ray, no
training): a search's configurations carry their own params and state, pruned configurations are
not shown as complete, parameter counts are legible, no paper numbers by variant name.

The search folder mirrors what `run_sweep.py sweeps/demo_search.yaml` writes: plan.json (mode
search, the base variant's stats), trials/{variant}.c{id:04d}/{seed}/{fold}/(result.json,
predictions.csv, history.csv), search/summary.csv and search/cancelled/{variant}__c{id:04d}.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from mer.experiment.store import TrialRecord
from mer.metrics import megc_scores
from mer.report import ablation_table, load_run
from mer.report.data import uncounted_trials
from mer.report.render import display_table, notes, params_text

FOLDS = ["kfold0", "kfold1", "kfold2", "kfold3"]
BASE_STATS = {"params": 54807, "gflops": 0.074315656}  # the base variant's, in plan.json
SYNTHETIC = {"dataset": "synthetic", "synthetic": {"layout": "casme2", "subjects": 6}}


def _preds(variant: str, fold: str, k: int, shift: int) -> pd.DataFrame:
    """4 val + 2 test clips of subject casme2/sub0{k}; predictions vary with `shift`."""
    rows = []
    for i in range(6):
        split = "val" if i < 4 else "test"
        true = i % 3
        rows.append(
            {
                "sample_id": f"casme2/sub0{k}/EP{i:02d}",
                "dataset": "casme2",
                "subject": f"casme2/sub0{k}",
                "clip": f"EP{i:02d}",
                "fold": fold,
                "split": split,
                "true": true,
                "pred": (true + (i + shift) % 2 * shift) % 3,
                "prob_0": 0.4,
                "prob_1": 0.3,
                "prob_2": 0.3,
                "oracle": False,
                "oracle_selection": False,
                "oracle_input": False,
                "variant": variant,
                "seed": 0,
            }
        )
    return pd.DataFrame(rows)


def _trial(
    out: Path,
    variant: str,
    fold: str,
    *,
    params=None,
    stopped=False,
    ended=0.0,
    failed=False,
    shift=0,
) -> None:
    folder = out / "trials" / variant / "0" / fold
    folder.mkdir(parents=True)
    info = {"trial": f"{variant}/{fold}/s0", "variant": variant, "fold": fold, "seed": 0}
    if failed:
        info.update(status="failed", error=["RuntimeError: boom"], attempts=1)
    else:
        _preds(variant, fold, FOLDS.index(fold) + 1, shift).to_csv(
            folder / "predictions.csv", index=False
        )
        hist = pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.9], "val_uf1": [0.3, 0.4]})
        hist.to_csv(folder / "history.csv", index=False)
        info.update(
            status="done",
            fold_index=FOLDS.index(fold),
            oracle=False,
            params=params,
            stopped=stopped,
            ended_at=ended,
        )
    (folder / "result.json").write_text(json.dumps(info, indent=1))


def _plan(out: Path, mode: str, variants: dict, folds: list[str], config: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    entry = lambda: {  # noqa: E731
        "label": "full",
        "overrides": {},
        "oracle": False,
        "oracle_reasons": [],
        "data_key": "k1",
        "stats": dict(BASE_STATS),
        "folds": {"0": [{"name": f, "index": i} for i, f in enumerate(folds)]},
    }
    plan = {
        "name": out.name,
        "mode": mode,
        "seeds": [0],
        "variants": {v: {**entry(), "label": v, **extra} for v, extra in variants.items()},
        "class_names": {"k1": ["negative", "positive", "surprise"]},
    }
    (out / "plan.json").write_text(json.dumps(plan))
    (out / "config.yaml").write_text(json.dumps({"name": out.name, **config}))  # YAML ⊃ JSON


SUMMARY = [  # what write_search_summary writes for a finished demo search
    {"config_id": 0, "state": "COMPLETE", "uf1": 0.5, "params": 64076, "gflops": 0.074352418,
     "folds_done": 4, "reason": None},
    {"config_id": 1, "state": "FAIL", "uf1": None, "params": None, "gflops": None,
     "folds_done": 0, "reason": "invalid configuration: recurrent_units < max(msmh_scales)"},
    {"config_id": 2, "state": "PRUNED", "uf1": None, "params": 81739, "gflops": 0.074422464,
     "folds_done": 3, "reason": "pruned after 3 fold(s)"},
    {"config_id": 3, "state": "FAIL", "uf1": None, "params": 64076, "gflops": 0.074352418,
     "folds_done": 1, "reason": "fold kfold1 trial t3 errored"},
]  # fmt: skip


def _search_run(out: Path, *, summary: bool = True) -> Path:
    _plan(out, "search", {"full": {}}, FOLDS, {"data": SYNTHETIC})
    for i, fold in enumerate(FOLDS):
        _trial(out, "full.c0000", fold, params=64076, ended=10.0 + i)
    # pruned after 3 folds; the 4th was running, saw the cancel marker and stopped early
    for i, fold in enumerate(FOLDS):
        _trial(out, "full.c0002", fold, params=81739, ended=20.0 + i, stopped=i == 3, shift=1)
    _trial(out, "full.c0003", "kfold0", params=64076, ended=30.0)
    _trial(out, "full.c0003", "kfold1", failed=True)
    search = out / "search"
    (search / "cancelled").mkdir(parents=True)
    (search / "cancelled" / "full__c0002").write_text("PRUNED: pruned after 3 fold(s)\n")
    if summary:
        rows = [{"variant": "full", **r, "overrides": "{}"} for r in SUMMARY]
        pd.DataFrame(rows).to_csv(search / "summary.csv", index=False)
    return out


@pytest.fixture
def search_run(tmp_path):
    return _search_run(tmp_path / "search-run")


def _row(table: pd.DataFrame, variant: str) -> pd.Series:
    return table.set_index("variant").loc[variant]


def test_configuration_params_and_gflops_are_its_own_not_the_base_variants(search_run):
    table = ablation_table(load_run(search_run))
    assert _row(table, "full.c0000")["params"] == 64076
    assert _row(table, "full.c0000")["gflops"] == pytest.approx(0.074352418)
    assert _row(table, "full.c0002")["params"] == 81739
    assert _row(table, "full.c0002")["gflops"] == pytest.approx(0.074422464)
    assert BASE_STATS["params"] not in set(table["params"].dropna())
    disp = display_table(table).set_index("variant")
    assert disp.loc["full.c0000", "params"] == "64.1k"
    assert disp.loc["full.c0002", "params"] == "81.7k"


def test_without_a_summary_params_come_from_the_fold_results(tmp_path):
    run = load_run(_search_run(tmp_path / "running", summary=False))
    table = ablation_table(run)
    assert _row(table, "full.c0000")["params"] == 64076
    assert _row(table, "full.c0002")["params"] == 81739
    # GFLOPs are only in the summary: unknown, never the base variant's
    assert table["gflops"].isna().all()
    # the cancel marker still says the configuration was pruned
    assert _row(table, "full.c0002")["state"] == "PRUNED"


def test_pruned_configuration_is_marked_and_counts_only_the_searchs_folds(search_run):
    run = load_run(search_run)
    table = ablation_table(run)
    pruned = _row(table, "full.c0002")
    assert pruned["state"] == "PRUNED" and pruned["reason"] == "pruned after 3 fold(s)"
    assert (pruned["folds_done"], pruned["folds_total"]) == (3, 4) and not pruned["complete"]
    # its scores pool the 3 folds the search counted, not the stopped-early 4th
    files = sorted((search_run / "trials" / "full.c0002" / "0").glob("kfold[012]/predictions.csv"))
    val = pd.concat([pd.read_csv(f) for f in files]).query("split == 'val'")
    assert pruned["uf1_mean"] == pytest.approx(megc_scores(val["true"], val["pred"], 3)["uf1"])
    pred = run.predictions
    assert not ((pred["variant"] == "full.c0002") & (pred["fold"] == "kfold3")).any()
    assert [(u["variant"], u["fold"]) for u in run.uncounted] == [("full.c0002", "kfold3")]

    done = _row(table, "full.c0000")
    assert done["state"] == "complete" and (done["folds_done"], done["folds_total"]) == (4, 4)
    assert done["complete"]
    # failed configurations are rows too, with or without predictions
    assert _row(table, "full.c0003")["state"] == "failed"
    c3 = _row(table, "full.c0003")
    assert (c3["folds_done"], c3["folds_total"]) == (1, 4)
    assert _row(table, "full.c0001")["state"] == "failed"
    assert not table.set_index("variant").loc[["full.c0001", "full.c0003"], "complete"].any()

    disp = display_table(table).set_index("variant")
    assert disp.loc["full.c0002", "state"] == "PRUNED" and disp.loc["full.c0002", "folds"] == "3/4"
    assert disp.loc["full.c0000", "state"] == "complete"
    text = " ".join(notes(run.name, table, None, None))
    assert "PRUNED:" in text and "full.c0002 fold kfold3" in text


def test_a_fold_finished_after_pruning_is_not_counted():
    def trial(fold, ended):
        result = {"status": "done", "stopped": False, "ended_at": ended}
        return TrialRecord(f"full.c0002/{fold}/s0", "full.c0002", fold, 0, "done", result, Path())

    trials = [trial("kfold0", 1.0), trial("kfold1", 4.0), trial("kfold2", 2.0)]
    configs = {"full.c0002": {"state": "PRUNED", "folds_done": 2}}
    assert [u["fold"] for u in uncounted_trials(trials, configs)] == ["kfold1"]
    configs = {"full.c0002": {"state": "COMPLETE", "folds_done": 3}}
    assert uncounted_trials(trials, configs) == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (54807, "54.8k"),
        (50695, "50.7k"),
        (64076, "64.1k"),
        (812, "812"),
        (3_820_000, "3.82M"),
        (999_960, "1.00M"),
        (None, "–"),
        (math.nan, "–"),
    ],
)
def test_params_text(value, text):
    assert params_text(value) == text


def _ablation_run(out: Path, data: dict) -> Path:
    _plan(out, "ablation", {"full": {}, "au_off": {}}, ["sub01", "sub02"], {"data": data})
    for variant in ("full", "au_off"):
        for k, fold in enumerate(("sub01", "sub02"), start=1):
            folder = out / "trials" / variant / "0" / fold
            folder.mkdir(parents=True)
            pred = _preds(variant, fold, k, 0).assign(split="test")
            pred.to_csv(folder / "predictions.csv", index=False)
            info = {"trial": f"{variant}/{fold}/s0", "variant": variant, "fold": fold}
            (folder / "result.json").write_text(json.dumps({**info, "status": "done", "seed": 0}))
    return out


def test_synthetic_run_with_a_casme2_layout_gets_no_paper_numbers(tmp_path):
    table = ablation_table(load_run(_ablation_run(tmp_path / "synthetic", SYNTHETIC)))
    assert table.filter(like="paper_").isna().all().all()
    disp = display_table(table)
    assert "paper†" not in disp.columns
    assert not any("†" in line for line in notes("x", table, None, None))


def test_real_casme2_variants_named_like_paper_rows_get_no_paper_numbers(tmp_path):
    """Paper numbers follow the configuration the plan resolved (plan.json `paper`), never the
    variant's name: `full` and `au_off` on real CASME II whose plan names no paper configuration
    get none (tests/test_trust.py: the paper's own configuration does)."""
    table = ablation_table(load_run(_ablation_run(tmp_path / "real", {"dataset": "casme2"})))
    assert table.filter(regex=r"^paper_(uf1|uar|acc)$").isna().all().all()
    assert table["paper_config"].isna().all()
    assert "paper†" not in display_table(table).columns
    assert not any("†" in line for line in notes("x", table, None, None))
