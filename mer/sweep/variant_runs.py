"""What a variant's W&B summary run adds when `tracking.wandb.granularity` is `variant`: one row
per trial (fold, seed, status, selected epoch, its own scores, time) and the per-epoch training
curves of every fold, read from the results folder when the run is written.

Why from the results folder: the run is written when the sweep ends, from W&B's background
thread; the trial files hold every trial of the variant, those filed by an earlier driver of a
resumed sweep too, and the driver keeps nothing in memory for it while trials run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.experiment.store import ResultsStore

CURVE_PLOTS = ("loss", "val_uf1", "train_acc")  # curves drawn as line plots when present


def trial_table(out: str | Path, variant: str) -> pd.DataFrame:
    """One row per trial folder of the variant: trial, seed, fold, status, selected epoch, the
    trial's own test (and validation) scores — a per-fold diagnostic, not the MEGC metric —,
    training seconds, the epoch it resumed from."""
    rows = []
    for rec in ResultsStore(out).records(variant).values():
        info = rec.info
        row: dict[str, Any] = {
            "trial": rec.trial,
            "seed": rec.seed,
            "fold": rec.fold,
            "status": rec.status,
            "selected_epoch": info.get("selected_epoch"),
            "seconds": (info.get("timings") or {}).get("total"),
            "resumed_from": info.get("resumed_from"),
        }
        for split in ("test", "val"):
            for k, v in (info.get(f"{split}_scores") or {}).items():
                row[f"{split}_{k}_nonstandard"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def curves(out: str | Path, variant: str) -> pd.DataFrame:
    """The variant's per-epoch history rows of every finished trial, with seed and fold."""
    frames = []
    for rec in ResultsStore(out).records(variant).values():
        if not rec.done:
            continue
        hist = rec.history()
        if len(hist):
            frames.append(hist.assign(seed=rec.seed, fold=rec.fold))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def line_series(hist: pd.DataFrame, metric: str) -> dict[str, Any] | None:
    """One metric's curves, one per (seed, fold): the arguments of wandb.plot.line_series."""
    if metric not in hist or not hist[metric].notna().any():
        return None
    xs, ys, keys = [], [], []
    for (seed, fold), h in hist.groupby(["seed", "fold"], sort=True):
        h = h[h[metric].notna()].sort_values("epoch")
        xs.append(h["epoch"].astype(int).tolist())
        ys.append(h[metric].astype(float).tolist())
        keys.append(f"{fold} s{seed}")
    return {"xs": xs, "ys": ys, "keys": keys, "title": metric, "xname": "epoch"}


def log_folds(run: Any, out: str | Path, variant: str) -> None:
    """Log the variant's trial table, curves table and per-metric line plots to `run`."""
    import wandb  # lazy: wandb takes seconds to import; only W&B's writer thread gets here

    trials = trial_table(out, variant)
    if len(trials):
        run.log({"trials": wandb.Table(dataframe=_plain(trials))})
    hist = curves(out, variant)
    if not len(hist):
        return
    run.log({"curves": wandb.Table(dataframe=_plain(hist))})
    for metric in CURVE_PLOTS:
        series = line_series(hist, metric)
        if series is not None:
            run.log({f"curves/{metric}": wandb.plot.line_series(**series)})


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """NaN as None (W&B tables take no NaN in object columns)."""
    return frame.astype(object).where(pd.notna(frame), None).replace({np.nan: None})
