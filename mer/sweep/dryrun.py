"""The dry run of a sweep (`mer sweep X.yaml --dry-run`): its plan from the annotations alone.

Why: a sweep's size (variants, folds, trials, resources, GPU-hours) must be known before a
cluster is booked, on a laptop without the media. Only annotation files are read (no decoding,
no Ray); the dataset checks a real run would do on them still run, so a config the run would
refuse is refused here too, and media folders missing on this machine are named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig
from mer.data.cache import known_coverage, load_samples_only
from mer.data.checks import check_table
from mer.data.preflight import dry_run_lines, source_key
from mer.experiment.costs import estimate_search_gpu_hours
from mer.experiment.describe import describe
from mer.experiment.plan import build_plan, model_stats_or_none, variant_configs
from mer.sweep.datasets import each_line_once


def missing_media_roots(data_cfg: Any) -> list[str]:
    """`key: path` for each media folder of `data_cfg` that is not a folder on this machine.

    A dry run reads annotations only (so GPU-hours can be planned on a laptop without the
    media); it still says which roots are missing here, so a typo shows before `mer prepare`.
    """
    if data_cfg.is_synthetic:
        return []
    roots = [("data.root", data_cfg.root)]
    roots += [(f"data.sources.{n}.root", s.root) for n, s in (data_cfg.sources or {}).items()]
    return [f"{k}: {r}" for k, r in roots if r and not Path(r).expanduser().is_dir()]


def dry_run(cfg: ExperimentConfig, max_concurrent: int | None = None) -> str:
    """The plan as text: variants, folds, trials, resources and GPU-hours (mer.experiment.plan
    `describe`), warnings about missing media folders, and for a search what it will run."""
    with each_line_once():  # the media check reads the sheets again (with media): log them once
        return _dry_run(cfg, max_concurrent)


def _dry_run(cfg: ExperimentConfig, max_concurrent: int | None) -> str:
    memo: dict[str, tuple] = {}

    def samples_for(data_cfg):  # noqa: ANN001, ANN202 - variants often share their annotations
        key = source_key(data_cfg)
        if key not in memo:
            memo[key] = load_samples_only(data_cfg)
        else:  # shared annotations; this variant's own policy/frame checks still apply
            check_table(memo[key][0], data_cfg)
        return memo[key]

    with each_line_once():  # the media check reads the sheets again (with media): log them once
        plan = build_plan(cfg, samples_for, stats_for=model_stats_or_none, faces_for=known_coverage)
    missing = sorted(
        {m for v in variant_configs(cfg).values() for m in missing_media_roots(v.data)}
    )
    conc = str(max_concurrent or cfg.resources.max_concurrent or "computed at run time")
    lines = [describe(plan, max_concurrent=conc)]
    for line in missing:
        lines.append(
            f"WARNING: {line} is not a folder on this machine; `mer prepare` here would fail"
        )
    lines += dry_run_lines(cfg)  # media checked without decoding, sizes against disk/memory
    if cfg.search is not None:
        n = cfg.search.holdout_subjects
        after = (
            f"; then the hold-out evaluation: {n} LOSO fold(s) per variant and seed" if n else ""
        )
        hours = estimate_search_gpu_hours(plan)
        lines.append(
            f"Search mode: {cfg.search.trials} configuration(s) per variant ({cfg.search.sampler}"
            f" sampler), each one Tune trial per fold of seed {cfg.seeds[0]}; the trial count "
            f"and GPU-hours above are the ablation grid, for scale{after}"
        )
        if hours is not None:
            lines.append(
                f"Estimated GPU-hours of the search: at most {hours:.3g} (every configuration "
                "on every fold, no pruning, plus the hold-out evaluation when it runs; at the "
                "base model's cost, same assumptions)"
            )
    return "\n".join(lines)
