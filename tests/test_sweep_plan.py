"""Sweep plans without Ray: every sweep YAML loads, variants resolve, trial grid, --trial names,
oracle tags, shared data keys, dry-run text and GPU-hour arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer.cli.sweep import main
from mer.config import from_dict, load_config, variant_config
from mer.errors import ConfigError
from mer.experiment.costs import ASSUMED_TFLOPS, estimate_gpu_hours
from mer.experiment.describe import describe
from mer.experiment.plan import TrialSpec, build_plan, data_key, oracle_reasons
from mer.sweep.resources import max_concurrent, trial_resources
from tests.support.real_data import MISSING, REAL

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
ANNOTATIONS = REAL
OWN = [
    "demo",
    "demo_au",
    "casme2_ablation",
    "samm_ablation",
    "smic_ablation",
    "casme3",
    "deception",
]


def test_own_sweeps_exist():
    assert {p.stem for p in SWEEPS} >= set(OWN)


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_sweep_loads_and_every_variant_resolves(path):
    cfg = load_config(path)
    assert cfg.variants
    for name in cfg.variants:
        vcfg = variant_config(cfg, name)
        for key, value in cfg.ablations[name].items():  # the override really took effect
            node = vcfg
            for part in key.split("."):
                node = getattr(node, part)
            assert node == value, (path.stem, name, key)


def test_paper_sweeps_tag_au_oracle_variants_and_have_label_free_ones():
    cfg = load_config(REPO / "sweeps" / "casme2_ablation.yaml")
    vcfgs = {v: variant_config(cfg, v) for v in cfg.variants}
    assert oracle_reasons(vcfgs["full"]) and oracle_reasons(vcfgs["au_upper"])
    for free in ("au_off", "regions_all", "regions_fixed"):
        assert oracle_reasons(vcfgs[free]) == []
    assert vcfgs["au_upper"].data.regions.au_codes == [1, 2, 4, 5, 7, 43]
    assert vcfgs["au_lower"].data.regions.au_codes == [10, 12, 14, 15, 17]
    assert vcfgs["single_ce"].train.loss == "ce" and vcfgs["single_ce"].model.branches == "single"


# ------------------------------------------------------------------------------- small plans
def _samples(subjects: int = 4, clips: int = 3) -> pd.DataFrame:
    rows = [
        {
            "sample_id": f"casme2/sub{s:02d}/c{c}",
            "dataset": "casme2",
            "subject": f"casme2/sub{s:02d}",
            "clip": f"c{c}",
            "label": c % 3,
        }
        for s in range(1, subjects + 1)
        for c in range(clips)
    ]
    return pd.DataFrame(rows)


def _cfg(**extra):
    raw = {
        "name": "t",
        "data": {"dataset": "casme2", "regions": {"policy": "au_oracle"}},
        "model": {"preset": "casme2"},
        "ablations": {
            "full": {},
            "single": {"model.branches": "single"},
            "free": {"data.regions.policy": "all"},
            "oracle_sel": {"protocol.selection": "oracle_test"},
        },
        "seeds": [0, 1],
    }
    raw.update(extra)
    return from_dict(raw)


def _plan(cfg, samples=None, stats=None):
    table = _samples() if samples is None else samples
    calls = []

    def samples_for(data_cfg):
        calls.append(data_cfg.regions.policy)
        return table, ["negative", "positive", "surprise"]

    plan = build_plan(cfg, samples_for, stats_for=(lambda c: stats) if stats else None)
    return plan, calls


def test_plan_is_variants_times_folds_times_seeds_with_readable_ids():
    plan, calls = _plan(_cfg())
    assert len(plan.trials) == 4 * 4 * 2
    assert calls == ["au_oracle", "all"]  # one sample table per distinct data section
    first = plan.trials[0]
    assert first == TrialSpec("full", "casme2/sub01", 0, 0)
    assert first.id == "full/casme2/sub01/s0"
    assert first.rel_dir == "full/0/casme2__sub01"
    assert len({t.id for t in plan.trials}) == len(plan.trials)


def test_oracle_tags_follow_input_and_selection():
    plan, _ = _plan(_cfg())
    v = plan.variants
    assert v["full"].oracle and v["full"].label == "full [oracle]"
    assert not v["single"].oracle  # single branch never sees the AU crop
    assert not v["free"].oracle and v["free"].label == "free"
    assert any("oracle_test" in r for r in v["oracle_sel"].oracle_reasons)


def test_data_keys_shared_only_when_data_sections_mean_the_same_arrays():
    cfg = _cfg(
        ablations={
            "full": {},
            "single": {"model.branches": "single"},
            "all": {"data.regions.policy": "all"},
            "all_codes": {"data.regions.policy": "all", "data.regions.au_codes": [1, 2]},
        }
    )
    keys = {n: data_key(variant_config(cfg, n)) for n in cfg.variants}
    assert keys["full"] == keys["single"]
    assert keys["all"] != keys["full"]
    assert keys["all_codes"] == keys["all"]  # au_codes mean nothing under the `all` policy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("full/casme2/sub02/1", "full/casme2/sub02/s1"),
        ("full/casme2/sub02/s1", "full/casme2/sub02/s1"),
        ("full/casme2__sub02/1", "full/casme2/sub02/s1"),
        ("full/sub02", "full/casme2/sub02/s0"),
        ("single/sub03/1", "single/casme2/sub03/s1"),
    ],
)
def test_resolve_trial_names(text, expected):
    plan, _ = _plan(_cfg())
    assert plan.resolve_trial(text).id == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope/sub01", "unknown variant 'nope'"),
        ("full/sub09", "unknown fold 'sub09'"),
        ("full/sub01/7", "seed 7 is not in this sweep"),
        ("full", "expected VARIANT/FOLD"),
    ],
)
def test_resolve_trial_errors(text, message):
    plan, _ = _plan(_cfg())
    with pytest.raises(ConfigError, match=message):
        plan.resolve_trial(text)


def test_gpu_hour_estimate_is_flops_arithmetic_and_printed():
    cfg = _cfg(ablations={"full": {}}, seeds=[0], train={"epochs": 10})
    plan, _ = _plan(cfg, stats={"params": 1000, "gflops": 2.0})
    est = estimate_gpu_hours(plan)
    train_clips = 4 * 9  # 4 folds x 9 training clips
    expected = 3 * 2.0 * train_clips * 10 / (ASSUMED_TFLOPS * 1000) / 3600
    assert est["gpu_hours"] == pytest.approx(expected)
    text = describe(plan)
    assert "4 x loso" in text and "test clips per fold 3" in text
    assert "full [oracle]" in text and "Trials: 4;" in text
    assert "19.4 TFLOP/s" in text


def test_estimate_constant_is_the_paper_models_counted_flops():
    from mer.experiment.costs import PAPER_FWD_GFLOPS
    from mer.models.summary import model_stats

    paper = from_dict(
        {"data": {"frames": {"count": 30}, "size": 128}, "model": {"preset": "casme2"}}
    )
    assert model_stats(paper)["gflops"] == pytest.approx(PAPER_FWD_GFLOPS, rel=0.01)


def test_resources_without_gpus_and_concurrency_default():
    cfg = _cfg()
    res = trial_resources(cfg, {"CPU": 4.0})
    assert res == {"CPU": 1.0, "GPU": 0.0}
    assert max_concurrent(cfg, res, {"CPU": 4.0}, None, 100) == 4
    gpu = trial_resources(cfg, {"CPU": 16.0, "GPU": 2.0})
    assert gpu["GPU"] == 0.25
    assert max_concurrent(cfg, gpu, {"CPU": 16.0, "GPU": 2.0}, None, 100) == 8
    assert max_concurrent(cfg, gpu, {"CPU": 16.0, "GPU": 2.0}, None, 3) == 3
    assert max_concurrent(cfg, gpu, {"CPU": 16.0, "GPU": 2.0}, 5, 100) == 5
    with pytest.raises(ConfigError, match="cpu_per_trial"):
        trial_resources(from_dict({"resources": {"cpu_per_trial": 8}}), {"CPU": 2.0})
    with pytest.raises(ConfigError, match="gpu_per_trial: 2 GPUs per trial"):
        trial_resources(from_dict({"resources": {"gpu_per_trial": 2}}), {"CPU": 8, "GPU": 1.0})


def test_gpu_workers_still_to_come_keep_the_gpu_share(caplog):
    """cluster.yaml starts GPU workers on demand (min_workers 0): at launch the cluster has no
    GPU, but trials must still ask for one, or the autoscaler never starts any."""
    from mer.sweep.resources import capacity

    cfg = _cfg()  # gpu_per_trial 0.25, cpu_per_trial 1
    head = {"CPU": 8.0}
    ceiling = {"CPU": 8.0 + 8 * 4, "GPU": 8.0}  # 8 x g5.xlarge (1 GPU, 4 vCPU) at most
    with caplog.at_level("WARNING", logger="mer.sweep.resources"):
        res = trial_resources(cfg, head, ceiling, remote=True)
    assert res == {"CPU": 1.0, "GPU": 0.25}
    assert "no GPU node is up yet" in caplog.text and "up to 8 GPUs" in caplog.text
    # concurrency sized for the scaled-up cluster: 8 GPUs / 0.25, not the head alone
    assert max_concurrent(cfg, res, capacity(cfg, head, ceiling), None, 100) == 32
    # no autoscaler and no GPU: CPU trials, as on a laptop
    assert trial_resources(cfg, head, {}) == {"CPU": 1.0, "GPU": 0.0}
    # resources.wait_for_gpus overrides the autoscaler state (which Ray may not report)
    wait = from_dict({"resources": {"wait_for_gpus": True}})
    assert trial_resources(wait, head, {}, remote=True) == {"CPU": 1.0, "GPU": 0.25}
    assert max_concurrent(wait, res, capacity(wait, head, {}), None, 100) == 100
    # ... but a Ray this process started has no autoscaler: waiting would never end
    assert trial_resources(wait, head, {}, remote=False) == {"CPU": 1.0, "GPU": 0.0}
    never = from_dict({"resources": {"wait_for_gpus": False}})
    assert trial_resources(never, head, ceiling, remote=True) == {"CPU": 1.0, "GPU": 0.0}


def test_cuda_variants_without_a_gpu_share_are_refused_before_any_trial():
    from types import SimpleNamespace

    from mer.sweep.resources import check_devices

    cfg = _cfg()
    cuda = from_dict({"train": {"device": "cuda"}})
    plan = SimpleNamespace(
        cfg=cfg,
        variants={"full": SimpleNamespace(cfg=cfg), "gpu": SimpleNamespace(cfg=cuda)},
    )
    with pytest.raises(ConfigError) as err:
        check_devices(plan, trial_resources(cfg, {"CPU": 4.0}))
    assert str(err.value).startswith(
        "train.device: cuda (variant gpu), but the Ray cluster has no GPUs, so no trial"
    )
    check_devices(plan, trial_resources(cfg, {"CPU": 4.0, "GPU": 1.0}))  # a share: fine
    plan.variants.pop("gpu")
    check_devices(plan, trial_resources(cfg, {"CPU": 4.0}))  # auto/cpu variants run on CPU


# ----------------------------------------------------------------------------------- dry run
@pytest.mark.skipif(
    not (ANNOTATIONS / "CASME2-coding-20140508.xlsx").exists(),
    reason=MISSING,
)
def test_dry_run_casme2_reads_annotations_only(capsys):
    xlsx = ANNOTATIONS / "CASME2-coding-20140508.xlsx"
    status = main(
        [
            str(REPO / "sweeps" / "casme2_ablation.yaml"),
            "--dry-run",
            "--set",
            f"data.annotations={xlsx}",
            "--set",
            "data.root=/nonexistent/root",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    cfg = load_config(REPO / "sweeps" / "casme2_ablation.yaml")
    n = len(cfg.variants) * 24 * len(cfg.seeds)
    assert f"= {n} trials" in out
    assert "Folds: 24 x loso" in out and "24 subjects" in out
    assert "Estimated GPU-hours:" in out and "full [oracle]" in out
    assert "WARNING: data.root: /nonexistent/root is not a folder on this machine" in out
    # PERFORMANCE.md puts one CASME II LOSO of the paper model at 30-40 GPU-minutes
    full = next(line for line in out.splitlines() if line.strip().startswith("full [oracle]"))
    per_seed = float(full.split()[5]) / len(cfg.seeds)
    assert 0.45 < per_seed < 0.7


@pytest.mark.skipif(not (ANNOTATIONS / "combined_3class_gt.csv").exists(), reason=MISSING)
def test_dry_run_megc2019_search_from_the_official_list_alone(capsys):
    """Planning the composite needs only its list: parts not on this machine are named."""
    status = main(
        [
            str(REPO / "sweeps" / "megc2019_search.yaml"),
            "--dry-run",
            "--set",
            f"data.annotations={ANNOTATIONS / 'combined_3class_gt.csv'}",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "442 clips (250 negative, 109 positive, 83 surprise), 68 subjects" in out
    assert "Held out of the search: 17 subject(s)" in out
    assert "WARNING: data.sources.smic.root: ~/data/SMIC/HS is not a folder" in out
    # the search's GPU-hours: 40 configurations on the 5 search folds, then 17 hold-out folds
    # (each about a search fold's training set), not the one-configuration grid above
    grid = float(out.split("Estimated GPU-hours: ")[1].split()[0])
    search = float(out.split("Estimated GPU-hours of the search: at most ")[1].split()[0])
    assert search == pytest.approx(grid * (40 + 17 / 5), rel=0.01)


def test_dry_run_demo_synthetic(capsys, tmp_path):
    status = main(
        [str(REPO / "sweeps" / "demo.yaml"), "--dry-run", "--set", f"data.cache_dir={tmp_path}"]
    )
    out = capsys.readouterr().out
    cfg = load_config(REPO / "sweeps" / "demo.yaml")
    assert status == 0
    assert f"= {len(cfg.variants) * 6} trials" in out and "Folds: 6 x loso" in out
    assert np.isfinite(float(out.split("Estimated GPU-hours: ")[1].split()[0]))


# ------------------------------------------------------------------------ search hold-out subjects
def _search_cfg(holdout: int, split: str = "group_kfold:3", val: int = 1, **extra):
    return _cfg(
        protocol={"split": split, "val_subjects": val},
        data={"dataset": "casme2", "regions": {"policy": "all"}},
        ablations={"full": {}, "lstm": {"model.recurrent": "lstm"}},
        search={
            "holdout_subjects": holdout,
            "seed": 3,
            "space": {"train.lr": {"loguniform": [1.0e-4, 1.0e-2]}},
        },
        **extra,
    )


def test_search_plan_holds_subjects_out_of_every_fold():
    from mer.protocol import holdout_subjects

    table = _samples(subjects=8)
    plan, _ = _plan(_search_cfg(3), samples=table)
    held = holdout_subjects(table, 3, seed=3)  # search.seed, not the run's seeds
    subj = table["subject"].to_numpy()
    for v in plan.variants.values():
        assert v.holdout == held
        for folds in v.folds.values():
            assert len(folds) == 3
            for f in folds:
                rows = np.concatenate([f.train, f.val, f.test])
                assert not set(subj[rows]) & set(held)
    assert plan.to_json()["variants"]["lstm"]["holdout_subjects"] == held
    text = describe(plan)
    assert f"Held out of the search: 3 subject(s) ({', '.join(held)})" in text
    # outside search mode, or with 0, nothing is held out
    plain, _ = _plan(_search_cfg(0), samples=table)
    assert all(v.holdout == [] for v in plain.variants.values())
    assert "no clean test estimate" in describe(plain)


def test_search_plan_holdout_errors_say_so():
    table = _samples(subjects=6)
    with pytest.raises(ConfigError, match="search.holdout_subjects: 6 held-out subject.*none"):
        _plan(_search_cfg(6), samples=table)
    with pytest.raises(
        ConfigError,
        match=r"search.holdout_subjects: 4 held-out subject\(s\) leave 2 .*group_kfold:3",
    ):
        _plan(_search_cfg(4), samples=table)
    with pytest.raises(ConfigError, match=r"leave 3 .*protocol.val_subjects: 2 validation"):
        _plan(_search_cfg(3, split="loso", val=2), samples=table)
    with pytest.raises(ConfigError, match=r"search.holdout_subjects: expected a value in \[0"):
        _search_cfg(-1)


# The SMIC sweep's rows are MODEL.md §7's ablations (presets.SMIC_ABLATIONS): same models.
SMIC_ROWS = {
    "full": "dual_ec_cbam_msmh",
    "single_ce": "single_ce",
    "single_wce": "single_wce",
    "single_wce_lstm": "single_lstm",
    "single_wce_gru": "single_gru",
    "single_wce_gru_cbam": "single_gru_cbam",
    "dual_cbam": "dual_cbam",
    "dual_ec_cbam": "dual_ec_cbam",
    "dual_ec_cbam_mha": "dual_ec_cbam_mha",
}


def test_smic_sweep_rows_build_the_papers_ablation_models():
    from mer.config import with_overrides
    from mer.models.presets import SMIC_ABLATIONS
    from mer.models.summary import model_stats

    cfg = load_config(REPO / "sweeps" / "smic_ablation.yaml")
    base = variant_config(cfg, "full")
    for row, preset_row in SMIC_ROWS.items():
        want = model_stats(with_overrides(base, SMIC_ABLATIONS[preset_row]))["params"]
        assert model_stats(variant_config(cfg, row))["params"] == want, row
    # MODEL.md §7: the Keras multi-head row is the 10.5 M-parameter one (8 heads, key_dim 512)
    assert model_stats(variant_config(cfg, "dual_ec_cbam_mha"))["params"] == 10_365_643


@pytest.mark.parametrize("name", ["casme2_ablation", "samm_ablation"])
def test_multi_head_rows_use_the_papers_key_width(name):
    cfg = load_config(REPO / "sweeps" / f"{name}.yaml")
    model = variant_config(cfg, "dual_ec_cbam_mha").model
    assert (model.pooling, model.mha_heads, model.mha_key_dim) == ("mha", 8, 512)


SEARCHES = [p for p in SWEEPS if load_config(p).search is not None]


@pytest.mark.parametrize("path", SEARCHES, ids=[p.stem for p in SEARCHES])
def test_every_model_choice_of_a_shipped_search_builds(path):
    """A choice that cannot build a model is told FAIL at every draw and still uses up
    search.trials; the shipped searches must offer none (each value tried with the variant's
    other settings and the conditions it needs)."""
    from mer.config import with_overrides
    from mer.models.summary import model_stats
    from mer.sweep.space import parse_space

    cfg = load_config(path)
    assert SEARCHES
    for name, fixed in cfg.ablations.items():
        vcfg = variant_config(cfg, name)
        space = parse_space(cfg.search.space, vcfg).for_variant(fixed)
        for param in space.params:
            if not param.key.startswith("model.") or param.kind != "choice":
                continue
            for choice in param.choices:
                overrides = {k: allowed[0] for k, allowed in param.when} | {param.key: choice}
                try:
                    model_stats(with_overrides(vcfg, overrides))
                except ConfigError as exc:
                    pytest.fail(f"{path.stem} {name}: {param.key} = {choice!r}: {exc}")


def test_a_dry_run_logs_what_it_reads_once(tmp_path, caplog):
    """The plan and the media check both read the sheet: its log lines (the label scheme's
    dropped clips) are shown once, as in a sweep."""
    import logging

    from mer.sweep.dryrun import dry_run

    cfg = load_config(REPO / "sweeps" / "demo.yaml", [f"data.cache_dir={tmp_path}"])
    with caplog.at_level(logging.INFO):
        text = dry_run(cfg)
    dropped = [r for r in caplog.records if "label scheme megc3: dropped" in r.getMessage()]
    assert len(dropped) == 1, [r.getMessage() for r in dropped]
    assert "Trials: 36" in text
