"""The dry-run text of a plan: data, folds, variants and what each changes, trials, resources
and the estimated cost (`run_sweep.py --dry-run`)."""

from __future__ import annotations

import numpy as np

from mer.data.faces.table import plan_lines
from mer.experiment import excluded
from mer.experiment.costs import estimate_gpu_hours
from mer.experiment.labels import count_subjects
from mer.experiment.plan import SweepPlan


def _range(values: list[int]) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    med = float(np.median(values))
    med_s = f"{med:.0f}" if med.is_integer() else f"{med:.1f}"
    return f"{lo}" if lo == hi else f"{lo}-{hi} (median {med_s})"


def _fmt_params(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def _fmt_hours(h: float | None) -> str:
    """GPU time with its unit: hours from 0.01 h (36 s) up, seconds below."""
    if h is None:
        return "?"
    return f"{h:.3g} h" if h >= 0.01 else f"{h * 3600:.1f} s"


def describe(plan: SweepPlan, *, max_concurrent: str = "computed at run time") -> str:
    """The dry-run text: data, folds, variants and what each changes, trials, resources, cost."""
    cfg = plan.cfg
    lines: list[str] = []
    n_var, n_seed = len(plan.variants), len(cfg.seeds)
    if cfg.search is None:
        lines.append(
            f"Sweep {cfg.name!r} (ablation): "
            f"{n_var} variant(s) x their folds x {n_seed} seed(s) = {len(plan.trials)} trials"
        )
    else:  # a search trains each configuration on each fold of the first seed
        seed = cfg.seeds[0]
        folds = [len(plan.trials_of(v, seed)) for v in plan.variants]
        fold_text = "/".join(str(n) for n in sorted(set(folds)))
        lines.append(
            f"Sweep {cfg.name!r} (search): {n_var} variant(s) x {cfg.search.trials} "
            f"configuration(s) x {fold_text} fold(s) = at most "
            f"{cfg.search.trials * sum(folds)} search trials (fewer when folds are pruned)"
            + (", then the hold-out evaluation" if any(v.holdout for v in plan.variants.values())
               else "")
        )  # fmt: skip
    seen_tables: set[int] = set()
    for key, table in plan.samples.items():
        if id(table) in seen_tables:
            continue
        seen_tables.add(id(table))
        users = [v for v in plan.variants.values() if plan.samples[v.data_key] is table]
        vcfg = users[0].cfg
        names = plan.class_names[key]
        counts = np.bincount(table["label"].to_numpy(dtype=np.int64), minlength=len(names))
        per_class = ", ".join(f"{n} {c}" for n, c in zip(counts.tolist(), names, strict=True))
        datasets = sorted(table["dataset"].astype(str).unique()) if "dataset" in table else []
        lines.append(
            f"Samples ({vcfg.data.dataset}{': ' + '+'.join(datasets) if datasets else ''}, "
            f"labels {vcfg.data.labels}): {len(table)} clips ({per_class}), "
            + (
                f"{table['subject'].nunique()} 'subjects' that are clips "
                "[subject-dependent: no subject CSV, the same person can be in training and test]"
                if users[0].subject_dependent
                else f"{table['subject'].nunique()} subjects"
            )
        )
    lines += excluded.excluded_lines(
        {"excluded_rows": excluded.plan_section(plan.samples.values())}
    )
    policies = sorted({v.cfg.data.regions.policy for v in plan.variants.values()})
    lines.append(
        f"Prepared datasets: {len(plan.samples)} (one per distinct data section; regions "
        f"{', '.join(policies)}), each built once on the driver and shared by its variants"
    )
    if plan.faces:
        users: dict[str, list[str]] = {}
        for v in plan.variants.values():
            users.setdefault(v.data_key, []).append(v.name)
        lines += plan_lines(plan.faces, users)
    seen: set[tuple] = set()
    for v in plan.variants.values():
        for seed, folds in v.folds.items():
            sig = tuple((f.name, f.train.size, f.val.size, f.test.size) for f in folds)
            sig += (v.cfg.protocol.split, v.cfg.protocol.selection)
            if sig in seen:
                continue
            who = f" (variant {v.name}, seed {seed})" if seen else ""
            seen.add(sig)
            lines.append(
                f"Folds{who}: {len(folds)} x {v.cfg.protocol.split}, selection "
                f"{v.cfg.protocol.selection}; test clips per fold "
                f"{_range([f.test.size for f in folds])}"
                f"; train {_range([f.train.size for f in folds])}; val "
                f"{_range([f.val.size for f in folds])}"
            )
    held = {tuple(v.holdout) for v in plan.variants.values() if v.holdout}
    for names in sorted(held):
        lines.append(
            f"Held out of the search: {len(names)} subject(s) ({', '.join(names)}), in no "
            "search fold; each variant's best configuration is tested LOSO on them afterwards"
        )
    if cfg.search is not None and not held:
        lines.append(
            "Held out of the search: none (search.holdout_subjects 0), so no clean test estimate "
            "of the chosen configuration"
        )
    if held:
        v = next(v for v in plan.variants.values() if v.holdout)
        folds = next(iter(v.folds.values()))
        train = [count_subjects(plan.samples[v.data_key], f.train) for f in folds]
        val = v.cfg.protocol.val_subjects if v.cfg.protocol.selection == "inner_val" else 0
        everyone = v.subjects_total + len(v.holdout)
        lines.append(
            f"Training subjects per fold: search folds {_range(train)}, hold-out evaluation "
            f"{everyone - 1 - val}, with the same epochs: the search tunes for the smaller "
            "training set (README, Hyperparameter search)"
        )
    lines.append(f"Seeds: {', '.join(map(str, cfg.seeds))}")
    est = estimate_gpu_hours(plan)
    header = f"  {'variant':<28} {'trials':>6} {'params':>8} {'GFLOPs':>8} {'GPU time':>9}  changes"
    lines += ["Variants:", header]
    for v in plan.variants.values():
        st = v.stats or {}
        gf = st.get("gflops")
        lines.append(
            f"  {v.label:<28} {len(plan.trials_of(v.name)):>6} {_fmt_params(st.get('params')):>8} "
            f"{(f'{gf:.3g}' if gf is not None else '?'):>8} "
            f"{_fmt_hours(est['per_variant'][v.name]):>9}  {v.changes()}"
        )
        for reason in v.oracle_reasons:
            lines.append(f"  {'':<28} oracle: {reason}")
        if v.partial:
            lines.append(
                f"  {'':<28} partial: its folds test {v.subjects_tested} of the "
                f"{v.subjects_total} subjects (protocol.folds); no paper numbers"
            )
        if v.subject_dependent:
            lines.append(f"  {'':<28} subject-dependent: {v.subject_dependent}")
        if v.paper:
            lines.append(f"  {'':<28} the paper's configuration: {v.paper}")
    r = cfg.resources
    lines.append(
        f"Trials: {len(plan.trials)}; per trial {r.gpu_per_trial:g} GPU (0 where the cluster has "
        f"none) + {r.cpu_per_trial:g} CPU; max concurrent {max_concurrent}; retries "
        f"{r.max_failures}"
    )
    total = est["gpu_hours"]
    if total is None:
        lines.append("Estimated GPU-hours: unknown (model statistics unavailable)")
    else:
        lines.append(f"Estimated GPU-hours: {total:.3g} ({est['note']})")
    return "\n".join(lines)
