"""What a plan will cost: GPU-hours from each variant's forward FLOPs, before anything runs.

Apart from the plan itself: the numbers rest on an assumption (a throughput measured on one GPU,
scaled by FLOPs), the trials do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the plan reports its estimate: no runtime import back
    from mer.experiment.plan import SweepPlan

# GPU-hour estimates assume the paper model trains at 350 clips/s on one H100 (PERFORMANCE.md:
# 300-400 clips/s) and scale other models by their forward FLOPs as mer.models.summary counts
# them (the paper model: 18.5 GFLOP per 30x128x128 clip; fwd+bwd is ~3x that). Small models are
# launch-bound rather than FLOP-bound, so for them the estimate is a lower bound.
PAPER_CLIPS_PER_S = 350.0
PAPER_FWD_GFLOPS = 18.5
ASSUMED_TFLOPS = 3 * PAPER_FWD_GFLOPS * PAPER_CLIPS_PER_S / 1000.0  # ~19.4 in counted FLOPs
ASSUMED_NOTE = (
    "assumes the paper model's 350 clips/s on one H100 (PERFORMANCE.md: 300-400) scaled by each "
    "variant's forward GFLOPs (paper model 18.5), i.e. 3 x GFLOPs x train clips x epochs at "
    f"{ASSUMED_TFLOPS:.1f} TFLOP/s; training only, evaluation ignored"
)


def estimate_gpu_hours(plan: SweepPlan) -> dict[str, Any]:
    """GPU-hours per variant and in all, from FLOPs (see ASSUMED_NOTE)."""
    per_variant: dict[str, float | None] = {}
    for v in plan.variants.values():
        if not v.stats or not v.stats.get("gflops"):
            per_variant[v.name] = None
            continue
        clips = sum(int(f.train.size) for folds in v.folds.values() for f in folds)
        gflop = 3.0 * float(v.stats["gflops"]) * clips * v.cfg.train.epochs
        per_variant[v.name] = gflop / (ASSUMED_TFLOPS * 1000.0) / 3600.0
    known = [h for h in per_variant.values() if h is not None]
    return {
        "gpu_hours": sum(known) if known and len(known) == len(per_variant) else None,
        "per_variant": per_variant,
        "assumed_tflops": ASSUMED_TFLOPS,
        "note": ASSUMED_NOTE,
    }


def estimate_search_gpu_hours(plan: SweepPlan) -> float | None:
    """Upper bound for a search (no pruning) at each variant's base model cost: search.trials
    configurations per variant, each trained on every fold of the first seed, plus the hold-out
    evaluation when it runs (one fold per held-out subject and seed, each about a search fold's
    training set). Searched widths or epochs are not reflected. None without model statistics."""
    search = plan.cfg.search
    if search is None:
        return None
    seed = plan.cfg.seeds[0]
    total = 0.0
    for v in plan.variants.values():
        if not v.stats or not v.stats.get("gflops"):
            return None
        folds = v.folds.get(seed, [])
        clips = sum(int(f.train.size) for f in folds)
        per_clip = 3.0 * float(v.stats["gflops"]) * v.cfg.train.epochs
        held = len(v.holdout) if search.evaluate_holdout else 0
        holdout_clips = held * len(plan.cfg.seeds) * clips / max(len(folds), 1)
        total += per_clip * (search.trials * clips + holdout_clips)
    return total / (ASSUMED_TFLOPS * 1000.0) / 3600.0
