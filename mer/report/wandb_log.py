"""Log the report's table and figures to the sweep's W&B summary run (offline by default)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer.experiment.run import RunData


def log_report(run: RunData, written: dict[str, Path], *, mode: str = "offline") -> None:
    """One run per sweep, job_type `report`, in the sweep's group, so W&B's default workspace
    shows it beside the per-variant summary runs; keys mirror the variants' `pooled/*` keys."""
    # lazy: wandb takes ~1 s to import; the report layer imports no wandb until it logs
    import wandb

    wb = run.config.get("tracking", {}).get("wandb", {})
    table = pd.read_csv(written["csv"])
    wrun = wandb.init(
        project=wb.get("project", "mer"),
        entity=wb.get("entity"),
        mode=mode,
        dir=str(run.run_dir),
        group=run.name,
        job_type="report",
        name=f"{run.name}/report",
        tags=["report", *_labels(table)],
        reinit="finish_previous",
    )
    try:
        wrun.log({"report/ablation_table": wandb.Table(dataframe=table)})
        for key, path in written.items():
            if key.startswith("png:"):
                wrun.log({f"report/{key[4:]}": wandb.Image(str(path))})
        for _, row in table.iterrows():
            for m in ("uf1", "uar", "acc"):
                if f"{m}_mean" in row and not pd.isna(row[f"{m}_mean"]):
                    wrun.summary[f"{row['variant']}/pooled/{m}"] = float(row[f"{m}_mean"])
    finally:
        wrun.finish()


def _labels(table: pd.DataFrame) -> list[str]:
    """The labels some row of the report carries, as W&B tags (as on the sweep's runs)."""
    flags = {"oracle": "oracle", "partial": "partial", "subject_dependent": "subject-dependent"}
    return [tag for col, tag in flags.items() if col in table and table[col].astype(bool).any()]
