"""Hold-out subjects of a search, without Ray: the config rules that keep the objective label-clean
(no oracle_test, no data.* keys, no model.branches on au_oracle regions), the generated hold-out
evaluation config, and what the search summary reports (held-out test metrics, or the plain
statement that there is no clean test estimate)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from mer.config import from_dict, load_config, variant_config, with_overrides
from mer.errors import ConfigError
from mer.experiment.plan import build_plan, oracle_reasons
from mer.experiment.store import ResultsStore, write_run_files
from mer.experiment.summary import write_summary
from mer.metrics import megc_scores
from mer.sweep.outdir import output_dir
from mer.sweep.search import (
    HOLDOUT_NOTE,
    FoldFanoutSearcher,
    format_search_summary,
    holdout_dir,
    holdout_protocol,
    holdout_raw,
    write_search_summary,
)
from mer.sweep.space import check_search_config, parse_space
from mer.sweep.trial import FINAL_KEY
from tests import test_sweep_search as unit

SPACE = {"train.lr": {"loguniform": [1.0e-4, 1.0e-2]}}
HELD = ["casme2/sub02", "casme2/sub05"]
CLASSES = ["negative", "positive", "surprise"]


def _raw(**extra):
    raw = {
        "name": "h",
        "data": {"dataset": "synthetic", "regions": {"policy": "all"}},
        "protocol": {"split": "group_kfold:4", "val_subjects": 1},
        "search": {"space": dict(SPACE)},
    }
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return raw


# ------------------------------------------------------------------------------ config rules
def test_oracle_test_selection_cannot_be_searched():
    with pytest.raises(ConfigError, match="oracle_test picks epochs on the test subject"):
        from_dict(_raw(protocol={"selection": "oracle_test"}))
    with pytest.raises(ConfigError, match="ablations.o: .*oracle_test"):
        from_dict(_raw(ablations={"full": {}, "o": {"protocol.selection": "oracle_test"}}))
    from_dict({**_raw(protocol={"selection": "oracle_test"}), "search": None})  # ablations may


@pytest.mark.parametrize(
    "key, spec",
    [
        ("data.size", {"choice": [32, 64]}),
        ("data.frames.count", {"int": [4, 8]}),
        ("data.regions.policy", {"choice": ["all", "fixed"]}),
        ("data.regions.margin", {"uniform": [0.0, 0.2]}),
    ],
)
def test_data_keys_cannot_be_searched(key, spec):
    """Trials train on the variant's data prepared before the search: a searched data key would
    be recorded and change nothing."""
    with pytest.raises(ConfigError) as err:
        check_search_config(from_dict(_raw(search={"space": {key: spec}})))
    msg = str(err.value)
    assert f"search.space.{key}: data cannot be searched" in msg
    assert "prepared once per variant" in msg and "ablation variants instead" in msg
    cfg = from_dict(_raw())
    with pytest.raises(ConfigError, match=f"search.space.{key}: data cannot be searched"):
        parse_space({key: spec}, cfg)


def test_branches_cannot_be_searched_on_au_oracle_regions():
    space = {"model.branches": {"choice": ["single", "dual"]}}
    with pytest.raises(
        ConfigError, match=r"ablations.full: search.space.model.branches: .*au_oracle"
    ):
        check_search_config(
            from_dict(_raw(data={"regions": {"policy": "au_oracle"}}, search={"space": space}))
        )
    # a variant that fixes branches is not searched on it; label-free regions may search it
    ok = check_search_config(
        from_dict(
            _raw(
                data={"regions": {"policy": "au_oracle"}},
                search={"space": {**space, **SPACE}},
                ablations={
                    "dual": {"model.branches": "dual"},
                    "free": {"data.regions.policy": "all"},
                },
            )
        )
    )
    assert ok.variants == ["dual", "free"]
    free = variant_config(ok, "free")
    # there, every searched configuration carries the same (absent) oracle tag as its variant
    for branches in ("single", "dual"):
        assert oracle_reasons(with_overrides(free, {"model.branches": branches})) == []
    with pytest.raises(ConfigError, match="ablations.oracle: search.space.model.branches"):
        check_search_config(
            from_dict(
                _raw(
                    search={"space": space},
                    ablations={"full": {}, "oracle": {"data.regions.policy": "au_oracle"}},
                )
            )
        )


def test_holdout_fields_are_validated():
    cfg = from_dict(_raw())
    assert cfg.search.holdout_subjects == 0 and cfg.search.evaluate_holdout is True
    with pytest.raises(ConfigError, match=r"search.holdout_subjects: expected a value in \[0"):
        from_dict(_raw(search={"holdout_subjects": -2}))
    with pytest.raises(ConfigError, match="search.evaluate_holdout: expected true/false"):
        from_dict(_raw(search={"evaluate_holdout": "yes"}))


# --------------------------------------------------------------------- hold-out evaluation config
def test_holdout_config_is_the_base_without_search_per_variant_best(tmp_path):
    cfg = from_dict(
        _raw(
            train={"epochs": 7},
            search={"holdout_subjects": 2},
            ablations={
                "full": {},
                "lstm": {"model.recurrent": "lstm", "protocol.val_subjects": 2},
                "inner": {"protocol.selection": "inner_val"},
            },
        )
    )
    best = {
        "full": {"train.lr": 0.002, "model.recurrent": "gru"},
        "lstm": {"train.lr": 0.0005},
        "inner": {"train.lr": 0.001},
    }
    raw = holdout_raw(cfg, best, {v: HELD for v in best}, tmp_path)
    path = tmp_path / "holdout.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    h = load_config(path)
    assert h.search is None and h.name == "h-holdout" and h.variants == ["full", "lstm", "inner"]
    assert output_dir(h, None) == holdout_dir(cfg, tmp_path) == tmp_path.resolve() / "h-holdout"
    assert h.protocol.split == "loso" and h.protocol.folds == HELD
    assert h.protocol.val_subjects == 0 and h.protocol.selection == "fixed_epochs"
    assert h.train.epochs == 7 and h.data.regions.policy == "all"
    v = {n: variant_config(h, n) for n in h.variants}
    assert v["full"].train.lr == 0.002 and v["full"].model.recurrent == "gru"
    assert v["lstm"].model.recurrent == "lstm" and v["lstm"].train.lr == 0.0005
    assert v["lstm"].protocol.val_subjects == 0  # the search-fold protocol does not carry over
    assert v["inner"].protocol.selection == "inner_val"  # selection as the variant configures it
    assert v["inner"].protocol.val_subjects == 1  # ... with the validation subjects it needs
    assert raw["ablations"]["full"] == best["full"]


def test_holdout_protocol_for_the_composite_is_megc2019():
    cfg = from_dict(
        {
            "data": {"dataset": "megc2019", "regions": {"policy": "all"}},
            "protocol": {"split": "group_kfold:5", "val_subjects": 4},
        }
    )
    held = ["casme2/sub01", "samm/006"]
    assert holdout_protocol(cfg, held) == {
        "split": "megc2019",
        "selection": "fixed_epochs",
        "val_subjects": 0,
        "folds": held,
    }


# ----------------------------------------------------------------------------------- summary
def _searched(tmp_path, **search):
    cfg = unit.make_cfg(
        tmp_path,
        trials=2,
        holdout_subjects=2,
        ablations={"full": {}, "lstm": {"model.recurrent": "lstm"}},
        **search,
    )
    s = FoldFanoutSearcher(cfg, unit.FOLDS, tmp_path)
    unit.Driver(s).run()
    return cfg


def _samples(n: int = 6) -> pd.DataFrame:
    rows = [
        {
            "sample_id": f"casme2/sub{s:02d}/c{c}",
            "dataset": "casme2",
            "subject": f"casme2/sub{s:02d}",
            "clip": f"c{c}",
            "label": c % 3,
        }
        for s in range(1, n + 1)
        for c in range(4)
    ]
    return pd.DataFrame(rows)


def _fake_evaluation(config_path, predict):
    """Files of a finished hold-out run, written by the runner's own results code."""
    h = load_config(config_path)
    table = _samples()
    plan = build_plan(h, lambda d: (table, CLASSES))
    out = output_dir(h, None)
    write_run_files(out, plan)
    store = ResultsStore(out)
    for spec in plan.trials:
        rows = table.iloc[plan.fold(spec).test]
        pred = {
            "sample_id": rows["sample_id"].tolist(),
            "dataset": rows["dataset"].tolist(),
            "subject": rows["subject"].tolist(),
            "fold": [spec.fold] * len(rows),
            "split": ["test"] * len(rows),
            "true": rows["label"].tolist(),
            "pred": [predict(spec.variant, t) for t in rows["label"]],
            "oracle": [False] * len(rows),
        }
        store.write_trial(spec, {FINAL_KEY: True, "predictions": pred, "history": []})
    write_summary(out, plan)
    return h, plan


def test_summary_reports_holdout_metrics_of_the_evaluation_run(tmp_path):
    cfg = _searched(tmp_path)
    held = {"full": HELD, "lstm": HELD}
    doc = write_search_summary(cfg, tmp_path, holdout=held)
    path = tmp_path / "search" / "holdout.yaml"
    assert doc["holdout"]["config"] == str(path) and path.exists()
    assert doc["holdout"]["subjects"] == HELD and doc["holdout"]["note"] == HOLDOUT_NOTE
    for v in ("full", "lstm"):  # written, not evaluated yet: said so, with the command
        assert doc["variants"][v]["holdout"]["available"] is False
        assert "not evaluated yet" in doc["variants"][v]["holdout"]["reason"]
    assert f"run python run_sweep.py {path}" in format_search_summary(doc)

    h = load_config(path)
    for v in ("full", "lstm"):  # the generated variants: searched variant + its best overrides
        best = doc["variants"][v]["best"]["overrides"]
        vh = variant_config(h, v)
        assert vh.train.lr == pytest.approx(best["train.lr"])
        assert vh.model.recurrent == best.get("model.recurrent", "lstm")
        assert h.protocol.folds == HELD and vh.protocol.val_subjects == 0

    wrong = {"full": lambda t: t, "lstm": lambda t: (t + 1) % 3 if t == 2 else t}
    _, plan = _fake_evaluation(path, lambda v, t: wrong[v](t))
    assert sorted(f.name for f in plan.variants["full"].folds[0]) == HELD
    doc = write_search_summary(cfg, tmp_path, holdout=held)
    for v in ("full", "lstm"):
        res = doc["variants"][v]["holdout"]
        table = _samples()
        rows = table[table["subject"].isin(HELD)]
        expect = megc_scores(rows["label"], [wrong[v](t) for t in rows["label"]], 3)
        assert res["available"] is True and res["note"] == HOLDOUT_NOTE
        assert res["uf1"] == pytest.approx(expect["uf1"]) and res["n_test"] == len(rows)
        assert res["complete"] and (res["folds_done"], res["folds_total"]) == (2, 2)
    assert doc["variants"]["full"]["holdout"]["uf1"] == pytest.approx(1.0)
    printed = format_search_summary(doc)
    md = (tmp_path / "search" / "summary.md").read_text()
    for text in (printed, md):
        assert f"LOSO on 2 subject(s) ({HOLDOUT_NOTE}): uf1 1.0000" in text
        assert "No clean test estimate" not in text
    on_disk = json.loads((tmp_path / "search" / "best.json").read_text())
    assert on_disk["variants"]["lstm"]["holdout"]["uar"] == pytest.approx(
        doc["variants"]["lstm"]["holdout"]["uar"]
    )
    # the held-out estimate carries its subject-bootstrap interval, as the evaluation's
    # summary.csv has it, into best.json and the printed summary
    hsum = pd.read_csv(holdout_dir(cfg, tmp_path) / "summary.csv").set_index("variant")
    for v in ("full", "lstm"):
        res = on_disk["variants"][v]["holdout"]
        for m in ("uf1", "uar", "acc"):
            assert res[f"{m}_low"] == hsum.loc[v, f"{m}_low"] <= res[m] <= res[f"{m}_high"]
            assert res[f"{m}_high"] == hsum.loc[v, f"{m}_high"]
        assert (res["n_subjects"], res["n_clips"], res["ci_level"]) == (2, 8, 0.95)
        assert res["ci_method"] == "expanded" and res["n_boot"] == 10_000
    lstm = on_disk["variants"]["lstm"]["holdout"]
    shown = f"uf1 {lstm['uf1']:.4f} [{lstm['uf1_low']:.4f}, {lstm['uf1_high']:.4f}]"
    for text in (format_search_summary(on_disk), md):
        assert shown in text and "95 % subject-bootstrap interval over 2 subjects" in text
    # the evaluation is the search's, by design on the held-out subjects: not a partial run
    htable = hsum.reset_index()
    assert not htable["partial"].any() and "[partial" not in " ".join(htable["name"])


def test_summary_refuses_an_evaluation_of_other_overrides(tmp_path):
    cfg = _searched(tmp_path)
    held = {"full": HELD, "lstm": HELD}
    write_search_summary(cfg, tmp_path, holdout=held)
    path = tmp_path / "search" / "holdout.yaml"
    edited = path.read_text().replace("train.lr:", "train.l2: 0.5\n    train.lr:", 1)
    path.write_text(edited)
    _fake_evaluation(path, lambda v, t: t)
    doc = write_search_summary(cfg, tmp_path, holdout=held)  # regenerates holdout.yaml
    res = doc["variants"]["full"]["holdout"]
    assert res["available"] is False and "other overrides" in res["reason"]
    assert doc["variants"]["lstm"]["holdout"]["available"] is True


def test_summary_of_an_unfinished_search_writes_no_holdout_config(tmp_path):
    cfg = unit.make_cfg(tmp_path, trials=3, holdout_subjects=2)
    s = FoldFanoutSearcher(cfg, unit.FOLDS, tmp_path)
    d = unit.Driver(s)
    d.fill()
    d.complete()
    doc = write_search_summary(cfg, tmp_path, holdout={"full": HELD})
    assert doc["variants"]["full"]["finished"] is False
    assert doc["holdout"]["config"] is None
    assert not (tmp_path / "search" / "holdout.yaml").exists()
    assert "search is not finished" in doc["variants"]["full"]["holdout"]["reason"]
    assert (tmp_path / "search" / "summary.md").exists()


def test_search_scope_line_per_variant_sets_and_selection_warning():
    from mer.sweep.search import NO_HOLDOUT_NOTE, _search_scope

    same = {
        "holdout": {"n": 2, "subjects": ["s1", "s2"]},
        "variants": {
            "a": {"holdout": {"available": True, "subjects": ["s1", "s2"]}},
            "b": {"holdout": {"available": True, "subjects": ["s1", "s2"]}},
        },
    }
    text = _search_scope(same)
    assert text.startswith("held out of the search: 2 subject(s) (s1, s2)")
    assert "Choose between variants on the inner-validation objective" in text
    differ = {
        "holdout": {"n": 2, "subjects": ["s1", "s2", "s3"]},
        "variants": {
            "a": {"holdout": {"available": False, "reason": "x", "subjects": ["s1", "s2"]}},
            "b": {"holdout": {"available": False, "reason": "x", "subjects": ["s2", "s3"]}},
        },
    }
    text = _search_scope(differ)
    assert "per variant (not comparable across variants): a: s1, s2; b: s2, s3" in text
    assert "held-out metrics are theirs alone" not in text  # nothing was evaluated
    assert _search_scope({"holdout": {"n": 0}, "variants": {}}) == NO_HOLDOUT_NOTE


def test_holdout_config_tags_its_wandb_runs_with_the_search():
    from mer.config import from_dict
    from mer.sweep.search import holdout_raw

    cfg = from_dict(
        {
            "name": "s",
            "protocol": {"split": "group_kfold:2", "val_subjects": 1},
            "tracking": {"wandb": {"tags": ["mine"]}},
            "search": {
                "trials": 1,
                "holdout_subjects": 1,
                "space": {"train.lr": {"choice": [0.1]}},
            },
        }
    )
    raw = holdout_raw(cfg, {"full": {"train.lr": 0.1}}, {"full": ["casme2/sub01"]}, "/tmp/x")
    assert raw["tracking"]["wandb"]["tags"] == ["mine", "search-holdout", "search:s"]
    assert from_dict(raw).tracking.wandb.tags == ["mine", "search-holdout", "search:s"]
