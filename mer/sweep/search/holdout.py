"""The hold-out evaluation: the only test estimate a search reports, and how it is produced.

Held-out subjects (why the search folds give no test estimate)
--------------------------------------------------------------
Each search fold moves `protocol.val_subjects` of its training subjects to validation, and those
are test subjects of other folds: the labels of (nearly) every subject feed the objective, so the
chosen configuration's test score on the search folds is optimistic (PROTOCOL.md §4.1). Hence
`search.holdout_subjects`: N subjects set aside before the search (label-free, from `search.seed`,
stratified by dataset: `mer.protocol.holdout_subjects`) are in no split of any search fold (the plan
builds the folds over the remaining, development, subjects). After the search, each variant's best
configuration (chosen on inner validation only) is trained and tested LOSO on the held-out subjects:
one fold per held-out subject, training on every other subject. That evaluation is an ordinary
ablation sweep, generated as OUT/search/holdout.yaml (`holdout_raw`; variant = searched variant +
its best overrides) and run at the end of `run_search` through `mer.sweep.ablation.run_ablation` on
the same Ray (unless `search.evaluate_holdout: false`); its results are a normal sweep folder,
OUT/{name}-holdout/ (summary, prediction logs, W&B, report), and can be run or resumed by hand
(`python run_sweep.py OUT/search/holdout.yaml [--resume]`). Its pooled test metrics are the only
test numbers the search summary reports. With `holdout_subjects: 0` the summary says that no clean
test estimate exists. The search folds' test predictions stay in the trial prediction logs but are
summarised nowhere (`mer report` shows a search's configurations on their validation clips).

Here: the evaluation's config (`holdout_raw`, written by `_write_holdout_config`), its run
(`evaluate_holdout`) and best.json's `holdout` section read back from its results
(`_holdout_section`, used by mer.sweep.search.summary).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mer.config import ExperimentConfig, variant_config
from mer.errors import ConfigError
from mer.experiment import layout
from mer.experiment.layout import HOLDOUT_CONFIG, holdout_dir, holdout_name
from mer.sweep.ablation import run_ablation
from mer.sweep.outdir import output_dir
from mer.sweep.space import load_search_config
from mer.util.jsonio import read_json, to_plain

log = logging.getLogger(__name__)

HOLDOUT_NOTE = "held-out subjects, never seen by the search"
NO_HOLDOUT_NOTE = (
    "No clean test estimate: search.holdout_subjects is 0, so every subject's labels fed the "
    "objective (each subject trains or validates in some search fold, and each fold's validation "
    "subjects are other folds' test subjects); testing the chosen configuration on these subjects "
    "would be optimistic (PROTOCOL.md §4.1). Hold subjects out with search.holdout_subjects."
)


def holdout_protocol(vcfg: ExperimentConfig, subjects: Sequence[str]) -> dict[str, Any]:
    """LOSO over the whole table restricted to the held-out subjects' folds: each fold trains on
    every other subject (development and other held-out ones). Selection as the variant has it;
    validation subjects only where that selection needs them (inner_val)."""
    selection = vcfg.protocol.selection
    return {
        "split": vcfg.data.spec.split,  # the dataset's own LOSO (megc2019: the composite's)
        "selection": selection,
        "val_subjects": vcfg.protocol.val_subjects if selection == "inner_val" else 0,
        "folds": list(subjects),
    }


def holdout_raw(
    cfg: ExperimentConfig,
    best: Mapping[str, Mapping[str, Any]],
    subjects: Mapping[str, Sequence[str]],
    out_dir: str | Path,
) -> dict[str, Any]:
    """The hold-out evaluation as an ablation sweep (a raw config mapping).

    The base config without `search`, named `{name}-holdout`, results in OUT/{name}-holdout; one
    variant per searched variant in `best` (variant → its best configuration's overrides) = the
    variant's own overrides (less `protocol.*`) + those overrides; folds = that variant's held-out
    subjects (`subjects`). Protocol keys a variant needs beyond the base's are its overrides.
    """
    if not best:
        raise ConfigError("search: no variant has a best configuration to evaluate")
    first = next(iter(best))
    base = copy.deepcopy(cfg.raw)
    base.pop("search", None)
    base["name"] = holdout_name(cfg)
    base["output"] = str(Path(out_dir).expanduser().resolve())
    base_protocol = holdout_protocol(variant_config(cfg, first), subjects[first])
    base["protocol"] = {**(base.get("protocol") or {}), **base_protocol}
    # its protocol.folds are the held-out subjects by design: not a partial run
    base["report"] = {**(base.get("report") or {}), "holdout_of": cfg.name}
    ablations: dict[str, dict[str, Any]] = {}
    for v, overrides in best.items():
        own = {k: x for k, x in cfg.ablations[v].items() if k.split(".")[0] != "protocol"}
        merged: dict[str, Any] = {**own, **dict(overrides)}
        protocol = holdout_protocol(variant_config(cfg, v), subjects[v])
        for key, value in protocol.items():
            if value != base_protocol[key]:
                merged[f"protocol.{key}"] = value
        ablations[v] = merged
    base["ablations"] = ablations
    if base["report"].get("reference") not in (None, *ablations):  # a variant left out
        base["report"].pop("reference")
    # W&B: the evaluation's runs say which search they test
    tracking = base.setdefault("tracking", {}) or {}
    base["tracking"] = tracking
    wandb_cfg = tracking.setdefault("wandb", {}) or {}
    tracking["wandb"] = wandb_cfg
    tags = list(wandb_cfg.get("tags") or [])
    wandb_cfg["tags"] = tags + [
        t for t in ("search-holdout", f"search:{cfg.name}") if t not in tags
    ]
    return base


def _holdout_header(cfg: ExperimentConfig, path: Path, skipped: Sequence[str]) -> str:
    lines = [
        f"# Generated by the search {cfg.name!r} (mer.sweep.search): the hold-out evaluation.",
        "# Each variant = the searched variant with its best configuration (chosen on the search",
        "# folds' inner validation only), tested LOSO on the held-out subjects, which are in no",
        "# search fold: the search never saw them. Each fold trains on every other subject.",
        "# The search runs it at its end unless search.evaluate_holdout is false; by hand:",
        f"#   python run_sweep.py {path} [--resume]",
        "# Regenerated by each run of the search: edit a copy, not this file.",
    ]
    if skipped:
        lines.append(f"# Not evaluated (no completed configuration): {', '.join(skipped)}")
    return "\n".join(lines) + "\n"


def _write_holdout_config(
    cfg: ExperimentConfig,
    out: Path,
    entries: Mapping[str, Mapping[str, Any]],
    held: Mapping[str, Sequence[str]],
) -> tuple[Path, dict[str, Any]]:
    """OUT/search/holdout.yaml (checked by loading it back); returns its path and raw mapping."""
    best = {v: e["best"]["overrides"] for v, e in entries.items() if e.get("best")}
    raw = holdout_raw(cfg, best, held, out)
    path = out / layout.SEARCH_DIR / HOLDOUT_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    skipped = [v for v in entries if v not in best]
    text = _holdout_header(cfg, path, skipped) + yaml.safe_dump(raw, sort_keys=False)
    path.write_text(text)
    load_search_config(path)  # what the evaluation (or the user) will run must load
    return path, raw


def _holdout_results(
    hdir: Path, variant: str, expected: Mapping[str, Any], subjects: Sequence[str]
) -> dict[str, Any]:
    """Pooled metrics of one variant from the hold-out evaluation's own summary files."""
    summary, plan_path = hdir / layout.SUMMARY_CSV, hdir / layout.PLAN_FILE
    if not summary.exists() or not plan_path.exists():
        return {"available": False, "reason": f"not evaluated yet (no results in {hdir})"}
    planned = read_json(plan_path, what="the hold-out plan").get("variants", {}).get(variant)
    table = pd.read_csv(summary)
    rows = table[table["variant"].astype(str) == variant]
    if planned is None or rows.empty:
        return {"available": False, "reason": f"variant {variant} not in {hdir}"}
    same = to_plain(planned.get("overrides")) == to_plain(dict(expected))
    folds = sorted({f["name"] for fs in planned.get("folds", {}).values() for f in fs})
    if not same or folds != sorted(subjects):
        return {
            "available": False,
            "reason": f"{hdir} evaluated other overrides or subjects than this search's best; "
            "rerun it (python run_sweep.py OUT/search/holdout.yaml --overwrite)",
        }
    row = rows.iloc[0]
    if pd.isna(row.get("uf1_mean")):
        return {"available": False, "reason": f"no finished hold-out fold in {hdir}"}
    res: dict[str, Any] = {"available": True, "note": HOLDOUT_NOTE}
    for m in ("uf1", "uar", "acc"):
        res[m] = float(row[f"{m}_mean"])
        # the subject-bootstrap interval (and std over seeds) from the evaluation's summary
        for part in ("std", "low", "high", "se"):
            if not pd.isna(row.get(f"{m}_{part}", float("nan"))):
                res[f"{m}_{part}"] = float(row[f"{m}_{part}"])
    for key in ("ci_level", "n_boot", "boot_seed", "n_subjects", "n_clips", "n_classes"):
        if not pd.isna(row.get(key, float("nan"))):
            res[key] = float(row[key]) if key == "ci_level" else int(row[key])
    if isinstance(row.get("ci_method"), str):
        res["ci_method"] = row["ci_method"]
    res.update(
        seeds=int(row["seeds"]),
        folds_done=int(row["folds_done"]),
        folds_total=int(row["folds_total"]),
        complete=bool(row["complete"]),
        oracle=bool(row["oracle"]),
    )
    seeds_path = hdir / layout.SUMMARY_SEEDS
    if seeds_path.exists():
        per_seed = pd.read_csv(seeds_path)
        mine = per_seed[per_seed["variant"].astype(str) == variant]
        if "n_test" in mine and len(mine) and not pd.isna(mine["n_test"].iloc[0]):
            res["n_test"] = int(mine["n_test"].iloc[0])
    return res


def _holdout_section(
    cfg: ExperimentConfig,
    out: Path,
    entries: dict[str, dict[str, Any]],
    held: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """best.json's `holdout`: the subjects, the evaluation config and, per variant (in
    `entries[v]["holdout"]`), the evaluation's pooled test metrics or why there are none."""
    assert cfg.search is not None
    n = int(cfg.search.holdout_subjects)
    if n == 0:
        for e in entries.values():
            e["holdout"] = {"available": False, "reason": "no held-out subjects"}
        return {"n": 0, "subjects": [], "note": NO_HOLDOUT_NOTE}
    subjects = next((list(s) for v, s in held.items() if v in entries and s), [])
    distinct = {tuple(held[v]) for v in entries if held.get(v)}
    if len(distinct) > 1:  # variants on different data: their held-out scores are not comparable
        log.warning(
            "search: variants hold out different subjects (%s); their held-out scores are not "
            "comparable",
            "; ".join(f"{v}: {', '.join(held[v])}" for v in entries if held.get(v)),
        )
        subjects = sorted({s for group in distinct for s in group})
    if not subjects or any(not held.get(v) for v in entries):
        why = f"held-out subjects unknown (no plan.json in {out})"
        for e in entries.values():
            e["holdout"] = {"available": False, "reason": why}
        return {"n": n, "subjects": subjects, "note": HOLDOUT_NOTE, "reason": why}
    hdir = holdout_dir(cfg, out)
    section: dict[str, Any] = {
        "n": len(subjects),
        "subjects": subjects,
        "note": HOLDOUT_NOTE,
        "evaluate": bool(cfg.search.evaluate_holdout),
        "config": None,
        "results": str(hdir),
    }
    finished = all(e["finished"] for e in entries.values())
    if not finished or not any(e.get("best") for e in entries.values()):
        why = "the search is not finished" if not finished else "no completed configuration"
        for e in entries.values():
            e["holdout"] = {"available": False, "reason": f"not evaluated: {why}"}
        return section
    section["training_subjects"] = training_subjects(out, hdir, cfg)
    path, raw = _write_holdout_config(cfg, out, entries, held)
    section["config"] = str(path)
    for v, e in entries.items():
        if not e.get("best"):
            e["holdout"] = {"available": False, "reason": "no completed configuration"}
            continue
        res = _holdout_results(hdir, v, raw["ablations"][v], held[v])
        e["holdout"] = {"subjects": list(held[v]), **res}
    return section


def training_subjects(out: Path, hdir: Path, cfg: ExperimentConfig) -> dict[str, Any] | None:
    """How many subjects a fold trains on: in the search (its folds over the development
    subjects, less each fold's validation subjects) and in the hold-out evaluation (every other
    subject). Its point: the search tunes a configuration for the smaller training set, with the
    same epochs (README, Hyperparameter search). From the two plan.json files (the evaluation's
    own when it has run, else what its protocol gives); None for a plan written before they
    recorded it."""
    plan = (
        read_json(out / layout.PLAN_FILE, what="the search plan")
        if (out / layout.PLAN_FILE).exists()
        else {}
    )
    first = next(iter((plan.get("variants") or {}).values()), None)
    if not first:
        return None
    folds = next(iter((first.get("folds") or {}).values()), [])
    search = [int(f["train_subjects"]) for f in folds if "train_subjects" in f]
    if not search:
        return None
    hplan_path = hdir / layout.PLAN_FILE
    holdout: list[int] = []
    if hplan_path.exists():
        hfirst = next(iter(read_json(hplan_path, what="the hold-out plan")["variants"].values()))
        hfolds = next(iter((hfirst.get("folds") or {}).values()), [])
        holdout = [int(f["train_subjects"]) for f in hfolds if "train_subjects" in f]
    if not holdout and first.get("subjects_total") is not None:
        everyone = int(first["subjects_total"]) + len(first.get("holdout_subjects") or [])
        val = cfg.protocol.val_subjects if cfg.protocol.selection == "inner_val" else 0
        holdout = [everyone - 1 - val]
    return {"search_folds": _spread(search), "holdout": _spread(holdout) if holdout else None}


def _spread(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def evaluate_holdout(cfg: ExperimentConfig, opts: Any, path: Path) -> int:
    """Run OUT/search/holdout.yaml as a normal ablation sweep (on the Ray the search used).

    With --resume it continues an interrupted evaluation (finished folds are not rerun).
    """
    hcfg = load_search_config(path)
    hout = output_dir(hcfg, None)
    resume = bool(opts.resume) and (hout / "config.yaml").exists()
    argv = ["run_sweep.py", str(path)] + (["--resume"] if resume else [])
    hopts = dataclasses.replace(opts, out=hout, resume=resume, overwrite=False, argv=argv)
    trials = len(hcfg.variants) * len(hcfg.protocol.folds) * len(hcfg.seeds)
    log.info(
        "hold-out evaluation: best configuration of %s on %d held-out subject(s), %d trial(s); "
        "results in %s",
        ", ".join(hcfg.variants),
        len(hcfg.protocol.folds),
        trials,
        hout,
    )
    return run_ablation(hcfg, hopts)
